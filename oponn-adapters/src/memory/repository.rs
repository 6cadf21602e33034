//! A ballot repository in a map.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use oponn_core::domain::{BallotId, OptionId, OwnerId, Tally, VoterHash};
use oponn_core::ports::{
    BallotRecord, BallotRepository, NewVote, Page, RecordVoteError, RecordedVote, RepositoryError,
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
    /// Each vote's choice, by the identity holding it.
    votes: HashMap<VoterHash, Vec<OptionId>>,
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
            if let Some(choice) = self.votes.get(&holder) {
                state.add_vote(holder, choice.clone());
            }
        }
        let BatchDecision { outcomes, writes } =
            decide_batch(state, votes, OptionId::new(u32::MAX));
        self.record
            .options
            .extend(writes.new_options.into_iter().cloned());
        for row in writes.new_votes.into_iter().chain(writes.changed_votes) {
            self.votes.insert(row.voter, row.choice);
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
            stored.votes.get(&holder).cloned()
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
}
