//! Ballots, votes and tallies in PostgreSQL: the source of truth when
//! several instances serve the same ballots.
//!
//! A batch of votes (group commit) locks its ballot's row first, so
//! batches on one ballot queue there, even with no distributed lock. Under
//! that lock it reads the ballot's sequence, options and its voters' votes
//! once, decides every vote in memory, and writes with a few `unnest`
//! statements, so its cost does not grow with its size in round trips: the
//! sequence number, the per-option counters and the votes move together in
//! one transaction, and a tally is read from the counters without scanning
//! votes. The schema's keys back the invariants up: the votes table's
//! primary key `votes_one_per_voter` keeps one vote per voter per ballot,
//! and `ballot_options_one_per_label` one option per label; a batch that
//! somehow broke one fails as a whole, recording nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oponn_core::domain::{
    Account, AccountId, BallotId, Email, Identity, OptionId, OwnerId, SessionHash, Tally, VoterHash,
};
use oponn_core::ports::{
    AccountError, AccountRepository, BallotRecord, BallotRepository, BoxError, NewVote, Page,
    RecordVoteError, RecordedVote, RepositoryError,
};
use oponn_core::recording::{BatchWrites, StoredVotes, VoteOutcome, VoteRow, identities};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row as _, Transaction};
use time::OffsetDateTime;

use crate::probe::{WRITE_PROBE_BYTES, WriteProbe};
use crate::sql::{
    BallotRow, BatchDialect, OptionRow, SqlSetupError, account, account_unavailable, add_option,
    add_vote, ballot_record, corrupt, pending, record_many, record_one, sql_count, stored_votes,
    tally, unavailable,
};

/// The schema's migrations, compiled in.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Tunables of the connection pool.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a query waits for a connection before the repository
    /// reports storage unavailable: short, so an outage answers `503`
    /// quickly instead of hanging the voter.
    pub acquire_timeout: Duration,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            max_connections: 32,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// A [`BallotRepository`] over a PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PostgresRepository {
    pool: PgPool,
    /// When the database last accepted a readiness write.
    probe: Arc<WriteProbe>,
}

impl PostgresRepository {
    /// Connects to `url` with default settings.
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, SqlSetupError> {
        Self::connect_with(url, &PostgresSettings::default()).await
    }

    /// Connects to `url`.
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the server cannot be reached.
    pub async fn connect_with(
        url: &str,
        settings: &PostgresSettings,
    ) -> Result<Self, SqlSetupError> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect(url)
            .await
            .map_err(SqlSetupError::Connect)?;
        Ok(Self {
            pool,
            probe: Arc::new(WriteProbe::default()),
        })
    }

    /// Applies every migration not yet applied.
    ///
    /// # Errors
    /// [`SqlSetupError::Migrate`] when one fails (it is rolled back).
    pub async fn migrate(&self) -> Result<(), SqlSetupError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(SqlSetupError::Migrate)
    }

    /// Migrations this build has that the database lacks ("version description").
    ///
    /// # Errors
    /// [`SqlSetupError::Inspect`] when the database cannot be read.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, SqlSetupError> {
        let exists: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
            .fetch_one(&self.pool)
            .await
            .map_err(SqlSetupError::Inspect)?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("select version from _sqlx_migrations where success")
                .fetch_all(&self.pool)
                .await
                .map_err(SqlSetupError::Inspect)?
        } else {
            Vec::new()
        };
        Ok(pending(&MIGRATOR, &applied))
    }

    async fn options(
        executor: impl sqlx::PgExecutor<'_>,
        id: &[u8],
    ) -> Result<Vec<OptionRow>, RepositoryError> {
        sqlx::query_as::<_, OptionRow>(
            "select option_id::int8 as option_id, label, label_key, write_in \
             from ballot_options where ballot_id = $1 order by option_id",
        )
        .bind(id)
        .fetch_all(executor)
        .await
        .map_err(unavailable)
    }

    async fn record(&self, row: sqlx::postgres::PgRow) -> Result<BallotRecord, RepositoryError> {
        let ballot = ballot_row(&row)?;
        let options = Self::options(&self.pool, &ballot.id).await?;
        ballot_record(ballot, options)
    }
    async fn counts(
        executor: impl sqlx::PgExecutor<'_>,
        ballot: &[u8],
    ) -> Result<Vec<(i64, i64)>, RepositoryError> {
        let rows = sqlx::query(
            "select option_id::int8 as option_id, vote_count from ballot_options \
             where ballot_id = $1 and vote_count > 0 order by option_id",
        )
        .bind(ballot)
        .fetch_all(executor)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("option_id").map_err(unavailable)?,
                    row.try_get("vote_count").map_err(unavailable)?,
                ))
            })
            .collect()
    }
}

