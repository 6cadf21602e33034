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
//! other lock, and the schema's keys back them up. Each statement is a
//! round trip to sqlx's SQLite worker thread, which is why a batch costs a
//! constant number of them rather than several per vote.
//!
//! The file and its `-wal` and `-shm` are readable by their owner only
//! (they hold account emails). Every connection runs with
//! `secure_delete`, and a ballot's deletion ends with a truncating WAL
//! checkpoint, so its ciphertext and wrapped key leave every byte of the
//! three files.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
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
use oponn_core::recording::{BatchWrites, StoredVotes, VoteOutcome, identities};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, Row as _, Sqlite, Transaction};

/// The connection settings [`SqliteRepository::open_with`] takes.
pub use sqlx::sqlite::SqliteConnectOptions;
use time::OffsetDateTime;

use crate::probe::{WRITE_PROBE_BYTES, WriteProbe};
use crate::sql::{
    BallotRow, BatchDialect, OptionRow, SqlSetupError, account, account_unavailable, add_option,
    add_vote, ballot_record, corrupt, option_number, pending, record_many, record_one, sql_count,
    stored_votes, tally, unavailable,
};

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

/// A [`BallotRepository`] in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
    /// When storage last accepted a readiness write.
    probe: Arc<WriteProbe>,
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
        // No ping before each use: the database is a local file, and the
        // ping would be one more hop to the connection's thread per batch.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
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
            .connect_with(options)
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
}

impl BatchDialect for SqliteRepository {
    type Db = Sqlite;
    // `option_id` is an `integer` column: every option id fits.
    const MAX_OPTION_ID: OptionId = OptionId::new(u32::MAX);

