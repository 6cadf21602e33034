//! Live results over SSE, and the results page that follows them.

use crate::helpers::{TestApp, browser, spawn_app, unescape};

/// Creates the ballot these tests watch, "live?" with yes and no, and returns its id.
async fn live_ballot(app: &TestApp) -> String {
    app.create_ballot(
        &browser(),
        &[("measure", "live?"), ("options_raw", "yes, no")],
    )
    .await
}

#[tokio::test]
async fn the_stream_sends_the_current_tally_then_each_change() {
    let app = spawn_app().await;
    let id = live_ballot(&app).await;
    assert_eq!(app.vote_for(&browser(), &id, "1").await, 303);

    let mut stream = app.live_results(&browser(), &id, None).await;
    let first = stream.next().await;
    assert_eq!(first.event.as_deref(), Some("results"));
    assert_eq!(first.id.as_deref(), Some("1"));
    assert!(first.data.contains("100.0"), "{}", first.data);
    assert!(!first.data.contains("<html"), "the partial only");

    assert_eq!(app.vote_for(&browser(), &id, "2").await, 303);
    let second = stream.next().await;
    assert_eq!(second.id.as_deref(), Some("2"));
    assert!(second.data.contains("50.0"), "{}", second.data);
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_resumes_without_repeats() {
    let app = spawn_app().await;
    let id = live_ballot(&app).await;
    assert_eq!(app.vote_for(&browser(), &id, "1").await, 303);

    // Up to date at 1: nothing is resent, the next change arrives.
    let mut resumed = app.live_results(&browser(), &id, Some("1")).await;
    assert_eq!(app.vote_for(&browser(), &id, "2").await, 303);
    assert_eq!(resumed.next().await.id.as_deref(), Some("2"));

    // Behind (last saw 0): the current tally comes at once.
    let mut behind = app.live_results(&browser(), &id, Some("0")).await;
    assert_eq!(behind.next().await.id.as_deref(), Some("2"));
}

#[tokio::test]
async fn write_ins_appear_live() {
    let app = spawn_app().await;
    let id = app
        .create_ballot(
            &browser(),
            &[
                ("measure", "live?"),
                ("options_raw", "tea"),
                ("allow_write_in", "on"),
            ],
        )
        .await;
    let mut stream = app.live_results(&browser(), &id, None).await;
    assert_eq!(stream.next().await.id.as_deref(), Some("0"));
    let voted = app
        .vote(
            &browser(),
            &id,
            &[("option_id", "__write_in__"), ("write_in_value", "Mate")],
        )
        .await;
    assert_eq!(voted.status(), 303);
    let event = stream.next().await;
    assert!(unescape(&event.data).contains("Mate"), "{}", event.data);
}

#[tokio::test]
async fn the_results_page_connects_to_the_stream_with_htmx() {
    let app = spawn_app().await;
    let id = live_ballot(&app).await;
    let html = app.page_text(&browser(), &format!("/results/{id}")).await;
    assert!(html.contains("hx-ext=\"sse\""));
    assert!(html.contains(&format!("sse-connect=\"/ballots/{id}/live-results\"")));
    assert!(html.contains("sse-swap=\"results\""));
    // The indicator shows only once the script runs (the stream then
    // says whether it is live); without JavaScript a note says so.
    assert!(html.contains(r#"id="live-indicator" hidden"#), "{html}");
    assert!(html.contains("live_updates_need_javascript"), "{html}");
    assert!(!html.contains("live_feed_active"), "{html}");
    assert!(html.contains(r#"aria-live="polite""#), "{html}");
    assert!(html.contains("/static/vendor/htmx-ext-sse/sse.js"));
}

#[tokio::test]
async fn shutdown_ends_open_streams_cleanly() {
    let app = spawn_app().await;
    let id = live_ballot(&app).await;
    let mut stream = app.live_results(&browser(), &id, None).await;
    stream.next().await;
    let stopping = tokio::spawn(stream.until_closed());
    app.shut_down().await.unwrap();
    stopping.await.unwrap();
}