impl BatchDialect for PostgresRepository {
    type Db = Postgres;
    // `option_id` is an `int` column.
    const MAX_OPTION_ID: OptionId = OptionId::new(i32::MAX.unsigned_abs());

    async fn begin_batch(&self) -> Result<Transaction<'_, Self::Db>, sqlx::Error> {
        // The ballot row is locked by the first read (`for update`).
        self.pool.begin().await
    }

    /// Locks the ballot's row, then reads its sequence, its options and the
    /// stored votes of the batch's voters; `None` when there is no such
    /// ballot.
    async fn batch_state(
        tx: &mut Transaction<'_, Postgres>,
        ballot: &[u8],
        votes: &[NewVote],
    ) -> Result<Option<StoredVotes>, BoxError> {
        // Lock the ballot row: batches on one ballot queue here, so its
        // sequence, counters and votes move as one. The reads after it are
        // statements of their own, so (read committed) they see what the
        // batch before this one committed.
        let ballot_row: Option<(i64, Option<OffsetDateTime>)> =
            sqlx::query_as("select tally_seq, closed_at from ballots where id = $1 for update")
                .bind(ballot)
                .fetch_optional(&mut **tx)
                .await?;
        let Some((tally_seq, closed_at)) = ballot_row else {
            return Ok(None);
        };
        let mut state = stored_votes(tally_seq, closed_at)?;
        // One round trip for the options and the stored votes every
        // identity of the batch's voters holds or is an alias of.
        let voters: Vec<&[u8]> = votes
            .iter()
            .flat_map(identities)
            .map(|identity| identity.as_bytes().as_slice())
            .collect();
        let rows: Vec<OptionOrVote> = sqlx::query_as(
            "select option_id, label_key, vote_count, null::bytea as voter_hash, \
             null::bytea as alias_hash \
             from ballot_options where ballot_id = $1 \
             union all \
             select option_id, null, null, voter_hash, null from votes \
             where ballot_id = $1 and voter_hash = any($2) \
             union all \
             select v.option_id, null, null, v.voter_hash, a.alias_hash \
             from vote_aliases a join votes v \
             on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
             where a.ballot_id = $1 and a.alias_hash = any($2)",
        )
        .bind(ballot)
        .bind(voters)
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            let option_id = i64::from(row.option_id);
            match (row.voter_hash, row.label_key, row.vote_count) {
                (Some(voter_hash), _, _) => {
                    add_vote(
                        &mut state,
                        &voter_hash,
                        option_id,
                        row.alias_hash.as_deref(),
                    )?;
                }
                (None, Some(label_key), Some(vote_count)) => {
                    add_option(&mut state, option_id, &label_key, vote_count)?;
                }
                (None, _, _) => return Err(corrupt("ballot option").into()),
            }
        }
        Ok(Some(state))
    }

    /// Writes a decided batch, each kind of row in one `unnest` statement
    /// (skipped when there is none), then the sequence once.
    async fn write_batch(
        tx: &mut Transaction<'_, Postgres>,
        ballot: &[u8],
        writes: &BatchWrites<'_>,
    ) -> Result<(), BoxError> {
        if !writes.new_options.is_empty() {
            let mut ids = Vec::with_capacity(writes.new_options.len());
            for option in &writes.new_options {
                ids.push(i32::try_from(option.id.get())?);
            }
            sqlx::query(
                "insert into ballot_options (ballot_id, option_id, label, label_key, write_in) \
                 select $1, o.option_id, o.label, o.label_key, o.write_in \
                 from unnest($2::int[], $3::bytea[], $4::bytea[], $5::bool[]) \
                 as o(option_id, label, label_key, write_in)",
            )
            .bind(ballot)
            .bind(ids)
            .bind(
                writes
                    .new_options
                    .iter()
                    .map(|option| option.label.as_bytes())
                    .collect::<Vec<_>>(),
            )
            .bind(
                writes
                    .new_options
                    .iter()
                    .map(|option| option.label_key.as_bytes().as_slice())
                    .collect::<Vec<_>>(),
            )
            .bind(
                writes
                    .new_options
                    .iter()
                    .map(|option| option.write_in)
                    .collect::<Vec<_>>(),
            )
            .execute(&mut **tx)
            .await?;
        }
        if writes.recorded > 0 {
            Self::write_votes(tx, ballot, writes).await?;
        }
        if !writes.new_aliases.is_empty() {
            // After the votes: an alias points at a stored vote.
            let (aliases, holders): (Vec<&[u8]>, Vec<&[u8]>) = writes
                .new_aliases
                .iter()
                .map(|(alias, holder)| (alias.as_bytes().as_slice(), holder.as_bytes().as_slice()))
                .unzip();
            sqlx::query(
                "insert into vote_aliases (ballot_id, alias_hash, voter_hash) \
                 select $1, a.alias_hash, a.voter_hash \
                 from unnest($2::bytea[], $3::bytea[]) as a(alias_hash, voter_hash)",
            )
            .bind(ballot)
            .bind(aliases)
            .bind(holders)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

impl PostgresRepository {
    /// Writes a batch's votes, counters and sequence, when it recorded any.
    async fn write_votes(
        tx: &mut Transaction<'_, Postgres>,
        ballot: &[u8],
        writes: &BatchWrites<'_>,
    ) -> Result<(), BoxError> {
        // Votes, counters and the sequence in one statement: its parts
        // touch different rows, and the foreign keys are checked once it
        // has run whole.
        let tally_seq: Option<i64> = sqlx::query_scalar(
            "with inserted as ( \
                 insert into votes (ballot_id, voter_hash, option_id, cast_at) \
                 select $1, v.voter_hash, v.option_id, v.cast_at \
                 from unnest($2::bytea[], $3::int[], $4::timestamptz[]) \
                 as v(voter_hash, option_id, cast_at)), \
             changed as ( \
                 update votes set option_id = v.option_id, cast_at = v.cast_at \
                 from unnest($5::bytea[], $6::int[], $7::timestamptz[]) \
                 as v(voter_hash, option_id, cast_at) \
                 where votes.ballot_id = $1 and votes.voter_hash = v.voter_hash), \
             counted as ( \
                 update ballot_options set vote_count = vote_count + c.delta \
                 from unnest($8::int[], $9::int8[]) as c(option_id, delta) \
                 where ballot_options.ballot_id = $1 \
                 and ballot_options.option_id = c.option_id) \
             update ballots set tally_seq = tally_seq + $10 where id = $1 returning tally_seq",
        )
        .bind(ballot)
        .bind(voter_hashes(&writes.new_votes))
        .bind(option_ids(
            writes.new_votes.iter().map(|row| row.option_id),
        )?)
        .bind(cast_times(&writes.new_votes))
        .bind(voter_hashes(&writes.changed_votes))
        .bind(option_ids(
            writes.changed_votes.iter().map(|row| row.option_id),
        )?)
        .bind(cast_times(&writes.changed_votes))
        .bind(option_ids(
            writes.count_changes.iter().map(|&(option, _)| option),
        )?)
        .bind(
            writes
                .count_changes
                .iter()
                .map(|&(_, by)| by)
                .collect::<Vec<_>>(),
        )
        .bind(sql_count(writes.recorded)?)
        .fetch_optional(&mut **tx)
        .await?;
        // The receipts number the votes from the sequence read under the
        // row lock; nothing else can have moved it.
        if tally_seq != Some(sql_count(writes.tally_seq)?) {
            return Err("the ballot's sequence moved during the batch".into());
        }
        Ok(())
    }
}

/// An option of the ballot (label key and count set) or a voter's stored
/// vote (voter hash set), as one batch read returns them together.
#[derive(sqlx::FromRow)]
struct OptionOrVote {
    option_id: i32,
    label_key: Option<Vec<u8>>,
    vote_count: Option<i64>,
    voter_hash: Option<Vec<u8>>,
    /// The identity read, when it is an alias of `voter_hash`.
    alias_hash: Option<Vec<u8>>,
}

/// The voter hashes of `rows`, as a `bytea[]` parameter.
fn voter_hashes(rows: &[VoteRow]) -> Vec<&[u8]> {
    rows.iter()
        .map(|row| row.voter.as_bytes().as_slice())
        .collect()
}

/// The cast times of `rows`, as a `timestamptz[]` parameter.
fn cast_times(rows: &[VoteRow]) -> Vec<OffsetDateTime> {
    rows.iter().map(|row| row.cast_at).collect()
}

/// Option ids as an `int[]` parameter; the schema stores them as `int`.
fn option_ids(ids: impl Iterator<Item = OptionId>) -> Result<Vec<i32>, BoxError> {
    ids.map(|id| i32::try_from(id.get()).map_err(BoxError::from))
        .collect()
}

const BALLOT_COLUMNS: &str = "b.id, b.owner_id, b.created_at, b.starts_at, b.ends_at, \
     b.closed_at, b.allow_write_in, b.measure, k.wrapped_key, \
     b.eligibility, b.allow_vote_change, b.results_visibility \
     from ballots b join ballot_keys k on k.ballot_id = b.id";

fn ballot_row(row: &sqlx::postgres::PgRow) -> Result<BallotRow, RepositoryError> {
    Ok(BallotRow {
        id: row.try_get("id").map_err(unavailable)?,
        owner_id: row.try_get("owner_id").map_err(unavailable)?,
        created_at: row.try_get("created_at").map_err(unavailable)?,
        starts_at: row.try_get("starts_at").map_err(unavailable)?,
        ends_at: row.try_get("ends_at").map_err(unavailable)?,
        closed_at: row.try_get("closed_at").map_err(unavailable)?,
        allow_write_in: row.try_get("allow_write_in").map_err(unavailable)?,
        measure: row.try_get("measure").map_err(unavailable)?,
        wrapped_key: row.try_get("wrapped_key").map_err(unavailable)?,
        eligibility: row.try_get("eligibility").map_err(unavailable)?,
        allow_vote_change: row.try_get("allow_vote_change").map_err(unavailable)?,
        results_visibility: row.try_get("results_visibility").map_err(unavailable)?,
    })
}

#[async_trait]
impl BallotRepository for PostgresRepository {
    async fn insert_ballot(&self, ballot: &BallotRecord) -> Result<(), RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let id = ballot.id.as_bytes().as_slice();
        let inserted = sqlx::query(
            "insert into ballots (id, owner_id, created_at, starts_at, ends_at, closed_at, \
             allow_write_in, measure, eligibility, allow_vote_change, results_visibility) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict (id) do nothing",
        )
        .bind(id)
        .bind(ballot.owner.as_ref().map(OwnerId::as_str))
        .bind(ballot.created_at)
        .bind(ballot.starts_at)
        .bind(ballot.ends_at)
        .bind(ballot.closed_at)
        .bind(ballot.allow_write_in)
        .bind(ballot.measure.as_bytes())
        .bind(ballot.settings.eligibility.as_str())
        .bind(ballot.settings.allow_vote_change)
        .bind(ballot.settings.results_visibility.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if inserted.rows_affected() == 0 {
            return Err(RepositoryError::Conflict);
        }
        sqlx::query("insert into ballot_keys (ballot_id, wrapped_key) values ($1, $2)")
            .bind(id)
            .bind(ballot.wrapped_key.as_bytes())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        for option in &ballot.options {
            sqlx::query(
                "insert into ballot_options (ballot_id, option_id, label, label_key, write_in) \
                 values ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(i32::try_from(option.id.get()).map_err(|_| corrupt("option id"))?)
            .bind(option.label.as_bytes())
            .bind(option.label_key.as_bytes().as_slice())
            .bind(option.write_in)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn ballot(&self, id: &BallotId) -> Result<Option<BallotRecord>, RepositoryError> {
        let row = sqlx::query(&format!("select {BALLOT_COLUMNS} where b.id = $1"))
            .bind(id.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(row) => Ok(Some(self.record(row).await?)),
            None => Ok(None),
        }
    }

    async fn ballots_owned_by(
        &self,
        owner: &OwnerId,
        page: Page,
    ) -> Result<Vec<BallotRecord>, RepositoryError> {
        let rows = sqlx::query(&format!(
            "select {BALLOT_COLUMNS} where b.owner_id = $1 \
             order by b.created_at desc, b.id desc limit $2 offset $3"
        ))
        .bind(owner.as_str())
        .bind(i64::from(page.limit))
        .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            records.push(self.record(row).await?);
        }
        Ok(records)
    }

    async fn record_vote(&self, vote: &NewVote) -> Result<RecordedVote, RecordVoteError> {
        record_one(self, vote).await
    }

    async fn record_votes(&self, votes: &[NewVote]) -> Vec<VoteOutcome> {
        record_many(self, votes).await
    }

    async fn vote_of(
        &self,
        ballot: &BallotId,
        voter: &VoterHash,
    ) -> Result<Option<OptionId>, RepositoryError> {
        let option: Option<i32> = sqlx::query_scalar(
            "select option_id from votes where ballot_id = $1 and voter_hash = $2 \
             union all \
             select v.option_id from vote_aliases a join votes v \
             on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
             where a.ballot_id = $1 and a.alias_hash = $2 limit 1",
        )
        .bind(ballot.as_bytes().as_slice())
        .bind(voter.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        option
            .map(|option| crate::sql::option_id(i64::from(option)))
            .transpose()
    }

    async fn tally(&self, id: &BallotId) -> Result<Option<Tally>, RepositoryError> {
        let ballot = id.as_bytes().as_slice();
        let tally_seq: Option<i64> =
            sqlx::query_scalar("select tally_seq from ballots where id = $1")
                .bind(ballot)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        let Some(tally_seq) = tally_seq else {
            return Ok(None);
        };
        let counts = Self::counts(&self.pool, ballot).await?;
        tally(tally_seq, counts).map(Some)
    }

    async fn close_ballot(
        &self,
        id: &BallotId,
        at: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        let closed = sqlx::query(
            "update ballots set closed_at = least(coalesce(closed_at, $2), $2) where id = $1",
        )
        .bind(id.as_bytes().as_slice())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(closed.rows_affected() > 0)
    }

    async fn delete_ballot(&self, id: &BallotId) -> Result<bool, RepositoryError> {
        let ballot = id.as_bytes().as_slice();
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // The key first: from here on the rows are unreadable.
        sqlx::query("delete from ballot_keys where ballot_id = $1")
            .bind(ballot)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("delete from vote_aliases where ballot_id = $1")
            .bind(ballot)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("delete from votes where ballot_id = $1")
            .bind(ballot)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let deleted = sqlx::query("delete from ballots where id = $1")
            .bind(ballot)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Proves the database accepts writes: a row inserted and deleted in
    /// one committed transaction, which a read-only server (a standby
    /// after failover, `default_transaction_read_only`) or a full disk
    /// refuses.
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.probe
            .check(async {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                sqlx::query(
                    "insert into write_probes (id, padding) \
                     values (pg_backend_pid(), decode(repeat('00', $1::int), 'hex'))",
                )
                .bind(WRITE_PROBE_BYTES)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                sqlx::query("delete from write_probes where id = pg_backend_pid()")
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)
            })
            .await
    }
}

#[async_trait]
impl AccountRepository for PostgresRepository {
    async fn sign_in(
        &self,
        identity: &Identity,
        email: &Email,
        new_id: &AccountId,
        now: OffsetDateTime,
    ) -> Result<Account, AccountError> {
        let mut tx = self.pool.begin().await.map_err(account_unavailable)?;
        if let Some(account) = Self::linked_account(&mut tx, identity).await? {
            return Ok(account);
        }
        // A racing first sign-in with the same email waits on the unique
        // email, then finds the row the winner inserted.
        sqlx::query(
            "insert into accounts (id, email, created_at) values ($1, $2, $3) \
             on conflict on constraint accounts_one_per_email do nothing",
        )
        .bind(new_id.as_str())
        .bind(email.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(account_unavailable)?;
        sqlx::query(
            "insert into account_identities (provider, subject, account_id) \
             select $1, $2, id from accounts where email = $3 \
             on conflict on constraint account_identities_pkey do nothing",
        )
        .bind(identity.provider())
        .bind(identity.subject())
        .bind(email.as_str())
        .execute(&mut *tx)
        .await
        .map_err(account_unavailable)?;
        let account = Self::linked_account(&mut tx, identity)
            .await?
            .ok_or_else(|| AccountError::Unavailable("the identity was not linked".into()))?;
        tx.commit().await.map_err(account_unavailable)?;
        Ok(account)
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, AccountError> {
        let row: Option<(String, String, OffsetDateTime)> =
            sqlx::query_as("select id, email, created_at from accounts where id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(account_unavailable)?;
        row.map(account).transpose()
    }

    async fn create_session(
        &self,
        session: &SessionHash,
        account: &AccountId,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), AccountError> {
        sqlx::query(
            "insert into sessions (token_hash, account_id, created_at, expires_at) \
             values ($1, $2, $3, $4)",
        )
        .bind(session.as_bytes().as_slice())
        .bind(account.as_str())
        .bind(created_at)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(account_unavailable)
    }

    async fn session_account(
        &self,
        session: &SessionHash,
        now: OffsetDateTime,
    ) -> Result<Option<Account>, AccountError> {
        let row: Option<(String, String, OffsetDateTime)> = sqlx::query_as(
            "select a.id, a.email, a.created_at from sessions s \
             join accounts a on a.id = s.account_id \
             where s.token_hash = $1 and s.expires_at > $2",
        )
        .bind(session.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(account_unavailable)?;
        row.map(account).transpose()
    }

    async fn revoke_session(&self, session: &SessionHash) -> Result<(), AccountError> {
        sqlx::query("delete from sessions where token_hash = $1")
            .bind(session.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(account_unavailable)
    }

    async fn prune_sessions(&self, now: OffsetDateTime) -> Result<u64, AccountError> {
        sqlx::query("delete from sessions where expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(account_unavailable)
    }
}

impl PostgresRepository {
    async fn linked_account(
        tx: &mut Transaction<'_, Postgres>,
        identity: &Identity,
    ) -> Result<Option<Account>, AccountError> {
        let row: Option<(String, String, OffsetDateTime)> = sqlx::query_as(
            "select a.id, a.email, a.created_at from account_identities i \
             join accounts a on a.id = i.account_id where i.provider = $1 and i.subject = $2",
        )
        .bind(identity.provider())
        .bind(identity.subject())
        .fetch_optional(&mut **tx)
        .await
        .map_err(account_unavailable)?;
        row.map(account).transpose()
    }
}
