//! Accounts in a map.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use oponn_core::domain::{Account, AccountId, Email, Identity, SessionHash};
use oponn_core::ports::{AccountError, AccountRepository};
use time::OffsetDateTime;

/// Accounts and their linked identities in process memory.
#[derive(Default)]
pub struct MemoryAccounts {
    /// One mutex over both maps, so a sign-in's look-ups and inserts are atomic.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    accounts: HashMap<AccountId, Account>,
    identities: HashMap<Identity, AccountId>,
    /// Each live session's account and expiry, by token hash.
    sessions: HashMap<SessionHash, (AccountId, OffsetDateTime)>,
}

impl MemoryAccounts {
    /// No accounts yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AccountRepository for MemoryAccounts {
    async fn sign_in(
        &self,
        identity: &Identity,
        email: &Email,
        new_id: &AccountId,
        now: OffsetDateTime,
    ) -> Result<Account, AccountError> {
        let mut state = self.state();
        if let Some(account) = state
            .identities
            .get(identity)
            .and_then(|id| state.accounts.get(id))
        {
            return Ok(account.clone());
        }
        let account = match state.accounts.values().find(|a| a.email() == email) {
            Some(account) => account.clone(),
            None => {
                let account = Account::new(new_id.clone(), email.clone(), now);
                state.accounts.insert(new_id.clone(), account.clone());
                account
            }
        };
        state
            .identities
            .insert(identity.clone(), account.id().clone());
        Ok(account)
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, AccountError> {
        Ok(self.state().accounts.get(id).cloned())
    }

    async fn create_session(
        &self,
        session: &SessionHash,
        account: &AccountId,
        _created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), AccountError> {
        let mut state = self.state();
        if state.sessions.contains_key(session) {
            return Err(AccountError::Unavailable("the session exists".into()));
        }
        state
            .sessions
            .insert(*session, (account.clone(), expires_at));
        Ok(())
    }

    async fn session_account(
        &self,
        session: &SessionHash,
        now: OffsetDateTime,
    ) -> Result<Option<Account>, AccountError> {
        let state = self.state();
        Ok(state
            .sessions
            .get(session)
            .filter(|(_, expires_at)| now < *expires_at)
            .and_then(|(account, _)| state.accounts.get(account).cloned()))
    }

    async fn revoke_session(&self, session: &SessionHash) -> Result<(), AccountError> {
        self.state().sessions.remove(session);
        Ok(())
    }

    async fn prune_sessions(&self, now: OffsetDateTime) -> Result<u64, AccountError> {
        let mut state = self.state();
        let before = state.sessions.len();
        state
            .sessions
            .retain(|_, (_, expires_at)| now < *expires_at);
        Ok(u64::try_from(before - state.sessions.len()).unwrap_or(u64::MAX))
    }
}
