//! The JSON API and its OpenAPI description.

use serde_json::{Value, json};

use crate::helpers::{SseReader, browser, header, spawn_app};

#[tokio::test]
async fn a_ballot_is_created_read_voted_on_and_tallied() {
    let app = spawn_app().await;
    let client = browser();
    let created = client
        .post(app.url("/api/v1/ballots"))
        .json(&json!({ "measure": "api lunch?", "options": ["pizza", "pasta"], "allow_write_in": true, "window_minutes": 30 }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = header(created.headers(), "location");
    let ballot: Value = created.json().await.unwrap();
    let id = ballot["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/ballots/{id}"));
    assert_eq!(ballot["status"], "active");
    assert_eq!(ballot["status_label"], "ends in 30 minutes");
    assert_eq!(ballot["options"][1]["label"], "pasta");

    let read: Value = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["measure"], "api lunch?");

    let vote = client
        .post(app.url(&format!("/api/v1/ballots/{id}/votes")))
        .json(&json!({ "option_id": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(vote.status(), 201);
    let accepted: Value = vote.json().await.unwrap();
    assert_eq!(accepted["option_id"], 2);
    assert_eq!(accepted["tally"]["total"], 1);
    assert_eq!(accepted["tally"]["seq"], 1);

    let write_in = browser()
        .post(app.url(&format!("/api/v1/ballots/{id}/votes")))
        .json(&json!({ "write_in": "  PASTA " }))
        .send()
        .await
        .unwrap();
    assert_eq!(write_in.status(), 201);
    assert_eq!(
        write_in.json::<Value>().await.unwrap()["option_id"],
        2,
        "merged into pasta"
    );

    let tally: Value = client
        .get(app.url(&format!("/api/v1/ballots/{id}/tally")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tally["total"], 2);
    assert_eq!(tally["options"][1]["count"], 2);
    assert_eq!(tally["options"][1]["leading"], true);
    assert_eq!(tally["options"][1]["percent"], 100.0);
}

#[tokio::test]
async fn one_voter_cannot_vote_twice_through_the_api_or_the_pages() {
    let app = spawn_app().await;
    let voter = browser();
    let id = app
        .create_ballot(&browser(), &[("measure", "once"), ("options_raw", "a, b")])
        .await;
    // Voted on the page...
    assert_eq!(
        app.vote(&voter, &id, &[("option_id", "1")]).await.status(),
        303
    );
    // ...so the API, with the same cookie, refuses.
    let again = voter
        .post(app.url(&format!("/api/v1/ballots/{id}/votes")))
        .json(&json!({ "option_id": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["message"],
        "You have already voted on this ballot."
    );
    let tally: Value = voter
        .get(app.url(&format!("/api/v1/ballots/{id}/tally")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tally["total"], 1);
}

#[tokio::test]
async fn api_refusals_have_status_codes_and_messages() {
    let app = spawn_app().await;
    let client = browser();
    let invalid = client
        .post(app.url("/api/v1/ballots"))
        .json(&json!({ "measure": "x", "options": ["a"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let problem: Value = invalid.json().await.unwrap();
    let errors = problem["errors"].as_array().unwrap();
    assert!(errors.contains(&json!({ "field": "measure", "message": "at least 3 characters" })));
    assert!(errors.contains(
        &json!({ "field": "options", "message": "at least 2 options when write-ins are disabled" })
    ));

    let missing = client
        .get(app.url("/api/v1/ballots/AAAAAAAAAAAAAAAAAAAAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let id = app
        .create_ballot(&browser(), &[("measure", "codes"), ("options_raw", "a, b")])
        .await;
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
        let response = browser().post(&votes).json(&body).send().await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(response.json::<Value>().await.unwrap()["message"], message);
    }
}

#[tokio::test]
async fn the_tally_stream_sends_json_with_sequence_ids() {
    let app = spawn_app().await;
    let id = app
        .create_ballot(
            &browser(),
            &[("measure", "json live"), ("options_raw", "a, b")],
        )
        .await;
    let response = browser()
        .get(app.url(&format!("/api/v1/ballots/{id}/tally/stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    let first = stream.next().await;
    assert_eq!(first.event.as_deref(), Some("tally"));
    assert_eq!(first.id.as_deref(), Some("0"));
    let tally: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(tally["total"], 0);
    assert_eq!(
        app.vote(&browser(), &id, &[("option_id", "2")])
            .await
            .status(),
        303
    );
    let next = stream.next().await;
    assert_eq!(next.id.as_deref(), Some("1"));
    let tally: Value = serde_json::from_str(&next.data).unwrap();
    assert_eq!(tally["options"][1]["count"], 1);
}

#[tokio::test]
async fn the_spec_and_docs_are_served() {
    let app = spawn_app().await;
    let spec: Value = browser()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let docs = browser().get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger-ui-bundle.js"));
}
