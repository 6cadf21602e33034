//! Ballots, votes and tallies in one SQLite file: the zero-configuration
//! default, for a single instance.
//!
//! The file runs in WAL mode with `synchronous=FULL`, so a vote is on disk
//! before it is acknowledged and readers never wait for the writer. Each
//! vote runs in a `BEGIN IMMEDIATE` transaction, which takes SQLite's one
//! write lock up front: its checks (voter, option, label key) and its
//! writes are atomic, so the repository's invariants hold with no other
//! lock, and the schema's keys back them up.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use oponn_core::domain::{
    Account, AccountId, BallotId, Email, Identity, OptionId, OwnerId, Tally, VoterHash,
};
use oponn_core::ports::{
    AccountError, AccountRepository, BallotRecord, BallotRepository, NewVote, RecordVoteError,
    RecordedVote, RepositoryError, VoteTarget,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row as _, Sqlite, Transaction};
use time::OffsetDateTime;

use crate::sql::{
    BallotRow, OptionRow, SqlSetupError, account, account_unavailable, ballot_record, batch_failed,
    corrupt, is_outage, pending, recorded, tally, unavailable,
};

/// The schema's migrations, compiled in.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a statement waits for the write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`BallotRepository`] in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
}

impl SqliteRepository {
    /// Opens (creating if missing) the database file at `path`.
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the file cannot be opened.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, SqlSetupError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::open_with(options).await
    }

    /// Opens the database a `sqlite://` URL names (creating it if missing).
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the URL is malformed or the file
    /// cannot be opened.
    pub async fn open_url(url: &str) -> Result<Self, SqlSetupError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(SqlSetupError::Connect)?
            .create_if_missing(true);
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self, SqlSetupError> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(SqlSetupError::Connect)?;
        Ok(Self { pool })
    }

    /// Applies every migration not yet applied.
    ///
    /// # Errors
    /// [`SqlSetupError::Migrate`] when one fails.
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
        let exists: Option<String> = sqlx::query_scalar(
            "select name from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(SqlSetupError::Inspect)?;
        let applied: Vec<i64> = if exists.is_some() {
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
        executor: impl sqlx::SqliteExecutor<'_>,
        id: &[u8],
    ) -> Result<Vec<OptionRow>, RepositoryError> {
        sqlx::query_as::<_, OptionRow>(
            "select option_id, label, label_key, write_in \
             from ballot_options where ballot_id = ? order by option_id",
        )
        .bind(id)
        .fetch_all(executor)
        .await
        .map_err(unavailable)
    }

    async fn record(&self, row: &SqliteRow) -> Result<BallotRecord, RepositoryError> {
        let ballot = ballot_row(row)?;
        let options = Self::options(&self.pool, &ballot.id).await?;
        ballot_record(ballot, options)
    }

    async fn counts(
        executor: impl sqlx::SqliteExecutor<'_>,
        ballot: &[u8],
    ) -> Result<Vec<(i64, i64)>, RepositoryError> {
        sqlx::query_as::<_, (i64, i64)>(
            "select option_id, vote_count from ballot_options \
             where ballot_id = ? and vote_count > 0 order by option_id",
        )
        .bind(ballot)
        .fetch_all(executor)
        .await
        .map_err(unavailable)
    }

    /// Checks and records one vote inside a transaction holding the write lock.
    async fn record_vote_in(
        tx: &mut Transaction<'_, Sqlite>,
        vote: &NewVote,
    ) -> Result<RecordedVote, RecordVoteError> {
        let ballot = vote.ballot_id.as_bytes().as_slice();
        let voter = vote.voter.as_bytes().as_slice();
        let exists: Option<i64> = sqlx::query_scalar("select 1 from ballots where id = ?")
            .bind(ballot)
            .fetch_optional(&mut **tx)
            .await
            .map_err(outage)?;
        if exists.is_none() {
            return Err(RecordVoteError::BallotNotFound);
        }
        let previous: Option<i64> = sqlx::query_scalar(
            "select option_id from votes where ballot_id = ? and voter_hash = ?",
        )
        .bind(ballot)
        .bind(voter)
        .fetch_optional(&mut **tx)
        .await
        .map_err(outage)?;
        if previous.is_some() && !vote.allow_change {
            return Err(RecordVoteError::AlreadyVoted);
        }
        let option_id = match &vote.target {
            VoteTarget::Existing(option) => {
                let known: Option<i64> = sqlx::query_scalar(
                    "select 1 from ballot_options where ballot_id = ? and option_id = ?",
                )
                .bind(ballot)
                .bind(i64::from(option.get()))
                .fetch_optional(&mut **tx)
                .await
                .map_err(outage)?;
                if known.is_none() {
                    return Err(RecordVoteError::UnknownOption);
                }
                i64::from(option.get())
            }
            VoteTarget::WriteIn(option) => {
                let same_label: Option<i64> = sqlx::query_scalar(
                    "select option_id from ballot_options where ballot_id = ? and label_key = ?",
                )
                .bind(ballot)
                .bind(option.label_key.as_bytes().as_slice())
                .fetch_optional(&mut **tx)
                .await
                .map_err(outage)?;
                match same_label {
                    Some(existing) => existing,
                    None => {
                        let id = i64::from(option.id.get());
                        let taken: Option<i64> = sqlx::query_scalar(
                            "select 1 from ballot_options where ballot_id = ? and option_id = ?",
                        )
                        .bind(ballot)
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(outage)?;
                        if taken.is_some() {
                            return Err(RecordVoteError::OptionIdTaken);
                        }
                        sqlx::query(
                            "insert into ballot_options \
                             (ballot_id, option_id, label, label_key, write_in) \
                             values (?, ?, ?, ?, ?)",
                        )
                        .bind(ballot)
                        .bind(id)
                        .bind(option.label.as_bytes())
                        .bind(option.label_key.as_bytes().as_slice())
                        .bind(option.write_in)
                        .execute(&mut **tx)
                        .await
                        .map_err(outage)?;
                        id
                    }
                }
            }
        };
        if previous == Some(option_id) {
            // The same choice again: nothing moves.
            return Self::unchanged(tx, ballot, option_id).await;
        }
        let moved = match previous {
            Some(old) => {
                sqlx::query(
                    "update ballot_options set vote_count = vote_count - 1 \
                     where ballot_id = ? and option_id = ?",
                )
                .bind(ballot)
                .bind(old)
                .execute(&mut **tx)
                .await
                .map_err(outage)?;
                "update votes set option_id = ?3, cast_at = ?4 \
                 where ballot_id = ?1 and voter_hash = ?2"
            }
            None => {
                "insert into votes (ballot_id, voter_hash, option_id, cast_at) \
                 values (?1, ?2, ?3, ?4)"
            }
        };
        sqlx::query(moved)
            .bind(ballot)
            .bind(voter)
            .bind(option_id)
            .bind(micros(vote.cast_at))
            .execute(&mut **tx)
            .await
            .map_err(outage)?;
        sqlx::query(
            "update ballot_options set vote_count = vote_count + 1 \
             where ballot_id = ? and option_id = ?",
        )
        .bind(ballot)
        .bind(option_id)
        .execute(&mut **tx)
        .await
        .map_err(outage)?;
        let tally_seq: i64 = sqlx::query_scalar(
            "update ballots set tally_seq = tally_seq + 1 where id = ? returning tally_seq",
        )
        .bind(ballot)
        .fetch_one(&mut **tx)
        .await
        .map_err(outage)?;
        let counts = Self::counts(&mut **tx, ballot)
            .await
            .map_err(repository_outage)?;
        recorded(option_id, tally_seq, counts, previous)
    }

    /// The answer to a vote that changes nothing: the current tally.
    async fn unchanged(
        tx: &mut Transaction<'_, Sqlite>,
        ballot: &[u8],
        option_id: i64,
    ) -> Result<RecordedVote, RecordVoteError> {
        let tally_seq: i64 = sqlx::query_scalar("select tally_seq from ballots where id = ?")
            .bind(ballot)
            .fetch_one(&mut **tx)
            .await
            .map_err(outage)?;
        let counts = Self::counts(&mut **tx, ballot)
            .await
            .map_err(repository_outage)?;
        recorded(option_id, tally_seq, counts, None)
    }
}

