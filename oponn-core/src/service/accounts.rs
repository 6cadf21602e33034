//! Signing in: the rules about accounts.

use std::sync::Arc;

use crate::domain::{Account, AccountId, Email, Identity, InvalidEmail};
use crate::ports::{AccountError, AccountRepository, Clock};
use crate::service::{Dependency, Unavailable};

/// Turns a provider's word about someone into an account.
pub struct AccountService {
    accounts: Arc<dyn AccountRepository>,
    clock: Arc<dyn Clock>,
}

impl AccountService {
    /// A service over `accounts`.
    pub fn new(accounts: Arc<dyn AccountRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { accounts, clock }
    }

    /// Signs in the person `identity` names, whose verified email the
    /// provider gave as `email`: their existing account, or a new one.
    ///
    /// # Errors
    /// [`SignInError::InvalidEmail`] for an unusable address;
    /// [`SignInError::Unavailable`] when storage fails.
    pub async fn sign_in(&self, identity: &Identity, email: &str) -> Result<Account, SignInError> {
        let email = Email::parse(email)?;
        self.accounts
            .sign_in(identity, &email, &AccountId::generate(), self.clock.now())
            .await
            .map_err(|error| SignInError::Unavailable(unavailable(error)))
    }

    /// The account with `id`, if it exists.
    ///
    /// # Errors
    /// [`Unavailable`] when storage fails.
    pub async fn account(&self, id: &AccountId) -> Result<Option<Account>, Unavailable> {
        self.accounts.account(id).await.map_err(unavailable)
    }
}

fn unavailable(error: AccountError) -> Unavailable {
    Unavailable::new(Dependency::Storage, error)
}

/// Why someone could not be signed in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    /// The provider gave no usable email.
    #[error(transparent)]
    InvalidEmail(#[from] InvalidEmail),
    /// Storage failed.
    #[error(transparent)]
    Unavailable(Unavailable),
}
