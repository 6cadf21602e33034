//! What the SQL adapters share: row conversions, error mapping, setup errors.

use std::collections::{BTreeMap, HashMap};

use oponn_core::crypto::{LabelKey, Sealed, WrappedKey};
use oponn_core::domain::{
    BallotId, BallotSettings, Eligibility, OptionId, OwnerId, ResultsVisibility, Tally, VoterHash,
};
use oponn_core::ports::{
    BallotRecord, BoxError, NewVote, OptionRecord, RecordVoteError, RepositoryError, VoteTarget,
};
use time::OffsetDateTime;

/// A ballot row, with its wrapped key, as both dialects read it.
pub(crate) struct BallotRow {
    pub(crate) id: Vec<u8>,
    pub(crate) owner_id: Option<String>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) starts_at: OffsetDateTime,
    pub(crate) ends_at: Option<OffsetDateTime>,
    pub(crate) closed_at: Option<OffsetDateTime>,
    pub(crate) allow_write_in: bool,
    pub(crate) measure: Vec<u8>,
    pub(crate) wrapped_key: Vec<u8>,
    pub(crate) eligibility: String,
    pub(crate) allow_vote_change: bool,
    pub(crate) results_visibility: String,
}

/// An option row, as both dialects read it.
#[derive(sqlx::FromRow)]
pub(crate) struct OptionRow {
    pub(crate) option_id: i64,
    pub(crate) label: Vec<u8>,
    pub(crate) label_key: Vec<u8>,
    pub(crate) write_in: bool,
}

/// A row that cannot be what this schema wrote: reported as unavailable
/// storage rather than a panic.
pub(crate) fn corrupt(what: &str) -> RepositoryError {
    RepositoryError::Unavailable(format!("corrupt row: {what}").into())
}

/// An account-storage failure.
pub(crate) fn account_unavailable(error: sqlx::Error) -> oponn_core::ports::AccountError {
    oponn_core::ports::AccountError::Unavailable(Box::new(error))
}

pub(crate) fn unavailable(error: sqlx::Error) -> RepositoryError {
    RepositoryError::Unavailable(Box::new(error))
}

pub(crate) fn ballot_id(bytes: &[u8]) -> Result<BallotId, RepositoryError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| corrupt("ballot id"))?;
    Ok(BallotId::from_bytes(bytes))
}

pub(crate) fn option_id(number: i64) -> Result<OptionId, RepositoryError> {
    u32::try_from(number)
        .map(OptionId::new)
        .map_err(|_| corrupt("option id"))
}

pub(crate) fn seq(number: i64) -> Result<u64, RepositoryError> {
    u64::try_from(number).map_err(|_| corrupt("sequence"))
}

pub(crate) fn option_record(row: OptionRow) -> Result<OptionRecord, RepositoryError> {
    let label_key: [u8; 32] = row
        .label_key
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("label key"))?;
    Ok(OptionRecord {
        id: option_id(row.option_id)?,
        label: Sealed::from_bytes(row.label),
        label_key: LabelKey::from_bytes(label_key),
        write_in: row.write_in,
    })
}