const BALLOT_COLUMNS: &str = "b.id, b.owner_id, b.created_at, b.starts_at, b.ends_at, \
     b.closed_at, b.allow_write_in, b.measure, k.wrapped_key, \
     b.eligibility, b.allow_vote_change, b.results_visibility \
     from ballots b join ballot_keys k on k.ballot_id = b.id";

/// Microseconds since the Unix epoch: how this schema stores time.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, RepositoryError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| corrupt("timestamp"))
}

fn optional_time(micros: Option<i64>) -> Result<Option<OffsetDateTime>, RepositoryError> {
    micros.map(from_micros).transpose()
}

fn ballot_row(row: &SqliteRow) -> Result<BallotRow, RepositoryError> {
    Ok(BallotRow {
        id: row.try_get("id").map_err(unavailable)?,
        owner_id: row.try_get("owner_id").map_err(unavailable)?,
        created_at: from_micros(row.try_get("created_at").map_err(unavailable)?)?,
        starts_at: from_micros(row.try_get("starts_at").map_err(unavailable)?)?,
        ends_at: optional_time(row.try_get("ends_at").map_err(unavailable)?)?,
        closed_at: optional_time(row.try_get("closed_at").map_err(unavailable)?)?,
        allow_write_in: row.try_get("allow_write_in").map_err(unavailable)?,
        measure: row.try_get("measure").map_err(unavailable)?,
        wrapped_key: row.try_get("wrapped_key").map_err(unavailable)?,
        eligibility: row.try_get("eligibility").map_err(unavailable)?,
        allow_vote_change: row.try_get("allow_vote_change").map_err(unavailable)?,
        results_visibility: row.try_get("results_visibility").map_err(unavailable)?,
    })
}

