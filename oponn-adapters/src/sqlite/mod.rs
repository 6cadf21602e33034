//! Ballots, votes and tallies in one SQLite file: the zero-configuration
//! default, for a single instance.
//!
//! The file runs in WAL mode with `synchronous=FULL`, so a vote is on disk
//! before it is acknowledged and readers never wait for the writer. A
//! batch of votes (group commit) runs in one `BEGIN IMMEDIATE`
//! transaction, which takes SQLite's one write lock up front: it reads the
//! ballot and its voters' votes once, decides every vote in memory, and
//! writes with multi-row statements, so its checks (voter, option, label
//! key) and its writes are atomic, the repository's invariants hold with no
//! other lock, and the schema's keys back them up. Each query (one
//! statement, or a script of several) is a round trip to sqlx's SQLite
//! worker thread, which is why a batch costs a constant number of them
//! rather than several per vote: two, its `BEGIN` travelling with its read
//! and its `COMMIT` with its writes.
//!
//! The file and its `-wal` and `-shm` are readable by their owner only
//! (they hold account emails). Every connection runs with
//! `secure_delete`, and a ballot's deletion ends with a truncating WAL
//! checkpoint, so its ciphertext and wrapped key leave every byte of the
//! three files.
//!
//! # Layout
//!
//! - this file: opening the file, migrations, and the ballot repository.
//! - `votes.rs`: the vote batch: one read, the core's decision, one
//!   script of writes.
//! - `accounts.rs`: accounts and sessions.

use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oponn_core::domain::{
    BallotId, InvitationHash, InvitationId, OptionId, OwnerId, ReceiptCode, ReceiptStatus, Tally,
    VoterHash,
};
use oponn_core::ports::{
    AddInvitationsError, BallotRecord, BallotRepository, Bulletin, InvitationRecord, NewInvitation,
    NewVote, Page, RecordVoteError, RecordedVote, RepositoryError, Revoked,
};
use oponn_core::recording::VoteOutcome;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, Row as _};

/// The connection settings [`SqliteRepository::open_with`] takes.
pub use sqlx::sqlite::SqliteConnectOptions;
use time::OffsetDateTime;

mod accounts;
mod votes;

use crate::probe::{WRITE_PROBE_BYTES, WriteProbe};
use crate::sql::{
    BallotRow, BulletinReadRow, InvitationRow, OptionRow, SqlSetupError, TallyRow, ballot_record,
    bulletin_of_rows, corrupt, each_alone, invitation_record, method_bounds, one_ballot,
    only_outcome, parse_choice, pending, tally_of_rows, unavailable,
};
use crate::writer::VoteWriter;
use votes::{Arg, MAX_PARAMS, Script, VoteConnection};

/// The schema's migrations, compiled in.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a statement waits for the write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Permissions of the database file, and so of the `-wal` and `-shm` files
/// SQLite creates beside it with the same mode: its owner's only.
const FILE_MODE: u32 = 0o600;

/// How many truncating checkpoints a deletion tries before giving up on
/// scrubbing the WAL now; each waits up to [`BUSY_TIMEOUT`] for readers of
/// older snapshots to finish.
const SCRUB_ATTEMPTS: u32 = 3;

/// How many connections serve everything but vote batches.
const MAX_CONNECTIONS: u32 = 8;

/// A pool of up to `max_connections` to the file. No ping before each
/// use: the database is a local file, and the ping would be one more hop
/// to the connection's thread per batch.
fn pool_options(max_connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .before_acquire(|connection, _| {
            Box::pin(async move {
                // When SQLite rolls a transaction back by itself (a full
                // disk, an I/O error), sqlx's ROLLBACK then fails and it
                // goes on counting the transaction as open, so every
                // later BEGIN on that connection would fail: such a
                // connection is closed, never reused. The count is
                // settled here, as the pool pings on release.
                let healthy = !connection.is_in_transaction();
                if !healthy {
                    tracing::warn!("closing a SQLite connection left in a failed transaction");
                }
                Ok(healthy)
            })
        })
}

