//! A ballot repository in a map.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use oponn_core::domain::{
    BallotId, BulletinRow, InvitationHash, InvitationId, OptionId, OwnerId, ReceiptCode,
    ReceiptStatus, Tally, VoterHash,
};
use oponn_core::ports::{
    AddInvitationsError, BallotRecord, BallotRepository, Bulletin, InvitationRecord, NewInvitation,
    NewVote, Page, RecordVoteError, RecordedVote, RepositoryError, Revoked,
};
use oponn_core::recording::{BatchDecision, StoredVotes, VoteOutcome, decide_batch, identities};
use time::OffsetDateTime;

/// Ballots, votes and tallies in process memory.
///
/// One mutex guards the whole map: every operation is a few map look-ups,
/// so holding it across a batch is what makes "check voter, add option,
/// count" atomic, as the port requires. The decision itself is the core's
/// ([`decide_batch`]), the same one the SQL adapters execute.
#[derive(Default)]
pub struct MemoryRepository {
    ballots: Mutex<HashMap<BallotId, StoredBallot>>,
}

struct StoredBallot {
    record: BallotRecord,
    /// Each vote's choice and receipt, by the identity holding it.
    votes: HashMap<VoterHash, (Vec<OptionId>, ReceiptCode)>,
    /// Receipts of the votes as they stand (an index of `votes`).
    counted_receipts: HashSet<ReceiptCode>,
    /// Receipts of votes changed since.
    retired_receipts: HashSet<ReceiptCode>,
    /// Voter links, in number order.
    invitations: Vec<InvitationRecord>,
    /// Other identities of a vote's voter, each to the identity holding it.
    aliases: HashMap<VoterHash, VoterHash>,
    counts: BTreeMap<OptionId, u64>,
    /// Each distinct choice's voters.
    choices: BTreeMap<Vec<OptionId>, u64>,
    seq: u64,
}

impl StoredBallot {
    fn tally(&self) -> Tally {
        Tally::new(self.seq, self.counts.iter().map(|(id, n)| (*id, *n))).with_choices(
            self.choices
                .iter()
                .map(|(choice, voters)| (choice.clone(), *voters)),
        )
    }

    /// The identity holding the vote of `identity`: itself, or the one it
    /// is an alias of; `None` when it has no vote.
    fn holder(&self, identity: &VoterHash) -> Option<VoterHash> {
        if self.votes.contains_key(identity) {
            Some(*identity)
        } else {
            self.aliases.get(identity).copied()
        }
    }

    /// Records a run of votes on this ballot: reads what the core's
    /// decision needs, as a SQL adapter reads its rows, lets the core
    /// decide, and applies the writes it returns.
    fn record(&mut self, votes: &[NewVote]) -> Vec<VoteOutcome> {
        let mut state = StoredVotes::new(self.seq, self.record.closed_at, self.record.method);
        for option in &self.record.options {
            let count = self.counts.get(&option.id).copied().unwrap_or(0);
            state.add_option(option.id, option.label_key, count);
        }
        for (choice, voters) in &self.choices {
            state.add_choice(choice.clone(), *voters);
        }
        for identity in votes.iter().flat_map(identities) {
            let Some(holder) = self.holder(identity) else {
                continue;
            };
            if holder != *identity {
                state.add_alias(*identity, holder);
            }
            if let Some((choice, receipt)) = self.votes.get(&holder) {
                state.add_vote(holder, choice.clone(), Some(receipt.clone()));
            }
        }
        for vote in votes {
            if self.receipt_status(&vote.receipt) != ReceiptStatus::Unknown {
                state.add_taken_receipt(vote.receipt.clone());
            }
            if let Some(invitation) = vote.invitation
                && self
                    .invitation(invitation)
                    .is_some_and(|stored| stored.revoked_at.is_some())
            {
                state.add_revoked_invitation(invitation);
            }
        }
        let BatchDecision { outcomes, writes } =
            decide_batch(state, votes, OptionId::new(u32::MAX));
        self.record
            .options
            .extend(writes.new_options.into_iter().cloned());
        for row in writes.new_votes.into_iter().chain(writes.changed_votes) {
            self.counted_receipts.insert(row.receipt.clone());
            self.votes.insert(row.voter, (row.choice, row.receipt));
        }
        for retired in writes.retired_receipts {
            self.counted_receipts.remove(&retired);
            self.retired_receipts.insert(retired);
        }
        for (invitation, at) in writes.used_invitations {
            if let Some(stored) = self
                .invitations
                .iter_mut()
                .find(|stored| stored.id == invitation)
            {
                stored.used_at.get_or_insert(at);
            }
        }
        self.aliases.extend(writes.new_aliases);
        for (option, by) in writes.count_changes {
            let count = self.counts.entry(option).or_insert(0);
            *count = count.saturating_add_signed(by);
        }
        self.counts.retain(|_, count| *count > 0);
        for (choice, by) in writes.choice_changes {
            let voters = self.choices.entry(choice).or_insert(0);
            *voters = voters.saturating_add_signed(by);
        }
        self.choices.retain(|_, voters| *voters > 0);
        self.seq = writes.tally_seq;
        outcomes
    }
}

