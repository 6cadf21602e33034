//! A vote batch on SQLite: under `BEGIN IMMEDIATE`, one union read of the
//! ballot, its options and the stored votes of the batch's identities;
//! the core's [`decide_batch`](oponn_core::recording::decide_batch); then
//! one script of multi-row inserts and counter and sequence updates.

use std::collections::BTreeSet;

use oponn_core::domain::OptionId;
use oponn_core::ports::{BoxError, NewVote, RepositoryError};
use oponn_core::recording::{BatchWrites, StoredVotes, identities};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, Sqlite, Transaction};

use super::{SqliteRepository, micros, optional_time};
use crate::sql::{
    BatchDialect, choice_text, method, option_number, read_choice, read_option, read_vote,
    sql_count, stored_votes,
};

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
            "select b.tally_seq, b.closed_at, b.method, b.min_choices, b.max_choices, \
             o.option_id, o.label_key, o.vote_count, null as choice, \
             null as voter_hash, null as alias_hash \
             from ballots b left join ballot_options o on o.ballot_id = b.id where b.id = ?1 \
             union all \
             select null, null, null, null, null, null, null, vote_count, choice, null, null \
             from ballot_choices where ballot_id = ?1 and vote_count > 0 \
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
            let sql = votes_of(chunk.len());
            let mut query = sqlx::query_as::<_, BallotStateRow>(&sql)
                .persistent(false)
                .bind(ballot);
            for voter in chunk {
                query = query.bind(*voter);
            }
            for row in query.fetch_all(&mut **tx).await? {
                row.read_into(&mut state)?;
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
            script.push(format!(
                "insert into ballot_options (ballot_id, option_id, label, label_key, write_in) \
                 values {rows}"
            ));
        }
        let new_votes: Vec<_> = writes.new_votes.iter().zip(&new_choices).collect();
        for chunk in new_votes.chunks(MAX_PARAMS / 5) {
            let rows = script.rows(chunk.iter().map(|(vote, choice)| {
                [
                    id,
                    Arg::Bytes(vote.voter.as_bytes().as_slice()),
                    Arg::Int(option_number(vote.first_option())),
                    Arg::Text(choice),
                    Arg::Int(micros(vote.cast_at)),
                ]
            }));
            script.push(format!(
                "insert into votes (ballot_id, voter_hash, option_id, choice, cast_at) \
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
            script.push(format!(
                "insert into vote_aliases (ballot_id, alias_hash, voter_hash) values {rows}"
            ));
        }
        for (vote, choice) in writes.changed_votes.iter().zip(&changed_choices) {
            script.bind([
                Arg::Int(option_number(vote.first_option())),
                Arg::Text(choice),
                Arg::Int(micros(vote.cast_at)),
                id,
                Arg::Bytes(vote.voter.as_bytes().as_slice()),
            ]);
            script.push(
                "update votes set option_id = ?, choice = ?, cast_at = ? \
                 where ballot_id = ? and voter_hash = ?"
                    .to_owned(),
            );
        }
        for chunk in choice_changes.chunks(MAX_PARAMS / 3) {
            let rows = script.rows(
                chunk
                    .iter()
                    .map(|(choice, by)| [id, Arg::Text(choice), Arg::Int(*by)]),
            );
            script.push(format!(
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
    Text(&'a str),
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
                Arg::Text(text) => query.bind(text),
                Arg::Int(number) => query.bind(number),
                Arg::Bool(flag) => query.bind(flag),
            };
        }
        query.fetch_all(&mut **tx).await
    }
}

/// A row of a batch's one read: the ballot's sequence, close time and
/// method with one of its options (none for a ballot without options), a
/// distinct choice with its voters (`choice` and `vote_count` set), or one
/// of the batch's voters' stored votes (`voter_hash` set).
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
}

impl BallotStateRow {
    /// Adds what this row holds (an option, a distinct choice, a stored
    /// vote) to `state`; the ballot's own row without an option adds
    /// nothing.
    fn read_into(self, state: &mut StoredVotes) -> Result<(), RepositoryError> {
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
                self.alias_hash.as_deref(),
            ),
            (None, Some(option_id), Some(label_key), Some(vote_count)) => {
                read_option(state, option_id, &label_key, vote_count)
            }
            (None, None, None, Some(voters)) => {
                read_choice(state, self.choice.as_deref().unwrap_or_default(), voters)
            }
            _ => Ok(()),
        }
    }
}

/// The rows of a batch's read for `count` identities (`?2`, `?3`, …): the
/// votes they hold, then the votes they are aliases of, with the alias.
fn votes_of(count: usize) -> String {
    let identities = numbered(2, count);
    format!(
        "select null as tally_seq, null as closed_at, null as method, null as min_choices, \
         null as max_choices, option_id, null as label_key, null as vote_count, choice, \
         voter_hash, null as alias_hash from votes \
         where ballot_id = ?1 and voter_hash in ({identities}) \
         union all \
         select null, null, null, null, null, v.option_id, null, null, v.choice, v.voter_hash, \
         a.alias_hash from vote_aliases a join votes v \
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
