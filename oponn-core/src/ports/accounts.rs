//! The account port: who has signed in, and through which providers.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::BoxError;
use crate::domain::{Account, AccountId, Email, Identity};

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
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Storage cannot be reached.
    #[error("account storage is unavailable")]
    Unavailable(#[source] BoxError),
}
