//! Accounts and sessions on PostgreSQL.

use async_trait::async_trait;
use oponn_core::domain::{Account, AccountId, Email, Identity, SessionHash};
use oponn_core::ports::{AccountError, AccountRepository};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use super::PostgresRepository;
use crate::sql::{account, account_unavailable};

#[async_trait]
impl AccountRepository for PostgresRepository {
    async fn sign_in(
        &self,
        identity: &Identity,
        email: &Email,
        new_id: &AccountId,
        now: OffsetDateTime,
    ) -> Result<Account, AccountError> {
        let mut tx = self.pool.begin().await.map_err(account_unavailable)?;
        if let Some(account) = Self::linked_account(&mut tx, identity).await? {
            return Ok(account);
        }
        // A racing first sign-in with the same email waits on the unique
        // email, then finds the row the winner inserted.
        sqlx::query(
            "insert into accounts (id, email, created_at) values ($1, $2, $3) \
             on conflict on constraint accounts_one_per_email do nothing",
        )
        .bind(new_id.as_str())
        .bind(email.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(account_unavailable)?;
        sqlx::query(
            "insert into account_identities (provider, subject, account_id) \
             select $1, $2, id from accounts where email = $3 \
             on conflict on constraint account_identities_pkey do nothing",
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
        let row: Option<(String, String, OffsetDateTime)> =
            sqlx::query_as("select id, email, created_at from accounts where id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(account_unavailable)?;
        row.map(account).transpose()
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
             values ($1, $2, $3, $4)",
        )
        .bind(session.as_bytes().as_slice())
        .bind(account.as_str())
        .bind(created_at)
        .bind(expires_at)
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
        let row: Option<(String, String, OffsetDateTime)> = sqlx::query_as(
            "select a.id, a.email, a.created_at from sessions s \
             join accounts a on a.id = s.account_id \
             where s.token_hash = $1 and s.expires_at > $2",
        )
        .bind(session.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(account_unavailable)?;
        row.map(account).transpose()
    }

    async fn revoke_session(&self, session: &SessionHash) -> Result<(), AccountError> {
        sqlx::query("delete from sessions where token_hash = $1")
            .bind(session.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(account_unavailable)
    }

    async fn prune_sessions(&self, now: OffsetDateTime) -> Result<u64, AccountError> {
        sqlx::query("delete from sessions where expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(account_unavailable)
    }
}

impl PostgresRepository {
    async fn linked_account(
        tx: &mut Transaction<'_, Postgres>,
        identity: &Identity,
    ) -> Result<Option<Account>, AccountError> {
        let row: Option<(String, String, OffsetDateTime)> = sqlx::query_as(
            "select a.id, a.email, a.created_at from account_identities i \
             join accounts a on a.id = i.account_id where i.provider = $1 and i.subject = $2",
        )
        .bind(identity.provider())
        .bind(identity.subject())
        .fetch_optional(&mut **tx)
        .await
        .map_err(account_unavailable)?;
        row.map(account).transpose()
    }
}