pub(crate) fn ballot_record(
    row: BallotRow,
    options: Vec<OptionRow>,
) -> Result<BallotRecord, RepositoryError> {
    Ok(BallotRecord {
        id: ballot_id(&row.id)?,
        owner: row.owner_id.map(OwnerId::new),
        created_at: row.created_at,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        closed_at: row.closed_at,
        allow_write_in: row.allow_write_in,
        settings: BallotSettings {
            eligibility: Eligibility::parse(&row.eligibility)
                .ok_or_else(|| corrupt("eligibility"))?,
            allow_vote_change: row.allow_vote_change,
            results_visibility: ResultsVisibility::parse(&row.results_visibility)
                .ok_or_else(|| corrupt("results visibility"))?,
        },
        wrapped_key: WrappedKey::from_bytes(row.wrapped_key),
        measure: Sealed::from_bytes(row.measure),
        options: options
            .into_iter()
            .map(option_record)
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) fn tally(
    tally_seq: i64,
    counts: impl IntoIterator<Item = (i64, i64)>,
) -> Result<Tally, RepositoryError> {
    let counts = counts
        .into_iter()
        .map(|(option, count)| Ok((option_id(option)?, seq(count)?)))
        .collect::<Result<Vec<_>, RepositoryError>>()?;
    Ok(Tally::new(seq(tally_seq)?, counts))
}

/// The receipt of a recorded vote, from the rows as read back: the option
/// it counts toward, the ballot's sequence and counts after it, and the
/// option it moved from when it changed an earlier vote.
pub(crate) fn recorded(
    option: i64,
    tally_seq: i64,
    counts: Vec<(i64, i64)>,
    changed_from: Option<i64>,
) -> Result<oponn_core::ports::RecordedVote, oponn_core::ports::RecordVoteError> {
    let outage = |error: RepositoryError| match error {
        RepositoryError::Unavailable(source) => {
            oponn_core::ports::RecordVoteError::Unavailable(source)
        }
        other => oponn_core::ports::RecordVoteError::Unavailable(Box::new(other)),
    };
    Ok(oponn_core::ports::RecordedVote {
        option_id: option_id(option).map_err(outage)?,
        tally: tally(tally_seq, counts).map_err(outage)?,
        changed_from: changed_from.map(option_id).transpose().map_err(outage)?,
    })
}

/// Every vote of a batch failed as one: the same cause, told to each.
pub(crate) fn batch_failed(
    count: usize,
    cause: &dyn std::fmt::Display,
) -> Vec<Result<oponn_core::ports::RecordedVote, oponn_core::ports::RecordVoteError>> {
    (0..count)
        .map(|_| {
            Err(oponn_core::ports::RecordVoteError::Unavailable(
                format!("the batch was not recorded: {cause}").into(),
            ))
        })
        .collect()
}

/// One vote's outcome, as `record_votes` answers it.
pub(crate) type VoteOutcome =
    Result<oponn_core::ports::RecordedVote, oponn_core::ports::RecordVoteError>;

/// A ballot as a batch of votes reads it once, under the write lock, and
/// then updates in memory as it decides each vote in order: what makes a
/// batch cost a constant number of statements, whatever its size.
pub(crate) struct BallotState {
    /// The ballot's sequence number: one per recorded vote.
    tally_seq: i64,
    /// When the ballot was closed, if it was.
    closed_at: Option<OffsetDateTime>,
    /// Each option's vote count, by option id (ordered, as receipts list them).
    counts: BTreeMap<i64, i64>,
    /// Each option's id by label key: where an equal write-in merges.
    by_label: HashMap<Vec<u8>, i64>,
    /// The option of each stored vote the batch's voters hold or are
    /// aliases of, by the identity holding it.
    votes: HashMap<VoterHash, i64>,
    /// Each of the batch's identities that is an alias, to the identity
    /// holding its vote.
    aliases: HashMap<VoterHash, VoterHash>,
}

impl BallotState {
    /// A ballot at sequence `tally_seq`, closed at `closed_at` if it was,
    /// before its options and votes are added.
    ///
    /// # Errors
    /// A corrupt-row outage when the sequence is negative.
    pub(crate) fn new(
        tally_seq: i64,
        closed_at: Option<OffsetDateTime>,
    ) -> Result<Self, RepositoryError> {
        seq(tally_seq)?;
        Ok(Self {
            tally_seq,
            closed_at,
            counts: BTreeMap::new(),
            by_label: HashMap::new(),
            votes: HashMap::new(),
            aliases: HashMap::new(),
        })
    }

    /// Adds one of the ballot's options, as read.
    ///
    /// # Errors
    /// A corrupt-row outage when the id or the count cannot be one.
    pub(crate) fn add_option(
        &mut self,
        option: i64,
        label_key: Vec<u8>,
        vote_count: i64,
    ) -> Result<(), RepositoryError> {
        option_id(option)?;
        if vote_count < 0 {
            return Err(corrupt("vote count"));
        }
        self.counts.insert(option, vote_count);
        self.by_label.insert(label_key, option);
        Ok(())
    }

    /// Adds a stored vote one of the batch's voters holds or is an alias
    /// of, as read.
    ///
    /// # Errors
    /// A corrupt-row outage when the hash or the option id cannot be one.
    pub(crate) fn add_vote(
        &mut self,
        voter_hash: Vec<u8>,
        option: i64,
    ) -> Result<(), RepositoryError> {
        option_id(option)?;
        self.votes.insert(voter_hash_of(voter_hash)?, option);
        Ok(())
    }

    /// Adds a stored alias: `alias`, one of the batch's identities, leads
    /// to the vote `voter_hash` holds.
    ///
    /// # Errors
    /// A corrupt-row outage when either hash cannot be one.
    pub(crate) fn add_alias(
        &mut self,
        alias: Vec<u8>,
        voter_hash: Vec<u8>,
    ) -> Result<(), RepositoryError> {
        self.aliases
            .insert(voter_hash_of(alias)?, voter_hash_of(voter_hash)?);
        Ok(())
    }

    /// The identity holding `identity`'s vote: itself, or the one it is an
    /// alias of; `None` when it has no vote.
    fn holder(&self, identity: &VoterHash) -> Option<VoterHash> {
        if self.votes.contains_key(identity) {
            Some(*identity)
        } else {
            self.aliases.get(identity).copied()
        }
    }

    /// The `(option, count)` pairs a receipt shows: options with votes.
    fn tally_counts(&self) -> Vec<(i64, i64)> {
        self.counts
            .iter()
            .filter(|&(_, &count)| count > 0)
            .map(|(&option, &count)| (option, count))
            .collect()
    }

    /// Checks `vote` against the state, by the port's rules and in their
    /// order, without changing anything.
    fn check<'a>(
        &self,
        vote: &'a NewVote,
        max_option_id: i64,
    ) -> Result<Decision<'a>, RecordVoteError> {
        if self.closed_at.is_some_and(|closed| closed <= vote.cast_at) {
            return Err(RecordVoteError::BallotClosed);
        }
        // The voter's vote is the one the first identity with a vote holds.
        let holder = identities(vote)
            .find_map(|identity| self.holder(identity))
            .unwrap_or(vote.voter);
        let previous = self.votes.get(&holder).copied();
        if previous.is_some() && !vote.allow_change {
            return Err(RecordVoteError::AlreadyVoted);
        }
        let (option_id, added) = match &vote.target {
            VoteTarget::Existing(option) => {
                let id = i64::from(option.get());
                if !self.counts.contains_key(&id) {
                    return Err(RecordVoteError::UnknownOption);
                }
                (id, None)
            }
            VoteTarget::WriteIn(option) => {
                match self.by_label.get(option.label_key.as_bytes().as_slice()) {
                    Some(&existing) => (existing, None),
                    None => {
                        let id = i64::from(option.id.get());
                        if id > max_option_id || self.counts.contains_key(&id) {
                            return Err(RecordVoteError::OptionIdTaken);
                        }
                        (id, Some(option))
                    }
                }
            }
        };
        Ok(Decision {
            option_id,
            previous,
            added,
            holder,
        })
    }
}

