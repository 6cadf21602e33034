//! Signing in: the rules about accounts.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::domain::{Account, AccountId, Email, Identity, InvalidEmail, SessionToken};
use crate::ports::{AccountError, AccountRepository, Clock};
use crate::service::{Dependency, Unavailable};

/// How long a session lasts after sign-in, unless its owner logs out first.
pub const SESSION_LENGTH: Duration = Duration::days(7);

/// A sign-in: the account, and the new session's token for the browser.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who signed in.
    pub account: Account,
    /// The session's secret, for the browser's cookie; storage keeps only its hash.
    pub token: SessionToken,
    /// When the session ends by itself.
    pub expires_at: OffsetDateTime,
}

/// Turns a provider's word about someone into an account and a session,
/// and ends sessions.
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
    /// provider gave as `email`: their existing account, or a new one, with
    /// a new session that lasts [`SESSION_LENGTH`] unless revoked.
    ///
    /// # Errors
    /// [`SignInError::InvalidEmail`] for an unusable address;
    /// [`SignInError::Unavailable`] when storage fails.
    pub async fn sign_in(&self, identity: &Identity, email: &str) -> Result<SignedIn, SignInError> {
        let email = Email::parse(email)?;
        let now = self.clock.now();
        let failed = |error| SignInError::Unavailable(unavailable(error));
        let account = self
            .accounts
            .sign_in(identity, &email, &AccountId::generate(), now)
            .await
            .map_err(failed)?;
        let token = SessionToken::generate();
        let expires_at = now.saturating_add(SESSION_LENGTH);
        self.accounts
            .create_session(&token.hash(), account.id(), now, expires_at)
            .await
            .map_err(failed)?;
        Ok(SignedIn {
            account,
            token,
            expires_at,
        })
    }

    /// The account whose live session `token` names: `None` once the
    /// session was revoked (logout) or expired, or when there is none.
    ///
    /// # Errors
    /// [`Unavailable`] when storage fails.
    pub async fn session(&self, token: &SessionToken) -> Result<Option<Account>, Unavailable> {
        self.accounts
            .session_account(&token.hash(), self.clock.now())
            .await
            .map_err(unavailable)
    }

    /// Ends the session `token` names, on every instance at once.
    ///
    /// # Errors
    /// [`Unavailable`] when storage fails: the session may still be live.
    pub async fn sign_out(&self, token: &SessionToken) -> Result<(), Unavailable> {
        self.accounts
            .revoke_session(&token.hash())
            .await
            .map_err(unavailable)
    }

    /// Deletes expired sessions; returns how many. Run periodically by the host.
    ///
    /// # Errors
    /// [`Unavailable`] when storage fails.
    pub async fn prune_sessions(&self) -> Result<u64, Unavailable> {
        self.accounts
            .prune_sessions(self.clock.now())
            .await
            .map_err(unavailable)
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
