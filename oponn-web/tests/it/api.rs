//! The JSON API and its OpenAPI description.

use serde_json::{Value, json};

use crate::helpers::{browser, get_json, header, post_json, spawn_app};

#[tokio::test]
async fn a_ballot_is_created_read_voted_on_and_tallied() {
    let app = spawn_app().await;
    let client = browser();
    let created = post_json(
        &client,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "api lunch?", "options": ["pizza", "pasta"], "allow_write_in": true, "window_minutes": 30 }),
    )
    .await;
    assert_eq!(created.status(), 201);
    let location = header(created.headers(), "location");
    let ballot: Value = created.json().await.unwrap();
    let id = ballot["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/ballots/{id}"));
    assert_eq!(ballot["status"], "active");
    assert_eq!(ballot["status_label"], "ends in 30 minutes");
    assert_eq!(ballot["options"][1]["label"], "pasta");

    let read = get_json(&client, &app.url(&location)).await;
    assert_eq!(read["measure"], "api lunch?");

    let votes = app.url(&format!("/api/v1/ballots/{id}/votes"));
    let vote = post_json(&client, &votes, &json!({ "option_id": 2 })).await;
    assert_eq!(vote.status(), 201);
    let accepted: Value = vote.json().await.unwrap();
    assert_eq!(accepted["option_id"], 2);
    assert_eq!(accepted["tally"]["total"], 1);
    assert_eq!(accepted["tally"]["seq"], 1);

    let write_in = post_json(&browser(), &votes, &json!({ "write_in": "  PASTA " })).await;
    assert_eq!(write_in.status(), 201);
    assert_eq!(
        write_in.json::<Value>().await.unwrap()["option_id"],
        2,
        "merged into pasta"
    );

    let tally = get_json(&client, &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 2);
    assert_eq!(tally["options"][1]["count"], 2);
    assert_eq!(tally["options"][1]["leading"], true);
    assert_eq!(tally["options"][1]["percent"], 100.0);
}

#[tokio::test]
async fn one_voter_cannot_vote_twice_through_the_api_or_the_pages() {
    let app = spawn_app().await;
    let voter = browser();
    let id = app.simple_ballot(&browser(), "once").await;
    // Voted on the page...
    assert_eq!(app.vote_for(&voter, &id, "1").await, 303);
    // ...so the API, with the same cookie, refuses.
    let again = post_json(
        &voter,
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "option_id": 2 }),
    )
    .await;
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["message"],
        "You have already voted on this ballot."
    );
    let tally = get_json(&voter, &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 1);
}

#[tokio::test]
async fn api_refusals_have_status_codes_and_messages() {
    let app = spawn_app().await;
    let client = browser();
    let invalid = post_json(
        &client,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "x", "options": ["a"] }),
    )
    .await;
    assert_eq!(invalid.status(), 422);
    let problem: Value = invalid.json().await.unwrap();
    let errors = problem["errors"].as_array().unwrap();
    assert!(errors.contains(&json!({ "field": "measure", "message": "at least 3 characters" })));
    assert!(errors.contains(
        &json!({ "field": "options", "message": "at least 2 options when write-ins are disabled" })
    ));

    let missing = app
        .get(&client, "/api/v1/ballots/AAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(missing.status(), 404);

    let id = app.simple_ballot(&browser(), "codes").await;
    let votes = app.url(&format!("/api/v1/ballots/{id}/votes"));
    for (body, status, message) in [
        (
            json!({ "option_id": 7 }),
            422,
            "Invalid option for this ballot",
        ),
        (
            json!({ "write_in": "c" }),
            422,
            "Write-in votes are not allowed for this ballot",
        ),
        (json!({}), 422, "give exactly one of option_id and write_in"),
    ] {
        let response = post_json(&browser(), &votes, &body).await;
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(response.json::<Value>().await.unwrap()["message"], message);
    }
}

#[tokio::test]
async fn the_tally_stream_sends_json_with_sequence_ids() {
    let app = spawn_app().await;
    let id = app.simple_ballot(&browser(), "json live").await;
    let mut stream = app
        .event_stream(
            &browser(),
            &format!("/api/v1/ballots/{id}/tally/stream"),
            None,
        )
        .await;
    let first = stream.next().await;
    assert_eq!(first.event.as_deref(), Some("tally"));
    assert_eq!(first.id.as_deref(), Some("0"));
    let tally: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(tally["total"], 0);
    assert_eq!(app.vote_for(&browser(), &id, "2").await, 303);
    let next = stream.next().await;
    assert_eq!(next.id.as_deref(), Some("1"));
    let tally: Value = serde_json::from_str(&next.data).unwrap();
    assert_eq!(tally["options"][1]["count"], 1);
}

#[tokio::test]
async fn the_spec_and_docs_are_served() {
    let app = spawn_app().await;
    let spec = get_json(&browser(), &app.url("/api/openapi.json")).await;
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/ballots",
        "/ballots/{id}",
        "/ballots/{id}/votes",
        "/ballots/{id}/tally",
        "/ballots/{id}/tally/stream",
    ] {
        assert!(
            paths.contains_key(path),
            "spec lacks {path}: {:?}",
            paths.keys()
        );
    }
    let vote_doc = spec["paths"]["/ballots/{id}/votes"]["post"]["description"]
        .as_str()
        .unwrap();
    assert!(
        vote_doc.contains("oponn_voter"),
        "the spec says how voters are identified"
    );
    let docs = app.get(&browser(), "/api/docs").await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger-ui-bundle.js"));
}
