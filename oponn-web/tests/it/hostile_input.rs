//! Hostile input over HTTP: extreme times, text that hides or imitates,
//! and write-ins past the limit get field errors, never a dropped
//! connection or a spoofed option.

use oponn_core::DEFAULT_MAX_WRITE_IN_OPTIONS;
use oponn_core::domain::messages;
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, browser, post_json, spawn_app};

const WRITE_IN: &str = "__write_in__";

async fn create_form(app: &TestApp, fields: &[(&str, &str)]) -> Response {
    app.form_post(&browser(), "/create", fields)
        .await
        .send()
        .await
        .unwrap()
}

/// Posts `body` to the create API and returns the 422 problem's field errors.
async fn api_refusal(app: &TestApp, body: &Value) -> Vec<Value> {
    let response = post_json(&browser(), &app.url("/api/v1/ballots"), body).await;
    assert_eq!(response.status(), 422, "{body}");
    let problem: Value = response.json().await.unwrap();
    problem["errors"].as_array().unwrap().clone()
}

/// Creates a ballot through the API and returns its id.
async fn api_ballot(app: &TestApp, measure: &str, options: &[&str], write_in: bool) -> String {
    let created = post_json(
        &browser(),
        &app.url("/api/v1/ballots"),
        &json!({ "measure": measure, "options": options, "allow_write_in": write_in }),
    )
    .await;
    assert_eq!(created.status(), 201, "{measure} {options:?}");
    let ballot: Value = created.json().await.unwrap();
    ballot["id"].as_str().unwrap().to_owned()
}

/// Casts a write-in through the API as a new voter.
async fn api_write_in(app: &TestApp, id: &str, text: &str) -> Response {
    post_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "write_in": text }),
    )
    .await
}

async fn still_serving(app: &TestApp) {
    assert_eq!(app.get(&browser(), "/livez").await.status(), 200);
}

/// The form came back (`200`, as re-rendered forms do) with `message`
/// under its field; `context` names the input for a failure.
async fn shows_field_message(page: reqwest::Response, message: &str, context: &str) {
    assert_eq!(page.status(), 200, "{context}");
    let html = page.text().await.unwrap();
    assert!(html.contains(message), "{context}: no {message:?}");
}

#[tokio::test]
async fn starts_at_the_end_of_time_are_field_errors_on_the_form_and_the_api() {
    let app = spawn_app().await;
    for start in [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59",
        "2999-01-01T00:00:00Z",
    ] {
        let errors = api_refusal(
            &app,
            &json!({
                "measure": "far away?",
                "options": ["a", "b"],
                "scheduled_start": start,
                "window_minutes": 1,
            }),
        )
        .await;
        assert_eq!(
            errors,
            vec![
                json!({ "field": "scheduled_start", "message": messages::SCHEDULED_START_TOO_FAR })
            ],
            "{start}"
        );

        let page = create_form(
            &app,
            &[
                ("measure", "far away?"),
                ("options_raw", "a, b"),
                ("start_time_type", "scheduled"),
                ("scheduled_start_time", start),
                ("duration_mins", "1"),
            ],
        )
        .await;
        shows_field_message(page, messages::SCHEDULED_START_TOO_FAR, start).await;
    }
    // A browser-local time in the furthest offset, and an offset that
    // overflowed `i32::abs`.
    for offset in ["1439", "-1439", "-2147483648", "2147483647"] {
        let page = create_form(
            &app,
            &[
                ("measure", "far away?"),
                ("options_raw", "a, b"),
                ("start_time_type", "scheduled"),
                ("scheduled_start_time", "9999-12-31T23:59"),
                ("tz_offset_minutes", offset),
                ("duration_mins", "10"),
            ],
        )
        .await;
        shows_field_message(page, messages::SCHEDULED_START_TOO_FAR, offset).await;
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn hidden_characters_are_refused_in_measures_and_options() {
    let app = spawn_app().await;
    for hidden in [
        "Piz\u{202e}za",
        "\u{1b}[31mRed",
        "Ramen\revent: hijacked",
        "Pi\u{0}zza",
        "\u{200b}",
        "Pizza\u{2066}",
        "\u{feff}Pizza",
    ] {
        let errors = api_refusal(
            &app,
            &json!({ "measure": "lunch?", "options": ["Sushi", hidden] }),
        )
        .await;
        assert_eq!(
            errors,
            vec![json!({ "field": "options", "message": messages::OPTION_HIDDEN_CHARACTERS })],
            "{hidden:?}"
        );
        // A measure's line breaks are whitespace, made one space.
        if !hidden.contains('\r') {
            let errors = api_refusal(
                &app,
                &json!({ "measure": format!("lunch {hidden}?"), "options": ["Sushi", "Pizza"] }),
            )
            .await;
            assert_eq!(
                errors,
                vec![json!({ "field": "measure", "message": messages::MEASURE_HIDDEN_CHARACTERS })],
                "{hidden:?}"
            );
        }
    }
    let page = create_form(
        &app,
        &[
            ("measure", "lunch?"),
            ("options_raw", "Sushi, Piz\u{202e}za"),
        ],
    )
    .await;
    shows_field_message(page, messages::OPTION_HIDDEN_CHARACTERS, "").await;
    still_serving(&app).await;
}

#[tokio::test]
async fn a_measure_keeps_its_words_on_one_line() {
    let app = spawn_app().await;
    let created = post_json(
        &browser(),
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "Ramen\revent: hijacked\r\n?", "options": ["a", "b"] }),
    )
    .await;
    assert_eq!(created.status(), 201);
    let ballot: Value = created.json().await.unwrap();
    assert_eq!(ballot["measure"], "Ramen event: hijacked ?");
}

