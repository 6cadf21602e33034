//! Accounts and sessions on SQLite.

use async_trait::async_trait;
use oponn_core::domain::{Account, AccountId, Email, Identity, SessionHash};
use oponn_core::ports::{AccountError, AccountRepository};
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

use super::{SqliteRepository, from_micros, micros};
use crate::sql::{account, account_unavailable};

#[async_trait]
impl AccountRepository for SqliteRepository {
    async fn sign_in(
        &self,
        identity: &Identity,
        email: &Email,
        new_id: &AccountId,
        now: OffsetDateTime,
    ) -> Result<Account, AccountError> {
        // The write lock up front: look-ups and inserts are one atomic step.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(account_unavailable)?;
        if let Some(account) = Self::linked_account(&mut tx, identity).await? {
            return Ok(account);
        }
        sqlx::query(
            "insert into accounts (id, email, created_at) values (?, ?, ?) \
             on conflict (email) do nothing",
        )
        .bind(new_id.as_str())
        .bind(email.as_str())
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .map_err(account_unavailable)?;
        sqlx::query(
            "insert into account_identities (provider, subject, account_id) \
             select ?, ?, id from accounts where email = ? \
             on conflict (provider, subject) do nothing",
        )
        .bind(identity.provider())
        .bind(identity.subject())
        .bind(email.as_str())
        .execute(&mut *tx)
        .await
        .map_err(account_unavailable)?;
        let account = Self::linked_account(&mut tx, identity)
            .await?
            .ok_or_else(|| AccountError::Unavailable("the identity was not linked".into()))?;
        tx.commit().await.map_err(account_unavailable)?;
        Ok(account)
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, AccountError> {
        let row: Option<(String, String, i64)> =
            sqlx::query_as("select id, email, created_at from accounts where id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(account_unavailable)?;
        row.map(account_from_row).transpose()
    }

    async fn create_session(
        &self,
        session: &SessionHash,
        account: &AccountId,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), AccountError> {
        sqlx::query(
            "insert into sessions (token_hash, account_id, created_at, expires_at) \
             values (?, ?, ?, ?)",
        )
        .bind(session.as_bytes().as_slice())
        .bind(account.as_str())
        .bind(micros(created_at))
        .bind(micros(expires_at))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(account_unavailable)
    }

    async fn session_account(
        &self,
        session: &SessionHash,
        now: OffsetDateTime,
    ) -> Result<Option<Account>, AccountError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "select a.id, a.email, a.created_at from sessions s \
             join accounts a on a.id = s.account_id \
             where s.token_hash = ? and s.expires_at > ?",
        )
        .bind(session.as_bytes().as_slice())
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(account_unavailable)?;
        row.map(account_from_row).transpose()
    }

    async fn revoke_session(&self, session: &SessionHash) -> Result<(), AccountError> {
        sqlx::query("delete from sessions where token_hash = ?")
            .bind(session.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(account_unavailable)
    }

    async fn prune_sessions(&self, now: OffsetDateTime) -> Result<u64, AccountError> {
        sqlx::query("delete from sessions where expires_at <= ?")
            .bind(micros(now))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(account_unavailable)
    }
}

impl SqliteRepository {
    async fn linked_account(
        tx: &mut Transaction<'_, Sqlite>,
        identity: &Identity,
    ) -> Result<Option<Account>, AccountError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "select a.id, a.email, a.created_at from account_identities i \
             join accounts a on a.id = i.account_id where i.provider = ? and i.subject = ?",
        )
        .bind(identity.provider())
        .bind(identity.subject())
        .fetch_optional(&mut **tx)
        .await
        .map_err(account_unavailable)?;
        row.map(account_from_row).transpose()
    }
}

fn account_from_row(
    (id, email, created_at): (String, String, i64),
) -> Result<Account, AccountError> {
    let created_at = from_micros(created_at)
        .map_err(|_| AccountError::Unavailable("corrupt row: account creation time".into()))?;
    account((id, email, created_at))
}
