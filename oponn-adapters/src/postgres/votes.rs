//! A vote batch on PostgreSQL: the ballot's row locked `FOR UPDATE`, one
//! union read of its options, the stored votes of the batch's identities,
//! the batch's receipts the ballot already gave and its revoked
//! invitations, the core's [`decide_batch`](oponn_core::recording::decide_batch),
//! then one statement of data-modifying CTEs over `unnest` arrays.

use oponn_core::domain::{OptionId, ReceiptCode};
use oponn_core::ports::{BoxError, NewVote, RepositoryError};
use oponn_core::recording::{BatchWrites, StoredVotes, VoteRow, identities};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use super::{PostgresRepository, invitation_number};
use crate::sql::{
    BatchDialect, choice_text, corrupt, first_uses, method, read_choice, read_option,
    read_revoked_invitation, read_taken_receipt, read_vote, sql_count, stored_votes,
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
    type Batch = Transaction<'static, Postgres>;
    // `option_id` is an `int` column.
    const MAX_OPTION_ID: OptionId = OptionId::new(i32::MAX.unsigned_abs());

    async fn begin_batch(&self) -> Result<Self::Batch, sqlx::Error> {
        // The ballot row is locked by the first read (`for update`).
        self.pool.begin().await
    }

    async fn commit_batch(tx: Self::Batch) -> Result<(), BoxError> {
        Ok(tx.commit().await?)
    }

    /// Locks the ballot's row, then reads its sequence, its options and the
    /// stored votes of the batch's voters; `None` when there is no such
    /// ballot.
    async fn batch_state(
        tx: &mut Self::Batch,
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
        // One round trip for the options, the stored votes every identity
        // of the batch's voters holds or is an alias of, the batch's
        // receipts the ballot already gave (to a counted or a replaced
        // vote), and its invitations that were revoked. Revocations take
        // the ballot's row lock too, so none lands between this read and
        // the commit.
        let voters: Vec<&[u8]> = votes
            .iter()
            .flat_map(identities)
            .map(|identity| identity.as_bytes().as_slice())
            .collect();
        let receipts: Vec<&str> = votes.iter().map(|vote| vote.receipt.as_str()).collect();
        let invitations: Vec<i32> = votes
            .iter()
            .filter_map(|vote| vote.invitation)
            .filter_map(invitation_number)
            .collect();
        let rows: Vec<StateRow> = sqlx::query_as(
            "select option_id, label_key, vote_count, null::text as choice, \
             null::bytea as voter_hash, null::bytea as alias_hash, null::text as receipt, \
             null::int as invitation_id \
             from ballot_options where ballot_id = $1 \
             union all \
             select null, null, vote_count, choice, null, null, null, null from ballot_choices \
             where ballot_id = $1 and vote_count > 0 \
             union all \
             select option_id, null, null, choice, voter_hash, null, receipt, null from votes \
             where ballot_id = $1 and voter_hash = any($2) \
             union all \
             select v.option_id, null, null, v.choice, v.voter_hash, a.alias_hash, v.receipt, \
             null from vote_aliases a join votes v \
             on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
             where a.ballot_id = $1 and a.alias_hash = any($2) \
             union all \
             select null, null, null, null, null, null, receipt, null from votes \
             where ballot_id = $1 and receipt = any($3) \
             union all \
             select null, null, null, null, null, null, receipt, null from retired_receipts \
             where ballot_id = $1 and receipt = any($3) \
             union all \
             select null, null, null, null, null, null, null, invitation_id from invitations \
             where ballot_id = $1 and invitation_id = any($4) and revoked_at is not null",
        )
        .bind(ballot)
        .bind(voters)
        .bind(receipts)
        .bind(invitations)
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            row.read_into(&mut state)?;
        }
        Ok(Some(state))
    }

    /// Writes a decided batch, each kind of row in one `unnest` statement
    /// (skipped when there is none), then the sequence once.
    async fn write_batch(
        tx: &mut Self::Batch,
        ballot: &[u8],
        writes: &BatchWrites<'_>,
        // Committed by `commit_batch`: one round trip either way.
        _last: bool,
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
        // A batch may give a receipt without moving the sequence (the
        // same choice again on a vote cast before receipts existed).
        if !writes.new_votes.is_empty() || !writes.changed_votes.is_empty() {
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
    /// Writes a batch's votes with their receipts, the receipts they
    /// replaced, the invitations they used, the counters and the sequence,
    /// when it moved any vote.
    async fn write_votes(
        tx: &mut Transaction<'_, Postgres>,
        ballot: &[u8],
        writes: &BatchWrites<'_>,
    ) -> Result<(), BoxError> {
        let used_invitations: Vec<(i32, OffsetDateTime)> = first_uses(&writes.used_invitations)
            .into_iter()
            .filter_map(|(invitation, at)| Some((invitation_number(invitation)?, at)))
            .collect();
        // Votes, receipts, invitations, counters and the sequence in one
        // statement: its parts touch different rows, and the foreign keys
        // are checked once it has run whole.
        let tally_seq: Option<i64> = sqlx::query_scalar(
            "with inserted as ( \
                 insert into votes (ballot_id, voter_hash, option_id, choice, cast_at, receipt) \
                 select $1, v.voter_hash, v.option_id, v.choice, v.cast_at, v.receipt \
                 from unnest($2::bytea[], $3::int[], $11::text[], $4::timestamptz[], \
                 $15::text[]) as v(voter_hash, option_id, choice, cast_at, receipt)), \
             changed as ( \
                 update votes set option_id = v.option_id, choice = v.choice, \
                 cast_at = v.cast_at, receipt = v.receipt \
                 from unnest($5::bytea[], $6::int[], $12::text[], $7::timestamptz[], \
                 $16::text[]) as v(voter_hash, option_id, choice, cast_at, receipt) \
                 where votes.ballot_id = $1 and votes.voter_hash = v.voter_hash), \
             retired as ( \
                 insert into retired_receipts (ballot_id, receipt) \
                 select $1, r.receipt from unnest($17::text[]) as r(receipt)), \
             used as ( \
                 update invitations set used_at = u.used_at \
                 from unnest($18::int[], $19::timestamptz[]) as u(invitation_id, used_at) \
                 where invitations.ballot_id = $1 \
                 and invitations.invitation_id = u.invitation_id \
                 and invitations.used_at is null), \
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
        .bind(receipts(&writes.new_votes))
        .bind(receipts(&writes.changed_votes))
        .bind(
            writes
                .retired_receipts
                .iter()
                .map(ReceiptCode::as_str)
                .collect::<Vec<_>>(),
        )
        .bind(
            used_invitations
                .iter()
                .map(|&(invitation, _)| invitation)
                .collect::<Vec<_>>(),
        )
        .bind(
            used_invitations
                .iter()
                .map(|&(_, at)| at)
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
/// (choice and count set), a voter's stored vote (voter hash set), a
/// receipt of the batch the ballot already gave (receipt alone set) or a
/// revoked invitation of the batch (its number set), as one batch read
/// returns them together.
#[derive(sqlx::FromRow)]
struct StateRow {
    option_id: Option<i32>,
    label_key: Option<Vec<u8>>,
    vote_count: Option<i64>,
    /// A distinct choice, or a stored vote's whole choice.
    choice: Option<String>,
    voter_hash: Option<Vec<u8>>,
    /// The identity read, when it is an alias of `voter_hash`.
    alias_hash: Option<Vec<u8>>,
    /// A stored vote's receipt (none before receipts), or a taken receipt.
    receipt: Option<String>,
    /// A revoked invitation's number.
    invitation_id: Option<i32>,
}

impl StateRow {
    /// Adds what this row holds to `state`.
    fn read_into(self, state: &mut StoredVotes) -> Result<(), RepositoryError> {
        let option_id = self.option_id.map(i64::from);
        match (
            self.voter_hash,
            option_id,
            self.label_key,
            self.vote_count,
            self.receipt,
            self.invitation_id,
        ) {
            (Some(voter_hash), Some(option_id), _, _, receipt, None) => read_vote(
                state,
                &voter_hash,
                option_id,
                self.choice.as_deref(),
                receipt.as_deref(),
                self.alias_hash.as_deref(),
            ),
            (None, Some(option_id), Some(label_key), Some(vote_count), None, None) => {
                read_option(state, option_id, &label_key, vote_count)
            }
            (None, None, None, Some(voters), None, None) => {
                read_choice(state, self.choice.as_deref().unwrap_or_default(), voters)
            }
            (None, None, None, None, Some(receipt), None) => read_taken_receipt(state, &receipt),
            (None, None, None, None, None, Some(invitation)) => {
                read_revoked_invitation(state, i64::from(invitation))
            }
            _ => Err(corrupt("ballot state row")),
        }
    }
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

/// The receipts of `rows`, as a `text[]` parameter.
fn receipts(rows: &[VoteRow]) -> Vec<&str> {
    rows.iter().map(|row| row.receipt.as_str()).collect()
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
