//! Live results over SSE, and the results page that follows them.

use oponn_core::ports::Clock as _;

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
async fn a_page_is_not_set_back_to_a_tally_older_than_its_own() {
    let app = spawn_app().await;
    let id = live_ballot(&app).await;
    assert_eq!(app.vote_for(&browser(), &id, "1").await, 303);
    // A page rendered with tally 2 while its feed still held tally 1 (a
    // vote waits out the feed's interval): the stream sends nothing older
    // than the page's own, and the next newer tally as it comes.
    let after_two = format!("/ballots/{id}/live-results?after=2");
    let mut page = app
        .event_stream(&browser(), &after_two, None)
        .await
        .skipping("state");
    for _ in 0..2 {
        assert_eq!(app.vote_for(&browser(), &id, "2").await, 303);
    }
    assert_eq!(page.next().await.id.as_deref(), Some("3"));
    // What is not a number is ignored: the current tally at once.
    let not_a_number = format!("/ballots/{id}/live-results?after=soon");
    let mut plain = app
        .event_stream(&browser(), &not_a_number, None)
        .await
        .skipping("state");
    assert_eq!(plain.next().await.id.as_deref(), Some("3"));
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
    // The stream starts after the tally the page shows (none yet: 0).
    assert!(html.contains(&format!(
        "sse-connect=\"/ballots/{id}/live-results?after=0\""
    )));
    assert!(html.contains("sse-swap=\"results,state\""));
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

/// RFC 3339 of the test clock's now plus `seconds`.
fn seconds_from_now(app: &TestApp, seconds: i64) -> String {
    (app.oponn.clock().now() + time::Duration::seconds(seconds))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The status a `state` event carries, checking it is one.
fn state_of(event: &crate::helpers::SseEvent) -> String {
    assert_eq!(event.event.as_deref(), Some("state"), "{event:?}");
    let state: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    state["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn open_pages_hear_when_the_owner_closes_the_ballot_and_the_stream_ends() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app.simple_ballot(&owner, "closing live?").await;
    let mut state = app.live_state(&browser(), &id).await;
    let first = state.next().await;
    assert_eq!(state_of(&first), "active");
    let data: serde_json::Value = serde_json::from_str(&first.data).unwrap();
    assert!(data["opens_at"].is_i64(), "{data}");
    assert!(
        data["closes_at"].is_i64(),
        "the default hour ends it: {data}"
    );
    // A vote changes the tally, not the state: no state event for it.
    let mut results = app
        .event_stream(&browser(), &format!("/ballots/{id}/live-results"), None)
        .await;
    assert_eq!(results.next().await.event.as_deref(), Some("results"));
    assert_eq!(state_of(&results.next().await), "active");
    assert_eq!(app.vote_for(&browser(), &id, "1").await, 303);
    assert_eq!(results.next().await.event.as_deref(), Some("results"));

    let closed = app.close_ballot(&owner, &id).await;
    assert_eq!(closed.status(), 303);
    assert_eq!(state_of(&state.next().await), "ended");
    assert_eq!(results.next().await.event.as_deref(), Some("results"));
    assert_eq!(state_of(&results.next().await), "ended");
    // Then the word that it is final, on which the browser closes the
    // stream instead of reconnecting, and the end.
    for stream in [&mut state, &mut results] {
        let last = stream.next().await;
        assert_eq!(last.event.as_deref(), Some("final"), "{last:?}");
    }
    state.until_closed().await;
    results.until_closed().await;
}

#[tokio::test]
async fn open_pages_hear_when_the_ballot_is_deleted() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app.simple_ballot(&owner, "deleted live?").await;
    let mut state = app.live_state(&browser(), &id).await;
    assert_eq!(state_of(&state.next().await), "active");
    let deleted = app
        .form_post(&owner, &format!("/ballots/{id}/delete"), &[])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    assert_eq!(state_of(&state.next().await), "deleted");
    assert_eq!(state.next().await.event.as_deref(), Some("final"));
    state.until_closed().await;
    // Gone: a new stream is refused, with 404 to a plain request...
    for path in ["live-state", "live-results"] {
        let again = browser()
            .get(app.url(&format!("/ballots/{id}/{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 404, "{path}");
        // ...and to a browser's EventSource, which cannot read a 404 and
        // would retry it for ever, with the news it can apply: deleted,
        // final, and the end.
        let mut stream = app
            .event_stream_accepting_events(&browser(), &format!("/ballots/{id}/{path}"))
            .await;
        assert_eq!(state_of(&stream.next().await), "deleted", "{path}");
        assert_eq!(
            stream.next().await.event.as_deref(),
            Some("final"),
            "{path}"
        );
        stream.until_closed().await;
    }
}

#[tokio::test]
async fn a_scheduled_start_and_a_custom_end_reach_open_pages_with_no_request() {
    let app = spawn_app().await;
    let (opens, closes) = (seconds_from_now(&app, 2), seconds_from_now(&app, 4));
    let id = app
        .create_ballot(
            &browser(),
            &[
                ("measure", "opens and closes by itself?"),
                ("options_raw", "a, b"),
                ("start_time_type", "scheduled"),
                ("scheduled_start_time", &opens),
                ("duration_mins", "custom"),
                ("ends_at_time", &closes),
            ],
        )
        .await;
    // No request is made after the stream opens: the server's own timer
    // sends each change when it is due. The test clock stands still, so
    // it is moved on as far as the timer waits.
    let mut state = app.live_state(&browser(), &id).await;
    let mut results = app
        .event_stream(&browser(), &format!("/ballots/{id}/live-results"), None)
        .await;
    assert_eq!(results.next().await.event.as_deref(), Some("results"));
    assert_eq!(state_of(&results.next().await), "pending");
    assert_eq!(state_of(&state.next().await), "pending");
    app.oponn.clock().advance(time::Duration::seconds(2));
    assert_eq!(state_of(&state.next().await), "active");
    assert_eq!(state_of(&results.next().await), "active");
    app.oponn.clock().advance(time::Duration::seconds(2));
    assert_eq!(state_of(&state.next().await), "ended");
    assert_eq!(state_of(&results.next().await), "ended");
    // A batch checked just before the end publishes just after it: its
    // tally still reaches the pages before the stream says it is final.
    let ballot = oponn_core::domain::BallotId::parse(&id).unwrap();
    let late = oponn_core::domain::Tally::new(1, [(oponn_core::domain::OptionId::new(1), 1)]);
    app.oponn
        .ports()
        .broadcaster
        .publish(&oponn_core::domain::TallyEvent {
            ballot_id: ballot,
            tally: late,
        })
        .await
        .unwrap();
    let counted = results.next().await;
    assert_eq!(counted.event.as_deref(), Some("results"));
    assert_eq!(counted.id.as_deref(), Some("1"), "the late tally");
    assert_eq!(results.next().await.event.as_deref(), Some("final"));
    assert_eq!(state.next().await.event.as_deref(), Some("final"));
    state.until_closed().await;
    results.until_closed().await;
}

#[tokio::test]
async fn the_state_stream_is_open_to_viewers_who_may_not_see_results() {
    let app = spawn_app().await;
    let id = app
        .create_ballot(
            &browser(),
            &[
                ("measure", "secret until closed?"),
                ("options_raw", "a, b"),
                ("results_visibility", "after_close"),
            ],
        )
        .await;
    let stranger = browser();
    let refused = stranger
        .get(app.url(&format!("/ballots/{id}/live-results")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let mut state = app.live_state(&stranger, &id).await;
    let event = state.next().await;
    assert_eq!(state_of(&event), "active");
    // Its page waits on that stream, and fetches the results at the close.
    let page = app.page_text(&stranger, &format!("/results/{id}")).await;
    assert!(
        page.contains(&format!(r#"sse-connect="/ballots/{id}/live-state""#)),
        "{page}"
    );
    assert!(page.contains("data-shown-on-close"), "{page}");
    // A vote sends nothing on it: the next event is the close, not a tally.
    assert_eq!(app.vote_for(&browser(), &id, "1").await, 303);
    let owner_closes = app
        .oponn
        .service()
        .ballot(&oponn_core::domain::BallotId::parse(&id).unwrap())
        .await
        .unwrap();
    app.oponn
        .service()
        .close_ballot(&owner_closes.id(), owner_closes.owner().unwrap())
        .await
        .unwrap();
    let next = state.next().await;
    assert_eq!(state_of(&next), "ended", "{next:?}");
    for path in [
        "/ballots/nope/live-state",
        "/ballots/00000000000000000000000000/live-state",
    ] {
        let missing = stranger.get(app.url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_vote_page_follows_the_state_stream_outside_its_form() {
    let app = spawn_app().await;
    let id = live_ballot(&app).await;
    let page = app.page_text(&browser(), &format!("/vote/{id}")).await;
    let stream = page
        .find(&format!(r#"sse-connect="/ballots/{id}/live-state""#))
        .expect("the vote page connects");
    let section = page.find(r#"id="vote-section""#).unwrap();
    assert!(stream < section, "the stream outlives the form's swaps");
    assert!(page.contains(r#"data-can-vote="true""#), "{page}");
    assert!(
        page.contains(r#"class="ballot-meta ballot-state" data-status="active""#),
        "{page}"
    );
}
