//! Sessions: a sign-in starts one, logout ends it for every copy of its
//! token, and it expires by itself after `SESSION_LENGTH`.

use oponn_core::SESSION_LENGTH;
use oponn_core::domain::{Identity, SessionToken};
use oponn_core::ports::Clock as _;
use oponn_testkit::{TestOponn, block_on};
use time::Duration;

#[test]
fn a_sign_in_starts_a_session_that_logout_ends() {
    block_on(async {
        let oponn = TestOponn::new();
        let accounts = oponn.accounts();
        let signed_in = accounts
            .sign_in(&Identity::new("github", "1"), "Ada@Example.org")
            .await
            .unwrap();
        assert_eq!(signed_in.account.email().as_str(), "ada@example.org");
        assert_eq!(signed_in.expires_at, oponn.clock().now() + SESSION_LENGTH);
        let copy = SessionToken::parse(signed_in.token.as_str()).unwrap();
        assert_eq!(
            accounts.session(&copy).await.unwrap(),
            Some(signed_in.account.clone())
        );
        // A second sign-in is a session of its own.
        let phone = accounts
            .sign_in(&Identity::new("github", "1"), "ada@example.org")
            .await
            .unwrap();
        assert_ne!(phone.token, signed_in.token);

        accounts.sign_out(&signed_in.token).await.unwrap();
        assert_eq!(accounts.session(&copy).await.unwrap(), None);
        assert_eq!(
            accounts.session(&phone.token).await.unwrap(),
            Some(phone.account)
        );
    });
}

#[test]
fn a_session_expires_after_its_length_and_is_pruned() {
    block_on(async {
        let oponn = TestOponn::new();
        let accounts = oponn.accounts();
        let signed_in = accounts
            .sign_in(&Identity::new("google", "2"), "bob@example.org")
            .await
            .unwrap();
        oponn.clock().advance(SESSION_LENGTH - Duration::seconds(1));
        assert!(accounts.session(&signed_in.token).await.unwrap().is_some());
        assert_eq!(accounts.prune_sessions().await.unwrap(), 0);
        oponn.clock().advance(Duration::seconds(1));
        assert_eq!(accounts.session(&signed_in.token).await.unwrap(), None);
        assert_eq!(accounts.prune_sessions().await.unwrap(), 1);
    });
}

#[test]
fn a_token_nobody_was_given_names_no_one() {
    block_on(async {
        let oponn = TestOponn::new();
        let token = SessionToken::generate();
        assert_eq!(oponn.accounts().session(&token).await.unwrap(), None);
        oponn.accounts().sign_out(&token).await.unwrap();
    });
}
