//! A vote batch on SQLite: under `BEGIN IMMEDIATE`, one union read of the
//! ballot, its options, the stored votes of the batch's identities, the
//! batch's receipts the ballot already gave and its revoked invitations;
//! the core's [`decide_batch`](oponn_core::recording::decide_batch); then
//! one script of multi-row inserts and counter, receipt, invitation and
//! sequence updates. The `BEGIN` travels with the read and the `COMMIT`
//! with the script, on a connection of the batches' own: a batch is two
//! round trips to SQLite's thread.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use oponn_core::domain::OptionId;
use oponn_core::ports::{BoxError, NewVote, RepositoryError};
use oponn_core::recording::{BatchWrites, StoredVotes, identities};
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions as _, Sqlite};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{SqliteRepository, invitation_number, micros, optional_time};
use crate::sql::{
    BatchDialect, choice_text, first_uses, method, option_number, read_choice, read_option,
    read_revoked_invitation, read_taken_receipt, read_vote, sql_count, stored_votes,
};

/// The connection vote batches run on, held between them: no pool hands
/// it out, so a batch costs no acquire and no check on its return (one
/// round trip to its thread each).
#[derive(Debug)]
pub(crate) struct VoteConnection {
    /// How to open it again.
    options: SqliteConnectOptions,
    /// `None` after a batch that did not commit, until the next batch
    /// opens a new one.
    connection: Arc<Mutex<Option<SqliteConnection>>>,
}

impl VoteConnection {
    /// Opens the connection now, so a file that cannot be opened fails
    /// the repository's opening rather than its first vote.
    pub(super) async fn open(options: SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let connection = options.connect().await?;
        Ok(Self {
            options,
            connection: Arc::new(Mutex::new(Some(connection))),
        })
    }

    /// The connection, for a test to look at; `None` when none is open.
    #[cfg(test)]
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, Option<SqliteConnection>> {
        self.connection.lock().await
    }
}

/// One transaction of vote batches on the [`VoteConnection`]. Its
/// `BEGIN IMMEDIATE` is sent with its first read and its `COMMIT` with its
/// last write. Dropped before its commit is confirmed (a failed statement,
/// a cancelled future), it drops the connection: closing it rolls back
/// whatever the transaction wrote, and a connection whose transaction is
/// in an unknown state is never used again.
pub(crate) struct SqliteBatch {
    /// Where the connection goes back once the transaction committed.
    slot: OwnedMutexGuard<Option<SqliteConnection>>,
    connection: SqliteConnection,
    /// Whether `BEGIN` was sent (with the first read).
    begun: bool,
    /// Whether `COMMIT` was sent and succeeded (with the last write).
    committed: bool,
}

impl SqliteBatch {
    /// `BEGIN IMMEDIATE; ` when the transaction is yet to begin, marking
    /// it begun; else nothing. Written before the first read.
    fn begin(&mut self) -> &'static str {
        if std::mem::replace(&mut self.begun, true) {
            ""
        } else {
            // The write lock up front: the reads that follow stay true
            // until the commit.
            "BEGIN IMMEDIATE; "
        }
    }
}

impl BatchDialect for SqliteRepository {
    type Batch = SqliteBatch;
    // `option_id` is an `integer` column: every option id fits.
    const MAX_OPTION_ID: OptionId = OptionId::new(u32::MAX);

    async fn begin_batch(&self) -> Result<SqliteBatch, sqlx::Error> {
        let vote_connection = &*self.vote_connection;
        let mut slot = Arc::clone(&vote_connection.connection).lock_owned().await;
        let connection = match slot.take() {
            Some(connection) => connection,
            None => vote_connection.options.connect().await?,
        };
        Ok(SqliteBatch {
            slot,
            connection,
            begun: false,
            committed: false,
        })
    }

    async fn commit_batch(batch: Self::Batch) -> Result<(), sqlx::Error> {
        let SqliteBatch {
            mut slot,
            mut connection,
            begun,
            committed,
        } = batch;
        if begun && !committed {
            // Its last ballot was not found: nothing carried the commit.
            // On failure the connection is dropped with its transaction.
            sqlx::query("COMMIT").execute(&mut connection).await?;
        }
        *slot = Some(connection);
        Ok(())
    }