/// A [`BallotRepository`] in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
    /// The one connection vote batches write on. The same one from batch
    /// to batch (until a batch fails, which replaces it), so
    /// its page cache and its prepared statements stay warm: SQLite drops
    /// a connection's whole page cache when another connection wrote
    /// since it last read, and the pool hands its connections out in
    /// turn, so batches on the shared pool re-read the pages they touch
    /// and re-parsed their statements on each of its connections. Held
    /// outside any pool, so a batch is not also a hand-out and a check on
    /// return ([`votes::VoteConnection`]).
    vote_connection: Arc<VoteConnection>,
    /// When storage last accepted a readiness write.
    probe: Arc<WriteProbe>,
    /// SQLite's one writer, taken in turn by vote batches, which commit
    /// every batch waiting, of any ballot, together (`crate::writer`).
    vote_writer: Arc<VoteWriter>,
}

impl SqliteRepository {
    /// Opens (creating if missing, owner-only) the database file at `path`.
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the file cannot be opened.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, SqlSetupError> {
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens the database a `sqlite://` URL names (creating it if missing).
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the URL is malformed or the file
    /// cannot be opened.
    pub async fn open_url(url: &str) -> Result<Self, SqlSetupError> {
        let options = SqliteConnectOptions::from_str(url).map_err(SqlSetupError::Connect)?;
        Self::open_with(options).await
    }

    /// Opens (creating if missing, owner-only) the database `options` name,
    /// with the caller's settings (extra pragmas, say) and the ones this
    /// repository relies on: WAL, `synchronous=FULL`, foreign keys,
    /// `secure_delete` and its busy timeout.
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the file cannot be created or opened.
    pub async fn open_with(options: SqliteConnectOptions) -> Result<Self, SqlSetupError> {
        if let Some(path) = file_of(&options) {
            restrict_files(&path).map_err(|error| SqlSetupError::Connect(error.into()))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted rows and freed pages are overwritten with zeros, so a
            // deleted ballot's ciphertext does not linger in free space.
            .pragma("secure_delete", "on")
            .busy_timeout(BUSY_TIMEOUT);
        let pool = pool_options(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await
            .map_err(SqlSetupError::Connect)?;
        let vote_options = options
            .statement_cache_capacity(votes::MAX_CACHED_STATEMENTS)
            // A multi-row insert in a batch keeps a statement journal (the
            // pages it changed, to undo it alone should it fail). Past
            // 64 KiB SQLite spills that journal to a new temporary file,
            // which a batch of a dozen votes on random index pages
            // reaches: a file created, written and deleted per batch, a
            // third of the vote path's writes. In memory it costs at most
            // the pages of one statement of at most `MAX_PARAMS` values.
            .pragma("temp_store", "memory");
        let vote_connection = VoteConnection::open(vote_options)
            .await
            .map_err(SqlSetupError::Connect)?;
        Ok(Self {
            pool,
            vote_connection: Arc::new(vote_connection),
            probe: Arc::new(WriteProbe::default()),
            vote_writer: Arc::new(VoteWriter::default()),
        })
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
}

const BALLOT_COLUMNS: &str = "b.id, b.owner_id, b.created_at, b.starts_at, b.ends_at, \
     b.closed_at, b.allow_write_in, b.measure, k.wrapped_key, \
     b.eligibility, b.allow_vote_change, b.results_visibility, b.publish_bulletin, \
     b.method, b.min_choices, b.max_choices \
     from ballots b join ballot_keys k on k.ballot_id = b.id";

const INVITATION_COLUMNS: &str = "ballot_id, invitation_id, token_hash, label, \
     created_at, used_at, revoked_at from invitations";

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
        publish_bulletin: row.try_get("publish_bulletin").map_err(unavailable)?,
        method: row.try_get("method").map_err(unavailable)?,
        min_choices: row.try_get("min_choices").map_err(unavailable)?,
        max_choices: row.try_get("max_choices").map_err(unavailable)?,
    })
}

fn invitation_row(row: &SqliteRow) -> Result<InvitationRow, RepositoryError> {
    Ok(InvitationRow {
        ballot_id: row.try_get("ballot_id").map_err(unavailable)?,
        invitation_id: row.try_get("invitation_id").map_err(unavailable)?,
        token_hash: row.try_get("token_hash").map_err(unavailable)?,
        label: row.try_get("label").map_err(unavailable)?,
        created_at: from_micros(row.try_get("created_at").map_err(unavailable)?)?,
        used_at: optional_time(row.try_get("used_at").map_err(unavailable)?)?,
        revoked_at: optional_time(row.try_get("revoked_at").map_err(unavailable)?)?,
    })
}

/// An invitation's number as the `integer` column holds it.
fn invitation_number(id: InvitationId) -> i64 {
    i64::from(id.get())
}

/// An outage while storing invitations.
fn invitations_unavailable(error: impl Into<oponn_core::ports::BoxError>) -> AddInvitationsError {
    AddInvitationsError::Unavailable(error.into())
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
             allow_write_in, measure, eligibility, allow_vote_change, results_visibility, \
             publish_bulletin, method, min_choices, max_choices) \
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (id) do nothing",
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
        .bind(ballot.settings.publish_bulletin)
        .bind(ballot.method.as_str())
        .bind(method_bounds(ballot.method).0)
        .bind(method_bounds(ballot.method).1)
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
        page: Page,
    ) -> Result<Vec<BallotRecord>, RepositoryError> {
        let rows = sqlx::query(&format!(
            "select {BALLOT_COLUMNS} where b.owner_id = ? \
             order by b.created_at desc, b.id desc limit ? offset ?"
        ))
        .bind(owner.as_str())
        .bind(i64::from(page.limit))
        .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
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
        only_outcome(
            self.vote_writer
                .record(self, vote.ballot_id, vec![vote.clone()])
                .await,
        )
    }

    /// Joins the vote writer's queue (`crate::writer`): the batch commits with
    /// every other batch waiting, of any ballot, in one transaction.
    async fn record_votes(&self, votes: &[NewVote]) -> Vec<VoteOutcome> {
        let Some(ballot) = one_ballot(votes) else {
            // Several ballots (or none).
            return each_alone(votes, |vote| self.record_vote(vote)).await;
        };
        self.vote_writer.record(self, ballot, votes.to_vec()).await
    }

    async fn vote_of(
        &self,
        ballot: &BallotId,
        voter: &VoterHash,
    ) -> Result<Option<Vec<OptionId>>, RepositoryError> {
        let vote: Option<(i64, Option<String>)> = sqlx::query_as(
            "select option_id, choice from votes where ballot_id = ?1 and voter_hash = ?2 \
             union all \
             select v.option_id, v.choice from vote_aliases a join votes v \
             on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
             where a.ballot_id = ?1 and a.alias_hash = ?2 limit 1",
        )
        .bind(ballot.as_bytes().as_slice())
        .bind(voter.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        vote.map(|(option, choice)| parse_choice(choice.as_deref(), option))
            .transpose()
    }

    async fn tally(&self, id: &BallotId) -> Result<Option<Tally>, RepositoryError> {
        // One statement, so one snapshot: the sequence, the option counts
        // and the choices agree.
        let rows: Vec<TallyRow> = sqlx::query_as(
            "select 0, tally_seq, null, null from ballots where id = ?1 \
             union all \
             select 1, option_id, vote_count, null from ballot_options \
             where ballot_id = ?1 and vote_count > 0 \
             union all \
             select 2, null, vote_count, choice from ballot_choices \
             where ballot_id = ?1 and vote_count > 0",
        )
        .bind(id.as_bytes().as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        tally_of_rows(rows)
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
        // The key first: from here on the rows are unreadable. Votes take
        // their receipts along; the invitations' labels are sealed.
        for statement in [
            "delete from ballot_keys where ballot_id = ?",
            "delete from vote_aliases where ballot_id = ?",
            "delete from votes where ballot_id = ?",
            "delete from retired_receipts where ballot_id = ?",
            "delete from invitations where ballot_id = ?",
            "delete from ballot_options where ballot_id = ?",
            "delete from ballot_choices where ballot_id = ?",
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
        let deleted = deleted.rows_affected() > 0;
        if deleted {
            self.scrub().await;
        }
        Ok(deleted)
    }

    async fn add_invitations(
        &self,
        ballot: &BallotId,
        invitations: &[NewInvitation],
        max_per_ballot: u32,
    ) -> Result<Vec<InvitationId>, AddInvitationsError> {
        let id = ballot.as_bytes().as_slice();
        // The write lock up front: the count and the last number read stay
        // true until the new links are committed.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(invitations_unavailable)?;
        let existing: Option<(i64, i64)> = sqlx::query_as(
            "select (select count(*) from invitations where ballot_id = ?1), \
             (select coalesce(max(invitation_id), 0) from invitations where ballot_id = ?1) \
             from ballots where id = ?1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(invitations_unavailable)?;
        let Some((count, last)) = existing else {
            return Err(AddInvitationsError::BallotNotFound);
        };
        let (count, last) = u64::try_from(count)
            .ok()
            .zip(u32::try_from(last).ok())
            .ok_or_else(|| invitations_unavailable(corrupt("invitation count")))?;
        let adding = u64::try_from(invitations.len()).unwrap_or(u64::MAX);
        if count.saturating_add(adding) > u64::from(max_per_ballot) {
            return Err(AddInvitationsError::LimitReached);
        }
        let ids: Vec<InvitationId> = (1..=invitations.len())
            .map(|offset| {
                u32::try_from(offset)
                    .ok()
                    .and_then(|offset| last.checked_add(offset))
                    .map(InvitationId::new)
            })
            .collect::<Option<_>>()
            .ok_or_else(|| invitations_unavailable("an invitation number past the largest"))?;
        let rows: Vec<(InvitationId, &NewInvitation)> =
            ids.iter().copied().zip(invitations).collect();
        let mut script = Script::default();
        for chunk in rows.chunks(MAX_PARAMS / 5) {
            let values = script.rows(chunk.iter().map(|(number, invitation)| {
                [
                    Arg::Bytes(id),
                    Arg::Int(invitation_number(*number)),
                    Arg::Bytes(invitation.token_hash.as_bytes().as_slice()),
                    Arg::OptionalBytes(invitation.label.as_ref().map(|label| label.as_bytes())),
                    Arg::Int(micros(invitation.created_at)),
                ]
            }));
            script.push(format_args!(
                "insert into invitations \
                 (ballot_id, invitation_id, token_hash, label, created_at) values {values}"
            ));
        }
        script.run(&mut tx).await.map_err(invitations_unavailable)?;
        tx.commit().await.map_err(invitations_unavailable)?;
        Ok(ids)
    }

    async fn invitations(
        &self,
        ballot: &BallotId,
    ) -> Result<Vec<InvitationRecord>, RepositoryError> {
        let rows = sqlx::query(&format!(
            "select {INVITATION_COLUMNS} where ballot_id = ? order by invitation_id"
        ))
        .bind(ballot.as_bytes().as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| invitation_record(invitation_row(row)?))
            .collect()
    }

    async fn invitation(
        &self,
        token_hash: &InvitationHash,
    ) -> Result<Option<InvitationRecord>, RepositoryError> {
        let row = sqlx::query(&format!("select {INVITATION_COLUMNS} where token_hash = ?"))
            .bind(token_hash.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|row| invitation_record(invitation_row(&row)?))
            .transpose()
    }

    async fn revoke_invitation(
        &self,
        ballot: &BallotId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> Result<Revoked, RepositoryError> {
        let (ballot, number) = (ballot.as_bytes().as_slice(), invitation_number(id));
        // One statement, so atomic with any vote batch (which holds the
        // write lock from its read to its commit): a link a committed vote
        // used is left as it is.
        let revoked = sqlx::query(
            "update invitations set revoked_at = coalesce(revoked_at, ?) \
             where ballot_id = ? and invitation_id = ? and used_at is null",
        )
        .bind(micros(at))
        .bind(ballot)
        .bind(number)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if revoked.rows_affected() > 0 {
            return Ok(Revoked::Revoked);
        }
        // Used, or no such link: a used link stays used, and a link only
        // goes with its ballot, so this read tells which.
        let exists: Option<i64> = sqlx::query_scalar(
            "select 1 from invitations where ballot_id = ? and invitation_id = ?",
        )
        .bind(ballot)
        .bind(number)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(if exists.is_some() {
            Revoked::Used
        } else {
            Revoked::NotFound
        })
    }

    async fn receipt_status(
        &self,
        ballot: &BallotId,
        receipt: &ReceiptCode,
    ) -> Result<ReceiptStatus, RepositoryError> {
        let (counted, replaced): (bool, bool) = sqlx::query_as(
            "select exists (select 1 from votes where ballot_id = ?1 and receipt = ?2), \
             exists (select 1 from retired_receipts where ballot_id = ?1 and receipt = ?2)",
        )
        .bind(ballot.as_bytes().as_slice())
        .bind(receipt.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(match (counted, replaced) {
            (true, _) => ReceiptStatus::Counted,
            (false, true) => ReceiptStatus::Replaced,
            (false, false) => ReceiptStatus::Unknown,
        })
    }

    async fn bulletin(&self, ballot: &BallotId) -> Result<Option<Bulletin>, RepositoryError> {
        // One statement, so one snapshot: the rows make the tally whose
        // sequence they carry.
        let rows: Vec<BulletinReadRow> = sqlx::query_as(
            "select tally_seq, null, null, null from ballots where id = ?1 \
             union all \
             select null, receipt, option_id, choice from votes \
             where ballot_id = ?1 and receipt is not null",
        )
        .bind(ballot.as_bytes().as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        bulletin_of_rows(rows)
    }

    async fn transfer_ballots(&self, from: &OwnerId, to: &OwnerId) -> Result<u64, RepositoryError> {
        let moved = sqlx::query("update ballots set owner_id = ? where owner_id = ?")
            .bind(to.as_str())
            .bind(from.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(moved.rows_affected())
    }

    /// Proves the file accepts writes: a row of a few pages inserted and
    /// deleted in one committed transaction, which a full disk refuses.
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.probe
            .check(async {
                let mut tx = self
                    .pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(unavailable)?;
                sqlx::query(
                    "insert into write_probes (padding) values (zeroblob(?)); \
                     delete from write_probes",
                )
                .bind(WRITE_PROBE_BYTES)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)
            })
            .await
    }
}

impl SqliteRepository {
    /// After a deletion: copies the WAL, which still holds the deleted
    /// rows' earlier versions, into the file (where `secure_delete` zeroed
    /// them) and truncates it to nothing. A checkpoint that readers keep
    /// from finishing is tried again; one that never finishes is logged,
    /// and the old frames are overwritten as the WAL is reused.
    async fn scrub(&self) {
        for attempt in 1..=SCRUB_ATTEMPTS {
            // Columns: whether it could not finish, frames in the WAL,
            // frames copied.
            let checkpoint: Result<(i64, i64, i64), _> =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&self.pool)
                    .await;
            match checkpoint {
                Ok((0, _, _)) => return,
                Ok(_) => tracing::debug!(attempt, "readers kept the WAL from being truncated"),
                Err(error) => tracing::debug!(attempt, %error, "the WAL checkpoint failed"),
            }
        }
        tracing::warn!(
            "a deleted ballot's old rows may stay in the WAL until it is next truncated"
        );
    }
}

/// The file `options` open, unless the database lives in memory.
fn file_of(options: &SqliteConnectOptions) -> Option<PathBuf> {
    let path = options.get_filename();
    let name = path.to_string_lossy();
    // sqlx names in-memory databases `file:sqlx-in-memory-…`; a `file:` URI
    // is SQLite's to resolve.
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        None
    } else {
        Some(path.to_path_buf())
    }
}

/// Creates the database file owner-only ([`FILE_MODE`]) before SQLite
/// would create it world-readable; SQLite gives its `-wal` and `-shm` the
/// same mode. Files an older version left readable by others lose that.
fn restrict_files(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        let mode = match fs::metadata(&file) {
            Ok(metadata) => metadata.permissions().mode(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if mode & 0o077 != 0 {
            // Not ours to change (another owner, a read-only mount): say so
            // and go on, as SQLite may still open it.
            match fs::set_permissions(&file, Permissions::from_mode(mode & 0o7700)) {
                Ok(()) => tracing::info!(file = %file.display(), "made owner-only"),
                Err(error) => tracing::warn!(
                    file = %file.display(), %error, "cannot make the database file owner-only"
                ),
            }
        }
    }
    Ok(())
}

/// Runs `test` on a runtime of its own with a new repository (not yet
/// migrated) in a temporary directory, for the module's tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test fails by panicking.
pub(crate) fn with_test_repository<F: std::future::Future<Output = ()>>(
    test: impl FnOnce(SqliteRepository) -> F,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repository = SqliteRepository::open(dir.path().join("oponn.db"))
            .await
            .unwrap();
        test(repository).await;
    });
}

/// A vote for option 1 by the voter whose hash is `voter` repeated, on
/// `ballot`, for the module's tests.
#[cfg(test)]
pub(crate) fn test_vote(ballot: BallotId, voter: u8) -> NewVote {
    use oponn_core::ports::VoteTarget;
    NewVote {
        ballot_id: ballot,
        voter: VoterHash::from_bytes([voter; 32]),
        aliases: Vec::new(),
        choice: vec![VoteTarget::Existing(OptionId::new(1))],
        cast_at: OffsetDateTime::UNIX_EPOCH,
        allow_change: false,
        receipt: ReceiptCode::generate(),
        invitation: None,
    }
}