    async fn begin_batch(&self) -> Result<Transaction<'_, Self::Db>, sqlx::Error> {
        // The write lock up front: the reads that follow stay true until commit.
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// The ballot's sequence, its options and the stored votes of the
    /// batch's voters, or `None` when there is no such ballot.
    async fn batch_state(
        tx: &mut Transaction<'_, Sqlite>,
        ballot: &[u8],
        votes: &[NewVote],
    ) -> Result<Option<StoredVotes>, BoxError> {
        // Every identity of every voter: each may hold a vote or lead to one.
        let voters: BTreeSet<&[u8]> = votes
            .iter()
            .flat_map(identities)
            .map(|identity| identity.as_bytes().as_slice())
            .collect();
        let voters: Vec<&[u8]> = voters.into_iter().collect();
        let mut chunks = voters.chunks(MAX_PARAMS - 1);
        let first_voters = chunks.next().unwrap_or_default();
        // Under the write lock one statement reads the ballot, its options
        // and the stored votes (first few hundred of) the identities hold
        // or are aliases of.
        let sql = format!(
            "select b.tally_seq, b.closed_at, o.option_id, o.label_key, o.vote_count, \
             null as voter_hash, null as alias_hash \
             from ballots b left join ballot_options o on o.ballot_id = b.id where b.id = ?1 \
             union all {}",
            votes_of(first_voters.len())
        );
        let mut query = sqlx::query_as::<_, BallotStateRow>(&sql)
            .persistent(false)
            .bind(ballot);
        for voter in first_voters {
            query = query.bind(*voter);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        let Some(ballot_row) = rows.iter().find(|row| row.tally_seq.is_some()) else {
            return Ok(None);
        };
        let mut state = stored_votes(
            ballot_row.tally_seq.unwrap_or_default(),
            optional_time(ballot_row.closed_at)?,
        )?;
        for row in rows {
            match (row.voter_hash, row.option_id, row.label_key, row.vote_count) {
                (Some(voter_hash), Some(option_id), _, _) => {
                    add_vote(
                        &mut state,
                        &voter_hash,
                        option_id,
                        row.alias_hash.as_deref(),
                    )?;
                }
                (None, Some(option_id), Some(label_key), Some(vote_count)) => {
                    add_option(&mut state, option_id, &label_key, vote_count)?;
                }
                // The ballot's row when it has no options.
                _ => {}
            }
        }
        for chunk in chunks {
            let sql = votes_of(chunk.len());
            let mut query = sqlx::query_as::<_, BallotStateRow>(&sql)
                .persistent(false)
                .bind(ballot);
            for voter in chunk {
                query = query.bind(*voter);
            }
            for row in query.fetch_all(&mut **tx).await? {
                if let (Some(voter_hash), Some(option_id)) = (row.voter_hash, row.option_id) {
                    add_vote(
                        &mut state,
                        &voter_hash,
                        option_id,
                        row.alias_hash.as_deref(),
                    )?;
                }
            }
        }
        Ok(Some(state))
    }

    /// Writes a decided batch: new options and new votes as multi-row
    /// inserts, changed votes one by one (they are rare), every moved
    /// counter in one statement, and the sequence once. The statements
    /// travel together as one script: each round trip to SQLite's thread
    /// is a wake-up, and the write lock is held meanwhile.
    async fn write_batch(
        tx: &mut Transaction<'_, Sqlite>,
        ballot: &[u8],
        writes: &BatchWrites<'_>,
    ) -> Result<(), BoxError> {
        let mut script = WriteScript::default();
        let id = Arg::Bytes(ballot);
        for chunk in writes.new_options.chunks(MAX_PARAMS / 5) {
            let rows = script.rows(chunk.iter().map(|option| {
                [
                    id,
                    Arg::Int(i64::from(option.id.get())),
                    Arg::Bytes(option.label.as_bytes()),
                    Arg::Bytes(option.label_key.as_bytes().as_slice()),
                    Arg::Bool(option.write_in),
                ]
            }));
            script.push(format!(
                "insert into ballot_options (ballot_id, option_id, label, label_key, write_in) \
                 values {rows}"
            ));
        }
        for chunk in writes.new_votes.chunks(MAX_PARAMS / 4) {
            let rows = script.rows(chunk.iter().map(|vote| {
                [
                    id,
                    Arg::Bytes(vote.voter.as_bytes().as_slice()),
                    Arg::Int(option_number(vote.option_id)),
                    Arg::Int(micros(vote.cast_at)),
                ]
            }));
            script.push(format!(
                "insert into votes (ballot_id, voter_hash, option_id, cast_at) values {rows}"
            ));
        }
        // After the votes: an alias points at a stored vote.
        for chunk in writes.new_aliases.chunks(MAX_PARAMS / 3) {
            let rows = script.rows(chunk.iter().map(|(alias, holder)| {
                [
                    id,
                    Arg::Bytes(alias.as_bytes().as_slice()),
                    Arg::Bytes(holder.as_bytes().as_slice()),
                ]
            }));
            script.push(format!(
                "insert into vote_aliases (ballot_id, alias_hash, voter_hash) values {rows}"
            ));
        }
        for vote in &writes.changed_votes {
            script.bind([
                Arg::Int(option_number(vote.option_id)),
                Arg::Int(micros(vote.cast_at)),
                id,
                Arg::Bytes(vote.voter.as_bytes().as_slice()),
            ]);
            script.push(
                "update votes set option_id = ?, cast_at = ? where ballot_id = ? and voter_hash = ?"
                    .to_owned(),
            );
        }
        for chunk in writes.count_changes.chunks((MAX_PARAMS - 1) / 3) {
            // `case option_id when ? then ? … end where … option_id in (?, …)`.
            script.bind(
                chunk
                    .iter()
                    .flat_map(|&(option, by)| [Arg::Int(option_number(option)), Arg::Int(by)]),
            );
            script.bind([id]);
            script.bind(
                chunk
                    .iter()
                    .map(|&(option, _)| Arg::Int(option_number(option))),
            );
            script.push(format!(
                "update ballot_options set vote_count = vote_count + case option_id{} end \
                 where ballot_id = ? and option_id in ({})",
                " when ? then ?".repeat(chunk.len()),
                vec!["?"; chunk.len()].join(", ")
            ));
        }
        if writes.recorded > 0 {
            script.bind([Arg::Int(sql_count(writes.recorded)?), id]);
            script.push(
                "update ballots set tally_seq = tally_seq + ? where id = ? returning tally_seq"
                    .to_owned(),
            );
        }
        let rows = script.run(tx).await?;
        if writes.recorded > 0 {
            // The receipts number the votes from the sequence read at the
            // start; under the write lock nothing else moved it.
            let tally_seq: Option<i64> = rows.last().map(|row| row.try_get(0)).transpose()?;
            if tally_seq != Some(sql_count(writes.tally_seq)?) {
                return Err("the ballot's sequence moved during the batch".into());
            }
        }
        Ok(())
    }
}

/// A value bound to a [`WriteScript`] parameter.
#[derive(Clone, Copy)]
enum Arg<'a> {
    Bytes(&'a [u8]),
    Int(i64),
    Bool(bool),
}

/// Several statements sent to SQLite as one script. Parameters are plain
/// `?`s, bound in order across the statements: sqlx gives each statement
/// the values after the previous one's (each statement stays under
/// SQLite's per-statement limit of [`MAX_PARAMS`]).
#[derive(Default)]
struct WriteScript<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

impl<'a> WriteScript<'a> {
    /// Binds the next parameters of the statement being built.
    fn bind(&mut self, values: impl IntoIterator<Item = Arg<'a>>) {
        self.args.extend(values);
    }