/// A vote the state accepts: where it counts, where it moves from, and the
/// write-in option it adds, if any.
struct Decision<'a> {
    /// The option the vote counts toward.
    option_id: i64,
    /// The option the voter's vote counts toward now, if they have one.
    previous: Option<i64>,
    /// The write-in the vote adds as a new option.
    added: Option<&'a OptionRecord>,
    /// The identity holding the voter's vote (`vote.voter` for a new one).
    holder: VoterHash,
}

/// Every identity `vote`'s voter presents: the voter first, then aliases.
pub(crate) fn identities(vote: &NewVote) -> impl Iterator<Item = &VoterHash> {
    std::iter::once(&vote.voter).chain(&vote.aliases)
}

/// A stored voter or alias hash.
fn voter_hash_of(bytes: Vec<u8>) -> Result<VoterHash, RepositoryError> {
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("voter hash"))?;
    Ok(VoterHash::from_bytes(bytes))
}

/// One voter's vote row as the batch leaves it.
pub(crate) struct VoteRow {
    /// The identity holding the vote.
    pub(crate) voter: VoterHash,
    /// The option their vote now counts toward.
    pub(crate) option_id: i64,
    /// When the vote that put it there was cast.
    pub(crate) cast_at: OffsetDateTime,
}

/// What a decided batch writes, in this order (options before the votes
/// that reference them).
pub(crate) struct BatchWrites<'a> {
    /// Write-ins that became options, in the order they were added.
    pub(crate) new_options: Vec<&'a OptionRecord>,
    /// Final votes of voters who had none before the batch.
    pub(crate) new_votes: Vec<VoteRow>,
    /// Final votes of voters who had one before the batch and changed it.
    pub(crate) changed_votes: Vec<VoteRow>,
    /// `(alias, holder)`: identities linked to a vote by the batch, to be
    /// written after the votes they point at.
    pub(crate) new_aliases: Vec<(VoterHash, VoterHash)>,
    /// `(option, net change)` for every option whose count moved.
    pub(crate) count_changes: Vec<(i64, i64)>,
    /// How many votes were recorded: how far the sequence advances.
    pub(crate) recorded: i64,
    /// The ballot's sequence after the batch, to check the write against.
    pub(crate) tally_seq: i64,
}

