//! The in-memory adapters pass their contracts.

use std::sync::Arc;

use oponn_adapters::memory::{MemoryAccounts, MemoryBroadcaster, MemoryLock, MemoryRepository};
use oponn_core::ports::{
    AccountRepository, BallotRepository, Broadcaster, Clock, SystemClock, VoteLock,
};

async fn repository() -> Arc<dyn BallotRepository> {
    Arc::new(MemoryRepository::new())
}

async fn lock() -> Arc<dyn VoteLock> {
    Arc::new(MemoryLock::new())
}

async fn broadcaster() -> Arc<dyn Broadcaster> {
    Arc::new(MemoryBroadcaster::new())
}

async fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

async fn accounts() -> Arc<dyn AccountRepository> {
    Arc::new(MemoryAccounts::new())
}

mod account_contract {
    oponn_testkit::account_repository_contract!(super::accounts);
}

mod repository_contract {
    oponn_testkit::ballot_repository_contract!(super::repository);
}

mod lock_contract {
    oponn_testkit::vote_lock_contract!(super::lock);
}

mod broadcaster_contract {
    oponn_testkit::broadcaster_contract!(super::broadcaster);
}

mod clock_contract {
    oponn_testkit::clock_contract!(super::system_clock);
}

#[test]
fn idle_locks_and_channels_are_pruned() {
    oponn_testkit::block_on(async {
        let lock = MemoryLock::new();
        let broadcaster = MemoryBroadcaster::new();
        let ballot = oponn_core::domain::BallotId::generate();
        let guard = lock.acquire(&ballot).await.unwrap();
        let stream = broadcaster.subscribe(&ballot).await.unwrap();
        assert_eq!((lock.prune_idle(), broadcaster.prune_idle()), (0, 0));
        guard.release().await.unwrap();
        drop(stream);
        assert_eq!((lock.prune_idle(), broadcaster.prune_idle()), (1, 1));
        assert!(lock.is_empty() && broadcaster.is_empty());
    });
}
