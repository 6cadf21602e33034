//! The small things a person notices on the way through (issue #14): the
//! icon, titles that name the ballot, a 404 that says what is missing,
//! ties shown as ties, options split the way they were typed.

use serde_json::{Value, json};

use crate::helpers::{browser, get_json, get_text, post_json, spawn_app, unescape};

#[tokio::test]
async fn every_page_has_an_icon_and_the_icon_is_served() {
    let app = spawn_app().await;
    let page = get_text(&browser(), &app.url("/")).await;
    assert!(page.contains(r#"rel="icon""#), "{page}");
    for path in ["/favicon.ico", "/static/img/favicon.svg"] {
        let response = browser().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "image/svg+xml",
            "{path}"
        );
        assert!(response.text().await.unwrap().starts_with("<svg"));
    }
}

#[tokio::test]
async fn only_an_unknown_ballot_is_called_a_missing_ballot() {
    let app = spawn_app().await;
    let unknown_page = browser()
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_page.status(), 404);
    let text = unknown_page.text().await.unwrap();
    assert!(text.contains("404 :: page_not_found"), "{text}");
    assert!(!text.contains("ballot_not_found"), "{text}");
    for path in ["/vote/AAAAAAAAAAAAAAAAAAAAAA", "/results/not-an-id"] {
        let response = browser().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains("404 :: ballot_not_found"), "{path}: {text}");
    }
}

#[tokio::test]
async fn a_ballots_pages_are_titled_by_its_measure() {
    let app = spawn_app().await;
    let id = app.simple_ballot(&browser(), "Lunch on Friday?").await;
    for path in [format!("/vote/{id}"), format!("/results/{id}")] {
        let page = unescape(&get_text(&browser(), &app.url(&path)).await);
        assert!(
            page.contains("<title>Lunch on Friday? · oponn</title>"),
            "{path}: {page}"
        );
    }
}

#[tokio::test]
async fn a_tie_is_shown_as_a_tie_with_no_option_leading() {
    let app = spawn_app().await;
    let id = app.simple_ballot(&browser(), "Coin toss").await;
    for option in ["1", "2"] {
        assert_eq!(
            app.vote(&browser(), &id, &[("option_id", option)])
                .await
                .status(),
            303
        );
    }
    let page = get_text(&browser(), &app.url(&format!("/results/{id}"))).await;
    assert!(page.contains("tie:</strong> a = b"), "{page}");
    assert!(!page.contains("result-row leading"), "{page}");
    let tally = get_json(&browser(), &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    for row in tally["options"].as_array().unwrap() {
        assert_eq!(
            (row["leading"].clone(), row["tied"].clone()),
            (json!(false), json!(true))
        );
    }
    // One more vote breaks the tie: one option leads, none is tied.
    assert_eq!(
        app.vote(&browser(), &id, &[("option_id", "1")])
            .await
            .status(),
        303
    );
    let page = get_text(&browser(), &app.url(&format!("/results/{id}"))).await;
    assert!(!page.contains("tie:"), "{page}");
    assert!(page.contains("result-row leading"), "{page}");
}

#[tokio::test]
async fn options_with_line_breaks_keep_their_commas_and_a_repeat_is_named() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app
        .create_ballot(
            &owner,
            &[
                ("measure", "Shall we?"),
                ("options_raw", "Yes, definitely\nNo, never"),
            ],
        )
        .await;
    let ballot = get_json(&owner, &app.url(&format!("/api/v1/ballots/{id}"))).await;
    let labels: Vec<&str> = ballot["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|option| option["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Yes, definitely", "No, never"]);

    let response = app
        .form_post(
            &owner,
            "/create",
            &[("measure", "Pizza?"), ("options_raw", "Pizza\npIZZA")],
        )
        .await
        .send()
        .await
        .unwrap();
    let page = unescape(&response.text().await.unwrap());
    assert!(
        page.contains(r#"options must be unique: "pIZZA" is the same option as "Pizza""#),
        "{page}"
    );
    let problem: Value = post_json(
        &owner,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "Twice", "options": ["tea", "tea"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        problem["errors"][0]["message"],
        r#"options must be unique: "tea" is listed twice"#
    );
}

#[tokio::test]
async fn the_apis_new_ballot_names_its_vote_and_results_pages() {
    let app = spawn_app().await;
    let ballot: Value = post_json(
        &browser(),
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "Share me", "options": ["a", "b"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = ballot["id"].as_str().unwrap();
    assert_eq!(ballot["vote_url"], format!("/vote/{id}"));
    assert_eq!(ballot["results_url"], format!("/results/{id}"));
    let page = browser()
        .get(app.url(ballot["vote_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn closing_and_deleting_are_confirmed_and_deleting_asks_first() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app.simple_ballot(&owner, "Owner actions").await;
    // The results page offers deletion as a page to confirm on.
    let results = get_text(&owner, &app.url(&format!("/results/{id}"))).await;
    assert!(unescape(&results).contains(&format!(r#"href="/ballots/{id}/delete""#)));
    let confirm = get_text(&owner, &app.url(&format!("/ballots/{id}/delete"))).await;
    assert!(confirm.contains("yes_delete_ballot"), "{confirm}");
    assert_eq!(
        browser()
            .get(app.url(&format!("/ballots/{id}/delete")))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // Closing: the results page says so, once.
    let closed = app.close_ballot(&owner, &id).await;
    assert_eq!(closed.status(), 303);
    let results = get_text(&owner, &app.url(&format!("/results/{id}"))).await;
    assert!(results.contains("Voting is closed"), "{results}");
    let again = get_text(&owner, &app.url(&format!("/results/{id}"))).await;
    assert!(!again.contains("Voting is closed:"), "{again}");
    // Deleting: the dashboard says so.
    let deleted = app
        .form_post(&owner, &format!("/ballots/{id}/delete"), &[])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    let dashboard = get_text(&owner, &app.url("/")).await;
    assert!(dashboard.contains("The ballot was deleted"), "{dashboard}");
}
