//! A vote batch on SQLite: under `BEGIN IMMEDIATE`, one union read of the
//! ballot, its options, the stored votes of the batch's identities, the
//! batch's receipts the ballot already gave and its revoked invitations;
//! the core's [`decide_batch`](oponn_core::recording::decide_batch); then
//! one script of multi-row inserts and counter, receipt, invitation and
//! sequence updates. The `BEGIN` travels with the read and the `COMMIT`
//! with the script, on a connection of the batches' own: a batch is two
//! round trips to SQLite's thread (three when a batch of more than about
//! 245 votes reads in two statements). In a turn that carries several
//! ballots' batches, each ballot's script travels with the next ballot's
//! read: one round trip per ballot, and one for the last script.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use oponn_core::domain::OptionId;
use oponn_core::ports::{BoxError, NewVote, RepositoryError};
use oponn_core::recording::{BatchWrites, StoredVotes, identities};
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection};
use sqlx::{Arguments as _, ConnectOptions as _, Sqlite};
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
/// in an unknown state is never used again. (Its thread closes it
/// meanwhile: the next batch's new connection may wait for the write
/// lock in SQLite's busy handler until it has.)
pub(crate) struct SqliteBatch {
    /// Where the connection goes back once the transaction committed.
    slot: OwnedMutexGuard<Option<SqliteConnection>>,
    connection: SqliteConnection,
    /// Whether `BEGIN` was sent (with the first read).
    begun: bool,
    /// Whether `COMMIT` was sent and succeeded (with the last write).
    committed: bool,
    /// The last ballot's writes, not sent yet: they go ahead of the next
    /// ballot's read, in the same round trip, or with the `COMMIT`.
    pending: Script,
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
            pending: Script::default(),
        })
    }

    async fn commit_batch(batch: Self::Batch) -> Result<(), BoxError> {
        let SqliteBatch {
            mut slot,
            mut connection,
            begun,
            committed,
            mut pending,
        } = batch;
        if begun && !committed {
            // Its last ballot was not found: nothing carried the commit.
            // On failure the connection is dropped with its transaction.
            pending.push(format_args!("COMMIT"));
            pending.run(&mut connection).await.map_err(batch_error)?;
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
        let mut chunks = lookups.chunks(MAX_LOOKUPS_PER_READ);
        let first_lookups = chunks.next().unwrap_or_default();
        // Under the write lock one statement reads the ballot, its options
        // and choices, and what (the first few hundred of) the lookups
        // find. The transaction's BEGIN, or the previous ballot's writes,
        // go ahead of it in the same round trip: the read is written into
        // the pending script (empty before the BEGIN, which leads it).
        let mut read = std::mem::take(&mut batch.pending);
        read.sql.insert_str(0, batch.begin());
        read_statement(&mut read, ballot, true, first_lookups);
        let rows: Vec<BallotStateRow> = read
            .fetch_all(&mut batch.connection)
            .await
            .map_err(batch_error)?;
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
            let mut read = Script::default();
            read_statement(&mut read, ballot, false, chunk);
            for row in read
                .fetch_all::<BallotStateRow>(&mut batch.connection)
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
    /// is a wake-up, and the write lock is held meanwhile. The script
    /// waits to go ahead of the next ballot's read; the `last` write's
    /// ends with the `COMMIT` and goes at once.
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
        let mut script = Script::default();
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
        if !last {
            batch.pending = script;
            return Ok(());
        }
        script.push(format_args!("COMMIT"));
        script
            .run(&mut batch.connection)
            .await
            .map_err(batch_error)?;
        batch.committed = true;
        Ok(())
    }
}

