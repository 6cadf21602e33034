//! How storage records votes: the one decision every repository executes.
//!
//! A [`BallotRepository`](crate::ports::BallotRepository) reads what a batch
//! of votes needs ([`StoredVotes`]: the ballot's sequence, close time,
//! options and counts, and the stored votes and aliases of the identities
//! the batch's voters present), hands it to [`decide_batch`] with the
//! votes, and writes the [`BatchWrites`] it returns in one transaction.
//! Every rule of the port's `record_vote` (closed ballots, one vote per
//! voter across identities, vote changes, unknown options, write-ins that
//! merge by label key) lives here, once, pure: an adapter only reads and
//! writes rows, so SQLite, PostgreSQL and memory cannot decide differently.
//!
//! ```text
//! adapter: read rows ──▶ StoredVotes ──decide_batch(votes)──▶ outcomes + BatchWrites ──▶ adapter: write rows, commit
//! ```

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;

use crate::crypto::LabelKey;
use crate::domain::{OptionId, Tally, VoterHash};
use crate::ports::{NewVote, OptionRecord, RecordVoteError, RecordedVote, VoteTarget};

/// What storage holds that deciding a batch of one ballot's votes needs,
/// as the adapter read it under its write lock.
#[derive(Debug, Clone)]
pub struct StoredVotes {
    /// The ballot's sequence number: one per recorded vote.
    tally_seq: u64,
    /// When the ballot was closed, if it was.
    closed_at: Option<OffsetDateTime>,
    /// Each option's vote count, by option id (ordered, as receipts list them).
    counts: BTreeMap<OptionId, u64>,
    /// Each option's id by label key: where an equal write-in merges.
    by_label: HashMap<LabelKey, OptionId>,
    /// The option of each stored vote the batch's voters hold or are
    /// aliases of, by the identity holding it.
    votes: HashMap<VoterHash, OptionId>,
    /// Each of the batch's identities that is an alias, to the identity
    /// holding its vote.
    aliases: HashMap<VoterHash, VoterHash>,
}

impl StoredVotes {
    /// A ballot at sequence `tally_seq`, closed at `closed_at` if it was,
    /// before its options and votes are added.
    pub fn new(tally_seq: u64, closed_at: Option<OffsetDateTime>) -> Self {
        Self {
            tally_seq,
            closed_at,
            counts: BTreeMap::new(),
            by_label: HashMap::new(),
            votes: HashMap::new(),
            aliases: HashMap::new(),
        }
    }

    /// Adds one of the ballot's options (every option, counted or not).
    pub fn add_option(&mut self, option: OptionId, label_key: LabelKey, vote_count: u64) {
        self.counts.insert(option, vote_count);
        self.by_label.insert(label_key, option);
    }

    /// Adds a stored vote that one of the batch's identities holds, or that
    /// one of them is an alias of.
    pub fn add_vote(&mut self, holder: VoterHash, option: OptionId) {
        self.votes.insert(holder, option);
    }

    /// Adds a stored alias: `alias`, one of the batch's identities, leads
    /// to the vote `holder` holds (which must be added with
    /// [`add_vote`](Self::add_vote)).
    pub fn add_alias(&mut self, alias: VoterHash, holder: VoterHash) {
        self.aliases.insert(alias, holder);
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

    /// The tally a receipt shows: the sequence and the options with votes.
    fn tally(&self) -> Tally {
        Tally::new(
            self.tally_seq,
            self.counts
                .iter()
                .filter(|&(_, &count)| count > 0)
                .map(|(&option, &count)| (option, count)),
        )
    }

    /// Checks `vote` against the state, by the port's rules and in their
    /// order, without changing anything.
    fn check<'a>(
        &self,
        vote: &'a NewVote,
        id_limit: OptionId,
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
                if !self.counts.contains_key(option) {
                    return Err(RecordVoteError::UnknownOption);
                }
                (*option, None)
            }
            VoteTarget::WriteIn(option) => match self.by_label.get(&option.label_key) {
                Some(&existing) => (existing, None),
                None => {
                    if option.id > id_limit || self.counts.contains_key(&option.id) {
                        return Err(RecordVoteError::OptionIdTaken);
                    }
                    (option.id, Some(option))
                }
            },
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
    option_id: OptionId,
    /// The option the voter's vote counts toward now, if they have one.
    previous: Option<OptionId>,
    /// The write-in the vote adds as a new option.
    added: Option<&'a OptionRecord>,
    /// The identity holding the voter's vote (`vote.voter` for a new one).
    holder: VoterHash,
}

