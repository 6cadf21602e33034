//! Tally fan-out inside one process.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use futures_util::StreamExt as _;
use oponn_core::domain::{BallotId, Tally, TallyEvent};
use oponn_core::ports::{BroadcastError, Broadcaster, TallyStream};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

/// One `watch` channel per watched ballot.
///
/// A watch channel holds only the latest tally: a subscriber that falls
/// behind skips straight to the newest one instead of queueing stale
/// tallies, which is exactly the coalescing the port allows. Capacity is
/// therefore one value per ballot, whatever the number of subscribers.
#[derive(Default)]
pub struct MemoryBroadcaster {
    /// A plain mutex over the map: held only to find or insert a channel.
    channels: Mutex<HashMap<BallotId, watch::Sender<Option<Tally>>>>,
}

impl MemoryBroadcaster {
    /// A broadcaster with no channels yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many ballots have a channel, watched or not.
    pub fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no ballot has a channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Broadcaster for MemoryBroadcaster {
    async fn publish(&self, event: &TallyEvent) -> Result<(), BroadcastError> {
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        // No channel means no subscriber: nothing to deliver.
        if let Some(sender) = channels.get(&event.ballot_id) {
            sender.send_if_modified(|latest| {
                let newer = latest
                    .as_ref()
                    .is_none_or(|latest| event.tally.seq() > latest.seq());
                if newer {
                    *latest = Some(event.tally.clone());
                }
                newer
            });
        }
        Ok(())
    }

    async fn subscribe(&self, ballot: &BallotId) -> Result<TallyStream, BroadcastError> {
        let receiver = self
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(*ballot)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        let tallies = WatchStream::from_changes(receiver).filter_map(std::future::ready);
        Ok(Box::pin(tallies))
    }

    fn prune_idle(&self) -> usize {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let before = channels.len();
        channels.retain(|_, sender| sender.receiver_count() > 0);
        before - channels.len()
    }
}