/// Decides every vote of a batch in order against `state`, exactly as if
/// each were recorded alone, and gathers what the batch must write.
///
/// `max_option_id` is the largest option id the dialect stores: a new
/// write-in above it is refused as taken, as its insert would fail.
///
/// # Errors
/// [`RecordVoteError::Unavailable`] when a receipt cannot be built (a value
/// out of range): the whole batch then fails, and nothing of it may be
/// written.
pub(crate) fn decide_batch<'a>(
    mut state: BallotState,
    votes: &'a [NewVote],
    max_option_id: i64,
) -> Result<(Vec<VoteOutcome>, BatchWrites<'a>), RecordVoteError> {
    let mut outcomes = Vec::with_capacity(votes.len());
    let mut new_options = Vec::new();
    // Each moved voter's row, with whether they had a vote before the batch.
    let mut rows: Vec<(VoteRow, bool)> = Vec::new();
    let mut row_of: HashMap<VoterHash, usize> = HashMap::new();
    let mut new_aliases = Vec::new();
    let mut changes: BTreeMap<i64, i64> = BTreeMap::new();
    let mut recorded_votes = 0;
    for vote in votes {
        let decision = match state.check(vote, max_option_id) {
            Ok(decision) => decision,
            Err(refusal) => {
                outcomes.push(Err(refusal));
                continue;
            }
        };
        let Decision {
            option_id,
            previous,
            added,
            holder,
        } = decision;
        // Every identity presented now leads to the vote, whatever follows.
        for identity in identities(vote) {
            if *identity != holder && state.holder(identity).is_none() {
                state.aliases.insert(*identity, holder);
                new_aliases.push((*identity, holder));
            }
        }
        if let Some(option) = added {
            state.counts.insert(option_id, 0);
            state
                .by_label
                .insert(option.label_key.as_bytes().to_vec(), option_id);
            new_options.push(option);
        }
        if previous == Some(option_id) {
            // The same choice again: nothing moves.
            let receipt = recorded(option_id, state.tally_seq, state.tally_counts(), None)?;
            outcomes.push(Ok(receipt));
            continue;
        }
        if let Some(old) = previous {
            *state.counts.entry(old).or_insert(0) -= 1;
            *changes.entry(old).or_insert(0) -= 1;
        }
        *state.counts.entry(option_id).or_insert(0) += 1;
        *changes.entry(option_id).or_insert(0) += 1;
        state.votes.insert(holder, option_id);
        state.tally_seq += 1;
        recorded_votes += 1;
        match row_of.get(&holder) {
            Some(&row) => {
                if let Some((row, _)) = rows.get_mut(row) {
                    row.option_id = option_id;
                    row.cast_at = vote.cast_at;
                }
            }
            None => {
                // The voter's first move in the batch: `previous` is still
                // what storage holds.
                row_of.insert(holder, rows.len());
                let row = VoteRow {
                    voter: holder,
                    option_id,
                    cast_at: vote.cast_at,
                };
                rows.push((row, previous.is_some()));
            }
        }
        let receipt = recorded(option_id, state.tally_seq, state.tally_counts(), previous)?;
        outcomes.push(Ok(receipt));
    }
    let (changed_votes, new_votes): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|&(_, stored)| stored);
    let writes = BatchWrites {
        new_options,
        new_votes: new_votes.into_iter().map(|(row, _)| row).collect(),
        changed_votes: changed_votes.into_iter().map(|(row, _)| row).collect(),
        new_aliases,
        count_changes: changes.into_iter().filter(|&(_, by)| by != 0).collect(),
        recorded: recorded_votes,
        tally_seq: state.tally_seq,
    };
    Ok((outcomes, writes))
}