/// Every identity `vote`'s voter presents: the voter first, then aliases.
/// The adapter reads the stored votes and aliases of exactly these.
pub fn identities(vote: &NewVote) -> impl Iterator<Item = &VoterHash> {
    std::iter::once(&vote.voter).chain(&vote.aliases)
}

/// One voter's vote row as the batch leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRow {
    /// The identity holding the vote.
    pub voter: VoterHash,
    /// The option their vote now counts toward.
    pub option_id: OptionId,
    /// When the vote that put it there was cast.
    pub cast_at: OffsetDateTime,
}

/// What a decided batch writes, in this order (options before the votes
/// that reference them, votes before the aliases that point at them).
#[derive(Debug, Clone)]
pub struct BatchWrites<'a> {
    /// Write-ins that became options, in the order they were added.
    pub new_options: Vec<&'a OptionRecord>,
    /// Final votes of voters who had none before the batch.
    pub new_votes: Vec<VoteRow>,
    /// Final votes of voters who had one before the batch and changed it.
    pub changed_votes: Vec<VoteRow>,
    /// `(alias, holder)`: identities linked to a vote by the batch.
    pub new_aliases: Vec<(VoterHash, VoterHash)>,
    /// `(option, net change)` for every option whose count moved.
    pub count_changes: Vec<(OptionId, i64)>,
    /// How many votes were recorded: how far the sequence advances.
    pub recorded: u64,
    /// The ballot's sequence after the batch, to check the write against.
    pub tally_seq: u64,
}

/// One vote's outcome, as `record_votes` answers it.
pub type VoteOutcome = Result<RecordedVote, RecordVoteError>;

/// A decided batch: each vote's outcome, in order, and what storage must
/// write for the accepted ones. Nothing may be acknowledged before the
/// writes are durable.
#[derive(Debug)]
pub struct BatchDecision<'a> {
    /// Each vote's outcome, in the batch's order.
    pub outcomes: Vec<VoteOutcome>,
    /// What the batch changes.
    pub writes: BatchWrites<'a>,
}

