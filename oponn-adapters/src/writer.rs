//! A SQL repository's vote writer, taken in turn by vote batches. Whoever
//! holds the turn commits every batch waiting for it, of any ballot, in
//! one transaction: group commit across ballots. A vote spread over many
//! ballots then shares its transaction and its flush to disk as votes on
//! one ballot already do. On SQLite no batch waits in the busy handler
//! (which sleeps and polls, up to 100 ms a sleep); on PostgreSQL a vote on
//! one of many ballots no longer pays a transaction and a commit of its
//! own.
//!
//! A turn takes its batches in ballot id order, so its transaction locks
//! their ballots in that order: two turns, on one instance or on several
//! sharing the database, never wait for each other's locks in a cycle.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use oponn_core::domain::BallotId;
use oponn_core::ports::NewVote;
use oponn_core::recording::VoteOutcome;
use tokio::sync::oneshot;

use crate::sql::{BatchDialect, batch_failed, record_batches};

/// The most votes one turn commits together (a batch larger than this
/// still goes alone): it bounds how long a transaction holds its locks
/// (SQLite's write lock, PostgreSQL's ballot rows), and so how long a read
/// or a write of those ballots waits for it.
pub(crate) const MAX_VOTES_PER_TURN: usize = 2048;

/// A batch of one ballot's votes waiting for the writer.
struct Waiting {
    ballot: BallotId,
    votes: Vec<NewVote>,
    reply: oneshot::Sender<Vec<VoteOutcome>>,
}

/// The turn and the batches waiting for it.
#[derive(Default)]
pub(crate) struct VoteWriter {
    /// Held for a whole transaction; tokio's mutex is fair (first come,
    /// first served) and wakes the next holder at once.
    turn: tokio::sync::Mutex<()>,
    waiting: Mutex<VecDeque<Waiting>>,
}

impl std::fmt::Debug for VoteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoteWriter").finish_non_exhaustive()
    }
}

