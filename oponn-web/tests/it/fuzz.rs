//! Property tests of the parsers on the hot path, over HTTP: arbitrary form
//! and JSON bodies on every route that reads one never get a 5xx or a
//! dropped connection, and the server keeps serving.
//!
//! CI runs `FUZZ_CASES` (1,000) bodies of each kind; a longer run:
//! `OPONN_FUZZ_CASES=20000 cargo test -p oponn-web --test it fuzz::`.

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use crate::helpers::{browser, csrf_token, post_json, spawn_app};

/// Bodies per route in CI.
const FUZZ_CASES: usize = 1_000;

fn cases() -> usize {
    std::env::var("OPONN_FUZZ_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(FUZZ_CASES)
}

/// Text a hostile client might send: any Unicode, with the characters
/// that break parsers and renderers weighted in.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\x7f\u{80}-\u{9f}\u{200b}-\u{200f}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{feff}=+@&%;,\\r\\n\\t a-zA-Zа-я]{0,80}",
        Just("9999-12-31T23:59:59-23:59".to_owned()),
        Just("__write_in__".to_owned()),
        "[0-9+-]{0,30}",
    ]
}

/// A form body: known field names (and some made-up ones) with hostile
/// values, sometimes raw bytes instead.
fn form_body(csrf: String) -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just("measure"),
        Just("options"),
        Just("allow_write_in"),
        Just("start_time_type"),
        Just("scheduled_start"),
        Just("tz_offset_minutes"),
        Just("window_minutes"),
        Just("eligibility"),
        Just("allow_vote_change"),
        Just("results_visibility"),
        Just("option_id"),
        Just("write_in_value"),
        Just("method"),
        Just("min_choices"),
        Just("max_choices"),
        Just("option_ids"),
        Just("rank_1"),
        Just("rank_2"),
        Just("rank_x"),
        Just("X-CSRF-Token"),
        Just("zzz"),
    ];
    prop_oneof![
        4 => proptest::collection::vec((field, hostile_text()), 0..12).prop_map(move |pairs| {
            let mut form = format!("X-CSRF-Token={}", percent_encode(&csrf));
            for (name, value) in pairs {
                form.push('&');
                form.push_str(name);
                form.push('=');
                form.push_str(&percent_encode(&value));
            }
            form.into_bytes()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

/// `application/x-www-form-urlencoded` escaping: every byte but ASCII
/// letters and digits as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|n| json!(n)),
        hostile_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("measure".to_owned()),
                        Just("options".to_owned()),
                        Just("scheduled_start".to_owned()),
                        Just("window_minutes".to_owned()),
                        Just("allow_write_in".to_owned()),
                        Just("option_id".to_owned()),
                        Just("write_in".to_owned()),
                        Just("eligibility".to_owned()),
                        Just("method".to_owned()),
                        Just("min_choices".to_owned()),
                        Just("max_choices".to_owned()),
                        Just("option_ids".to_owned()),
                        Just("ranking".to_owned()),
                        "[a-z_]{1,12}",
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A JSON body: a structured value, or bytes that may not be JSON at all.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|value| value.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

#[tokio::test]
async fn arbitrary_bodies_never_get_a_server_error() {
    let app = spawn_app().await;
    let client = browser();
    // A ballot of every method, so votes of every shape meet every method.
    let mut ids = Vec::new();
    for method in ["single", "approval", "ranked"] {
        let created = post_json(
            &client,
            &app.url("/api/v1/ballots"),
            &json!({ "measure": "fuzzed?", "options": ["a", "b"], "method": method,
                     "allow_write_in": method != "ranked" }),
        )
        .await;
        ids.push(
            created.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let csrf = csrf_token(&client, &app.url("/create")).await;
    let mut form_routes = vec!["/create".to_owned(), "/auth/logout".to_owned()];
    let mut json_routes = vec!["/api/v1/ballots".to_owned()];
    for id in &ids {
        form_routes.push(format!("/vote/{id}"));
        json_routes.push(format!("/api/v1/ballots/{id}/votes"));
    }

    let mut runner = TestRunner::deterministic();
    let forms = form_body(csrf);
    let jsons = json_body();
    for case in 0..cases() {
        let form = forms.new_tree(&mut runner).unwrap().current();
        let route = &form_routes[case % form_routes.len()];
        let response = client
            .post(app.url(route))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
            .await
            .unwrap_or_else(|error| panic!("{route} dropped {form:?}: {error}"));
        assert!(
            response.status().as_u16() < 500,
            "{route} answered {} to {:?}",
            response.status(),
            String::from_utf8_lossy(&form)
        );

        let body = jsons.new_tree(&mut runner).unwrap().current();
        let route = &json_routes[case % json_routes.len()];
        let response = browser()
            .post(app.url(route))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|error| panic!("{route} dropped {body:?}: {error}"));
        let status = response.status().as_u16();
        assert!(
            status < 500,
            "{route} answered {status} to {:?}",
            String::from_utf8_lossy(&body)
        );
        if status >= 400 {
            let problem: Value = response
                .json()
                .await
                .unwrap_or_else(|_| panic!("{route}: a {status} that is not a JSON problem"));
            assert!(problem["message"].is_string(), "{route}: {problem}");
        }
    }
    let livez = client.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(livez.status(), 200);
}