#[tokio::test]
async fn look_alike_options_are_not_unique() {
    let app = spawn_app().await;
    for look_alike in ["pizz\u{430}", "P\u{456}zza"] {
        let errors = api_refusal(
            &app,
            &json!({ "measure": "lunch?", "options": ["Pizza", look_alike] }),
        )
        .await;
        assert_eq!(
            errors,
            vec![json!({
                "field": "options",
                "message": messages::options_repeat(look_alike, "Pizza"),
            })]
        );
        let page = create_form(
            &app,
            &[
                ("measure", "lunch?"),
                ("options_raw", &format!("Pizza, {look_alike}")),
            ],
        )
        .await;
        shows_field_message(page, messages::OPTIONS_NOT_UNIQUE, "").await;
    }
}

#[tokio::test]
async fn write_ins_that_hide_are_refused_and_look_alikes_count_toward_their_option() {
    let app = spawn_app().await;
    let id = api_ballot(&app, "lunch?", &["Pizza", "Sushi"], true).await;
    for hidden in [
        "\u{200b}",
        "\u{200d}",
        "Pi\u{202e}zza",
        "\u{1b}[31m",
        "\u{0}",
    ] {
        let refused = api_write_in(&app, &id, hidden).await;
        assert_eq!(refused.status(), 422, "{hidden:?}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["message"], messages::WRITE_IN_HIDDEN_CHARACTERS);
    }
    let page = app
        .vote(
            &browser(),
            &id,
            &[("option_id", WRITE_IN), ("write_in_value", "\u{200b}")],
        )
        .await;
    shows_field_message(page, messages::WRITE_IN_HIDDEN_CHARACTERS, "").await;

    for look_alike in ["pizz\u{430}", "P\u{456}zza", "ＰＩＺＺＡ"] {
        let counted = api_write_in(&app, &id, look_alike).await;
        assert_eq!(counted.status(), 201, "{look_alike}");
        let accepted: Value = counted.json().await.unwrap();
        assert_eq!(accepted["option_id"], 1, "{look_alike} counts toward Pizza");
    }
    let ballot: Value = browser()
        .get(app.url(&format!("/api/v1/ballots/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ballot["options"].as_array().unwrap().len(), 2);
    let tally: Value = browser()
        .get(app.url(&format!("/api/v1/ballots/{id}/tally")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tally["options"][0]["count"], 3);
}

#[tokio::test]
async fn ballots_in_other_scripts_are_created_and_voted_on() {
    let app = spawn_app().await;
    for (measure, yes, no) in [
        ("Συμφωνείτε;", "Ναι", "Όχι"),
        ("Вы согласны?", "Да", "Нет"),
        ("你同意吗？", "是", "否"),
        ("هل توافق؟", "نعم", "لا"),
    ] {
        let id = api_ballot(&app, measure, &[yes, no], true).await;
        let votes = app.url(&format!("/api/v1/ballots/{id}/votes"));
        let vote = post_json(&browser(), &votes, &json!({ "option_id": 2 })).await;
        assert_eq!(vote.status(), 201, "{measure}");
        let written = api_write_in(&app, &id, &yes.to_lowercase()).await;
        assert_eq!(written.status(), 201, "{measure}");
        assert_eq!(written.json::<Value>().await.unwrap()["option_id"], 1);
        let page = app.page_text(&browser(), &format!("/vote/{id}")).await;
        assert!(page.contains(measure) && page.contains(yes) && page.contains(no));
    }
}

#[tokio::test]
async fn write_ins_stop_at_the_limit_of_write_in_options() {
    let app = spawn_app().await;
    let id = api_ballot(&app, "open lunch?", &["Pizza"], true).await;
    for n in 0..DEFAULT_MAX_WRITE_IN_OPTIONS {
        let created = api_write_in(&app, &id, &format!("dish {n}")).await;
        assert_eq!(created.status(), 201, "write-in {n}");
    }
    let refused = api_write_in(&app, &id, "one dish too many").await;
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["message"], messages::WRITE_IN_LIMIT_REACHED);

    let page = app
        .vote(
            &browser(),
            &id,
            &[
                ("option_id", WRITE_IN),
                ("write_in_value", "one dish too many"),
            ],
        )
        .await;
    shows_field_message(page, messages::WRITE_IN_LIMIT_REACHED, "").await;
    // A write-in matching an existing option still counts.
    let matching = api_write_in(&app, &id, "DISH 7").await;
    assert_eq!(matching.status(), 201);
    assert_eq!(matching.json::<Value>().await.unwrap()["option_id"], 2 + 7);
}