impl VoteWriter {
    /// Records `votes`, all on `ballot`, in the next transaction to start:
    /// this caller's own, or one another caller commits for it.
    pub(crate) async fn record<D: BatchDialect + Sync>(
        &self,
        dialect: &D,
        ballot: BallotId,
        votes: Vec<NewVote>,
    ) -> Vec<VoteOutcome> {
        let count = votes.len();
        let (reply, mut answer) = oneshot::channel();
        self.queue().push_back(Waiting {
            ballot,
            votes,
            reply,
        });
        loop {
            // A turn that took this batch answers it: waiting for the
            // answer rather than for the turn, a batch another caller
            // committed never queues for the turn only to find that out.
            let _turn = tokio::select! {
                biased;
                outcomes = &mut answer => {
                    return outcomes.unwrap_or_else(|_| {
                        batch_failed(
                            count,
                            "the transaction carrying the batch was interrupted; its outcome is unknown",
                        )
                    });
                }
                turn = self.turn.lock() => turn,
            };
            let batches = self.take_turn();
            if batches.is_empty() {
                // Taken by the turn before this one, whose answer is on
                // its way.
                continue;
            }
            let groups: Vec<(&BallotId, &[NewVote])> = batches
                .iter()
                .map(|batch| (&batch.ballot, batch.votes.as_slice()))
                .collect();
            let outcomes = record_batches(dialect, &groups).await;
            for (batch, outcome) in batches.into_iter().zip(outcomes) {
                // A caller that stopped waiting is no longer listening;
                // the outcome stands either way.
                let _ = batch.reply.send(outcome);
            }
            // This batch was in the turn (or a batch before it was, and
            // this one waits for the next turn): the loop finds out which.
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The batches one turn commits: those first in line, up to
    /// [`MAX_VOTES_PER_TURN`] votes (and at least one batch), in ballot id
    /// order (a ballot's batches keep theirs).
    fn take_turn(&self) -> Vec<Waiting> {
        let mut queue = self.queue();
        let mut taken = Vec::new();
        let mut votes = 0usize;
        while let Some(next) = queue.front() {
            let after = votes.saturating_add(next.votes.len());
            if !taken.is_empty() && after > MAX_VOTES_PER_TURN {
                break;
            }
            votes = after;
            taken.extend(queue.pop_front());
        }
        drop(queue);
        taken.sort_by_key(|batch| batch.ballot);
        taken
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::sqlite::{test_vote, with_test_repository};

    /// `count` votes on one ballot, as one waiting batch.
    fn waiting(writer: &VoteWriter, count: usize) {
        waiting_on(writer, 7, count);
    }

    /// `count` votes on the ballot whose id is `ballot` repeated, as one
    /// waiting batch.
    fn waiting_on(writer: &VoteWriter, ballot: u8, count: usize) {
        let vote = test_vote(BallotId::from_bytes([ballot; 16]), 1);
        let (reply, _) = oneshot::channel();
        writer.queue().push_back(Waiting {
            ballot: vote.ballot_id,
            votes: vec![vote; count],
            reply,
        });
    }

    fn sizes(batches: &[Waiting]) -> Vec<usize> {
        batches.iter().map(|batch| batch.votes.len()).collect()
    }

    #[test]
    fn a_batch_another_turn_answered_returns_without_waiting_for_the_turn() {
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};

        use oponn_core::ports::RecordVoteError;

        with_test_repository(|repository| async move {
            let writer = VoteWriter::default();
            // A turn in progress: it holds the turn throughout.
            let _turn = writer.turn.lock().await;
            let vote = test_vote(BallotId::from_bytes([7; 16]), 1);
            let mut recording = pin!(writer.record(&repository, vote.ballot_id, vec![vote]));
            let mut context = Context::from_waker(Waker::noop());
            assert!(recording.as_mut().poll(&mut context).is_pending());
            // The turn takes the batch and answers it, and goes on
            // (committing others, say) before it lets the turn go.
            let taken = writer.take_turn();
            assert_eq!(sizes(&taken), [1]);
            for batch in taken {
                batch
                    .reply
                    .send(vec![Err(RecordVoteError::BallotNotFound)])
                    .unwrap();
            }
            // Answered while the turn is still held: it need not take it.
            let Poll::Ready(outcomes) = recording.as_mut().poll(&mut context) else {
                panic!("an answered batch waited for the turn");
            };
            assert!(matches!(
                outcomes.as_slice(),
                [Err(RecordVoteError::BallotNotFound)]
            ));
        });
    }

    #[test]
    fn a_turn_takes_its_batches_in_ballot_order_keeping_each_ballots_own() {
        let writer = VoteWriter::default();
        waiting_on(&writer, 9, 1);
        waiting_on(&writer, 3, 2);
        waiting_on(&writer, 9, 3);
        waiting_on(&writer, 5, 4);
        let taken = writer.take_turn();
        let order: Vec<(u8, usize)> = taken
            .iter()
            .map(|batch| (batch.ballot.as_bytes()[0], batch.votes.len()))
            .collect();
        // Two turns lock their ballots in one order; ballot 9's two
        // batches stay in the order they came.
        assert_eq!(order, [(3, 2), (5, 4), (9, 1), (9, 3)]);
    }

    #[test]
    fn a_turn_takes_the_batches_first_in_line_up_to_its_vote_limit() {
        let writer = VoteWriter::default();
        waiting(&writer, MAX_VOTES_PER_TURN - 10);
        waiting(&writer, 10);
        waiting(&writer, 1);
        // Exactly the limit: the first two; the third waits for the next turn.
        assert_eq!(sizes(&writer.take_turn()), [MAX_VOTES_PER_TURN - 10, 10]);
        assert_eq!(sizes(&writer.take_turn()), [1]);
        assert!(writer.take_turn().is_empty());
    }

    #[test]
    fn a_batch_over_the_limit_still_goes_alone() {
        let writer = VoteWriter::default();
        waiting(&writer, MAX_VOTES_PER_TURN + 1);
        waiting(&writer, 1);
        assert_eq!(sizes(&writer.take_turn()), [MAX_VOTES_PER_TURN + 1]);
        assert_eq!(sizes(&writer.take_turn()), [1]);
    }
}
