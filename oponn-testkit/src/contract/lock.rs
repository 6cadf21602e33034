//! The [`VoteLock`] contract.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use oponn_core::domain::BallotId;
use oponn_core::ports::VoteLock;

use super::within_deadline;

/// How often a holder yields while holding, to give a broken lock's other
/// takers every chance to get in.
const YIELDS_WHILE_HELD: usize = 50;

/// Take, release, take again.
pub async fn released_lock_can_be_taken_again(lock: Arc<dyn VoteLock>) {
    let ballot = BallotId::generate();
    let guard = lock.acquire(&ballot).await.unwrap();
    guard.release().await.unwrap();
    let again = within_deadline("re-taking a released lock", lock.acquire(&ballot))
        .await
        .unwrap();
    again.release().await.unwrap();
}

/// 8 tasks × 5 rounds on one ballot: never two holders at once.
pub async fn holders_of_one_ballot_exclude_each_other(lock: Arc<dyn VoteLock>) {
    let ballot = BallotId::generate();
    let inside = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (lock, inside, rounds) =
                (Arc::clone(&lock), Arc::clone(&inside), Arc::clone(&rounds));
            tokio::spawn(async move {
                for _ in 0..5 {
                    let guard = lock.acquire(&ballot).await.unwrap();
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders at once"
                    );
                    for _ in 0..YIELDS_WHILE_HELD {
                        tokio::task::yield_now().await;
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                    rounds.fetch_add(1, Ordering::SeqCst);
                    guard.release().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        within_deadline("every holder finishing", task)
            .await
            .unwrap();
    }
    assert_eq!(rounds.load(Ordering::SeqCst), 40);
}

/// Holding one ballot's lock does not block another ballot's.
pub async fn ballots_lock_independently(lock: Arc<dyn VoteLock>) {
    let (first, second) = (BallotId::generate(), BallotId::generate());
    let held = lock.acquire(&first).await.unwrap();
    let other = within_deadline("taking another ballot's lock", lock.acquire(&second))
        .await
        .unwrap();
    other.release().await.unwrap();
    held.release().await.unwrap();
}

/// A guard dropped without release (a cancelled task) frees the lock, at
/// once or when its documented expiry passes.
pub async fn dropped_guard_frees_the_lock(lock: Arc<dyn VoteLock>) {
    let ballot = BallotId::generate();
    drop(lock.acquire(&ballot).await.unwrap());
    let again = within_deadline(
        "taking a lock whose guard was dropped",
        lock.acquire(&ballot),
    )
    .await
    .unwrap();
    again.release().await.unwrap();
}

/// Pruning idle state never frees a lock someone holds.
pub async fn pruning_spares_held_locks(lock: Arc<dyn VoteLock>) {
    let ballot = BallotId::generate();
    let guard = lock.acquire(&ballot).await.unwrap();
    lock.prune_idle();
    let held = Arc::new(AtomicBool::new(true));
    let contender = {
        let (lock, held) = (Arc::clone(&lock), Arc::clone(&held));
        tokio::spawn(async move {
            let guard = lock.acquire(&ballot).await.unwrap();
            assert!(
                !held.load(Ordering::SeqCst),
                "took a lock that was still held"
            );
            guard.release().await.unwrap();
        })
    };
    for _ in 0..YIELDS_WHILE_HELD {
        tokio::task::yield_now().await;
        lock.prune_idle();
    }
    held.store(false, Ordering::SeqCst);
    guard.release().await.unwrap();
    within_deadline("the contender taking the lock", contender)
        .await
        .unwrap();
}
