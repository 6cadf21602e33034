//! The [`AccountRepository`] contract.

use std::collections::HashSet;
use std::sync::Arc;

use oponn_core::domain::{Account, AccountId, BallotId, Email, Identity, SessionToken};
use oponn_core::ports::AccountRepository;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn unique_email() -> Email {
    Email::parse(&format!(
        "{}@example.org",
        BallotId::generate().to_string().to_lowercase()
    ))
    .unwrap()
}

fn identity(provider: &str) -> Identity {
    Identity::new(provider, BallotId::generate().to_string())
}

/// A first sign-in creates the account with the id and time given.
pub async fn a_first_sign_in_creates_an_account(accounts: Arc<dyn AccountRepository>) {
    let (email, id) = (unique_email(), AccountId::generate());
    let now = datetime!(2030-01-01 12:00 UTC);
    let account = accounts
        .sign_in(&identity("github"), &email, &id, now)
        .await
        .unwrap();
    assert_eq!((account.id(), account.email()), (&id, &email));
    assert_eq!(account.created_at(), now);
    assert_eq!(accounts.account(&id).await.unwrap(), Some(account));
}

/// The same identity signs in to the same account, whatever id is offered.
pub async fn signing_in_again_finds_the_same_account(accounts: Arc<dyn AccountRepository>) {
    let (who, email) = (identity("google"), unique_email());
    let now = datetime!(2030-01-01 12:00 UTC);
    let first = accounts
        .sign_in(&who, &email, &AccountId::generate(), now)
        .await
        .unwrap();
    let again = accounts
        .sign_in(&who, &email, &AccountId::generate(), now)
        .await
        .unwrap();
    assert_eq!(first, again);
}

/// One verified email through two providers is one account.
pub async fn one_email_through_two_providers_is_one_account(accounts: Arc<dyn AccountRepository>) {
    let email = unique_email();
    let now = datetime!(2030-01-01 12:00 UTC);
    let github = accounts
        .sign_in(&identity("github"), &email, &AccountId::generate(), now)
        .await
        .unwrap();
    let google = accounts
        .sign_in(&identity("google"), &email, &AccountId::generate(), now)
        .await
        .unwrap();
    assert_eq!(github.id(), google.id());
}

/// Ten first sign-ins with one email at once, through ten identities: one account.
pub async fn racing_first_sign_ins_make_one_account(accounts: Arc<dyn AccountRepository>) {
    let email = unique_email();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (accounts, email) = (Arc::clone(&accounts), email.clone());
            tokio::spawn(async move {
                let now = datetime!(2030-01-01 12:00 UTC);
                accounts
                    .sign_in(&identity("github"), &email, &AccountId::generate(), now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().id().clone());
    }
    assert_eq!(ids.len(), 1);
}

/// An unknown id reads as `None`.
pub async fn unknown_accounts_read_as_none(accounts: Arc<dyn AccountRepository>) {
    assert_eq!(
        accounts.account(&AccountId::generate()).await.unwrap(),
        None
    );
}

/// A signed-in account at `now`, for the session cases.
async fn account_at(accounts: &Arc<dyn AccountRepository>, now: OffsetDateTime) -> Account {
    accounts
        .sign_in(
            &identity("github"),
            &unique_email(),
            &AccountId::generate(),
            now,
        )
        .await
        .unwrap()
}

/// A session names its account from creation until, not including, its expiry.
pub async fn a_session_names_its_account_until_it_expires(accounts: Arc<dyn AccountRepository>) {
    let now = datetime!(2030-01-01 12:00 UTC);
    let expires = now + Duration::days(7);
    let account = account_at(&accounts, now).await;
    let session = SessionToken::generate().hash();
    accounts
        .create_session(&session, account.id(), now, expires)
        .await
        .unwrap();
    for at in [now, expires - Duration::seconds(1)] {
        assert_eq!(
            accounts.session_account(&session, at).await.unwrap(),
            Some(account.clone()),
            "live at {at}"
        );
    }
    for at in [expires, expires + Duration::days(1)] {
        assert_eq!(
            accounts.session_account(&session, at).await.unwrap(),
            None,
            "expired at {at}"
        );
    }
}

/// A revoked session names no one, at once; the account's other sessions
/// live on; revoking twice, or a session that never was, is no error.
pub async fn a_revoked_session_names_no_one(accounts: Arc<dyn AccountRepository>) {
    let now = datetime!(2030-01-01 12:00 UTC);
    let expires = now + Duration::days(7);
    let account = account_at(&accounts, now).await;
    let (laptop, phone) = (
        SessionToken::generate().hash(),
        SessionToken::generate().hash(),
    );
    for session in [&laptop, &phone] {
        accounts
            .create_session(session, account.id(), now, expires)
            .await
            .unwrap();
    }
    accounts.revoke_session(&laptop).await.unwrap();
    assert_eq!(accounts.session_account(&laptop, now).await.unwrap(), None);
    assert_eq!(
        accounts.session_account(&phone, now).await.unwrap(),
        Some(account)
    );
    accounts.revoke_session(&laptop).await.unwrap();
    accounts
        .revoke_session(&SessionToken::generate().hash())
        .await
        .unwrap();
    assert_eq!(
        accounts
            .session_account(&SessionToken::generate().hash(), now)
            .await
            .unwrap(),
        None
    );
}

/// Pruning deletes expired sessions and spares live ones.
pub async fn pruning_deletes_only_expired_sessions(accounts: Arc<dyn AccountRepository>) {
    let now = datetime!(2030-01-01 12:00 UTC);
    let account = account_at(&accounts, now).await;
    let (short, long) = (
        SessionToken::generate().hash(),
        SessionToken::generate().hash(),
    );
    accounts
        .create_session(&short, account.id(), now, now + Duration::hours(1))
        .await
        .unwrap();
    accounts
        .create_session(&long, account.id(), now, now + Duration::days(7))
        .await
        .unwrap();
    let later = now + Duration::hours(2);
    assert!(accounts.prune_sessions(later).await.unwrap() >= 1);
    // Gone: not even a clock set back finds it.
    assert_eq!(accounts.session_account(&short, now).await.unwrap(), None);
    assert_eq!(
        accounts.session_account(&long, later).await.unwrap(),
        Some(account)
    );
}