    /// The ballot's sequence, its options, the stored votes of the batch's
    /// voters, which of its receipts the ballot already gave and which of
    /// its invitations were revoked; `None` when there is no such ballot.
    async fn batch_state(
        batch: &mut Self::Batch,
        ballot: &[u8],
        votes: &[NewVote],
    ) -> Result<Option<StoredVotes>, BoxError> {
        // Every identity of every voter (each may hold a vote or lead to
        // one), every receipt, every invitation: what the read looks up.
        let voters: BTreeSet<&[u8]> = votes
            .iter()
            .flat_map(identities)
            .map(|identity| identity.as_bytes().as_slice())
            .collect();
        let receipts: BTreeSet<&str> = votes.iter().map(|vote| vote.receipt.as_str()).collect();
        let invitations: BTreeSet<i64> = votes
            .iter()
            .filter_map(|vote| vote.invitation)
            .map(invitation_number)
            .collect();
        let lookups: Vec<Lookup<'_>> = voters
            .into_iter()
            .map(Lookup::Identity)
            .chain(receipts.into_iter().map(Lookup::Receipt))
            .chain(invitations.into_iter().map(Lookup::Invitation))
            .collect();
        let mut chunks = lookups.chunks(MAX_PARAMS - 1);
        let first_lookups = chunks.next().unwrap_or_default();
        // Under the write lock one statement reads the ballot, its options
        // and choices, and what (the first few hundred of) the lookups find.
        let sql = read_sql(batch.begin(), true, first_lookups);
        let rows = bind_lookups(
            sqlx::query_as::<_, BallotStateRow>(&sql)
                .persistent(cached(first_lookups.len() + 1))
                .bind(ballot),
            first_lookups,
        )
        .fetch_all(&mut batch.connection)
        .await?;
        let Some(ballot_row) = rows.iter().find(|row| row.tally_seq.is_some()) else {
            return Ok(None);
        };
        let mut state = stored_votes(
            ballot_row.tally_seq.unwrap_or_default(),
            optional_time(ballot_row.closed_at)?,
            method(
                ballot_row.method.as_deref().unwrap_or_default(),
                ballot_row.min_choices,
                ballot_row.max_choices,
            )?,
        )?;
        for row in rows {
            row.read_into(&mut state)?;
        }
        for chunk in chunks {
            let sql = read_sql("", false, chunk);
            let query = sqlx::query_as::<_, BallotStateRow>(&sql)
                .persistent(false)
                .bind(ballot);
            for row in bind_lookups(query, chunk)
                .fetch_all(&mut batch.connection)
                .await?
            {
                row.read_into(&mut state)?;
            }
        }
        Ok(Some(state))
    }

