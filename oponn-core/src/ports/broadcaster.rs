//! The broadcaster port: new tallies to everyone watching a ballot.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;

use super::BoxError;
use crate::domain::{BallotId, Tally, TallyEvent};

/// A stream of one ballot's tallies.
pub type TallyStream = Pin<Box<dyn Stream<Item = Tally> + Send + 'static>>;

/// Carries tallies from the instance that accepted a vote to every watcher
/// of that ballot, on every instance that shares the implementation's backend.
///
/// Delivery may coalesce: a slow subscriber may miss intermediate tallies,
/// but it must eventually receive the latest one published. Tallies hold
/// option ids and counts only, never ballot text.
#[async_trait]
pub trait Broadcaster: Send + Sync + 'static {
    /// Sends `event` to the ballot's current subscribers.
    ///
    /// # Errors
    /// Implementations MUST return [`BroadcastError::Unavailable`] when the
    /// event could not be handed to their backend.
    async fn publish(&self, event: &TallyEvent) -> Result<(), BroadcastError>;

    /// Subscribes to `ballot`'s tallies. Every tally published after this
    /// returns reaches the stream, save those coalesced away by a later one.
    ///
    /// # Errors
    /// Implementations MUST return [`BroadcastError::Unavailable`] when
    /// they cannot subscribe.
    async fn subscribe(&self, ballot: &BallotId) -> Result<TallyStream, BroadcastError>;

    /// Drops per-ballot state with no subscriber; returns how many entries
    /// were dropped. Called periodically by the reaper.
    fn prune_idle(&self) -> usize {
        0
    }

    /// Checks the backend is reachable, for readiness probes.
    ///
    /// # Errors
    /// [`BroadcastError::Unavailable`] when it is not.
    async fn ping(&self) -> Result<(), BroadcastError> {
        Ok(())
    }
}

/// Why a tally could not be published or subscribed to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The backend cannot be reached.
    #[error("the broadcast backend is unavailable")]
    Unavailable(#[source] BoxError),
}