/// Decides every vote of a batch on one ballot, in order, against `stored`,
/// exactly as if each were recorded alone, and gathers what the batch must
/// write.
///
/// `id_limit` is the largest option id the storage's schema can hold (not
/// the largest in use): a new write-in above it is refused as taken, as
/// its insert would fail.
pub fn decide_batch<'a>(
    mut stored: StoredVotes,
    votes: &'a [NewVote],
    id_limit: OptionId,
) -> BatchDecision<'a> {
    let mut outcomes = Vec::with_capacity(votes.len());
    let mut new_options = Vec::new();
    // Each moved voter's row, with whether they had a vote before the batch.
    let mut rows: Vec<(VoteRow, bool)> = Vec::new();
    let mut row_of: HashMap<VoterHash, usize> = HashMap::new();
    let mut new_aliases = Vec::new();
    let mut changes: BTreeMap<OptionId, i64> = BTreeMap::new();
    let mut recorded_votes: u64 = 0;
    for vote in votes {
        let Decision {
            option_id,
            previous,
            added,
            holder,
        } = match stored.check(vote, id_limit) {
            Ok(decision) => decision,
            Err(refusal) => {
                outcomes.push(Err(refusal));
                continue;
            }
        };
        // Every identity presented now leads to the vote, whatever follows.
        for identity in identities(vote) {
            if *identity != holder && stored.holder(identity).is_none() {
                stored.aliases.insert(*identity, holder);
                new_aliases.push((*identity, holder));
            }
        }
        if let Some(option) = added {
            stored.counts.insert(option_id, 0);
            stored.by_label.insert(option.label_key, option_id);
            new_options.push(option);
        }
        if previous == Some(option_id) {
            // The same choice again: nothing moves.
            outcomes.push(Ok(RecordedVote {
                option_id,
                tally: stored.tally(),
                changed_from: None,
            }));
            continue;
        }
        // The old option loses the vote as the new one gains it, in one
        // step of the sequence: no reader sees both or neither.
        if let Some(old) = previous {
            let count = stored.counts.entry(old).or_insert(0);
            *count = count.saturating_sub(1);
            let change = changes.entry(old).or_insert(0);
            *change = change.saturating_sub(1);
        }
        let count = stored.counts.entry(option_id).or_insert(0);
        *count = count.saturating_add(1);
        let change = changes.entry(option_id).or_insert(0);
        *change = change.saturating_add(1);
        stored.votes.insert(holder, option_id);
        stored.tally_seq = stored.tally_seq.saturating_add(1);
        recorded_votes = recorded_votes.saturating_add(1);
        match row_of.get(&holder).and_then(|&row| rows.get_mut(row)) {
            Some((row, _)) => {
                row.option_id = option_id;
                row.cast_at = vote.cast_at;
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
        outcomes.push(Ok(RecordedVote {
            option_id,
            tally: stored.tally(),
            changed_from: previous,
        }));
    }
    let (changed_votes, new_votes): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|&(_, stored)| stored);
    BatchDecision {
        outcomes,
        writes: BatchWrites {
            new_options,
            new_votes: new_votes.into_iter().map(|(row, _)| row).collect(),
            changed_votes: changed_votes.into_iter().map(|(row, _)| row).collect(),
            new_aliases,
            count_changes: changes.into_iter().filter(|&(_, by)| by != 0).collect(),
            recorded: recorded_votes,
            tally_seq: stored.tally_seq,
        },
    }
}

