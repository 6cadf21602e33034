//! A ballot repository in a map.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use oponn_core::crypto::LabelKey;
use oponn_core::domain::{BallotId, OptionId, OwnerId, Tally, VoterHash};
use oponn_core::ports::{
    BallotRecord, BallotRepository, NewVote, Page, RecordVoteError, RecordedVote, RepositoryError,
    VoteTarget,
};
use time::OffsetDateTime;

/// Ballots, votes and tallies in process memory.
///
/// One mutex guards the whole map: every operation is a few map look-ups,
/// so holding it across a vote is what makes "check voter, add option,
/// count" atomic, as the port requires.
#[derive(Default)]
pub struct MemoryRepository {
    ballots: Mutex<HashMap<BallotId, StoredBallot>>,
}

struct StoredBallot {
    record: BallotRecord,
    /// Which option each vote counted toward, by the identity holding it.
    votes: HashMap<VoterHash, OptionId>,
    /// Other identities of a vote's voter, each to the identity holding it.
    aliases: HashMap<VoterHash, VoterHash>,
    counts: BTreeMap<OptionId, u64>,
    seq: u64,
}

impl StoredBallot {
    fn tally(&self) -> Tally {
        Tally::new(self.seq, self.counts.iter().map(|(id, n)| (*id, *n)))
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

    /// Makes each of `identities` without a vote an alias of `holder`'s.
    fn link(&mut self, identities: &[VoterHash], holder: VoterHash) {
        for identity in identities {
            if self.holder(identity).is_none() {
                self.aliases.insert(*identity, holder);
            }
        }
    }

    fn option_with_key(&self, key: &LabelKey) -> Option<OptionId> {
        self.record
            .options
            .iter()
            .find(|option| option.label_key == *key)
            .map(|option| option.id)
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
        let mut ballots = self.ballots();
        let stored = ballots
            .get_mut(&vote.ballot_id)
            .ok_or(RecordVoteError::BallotNotFound)?;
        if stored
            .record
            .closed_at
            .is_some_and(|closed| closed <= vote.cast_at)
        {
            return Err(RecordVoteError::BallotClosed);
        }
        // Every identity the voter presents; the first with a vote holds it.
        let identities: Vec<VoterHash> = std::iter::once(vote.voter)
            .chain(vote.aliases.iter().copied())
            .collect();
        let holder = identities
            .iter()
            .find_map(|identity| stored.holder(identity))
            .unwrap_or(vote.voter);
        let previous = stored.votes.get(&holder).copied();
        if previous.is_some() && !vote.allow_change {
            return Err(RecordVoteError::AlreadyVoted);
        }
        let option_id = match &vote.target {
            VoteTarget::Existing(id) => {
                if !stored.record.options.iter().any(|o| o.id == *id) {
                    return Err(RecordVoteError::UnknownOption);
                }
                *id
            }
            VoteTarget::WriteIn(option) => match stored.option_with_key(&option.label_key) {
                Some(existing) => existing,
                None if stored.record.options.iter().any(|o| o.id == option.id) => {
                    return Err(RecordVoteError::OptionIdTaken);
                }
                None => {
                    stored.record.options.push(option.clone());
                    option.id
                }
            },
        };
        if previous == Some(option_id) {
            // The same choice again: nothing moves, but every identity
            // presented now leads to the vote.
            stored.link(&identities, holder);
            return Ok(RecordedVote {
                option_id,
                tally: stored.tally(),
                changed_from: None,
            });
        }
        // Under the one lock, the old option loses the vote as the new one
        // gains it: no reader sees both or neither.
        if let Some(old) = previous {
            if let Some(count) = stored.counts.get_mut(&old) {
                *count = count.saturating_sub(1);
            }
            stored.counts.retain(|_, count| *count > 0);
        }
        stored.votes.insert(holder, option_id);
        stored.link(&identities, holder);
        *stored.counts.entry(option_id).or_insert(0) += 1;
        stored.seq += 1;
        Ok(RecordedVote {
            option_id,
            tally: stored.tally(),
            changed_from: previous,
        })
    }

    async fn vote_of(
        &self,
        ballot: &BallotId,
        voter: &VoterHash,
    ) -> Result<Option<OptionId>, RepositoryError> {
        Ok(self.ballots().get(ballot).and_then(|stored| {
            let holder = stored.holder(voter)?;
            stored.votes.get(&holder).copied()
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
