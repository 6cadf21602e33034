//! Accounts in a map.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use oponn_core::domain::{Account, AccountId, Email, Identity};
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
}

impl MemoryAccounts {
    /// No accounts yet.
    pub fn new() -> Self {
        Self::default()
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
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
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
        Ok(self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .accounts
            .get(id)
            .cloned())
    }
}
