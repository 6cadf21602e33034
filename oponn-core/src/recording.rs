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

use std::collections::{BTreeMap, HashMap, HashSet};

use time::OffsetDateTime;

use crate::crypto::LabelKey;
use crate::domain::{BallotMethod, InvitationId, OptionId, ReceiptCode, Tally, VoterHash};
use crate::ports::{NewVote, OptionRecord, RecordVoteError, RecordedVote, VoteTarget};

/// What storage holds that deciding a batch of one ballot's votes needs,
/// as the adapter read it under its write lock.
#[derive(Debug, Clone)]
pub struct StoredVotes {
    /// The ballot's sequence number: one per recorded vote.
    tally_seq: u64,
    /// When the ballot was closed, if it was.
    closed_at: Option<OffsetDateTime>,
    /// Whether a choice is a ranking (its order kept, its first option
    /// alone counted per option) rather than a set.
    ranked: bool,
    /// Each option's count, by option id (ordered, as receipts list them).
    counts: BTreeMap<OptionId, u64>,
    /// Each distinct choice's voters.
    choices: BTreeMap<Vec<OptionId>, u64>,
    /// Each option's id by label key: where an equal write-in merges.
    by_label: HashMap<LabelKey, OptionId>,
    /// Each stored vote the batch's voters hold or are aliases of, by the
    /// identity holding it.
    votes: HashMap<VoterHash, StandingVote>,
    /// Each of the batch's identities that is an alias, to the identity
    /// holding its vote.
    aliases: HashMap<VoterHash, VoterHash>,
    /// The batch's receipts that the ballot has already given (and, as the
    /// batch is decided, the ones it gives).
    taken_receipts: HashSet<ReceiptCode>,
    /// The batch's invitations that were revoked.
    revoked_invitations: HashSet<InvitationId>,
}

/// A vote as it stands: its choice and its receipt (none for a vote
/// stored before receipts existed).
#[derive(Debug, Clone)]
struct StandingVote {
    choice: Vec<OptionId>,
    receipt: Option<ReceiptCode>,
}

impl StoredVotes {
    /// A ballot voted by `method`, at sequence `tally_seq`, closed at
    /// `closed_at` if it was, before its options, choices and votes are
    /// added.
    pub fn new(tally_seq: u64, closed_at: Option<OffsetDateTime>, method: BallotMethod) -> Self {
        Self {
            tally_seq,
            closed_at,
            ranked: method.is_ranked(),
            counts: BTreeMap::new(),
            choices: BTreeMap::new(),
            by_label: HashMap::new(),
            votes: HashMap::new(),
            aliases: HashMap::new(),
            taken_receipts: HashSet::new(),
            revoked_invitations: HashSet::new(),
        }
    }

    /// Adds one of the ballot's options (every option, counted or not).
    pub fn add_option(&mut self, option: OptionId, label_key: LabelKey, vote_count: u64) {
        self.counts.insert(option, vote_count);
        self.by_label.insert(label_key, option);
    }

    /// Adds one distinct choice with its voters (every choice with voters;
    /// a choice with none may be left out).
    pub fn add_choice(&mut self, choice: Vec<OptionId>, voters: u64) {
        if voters > 0 {
            self.choices.insert(choice, voters);
        }
    }

    /// Adds a stored vote that one of the batch's identities holds, or that
    /// one of them is an alias of, with its receipt (none for a vote stored
    /// before receipts existed).
    pub fn add_vote(
        &mut self,
        holder: VoterHash,
        choice: Vec<OptionId>,
        receipt: Option<ReceiptCode>,
    ) {
        self.votes.insert(holder, StandingVote { choice, receipt });
    }

    /// Adds a receipt of the batch's votes that the ballot has already
    /// given (to a counted or a replaced vote): a vote carrying it is
    /// refused with [`RecordVoteError::ReceiptTaken`], to be retried with
    /// another.
    pub fn add_taken_receipt(&mut self, receipt: ReceiptCode) {
        self.taken_receipts.insert(receipt);
    }