fn outage(error: sqlx::Error) -> RecordVoteError {
    RecordVoteError::Unavailable(Box::new(error))
}

fn repository_outage(error: RepositoryError) -> RecordVoteError {
    match error {
        RepositoryError::Unavailable(source) => RecordVoteError::Unavailable(source),
        other => RecordVoteError::Unavailable(Box::new(other)),
    }
}

#[async_trait]
impl BallotRepository for SqliteRepository {
    async fn insert_ballot(&self, ballot: &BallotRecord) -> Result<(), RepositoryError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let id = ballot.id.as_bytes().as_slice();
        let inserted = sqlx::query(
            "insert into ballots (id, owner_id, created_at, starts_at, ends_at, closed_at, \
             allow_write_in, measure, eligibility, allow_vote_change, results_visibility) \
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (id) do nothing",
        )
        .bind(id)
        .bind(ballot.owner.as_ref().map(OwnerId::as_str))
        .bind(micros(ballot.created_at))
        .bind(micros(ballot.starts_at))
        .bind(ballot.ends_at.map(micros))
        .bind(ballot.closed_at.map(micros))
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
        sqlx::query("insert into ballot_keys (ballot_id, wrapped_key) values (?, ?)")
            .bind(id)
            .bind(ballot.wrapped_key.as_bytes())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        for option in &ballot.options {
            sqlx::query(
                "insert into ballot_options (ballot_id, option_id, label, label_key, write_in) \
                 values (?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(i64::from(option.id.get()))
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
        let row = sqlx::query(&format!("select {BALLOT_COLUMNS} where b.id = ?"))
            .bind(id.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(row) => Ok(Some(self.record(&row).await?)),
            None => Ok(None),
        }
    }

    async fn ballots_owned_by(
        &self,
        owner: &OwnerId,
    ) -> Result<Vec<BallotRecord>, RepositoryError> {
        let rows = sqlx::query(&format!(
            "select {BALLOT_COLUMNS} where b.owner_id = ? order by b.created_at desc"
        ))
        .bind(owner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            records.push(self.record(row).await?);
        }
        Ok(records)
    }

    async fn record_vote(&self, vote: &NewVote) -> Result<RecordedVote, RecordVoteError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(outage)?;
        let recorded = Self::record_vote_in(&mut tx, vote).await?;
        // Acknowledged only once committed (synchronous=FULL): durable.
        tx.commit().await.map_err(outage)?;
        Ok(recorded)
    }

