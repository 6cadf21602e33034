//! Ballot methods over HTTP: approval and ranked ballots through the API
//! and the pages, their counts, and the cast-vote records.

use serde_json::{Value, json};

use crate::helpers::{browser, get_json, get_text, post_json, spawn_app};

/// Creates a ballot through the API and returns its JSON.
async fn create(app: &crate::helpers::TestApp, body: Value) -> Value {
    let response = post_json(&browser(), &app.url("/api/v1/ballots"), &body).await;
    assert_eq!(response.status(), 201, "{body}");
    response.json().await.unwrap()
}

/// Votes `body` through the API as a new voter; returns status and JSON.
async fn vote(app: &crate::helpers::TestApp, id: &str, body: Value) -> (u16, Value) {
    let response = post_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &body,
    )
    .await;
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn approval_bounds_are_checked_with_their_messages() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({ "min_choices": 0 }),
            "min_choices",
            "choose at least 1",
        ),
        (
            json!({ "max_choices": 4 }),
            "max_choices",
            "cannot exceed the number of options",
        ),
        (
            json!({ "min_choices": 3, "max_choices": 2 }),
            "min_choices",
            "minimum cannot exceed maximum",
        ),
    ];
    for (bounds, field, message) in cases {
        let mut body =
            json!({ "measure": "bounds", "options": ["a", "b", "c"], "method": "approval" });
        body.as_object_mut()
            .unwrap()
            .extend(bounds.as_object().unwrap().clone());
        let response = post_json(&browser(), &app.url("/api/v1/ballots"), &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let problem: Value = response.json().await.unwrap();
        let errors = problem["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|error| error["field"] == field && error["message"] == message),
            "{body}: {problem}"
        );
    }
    let ranked_write_ins = post_json(
        &browser(),
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "ranked", "options": ["a", "b"], "method": "ranked", "allow_write_in": true }),
    )
    .await;
    assert_eq!(ranked_write_ins.status(), 422);
}

#[tokio::test]
async fn an_approval_ballot_counts_voters_per_option() {
    let app = spawn_app().await;
    let ballot = create(
        &app,
        json!({ "measure": "which snacks?", "options": ["chips", "fruit", "nuts"],
                "method": "approval", "max_choices": 2, "allow_write_in": true }),
    )
    .await;
    assert_eq!(
        (
            &ballot["method"],
            &ballot["min_choices"],
            &ballot["max_choices"]
        ),
        (&json!("approval"), &json!(1), &json!(2))
    );
    let id = ballot["id"].as_str().unwrap();
    let (status, accepted) = vote(&app, id, json!({ "option_ids": [3, 1] })).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["option_ids"], json!([1, 3]));
    let (status, _) = vote(&app, id, json!({ "option_ids": [1], "write_in": "cake" })).await;
    assert_eq!(status, 201);
    let (status, refused) = vote(&app, id, json!({ "option_ids": [1, 2, 3] })).await;
    assert_eq!(
        (status, &refused["message"]),
        (422, &json!("Select at most 2 options"))
    );
    assert_eq!(refused["errors"][0]["field"], "option_ids");
    let (status, refused) = vote(&app, id, json!({ "option_ids": [] })).await;
    assert_eq!(
        (status, &refused["message"]),
        (422, &json!("Select at least 1 option"))
    );
    for (body, field) in [
        (json!({ "ranking": [1, 2] }), "ranking"),
        (json!({ "option_id": 1 }), "option_id"),
    ] {
        let (status, refused) = vote(&app, id, body.clone()).await;
        assert_eq!(
            (status, &refused["message"]),
            (
                422,
                &json!("This ballot takes a set of options (option_ids)")
            ),
            "{body}"
        );
        assert_eq!(refused["errors"][0]["field"], field);
    }
    let (status, _) = vote(&app, id, json!({ "option_ids": [2, 1] })).await;
    assert_eq!(status, 201);

    let tally = get_json(&browser(), &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 3, "voters, not marks: {tally}");
    let counts: Vec<u64> = tally["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [3, 1, 1, 1], "chips, fruit, nuts, cake");
    assert_eq!(tally["options"][0]["percent"], 100.0);
    assert!(tally["instant_runoff"].is_null());
}

