//! The [`AccountRepository`] contract.

use std::collections::HashSet;
use std::sync::Arc;

use oponn_core::domain::{AccountId, BallotId, Email, Identity};
use oponn_core::ports::AccountRepository;
use time::macros::datetime;

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
