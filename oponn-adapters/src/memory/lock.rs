//! A per-ballot lock inside one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use oponn_core::domain::BallotId;
use oponn_core::ports::{LockError, LockGuard, VoteLock};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One async mutex per ballot, for a single process.
///
/// Waiters queue fairly (tokio's mutex is FIFO) and wait without bound:
/// holders only keep it for one vote's check-and-record.
#[derive(Default)]
pub struct MemoryLock {
    /// A plain mutex over the map: it is held only to find or insert an
    /// entry, never across an await.
    locks: Mutex<HashMap<BallotId, Arc<AsyncMutex<()>>>>,
}

impl MemoryLock {
    /// A lock with no ballots yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many ballots have lock state, idle or not.
    pub fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no ballot has lock state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl VoteLock for MemoryLock {
    async fn acquire(&self, ballot: &BallotId) -> Result<Box<dyn LockGuard>, LockError> {
        let mutex = Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(*ballot)
                .or_default(),
        );
        Ok(Box::new(MemoryLockGuard(mutex.lock_owned().await)))
    }

    fn prune_idle(&self) -> usize {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        let before = locks.len();
        // Holders and waiters keep a clone of the Arc; the map's own
        // reference alone means nobody uses it.
        locks.retain(|_, mutex| Arc::strong_count(mutex) > 1);
        before - locks.len()
    }
}

struct MemoryLockGuard(OwnedMutexGuard<()>);

#[async_trait]
impl LockGuard for MemoryLockGuard {
    async fn release(self: Box<Self>) -> Result<(), LockError> {
        drop(self.0);
        Ok(())
    }
}
