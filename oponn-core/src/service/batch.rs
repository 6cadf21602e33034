//! Group commit: concurrent votes on one ballot share one lock, one read of
//! the ballot, one transaction and one broadcast.
//!
//! Each vote joins its ballot's queue with a one-shot reply channel, then
//! waits for whichever comes first: its reply, or the ballot's turn (an
//! async mutex). Whoever gets the turn drains the whole queue, its own vote
//! and everyone else's, commits the batch and answers each voter. Nothing
//! waits for a timer: a batch is simply every vote that arrived while the
//! previous one was being committed, so an idle ballot commits a lone vote
//! at once and a busy one amortizes the flush over many.
//!
//! If a turn holder is dropped mid-batch (its request cancelled), the votes
//! it took learn that their outcome is unknown, and the votes still queued
//! are drained by the next waiter: no vote waits for a turn that will
//! never come.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_channel::oneshot;
use futures_util::future::{Either, select};
use futures_util::lock::Mutex as TurnMutex;

use crate::domain::{BallotId, VoterId};
use crate::service::{CastVoteError, VoteChoice, VoteReceipt};

/// Most votes committed in one batch.
pub(crate) const MAX_BATCH: usize = 256;

/// One vote waiting for its batch.
pub(crate) struct Pending {
    pub(crate) voter: VoterId,
    pub(crate) choice: VoteChoice,
    /// How many batches this vote has already been part of (a write-in
    /// whose option id another instance took is retried a few times).
    pub(crate) attempts: usize,
    pub(crate) reply: oneshot::Sender<Result<VoteReceipt, CastVoteError>>,
}

/// A ballot's queue and turn.
#[derive(Default)]
pub(crate) struct BallotQueue {
    /// A plain mutex: held only to push or drain, never across an await.
    pending: Mutex<Vec<Pending>>,
    /// The right to commit a batch; an async mutex because its holder
    /// awaits storage while holding it.
    turn: TurnMutex<()>,
}

/// Every ballot's queue.
#[derive(Default)]
pub(crate) struct Batches {
    /// A plain mutex over the map: held only to find or insert a queue.
    queues: Mutex<HashMap<BallotId, Arc<BallotQueue>>>,
}

impl Batches {
    /// Queues a vote; returns the queue and the vote's reply.
    pub(crate) fn enqueue(
        &self,
        ballot: BallotId,
        voter: VoterId,
        choice: VoteChoice,
    ) -> (
        Arc<BallotQueue>,
        oneshot::Receiver<Result<VoteReceipt, CastVoteError>>,
    ) {
        let (reply, receiver) = oneshot::channel();
        let queue = Arc::clone(
            self.queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(ballot)
                .or_default(),
        );
        queue.push(Pending {
            voter,
            choice,
            attempts: 0,
            reply,
        });
        (queue, receiver)
    }

    /// How many votes on `ballot` wait for a batch on this instance.
    pub(crate) fn waiting(&self, ballot: &BallotId) -> usize {
        let queue = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ballot)
            .cloned();
        queue.map_or(0, |queue| queue.len())
    }

    /// Drops the queues nobody uses; returns how many.
    pub(crate) fn prune_idle(&self) -> usize {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let before = queues.len();
        queues.retain(|_, queue| Arc::strong_count(queue) > 1 || !queue.is_empty());
        before - queues.len()
    }
}

impl BallotQueue {
    pub(crate) fn push(&self, pending: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pending);
    }

    fn is_empty(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Takes up to [`MAX_BATCH`] votes, oldest first.
    pub(crate) fn drain(&self) -> Vec<Pending> {
        self.drain_at_most(MAX_BATCH)
    }

    /// Takes up to `most` votes, oldest first.
    pub(crate) fn drain_at_most(&self, most: usize) -> Vec<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let take = pending.len().min(most);
        pending.drain(..take).collect()
    }
}

/// Waits for `receiver`'s reply, committing batches whenever this caller
/// gets the ballot's turn first; `commit` commits one drained batch.
pub(crate) async fn await_reply<F, Fut>(
    queue: &BallotQueue,
    mut receiver: oneshot::Receiver<Result<VoteReceipt, CastVoteError>>,
    mut commit: F,
) -> Result<Result<VoteReceipt, CastVoteError>, oneshot::Canceled>
where
    F: FnMut(Vec<Pending>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        match select(receiver, queue.turn.lock()).await {
            Either::Left((reply, _)) => return reply,
            Either::Right((turn, pending_reply)) => {
                receiver = pending_reply;
                loop {
                    let batch = queue.drain();
                    if batch.is_empty() {
                        break;
                    }
                    commit(batch).await;
                    // Once this caller's own vote is answered it hands the
                    // turn on (by returning), so no request commits other
                    // people's votes forever under sustained load.
                    if let Some(reply) = receiver.try_recv()? {
                        return Ok(reply);
                    }
                }
                drop(turn);
            }
        }
    }
}
