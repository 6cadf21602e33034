//! The key-wrapper port: protects each ballot's data key at rest.

use async_trait::async_trait;

use super::BoxError;
use crate::crypto::{SymmetricKey, WrappedKey};
use crate::domain::BallotId;

/// Wraps and unwraps ballots' data keys under a key-encryption key the
/// database never sees (a KMS key, or a local key file).
///
/// A wrapped key is bound to its ballot: unwrapping it for any other ballot
/// fails, so a wrapped key copied between rows is useless.
#[async_trait]
pub trait KeyWrapper: Send + Sync + 'static {
    /// Wraps `key`, bound to `ballot`.
    ///
    /// # Errors
    /// Implementations MUST return [`KeyWrapError::Unavailable`] when the
    /// key service cannot be reached.
    async fn wrap_key(
        &self,
        ballot: &BallotId,
        key: &SymmetricKey,
    ) -> Result<WrappedKey, KeyWrapError>;

    /// Unwraps a key that was wrapped for `ballot`.
    ///
    /// # Errors
    /// Implementations MUST return [`KeyWrapError::Rejected`] when `wrapped`
    /// was not wrapped by them for this ballot or was altered, and
    /// [`KeyWrapError::Unavailable`] when the key service cannot be reached.
    async fn unwrap_key(
        &self,
        ballot: &BallotId,
        wrapped: &WrappedKey,
    ) -> Result<SymmetricKey, KeyWrapError>;

    /// Checks the key service is reachable, for readiness probes.
    ///
    /// # Errors
    /// [`KeyWrapError::Unavailable`] when it is not.
    async fn ping(&self) -> Result<(), KeyWrapError> {
        Ok(())
    }
}

/// Why a data key could not be wrapped or unwrapped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyWrapError {
    /// The wrapped key is not this wrapper's for this ballot, or was altered.
    #[error("the wrapped key was rejected")]
    Rejected,
    /// The key service cannot be reached.
    #[error("the key service is unavailable")]
    Unavailable(#[source] BoxError),
}
