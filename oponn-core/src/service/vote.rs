//! Casting a vote: the service's checks (status, eligibility, the choice,
//! write-ins), then group commit. Each vote joins its ballot's queue
//! (`batch.rs`); whoever takes the ballot's turn commits the whole queue
//! under the ballot's lock with one [`record_votes`] call, which storage
//! decides with [`decide_batch`] in one transaction, then publishes the
//! newest tally once and answers every voter.
//!
//! [`record_votes`]: crate::ports::BallotRepository::record_votes
//! [`decide_batch`]: crate::recording::decide_batch

use std::sync::Arc;

use self::BatchRefusal::{Refused, Retry};
use super::batch::{self, Pending};
use super::{
    BallotError, BallotService, CastVoteError, Dependency, Unavailable, seal_option, unlock,
};
use crate::domain::{
    BallotId, BallotMethod, BallotOption, Eligibility, OptionId, ReceiptCode, Schedule, Status,
    Tally, TallyEvent, VoterId, WriteIn,
};
use crate::ports::{BallotRecord, NewVote, OptionRecord, RecordVoteError, VoteTarget};

/// How many times a write-in is retried when another instance took its
/// option id at the same moment (only possible while the lock is down).
const WRITE_IN_ATTEMPTS: usize = 3;

/// What a voter chose, as a front end read it. Which shapes a ballot takes
/// depends on its [`BallotMethod`]: a single-choice ballot takes one
/// option or a write-in; an approval ballot a set of options (a write-in
/// among them); a ranked one a ranking. One option is also a set of one
/// and a ranking of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteChoice {
    /// One of the ballot's options.
    Option(OptionId),
    /// Their own option, as typed.
    WriteIn(String),
    /// Several of the ballot's options, and their own, if they wrote one
    /// (approval).
    Options {
        /// The options chosen.
        options: Vec<OptionId>,
        /// Their own option, as typed.
        write_in: Option<String>,
    },
    /// Options ranked, most preferred first.
    Ranking(Vec<OptionId>),
}

impl VoteChoice {
    /// Whether the choice includes a write-in (which may add an option).
    pub fn has_write_in(&self) -> bool {
        matches!(
            self,
            VoteChoice::WriteIn(_)
                | VoteChoice::Options {
                    write_in: Some(_),
                    ..
                }
        )
    }

    /// The ranking that `(option, rank)` pairs give (rank 1 the most
    /// preferred; options left unranked are left out), as a form with one
    /// rank field per option sends it.
    ///
    /// # Errors
    /// [`CastVoteError::RankGivenTwice`] when two options share a rank;
    /// [`CastVoteError::RankedTwice`] when an option is ranked twice;
    /// [`CastVoteError::NothingRanked`] when there is no pair.
    pub fn ranking_by_rank(ranks: &[(OptionId, u32)]) -> Result<Self, CastVoteError> {
        let mut ranks = ranks.to_vec();
        ranks.sort_by_key(|&(option, rank)| (rank, option));
        if ranks.windows(2).any(|pair| pair[0].1 == pair[1].1) {
            return Err(CastVoteError::RankGivenTwice);
        }
        let ranking: Vec<OptionId> = ranks.into_iter().map(|(option, _)| option).collect();
        let mut seen = ranking.clone();
        seen.sort_unstable();
        if seen.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(CastVoteError::RankedTwice);
        }
        if ranking.is_empty() {
            return Err(CastVoteError::NothingRanked);
        }
        Ok(VoteChoice::Ranking(ranking))
    }
}

/// An accepted, durable vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteReceipt {
    /// The options the vote counted toward: one, a set (in id order) or a
    /// ranking (in rank order).
    pub choice: Vec<OptionId>,
    /// The tally including the vote.
    pub tally: Tally,
    /// The choice the voter's earlier vote was moved from, when this was a
    /// change.
    pub changed_from: Option<Vec<OptionId>>,
    /// The vote's receipt: the code by which the voter checks that their
    /// vote is in the count. A change gives a new one and retires the old.
    pub receipt: ReceiptCode,
}

impl VoteReceipt {
    /// The first option of the choice: the one a single-choice vote names.
    pub fn option_id(&self) -> OptionId {
        self.choice.first().copied().unwrap_or(OptionId::new(0))
    }
}

/// Why a vote of a batch got no receipt.
enum BatchRefusal {
    /// A rule refused it, or a dependency failed.
    Refused(CastVoteError),
    /// Its new write-in's option id was taken by another instance, or its
    /// receipt was given before: retry (with a new receipt).
    Retry,
}