    /// Adds an invitation of the batch's votes that its owner revoked: a
    /// vote cast by it is refused with [`RecordVoteError::InvitationRevoked`].
    pub fn add_revoked_invitation(&mut self, invitation: InvitationId) {
        self.revoked_invitations.insert(invitation);
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

    /// The tally a receipt shows: the sequence, the options with votes and
    /// the choices with voters.
    fn tally(&self) -> Tally {
        Tally::new(
            self.tally_seq,
            self.counts.iter().map(|(&option, &count)| (option, count)),
        )
        .with_choices(
            self.choices
                .iter()
                .map(|(choice, &voters)| (choice.clone(), voters)),
        )
    }

    /// The options of `choice` that count per option: every one, or the
    /// first of a ranking.
    fn counted<'c>(&self, choice: &'c [OptionId]) -> &'c [OptionId] {
        if self.ranked {
            choice.get(..1).unwrap_or_default()
        } else {
            choice
        }
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
        if vote
            .invitation
            .is_some_and(|invitation| self.revoked_invitations.contains(&invitation))
        {
            return Err(RecordVoteError::InvitationRevoked);
        }
        if self.taken_receipts.contains(&vote.receipt) {
            return Err(RecordVoteError::ReceiptTaken);
        }
        // The voter's vote is the one the first identity with a vote holds.
        let holder = identities(vote)
            .find_map(|identity| self.holder(identity))
            .unwrap_or(vote.voter);
        let previous = self.votes.get(&holder).cloned();
        if previous.is_some() && !vote.allow_change {
            return Err(RecordVoteError::AlreadyVoted);
        }
        let mut choice = Vec::with_capacity(vote.choice.len());
        let mut added: Vec<&'a OptionRecord> = Vec::new();
        for target in &vote.choice {
            let option = match target {
                VoteTarget::Existing(option) => {
                    if !self.counts.contains_key(option) {
                        return Err(RecordVoteError::UnknownOption);
                    }
                    *option
                }
                VoteTarget::WriteIn(option) => {
                    let merged = self.by_label.get(&option.label_key).copied().or_else(|| {
                        added
                            .iter()
                            .find(|new| new.label_key == option.label_key)
                            .map(|new| new.id)
                    });
                    match merged {
                        Some(existing) => existing,
                        None => {
                            let taken = self.counts.contains_key(&option.id)
                                || added.iter().any(|new| new.id == option.id);
                            if option.id > id_limit || taken {
                                return Err(RecordVoteError::OptionIdTaken);
                            }
                            added.push(option);
                            option.id
                        }
                    }
                }
            };
            if !choice.contains(&option) {
                choice.push(option);
            }
        }
        if choice.is_empty() {
            return Err(RecordVoteError::UnknownOption);
        }
        if !self.ranked {
            choice.sort_unstable();
        }
        Ok(Decision {
            choice,
            previous,
            added,
            holder,
        })
    }

    /// Moves one voter's vote from `previous` (if any) to `choice`: the
    /// counts and the choices each lose the old and gain the new, noting
    /// every net change in `changes`.
    fn move_vote(
        &mut self,
        previous: Option<&[OptionId]>,
        choice: &[OptionId],
        changes: &mut Changes,
    ) {
        if let Some(old) = previous {
            for option in self.counted(old).to_vec() {
                let count = self.counts.entry(option).or_insert(0);
                *count = count.saturating_sub(1);
                changes.option(option, -1);
            }
            if let Some(voters) = self.choices.get_mut(old) {
                *voters = voters.saturating_sub(1);
                if *voters == 0 {
                    self.choices.remove(old);
                }
            }
            changes.choice(old, -1);
        }
        for option in self.counted(choice).to_vec() {
            let count = self.counts.entry(option).or_insert(0);
            *count = count.saturating_add(1);
            changes.option(option, 1);
        }
        let voters = self.choices.entry(choice.to_vec()).or_insert(0);
        *voters = voters.saturating_add(1);
        changes.choice(choice, 1);
    }
}

/// The net changes a batch makes to counters.
#[derive(Default)]
struct Changes {
    options: BTreeMap<OptionId, i64>,
    choices: BTreeMap<Vec<OptionId>, i64>,
}

impl Changes {
    fn option(&mut self, option: OptionId, by: i64) {
        let change = self.options.entry(option).or_insert(0);
        *change = change.saturating_add(by);
    }

    fn choice(&mut self, choice: &[OptionId], by: i64) {
        let change = self.choices.entry(choice.to_vec()).or_insert(0);
        *change = change.saturating_add(by);
    }
}

/// A vote the state accepts: where it counts, where it moves from, and the
/// write-in options it adds.
struct Decision<'a> {
    /// The options the vote counts toward: a ranking in order, else in
    /// id order, each once.
    choice: Vec<OptionId>,
    /// The voter's vote now, if they have one.
    previous: Option<StandingVote>,
    /// The write-ins the vote adds as new options.
    added: Vec<&'a OptionRecord>,
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
    /// The options their vote now counts toward, in the stored order.
    pub choice: Vec<OptionId>,
    /// When the vote that put it there was cast.
    pub cast_at: OffsetDateTime,
    /// The receipt the vote now has.
    pub receipt: ReceiptCode,
}

