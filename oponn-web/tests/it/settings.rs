//! Ballot settings on every channel: who may vote, vote changes, results
//! visibility; owner controls and exports.

use reqwest::Client;
use serde_json::{Value, json};

use crate::helpers::{TestApp, browser, get_json, post_json, spawn_app};

/// Signs `browser` in through the mock provider as `email`.
async fn sign_in(app: &TestApp, browser: &Client, email: &str) {
    let response = app
        .form_post(browser, "/auth/mock", &[("email", email)])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "mock sign-in");
}

/// Creates a ballot with `settings` (form fields) through `owner`'s browser.
async fn ballot_with(app: &TestApp, owner: &Client, settings: &[(&str, &str)]) -> String {
    let mut fields = vec![("measure", "settings check"), ("options_raw", "red, blue")];
    fields.extend_from_slice(settings);
    app.create_ballot(owner, &fields).await
}

async fn status(app: &TestApp, browser: &Client, path: &str) -> u16 {
    app.get(browser, path).await.status().as_u16()
}

#[tokio::test]
async fn the_vote_page_shows_the_settings_chosen_at_creation() {
    let app = spawn_app().await;
    let owner = browser();
    let id = ballot_with(
        &app,
        &owner,
        &[
            ("eligibility", "signed_in"),
            ("allow_vote_change", "on"),
            ("results_visibility", "after_close"),
        ],
    )
    .await;
    let page = app.page_text(&owner, &format!("/vote/{id}")).await;
    assert!(
        page.contains("who_may_vote: signed_in_users_only"),
        "{page}"
    );
    assert!(page.contains("vote_change: allowed"));
    assert!(page.contains("results_visible: after_close"));
    let api = get_json(&owner, &app.url(&format!("/api/v1/ballots/{id}"))).await;
    assert_eq!(api["eligibility"], "signed_in");
    assert_eq!(api["allow_vote_change"], true);
    assert_eq!(api["results_visibility"], "after_close");
}

#[tokio::test]
async fn signed_in_only_ballots_take_one_vote_per_account() {
    let app = spawn_app().await;
    let id = ballot_with(&app, &browser(), &[("eligibility", "signed_in")]).await;
    let guest = browser();
    let page = app.page_text(&guest, &format!("/vote/{id}")).await;
    assert!(page.contains("sign_in"), "the guest is told to sign in");
    let refused = app.vote(&guest, &id, &[("option_id", "1")]).await;
    assert_eq!(refused.status(), 200);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Sign in to vote on this ballot.")
    );
    let api = post_json(
        &guest,
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "option_id": 1 }),
    )
    .await;
    assert_eq!(api.status(), 403);

    let laptop = browser();
    sign_in(&app, &laptop, "ada@example.org").await;
    assert_eq!(
        app.vote(&laptop, &id, &[("option_id", "1")]).await.status(),
        303
    );
    // The same account from another browser is the same voter.
    let phone = browser();
    sign_in(&app, &phone, "ada@example.org").await;
    let again = app.vote(&phone, &id, &[("option_id", "2")]).await;
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("You have already voted on this ballot.")
    );
    let tally = get_json(&phone, &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 1);
}

#[tokio::test]
async fn a_changed_vote_moves_the_tally_without_double_counting() {
    let app = spawn_app().await;
    let id = ballot_with(&app, &browser(), &[("allow_vote_change", "on")]).await;
    let voter = browser();
    assert_eq!(
        app.vote(&voter, &id, &[("option_id", "1")]).await.status(),
        303
    );
    let page = app.page_text(&voter, &format!("/vote/{id}")).await;
    assert!(
        page.contains("your_vote: red"),
        "the current choice is shown"
    );
    assert_eq!(
        app.vote(&voter, &id, &[("option_id", "2")]).await.status(),
        303
    );
    let tally = get_json(&voter, &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 1);
    assert_eq!(
        (
            tally["options"][0]["count"].as_u64(),
            tally["options"][1]["count"].as_u64()
        ),
        (Some(0), Some(1))
    );

    // 16 voters changing their minds 4 times each, all at once, through the API.
    let votes = app.url(&format!("/api/v1/ballots/{id}/votes"));
    let voters: Vec<Client> = (0..16).map(|_| browser()).collect();
    let rounds = voters.iter().enumerate().map(|(n, voter)| {
        let votes = votes.clone();
        async move {
            let mut last = 0;
            for round in 0..4 {
                last = 1 + (n + round) % 2;
                let response = post_json(voter, &votes, &json!({ "option_id": last })).await;
                assert_eq!(response.status(), 201);
            }
            last
        }
    });
    let finals = futures_util::future::join_all(rounds).await;
    let tally = get_json(&voter, &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 17);
    let reds = finals.iter().filter(|last| **last == 1).count() as u64;
    assert_eq!(tally["options"][0]["count"].as_u64(), Some(reds));
    assert_eq!(tally["options"][1]["count"].as_u64(), Some(17 - reds));
}