/// Why every vote of a batch failed: the one failure they share.
#[derive(Debug, thiserror::Error)]
#[error("the vote's batch could not be checked")]
struct BatchFailed(#[source] Arc<Unavailable>);

impl BallotService {
    /// Casts `voter`'s vote on ballot `id`, and returns once it is durable.
    ///
    /// The vote joins the ballot's queue (group commit, `batch.rs`): the
    /// first caller to take the ballot's turn commits every queued vote as
    /// one batch (`commit_batch`) under the ballot's
    /// lock. The batch is checked here (the ballot exists and is active
    /// now, the voter is eligible, the choice is one of its options or an
    /// allowed, valid write-in, merged into an equal existing option) and
    /// recorded by one [`record_votes`] call, in which storage decides each
    /// vote with [`decide_batch`]: one vote per voter under any identity
    /// they present (a signed-in account and the browser it votes from are
    /// one voter; see [`VoterId::from_browser`]). After the commit the
    /// newest tally is published once, then each voter is answered.
    ///
    /// [`record_votes`]: crate::ports::BallotRepository::record_votes
    /// [`decide_batch`]: crate::recording::decide_batch
    ///
    /// # Errors
    /// A [`CastVoteError`] naming the broken rule; nothing is recorded.
    pub async fn cast_vote(
        &self,
        id: &BallotId,
        voter: &VoterId,
        choice: VoteChoice,
    ) -> Result<VoteReceipt, CastVoteError> {
        let (queue, reply) = self.batches.enqueue(*id, voter.clone(), choice);
        let outcome =
            batch::await_reply(&queue, reply, |votes| self.commit_batch(id, &queue, votes)).await;
        outcome.unwrap_or_else(|_| {
            // The request that was committing this vote's batch was
            // cancelled; the vote may or may not have been recorded.
            Err(CastVoteError::Unavailable(Unavailable::new(
                Dependency::Storage,
                "the vote's batch was interrupted; its outcome is unknown",
            )))
        })
    }

    /// Checks and records one batch of votes on ballot `id` (group commit),
    /// then publishes the newest tally once and answers each voter.
    async fn commit_batch(
        &self,
        id: &BallotId,
        queue: &batch::BallotQueue,
        mut votes: Vec<Pending>,
    ) {
        let guard = self.lock(id).await;
        // Votes that arrived while the lock was awaited (another instance
        // held it) join this batch: one hand-off of the lock commits them
        // all, instead of each batch waiting for a hand-off of its own.
        votes.extend(queue.drain_at_most(batch::MAX_BATCH.saturating_sub(votes.len())));
        let outcomes = self.check_and_record(id, &votes).await;
        unlock(id, guard).await;
        if votes.iter().any(|vote| vote.choice.has_write_in()) {
            // The ballot may have gained an option.
            self.refresh(id);
        }
        let newest = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok())
            .map(|receipt| &receipt.tally)
            .max_by_key(|tally| tally.seq())
            .cloned();
        if let Some(tally) = newest {
            let event = TallyEvent {
                ballot_id: *id,
                tally,
            };
            if let Err(error) = self.ports.broadcaster.publish(&event).await {
                // The votes are durable; watchers catch up on their next event.
                tracing::warn!(ballot = %id, %error, "publishing a tally failed");
            }
        }
        for (mut pending, outcome) in votes.into_iter().zip(outcomes) {
            let answer = match outcome {
                // Another instance added a different write-in under the
                // same id in the same instant, or the receipt drawn was
                // given before: retry in a later batch, with a new receipt.
                Err(Retry) if pending.attempts + 1 < WRITE_IN_ATTEMPTS => {
                    pending.attempts += 1;
                    queue.push(pending);
                    continue;
                }
                Err(Retry) => Err(CastVoteError::Unavailable(Unavailable::new(
                    Dependency::Storage,
                    "a write-in's option id or a receipt kept colliding",
                ))),
                Err(Refused(error)) => Err(error),
                Ok(receipt) => Ok(receipt),
            };
            // A voter who stopped waiting is no longer listening; the
            // outcome stands either way.
            let _ = pending.reply.send(answer);
        }
    }

    /// Under the ballot's lock: one read of the ballot, each vote's checks
    /// in arrival order, then one batch write.
    async fn check_and_record(
        &self,
        id: &BallotId,
        votes: &[Pending],
    ) -> Vec<Result<VoteReceipt, BatchRefusal>> {
        let all = |error: &dyn Fn() -> CastVoteError| {
            votes.iter().map(|_| Err(Refused(error()))).collect()
        };
        // Possibly cached: storage refuses votes on a ballot closed or
        // deleted since, and write-ins whose id was taken meanwhile.
        let record = match self.batch_record(id).await {
            Ok(record) => record,
            Err(BallotError::NotFound) => return all(&|| CastVoteError::NotFound),
            Err(BallotError::Unavailable(error)) => {
                // One failure, told to every vote of the batch with its
                // whole chain of causes.
                let dependency = error.dependency();
                let cause = Arc::new(error);
                return all(&|| {
                    CastVoteError::Unavailable(Unavailable::new(
                        dependency,
                        BatchFailed(Arc::clone(&cause)),
                    ))
                });
            }
        };
        let now = self.now();
        match Schedule::from_parts(record.starts_at, record.ends_at)
            .status_at(now, record.closed_at)
        {
            Status::Pending { .. } => return all(&|| CastVoteError::NotOpenYet),
            Status::Ended => return all(&|| CastVoteError::Ended),
            Status::Active { .. } => {}
        }
        let mut outcomes: Vec<Option<Result<VoteReceipt, BatchRefusal>>> =
            Vec::with_capacity(votes.len());
        let mut to_record = Vec::with_capacity(votes.len());
        // The batch's write-ins, as options not yet stored.
        let mut written_in: Vec<OptionRecord> = Vec::new();
        for pending in votes {
            if !record.settings.eligibility.admits(&pending.voter) {
                let refusal = match record.settings.eligibility {
                    Eligibility::Invited => CastVoteError::InvitationRequired,
                    _ => CastVoteError::SignInRequired,
                };
                outcomes.push(Some(Err(Refused(refusal))));
                continue;
            }
            match self
                .vote_targets(&record, &mut written_in, &pending.choice)
                .await
            {
                Ok(choice) => {
                    to_record.push(NewVote {
                        ballot_id: *id,
                        voter: self.voter_hasher.hash(id, &pending.voter),
                        aliases: self.voter_hasher.aliases(id, &pending.voter),
                        choice,
                        cast_at: now,
                        allow_change: record.settings.allow_vote_change,
                        receipt: ReceiptCode::generate(),
                        invitation: pending.voter.invitation(),
                    });
                    outcomes.push(None);
                }
                Err(error) => outcomes.push(Some(Err(Refused(error)))),
            }
        }
        let mut recorded = self
            .ports
            .repository
            .record_votes(&to_record)
            .await
            .into_iter();
        outcomes
            .into_iter()
            .map(|decided| {
                decided.unwrap_or_else(|| match recorded.next() {
                    Some(Ok(recorded)) => Ok(VoteReceipt {
                        choice: recorded.choice,
                        tally: recorded.tally,
                        changed_from: recorded.changed_from,
                        receipt: recorded.receipt,
                    }),
                    Some(Err(RecordVoteError::OptionIdTaken | RecordVoteError::ReceiptTaken)) => {
                        Err(Retry)
                    }
                    Some(Err(error)) => Err(Refused(error.into())),
                    None => Err(Refused(CastVoteError::Unavailable(Unavailable::new(
                        Dependency::Storage,
                        "storage answered fewer votes than it was given",
                    )))),
                })
            })
            .collect()
    }

    /// The options `choice` counts toward, by the ballot's method, in
    /// order; a choice of another shape than the method takes is refused.
    ///
    /// A write-in new to the ballot becomes an option of `pending`, the
    /// batch's write-ins not yet stored, once the vote passes every check
    /// here: a later vote of the batch naming the same text (or the new
    /// option's id) counts toward it, whether or not storage accepts the
    /// vote that wrote it in, and the next new one takes the following id.
    async fn vote_targets(
        &self,
        record: &BallotRecord,
        pending: &mut Vec<OptionRecord>,
        choice: &VoteChoice,
    ) -> Result<Vec<VoteTarget>, CastVoteError> {
        let known = |option: &OptionId| -> Result<VoteTarget, CastVoteError> {
            if record.options.iter().any(|o| o.id == *option) {
                return Ok(VoteTarget::Existing(*option));
            }
            pending
                .iter()
                .find(|o| o.id == *option)
                .map(|o| VoteTarget::WriteIn(o.clone()))
                .ok_or(CastVoteError::InvalidOption)
        };
        let wrong_shape = || CastVoteError::WrongShape {
            method: record.method,
        };
        let (targets, written) = match record.method {
            BallotMethod::Single => match choice {
                VoteChoice::Option(option) => (vec![known(option)?], None),
                VoteChoice::WriteIn(text) => {
                    let (target, new) = self.write_in_target(record, pending, text).await?;
                    (vec![target], new)
                }
                VoteChoice::Options { .. } | VoteChoice::Ranking(_) => return Err(wrong_shape()),
            },
            BallotMethod::Approval {
                min_choices,
                max_choices,
            } => {
                let VoteChoice::Options { options, write_in } = choice else {
                    return Err(wrong_shape());
                };
                let mut targets = Vec::with_capacity(options.len() + 1);
                let mut chosen: Vec<OptionId> = Vec::with_capacity(options.len() + 1);
                for option in options {
                    targets.push(known(option)?);
                    chosen.push(*option);
                }
                let mut written = None;
                if let Some(text) = write_in {
                    let (target, new) = self.write_in_target(record, pending, text).await?;
                    chosen.push(match &target {
                        VoteTarget::Existing(option) => *option,
                        VoteTarget::WriteIn(option) => option.id,
                    });
                    targets.push(target);
                    written = new;
                }
                chosen.sort_unstable();
                chosen.dedup();
                let count = u32::try_from(chosen.len()).unwrap_or(u32::MAX);
                if count < min_choices {
                    return Err(CastVoteError::TooFewChoices { min: min_choices });
                }
                if count > max_choices {
                    return Err(CastVoteError::TooManyChoices { max: max_choices });
                }
                (targets, written)
            }
            BallotMethod::Ranked => {
                let ranking = match choice {
                    VoteChoice::Ranking(ranking) => ranking,
                    VoteChoice::WriteIn(_)
                    | VoteChoice::Options {
                        write_in: Some(_), ..
                    } => return Err(CastVoteError::WriteInsNotAllowed),
                    VoteChoice::Option(_) | VoteChoice::Options { .. } => {
                        return Err(wrong_shape());
                    }
                };
                if ranking.is_empty() {
                    return Err(CastVoteError::NothingRanked);
                }
                let mut seen = std::collections::HashSet::with_capacity(ranking.len());
                let mut targets = Vec::with_capacity(ranking.len());
                for option in ranking {
                    if !seen.insert(*option) {
                        return Err(CastVoteError::RankedTwice);
                    }
                    targets.push(known(option)?);
                }
                (targets, None)
            }
        };
        pending.extend(written);
        Ok(targets)
    }

    /// The option a write-in counts toward: an equal stored option, an
    /// equal write-in of this batch, or a new option (also returned, for
    /// the caller to add to `pending` once the vote passes its checks).
    async fn write_in_target(
        &self,
        record: &BallotRecord,
        pending: &[OptionRecord],
        text: &str,
    ) -> Result<(VoteTarget, Option<OptionRecord>), CastVoteError> {
        if !record.allow_write_in {
            return Err(CastVoteError::WriteInsNotAllowed);
        }
        let write_in = WriteIn::parse(text).map_err(CastVoteError::InvalidWriteIn)?;
        let key = self.data_key(record).await.map_err(Unavailable::from)?;
        let label_key = key.label_key(&record.id, &write_in.comparison_key());
        if let Some(existing) = record.options.iter().find(|o| o.label_key == label_key) {
            return Ok((VoteTarget::Existing(existing.id), None));
        }
        if let Some(written) = pending.iter().find(|o| o.label_key == label_key) {
            return Ok((VoteTarget::WriteIn(written.clone()), None));
        }
        let all = || record.options.iter().chain(pending);
        let written_in = all().filter(|o| o.write_in).count();
        if written_in >= self.max_write_in_options {
            return Err(CastVoteError::WriteInLimitReached {
                limit: self.max_write_in_options,
            });
        }
        let next = all()
            .map(|o| o.id.get())
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or(CastVoteError::WriteInLimitReached {
                limit: self.max_write_in_options,
            })?;
        let option = BallotOption::new(OptionId::new(next), write_in.into_label(), true);
        let sealed = seal_option(&key, &record.id, &option);
        Ok((VoteTarget::WriteIn(sealed.clone()), Some(sealed)))
    }
}