#[tokio::test]
async fn a_ranked_ballot_shows_its_rounds_and_its_condorcet_check() {
    let app = spawn_app().await;
    let ballot = create(
        &app,
        json!({ "measure": "which city?", "options": ["A", "B", "C"], "method": "ranked" }),
    )
    .await;
    let id = ballot["id"].as_str().unwrap();
    // The centre squeeze: B wins every pairing but has the fewest firsts.
    for (ranking, voters) in [([1, 2, 3], 4), ([3, 2, 1], 4), ([2, 1, 3], 3)] {
        for _ in 0..voters {
            let (status, body) = vote(&app, id, json!({ "ranking": ranking })).await;
            assert_eq!(status, 201, "{body}");
        }
    }
    for (body, message) in [
        (json!({ "ranking": [] }), "Rank at least one option"),
        (
            json!({ "ranking": [1, 1] }),
            "Each option can be ranked only once",
        ),
        (
            json!({ "write_in": "D" }),
            "Write-in votes are not allowed for this ballot",
        ),
        (json!({ "ranking": [9] }), "Invalid option for this ballot"),
        (
            json!({ "option_id": 1 }),
            "This ballot takes a ranking (ranking)",
        ),
        (
            json!({ "option_ids": [1] }),
            "This ballot takes a ranking (ranking)",
        ),
    ] {
        let (status, refused) = vote(&app, id, body.clone()).await;
        assert_eq!(
            (status, &refused["message"]),
            (422, &json!(message)),
            "{body}"
        );
    }
    let single = create(&app, json!({ "measure": "single", "options": ["a", "b"] })).await;
    let (status, refused) = vote(
        &app,
        single["id"].as_str().unwrap(),
        json!({ "option_ids": [1] }),
    )
    .await;
    assert_eq!(
        (status, &refused["message"]),
        (
            422,
            &json!("This ballot takes one option (option_id or write_in)")
        )
    );
    let tally = get_json(&browser(), &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 11);
    let runoff = &tally["instant_runoff"];
    assert_eq!(runoff["rounds"][0]["eliminated"], json!([2]), "{runoff}");
    assert_eq!(
        runoff["rounds"][1]["counts"],
        json!([{ "option_id": 1, "count": 7 }, { "option_id": 3, "count": 4 }])
    );
    assert_eq!(runoff["winner"], 1);
    let condorcet = &tally["condorcet"];
    assert_eq!(condorcet["winner"], 2);
    assert_eq!(condorcet["schulze_ranking"][0], json!([2]));
    assert_eq!(
        condorcet["pairwise"][0],
        json!({ "a": 1, "b": 2, "a_over_b": 4, "b_over_a": 7 })
    );

    let page = get_text(&browser(), &app.url(&format!("/results/{id}"))).await;
    for needle in [
        "instant_runoff",
        "winner: <strong>A</strong>",
        "condorcet_winner: <strong>B</strong>",
        "round 1: B eliminated",
        "exhausted ballots",
    ] {
        assert!(page.contains(needle), "results page lacks {needle}");
    }

    // The cast-vote record recounts to the same rounds.
    let record = get_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{id}/ballots")),
    )
    .await;
    let ballots = record["ballots"].as_array().unwrap();
    assert_eq!(ballots.len(), 11);
    assert_eq!(ballots[0]["option_ids"], json!([1, 2, 3]));
    assert_eq!(ballots[0]["labels"], json!(["A", "B", "C"]));
    // The results export carries the rounds and the pairs.
    let export = get_text(&browser(), &app.url(&format!("/results/{id}/export.csv"))).await;
    assert!(
        export.starts_with("option,count,percentage\nA,4,36.4\n"),
        "{export}"
    );
    assert!(export.contains("round,option,votes\n1,A,4\n"), "{export}");
    assert!(export.contains("1,B (eliminated),3\n"), "{export}");
    assert!(
        export.contains("option_a,option_b,a_over_b,b_over_a\nA,B,4,7\n"),
        "{export}"
    );
    let api_export = get_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{id}/results")),
    )
    .await;
    assert_eq!(api_export["instant_runoff"]["winner"], 1);
    assert_eq!(api_export["ballot"]["method"], "ranked");

    let csv = get_text(&browser(), &app.url(&format!("/results/{id}/ballots.csv"))).await;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("option_ids,choice_1,choice_2,choice_3"));
    assert_eq!(lines.count(), 11);
    assert!(csv.contains("3 2 1,C,B,A"), "{csv}");
}

#[tokio::test]
async fn the_pages_create_and_take_every_method() {
    let app = spawn_app().await;
    let owner = browser();
    let approval = app
        .create_ballot(
            &owner,
            &[
                ("measure", "page approval"),
                ("options_raw", "a\nb\nc"),
                ("method", "approval"),
                ("min_choices", "2"),
                ("max_choices", ""),
            ],
        )
        .await;
    let form = get_text(&owner, &app.url(&format!("/vote/{approval}"))).await;
    assert!(form.contains(r#"<input type="checkbox" name="option_ids" value="3""#));
    let voter = browser();
    let refused = app.vote(&voter, &approval, &[("option_ids", "1")]).await;
    assert_eq!(refused.status(), 200);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Select at least 2 options")
    );
    let accepted = app
        .vote(
            &voter,
            &approval,
            &[("option_ids", "1"), ("option_ids", "3")],
        )
        .await;
    assert_eq!(accepted.status(), 303);

    let ranked = app
        .create_ballot(
            &owner,
            &[
                ("measure", "page ranked"),
                ("options_raw", "x, y, z"),
                ("method", "ranked"),
            ],
        )
        .await;
    let form = get_text(&owner, &app.url(&format!("/vote/{ranked}"))).await;
    assert!(form.contains(r#"<select id="rank_2" name="rank_2">"#));
    let voter = browser();
    let twice = app
        .vote(
            &voter,
            &ranked,
            &[("rank_1", "1"), ("rank_2", "1"), ("rank_3", "")],
        )
        .await;
    assert!(
        twice
            .text()
            .await
            .unwrap()
            .contains("Each rank can be given to one option only")
    );
    let accepted = app
        .vote(
            &voter,
            &ranked,
            &[("rank_1", "2"), ("rank_2", ""), ("rank_3", "1")],
        )
        .await;
    assert_eq!(accepted.status(), 303);
    let page = get_text(&voter, &app.url(&format!("/vote/{ranked}"))).await;
    assert!(
        page.contains("your_vote: z &gt; x"),
        "the ranking reads back in order"
    );

    let bad = app
        .form_post(
            &owner,
            "/create",
            &[
                ("measure", "bad bounds"),
                ("options_raw", "a, b"),
                ("method", "approval"),
                ("min_choices", "3"),
            ],
        )
        .await
        .send()
        .await
        .unwrap();
    let html = bad.text().await.unwrap();
    assert!(
        html.contains("cannot exceed the number of options"),
        "{html}"
    );
}