    async fn record_votes(&self, votes: &[NewVote]) -> Vec<Result<RecordedVote, RecordVoteError>> {
        // One write transaction, one flush to disk, for the whole batch.
        let mut tx = match self.pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(error) => return batch_failed(votes.len(), &error),
        };
        let mut outcomes = Vec::with_capacity(votes.len());
        for vote in votes {
            // Refusals are decided before anything is written, so the
            // transaction stays clean; an outage may leave half a vote.
            let outcome = Self::record_vote_in(&mut tx, vote).await;
            if is_outage(&outcome) {
                return batch_failed(votes.len(), &"storage failed mid-batch");
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
        let option: Option<i64> = sqlx::query_scalar(
            "select option_id from votes where ballot_id = ? and voter_hash = ?",
        )
        .bind(ballot.as_bytes().as_slice())
        .bind(voter.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        option.map(crate::sql::option_id).transpose()
    }

    async fn tally(&self, id: &BallotId) -> Result<Option<Tally>, RepositoryError> {
        let ballot = id.as_bytes().as_slice();
        let tally_seq: Option<i64> =
            sqlx::query_scalar("select tally_seq from ballots where id = ?")
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
        let at = micros(at);
        let closed = sqlx::query(
            "update ballots set closed_at = min(coalesce(closed_at, ?), ?) where id = ?",
        )
        .bind(at)
        .bind(at)
        .bind(id.as_bytes().as_slice())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(closed.rows_affected() > 0)
    }

    async fn delete_ballot(&self, id: &BallotId) -> Result<bool, RepositoryError> {
        let ballot = id.as_bytes().as_slice();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        // The key first: from here on the rows are unreadable.
        for statement in [
            "delete from ballot_keys where ballot_id = ?",
            "delete from votes where ballot_id = ?",
            "delete from ballot_options where ballot_id = ?",
        ] {
            sqlx::query(statement)
                .bind(ballot)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        let deleted = sqlx::query("delete from ballots where id = ?")
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
impl AccountRepository for SqliteRepository {
    async fn sign_in(
        &self,
        identity: &Identity,
        email: &Email,
        new_id: &AccountId,
        now: OffsetDateTime,
    ) -> Result<Account, AccountError> {
        // The write lock up front: look-ups and inserts are one atomic step.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(account_unavailable)?;
        if let Some(account) = Self::linked_account(&mut tx, identity).await? {
            return Ok(account);
        }
        sqlx::query(
            "insert into accounts (id, email, created_at) values (?, ?, ?) \
             on conflict (email) do nothing",
        )
        .bind(new_id.as_str())
        .bind(email.as_str())
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .map_err(account_unavailable)?;
        sqlx::query(
            "insert into account_identities (provider, subject, account_id) \
             select ?, ?, id from accounts where email = ? \
             on conflict (provider, subject) do nothing",
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
        let row: Option<(String, String, i64)> =
            sqlx::query_as("select id, email, created_at from accounts where id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(account_unavailable)?;
        row.map(account_from_row).transpose()
    }
}

impl SqliteRepository {
    async fn linked_account(
        tx: &mut Transaction<'_, Sqlite>,
        identity: &Identity,
    ) -> Result<Option<Account>, AccountError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "select a.id, a.email, a.created_at from account_identities i \
             join accounts a on a.id = i.account_id where i.provider = ? and i.subject = ?",
        )
        .bind(identity.provider())
        .bind(identity.subject())
        .fetch_optional(&mut **tx)
        .await
        .map_err(account_unavailable)?;
        row.map(account_from_row).transpose()
    }
}

fn account_from_row(
    (id, email, created_at): (String, String, i64),
) -> Result<Account, AccountError> {
    let created_at = from_micros(created_at)
        .map_err(|_| AccountError::Unavailable("corrupt row: account creation time".into()))?;
    account((id, email, created_at))
}