/// How one SQL dialect reads and writes a vote batch; [`record_batch`]
/// runs what the dialects share around them.
pub(crate) trait BatchDialect {
    /// The dialect's sqlx database.
    type Db: sqlx::Database;
    /// The largest option id the schema stores: a new write-in above it is
    /// refused as taken.
    const MAX_OPTION_ID: i64;

    /// Begins a transaction that may write the ballot's votes.
    fn begin_batch(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'_, Self::Db>, sqlx::Error>> + Send;

    /// Reads what deciding the batch needs (the ballot's sequence and
    /// close, its options, the stored votes every identity of the batch's
    /// voters holds or is an alias of, and those aliases) inside `tx`;
    /// `None` when there is no such ballot.
    fn batch_state(
        tx: &mut sqlx::Transaction<'_, Self::Db>,
        ballot: &[u8],
        votes: &[NewVote],
    ) -> impl Future<Output = Result<Option<BallotState>, BoxError>> + Send;

    /// Writes what a decided batch changed inside `tx`.
    fn write_batch(
        tx: &mut sqlx::Transaction<'_, Self::Db>,
        ballot: &[u8],
        writes: &BatchWrites<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Records one vote: a batch of one, so one path serves both.
pub(crate) async fn record_one<D: BatchDialect + Sync>(
    dialect: &D,
    vote: &NewVote,
) -> Result<oponn_core::ports::RecordedVote, RecordVoteError> {
    record_batch(dialect, &vote.ballot_id, std::slice::from_ref(vote))
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            Err(RecordVoteError::Unavailable(
                "the vote got no outcome".into(),
            ))
        })
}

/// Records `votes`, in order: as one batch when they are all on one
/// ballot (as the service sends them), else each alone.
pub(crate) async fn record_many<D: BatchDialect + Sync>(
    dialect: &D,
    votes: &[NewVote],
) -> Vec<VoteOutcome> {
    if votes.is_empty() {
        return Vec::new();
    }
    if let Some(ballot) = one_ballot(votes) {
        return record_batch(dialect, &ballot, votes).await;
    }
    let mut outcomes = Vec::with_capacity(votes.len());
    for vote in votes {
        outcomes.push(record_one(dialect, vote).await);
    }
    outcomes
}

/// Records `votes` on `ballot` in one transaction: one read, every
/// vote decided in memory, one write, one commit (so one flush to disk for
/// the batch). Nothing is acknowledged before the commit; if anything
/// fails, every vote of the batch gets the outage error and the dropped
/// transaction rolls back whatever was written.
async fn record_batch<D: BatchDialect + Sync>(
    dialect: &D,
    ballot: &BallotId,
    votes: &[NewVote],
) -> Vec<VoteOutcome> {
    let mut tx = match dialect.begin_batch().await {
        Ok(tx) => tx,
        Err(error) => return batch_failed(votes.len(), &error),
    };
    let id = ballot.as_bytes().as_slice();
    let decided: Result<Vec<VoteOutcome>, BoxError> = async {
        let Some(state) = D::batch_state(&mut tx, id, votes).await? else {
            return Ok(votes
                .iter()
                .map(|_| Err(RecordVoteError::BallotNotFound))
                .collect());
        };
        let (outcomes, writes) = decide_batch(state, votes, D::MAX_OPTION_ID)?;
        D::write_batch(&mut tx, id, &writes).await?;
        Ok(outcomes)
    }
    .await;
    let outcomes = match decided {
        Ok(outcomes) => outcomes,
        Err(error) => return batch_failed(votes.len(), &error),
    };
    match tx.commit().await {
        Ok(()) => outcomes,
        Err(error) => batch_failed(votes.len(), &error),
    }
}

/// The ballot every vote of `votes` is on, or `None` when they are on
/// several (or there are none): only a one-ballot batch is read and
/// decided as one.
fn one_ballot(votes: &[NewVote]) -> Option<BallotId> {
    let first = votes.first()?.ballot_id;
    votes
        .iter()
        .all(|vote| vote.ballot_id == first)
        .then_some(first)
}

/// Why a SQL repository could not be opened or brought up to date.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlSetupError {
    /// The database cannot be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("applying migrations failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Reading which migrations were applied failed.
    #[error("reading applied migrations failed: {0}")]
    Inspect(#[source] sqlx::Error),
}

/// The migrations of `migrator` not yet applied, given the applied versions.
pub(crate) fn pending(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Vec<String> {
    migrator
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| format!("{} {}", migration.version, migration.description))
        .collect()
}

/// An account row as both dialects read it.
pub(crate) fn account(
    (id, email, created_at): (String, String, OffsetDateTime),
) -> Result<oponn_core::domain::Account, oponn_core::ports::AccountError> {
    let email = oponn_core::domain::Email::parse(&email).map_err(|_| {
        oponn_core::ports::AccountError::Unavailable("corrupt row: account email".into())
    })?;
    Ok(oponn_core::domain::Account::new(
        oponn_core::domain::AccountId::new(id),
        email,
        created_at,
    ))
}

#[cfg(test)]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use oponn_core::crypto::{LabelKey, Sealed};
    use oponn_core::domain::{BallotId, OptionId, VoterHash};
    use oponn_core::ports::{NewVote, OptionRecord, RecordVoteError, VoteTarget};
    use time::OffsetDateTime;