/// Every channel that could show `id`'s tally to `viewer`: page, HTML
/// stream, JSON tally, JSON stream, both exports. `true` means shown.
async fn channels(app: &TestApp, viewer: &Client, id: &str) -> Vec<(&'static str, bool)> {
    let page = app.page_text(viewer, &format!("/results/{id}")).await;
    let shown = |code: u16| code == 200;
    vec![
        (
            "page",
            page.contains("total_votes") && !page.contains("results_hidden"),
        ),
        (
            "live",
            shown(status(app, viewer, &format!("/ballots/{id}/live-results")).await),
        ),
        (
            "api tally",
            shown(status(app, viewer, &format!("/api/v1/ballots/{id}/tally")).await),
        ),
        (
            "api stream",
            shown(status(app, viewer, &format!("/api/v1/ballots/{id}/tally/stream")).await),
        ),
        (
            "csv",
            shown(status(app, viewer, &format!("/results/{id}/export.csv")).await),
        ),
        (
            "json",
            shown(status(app, viewer, &format!("/results/{id}/export.json")).await),
        ),
        (
            "api export",
            shown(status(app, viewer, &format!("/api/v1/ballots/{id}/results")).await),
        ),
    ]
}

fn assert_all(channels: Vec<(&str, bool)>, shown: bool, who: &str) {
    for (channel, visible) in channels {
        assert_eq!(visible, shown, "{who}: {channel}");
    }
}

#[tokio::test]
async fn results_after_voting_are_hidden_on_every_channel_until_the_viewer_votes() {
    let app = spawn_app().await;
    let owner = browser();
    let id = ballot_with(&app, &owner, &[("results_visibility", "after_voting")]).await;
    let voter = browser();
    assert_all(channels(&app, &voter, &id).await, false, "before voting");
    let accepted: Value = post_json(
        &voter,
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "option_id": 1 }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        accepted["tally"]["total"], 1,
        "the vote's reply shows the tally once allowed"
    );
    assert_all(channels(&app, &voter, &id).await, true, "after voting");
    assert_all(
        channels(&app, &browser(), &id).await,
        false,
        "someone who has not voted",
    );
}

#[tokio::test]
async fn results_after_close_are_hidden_from_everyone_until_the_owner_closes() {
    let app = spawn_app().await;
    let owner = browser();
    let id = ballot_with(&app, &owner, &[("results_visibility", "after_close")]).await;
    let voter = browser();
    let accepted: Value = post_json(
        &voter,
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "option_id": 2 }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        accepted["tally"].is_null(),
        "no tally in the vote's reply: {accepted}"
    );
    assert_all(
        channels(&app, &voter, &id).await,
        false,
        "a voter before the close",
    );
    assert_all(
        channels(&app, &owner, &id).await,
        false,
        "the owner before the close",
    );
    let closed = app.close_ballot(&owner, &id).await;
    assert_eq!(closed.status(), 303);
    assert_all(
        channels(&app, &browser(), &id).await,
        true,
        "anyone after the close",
    );
}