#[cfg(test)]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use time::OffsetDateTime;

    use super::{StoredVotes, decide_batch};
    use crate::crypto::{LabelKey, Sealed};
    use crate::domain::{BallotId, OptionId, VoterHash};
    use crate::ports::{NewVote, OptionRecord, RecordVoteError, VoteTarget};

    const NO_LIMIT: OptionId = OptionId::new(u32::MAX);

    fn ballot() -> BallotId {
        BallotId::from_bytes([7; 16])
    }

    fn voter(n: u8) -> VoterHash {
        VoterHash::from_bytes([n; 32])
    }

    fn option(n: u32) -> OptionId {
        OptionId::new(n)
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
    fn state() -> StoredVotes {
        let mut state = StoredVotes::new(4, None);
        state.add_option(option(1), LabelKey::from_bytes([1; 32]), 3);
        state.add_option(option(2), LabelKey::from_bytes([2; 32]), 1);
        state.add_vote(voter(9), option(2));
        state
    }

    #[test]
    fn a_voter_new_to_the_ballot_is_one_insert_of_their_last_choice() {
        let votes = [to(1, true)(1), to(2, true)(1), to(2, true)(1)];
        let decided = decide_batch(state(), &votes, NO_LIMIT);
        let seqs: Vec<u64> = decided
            .outcomes
            .iter()
            .map(|outcome| outcome.as_ref().unwrap().tally.seq())
            .collect();
        assert_eq!(seqs, [5, 6, 6]);
        let writes = decided.writes;
        assert_eq!(writes.new_votes.len(), 1);
        assert_eq!(writes.new_votes[0].option_id, option(2));
        assert!(writes.changed_votes.is_empty());
        assert_eq!(writes.count_changes, [(option(2), 1)]);
        assert_eq!((writes.recorded, writes.tally_seq), (2, 6));
    }

    #[test]
    fn a_change_and_back_is_one_update_and_moves_no_counter() {
        let votes = [to(1, true)(9), to(2, true)(9)];
        let decided = decide_batch(state(), &votes, NO_LIMIT);
        let moved_from: Vec<Option<OptionId>> = decided
            .outcomes
            .iter()
            .map(|outcome| outcome.as_ref().unwrap().changed_from)
            .collect();
        assert_eq!(moved_from, [Some(option(2)), Some(option(1))]);
        let writes = decided.writes;
        assert!(writes.new_votes.is_empty());
        assert_eq!(writes.changed_votes.len(), 1);
        assert_eq!(writes.changed_votes[0].option_id, option(2));
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
        // Option 3 would not fit storage whose ids stop at 2.
        let decided = decide_batch(state(), &votes, option(2));
        assert!(matches!(
            decided.outcomes.as_slice(),
            [
                Err(RecordVoteError::AlreadyVoted),
                Err(RecordVoteError::UnknownOption),
                Err(RecordVoteError::OptionIdTaken),
                Err(RecordVoteError::OptionIdTaken),
            ]
        ));
        let writes = decided.writes;
        assert!(writes.new_options.is_empty() && writes.new_votes.is_empty());
        assert!(writes.count_changes.is_empty());
        assert_eq!((writes.recorded, writes.tally_seq), (0, 4));
    }

    #[test]
    fn a_closed_ballot_refuses_votes_cast_at_or_after_the_close() {
        let closed = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(2);
        let mut state = StoredVotes::new(0, Some(closed));
        state.add_option(option(1), LabelKey::from_bytes([1; 32]), 0);
        let votes = [to(1, false)(1), to(1, false)(2), to(1, false)(3)];
        let decided = decide_batch(state, &votes, NO_LIMIT);
        assert!(matches!(
            decided.outcomes.as_slice(),
            [
                Ok(_),
                Err(RecordVoteError::BallotClosed),
                Err(RecordVoteError::BallotClosed)
            ]
        ));
        assert_eq!(decided.writes.recorded, 1);
    }

    #[test]
    fn a_write_in_is_added_once_and_later_votes_merge_into_it() {
        let votes = [
            vote(1, write_in(3, 8), false),
            vote(2, write_in(4, 8), false),
            to(3, false)(3),
            vote(4, write_in(5, 1), false),
        ];
        let decided = decide_batch(state(), &votes, NO_LIMIT);
        let options: Vec<OptionId> = decided
            .outcomes
            .iter()
            .map(|outcome| outcome.as_ref().unwrap().option_id)
            .collect();
        assert_eq!(options, [3, 3, 3, 1].map(OptionId::new));
        let writes = &decided.writes;
        assert_eq!(writes.new_options.len(), 1);
        assert_eq!(writes.count_changes, [(option(1), 1), (option(3), 3)]);
        let last = decided.outcomes[3].as_ref().unwrap();
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
        state.add_alias(voter(10), voter(9));
        let votes = [
            presenting(1, &[9], 1, false),
            presenting(2, &[10], 1, false),
            presenting(10, &[], 1, false),
            presenting(3, &[4], 1, false),
            presenting(4, &[], 2, false),
            presenting(5, &[4], 2, false),
        ];
        let decided = decide_batch(state, &votes, NO_LIMIT);
        let accepted: Vec<bool> = decided.outcomes.iter().map(Result::is_ok).collect();
        assert_eq!(accepted, [false, false, false, true, false, false]);
        assert!(matches!(
            decided.outcomes[0],
            Err(RecordVoteError::AlreadyVoted)
        ));
        // Voter 3's vote is held by 3; 4 becomes its alias. Refusals link nothing.
        let writes = decided.writes;
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
        let decided = decide_batch(state(), &votes, NO_LIMIT);
        let first = decided.outcomes[0].as_ref().unwrap();
        assert_eq!(first.changed_from, Some(option(2)));
        let second = decided.outcomes[1].as_ref().unwrap();
        assert_eq!((second.changed_from, second.tally.seq()), (None, 5));
        let writes = decided.writes;
        assert!(writes.new_votes.is_empty());
        assert_eq!(writes.changed_votes.len(), 1);
        assert_eq!(writes.changed_votes[0].voter, voter(9));
        assert_eq!(
            writes.new_aliases,
            [(voter(1), voter(9)), (voter(11), voter(9))]
        );
        assert_eq!(writes.count_changes, [(option(1), 1), (option(2), -1)]);
    }
}
