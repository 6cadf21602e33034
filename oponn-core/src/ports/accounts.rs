//! The account port: who has signed in, and through which providers.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::BoxError;
use crate::domain::{Account, AccountId, Email, Identity, SessionHash};

/// Durable storage of accounts and the provider identities linked to them.
#[async_trait]
pub trait AccountRepository: Send + Sync + 'static {
    /// The account `identity` signs in to: the one already linked to it;
    /// else the one with `email` (linking the identity to it, so one
    /// person through two providers is one account); else a new account
    /// `new_id` created at `now` and linked. Atomic: two first sign-ins
    /// with one email at the same moment make one account.
    ///
    /// # Errors
    /// [`AccountError::Unavailable`] when storage cannot be reached.
    async fn sign_in(
        &self,
        identity: &Identity,
        email: &Email,
        new_id: &AccountId,
        now: OffsetDateTime,
    ) -> Result<Account, AccountError>;

    /// The account with `id`, if there is one.
    ///
    /// # Errors
    /// [`AccountError::Unavailable`] when storage cannot be reached.
    async fn account(&self, id: &AccountId) -> Result<Option<Account>, AccountError>;

    /// Stores a new session of `account`, named by the hash of its token,
    /// live from `created_at` until `expires_at`.
    ///
    /// # Errors
    /// [`AccountError::Unavailable`] when storage cannot be reached (or the
    /// hash is taken, which 256 random bits make impossible in practice).
    async fn create_session(
        &self,
        session: &SessionHash,
        account: &AccountId,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), AccountError>;

    /// The account of session `session` if it is live at `now`: stored,
    /// not revoked, and `now` before its expiry. Every instance sees a
    /// revocation at once: this reads storage, never a cache.
    ///
    /// # Errors
    /// [`AccountError::Unavailable`] when storage cannot be reached.
    async fn session_account(
        &self,
        session: &SessionHash,
        now: OffsetDateTime,
    ) -> Result<Option<Account>, AccountError>;

    /// Ends session `session` for good; nothing happens when there is none.
    ///
    /// # Errors
    /// [`AccountError::Unavailable`] when storage cannot be reached.
    async fn revoke_session(&self, session: &SessionHash) -> Result<(), AccountError>;

    /// Deletes every session expired at `now`; returns how many.
    ///
    /// # Errors
    /// [`AccountError::Unavailable`] when storage cannot be reached.
    async fn prune_sessions(&self, now: OffsetDateTime) -> Result<u64, AccountError>;
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Storage cannot be reached.
    #[error("account storage is unavailable")]
    Unavailable(#[source] BoxError),
}