/// A batch's statement error as the batch reports it: [`SEQUENCE_UPDATE`]
/// refusing a moved sequence says so.
fn batch_error(error: sqlx::Error) -> BoxError {
    if is_sequence_moved(&error) {
        "the ballot's sequence moved during the batch".into()
    } else {
        error.into()
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

/// A value bound to a [`Script`] parameter, as its writer has it.
#[derive(Clone, Copy)]
pub(super) enum Arg<'a> {
    Bytes(&'a [u8]),
    /// Bytes, or null.
    OptionalBytes(Option<&'a [u8]>),
    Text(&'a str),
    Int(i64),
    Bool(bool),
}

/// A value bound to a [`Script`] parameter, owned: a script may wait
/// for the next read and outlive what it was written from. (sqlx copies
/// every borrowed value on its way to SQLite's thread anyway.)
pub(super) enum Value {
    Bytes(Vec<u8>),
    OptionalBytes(Option<Vec<u8>>),
    Text(String),
    Int(i64),
    Bool(bool),
}

impl From<Arg<'_>> for Value {
    fn from(arg: Arg<'_>) -> Self {
        match arg {
            Arg::Bytes(bytes) => Self::Bytes(bytes.to_vec()),
            Arg::OptionalBytes(bytes) => Self::OptionalBytes(bytes.map(<[u8]>::to_vec)),
            Arg::Text(text) => Self::Text(text.to_owned()),
            Arg::Int(number) => Self::Int(number),
            Arg::Bool(flag) => Self::Bool(flag),
        }
    }
}

impl Value {
    /// Binds the value as the next of `arguments`.
    fn add_to(self, arguments: &mut SqliteArguments<'_>) -> Result<(), sqlx::Error> {
        match self {
            Self::Bytes(bytes) => add(arguments, bytes),
            Self::OptionalBytes(bytes) => add(arguments, bytes),
            Self::Text(text) => add(arguments, text),
            Self::Int(number) => add(arguments, number),
            Self::Bool(flag) => add(arguments, flag),
        }
    }
}

/// Binds `value` as the next of `arguments`.
fn add<'q, T>(arguments: &mut SqliteArguments<'q>, value: T) -> Result<(), sqlx::Error>
where
    T: 'q + sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>,
{
    arguments.add(value).map_err(sqlx::Error::Encode)
}

/// Several statements sent to SQLite as one script, in one round trip to
/// its thread. Parameters are plain `?`s, bound in order across the
/// statements: sqlx gives each statement the values after the previous
/// one's (each statement stays under SQLite's per-statement limit of
/// [`MAX_PARAMS`]).
#[derive(Default)]
pub(super) struct Script {
    sql: String,
    values: Vec<Value>,
}

impl Script {
    /// Binds the next parameters of the statement being built.
    pub(super) fn bind<'a>(&mut self, values: impl IntoIterator<Item = Arg<'a>>) {
        self.values.extend(values.into_iter().map(Value::from));
    }

    /// How many parameters the script binds.
    pub(super) fn params(&self) -> usize {
        self.values.len()
    }

    /// `(?, ?, …), …`: one values row per item, its values bound in order.
    pub(super) fn rows<'a, const N: usize>(
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

    /// The values, bound in order, and whether sqlx keeps the script
    /// prepared.
    fn arguments(self) -> Result<(String, SqliteArguments<'static>, bool), sqlx::Error> {
        let persistent = cached(self.params());
        let mut arguments = SqliteArguments::default();
        for value in self.values {
            value.add_to(&mut arguments)?;
        }
        Ok((self.sql, arguments, persistent))
    }

    /// Runs the statements.
    pub(super) async fn run(self, connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        if self.sql.is_empty() {
            return Ok(());
        }
        let (sql, arguments, persistent) = self.arguments()?;
        sqlx::query_with(&sql, arguments)
            .persistent(persistent)
            .execute(connection)
            .await?;
        Ok(())
    }

    /// Runs the statements, returning the rows they produce as `R`s.
    async fn fetch_all<R>(self, connection: &mut SqliteConnection) -> Result<Vec<R>, sqlx::Error>
    where
        R: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    {
        let (sql, arguments, persistent) = self.arguments()?;
        sqlx::query_as_with::<_, R, _>(&sql, arguments)
            .persistent(persistent)
            .fetch_all(connection)
            .await
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

/// `select … {from}?{after}` naming every column of a batch's read: the
/// expression `values` gives for it, else null; the `?` is the ballot's
/// id. Every select of the union names them all, so any of them may come
/// first.
fn state_select(values: &[(&str, &str)], from: &str, after: &'static str) -> Select {
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
    Select {
        before_ballot: format!("select {} {from}", columns.join(", ")),
        after_ballot: after,
    }
}

/// A select of a batch's read, around its ballot parameter; one that
/// looks lookups up ends in `in (`.
struct Select {
    before_ballot: String,
    after_ballot: &'static str,
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
    ballot: Select,
    /// The ballot's distinct choices with voters (whole).
    choices: Select,
    /// The votes the identities hold.
    held_votes: Select,
    /// The votes the identities are aliases of, with the alias.
    aliased_votes: Select,
    /// The receipts a counted vote has.
    counted_receipts: Select,
    /// The receipts a replaced vote had.
    retired_receipts: Select,
    /// The revoked invitations.
    revoked_invitations: Select,
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
        "from ballots b left join ballot_options o on o.ballot_id = b.id where b.id = ",
        "",
    ),
    choices: state_select(
        &[("vote_count", "vote_count"), ("choice", "choice")],
        "from ballot_choices where ballot_id = ",
        " and vote_count > 0",
    ),
    held_votes: state_select(
        &[
            ("option_id", "option_id"),
            ("choice", "choice"),
            ("voter_hash", "voter_hash"),
            ("receipt", "receipt"),
        ],
        "from votes where ballot_id = ",
        " and voter_hash in (",
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
         where a.ballot_id = ",
        " and a.alias_hash in (",
    ),
    counted_receipts: state_select(
        &[("receipt", "receipt")],
        "from votes where ballot_id = ",
        " and receipt in (",
    ),
    retired_receipts: state_select(
        &[("receipt", "receipt")],
        "from retired_receipts where ballot_id = ",
        " and receipt in (",
    ),
    revoked_invitations: state_select(
        &[("invitation_id", "invitation_id")],
        "from invitations where ballot_id = ",
        " and revoked_at is not null and invitation_id in (",
    ),
});

/// A batch's read: the ballot's own rows when `ballot_rows`, then the
/// selects for `lookups` (identities first, then receipts, then
/// invitations): the votes the identities hold, the votes they are
/// aliases of (with the alias), the receipts a counted or a replaced vote
/// has, and the revoked invitations. One `union all` statement, written
/// into `read`'s text after what it holds (a `BEGIN`, the previous
/// ballot's writes) and bound after its values.
///
/// Its parameters are plain `?`s, each bound as it is written (the
/// ballot's id once per select, a list for each of its selects): sqlx
/// numbers a script's plain parameters across its statements, but not
/// numbered ones, so a read numbered `?1`, `?2`, … could not follow other
/// statements in one round trip.
fn read_statement(read: &mut Script, ballot: &[u8], ballot_rows: bool, lookups: &[Lookup<'_>]) {
    let selects = &*STATE_SELECTS;
    let identities = lookups
        .iter()
        .take_while(|lookup| matches!(lookup, Lookup::Identity(_)))
        .count();
    let (identities, rest) = lookups.split_at(identities);
    let receipts = rest
        .iter()
        .take_while(|lookup| matches!(lookup, Lookup::Receipt(_)))
        .count();
    let (receipts, invitations) = rest.split_at(receipts);
    let mut union = UnionRead {
        script: read,
        started: false,
        ballot,
    };
    if ballot_rows {
        union.select(&selects.ballot, &[]);
        union.select(&selects.choices, &[]);
    }
    for (list, kinds) in [
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
        if !list.is_empty() {
            for select in kinds {
                union.select(select, list);
            }
        }
    }
}

/// Selects joined by `union all`, written into a [`Script`].
struct UnionRead<'s, 'a> {
    script: &'s mut Script,
    /// Whether a select was written yet.
    started: bool,
    ballot: &'a [u8],
}

impl UnionRead<'_, '_> {
    /// Adds `select` for the ballot, closing its `in (` list with
    /// `lookups` when it has one.
    fn select(&mut self, select: &Select, lookups: &[Lookup<'_>]) {
        let sql = &mut self.script.sql;
        if std::mem::replace(&mut self.started, true) {
            sql.push_str(" union all ");
        }
        sql.push_str(&select.before_ballot);
        sql.push('?');
        sql.push_str(select.after_ballot);
        self.script.bind([Arg::Bytes(self.ballot)]);
        if select.after_ballot.ends_with('(') {
            // Writing to a `String` cannot fail.
            let _ = write!(self.script.sql, "{})", Placeholders::list(lookups.len()));
            self.script.bind(lookups.iter().map(|lookup| match *lookup {
                Lookup::Identity(identity) => Arg::Bytes(identity),
                Lookup::Receipt(receipt) => Arg::Text(receipt),
                Lookup::Invitation(invitation) => Arg::Int(invitation),
            }));
        }
    }
}

/// Most bind parameters one statement takes: SQLite's limit before 3.32,
/// which builds may still set, so every chunk fits any build. A batch of
/// the service's size (256 votes) still fits one write statement of each
/// kind; its read, which binds each voter and receipt twice, takes two
/// statements past about 245 votes ([`MAX_LOOKUPS_PER_READ`]).
///
/// Statements whose text grows with the batch are run `persistent(false)`
/// past [`MAX_CACHED_PARAMS`]: cached, their many shapes would evict the
/// fixed statements from sqlx's per-connection statement cache.
pub(super) const MAX_PARAMS: usize = 999;

/// Most lookups one read takes: the read binds each identity and each
/// receipt twice (two selects list them) and the ballot's id once per
/// select (at most seven), so this many keep it within [`MAX_PARAMS`].
const MAX_LOOKUPS_PER_READ: usize = (MAX_PARAMS - 7) / 2;

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
    fn a_read_lists_each_lookup_and_binds_the_ballot_once_per_select() {
        let (ballot, identity) = ([7; 16], [1; 32]);
        let lookups = [
            Lookup::Identity(&identity),
            Lookup::Identity(&identity),
            Lookup::Receipt("R"),
            Lookup::Invitation(4),
        ];
        let mut read = Script::default();
        read_statement(&mut read, &ballot, false, &lookups);
        // Held and aliased votes list the identities, both receipt selects
        // the receipt; no ballot rows were asked for.
        assert_eq!(read.sql.matches("in (?, ?)").count(), 2);
        assert_eq!(read.sql.matches("in (?)").count(), 3);
        assert_eq!(read.sql.matches("ballot_id = ? and").count(), 5);
        assert_eq!(read.sql.matches(" union all ").count(), 4);
        assert!(!read.sql.contains("from ballots"));
        // The ballot once per select, then its list.
        assert_eq!(read.params(), 5 + 2 * 2 + 2 + 1);
        assert_eq!(read.sql.matches('?').count(), read.params());

        let mut with_ballot = Script::default();
        read_statement(&mut with_ballot, &ballot, true, &lookups[..1]);
        assert!(
            with_ballot
                .sql
                .starts_with(&STATE_SELECTS.ballot.before_ballot)
        );
        assert!(with_ballot.sql.contains("where b.id = ? union all "));
        assert!(with_ballot.sql.ends_with("alias_hash in (?)"));
        assert_eq!(with_ballot.sql.matches(" union all ").count(), 3);
        assert_eq!(with_ballot.params(), 2 + 2 * 2);
    }

    #[test]
    fn a_read_goes_after_the_statements_before_it() {
        let (ballot, identity) = ([7; 16], [1; 32]);
        let lookups = [Lookup::Identity(&identity), Lookup::Receipt("R")];
        let mut alone = Script::default();
        read_statement(&mut alone, &ballot, true, &lookups);
        let mut after = Script::default();
        let before = "BEGIN IMMEDIATE; insert into t values (?, ?);\n";
        after.sql.push_str(before);
        after.bind([Arg::Int(1), Arg::Int(2)]);
        read_statement(&mut after, &ballot, true, &lookups);
        assert_eq!(after.sql, format!("{before}{}", alone.sql));
        assert_eq!(after.params(), 2 + alone.params());
    }

    #[test]
    fn the_largest_read_stays_within_the_parameter_limit() {
        let identities: Vec<[u8; 32]> = (0..MAX_LOOKUPS_PER_READ)
            .map(|at| [u8::try_from(at % 256).unwrap(); 32])
            .collect();
        let lookups: Vec<Lookup<'_>> = identities
            .iter()
            .map(|identity| Lookup::Identity(identity))
            .collect();
        let mut read = Script::default();
        read_statement(&mut read, &[7; 16], true, &lookups);
        assert!(read.params() <= MAX_PARAMS, "{}", read.params());
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
    fn a_turn_of_several_ballots_commits_them_all() {
        with_test_repository(|repository| async move {
            let first = ballot(&repository).await;
            let second = ballot(&repository).await;
            let (on_first, on_second) = (votes(first, 2), votes(second, 3));
            let outcomes = crate::sql::record_batches(
                &repository,
                &[(&first, &on_first), (&second, &on_second)],
            )
            .await;
            assert!(outcomes.iter().flatten().all(Result::is_ok), "{outcomes:?}");
            assert_eq!(stored(&repository, first).await, 2);
            assert_eq!(stored(&repository, second).await, 3);
        });
    }

    #[test]
    fn a_ballot_twice_in_a_turn_reads_its_first_batch_before_deciding_the_second() {
        with_test_repository(|repository| async move {
            let ballot = ballot(&repository).await;
            // The same voter in two batches of one turn: the second must
            // find the first's vote, written in the same transaction.
            let (first, again) = (votes(ballot, 1), votes(ballot, 1));
            let outcomes =
                crate::sql::record_batches(&repository, &[(&ballot, &first), (&ballot, &again)])
                    .await;
            assert!(outcomes[0][0].is_ok(), "{outcomes:?}");
            assert!(
                matches!(outcomes[1][0], Err(RecordVoteError::AlreadyVoted)),
                "{outcomes:?}"
            );
            assert_eq!(stored(&repository, ballot).await, 1);
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
            // Its read takes two parameters per voter and per receipt, and
            // the ballot once per select: over the limit, parsed and let go.
            let many = u8::try_from(MAX_CACHED_PARAMS / 2).unwrap();
            repository.record_votes(&votes(ballot, many)).await;
            assert_eq!(kept(&repository).await, small);
        });
    }
}