#[tokio::test]
async fn only_the_owner_closes_or_deletes_and_deletion_is_final() {
    let app = spawn_app().await;
    let owner = browser();
    let id = ballot_with(&app, &owner, &[]).await;
    let page = app.page_text(&owner, &format!("/results/{id}")).await;
    assert!(
        page.contains("close_ballot") && page.contains("delete_ballot"),
        "the owner sees the controls"
    );
    let stranger = browser();
    assert!(
        !app.page_text(&stranger, &format!("/results/{id}"))
            .await
            .contains("delete_ballot")
    );
    for path in [
        format!("/ballots/{id}/close"),
        format!("/ballots/{id}/delete"),
    ] {
        let refused = app
            .form_post(&stranger, &path, &[])
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{path}");
    }
    let api_close = stranger
        .post(app.url(&format!("/api/v1/ballots/{id}/close")))
        .header("X-Requested-With", "oponn-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(api_close.status(), 403);
    let api_delete = stranger
        .delete(app.url(&format!("/api/v1/ballots/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(api_delete.status(), 403);
    // Without the CSRF token even the owner is refused.
    let forged = owner
        .post(app.url(&format!("/ballots/{id}/delete")))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    assert_eq!(
        app.vote(&browser(), &id, &[("option_id", "1")])
            .await
            .status(),
        303
    );
    let closed = app.close_ballot(&owner, &id).await;
    assert_eq!(closed.status(), 303);
    let late = app.vote(&browser(), &id, &[("option_id", "1")]).await;
    assert!(
        late.text()
            .await
            .unwrap()
            .contains("Voting has ended for this ballot")
    );

    let deleted = app
        .form_post(&owner, &format!("/ballots/{id}/delete"), &[])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    assert_eq!(status(&app, &owner, &format!("/results/{id}")).await, 404);
    assert_eq!(
        status(&app, &owner, &format!("/api/v1/ballots/{id}")).await,
        404
    );
    // Crypto-shredded: storage holds neither the wrapped key nor any row.
    let ballot = oponn_core::domain::BallotId::parse(&id).unwrap();
    assert!(
        app.oponn
            .ports()
            .repository
            .ballot(&ballot)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.oponn
            .ports()
            .repository
            .tally(&ballot)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_api_deletes_for_the_owner() {
    let app = spawn_app().await;
    let owner = browser();
    let created: Value = post_json(
        &owner,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "api owner", "options": ["a", "b"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap();
    let closed = owner
        .post(app.url(&format!("/api/v1/ballots/{id}/close")))
        .header("X-Requested-With", "oponn-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 200);
    assert_eq!(closed.json::<Value>().await.unwrap()["status"], "ended");
    let deleted = owner
        .delete(app.url(&format!("/api/v1/ballots/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        status(&app, &owner, &format!("/api/v1/ballots/{id}")).await,
        404
    );
}

#[tokio::test]
async fn exports_match_the_results_page() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app
        .create_ballot(
            &owner,
            &[
                ("measure", "export, \"quoted\""),
                ("options_raw", "tea, coffee, \"mate\""),
            ],
        )
        .await;
    for option in ["1", "1", "2"] {
        assert_eq!(
            app.vote(&browser(), &id, &[("option_id", option)])
                .await
                .status(),
            303
        );
    }
    let csv = app.get(&owner, &format!("/results/{id}/export.csv")).await;
    assert!(crate::helpers::header(csv.headers(), "content-type").starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "option,count,percentage",
            "tea,2,66.7",
            "coffee,1,33.3",
            "\"\"\"mate\"\"\",0,0.0"
        ]
    );
    let json = get_json(&owner, &app.url(&format!("/results/{id}/export.json"))).await;
    assert_eq!(json["ballot"]["measure"], "export, \"quoted\"");
    assert_eq!(json["total"], 3);
    assert_eq!(
        json["options"][0],
        json!({ "option_id": 1, "option": "tea", "count": 2, "percentage": 66.7 })
    );
    let page = app.page_text(&owner, &format!("/results/{id}")).await;
    assert!(
        page.contains("66.7") && page.contains("33.3"),
        "the page shows the same figures"
    );
    let api_csv = app
        .get(&owner, &format!("/api/v1/ballots/{id}/results?format=csv"))
        .await;
    assert_eq!(api_csv.text().await.unwrap(), csv);
}

#[tokio::test]
async fn a_signed_in_dashboard_lists_the_accounts_ballots_from_any_browser() {
    let app = spawn_app().await;
    let laptop = browser();
    sign_in(&app, &laptop, "owner@example.org").await;
    let id = ballot_with(&app, &laptop, &[]).await;
    assert_eq!(
        app.vote(&browser(), &id, &[("option_id", "1")])
            .await
            .status(),
        303
    );
    let phone = browser();
    sign_in(&app, &phone, "owner@example.org").await;
    let dashboard = app.page_text(&phone, "/").await;
    assert!(dashboard.contains("settings check"), "{dashboard}");
    assert!(dashboard.contains("1 vote"), "with its vote count");
    assert!(dashboard.contains("owner@example.org"), "who is signed in");
    assert!(
        !app.page_text(&browser(), "/")
            .await
            .contains("settings check"),
        "a guest sees only their own"
    );
}
