//! `/create` and the start-time partial.

use crate::helpers::{browser, location, spawn_app};

const HTMX: (&str, &str) = ("HX-Request", "true");

async fn post_create(
    app: &crate::helpers::TestApp,
    htmx: bool,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app.form_post(&browser(), "/create", fields).await;
    if htmx {
        request = request.header(HTMX.0, HTMX.1);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_create_form_has_every_field_and_a_csrf_token() {
    let app = spawn_app().await;
    let response = app.get(&browser(), "/create").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    for needle in [
        "<html",
        "name=\"X-CSRF-Token\"",
        "name=\"measure\"",
        "name=\"options_raw\"",
        "name=\"allow_write_in\"",
        "name=\"start_time_type\"",
        "name=\"duration_mins\"",
        "id=\"scheduled-start-container\"",
        "init_ballot",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
}

#[tokio::test]
async fn a_valid_ballot_redirects_to_its_vote_page() {
    let app = spawn_app().await;
    let fields = [
        ("measure", "lunch today?"),
        ("options_raw", "pizza, pasta"),
        ("duration_mins", "60"),
    ];
    let plain = post_create(&app, false, &fields).await;
    assert_eq!(plain.status(), 303);
    assert!(location(&plain).starts_with("/vote/"));

    let htmx = post_create(&app, true, &fields).await;
    assert_eq!(htmx.status(), 204);
    let target = crate::helpers::header(htmx.headers(), "HX-Redirect");
    assert!(target.starts_with("/vote/"), "{target}");
    let vote_page = app.get(&browser(), &target).await;
    assert_eq!(vote_page.status(), 200);
    assert!(vote_page.text().await.unwrap().contains("lunch today?"));
}

#[tokio::test]
async fn invalid_input_shows_each_message_under_its_field_and_keeps_the_values() {
    let app = spawn_app().await;
    let fields = [
        ("measure", "ab"),
        ("options_raw", "solo"),
        ("start_time_type", "scheduled"),
        ("scheduled_start_time", "not a time"),
        ("duration_mins", "10"),
    ];
    let plain = post_create(&app, false, &fields).await;
    assert_eq!(plain.status(), 200);
    let html = plain.text().await.unwrap();
    assert!(html.contains("<html"), "a plain post gets the full page");
    for message in [
        "at least 3 characters",
        "at least 2 options when write-ins are disabled",
        "Invalid scheduled start time format",
    ] {
        assert!(
            html.contains("class=\"field-error-msg\" id=") && html.contains(message),
            "missing {message}"
        );
    }
    assert!(html.contains("value=\"ab\""), "the measure is kept");
    assert!(html.contains("solo"), "the options are kept");
    assert!(
        html.contains("value=\"not a time\""),
        "the start time is kept"
    );

    let htmx = post_create(&app, true, &fields).await;
    assert_eq!(htmx.status(), 200);
    let partial = htmx.text().await.unwrap();
    assert!(!partial.contains("<html"), "HTMX gets the partial only");
    assert!(partial.contains("id=\"create-ballot-section\""));
    assert!(partial.contains("at least 3 characters"));
}

#[tokio::test]
async fn a_bad_voting_window_is_reported_with_every_other_field() {
    let app = spawn_app().await;
    let fields = [
        ("measure", "ab"),
        ("options_raw", "solo"),
        ("duration_mins", "soon"),
    ];
    let html = post_create(&app, false, &fields)
        .await
        .text()
        .await
        .unwrap();
    for message in [
        "voting window must be a whole number of minutes",
        "at least 3 characters",
        "at least 2 options when write-ins are disabled",
    ] {
        assert!(html.contains(message), "missing {message}");
    }
}

#[tokio::test]
async fn every_creation_message_is_shown() {
    let app = spawn_app().await;
    let long_option = format!("a,{}", "o".repeat(65));
    let many_options = (0..65)
        .map(|i| format!("o{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let long_measure = "m".repeat(256);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("measure", "ab"), ("options_raw", "a,b")],
            "at least 3 characters",
        ),
        (
            vec![("measure", &long_measure), ("options_raw", "a,b")],
            "at most 255 characters",
        ),
        (
            vec![("measure", "lunch"), ("options_raw", "a")],
            "at least 2 options when write-ins are disabled",
        ),
        (
            vec![
                ("measure", "lunch"),
                ("options_raw", " , "),
                ("allow_write_in", "on"),
            ],
            "at least 1 option when write-ins are enabled",
        ),
        (
            vec![("measure", "lunch"), ("options_raw", &long_option)],
            "between 1 and 64 characters",
        ),
        (
            vec![("measure", "lunch"), ("options_raw", &many_options)],
            "at most 64 options",
        ),
        (
            vec![("measure", "lunch"), ("options_raw", "Pizza,pizza")],
            "options must be unique",
        ),
        (
            vec![
                ("measure", "lunch"),
                ("options_raw", "a,b"),
                ("start_time_type", "scheduled"),
            ],
            "Scheduled start time is required when &#x27;scheduled&#x27; is selected",
        ),
        (
            vec![
                ("measure", "lunch"),
                ("options_raw", "a,b"),
                ("start_time_type", "scheduled"),
                ("scheduled_start_time", "2020-01-01T10:00"),
            ],
            "Scheduled start time must be in the future",
        ),
        (
            vec![
                ("measure", "lunch"),
                ("options_raw", "a,b"),
                ("start_time_type", "scheduled"),
                ("scheduled_start_time", "2031-02-30T10:00"),
            ],
            "Invalid scheduled start time format",
        ),
    ];
    for (fields, message) in cases {
        let html = post_create(&app, true, &fields).await.text().await.unwrap();
        assert!(html.contains(message), "{message} missing for {fields:?}");
        assert!(html.contains("field-error-msg"));
    }
}

#[tokio::test]
async fn the_start_time_partial_is_the_input_or_nothing() {
    let app = spawn_app().await;
    let scheduled = app
        .get(
            &browser(),
            "/partials/start-time-input?start_time_type=scheduled",
        )
        .await;
    assert_eq!(scheduled.status(), 200);
    let html = scheduled.text().await.unwrap();
    assert!(html.contains("name=\"scheduled_start_time\""));
    assert!(!html.contains("<html"));
    let now = app
        .get(&browser(), "/partials/start-time-input?start_time_type=now")
        .await;
    assert_eq!(now.status(), 200);
    assert_eq!(now.text().await.unwrap().trim(), "");
}

#[tokio::test]
async fn a_browser_local_start_time_is_read_in_the_browsers_zone() {
    let app = spawn_app().await;
    // The test clock stands at 2030-01-01 00:00 UTC. 01:30 in UTC+02:00 is
    // 23:30 UTC the day before: in the past, so refused...
    let east = [
        ("measure", "zone check"),
        ("options_raw", "a,b"),
        ("start_time_type", "scheduled"),
        ("scheduled_start_time", "2030-01-01T01:30"),
        ("tz_offset_minutes", "-120"),
    ];
    let html = post_create(&app, true, &east).await.text().await.unwrap();
    assert!(html.contains("Scheduled start time must be in the future"));
    // ...while the same wall time in UTC-05:00 is 06:30 UTC: accepted.
    let west = [
        ("measure", "zone check"),
        ("options_raw", "a,b"),
        ("start_time_type", "scheduled"),
        ("scheduled_start_time", "2030-01-01T01:30"),
        ("tz_offset_minutes", "300"),
    ];
    assert_eq!(post_create(&app, false, &west).await.status(), 303);
}

/// The ballot a `303` from `/create` made, as the API shows it.
async fn created_ballot(
    app: &crate::helpers::TestApp,
    created: &reqwest::Response,
) -> serde_json::Value {
    let id = location(created).trim_start_matches("/vote/").to_owned();
    browser()
        .get(app.url(&format!("/api/v1/ballots/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_custom_end_time_is_read_in_the_browsers_zone_and_checked() {
    let app = spawn_app().await;
    // The test clock stands at 2030-01-01 00:00 UTC.
    let custom = |end: &'static str| {
        [
            ("measure", "custom end"),
            ("options_raw", "a,b"),
            ("duration_mins", "custom"),
            ("ends_at_time", end),
            ("tz_offset_minutes", "300"),
        ]
    };
    // 01:30 in UTC-05:00 is 06:30 UTC.
    let created = post_create(&app, false, &custom("2030-01-01T01:30")).await;
    assert_eq!(created.status(), 303);
    let ballot = created_ballot(&app, &created).await;
    assert_eq!(ballot["ends_at"], "2030-01-01T06:30:00Z", "{ballot}");
    for (end, message) in [
        (
            "",
            "End time is required when &#x27;custom&#x27; is selected",
        ),
        ("someday", "Invalid end time format"),
        // 18:59 in UTC-05:00 is 23:59 UTC the day before: before voting opens.
        ("2029-12-31T18:59", "End time must be after voting starts"),
        ("2031-01-01T00:00", "at most 525600 minutes (one year)"),
    ] {
        let html = post_create(&app, true, &custom(end))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            html.contains(&format!(
                r#"<div class="field-error-msg" id="duration_mins-error">{message}</div>"#
            )),
            "{end:?}: {html}"
        );
        // The choice and the typed end are kept.
        assert!(
            html.contains(r#"<option value="custom" selected>"#),
            "{end:?}"
        );
        assert!(
            html.contains(&format!(
                r#"id="ends_at_time" name="ends_at_time" class="future-time invalid" value="{end}" aria-invalid="true""#
            )),
            "{end:?}: {html}"
        );
    }
    // The offset the browser gives for the end's own date wins over
    // today's: 01:30 in UTC-04:00 (summer time, say) is 05:30 UTC.
    let mut summer = custom("2030-01-01T01:30").to_vec();
    summer.push(("end_offset_minutes", "240"));
    let created = post_create(&app, false, &summer).await;
    assert_eq!(created.status(), 303);
    let ballot = created_ballot(&app, &created).await;
    assert_eq!(ballot["ends_at"], "2030-01-01T05:30:00Z", "{ballot}");
    // An offset past 18 hours is no offset: today's is used.
    let mut far = custom("2030-01-01T01:30").to_vec();
    far.push(("end_offset_minutes", "1081"));
    let created = post_create(&app, false, &far).await;
    let ballot = created_ballot(&app, &created).await;
    assert_eq!(ballot["ends_at"], "2030-01-01T06:30:00Z", "{ballot}");
    // Both date pickers carry the class app.js gives a minimum of now.
    let form = crate::helpers::get_text(&browser(), &app.url("/create")).await;
    assert!(
        form.contains(r#"id="ends_at_time" name="ends_at_time" class="future-time""#),
        "{form}"
    );
    let start = crate::helpers::get_text(
        &browser(),
        &app.url("/partials/start-time-input?start_time_type=scheduled"),
    )
    .await;
    assert!(start.contains(r#"class="future-time""#), "{start}");
}

#[tokio::test]
async fn a_ballot_made_without_a_window_gets_the_forms_default_hour_everywhere() {
    let app = spawn_app().await;
    // The form with no window field, and the API with none.
    let created = post_create(
        &app,
        false,
        &[("measure", "no window"), ("options_raw", "a,b")],
    )
    .await;
    assert_eq!(created.status(), 303);
    let form_id = location(&created).trim_start_matches("/vote/").to_owned();
    let owner = browser();
    let api: serde_json::Value = crate::helpers::post_json(
        &owner,
        &app.url("/api/v1/ballots"),
        &serde_json::json!({ "measure": "no window", "options": ["a", "b"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        api["vote_url"]
            .as_str()
            .map(|url| url.ends_with(&format!("/vote/{}", api["id"].as_str().unwrap()))),
        Some(true),
        "{api}"
    );
    for id in [form_id.as_str(), api["id"].as_str().unwrap()] {
        let ballot: serde_json::Value = browser()
            .get(app.url(&format!("/api/v1/ballots/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ballot["starts_at"], "2030-01-01T00:00:00Z", "{ballot}");
        assert_eq!(ballot["ends_at"], "2030-01-01T01:00:00Z", "{ballot}");
    }
    // The form preselects the same hour.
    let form = crate::helpers::get_text(&browser(), &app.url("/create")).await;
    assert!(
        form.contains(r#"<option value="60" selected>1 hour</option>"#),
        "{form}"
    );
}
