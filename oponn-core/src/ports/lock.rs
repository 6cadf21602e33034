//! The lock port: one vote at a time per ballot.

use async_trait::async_trait;

use super::BoxError;
use crate::domain::BallotId;

/// Serializes the check-then-act of voting per ballot, across every
/// instance that shares the implementation's backend.
///
/// The lock is an optimization of correctness, not its last line: the
/// repository enforces one vote per voter and unique write-ins by itself,
/// so when the lock is unavailable the service goes on without it.
#[async_trait]
pub trait VoteLock: Send + Sync + 'static {
    /// Waits for the lock of `ballot` and holds it until the guard is released.
    ///
    /// # Errors
    /// Implementations MUST return [`LockError::Timeout`] when the lock
    /// stays held by others longer than their documented bounded wait, and
    /// [`LockError::Unavailable`] when their backend cannot be reached.
    async fn acquire(&self, ballot: &BallotId) -> Result<Box<dyn LockGuard>, LockError>;

    /// Drops per-ballot state nobody holds or waits for; returns how many
    /// entries were dropped. Called periodically by the reaper.
    fn prune_idle(&self) -> usize {
        0
    }

    /// Checks the backend is reachable, for readiness probes.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when it is not.
    async fn ping(&self) -> Result<(), LockError> {
        Ok(())
    }
}

/// A held lock. Dropping it without [`release`](LockGuard::release) must
/// still free it eventually (at once, or when its expiry passes).
#[async_trait]
pub trait LockGuard: Send {
    /// Frees the lock.
    ///
    /// # Errors
    /// Implementations MUST return [`LockError::Lost`] when the lock had
    /// expired and another holder may have taken it, and
    /// [`LockError::Unavailable`] when the backend cannot be reached.
    async fn release(self: Box<Self>) -> Result<(), LockError>;
}

/// Why a lock could not be taken or released.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Others held the lock for longer than the bounded wait.
    #[error("timed out waiting for the ballot lock")]
    Timeout,
    /// The lock expired while held.
    #[error("the ballot lock expired while held")]
    Lost,
    /// The backend cannot be reached.
    #[error("the lock backend is unavailable")]
    Unavailable(#[source] BoxError),
}