    /// Writes a decided batch: new options and new votes as multi-row
    /// inserts, changed votes one by one (they are rare), every moved
    /// counter in one statement, and the sequence once. The statements
    /// travel together as one script: each round trip to SQLite's thread
    /// is a wake-up, and the write lock is held meanwhile. The `last`
    /// write ends its script with the `COMMIT`.
    async fn write_batch(
        batch: &mut Self::Batch,
        ballot: &[u8],
        writes: &BatchWrites<'_>,
        last: bool,
    ) -> Result<(), BoxError> {
        // The choices as stored, kept here while the script borrows them.
        let new_choices: Vec<String> = writes
            .new_votes
            .iter()
            .map(|vote| choice_text(&vote.choice))
            .collect();
        let changed_choices: Vec<String> = writes
            .changed_votes
            .iter()
            .map(|vote| choice_text(&vote.choice))
            .collect();
        let choice_changes: Vec<(String, i64)> = writes
            .choice_changes
            .iter()
            .map(|(choice, by)| (choice_text(choice), *by))
            .collect();
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
            script.push(format_args!(
                "insert into ballot_options (ballot_id, option_id, label, label_key, write_in) \
                 values {rows}"
            ));
        }
        let new_votes: Vec<_> = writes.new_votes.iter().zip(&new_choices).collect();
        for chunk in new_votes.chunks(MAX_PARAMS / 6) {
            let rows = script.rows(chunk.iter().map(|(vote, choice)| {
                [
                    id,
                    Arg::Bytes(vote.voter.as_bytes().as_slice()),
                    Arg::Int(option_number(vote.first_option())),
                    Arg::Text(choice),
                    Arg::Int(micros(vote.cast_at)),
                    Arg::Text(vote.receipt.as_str()),
                ]
            }));
            script.push(format_args!(
                "insert into votes (ballot_id, voter_hash, option_id, choice, cast_at, receipt) \
                 values {rows}"
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
            script.push(format_args!(
                "insert into vote_aliases (ballot_id, alias_hash, voter_hash) values {rows}"
            ));
        }
        for (vote, choice) in writes.changed_votes.iter().zip(&changed_choices) {
            script.bind([
                Arg::Int(option_number(vote.first_option())),
                Arg::Text(choice),
                Arg::Int(micros(vote.cast_at)),
                Arg::Text(vote.receipt.as_str()),
                id,
                Arg::Bytes(vote.voter.as_bytes().as_slice()),
            ]);
            script.push(format_args!(
                "update votes set option_id = ?, choice = ?, cast_at = ?, receipt = ? \
                 where ballot_id = ? and voter_hash = ?"
            ));
        }
        // The receipts the changes replaced now read as replaced, and are
        // never given again on this ballot.
        for chunk in writes.retired_receipts.chunks(MAX_PARAMS / 2) {
            let rows = script.rows(
                chunk
                    .iter()
                    .map(|receipt| [id, Arg::Text(receipt.as_str())]),
            );
            script.push(format_args!(
                "insert into retired_receipts (ballot_id, receipt) values {rows}"
            ));
        }
        // `case invitation_id when ? then ? … end where … invitation_id in (?, …)`:
        // a link is marked used once, by the first vote cast with it.
        let used_invitations = first_uses(&writes.used_invitations);
        for chunk in used_invitations.chunks((MAX_PARAMS - 1) / 3) {
            script.bind(chunk.iter().flat_map(|&(invitation, at)| {
                [
                    Arg::Int(invitation_number(invitation)),
                    Arg::Int(micros(at)),
                ]
            }));
            script.bind([id]);
            script.bind(
                chunk
                    .iter()
                    .map(|&(invitation, _)| Arg::Int(invitation_number(invitation))),
            );
            script.push(format_args!(
                "update invitations set used_at = case invitation_id{} end \
                 where ballot_id = ? and used_at is null and invitation_id in ({})",
                WhenThen(chunk.len()),
                Placeholders::list(chunk.len())
            ));
        }
        for chunk in choice_changes.chunks(MAX_PARAMS / 3) {
            let rows = script.rows(
                chunk
                    .iter()
                    .map(|(choice, by)| [id, Arg::Text(choice), Arg::Int(*by)]),
            );
            script.push(format_args!(
                "insert into ballot_choices (ballot_id, choice, vote_count) values {rows} \
                 on conflict (ballot_id, choice) do update \
                 set vote_count = vote_count + excluded.vote_count"
            ));
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
            script.push(format_args!(
                "update ballot_options set vote_count = vote_count + case option_id{} end \
                 where ballot_id = ? and option_id in ({})",
                WhenThen(chunk.len()),
                Placeholders::list(chunk.len())
            ));
        }
        if writes.recorded > 0 {
            // The receipts number the votes from the sequence read at the
            // start; under the write lock nothing else moved it. Should it
            // have, the script fails here, before its commit.
            let read = writes
                .tally_seq
                .checked_sub(writes.recorded)
                .ok_or("a batch recorded more votes than its sequence counts")?;
            script.bind([
                Arg::Int(sql_count(read)?),
                Arg::Int(sql_count(writes.tally_seq)?),
                id,
            ]);
            script.push(format_args!("{SEQUENCE_UPDATE}"));
        }
        if last {
            script.push(format_args!("COMMIT"));
        }
        match script.run(&mut batch.connection).await {
            Ok(_) => {
                batch.committed = last;
                Ok(())
            }
            Err(error) if is_sequence_moved(&error) => {
                Err("the ballot's sequence moved during the batch".into())
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Advances a ballot's sequence from the value the batch read (the first
/// parameter) to its new one (the second), or fails the statement, and
/// so the script, when the stored value is not the one read: `abs` of the
/// smallest integer is an error in SQLite ("integer overflow"), the only
/// way a plain statement can refuse.
const SEQUENCE_UPDATE: &str = "update ballots set tally_seq = case tally_seq when ? then ? \
     else abs(-9223372036854775807 - 1) end where id = ?";

/// Whether `error` is [`SEQUENCE_UPDATE`] refusing a moved sequence.
fn is_sequence_moved(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.message() == "integer overflow")
}

/// A value bound to a [`WriteScript`] parameter.
#[derive(Clone, Copy)]
pub(super) enum Arg<'a> {
    Bytes(&'a [u8]),
    /// Bytes, or null.
    OptionalBytes(Option<&'a [u8]>),
    Text(&'a str),
    Int(i64),
    Bool(bool),
}

/// Several statements sent to SQLite as one script. Parameters are plain
/// `?`s, bound in order across the statements: sqlx gives each statement
/// the values after the previous one's (each statement stays under
/// SQLite's per-statement limit of [`MAX_PARAMS`]).
#[derive(Default)]
pub(super) struct WriteScript<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

impl<'a> WriteScript<'a> {
    /// Binds the next parameters of the statement being built.
    pub(super) fn bind(&mut self, values: impl IntoIterator<Item = Arg<'a>>) {
        self.args.extend(values);
    }

    /// `(?, ?, …), …`: one values row per item, its values bound in order.
    pub(super) fn rows<const N: usize>(
        &mut self,
        items: impl Iterator<Item = [Arg<'a>; N]>,
    ) -> Placeholders {
        // A row of no values is no SQL; width 0 means a bare list.
        const { assert!(N > 0, "a values row takes at least one value") };
        let mut rows = 0;
        for item in items {
            self.bind(item);
            rows += 1;
        }
        Placeholders { rows, width: N }
    }

    /// Appends a statement whose parameters were just bound, written
    /// straight into the script (no string of its own).
    pub(super) fn push(&mut self, statement: std::fmt::Arguments<'_>) {
        // Writing to a `String` cannot fail.
        let _ = self.sql.write_fmt(statement);
        self.sql.push_str(";\n");
    }

    /// Runs the statements, returning the rows they produce.
    pub(super) async fn run(
        self,
        connection: &mut SqliteConnection,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        if self.sql.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::query(&self.sql).persistent(cached(self.args.len()));
        for value in self.args {
            query = match value {
                Arg::Bytes(bytes) => query.bind(bytes),
                Arg::OptionalBytes(bytes) => query.bind(bytes),
                Arg::Text(text) => query.bind(text),
                Arg::Int(number) => query.bind(number),
                Arg::Bool(flag) => query.bind(flag),
            };
        }
        query.fetch_all(connection).await
    }
}

/// `rows` parenthesised groups of `width` parameters, `(?, ?), (?, ?)`,
/// or with `width` 0 a bare list of `rows` of them, `?, ?, ?`: written
/// where a statement's text is, without a string of its own.
#[derive(Clone, Copy)]
pub(super) struct Placeholders {
    rows: usize,
    width: usize,
}

impl Placeholders {
    /// `?, ?, …`: `count` parameters.
    pub(super) fn list(count: usize) -> Self {
        Self {
            rows: count,
            width: 0,
        }
    }
}

impl std::fmt::Display for Placeholders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for row in 0..self.rows {
            if row > 0 {
                f.write_str(", ")?;
            }
            if self.width == 0 {
                f.write_str("?")?;
                continue;
            }
            f.write_str("(?")?;
            for _ in 1..self.width {
                f.write_str(", ?")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// `" when ? then ?"` `count` times: the arms of a `case` moving several
/// rows' counters in one statement.
struct WhenThen(usize);

impl std::fmt::Display for WhenThen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for _ in 0..self.0 {
            f.write_str(" when ? then ?")?;
        }
        Ok(())
    }
}

/// A row of a batch's read: the ballot's sequence, close time and method
/// with one of its options (none for a ballot without options), a
/// distinct choice with its voters (`choice` and `vote_count` set), one of
/// the batch's voters' stored votes (`voter_hash` set), a receipt of the
/// batch the ballot already gave (`receipt` alone set), or an invitation
/// of the batch that was revoked (`invitation_id` set).
#[derive(sqlx::FromRow)]
struct BallotStateRow {
    /// The ballot's sequence, on its rows.
    tally_seq: Option<i64>,
    /// When the ballot was closed (microseconds), on its rows.
    closed_at: Option<i64>,
    /// The ballot's method, on its rows.
    method: Option<String>,
    /// Its approval bounds, on its rows.
    min_choices: Option<i64>,
    /// Its approval bounds, on its rows.
    max_choices: Option<i64>,
    /// The option's id, or the option a stored vote counts toward.
    option_id: Option<i64>,
    /// The option's label key.
    label_key: Option<Vec<u8>>,
    /// The option's vote count, or a distinct choice's voters.
    vote_count: Option<i64>,
    /// A distinct choice, or a stored vote's whole choice.
    choice: Option<String>,
    /// The identity holding a stored vote.
    voter_hash: Option<Vec<u8>>,
    /// The identity read, when it is an alias of `voter_hash`.
    alias_hash: Option<Vec<u8>>,
    /// A stored vote's receipt (none before receipts), or a taken receipt.
    receipt: Option<String>,
    /// A revoked invitation's number.
    invitation_id: Option<i64>,
}

/// The columns of [`BallotStateRow`], in the order every select of a
/// batch's read names them.
const STATE_COLUMNS: [&str; 13] = [
    "tally_seq",
    "closed_at",
    "method",
    "min_choices",
    "max_choices",
    "option_id",
    "label_key",
    "vote_count",
    "choice",
    "voter_hash",
    "alias_hash",
    "receipt",
    "invitation_id",
];

/// `select … {from}` naming every column of a batch's read: the
/// expression `values` gives for it, else null. Every select of the union
/// names them all, so any of them may come first.
fn state_select(values: &[(&str, &str)], from: &str) -> String {
    debug_assert!(
        values
            .iter()
            .all(|(column, _)| STATE_COLUMNS.contains(column)),
        "a value for a column the read does not have"
    );
    let columns: Vec<String> = STATE_COLUMNS
        .iter()
        .map(|column| {
            let value = values
                .iter()
                .find(|(name, _)| name == column)
                .map_or("null", |(_, value)| value);
            format!("{value} as {column}")
        })
        .collect();
    format!("select {} {from}", columns.join(", "))
}

impl BallotStateRow {
    /// Adds what this row holds (an option, a distinct choice, a stored
    /// vote, a taken receipt, a revoked invitation) to `state`; the
    /// ballot's own row without an option adds nothing.
    fn read_into(self, state: &mut StoredVotes) -> Result<(), RepositoryError> {
        if let Some(invitation) = self.invitation_id {
            return read_revoked_invitation(state, invitation);
        }
        match (
            self.voter_hash,
            self.option_id,
            self.label_key,
            self.vote_count,
        ) {
            (Some(voter_hash), Some(option_id), _, _) => read_vote(
                state,
                &voter_hash,
                option_id,
                self.choice.as_deref(),
                self.receipt.as_deref(),
                self.alias_hash.as_deref(),
            ),
            (None, Some(option_id), Some(label_key), Some(vote_count)) => {
                read_option(state, option_id, &label_key, vote_count)
            }
            (None, None, None, Some(voters)) => {
                read_choice(state, self.choice.as_deref().unwrap_or_default(), voters)
            }
            (None, None, None, None) => match self.receipt {
                Some(receipt) => read_taken_receipt(state, &receipt),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// One value a batch's read looks up, besides the ballot's own rows.
#[derive(Clone, Copy)]
enum Lookup<'a> {
    /// An identity of a voter: the vote it holds or is an alias of.
    Identity(&'a [u8]),
    /// A receipt of the batch: whether the ballot already gave it.
    Receipt(&'a str),
    /// An invitation of the batch: whether it was revoked.
    Invitation(i64),
}

/// The selects of a batch's read, each up to the list its lookups fill
/// (`… in (`) or whole: their text never changes, so it is built once
/// rather than for every batch (with one vote on each of many ballots,
/// building it was about 5 % of the server's CPU).
struct StateSelects {
    /// The ballot with each of its options (whole).
    ballot: String,
    /// The ballot's distinct choices with voters (whole).
    choices: String,
    /// The votes the identities hold.
    held_votes: String,
    /// The votes the identities are aliases of, with the alias.
    aliased_votes: String,
    /// The receipts a counted vote has.
    counted_receipts: String,
    /// The receipts a replaced vote had.
    retired_receipts: String,
    /// The revoked invitations.
    revoked_invitations: String,
}

static STATE_SELECTS: LazyLock<StateSelects> = LazyLock::new(|| StateSelects {
    ballot: state_select(
        &[
            ("tally_seq", "b.tally_seq"),
            ("closed_at", "b.closed_at"),
            ("method", "b.method"),
            ("min_choices", "b.min_choices"),
            ("max_choices", "b.max_choices"),
            ("option_id", "o.option_id"),
            ("label_key", "o.label_key"),
            ("vote_count", "o.vote_count"),
        ],
        "from ballots b left join ballot_options o on o.ballot_id = b.id where b.id = ?1",
    ),
    choices: state_select(
        &[("vote_count", "vote_count"), ("choice", "choice")],
        "from ballot_choices where ballot_id = ?1 and vote_count > 0",
    ),
    held_votes: state_select(
        &[
            ("option_id", "option_id"),
            ("choice", "choice"),
            ("voter_hash", "voter_hash"),
            ("receipt", "receipt"),
        ],
        "from votes where ballot_id = ?1 and voter_hash in (",
    ),
    aliased_votes: state_select(
        &[
            ("option_id", "v.option_id"),
            ("choice", "v.choice"),
            ("voter_hash", "v.voter_hash"),
            ("alias_hash", "a.alias_hash"),
            ("receipt", "v.receipt"),
        ],
        "from vote_aliases a join votes v \
         on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
         where a.ballot_id = ?1 and a.alias_hash in (",
    ),
    counted_receipts: state_select(
        &[("receipt", "receipt")],
        "from votes where ballot_id = ?1 and receipt in (",
    ),
    retired_receipts: state_select(
        &[("receipt", "receipt")],
        "from retired_receipts where ballot_id = ?1 and receipt in (",
    ),
    revoked_invitations: state_select(
        &[("invitation_id", "invitation_id")],
        "from invitations where ballot_id = ?1 and revoked_at is not null \
         and invitation_id in (",
    ),
});

/// A batch's read: the ballot's own rows when `ballot_rows`, then the
/// selects for `lookups` (bound as `?2`, `?3`, … in their order,
/// identities first, then receipts, then invitations): the votes the
/// identities hold, the votes they are aliases of (with the alias), the
/// receipts a counted or a replaced vote has, and the revoked
/// invitations. One `union all` statement, written into one string after
/// `begin` (the transaction's `BEGIN`, with its first read).
fn read_sql(begin: &str, ballot_rows: bool, lookups: &[Lookup<'_>]) -> String {
    let selects = &*STATE_SELECTS;
    let mut identities = 0;
    let mut receipts = 0;
    let mut invitations = 0;
    for lookup in lookups {
        match lookup {
            Lookup::Identity(_) => identities += 1,
            Lookup::Receipt(_) => receipts += 1,
            Lookup::Invitation(_) => invitations += 1,
        }
    }
    let mut sql = UnionSql::after(begin);
    if ballot_rows {
        sql.select(&selects.ballot);
        sql.select(&selects.choices);
    }
    let mut first = 2;
    for (count, kinds) in [
        (
            identities,
            [&selects.held_votes, &selects.aliased_votes].as_slice(),
        ),
        (
            receipts,
            [&selects.counted_receipts, &selects.retired_receipts].as_slice(),
        ),
        (invitations, [&selects.revoked_invitations].as_slice()),
    ] {
        if count > 0 {
            for select in kinds {
                sql.select_in(select, first, count);
            }
        }
        first += count;
    }
    sql.text
}

/// Selects joined by `union all`, written into one string.
struct UnionSql {
    text: String,
    /// Whether a select was written yet.
    started: bool,
}

impl UnionSql {
    /// No select yet, after `prefix`.
    fn after(prefix: &str) -> Self {
        Self {
            text: prefix.to_owned(),
            started: false,
        }
    }

    /// Adds a whole select.
    fn select(&mut self, select: &str) {
        if std::mem::replace(&mut self.started, true) {
            self.text.push_str(" union all ");
        }
        self.text.push_str(select);
    }

    /// Adds a select ending in `in (`, closing its list with `count`
    /// numbered parameters from `?first` on.
    fn select_in(&mut self, select: &str, first: usize, count: usize) {
        self.select(select);
        for (at, number) in (first..first + count).enumerate() {
            let separator = if at == 0 { "" } else { ", " };
            // Writing to a `String` cannot fail.
            let _ = write!(self.text, "{separator}?{number}");
        }
        self.text.push(')');
    }
}

/// Binds `lookups` to `query`, in order, after the ballot's id.
fn bind_lookups<'q, O>(
    mut query: sqlx::query::QueryAs<'q, Sqlite, O, SqliteArguments<'q>>,
    lookups: &[Lookup<'q>],
) -> sqlx::query::QueryAs<'q, Sqlite, O, SqliteArguments<'q>> {
    for lookup in lookups {
        query = match *lookup {
            Lookup::Identity(identity) => query.bind(identity),
            Lookup::Receipt(receipt) => query.bind(receipt),
            Lookup::Invitation(invitation) => query.bind(invitation),
        };
    }
    query
}

/// Most bind parameters one statement takes: SQLite's limit before 3.32,
/// which builds may still set, so every chunk fits any build. A batch of
/// the service's size (256 votes) still fits one statement of each kind.
///
/// Statements whose text grows with the batch are run `persistent(false)`
/// past [`MAX_CACHED_PARAMS`]: cached, their many shapes would evict the
/// fixed statements from sqlx's per-connection statement cache.
pub(super) const MAX_PARAMS: usize = 999;

/// The most bind parameters a batch statement may take and still be kept
/// in the vote connection's statement cache (of
/// [`MAX_CACHED_STATEMENTS`]), so SQLite parses it once per shape instead
/// of once per batch. A statement's text follows its batch (one row, or
/// one lookup, per vote), so each batch size is a shape: this keeps
/// batches of up to about forty votes, the sizes a few dozen concurrent
/// voters make, parsed once; larger ones are parsed each time, which
/// their many votes share. Parsing was 7 % of the server's CPU taking
/// votes with 32 parameters here.
pub(super) const MAX_CACHED_PARAMS: usize = 256;
const _: () = assert!(MAX_CACHED_PARAMS < MAX_PARAMS);

/// How many prepared statements the vote connection keeps, least recently
/// used first out: room for every shape up to [`MAX_CACHED_PARAMS`]
/// parameters a busy ballot's batches make. A statement of that size is a
/// few KiB, so the cache stays within a few MiB.
pub(super) const MAX_CACHED_STATEMENTS: usize = 512;

/// Whether a statement taking `params` bind parameters is cached.
fn cached(params: usize) -> bool {
    params <= MAX_CACHED_PARAMS
}

#[cfg(test)]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use oponn_core::domain::BallotId;
    use oponn_core::ports::{BallotRepository as _, RecordVoteError};
    use oponn_core::recording::decide_batch;
    use sqlx::Connection as _;

    use super::super::{test_vote, with_test_repository};
    use super::*;

    #[test]
    fn placeholders_are_written_as_rows_or_as_a_list() {
        assert_eq!(
            Placeholders { rows: 2, width: 3 }.to_string(),
            "(?, ?, ?), (?, ?, ?)"
        );
        assert_eq!(Placeholders { rows: 1, width: 1 }.to_string(), "(?)");
        assert_eq!(Placeholders::list(3).to_string(), "?, ?, ?");
        assert_eq!(Placeholders::list(0).to_string(), "");
        assert_eq!(WhenThen(2).to_string(), " when ? then ? when ? then ?");
    }

    #[test]
    fn a_read_numbers_its_lookups_after_the_ballot_kind_by_kind() {
        let identity = [1; 32];
        let lookups = [
            Lookup::Identity(&identity),
            Lookup::Identity(&identity),
            Lookup::Receipt("R"),
            Lookup::Invitation(4),
        ];
        let sql = read_sql("", false, &lookups);
        // Held and aliased votes share the identities' numbers, both
        // receipt selects the receipt's; no ballot rows were asked for.
        assert_eq!(sql.matches("in (?2, ?3)").count(), 2);
        assert_eq!(sql.matches("in (?4)").count(), 2);
        assert_eq!(sql.matches("in (?5)").count(), 1);
        assert_eq!(sql.matches(" union all ").count(), 4);
        assert!(!sql.contains("from ballots"));
        let with_ballot = read_sql("", true, &lookups[..1]);
        assert!(with_ballot.starts_with(&STATE_SELECTS.ballot));
        // A transaction's first read carries its BEGIN, then the same
        // statement.
        let first_read = read_sql("BEGIN IMMEDIATE; ", true, &lookups[..1]);
        assert_eq!(first_read, format!("BEGIN IMMEDIATE; {with_ballot}"));
        assert!(with_ballot.ends_with("alias_hash in (?2)"));
        assert_eq!(with_ballot.matches(" union all ").count(), 3);
    }

    #[test]
    fn statements_are_cached_up_to_their_parameter_limit() {
        assert!(cached(1));
        assert!(cached(MAX_CACHED_PARAMS));
        assert!(!cached(MAX_CACHED_PARAMS + 1));
    }

    /// `count` votes of different voters on `ballot`.
    fn votes(ballot: BallotId, count: u8) -> Vec<NewVote> {
        (0..count).map(|voter| test_vote(ballot, voter)).collect()
    }

    /// How many statements the vote connection keeps prepared.
    async fn kept(repository: &SqliteRepository) -> usize {
        let mut connection = repository.vote_connection.lock().await;
        connection.as_mut().unwrap().cached_statements_size()
    }

    /// How many votes `ballot` has stored.
    async fn stored(repository: &SqliteRepository, ballot: BallotId) -> i64 {
        sqlx::query_scalar("select count(*) from votes where ballot_id = ?")
            .bind(ballot.as_bytes().as_slice())
            .fetch_one(&repository.pool)
            .await
            .unwrap()
    }

    /// A new ballot of two options in `repository`.
    async fn ballot(repository: &SqliteRepository) -> BallotId {
        repository.migrate().await.unwrap();
        let oponn = oponn_testkit::TestOponn::with_repository(Arc::new(repository.clone()));
        oponn
            .create_ballot("Lunch?", &["pizza", "sushi"])
            .await
            .id()
    }

    #[test]
    fn a_batch_commits_with_its_last_write_and_keeps_its_connection() {
        with_test_repository(|repository| async move {
            let ballot = ballot(&repository).await;
            let outcomes = repository.record_votes(&votes(ballot, 3)).await;
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            assert_eq!(stored(&repository, ballot).await, 3);
            // Committed, and back for the next batch, in no transaction.
            let mut connection = repository.vote_connection.lock().await;
            let connection = connection.as_mut().expect("the connection is kept");
            sqlx::query("BEGIN IMMEDIATE; ROLLBACK")
                .execute(&mut *connection)
                .await
                .unwrap();
        });
    }

    #[test]
    fn a_batch_whose_last_ballot_is_missing_commits_the_others_alone() {
        with_test_repository(|repository| async move {
            let ballot = ballot(&repository).await;
            let missing = BallotId::from_bytes([9; 16]);
            let (found, lost) = (votes(ballot, 2), votes(missing, 1));
            let outcomes =
                crate::sql::record_batches(&repository, &[(&ballot, &found), (&missing, &lost)])
                    .await;
            assert!(outcomes[0].iter().all(Result::is_ok), "{outcomes:?}");
            assert!(matches!(
                outcomes[1].as_slice(),
                [Err(RecordVoteError::BallotNotFound)]
            ));
            assert_eq!(stored(&repository, ballot).await, 2);
        });
    }

    #[test]
    fn a_batch_that_fails_before_its_commit_writes_nothing_and_drops_its_connection() {
        with_test_repository(|repository| async move {
            let ballot = ballot(&repository).await;
            let id = ballot.as_bytes().as_slice();
            let batch_votes = votes(ballot, 2);
            let mut batch = repository.begin_batch().await.unwrap();
            let state = SqliteRepository::batch_state(&mut batch, id, &batch_votes)
                .await
                .unwrap()
                .unwrap();
            let mut decided = decide_batch(state, &batch_votes, SqliteRepository::MAX_OPTION_ID);
            // As if another writer had moved the sequence since the read.
            decided.writes.tally_seq += 1;
            let error = SqliteRepository::write_batch(&mut batch, id, &decided.writes, true)
                .await
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                "the ballot's sequence moved during the batch"
            );
            drop(batch);
            // The votes before the refused update are not kept, and the
            // connection that held them is gone.
            assert_eq!(stored(&repository, ballot).await, 0);
            assert!(repository.vote_connection.lock().await.is_none());
            // The next batch opens a new one and commits.
            let outcomes = repository.record_votes(&batch_votes).await;
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            assert_eq!(stored(&repository, ballot).await, 2);
        });
    }

    #[test]
    fn only_the_vote_connection_keeps_its_statement_journals_in_memory() {
        with_test_repository(|repository| async move {
            let temp_store = "pragma temp_store";
            let mut vote_connection = repository.vote_connection.lock().await;
            let vote_connection = vote_connection.as_mut().unwrap();
            // 2 is MEMORY: a batch's journal never becomes a file.
            let kept: i64 = sqlx::query_scalar(temp_store)
                .fetch_one(vote_connection)
                .await
                .unwrap();
            assert_eq!(kept, 2);
            // 0 is the default (a file): a large sort elsewhere, an export
            // say, spills to disk rather than growing the heap.
            let elsewhere: i64 = sqlx::query_scalar(temp_store)
                .fetch_one(&repository.pool)
                .await
                .unwrap();
            assert_eq!(elsewhere, 0);
        });
    }

    #[test]
    fn batches_run_on_the_vote_connection_which_keeps_small_ones_prepared() {
        with_test_repository(|repository| async move {
            repository.migrate().await.unwrap();
            let before = kept(&repository).await;
            // No such ballot: the batch still begins and reads on the
            // vote connection.
            let ballot = BallotId::from_bytes([9; 16]);
            let outcomes = repository.record_votes(&votes(ballot, 2)).await;
            assert!(
                outcomes
                    .iter()
                    .all(|outcome| matches!(outcome, Err(RecordVoteError::BallotNotFound)))
            );
            let small = kept(&repository).await;
            assert!(small > before, "the read is kept: {before} then {small}");
            // Its read takes one parameter per voter and per receipt, and
            // the ballot: over the limit, parsed and let go.
            let many = u8::try_from(MAX_CACHED_PARAMS / 2).unwrap();
            repository.record_votes(&votes(ballot, many)).await;
            assert_eq!(kept(&repository).await, small);
        });
    }
}
