//! A vote batch on PostgreSQL: the ballot's row locked `FOR UPDATE`, one
//! union read of its options and the stored votes of the batch's
//! identities, the core's [`decide_batch`](oponn_core::recording::decide_batch),
//! then one statement of data-modifying CTEs over `unnest` arrays.

use oponn_core::domain::OptionId;
use oponn_core::ports::{BoxError, NewVote};
use oponn_core::recording::{BatchWrites, StoredVotes, VoteRow, identities};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use super::PostgresRepository;
use crate::sql::{
    BatchDialect, choice_text, corrupt, method, read_choice, read_option, read_vote, sql_count,
    stored_votes,
};

/// The ballot's row as a batch locks and reads it.
#[derive(sqlx::FromRow)]
struct BallotState {
    tally_seq: i64,
    closed_at: Option<OffsetDateTime>,
    method: String,
    min_choices: Option<i32>,
    max_choices: Option<i32>,
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
        let ballot_row: Option<BallotState> = sqlx::query_as(
            "select tally_seq, closed_at, method, min_choices, max_choices \
             from ballots where id = $1 for update",
        )
        .bind(ballot)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = ballot_row else {
            return Ok(None);
        };
        let method = method(
            &row.method,
            row.min_choices.map(i64::from),
            row.max_choices.map(i64::from),
        )?;
        let mut state = stored_votes(row.tally_seq, row.closed_at, method)?;
        // One round trip for the options and the stored votes every
        // identity of the batch's voters holds or is an alias of.
        let voters: Vec<&[u8]> = votes
            .iter()
            .flat_map(identities)
            .map(|identity| identity.as_bytes().as_slice())
            .collect();
        let rows: Vec<OptionOrVote> = sqlx::query_as(
            "select option_id, label_key, vote_count, null::text as choice, \
             null::bytea as voter_hash, null::bytea as alias_hash \
             from ballot_options where ballot_id = $1 \
             union all \
             select null, null, vote_count, choice, null, null from ballot_choices \
             where ballot_id = $1 and vote_count > 0 \
             union all \
             select option_id, null, null, choice, voter_hash, null from votes \
             where ballot_id = $1 and voter_hash = any($2) \
             union all \
             select v.option_id, null, null, v.choice, v.voter_hash, a.alias_hash \
             from vote_aliases a join votes v \
             on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
             where a.ballot_id = $1 and a.alias_hash = any($2)",
        )
        .bind(ballot)
        .bind(voters)
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            let option_id = row.option_id.map(i64::from);
            match (row.voter_hash, option_id, row.label_key, row.vote_count) {
                (Some(voter_hash), Some(option_id), _, _) => {
                    read_vote(
                        &mut state,
                        &voter_hash,
                        option_id,
                        row.choice.as_deref(),
                        row.alias_hash.as_deref(),
                    )?;
                }
                (None, Some(option_id), Some(label_key), Some(vote_count)) => {
                    read_option(&mut state, option_id, &label_key, vote_count)?;
                }
                (None, None, None, Some(voters)) => {
                    let choice = row.choice.as_deref().unwrap_or_default();
                    read_choice(&mut state, choice, voters)?;
                }
                _ => return Err(corrupt("ballot option").into()),
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
                 insert into votes (ballot_id, voter_hash, option_id, choice, cast_at) \
                 select $1, v.voter_hash, v.option_id, v.choice, v.cast_at \
                 from unnest($2::bytea[], $3::int[], $11::text[], $4::timestamptz[]) \
                 as v(voter_hash, option_id, choice, cast_at)), \
             changed as ( \
                 update votes set option_id = v.option_id, choice = v.choice, \
                 cast_at = v.cast_at \
                 from unnest($5::bytea[], $6::int[], $12::text[], $7::timestamptz[]) \
                 as v(voter_hash, option_id, choice, cast_at) \
                 where votes.ballot_id = $1 and votes.voter_hash = v.voter_hash), \
             counted as ( \
                 update ballot_options set vote_count = vote_count + c.delta \
                 from unnest($8::int[], $9::int8[]) as c(option_id, delta) \
                 where ballot_options.ballot_id = $1 \
                 and ballot_options.option_id = c.option_id), \
             chosen as ( \
                 insert into ballot_choices (ballot_id, choice, vote_count) \
                 select $1, c.choice, c.delta \
                 from unnest($13::text[], $14::int8[]) as c(choice, delta) \
                 on conflict (ballot_id, choice) do update \
                 set vote_count = ballot_choices.vote_count + excluded.vote_count) \
             update ballots set tally_seq = tally_seq + $10 where id = $1 returning tally_seq",
        )
        .bind(ballot)
        .bind(voter_hashes(&writes.new_votes))
        .bind(option_ids(
            writes.new_votes.iter().map(VoteRow::first_option),
        )?)
        .bind(cast_times(&writes.new_votes))
        .bind(voter_hashes(&writes.changed_votes))
        .bind(option_ids(
            writes.changed_votes.iter().map(VoteRow::first_option),
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
        .bind(choices(&writes.new_votes))
        .bind(choices(&writes.changed_votes))
        .bind(
            writes
                .choice_changes
                .iter()
                .map(|(choice, _)| choice_text(choice))
                .collect::<Vec<_>>(),
        )
        .bind(
            writes
                .choice_changes
                .iter()
                .map(|(_, by)| *by)
                .collect::<Vec<_>>(),
        )
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

/// An option of the ballot (label key and count set), a distinct choice
/// (choice and count set) or a voter's stored vote (voter hash set), as
/// one batch read returns them together.
#[derive(sqlx::FromRow)]
struct OptionOrVote {
    option_id: Option<i32>,
    label_key: Option<Vec<u8>>,
    vote_count: Option<i64>,
    /// A distinct choice, or a stored vote's whole choice.
    choice: Option<String>,
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

/// The choices of `rows` as stored, as a `text[]` parameter.
fn choices(rows: &[VoteRow]) -> Vec<String> {
    rows.iter().map(|row| choice_text(&row.choice)).collect()
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