impl VoteRow {
    /// The choice's first option: the one a single-choice vote names.
    pub fn first_option(&self) -> OptionId {
        self.choice.first().copied().unwrap_or(OptionId::new(0))
    }
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
    /// `(choice, net change)` for every distinct choice whose voters moved.
    pub choice_changes: Vec<(Vec<OptionId>, i64)>,
    /// Receipts of stored votes the batch replaced: they now read as
    /// replaced by a later vote. (Receipts the batch gave and replaced
    /// itself are here too: their voters were told them.)
    pub retired_receipts: Vec<ReceiptCode>,
    /// `(invitation, when)`: invitations a vote was recorded with, to mark
    /// used unless they already are.
    pub used_invitations: Vec<(InvitationId, OffsetDateTime)>,
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
    let mut changes = Changes::default();
    let mut recorded_votes: u64 = 0;
    let mut retired_receipts = Vec::new();
    let mut used_invitations = Vec::new();
    for vote in votes {
        let Decision {
            choice,
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
        for option in added {
            stored.counts.insert(option.id, 0);
            stored.by_label.insert(option.label_key, option.id);
            new_options.push(option);
        }
        let had_vote = previous.is_some();
        let (previous_choice, previous_receipt) = match previous {
            Some(StandingVote { choice, receipt }) => (Some(choice), receipt),
            None => (None, None),
        };
        let same_again = previous_choice.as_ref() == Some(&choice);
        if let (true, Some(receipt)) = (same_again, &previous_receipt) {
            // The same choice again: nothing moves, the receipt stands.
            outcomes.push(Ok(RecordedVote {
                choice,
                tally: stored.tally(),
                changed_from: None,
                receipt: receipt.clone(),
            }));
            continue;
        }
        // A new or changed vote gets the vote's receipt, and the one it
        // replaces is retired: it now reads as replaced by a later vote.
        // (The same choice again on a vote stored before receipts existed
        // gets one too, and moves nothing else.)
        let receipt = vote.receipt.clone();
        stored.taken_receipts.insert(receipt.clone());
        retired_receipts.extend(previous_receipt);
        if !same_again {
            // The old choice loses the vote as the new one gains it, in one
            // step of the sequence: no reader sees both or neither.
            stored.move_vote(previous_choice.as_deref(), &choice, &mut changes);
            stored.tally_seq = stored.tally_seq.saturating_add(1);
            recorded_votes = recorded_votes.saturating_add(1);
        }
        stored.votes.insert(
            holder,
            StandingVote {
                choice: choice.clone(),
                receipt: Some(receipt.clone()),
            },
        );
        if let Some(invitation) = vote.invitation {
            used_invitations.push((invitation, vote.cast_at));
        }
        match row_of.get(&holder).and_then(|&row| rows.get_mut(row)) {
            Some((row, _)) => {
                row.choice.clone_from(&choice);
                row.cast_at = vote.cast_at;
                row.receipt = receipt.clone();
            }
            None => {
                // The voter's first move in the batch: `previous` is still
                // what storage holds.
                row_of.insert(holder, rows.len());
                let row = VoteRow {
                    voter: holder,
                    choice: choice.clone(),
                    cast_at: vote.cast_at,
                    receipt: receipt.clone(),
                };
                rows.push((row, had_vote));
            }
        }
        outcomes.push(Ok(RecordedVote {
            choice,
            tally: stored.tally(),
            changed_from: previous_choice.filter(|_| !same_again),
            receipt,
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
            count_changes: changes
                .options
                .into_iter()
                .filter(|&(_, by)| by != 0)
                .collect(),
            choice_changes: changes
                .choices
                .into_iter()
                .filter(|(_, by)| *by != 0)
                .collect(),
            retired_receipts,
            used_invitations,
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
    use crate::domain::{BallotId, BallotMethod, InvitationId, OptionId, ReceiptCode, VoterHash};
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
            choice: vec![target],
            cast_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i64::from(voter_n)),
            allow_change,
            receipt: crate::domain::ReceiptCode::generate(),
            invitation: None,
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
        let mut state = StoredVotes::new(4, None, BallotMethod::Single);
        state.add_option(option(1), LabelKey::from_bytes([1; 32]), 3);
        state.add_option(option(2), LabelKey::from_bytes([2; 32]), 1);
        state.add_choice(vec![option(1)], 3);
        state.add_choice(vec![option(2)], 1);
        state.add_vote(voter(9), vec![option(2)], None);
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
        assert_eq!(writes.new_votes[0].choice, [option(2)]);
        assert!(writes.changed_votes.is_empty());
        assert_eq!(writes.count_changes, [(option(2), 1)]);
        assert_eq!((writes.recorded, writes.tally_seq), (2, 6));
    }

    #[test]
    fn a_change_and_back_is_one_update_and_moves_no_counter() {
        let votes = [to(1, true)(9), to(2, true)(9)];
        let decided = decide_batch(state(), &votes, NO_LIMIT);
        let moved_from: Vec<Option<Vec<OptionId>>> = decided
            .outcomes
            .iter()
            .map(|outcome| outcome.as_ref().unwrap().changed_from.clone())
            .collect();
        assert_eq!(moved_from, [Some(vec![option(2)]), Some(vec![option(1)])]);
        let writes = decided.writes;
        assert!(writes.new_votes.is_empty());
        assert_eq!(writes.changed_votes.len(), 1);
        assert_eq!(writes.changed_votes[0].choice, [option(2)]);
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

    fn code(text: &str) -> ReceiptCode {
        ReceiptCode::parse(text).unwrap()
    }

    #[test]
    fn a_change_gives_a_new_receipt_and_retires_every_one_it_replaces() {
        let mut state = state();
        state.add_vote(voter(9), vec![option(2)], Some(code("STORED0000")));
        let mut first = to(1, true)(9);
        first.receipt = code("FRST000000");
        let mut again = to(1, true)(9);
        again.receipt = code("AGAIN00000");
        let mut back = to(2, true)(9);
        back.receipt = code("BACK000000");
        let votes = [first, again, back];
        let decided = decide_batch(state, &votes, NO_LIMIT);
        let receipts: Vec<&str> = decided
            .outcomes
            .iter()
            .map(|outcome| outcome.as_ref().unwrap().receipt.as_str())
            .collect();
        // The same choice again keeps the receipt that stands.
        assert_eq!(receipts, ["FRST000000", "FRST000000", "BACK000000"]);
        let writes = decided.writes;
        assert_eq!(
            writes.retired_receipts,
            [code("STORED0000"), code("FRST000000")]
        );
        assert_eq!(writes.changed_votes.len(), 1);
        assert_eq!(writes.changed_votes[0].receipt, code("BACK000000"));
    }

    #[test]
    fn a_receipt_the_ballot_gave_is_refused_for_a_retry() {
        let mut state = state();
        state.add_taken_receipt(code("TAKEN00000"));
        let mut taken = to(1, false)(1);
        taken.receipt = code("TAKEN00000");
        let mut fresh = to(1, false)(2);
        fresh.receipt = code("FRESH00000");
        let mut twice = to(1, false)(3);
        twice.receipt = code("FRESH00000");
        let votes = [taken, fresh, twice];
        let decided = decide_batch(state, &votes, NO_LIMIT);
        assert!(matches!(
            decided.outcomes.as_slice(),
            [
                Err(RecordVoteError::ReceiptTaken),
                Ok(_),
                Err(RecordVoteError::ReceiptTaken)
            ]
        ));
        assert_eq!(decided.writes.new_votes.len(), 1);
    }

    #[test]
    fn a_vote_stored_before_receipts_gets_one_when_made_again() {
        let mut again = to(2, true)(9);
        again.receipt = code("LATE000000");
        let votes = [again];
        let decided = decide_batch(state(), &votes, NO_LIMIT);
        let recorded = decided.outcomes[0].as_ref().unwrap();
        assert_eq!(recorded.receipt, code("LATE000000"));
        assert_eq!(recorded.changed_from, None);
        let writes = decided.writes;
        assert_eq!(writes.changed_votes[0].receipt, code("LATE000000"));
        assert!(writes.count_changes.is_empty() && writes.retired_receipts.is_empty());
        assert_eq!((writes.recorded, writes.tally_seq), (0, 4));
    }

    #[test]
    fn a_revoked_invitation_votes_no_more_and_a_used_one_is_marked() {
        let mut state = state();
        state.add_revoked_invitation(InvitationId::new(1));
        let mut revoked = to(1, false)(1);
        revoked.invitation = Some(InvitationId::new(1));
        let mut live = to(1, false)(2);
        live.invitation = Some(InvitationId::new(2));
        let votes = [revoked, live];
        let decided = decide_batch(state, &votes, NO_LIMIT);
        assert!(matches!(
            decided.outcomes.as_slice(),
            [Err(RecordVoteError::InvitationRevoked), Ok(_)]
        ));
        let used: Vec<InvitationId> = decided
            .writes
            .used_invitations
            .iter()
            .map(|&(invitation, _)| invitation)
            .collect();
        assert_eq!(used, [InvitationId::new(2)]);
    }

    #[test]
    fn a_closed_ballot_refuses_votes_cast_at_or_after_the_close() {
        let closed = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(2);
        let mut state = StoredVotes::new(0, Some(closed), BallotMethod::Single);
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
            .map(|outcome| outcome.as_ref().unwrap().choice[0])
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
        assert_eq!(first.changed_from, Some(vec![option(2)]));
        let second = decided.outcomes[1].as_ref().unwrap();
        assert_eq!((second.changed_from.clone(), second.tally.seq()), (None, 5));
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

    fn ranked_state() -> StoredVotes {
        let mut state = StoredVotes::new(0, None, BallotMethod::Ranked);
        for n in 1..=3 {
            state.add_option(option(n), LabelKey::from_bytes([n as u8; 32]), 0);
        }
        state
    }

    fn ranking(voter_n: u8, options: &[u32], allow_change: bool) -> NewVote {
        NewVote {
            choice: options
                .iter()
                .map(|&n| VoteTarget::Existing(option(n)))
                .collect(),
            ..vote(voter_n, VoteTarget::Existing(option(1)), allow_change)
        }
    }

    #[test]
    fn a_ranking_counts_its_first_option_and_its_whole_order() {
        let votes = [
            ranking(1, &[2, 1], true),
            ranking(2, &[2, 1], true),
            ranking(3, &[1, 3, 2], true),
            // A change moves the first preference and the ranking together.
            ranking(1, &[3], true),
        ];
        let decided = decide_batch(ranked_state(), &votes, NO_LIMIT);
        let last = &decided.outcomes[3].as_ref().unwrap().tally;
        assert_eq!(
            [1, 2, 3].map(|n| last.count(option(n))),
            [1, 1, 1],
            "first preferences"
        );
        let choices: Vec<(Vec<OptionId>, u64)> = last
            .choices()
            .map(|(choice, voters)| (choice.to_vec(), voters))
            .collect();
        assert_eq!(
            choices,
            [
                (vec![option(1), option(3), option(2)], 1),
                (vec![option(2), option(1)], 1),
                (vec![option(3)], 1),
            ]
        );
        assert_eq!(last.total(), 3);
        let writes = decided.writes;
        assert_eq!(writes.new_votes.len(), 3);
        assert_eq!(writes.new_votes[0].choice, [option(3)]);
        assert_eq!(
            writes.choice_changes,
            [
                (vec![option(1), option(3), option(2)], 1),
                (vec![option(2), option(1)], 1),
                (vec![option(3)], 1),
            ]
        );
        assert_eq!(
            writes.count_changes,
            [(option(1), 1), (option(2), 1), (option(3), 1)]
        );
    }

    #[test]
    fn an_approval_set_counts_each_option_once_in_id_order() {
        let mut state = StoredVotes::new(
            0,
            None,
            BallotMethod::Approval {
                min_choices: 1,
                max_choices: 3,
            },
        );
        for n in 1..=3 {
            state.add_option(option(n), LabelKey::from_bytes([n as u8; 32]), 0);
        }
        let votes = [
            ranking(1, &[3, 1], false),
            // A write-in equal to option 1, beside option 1 itself: once.
            NewVote {
                choice: vec![VoteTarget::Existing(option(1)), write_in(9, 1)],
                ..vote(2, VoteTarget::Existing(option(1)), false)
            },
        ];
        let decided = decide_batch(state, &votes, NO_LIMIT);
        let first = decided.outcomes[0].as_ref().unwrap();
        assert_eq!(first.choice, [option(1), option(3)]);
        let second = decided.outcomes[1].as_ref().unwrap();
        assert_eq!(second.choice, [option(1)]);
        assert_eq!([1, 2, 3].map(|n| second.tally.count(option(n))), [2, 0, 1]);
        assert_eq!(second.tally.total(), 2, "voters, not marks");
        assert!(decided.writes.new_options.is_empty());
    }

    #[test]
    fn an_empty_choice_is_refused() {
        let votes = [NewVote {
            choice: Vec::new(),
            ..vote(1, VoteTarget::Existing(option(1)), false)
        }];
        let decided = decide_batch(ranked_state(), &votes, NO_LIMIT);
        assert!(matches!(
            decided.outcomes[0],
            Err(RecordVoteError::UnknownOption)
        ));
        assert_eq!(decided.writes.recorded, 0);
    }
}