    /// `(?, ?, …), …`: one values row per item, its values bound in order.
    fn rows<const N: usize>(&mut self, items: impl Iterator<Item = [Arg<'a>; N]>) -> String {
        let row = format!("({})", vec!["?"; N].join(", "));
        let mut rows = Vec::new();
        for item in items {
            self.bind(item);
            rows.push(row.as_str());
        }
        rows.join(", ")
    }

    /// Appends a statement whose parameters were just bound.
    fn push(&mut self, statement: String) {
        self.sql.push_str(&statement);
        self.sql.push_str(";\n");
    }

    /// Runs the statements, returning the rows they produce.
    async fn run(self, tx: &mut Transaction<'_, Sqlite>) -> Result<Vec<SqliteRow>, sqlx::Error> {
        if self.sql.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::query(&self.sql).persistent(false);
        for value in self.args {
            query = match value {
                Arg::Bytes(bytes) => query.bind(bytes),
                Arg::Int(number) => query.bind(number),
                Arg::Bool(flag) => query.bind(flag),
            };
        }
        query.fetch_all(&mut **tx).await
    }
}

/// A row of a batch's one read: the ballot's sequence and close time with
/// one of its options (none for a ballot without options), or one of the
/// batch's voters' stored votes (`voter_hash` set).
#[derive(sqlx::FromRow)]
struct BallotStateRow {
    /// The ballot's sequence, on its rows.
    tally_seq: Option<i64>,
    /// When the ballot was closed (microseconds), on its rows.
    closed_at: Option<i64>,
    /// The option's id, or the option a stored vote counts toward.
    option_id: Option<i64>,
    /// The option's label key.
    label_key: Option<Vec<u8>>,
    /// The option's vote count.
    vote_count: Option<i64>,
    /// The identity holding a stored vote.
    voter_hash: Option<Vec<u8>>,
    /// The identity read, when it is an alias of `voter_hash`.
    alias_hash: Option<Vec<u8>>,
}

/// The rows of a batch's read for `count` identities (`?2`, `?3`, …): the
/// votes they hold, then the votes they are aliases of, with the alias.
fn votes_of(count: usize) -> String {
    let identities = numbered(2, count);
    format!(
        "select null as tally_seq, null as closed_at, option_id, null as label_key, \
         null as vote_count, voter_hash, null as alias_hash from votes \
         where ballot_id = ?1 and voter_hash in ({identities}) \
         union all \
         select null, null, v.option_id, null, null, v.voter_hash, a.alias_hash \
         from vote_aliases a join votes v \
         on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
         where a.ballot_id = ?1 and a.alias_hash in ({identities})"
    )
}

/// Most bind parameters one statement takes: SQLite's limit before 3.32,
/// which builds may still set, so every chunk fits any build. A batch of
/// the service's size (256 votes) still fits one statement of each kind.
///
/// Statements whose text grows with the batch are run `persistent(false)`:
/// cached, their many shapes would evict the fixed statements from sqlx's
/// per-connection statement cache.
const MAX_PARAMS: usize = 999;

/// `?first, ?first+1, …`: `count` numbered parameters.
fn numbered(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ")
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
        let option: Option<i64> = sqlx::query_scalar(
            "select option_id from votes where ballot_id = ?1 and voter_hash = ?2 \
             union all \
             select v.option_id from vote_aliases a join votes v \
             on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
             where a.ballot_id = ?1 and a.alias_hash = ?2 limit 1",
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
            "delete from vote_aliases where ballot_id = ?",
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
        let deleted = deleted.rows_affected() > 0;
        if deleted {
            self.scrub().await;
        }
        Ok(deleted)
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

    async fn create_session(
        &self,
        session: &SessionHash,
        account: &AccountId,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), AccountError> {
        sqlx::query(
            "insert into sessions (token_hash, account_id, created_at, expires_at) \
             values (?, ?, ?, ?)",
        )
        .bind(session.as_bytes().as_slice())
        .bind(account.as_str())
        .bind(micros(created_at))
        .bind(micros(expires_at))
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
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "select a.id, a.email, a.created_at from sessions s \
             join accounts a on a.id = s.account_id \
             where s.token_hash = ? and s.expires_at > ?",
        )
        .bind(session.as_bytes().as_slice())
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(account_unavailable)?;
        row.map(account_from_row).transpose()
    }

    async fn revoke_session(&self, session: &SessionHash) -> Result<(), AccountError> {
        sqlx::query("delete from sessions where token_hash = ?")
            .bind(session.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(account_unavailable)
    }

    async fn prune_sessions(&self, now: OffsetDateTime) -> Result<u64, AccountError> {
        sqlx::query("delete from sessions where expires_at <= ?")
            .bind(micros(now))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(account_unavailable)
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