impl StoredBallot {
    fn receipt_status(&self, receipt: &ReceiptCode) -> ReceiptStatus {
        if self.counted_receipts.contains(receipt) {
            ReceiptStatus::Counted
        } else if self.retired_receipts.contains(receipt) {
            ReceiptStatus::Replaced
        } else {
            ReceiptStatus::Unknown
        }
    }

    fn invitation(&self, id: InvitationId) -> Option<&InvitationRecord> {
        self.invitations.iter().find(|stored| stored.id == id)
    }
}

impl MemoryRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    fn ballots(&self) -> std::sync::MutexGuard<'_, HashMap<BallotId, StoredBallot>> {
        // A panic while holding the lock cannot leave a half-applied vote:
        // every mutation below happens after its last fallible check.
        self.ballots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl BallotRepository for MemoryRepository {
    async fn insert_ballot(&self, ballot: &BallotRecord) -> Result<(), RepositoryError> {
        let mut ballots = self.ballots();
        if ballots.contains_key(&ballot.id) {
            return Err(RepositoryError::Conflict);
        }
        ballots.insert(
            ballot.id,
            StoredBallot {
                record: ballot.clone(),
                votes: HashMap::new(),
                counted_receipts: HashSet::new(),
                retired_receipts: HashSet::new(),
                invitations: Vec::new(),
                aliases: HashMap::new(),
                counts: BTreeMap::new(),
                choices: BTreeMap::new(),
                seq: 0,
            },
        );
        Ok(())
    }

    async fn ballot(&self, id: &BallotId) -> Result<Option<BallotRecord>, RepositoryError> {
        Ok(self.ballots().get(id).map(|stored| stored.record.clone()))
    }

    async fn ballots_owned_by(
        &self,
        owner: &OwnerId,
        page: Page,
    ) -> Result<Vec<BallotRecord>, RepositoryError> {
        let ballots = self.ballots();
        let mut owned: Vec<&BallotRecord> = ballots
            .values()
            .map(|stored| &stored.record)
            .filter(|record| record.owner.as_ref() == Some(owner))
            .collect();
        owned.sort_by_key(|record| std::cmp::Reverse((record.created_at, *record.id.as_bytes())));
        Ok(owned
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn record_vote(&self, vote: &NewVote) -> Result<RecordedVote, RecordVoteError> {
        let mut outcomes = self.record_votes(std::slice::from_ref(vote)).await;
        outcomes.pop().unwrap_or_else(|| {
            Err(RecordVoteError::Unavailable(
                "the vote got no outcome".into(),
            ))
        })
    }

    async fn record_votes(&self, votes: &[NewVote]) -> Vec<VoteOutcome> {
        let mut ballots = self.ballots();
        let mut outcomes = Vec::with_capacity(votes.len());
        // Each run of consecutive votes on one ballot is decided as one
        // batch, which is the same as deciding its votes one by one.
        for run in votes.chunk_by(|a, b| a.ballot_id == b.ballot_id) {
            let ballot = run.first().map(|vote| vote.ballot_id);
            match ballot.and_then(|ballot| ballots.get_mut(&ballot)) {
                Some(stored) => outcomes.extend(stored.record(run)),
                None => outcomes.extend(run.iter().map(|_| Err(RecordVoteError::BallotNotFound))),
            }
        }
        outcomes
    }

    async fn vote_of(
        &self,
        ballot: &BallotId,
        voter: &VoterHash,
    ) -> Result<Option<Vec<OptionId>>, RepositoryError> {
        Ok(self.ballots().get(ballot).and_then(|stored| {
            let holder = stored.holder(voter)?;
            stored.votes.get(&holder).map(|(choice, _)| choice.clone())
        }))
    }

    async fn tally(&self, id: &BallotId) -> Result<Option<Tally>, RepositoryError> {
        Ok(self.ballots().get(id).map(StoredBallot::tally))
    }

    async fn close_ballot(
        &self,
        id: &BallotId,
        at: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        let mut ballots = self.ballots();
        let Some(stored) = ballots.get_mut(id) else {
            return Ok(false);
        };
        let closed_at = stored
            .record
            .closed_at
            .map_or(at, |earlier| earlier.min(at));
        stored.record.closed_at = Some(closed_at);
        Ok(true)
    }

    async fn delete_ballot(&self, id: &BallotId) -> Result<bool, RepositoryError> {
        // Key, rows and votes go in one step under the lock.
        Ok(self.ballots().remove(id).is_some())
    }

    async fn add_invitations(
        &self,
        ballot: &BallotId,
        invitations: &[NewInvitation],
        max_per_ballot: u32,
    ) -> Result<Vec<InvitationId>, AddInvitationsError> {
        let mut ballots = self.ballots();
        let Some(stored) = ballots.get_mut(ballot) else {
            return Err(AddInvitationsError::BallotNotFound);
        };
        let total = stored.invitations.len().saturating_add(invitations.len());
        if total > usize::try_from(max_per_ballot).unwrap_or(usize::MAX) {
            return Err(AddInvitationsError::LimitReached);
        }
        let last = stored
            .invitations
            .last()
            .map_or(0, |stored| stored.id.get());
        let mut ids = Vec::with_capacity(invitations.len());
        for (number, invitation) in (last.saturating_add(1)..).zip(invitations) {
            let id = InvitationId::new(number);
            stored.invitations.push(InvitationRecord {
                ballot_id: *ballot,
                id,
                token_hash: invitation.token_hash,
                label: invitation.label.clone(),
                created_at: invitation.created_at,
                used_at: None,
                revoked_at: None,
            });
            ids.push(id);
        }
        Ok(ids)
    }

    async fn invitations(
        &self,
        ballot: &BallotId,
    ) -> Result<Vec<InvitationRecord>, RepositoryError> {
        Ok(self
            .ballots()
            .get(ballot)
            .map(|stored| stored.invitations.clone())
            .unwrap_or_default())
    }

    async fn invitation(
        &self,
        token_hash: &InvitationHash,
    ) -> Result<Option<InvitationRecord>, RepositoryError> {
        Ok(self
            .ballots()
            .values()
            .flat_map(|stored| &stored.invitations)
            .find(|stored| stored.token_hash == *token_hash)
            .cloned())
    }

    async fn revoke_invitation(
        &self,
        ballot: &BallotId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> Result<Revoked, RepositoryError> {
        let mut ballots = self.ballots();
        let Some(invitation) = ballots
            .get_mut(ballot)
            .and_then(|stored| stored.invitations.iter_mut().find(|stored| stored.id == id))
        else {
            return Ok(Revoked::NotFound);
        };
        if invitation.used_at.is_some() {
            return Ok(Revoked::Used);
        }
        invitation.revoked_at.get_or_insert(at);
        Ok(Revoked::Revoked)
    }

    async fn receipt_status(
        &self,
        ballot: &BallotId,
        receipt: &ReceiptCode,
    ) -> Result<ReceiptStatus, RepositoryError> {
        Ok(self
            .ballots()
            .get(ballot)
            .map_or(ReceiptStatus::Unknown, |stored| {
                stored.receipt_status(receipt)
            }))
    }

    async fn bulletin(&self, ballot: &BallotId) -> Result<Option<Bulletin>, RepositoryError> {
        Ok(self.ballots().get(ballot).map(|stored| {
            let mut rows: Vec<BulletinRow> = stored
                .votes
                .values()
                .map(|(choice, receipt)| BulletinRow {
                    receipt: receipt.clone(),
                    choice: choice.clone(),
                })
                .collect();
            rows.sort_by(|a, b| a.receipt.cmp(&b.receipt));
            Bulletin {
                tally_seq: stored.seq,
                rows,
            }
        }))
    }

    async fn transfer_ballots(&self, from: &OwnerId, to: &OwnerId) -> Result<u64, RepositoryError> {
        let mut moved: u64 = 0;
        for stored in self.ballots().values_mut() {
            if stored.record.owner.as_ref() == Some(from) {
                stored.record.owner = Some(to.clone());
                moved = moved.saturating_add(1);
            }
        }
        Ok(moved)
    }
}