    use super::{BallotState, decide_batch, one_ballot};

    fn ballot() -> BallotId {
        BallotId::from_bytes([7; 16])
    }

    fn voter(n: u8) -> VoterHash {
        VoterHash::from_bytes([n; 32])
    }

    fn vote(voter_n: u8, target: VoteTarget, allow_change: bool) -> NewVote {
        NewVote {
            ballot_id: ballot(),
            voter: voter(voter_n),
            aliases: Vec::new(),
            target,
            cast_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i64::from(voter_n)),
            allow_change,
        }
    }

    fn to(option: u32, allow_change: bool) -> impl Fn(u8) -> NewVote {
        move |n| vote(n, VoteTarget::Existing(OptionId::new(option)), allow_change)
    }

    fn write_in(id: u32, key: u8) -> VoteTarget {
        VoteTarget::WriteIn(OptionRecord {
            id: OptionId::new(id),
            label: Sealed::from_bytes(vec![key; 8]),
            label_key: LabelKey::from_bytes([key; 32]),
            write_in: true,
        })
    }

    /// Options 1 and 2 (label keys 1 and 2) with 3 and 1 votes, sequence 4;
    /// voter 9 voted for option 2.
    fn state() -> BallotState {
        let mut state = BallotState::new(4, None).unwrap();
        state.add_option(1, vec![1; 32], 3).unwrap();
        state.add_option(2, vec![2; 32], 1).unwrap();
        state.add_vote(voter(9).as_bytes().to_vec(), 2).unwrap();
        state
    }

    #[test]
    fn a_voter_new_to_the_ballot_is_one_insert_of_their_last_choice() {
        let votes = [to(1, true)(1), to(2, true)(1), to(2, true)(1)];
        let (outcomes, writes) = decide_batch(state(), &votes, i64::MAX).unwrap();
        let seqs: Vec<u64> = outcomes
            .iter()
            .map(|outcome| outcome.as_ref().unwrap().tally.seq())
            .collect();
        assert_eq!(seqs, [5, 6, 6]);
        assert_eq!(writes.new_votes.len(), 1);
        assert_eq!(writes.new_votes[0].option_id, 2);
        assert!(writes.changed_votes.is_empty());
        assert_eq!(writes.count_changes, [(2, 1)]);
        assert_eq!((writes.recorded, writes.tally_seq), (2, 6));
    }

    #[test]
    fn a_change_and_back_is_one_update_and_moves_no_counter() {
        let votes = [to(1, true)(9), to(2, true)(9)];
        let (outcomes, writes) = decide_batch(state(), &votes, i64::MAX).unwrap();
        let moved_from: Vec<Option<OptionId>> = outcomes
            .iter()
            .map(|outcome| outcome.as_ref().unwrap().changed_from)
            .collect();
        assert_eq!(moved_from, [Some(OptionId::new(2)), Some(OptionId::new(1))]);
        assert!(writes.new_votes.is_empty());
        assert_eq!(writes.changed_votes.len(), 1);
        assert_eq!(writes.changed_votes[0].option_id, 2);
        assert!(writes.count_changes.is_empty());
        assert_eq!((writes.recorded, writes.tally_seq), (2, 6));
    }

    #[test]
    fn refusals_write_nothing() {
        let votes = [
            to(1, false)(9),
            to(5, false)(1),
            vote(2, write_in(1, 8), false),
            vote(3, write_in(3, 8), false),
        ];
        // Option 3 would not fit a dialect whose ids stop at 2.
        let (outcomes, writes) = decide_batch(state(), &votes, 2).unwrap();
        assert!(matches!(
            outcomes.as_slice(),
            [
                Err(RecordVoteError::AlreadyVoted),
                Err(RecordVoteError::UnknownOption),
                Err(RecordVoteError::OptionIdTaken),
                Err(RecordVoteError::OptionIdTaken),
            ]
        ));
        assert!(writes.new_options.is_empty() && writes.new_votes.is_empty());
        assert!(writes.count_changes.is_empty());
        assert_eq!((writes.recorded, writes.tally_seq), (0, 4));
    }

    #[test]
    fn a_write_in_is_added_once_and_later_votes_merge_into_it() {
        let votes = [
            vote(1, write_in(3, 8), false),
            vote(2, write_in(4, 8), false),
            to(3, false)(3),
            vote(4, write_in(5, 1), false),
        ];
        let (outcomes, writes) = decide_batch(state(), &votes, i64::MAX).unwrap();
        let options: Vec<OptionId> = outcomes
            .iter()
            .map(|outcome| outcome.as_ref().unwrap().option_id)
            .collect();
        assert_eq!(options, [3, 3, 3, 1].map(OptionId::new));
        assert_eq!(writes.new_options.len(), 1);
        assert_eq!(writes.count_changes, [(1, 1), (3, 3)]);
        let last = outcomes[3].as_ref().unwrap();
        assert_eq!(
            [1, 2, 3].map(|option| last.tally.count(OptionId::new(option))),
            [4, 1, 3]
        );
    }

    /// A vote by `voter_n` who also presents the identities `aliases`.
    fn presenting(voter_n: u8, aliases: &[u8], option: u32, allow_change: bool) -> NewVote {
        NewVote {
            aliases: aliases.iter().map(|&n| voter(n)).collect(),
            ..to(option, allow_change)(voter_n)
        }
    }

    #[test]
    fn any_identity_with_a_vote_makes_the_voter_one_who_voted() {
        let mut state = state();
        // Identity 10 is an alias of voter 9's vote.
        state
            .add_alias(voter(10).as_bytes().to_vec(), voter(9).as_bytes().to_vec())
            .unwrap();
        let votes = [
            presenting(1, &[9], 1, false),
            presenting(2, &[10], 1, false),
            presenting(10, &[], 1, false),
            presenting(3, &[4], 1, false),
            presenting(4, &[], 2, false),
            presenting(5, &[4], 2, false),
        ];
        let (outcomes, writes) = decide_batch(state, &votes, i64::MAX).unwrap();
        let accepted: Vec<bool> = outcomes.iter().map(Result::is_ok).collect();
        assert_eq!(accepted, [false, false, false, true, false, false]);
        assert!(matches!(outcomes[0], Err(RecordVoteError::AlreadyVoted)));
        // Voter 3's vote is held by 3; 4 becomes its alias. Refusals link nothing.
        assert_eq!(writes.new_votes.len(), 1);
        assert_eq!(writes.new_votes[0].voter, voter(3));
        assert_eq!(writes.new_aliases, [(voter(4), voter(3))]);
        assert_eq!((writes.recorded, writes.tally_seq), (1, 5));
    }

    #[test]
    fn a_change_through_an_alias_moves_the_held_vote_and_links_the_rest() {
        let votes = [
            // Identity 1, new, presents 9: moves 9's vote from 2 to 1.
            presenting(1, &[9], 1, true),
            // 11 presents 1, an alias now: the same vote, the same choice.
            presenting(11, &[1], 1, true),
        ];
        let (outcomes, writes) = decide_batch(state(), &votes, i64::MAX).unwrap();
        let first = outcomes[0].as_ref().unwrap();
        assert_eq!(first.changed_from, Some(OptionId::new(2)));
        let second = outcomes[1].as_ref().unwrap();
        assert_eq!((second.changed_from, second.tally.seq()), (None, 5));
        assert!(writes.new_votes.is_empty());
        assert_eq!(writes.changed_votes.len(), 1);
        assert_eq!(writes.changed_votes[0].voter, voter(9));
        assert_eq!(
            writes.new_aliases,
            [(voter(1), voter(9)), (voter(11), voter(9))]
        );
        assert_eq!(writes.count_changes, [(1, 1), (2, -1)]);
    }

    #[test]
    fn corrupt_values_are_refused_as_they_are_read() {
        assert!(BallotState::new(-1, None).is_err());
        let mut state = state();
        assert!(state.add_option(3, vec![3; 32], -1).is_err());
        assert!(
            state
                .add_option(i64::from(u32::MAX) + 1, vec![3; 32], 0)
                .is_err()
        );
        assert!(state.add_vote(vec![1; 32], -2).is_err());
        assert!(state.add_vote(vec![1; 31], 1).is_err());
        assert!(state.add_alias(vec![1; 32], vec![2; 33]).is_err());
    }

    #[test]
    fn only_a_one_ballot_batch_is_decided_as_one() {
        let mut other = to(1, false)(2);
        other.ballot_id = BallotId::from_bytes([8; 16]);
        assert_eq!(
            one_ballot(&[to(1, false)(1), to(2, false)(2)]),
            Some(ballot())
        );
        assert_eq!(one_ballot(&[to(1, false)(1), other]), None);
        assert_eq!(one_ballot(&[]), None);
    }
}
