//! Who a voter is, end to end: every identity a browser presents (its
//! voter cookie, the signed-in account) is the same voter; and a session
//! ends, for every copy of its cookie, when its owner logs out.

use std::sync::Arc;

use reqwest::cookie::Jar;
use reqwest::{Client, redirect};
use serde_json::{Value, json};

use crate::helpers::{TestApp, browser, get_json, post_json, set_cookies, spawn_app};

const ALREADY_VOTED: &str = "You have already voted on this ballot.";

/// Signs `browser` in through the mock provider as `email`; returns the
/// session cookie the server set, as `name=value`.
async fn sign_in(app: &TestApp, browser: &Client, email: &str) -> String {
    let response = app
        .form_post(browser, "/auth/mock", &[("email", email)])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "mock sign-in");
    set_cookies(&response)
        .into_iter()
        .find(|cookie| cookie.starts_with("oponn_session="))
        .and_then(|cookie| cookie.split(';').next().map(str::to_owned))
        .expect("a session cookie")
}

async fn log_out(app: &TestApp, browser: &Client) {
    let response = app
        .form_post(browser, "/auth/logout", &[])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "logout");
}

/// A ballot anyone may vote on, with `settings` (form fields).
async fn ballot_with(app: &TestApp, settings: &[(&str, &str)]) -> String {
    let mut fields = vec![("measure", "one browser"), ("options_raw", "red, blue")];
    fields.extend_from_slice(settings);
    app.create_ballot(&browser(), &fields).await
}

async fn tally(app: &TestApp, id: &str) -> Value {
    get_json(&browser(), &app.url(&format!("/api/v1/ballots/{id}/tally"))).await
}

/// The count of `label` in a tally body.
fn count(tally: &Value, label: &str) -> u64 {
    tally["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|option| option["label"] == label)
        .and_then(|option| option["count"].as_u64())
        .unwrap_or_else(|| panic!("no {label} in {tally}"))
}

/// Votes for `option` through the form; returns (status, body).
async fn vote(app: &TestApp, browser: &Client, id: &str, option: &str) -> (u16, String) {
    let response = app.vote(browser, id, &[("option_id", option)]).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_guest_who_signs_in_cannot_vote_again() {
    let app = spawn_app().await;
    let id = ballot_with(&app, &[]).await;
    let laptop = browser();
    assert_eq!(vote(&app, &laptop, &id, "1").await.0, 303, "the guest vote");

    sign_in(&app, &laptop, "ada@example.org").await;
    let (status, page) = vote(&app, &laptop, &id, "2").await;
    assert_eq!(status, 200, "refused on the form");
    assert!(page.contains(ALREADY_VOTED), "{page}");
    let api = post_json(
        &laptop,
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "option_id": 2 }),
    )
    .await;
    assert_eq!(api.status(), 409, "and through the API");
    let tally = tally(&app, &id).await;
    assert_eq!(tally["total"], 1, "{tally}");
    assert_eq!(count(&tally, "red"), 1);
}

#[tokio::test]
async fn a_vote_cast_signed_in_marks_the_browser() {
    let app = spawn_app().await;
    let id = ballot_with(&app, &[]).await;
    let laptop = browser();
    sign_in(&app, &laptop, "ada@example.org").await;
    assert_eq!(
        vote(&app, &laptop, &id, "1").await.0,
        303,
        "the account's vote"
    );

    log_out(&app, &laptop).await;
    let (status, page) = vote(&app, &laptop, &id, "2").await;
    assert_eq!(status, 200, "the guest vote is refused on the form");
    assert!(page.contains(ALREADY_VOTED), "{page}");
    // The same account from a browser of its own is the same voter too.
    let phone = browser();
    sign_in(&app, &phone, "ada@example.org").await;
    assert!(vote(&app, &phone, &id, "2").await.1.contains(ALREADY_VOTED));
    let tally = tally(&app, &id).await;
    assert_eq!(tally["total"], 1, "{tally}");
}

#[tokio::test]
async fn with_vote_change_every_identity_moves_the_one_vote() {
    let app = spawn_app().await;
    let id = ballot_with(&app, &[("allow_vote_change", "on")]).await;
    let laptop = browser();
    assert_eq!(vote(&app, &laptop, &id, "1").await.0, 303, "the guest vote");

    sign_in(&app, &laptop, "ada@example.org").await;
    assert_eq!(
        vote(&app, &laptop, &id, "2").await.0,
        303,
        "moved, signed in"
    );
    let moved = tally(&app, &id).await;
    assert_eq!(moved["total"], 1, "{moved}");
    assert_eq!((count(&moved, "red"), count(&moved, "blue")), (0, 1));

    // The account now holds the laptop's vote, wherever it signs in.
    let phone = browser();
    sign_in(&app, &phone, "ada@example.org").await;
    let page = app.page_text(&phone, &format!("/vote/{id}")).await;
    assert!(page.contains("your_vote: blue"), "{page}");
    assert_eq!(
        vote(&app, &phone, &id, "1").await.0,
        303,
        "moved from the phone"
    );
    log_out(&app, &laptop).await;
    assert_eq!(
        vote(&app, &laptop, &id, "2").await.0,
        303,
        "moved as a guest"
    );
    let last = tally(&app, &id).await;
    assert_eq!(last["total"], 1, "{last}");
    assert_eq!((count(&last, "red"), count(&last, "blue")), (0, 1));
}

/// A browser that sends only `cookie` (and keeps whatever the server sets).
fn replaying(app: &TestApp, cookie: &str) -> Client {
    let jar = Arc::new(Jar::default());
    jar.add_cookie_str(&format!("{cookie}; Path=/"), &app.url("/").parse().unwrap());
    Client::builder()
        .cookie_provider(jar)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_session_cookie_copied_before_logout_is_signed_out_after_it() {
    let app = spawn_app().await;
    let laptop = browser();
    let copied = sign_in(&app, &laptop, "owner@example.org").await;
    let id = app
        .create_ballot(&laptop, &[("measure", "mine"), ("options_raw", "a, b")])
        .await;
    let thief = replaying(&app, &copied);
    assert!(
        app.page_text(&thief, "/")
            .await
            .contains("owner@example.org"),
        "the copy works while the session lasts"
    );

    log_out(&app, &laptop).await;
    let home = app.page_text(&thief, "/").await;
    assert!(!home.contains("owner@example.org"), "{home}");
    assert!(!home.contains(&id), "the owner's ballots are not listed");
    let login = app.page_text(&thief, "/login").await;
    assert!(!login.contains("signed_in_as"), "{login}");
    let closed = app.close_ballot(&thief, &id).await;
    assert_eq!(closed.status(), 403, "an owner action on the pages");
    let api = thief
        .post(app.url(&format!("/api/v1/ballots/{id}/close")))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403, "an owner action through the API");
    let deleted = thief
        .delete(app.url(&format!("/api/v1/ballots/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 403);
    let ballot = get_json(&browser(), &app.url(&format!("/api/v1/ballots/{id}"))).await;
    assert_eq!(ballot["status"], "active", "{ballot}");

    // Signing in again starts a new session; the old copy stays dead.
    sign_in(&app, &laptop, "owner@example.org").await;
    assert!(
        !app.page_text(&thief, "/")
            .await
            .contains("owner@example.org")
    );
}
