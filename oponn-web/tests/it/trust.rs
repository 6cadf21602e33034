//! Invite-only ballots, receipts and the bulletin over HTTP, as a voter,
//! an owner and a stranger meet them: voting links through the pages and
//! the API, reuse, revocation, forged and guessed tokens, receipts checked
//! and the bulletin recounted; and a guest's ballots following them when
//! they sign in.

use std::collections::BTreeMap;

use reqwest::Client;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, browser, get_json, get_text, hidden_value, location, post_json, spawn_app,
    spawn_app_with, unescape,
};

const LINK_NOT_VALID: &str = "This voting link is not valid";
const LINK_USED: &str = "This voting link has already been used";
const INVITED_ONLY: &str = "This ballot is open to invited voters only.";

/// Creates an invite-only ballot through the API as `owner`.
async fn invite_only(app: &TestApp, owner: &Client, extra: Value) -> String {
    let mut body = json!({
        "measure": "Where do we meet?",
        "options": ["Lisbon", "Oslo", "Kyoto"],
        "eligibility": "invited",
        "publish_bulletin": true,
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let response = post_json(owner, &app.url("/api/v1/ballots"), &body).await;
    assert_eq!(response.status(), 201, "{body}");
    let ballot: Value = response.json().await.unwrap();
    ballot["id"].as_str().unwrap().to_owned()
}

/// Issues `body`'s links through the API; returns status and JSON.
async fn issue(app: &TestApp, owner: &Client, id: &str, body: Value) -> (u16, Value) {
    let response = post_json(
        owner,
        &app.url(&format!("/api/v1/ballots/{id}/invitations")),
        &body,
    )
    .await;
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

/// The tokens of issued links.
fn tokens(issued: &Value) -> Vec<String> {
    issued["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|link| link["token"].as_str().unwrap().to_owned())
        .collect()
}

/// Votes `choice` through the API with `token` as bearer.
async fn vote_by_token(app: &TestApp, id: &str, token: &str, choice: Value) -> (u16, Value) {
    let response = browser()
        .post(app.url(&format!("/api/v1/ballots/{id}/votes")))
        .bearer_auth(token)
        .json(&choice)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

/// Opens `/i/{token}` in `voter`; returns status and, for a redirect,
/// where it leads.
async fn open(app: &TestApp, voter: &Client, token: &str) -> (u16, String, String) {
    let response = voter
        .get(app.url(&format!("/i/{token}")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let to = if status == 303 {
        location(&response)
    } else {
        String::new()
    };
    (status, to, response.text().await.unwrap())
}

/// Votes for option `option` through the page's form in `voter`.
async fn vote_on_page(app: &TestApp, voter: &Client, id: &str, option: &str) -> u16 {
    let page = get_text(voter, &app.url(&format!("/vote/{id}"))).await;
    let token = hidden_value(&page, "X-CSRF-Token").unwrap();
    voter
        .post(app.url(&format!("/vote/{id}")))
        .form(&[("X-CSRF-Token", token.as_str()), ("option_id", option)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_voting_link_votes_once_whatever_browser_casts_it() {
    let app = spawn_app().await;
    let owner = browser();
    let id = invite_only(&app, &owner, json!({})).await;
    let (status, issued) = issue(&app, &owner, &id, json!({ "labels": ["Ana", "table 4"] })).await;
    assert_eq!(status, 201, "{issued}");
    let links = tokens(&issued);
    assert_eq!(links.len(), 2);
    assert!(
        issued["invitations"][0]["link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/i/{}", links[0]))
    );

    // A stranger sees the ballot but cannot vote.
    let stranger = browser();
    let page = get_text(&stranger, &app.url(&format!("/vote/{id}"))).await;
    assert!(page.contains(INVITED_ONLY), "{page}");
    assert_eq!(vote_on_page(&app, &stranger, &id, "1").await, 200);
    let response = post_json(
        &stranger,
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "option_id": 1 }),
    )
    .await;
    let status = response.status().as_u16();
    let refusal: Value = response.json().await.unwrap();
    assert_eq!(
        (status, refusal["message"].as_str()),
        (403, Some(INVITED_ONLY))
    );

    // The link opens the vote page, and the vote counts.
    let first = browser();
    let (status, to, _) = open(&app, &first, &links[0]).await;
    assert_eq!((status, to.as_str()), (303, format!("/vote/{id}").as_str()));
    assert_eq!(vote_on_page(&app, &first, &id, "2").await, 303);

    // The same link from a second browser: already used.
    let second = browser();
    let (status, _, page) = open(&app, &second, &links[0]).await;
    assert_eq!(status, 410);
    assert!(page.contains(LINK_USED), "{page}");
    // The browser holding it may open it again.
    assert_eq!(open(&app, &first, &links[0]).await.0, 303);
    // Its token through the API is the same voter: already voted.
    let (status, body) = vote_by_token(&app, &id, &links[0], json!({ "option_id": 1 })).await;
    assert_eq!(status, 409, "{body}");

    // The other link votes through the API.
    let (status, body) = vote_by_token(&app, &id, &links[1], json!({ "option_id": 3 })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["receipt"].as_str().unwrap().len(), 10);

    let tally = get_json(&browser(), &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    let counts: Vec<u64> = tally["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [0, 1, 1]);

    // The owner sees labels and use, never a token.
    let listed = get_json(
        &owner,
        &app.url(&format!("/api/v1/ballots/{id}/invitations")),
    )
    .await;
    assert_eq!(
        listed["invitations"],
        json!([
            { "id": 1, "label": "Ana", "used": true, "revoked": false,
              "created_at": listed["invitations"][0]["created_at"] },
            { "id": 2, "label": "table 4", "used": true, "revoked": false,
              "created_at": listed["invitations"][1]["created_at"] },
        ])
    );
    let page = get_text(&owner, &app.url(&format!("/ballots/{id}/invitations"))).await;
    assert!(page.contains("Ana") && !page.contains(&links[0]), "{page}");
    // Nobody else sees the list.
    let response = browser()
        .get(app.url(&format!("/api/v1/ballots/{id}/invitations")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn revoked_forged_and_foreign_tokens_open_nothing() {
    let app = spawn_app().await;
    let owner = browser();
    let id = invite_only(&app, &owner, json!({})).await;
    let other = invite_only(&app, &owner, json!({})).await;
    let (_, issued) = issue(&app, &owner, &id, json!({ "count": 2 })).await;
    let links = tokens(&issued);
    let (_, foreign) = issue(&app, &owner, &other, json!({ "count": 1 })).await;
    let foreign = tokens(&foreign).remove(0);

    // A browser opens the link, then the owner revokes it before it votes.
    let holder = browser();
    assert_eq!(open(&app, &holder, &links[0]).await.0, 303);
    let response = owner
        .delete(app.url(&format!("/api/v1/ballots/{id}/invitations/1")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(vote_on_page(&app, &holder, &id, "1").await, 200);
    let page = get_text(&holder, &app.url(&format!("/vote/{id}"))).await;
    assert!(!page.contains("your_vote"), "{page}");
    let (status, _, page) = open(&app, &browser(), &links[0]).await;
    assert_eq!(status, 404);
    assert!(page.contains(LINK_NOT_VALID));

    // Forged, malformed and another ballot's tokens: not valid, never a 5xx.
    let mut forged = links[1].clone();
    forged.replace_range(..1, if forged.starts_with('A') { "B" } else { "A" });
    for token in [forged.as_str(), "short", "%00", &"x".repeat(500)] {
        let (status, _, page) = open(&app, &browser(), token).await;
        assert_eq!(status, 404, "{token}");
        assert!(page.contains(LINK_NOT_VALID), "{token}");
        let (status, body) = vote_by_token(&app, &id, token, json!({ "option_id": 1 })).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (403, Some(LINK_NOT_VALID))
        );
    }
    let (status, _) = vote_by_token(&app, &id, &foreign, json!({ "option_id": 1 })).await;
    assert_eq!(status, 403);

    // A used link cannot be revoked; the live one still votes.
    let (status, _) = vote_by_token(&app, &id, &links[1], json!({ "option_id": 2 })).await;
    assert_eq!(status, 201);
    let response = owner
        .delete(app.url(&format!("/api/v1/ballots/{id}/invitations/2")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let tally = get_json(&browser(), &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 1);
}

#[tokio::test]
async fn guessing_tokens_is_slowed_down_and_finds_nothing() {
    let app = spawn_app_with(|config| config.limits.link_guesses_per_minute = 5).await;
    let owner = browser();
    let id = invite_only(&app, &owner, json!({})).await;
    let (_, issued) = issue(&app, &owner, &id, json!({ "count": 1 })).await;
    let link = tokens(&issued).remove(0);
    let guesser = browser();
    let mut statuses = BTreeMap::new();
    for guess in 0..50 {
        let token = format!("{guess:0>32}");
        let (status, _, _) = open(&app, &guesser, &token).await;
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(statuses, BTreeMap::from([(404, 5), (429, 45)]));
    // Even a real link waits while the client is over its limit.
    assert_eq!(open(&app, &guesser, &link).await.0, 429);
    let (status, _) = vote_by_token(&app, &id, &link, json!({ "option_id": 1 })).await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn links_are_limited_per_request_and_only_for_invite_only_ballots() {
    let app = spawn_app().await;
    let owner = browser();
    let id = invite_only(&app, &owner, json!({})).await;
    for (body, field) in [
        (json!({ "count": 0 }), "count"),
        (json!({ "count": 501 }), "count"),
        (json!({ "count": 2, "labels": ["one"] }), "labels"),
        (json!({ "count": 1, "labels": ["x".repeat(101)] }), "labels"),
        (
            json!({ "count": 1, "labels": ["bad\u{202e}label"] }),
            "labels",
        ),
    ] {
        let (status, problem) = issue(&app, &owner, &id, body.clone()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let (status, issued) = issue(&app, &owner, &id, json!({ "count": 500 })).await;
    assert_eq!((status, tokens(&issued).len()), (201, 500));
    let open_ballot = post_json(
        &owner,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "Open to all", "options": ["a", "b"] }),
    )
    .await
    .json::<Value>()
    .await
    .unwrap();
    let (status, _) = issue(
        &app,
        &owner,
        open_ballot["id"].as_str().unwrap(),
        json!({ "count": 1 }),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = issue(&app, &browser(), &id, json!({ "count": 1 })).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn receipts_are_checked_and_the_bulletin_recounts_to_the_tally() {
    let app = spawn_app().await;
    let owner = browser();
    let id = post_json(
        &owner,
        &app.url("/api/v1/ballots"),
        &json!({
            "measure": "Best pick",
            "options": ["a", "b", "c"],
            "method": "approval",
            "min_choices": 1,
            "max_choices": 2,
            "allow_vote_change": true,
            "publish_bulletin": true,
        }),
    )
    .await
    .json::<Value>()
    .await
    .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut receipts = Vec::new();
    let changer = browser();
    for (voter, choice) in [
        (browser(), json!([1, 2])),
        (browser(), json!([2])),
        (changer.clone(), json!([3])),
    ] {
        let reply: Value = post_json(
            &voter,
            &app.url(&format!("/api/v1/ballots/{id}/votes")),
            &json!({ "option_ids": choice }),
        )
        .await
        .json()
        .await
        .unwrap();
        receipts.push(reply["receipt"].as_str().unwrap().to_owned());
    }
    let changed: Value = post_json(
        &changer,
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "option_ids": [1, 3] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let new_receipt = changed["receipt"].as_str().unwrap().to_owned();
    assert_ne!(new_receipt, receipts[2]);

    let status_of = |code: String| {
        let app_url = app.url(&format!("/api/v1/ballots/{id}/receipts/{code}"));
        async move { get_json(&browser(), &app_url).await["status"].clone() }
    };
    assert_eq!(status_of(receipts[0].clone()).await, "counted");
    assert_eq!(status_of(receipts[2].clone()).await, "replaced");
    assert_eq!(status_of(new_receipt.to_lowercase()).await, "counted");
    assert_eq!(status_of("0000000000".to_owned()).await, "unknown");
    assert_eq!(status_of("not-a-receipt".to_owned()).await, "unknown");
    let page = get_text(
        &browser(),
        &app.url(&format!("/ballots/{id}/receipts/{}", receipts[2])),
    )
    .await;
    assert!(page.contains("replaced by a later vote"), "{page}");

    // The bulletin: sorted rows whose recount is the published tally.
    let bulletin = get_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{id}/bulletin")),
    )
    .await;
    let rows = bulletin["rows"].as_array().unwrap();
    let listed: Vec<&str> = rows
        .iter()
        .map(|row| row["receipt"].as_str().unwrap())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted);
    let mut expected = vec![
        receipts[0].as_str(),
        receipts[1].as_str(),
        new_receipt.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(listed, expected);
    let mut recount = BTreeMap::<u64, u64>::new();
    for row in rows {
        for option in row["option_ids"].as_array().unwrap() {
            *recount.entry(option.as_u64().unwrap()).or_default() += 1;
        }
    }
    let tally = get_json(&browser(), &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    for row in tally["options"].as_array().unwrap() {
        let option = row["option_id"].as_u64().unwrap();
        assert_eq!(
            recount.get(&option).copied().unwrap_or(0),
            row["count"].as_u64().unwrap()
        );
    }
    assert_eq!(bulletin["seq"], tally["seq"]);
    assert_eq!(bulletin["tally"]["options"], tally["options"]);
    // The page finds one receipt, and says nothing of voters.
    let page = get_text(
        &browser(),
        &app.url(&format!("/ballots/{id}/bulletin?receipt={}", receipts[1])),
    )
    .await;
    assert!(
        page.contains(&receipts[1]) && !page.contains(&receipts[0]),
        "{page}"
    );
}

#[tokio::test]
async fn a_ballot_without_a_bulletin_publishes_none() {
    let app = spawn_app().await;
    let ballot: Value = post_json(
        &browser(),
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "Private count", "options": ["a", "b"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = ballot["id"].as_str().unwrap();
    assert_eq!(ballot["publish_bulletin"], false);
    let response = browser()
        .get(app.url(&format!("/api/v1/ballots/{id}/bulletin")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = browser()
        .get(app.url(&format!("/ballots/{id}/bulletin")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn the_create_form_issues_links_once_and_a_vote_shows_its_receipt() {
    let app = spawn_app().await;
    let owner = browser();
    let response = app
        .form_post(
            &owner,
            "/create",
            &[
                ("measure", "Team lunch"),
                ("options_raw", "Pizza\nSushi"),
                ("duration_mins", "60"),
                ("eligibility", "invited"),
                ("voter_links", "2"),
                ("voter_labels", "Ana\nBo"),
                ("publish_bulletin", "on"),
            ],
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let page = unescape(&response.text().await.unwrap());
    let link_start = page.find("/i/").expect("a voting link on the page");
    let token: String = page[link_start + 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 32, "{page}");
    assert!(page.contains("data:text/csv"), "a CSV of the links");
    let voter = browser();
    let (status, to, _) = open(&app, &voter, &token).await;
    assert_eq!(status, 303);
    let id = to.trim_start_matches("/vote/").to_owned();
    assert_eq!(vote_on_page(&app, &voter, &id, "1").await, 303);
    let results = get_text(&voter, &app.url(&format!("/results/{id}"))).await;
    let marker = "receipt-code\">";
    let at = results
        .find(marker)
        .expect("the receipt on the results page")
        + marker.len();
    let receipt = &results[at..at + 10];
    let check = get_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{id}/receipts/{receipt}")),
    )
    .await;
    assert_eq!(check["status"], "counted");
    // The links are never shown again.
    let listed = get_text(&owner, &app.url(&format!("/ballots/{id}/invitations"))).await;
    assert!(!listed.contains(&token) && listed.contains("Bo"));
}

#[tokio::test]
async fn a_guests_ballots_become_theirs_when_they_sign_in() {
    let app = spawn_app().await;
    let guest = browser();
    let first = app
        .create_ballot(&guest, &[("measure", "Guest one"), ("options_raw", "a, b")])
        .await;
    app.create_ballot(&guest, &[("measure", "Guest two"), ("options_raw", "a, b")])
        .await;
    let response = app
        .form_post(&guest, "/auth/mock", &[("email", "owner@example.org")])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let dashboard = get_text(&guest, &app.url("/")).await;
    assert!(dashboard.contains("Guest one") && dashboard.contains("Guest two"));
    assert!(
        dashboard.contains("2 ballots you created in this browser"),
        "{dashboard}"
    );
    // The notice shows once; the owner controls stay.
    assert!(
        !get_text(&guest, &app.url("/"))
            .await
            .contains("you created in this browser")
    );
    let results = get_text(&guest, &app.url(&format!("/results/{first}"))).await;
    assert!(results.contains("owner_controls"));
    // Signed in elsewhere, the account still owns them.
    let phone = browser();
    app.form_post(&phone, "/auth/mock", &[("email", "owner@example.org")])
        .await
        .send()
        .await
        .unwrap();
    assert!(get_text(&phone, &app.url("/")).await.contains("Guest one"));
}

#[tokio::test]
async fn a_used_link_casts_no_other_vote_through_the_api_even_where_votes_may_change() {
    let app = spawn_app().await;
    let owner = browser();
    let id = invite_only(
        &app,
        &owner,
        json!({ "allow_vote_change": true, "results_visibility": "after_voting" }),
    )
    .await;
    let (_, issued) = issue(&app, &owner, &id, json!({ "count": 1 })).await;
    let token = tokens(&issued).remove(0);
    let tally_url = app.url(&format!("/api/v1/ballots/{id}/tally"));
    // Results after voting: hidden from the link before it votes...
    let hidden = browser()
        .get(&tally_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 403);
    let (status, body) = vote_by_token(&app, &id, &token, json!({ "option_id": 1 })).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["receipt_api_url"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/")
    );
    // ...shown to it after, by its bearer token alone (no cookie).
    let shown = browser()
        .get(&tally_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let bulletin = browser()
        .get(app.url(&format!("/api/v1/ballots/{id}/bulletin")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bulletin.status(), 200);
    // Whoever else gets the link later cannot move its vote.
    let (status, body) = vote_by_token(&app, &id, &token, json!({ "option_id": 2 })).await;
    assert_eq!((status, body["message"].as_str()), (409, Some(LINK_USED)));
    let visible = browser()
        .get(&tally_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let tally: Value = visible.json().await.unwrap();
    assert_eq!(tally["options"][0]["count"], 1);
    // The bulletin stays hidden from anyone who has not voted.
    let stranger = browser()
        .get(app.url(&format!("/api/v1/ballots/{id}/bulletin")))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
    let page = browser()
        .get(app.url(&format!("/ballots/{id}/bulletin")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
}

#[tokio::test]
async fn pages_and_replies_naming_a_link_are_neither_cached_nor_referred() {
    let app = spawn_app().await;
    let owner = browser();
    let id = invite_only(&app, &owner, json!({})).await;
    let response = post_json(
        &owner,
        &app.url(&format!("/api/v1/ballots/{id}/invitations")),
        &json!({ "count": 1 }),
    )
    .await;
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let issued: Value = response.json().await.unwrap();
    let token = tokens(&issued).remove(0);
    for path in [format!("/i/{token}"), "/i/not-a-link".to_owned()] {
        let response = browser().get(app.url(&path)).send().await.unwrap();
        assert_eq!(
            response.headers().get("referrer-policy").unwrap(),
            "no-referrer",
            "{path}"
        );
        assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    }
    let form = app
        .form_post(
            &owner,
            &format!("/ballots/{id}/invitations"),
            &[("voter_links", "1")],
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(
        form.headers().get("referrer-policy").unwrap(),
        "no-referrer"
    );
    assert_eq!(form.headers().get("cache-control").unwrap(), "no-store");
}

#[tokio::test]
async fn a_browser_holding_a_link_is_asked_before_it_holds_another() {
    let app = spawn_app().await;
    let owner = browser();
    let id = invite_only(&app, &owner, json!({})).await;
    let (_, issued) = issue(&app, &owner, &id, json!({ "count": 2 })).await;
    let links = tokens(&issued);
    let voter = browser();
    assert_eq!(open(&app, &voter, &links[0]).await.0, 303);
    // Sent to another link (by another site, say): asked, nothing changes.
    let (status, _, page) = open(&app, &voter, &links[1]).await;
    assert_eq!(status, 200);
    assert!(page.contains("use_this_link"), "{page}");
    assert_eq!(vote_on_page(&app, &voter, &id, "1").await, 303);
    let listed = get_json(
        &owner,
        &app.url(&format!("/api/v1/ballots/{id}/invitations")),
    )
    .await;
    assert_eq!(listed["invitations"][0]["used"], true);
    assert_eq!(listed["invitations"][1]["used"], false);
    // Confirming with the form switches.
    let switched = app
        .form_post(&voter, &format!("/i/{}", links[1]), &[])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 303);
    assert_eq!(vote_on_page(&app, &voter, &id, "2").await, 303);
    let listed = get_json(
        &owner,
        &app.url(&format!("/api/v1/ballots/{id}/invitations")),
    )
    .await;
    assert_eq!(listed["invitations"][1]["used"], true);
}

#[tokio::test]
async fn another_authorization_scheme_is_not_a_voting_link() {
    let app = spawn_app().await;
    let voter = browser();
    let ballot: Value = post_json(
        &voter,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "Behind a proxy", "options": ["a", "b"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = ballot["id"].as_str().unwrap();
    let response = voter
        .post(app.url(&format!("/api/v1/ballots/{id}/votes")))
        .basic_auth("staging", Some("gate"))
        .json(&json!({ "option_id": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn the_create_form_refuses_voter_links_it_cannot_issue() {
    let app = spawn_app().await;
    let owner = browser();
    for links in ["abc", "-1", "0", "501"] {
        let response = app
            .form_post(
                &owner,
                "/create",
                &[
                    ("measure", "Refused links"),
                    ("options_raw", "a\nb"),
                    ("eligibility", "invited"),
                    ("voter_links", links),
                ],
            )
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{links}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("between 1 and 500 voter links at a time"),
            "{links}: {page}"
        );
    }
    assert!(
        !get_text(&owner, &app.url("/"))
            .await
            .contains("Refused links")
    );
}

#[tokio::test]
async fn a_ballot_takes_links_up_to_its_limit_and_the_bulletin_pages_its_rows() {
    let app = spawn_app().await;
    let owner = browser();
    let id = invite_only(&app, &owner, json!({})).await;
    for _ in 0..20 {
        let (status, _) = issue(&app, &owner, &id, json!({ "count": 500 })).await;
        assert_eq!(status, 201);
    }
    // 10,000 links: not one more.
    let (status, problem) = issue(&app, &owner, &id, json!({ "count": 1 })).await;
    assert_eq!(
        (status, problem["message"].as_str()),
        (409, Some("a ballot has at most 10000 voter links"))
    );

    // 501 votes: the bulletin page shows 500, then the last one.
    let open_ballot: Value = post_json(
        &owner,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "Many voters", "options": ["a", "b"], "publish_bulletin": true }),
    )
    .await
    .json()
    .await
    .unwrap();
    let ballot = oponn_core::domain::BallotId::parse(open_ballot["id"].as_str().unwrap()).unwrap();
    for voter in 0..501 {
        app.oponn
            .service()
            .cast_vote(
                &ballot,
                &oponn_core::domain::VoterId::new(format!("voter-{voter}")),
                oponn_core::VoteChoice::Option(oponn_core::domain::OptionId::new(1)),
            )
            .await
            .unwrap();
    }
    let rows_on = |page: u32| {
        let url = app.url(&format!("/ballots/{ballot}/bulletin?page={page}"));
        async move {
            get_text(&browser(), &url)
                .await
                .matches("<tr><td><code>")
                .count()
        }
    };
    assert_eq!(rows_on(1).await, 500);
    assert_eq!(rows_on(2).await, 1);
    let all = get_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{ballot}/bulletin")),
    )
    .await;
    assert_eq!(all["rows"].as_array().unwrap().len(), 501);
}
