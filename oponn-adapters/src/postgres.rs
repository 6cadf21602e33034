//! Ballots, votes and tallies in PostgreSQL: the source of truth when
//! several instances serve the same ballots.
//!
//! Every invariant of the repository port is a database constraint, so it
//! holds without the distributed lock: the votes table's primary key
//! `votes_one_per_voter` keeps one vote per voter per ballot, and
//! `ballot_options_one_per_label` makes two racing write-ins of the same
//! label one option (`INSERT … ON CONFLICT DO NOTHING`, then read the
//! winner). A vote locks its ballot row, so the per-ballot sequence number
//! and the per-option counters move together, in one transaction, and a
//! tally is read from the counters without scanning votes.

use std::time::Duration;

use async_trait::async_trait;
use oponn_core::domain::{
    Account, AccountId, BallotId, Email, Identity, OptionId, OwnerId, Tally, VoterHash,
};
use oponn_core::ports::{
    AccountError, AccountRepository, BallotRecord, BallotRepository, NewVote, OptionRecord,
    RecordVoteError, RecordedVote, RepositoryError, VoteTarget,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row as _, Transaction};
use time::OffsetDateTime;

use crate::sql::{
    BallotRow, OptionRow, SqlSetupError, account, account_unavailable, ballot_record, batch_failed,
    corrupt, is_outage, pending, recorded, tally, unavailable,
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
        Ok(Self { pool })
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

    async fn record_vote_in(
        tx: &mut Transaction<'_, Postgres>,
        vote: &NewVote,
    ) -> Result<RecordedVote, RecordVoteError> {
        let ballot = vote.ballot_id.as_bytes().as_slice();
        // Lock the ballot row: votes on one ballot queue here, so its
        // sequence and counters move as one.
        let found = sqlx::query("select 1 from ballots where id = $1 for update")
            .bind(ballot)
            .fetch_optional(&mut **tx)
            .await
            .map_err(record_error)?;
        if found.is_none() {
            return Err(RecordVoteError::BallotNotFound);
        }
        // Read under the ballot's row lock: this voter's other votes queue behind it.
        let previous: Option<i32> = sqlx::query_scalar(
            "select option_id from votes where ballot_id = $1 and voter_hash = $2",
        )
        .bind(ballot)
        .bind(vote.voter.as_bytes().as_slice())
        .fetch_optional(&mut **tx)
        .await
        .map_err(record_error)?;
        if previous.is_some() && !vote.allow_change {
            return Err(RecordVoteError::AlreadyVoted);
        }
        let option_id = match &vote.target {
            VoteTarget::Existing(option) => i64::from(option.get()),
            VoteTarget::WriteIn(option) => Self::write_in_option(tx, ballot, option).await?,
        };
        let option = i32::try_from(option_id).map_err(|_| RecordVoteError::UnknownOption)?;
        if previous == Some(option) {
            // The same choice again: nothing moves.
            let tally_seq: i64 = sqlx::query_scalar("select tally_seq from ballots where id = $1")
                .bind(ballot)
                .fetch_one(&mut **tx)
                .await
                .map_err(record_error)?;
            let counts = Self::counts(&mut **tx, ballot)
                .await
                .map_err(into_record_error)?;
            return recorded(option_id, tally_seq, counts, None);
        }
        let moved = match previous {
            Some(old) => {
                sqlx::query(
                    "update ballot_options set vote_count = vote_count - 1 \
                     where ballot_id = $1 and option_id = $2",
                )
                .bind(ballot)
                .bind(old)
                .execute(&mut **tx)
                .await
                .map_err(record_error)?;
                "update votes set option_id = $3, cast_at = $4 \
                 where ballot_id = $1 and voter_hash = $2"
            }
            None => {
                "insert into votes (ballot_id, voter_hash, option_id, cast_at) \
                 values ($1, $2, $3, $4)"
            }
        };
        sqlx::query(moved)
            .bind(ballot)
            .bind(vote.voter.as_bytes().as_slice())
            .bind(option)
            .bind(vote.cast_at)
            .execute(&mut **tx)
            .await
            .map_err(record_error)?;
        sqlx::query(
            "update ballot_options set vote_count = vote_count + 1 \
             where ballot_id = $1 and option_id = $2",
        )
        .bind(ballot)
        .bind(i32::try_from(option_id).map_err(|_| RecordVoteError::UnknownOption)?)
        .execute(&mut **tx)
        .await
        .map_err(record_error)?;
        let tally_seq: i64 = sqlx::query_scalar(
            "update ballots set tally_seq = tally_seq + 1 where id = $1 returning tally_seq",
        )
        .bind(ballot)
        .fetch_one(&mut **tx)
        .await
        .map_err(record_error)?;
        let counts = Self::counts(&mut **tx, ballot)
            .await
            .map_err(into_record_error)?;
        recorded(option_id, tally_seq, counts, previous.map(i64::from))
    }

    /// The option a write-in counts toward: the ballot's option with the
    /// same label key, or the new one, inserted now.
    async fn write_in_option(
        tx: &mut Transaction<'_, Postgres>,
        ballot: &[u8],
        option: &OptionRecord,
    ) -> Result<i64, RecordVoteError> {
        let inserted: Option<i32> = sqlx::query_scalar(
            "insert into ballot_options (ballot_id, option_id, label, label_key, write_in) \
             values ($1, $2, $3, $4, $5) \
             on conflict on constraint ballot_options_one_per_label do nothing \
             returning option_id",
        )
        .bind(ballot)
        .bind(i32::try_from(option.id.get()).map_err(|_| RecordVoteError::OptionIdTaken)?)
        .bind(option.label.as_bytes())
        .bind(option.label_key.as_bytes().as_slice())
        .bind(option.write_in)
        .fetch_optional(&mut **tx)
        .await
        .map_err(record_error)?;
        if let Some(id) = inserted {
            return Ok(i64::from(id));
        }
        let existing: i32 = sqlx::query_scalar(
            "select option_id from ballot_options where ballot_id = $1 and label_key = $2",
        )
        .bind(ballot)
        .bind(option.label_key.as_bytes().as_slice())
        .fetch_one(&mut **tx)
        .await
        .map_err(record_error)?;
        Ok(i64::from(existing))
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

/// Translates a failed vote statement: constraint violations are the
/// business outcomes the port names; anything else is an outage.
fn record_error(error: sqlx::Error) -> RecordVoteError {
    if let sqlx::Error::Database(database) = &error {
        match database.constraint() {
            Some("votes_one_per_voter") => return RecordVoteError::AlreadyVoted,
            Some("votes_option_exists") => return RecordVoteError::UnknownOption,
            Some("ballot_options_pkey") => return RecordVoteError::OptionIdTaken,
            _ => {}
        }
    }
    RecordVoteError::Unavailable(Box::new(error))
}

fn into_record_error(error: RepositoryError) -> RecordVoteError {
    match error {
        RepositoryError::Unavailable(source) => RecordVoteError::Unavailable(source),
        other => RecordVoteError::Unavailable(Box::new(other)),
    }
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
    ) -> Result<Vec<BallotRecord>, RepositoryError> {
        let rows = sqlx::query(&format!(
            "select {BALLOT_COLUMNS} where b.owner_id = $1 order by b.created_at desc"
        ))
        .bind(owner.as_str())
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
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|error| RecordVoteError::Unavailable(Box::new(error)))?;
        let recorded = Self::record_vote_in(&mut tx, vote).await?;
        // Acknowledged only once committed: durable.
        tx.commit()
            .await
            .map_err(|error| RecordVoteError::Unavailable(Box::new(error)))?;
        Ok(recorded)
    }

    async fn record_votes(&self, votes: &[NewVote]) -> Vec<Result<RecordedVote, RecordVoteError>> {
        // One transaction, one commit (one WAL flush) for the whole batch;
        // each vote in a savepoint, so a refusal by a constraint undoes
        // only that vote.
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            Err(error) => return batch_failed(votes.len(), &error),
        };
        let mut outcomes = Vec::with_capacity(votes.len());
        for vote in votes {
            let mut savepoint = match sqlx::Acquire::begin(&mut *tx).await {
                Ok(savepoint) => savepoint,
                Err(error) => return batch_failed(votes.len(), &error),
            };
            let outcome = Self::record_vote_in(&mut savepoint, vote).await;
            if is_outage(&outcome) {
                return batch_failed(votes.len(), &"storage failed mid-batch");
            }
            let settled = if outcome.is_ok() {
                savepoint.commit().await
            } else {
                savepoint.rollback().await
            };
            if let Err(error) = settled {
                return batch_failed(votes.len(), &error);
            }
            outcomes.push(outcome);
        }
        match tx.commit().await {
            Ok(()) => outcomes,
            Err(error) => batch_failed(votes.len(), &error),
        }
    }

    async fn vote_of(
        &self,
        ballot: &BallotId,
        voter: &VoterHash,
    ) -> Result<Option<OptionId>, RepositoryError> {
        let option: Option<i32> = sqlx::query_scalar(
            "select option_id from votes where ballot_id = $1 and voter_hash = $2",
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

    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
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
