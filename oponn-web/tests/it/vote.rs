//! `/vote/{id}`: the form, votes, refusals and 404s.

use time::Duration;

use crate::helpers::{browser, header, location, spawn_app};

#[tokio::test]
async fn the_vote_form_lists_each_option_as_a_radio_label() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app
        .create_ballot(
            &owner,
            &[
                ("measure", "lunch?"),
                ("options_raw", "pizza, pasta"),
                ("allow_write_in", "on"),
            ],
        )
        .await;
    let html = app.page_text(&browser(), &format!("/vote/{id}")).await;
    for (value, label) in [("1", "pizza"), ("2", "pasta")] {
        let radio = format!(
            "<label class=\"radio-label\"><input type=\"radio\" name=\"option_id\" value=\"{value}\""
        );
        assert!(html.contains(&radio), "no radio label for {label}");
        assert!(html.contains(label));
    }
    assert!(html.contains("value=\"__write_in__\""));
    assert!(html.contains("name=\"write_in_value\""));
    assert!(html.contains("cast_vote"));
}

#[tokio::test]
async fn a_vote_redirects_to_the_results() {
    let app = spawn_app().await;
    let id = app
        .create_ballot(
            &browser(),
            &[("measure", "lunch?"), ("options_raw", "pizza, pasta")],
        )
        .await;
    let voter = browser();
    let plain = app.vote(&voter, &id, &[("option_id", "2")]).await;
    assert_eq!(plain.status(), 303);
    assert_eq!(location(&plain), format!("/results/{id}"));

    let htmx_voter = browser();
    let token = crate::helpers::csrf_token(&htmx_voter, &app.url(&format!("/vote/{id}"))).await;
    let htmx = htmx_voter
        .post(app.url(&format!("/vote/{id}")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token)
        .form(&[("option_id", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(htmx.status(), 204);
    assert_eq!(
        header(htmx.headers(), "HX-Redirect"),
        format!("/results/{id}")
    );

    let results = app.page_text(&browser(), &format!("/results/{id}")).await;
    assert!(results.contains("50.0"));
}

/// Posts a vote and checks the form comes back, unredirected, with `message`.
async fn assert_refused(
    app: &crate::helpers::TestApp,
    voter: &reqwest::Client,
    id: &str,
    fields: &[(&str, &str)],
    message: &str,
) {
    let response = app.vote(voter, id, fields).await;
    assert_eq!(response.status(), 200, "{message}");
    assert!(response.headers().get("location").is_none());
    let html = response.text().await.unwrap();
    assert!(html.contains(message), "{message} not shown for {fields:?}");
    assert!(html.contains("id=\"vote-section\""));
}

#[tokio::test]
async fn refusals_are_shown_on_the_form() {
    let app = spawn_app().await;
    let owner = browser();
    let plain = app
        .create_ballot(
            &owner,
            &[("measure", "lunch?"), ("options_raw", "pizza, pasta")],
        )
        .await;
    let voter = browser();
    assert_refused(
        &app,
        &voter,
        &plain,
        &[("option_id", "9")],
        "Invalid option for this ballot",
    )
    .await;
    assert_refused(
        &app,
        &voter,
        &plain,
        &[("option_id", "pizza")],
        "Invalid option for this ballot",
    )
    .await;
    assert_refused(&app, &voter, &plain, &[], "Invalid option for this ballot").await;
    assert_refused(
        &app,
        &voter,
        &plain,
        &[("option_id", "__write_in__"), ("write_in_value", "sushi")],
        "Write-in votes are not allowed for this ballot",
    )
    .await;
    assert_eq!(app.vote_for(&voter, &plain, "1").await, 303);
    assert_refused(
        &app,
        &voter,
        &plain,
        &[("option_id", "2")],
        "You have already voted on this ballot.",
    )
    .await;

    let open = app
        .create_ballot(
            &owner,
            &[
                ("measure", "lunch?"),
                ("options_raw", "pizza"),
                ("allow_write_in", "on"),
            ],
        )
        .await;
    let writer = browser();
    assert_refused(
        &app,
        &writer,
        &open,
        &[("option_id", "__write_in__"), ("write_in_value", "  ")],
        "Write-in value required",
    )
    .await;
    let long = "w".repeat(65);
    assert_refused(
        &app,
        &writer,
        &open,
        &[("option_id", "__write_in__"), ("write_in_value", &long)],
        "at most 64 characters",
    )
    .await;
    assert!(
        app.vote(
            &writer,
            &open,
            &[("option_id", "__write_in__"), ("write_in_value", "Sushi")]
        )
        .await
        .status()
            == 303
    );
}

#[tokio::test]
async fn the_schedule_is_enforced_with_its_messages() {
    let app = spawn_app().await;
    let owner = browser();
    let scheduled = app
        .create_ballot(
            &owner,
            &[
                ("measure", "later"),
                ("options_raw", "a, b"),
                ("start_time_type", "scheduled"),
                ("scheduled_start_time", "2030-01-01T00:05"),
                ("duration_mins", "10"),
            ],
        )
        .await;
    let voter = browser();
    let page = app.page_text(&voter, &format!("/vote/{scheduled}")).await;
    assert!(page.contains("starts in 5 minutes"));
    assert_refused(
        &app,
        &voter,
        &scheduled,
        &[("option_id", "1")],
        "Voting has not started for this ballot",
    )
    .await;
    app.oponn.clock().advance(Duration::minutes(5));
    let page = app.page_text(&voter, &format!("/vote/{scheduled}")).await;
    assert!(page.contains("ends in 10 minutes"));
    app.oponn.clock().advance(Duration::minutes(10));
    assert_refused(
        &app,
        &voter,
        &scheduled,
        &[("option_id", "1")],
        "Voting has ended for this ballot",
    )
    .await;
}

#[tokio::test]
async fn unknown_ballots_are_a_404_page() {
    let app = spawn_app().await;
    let visitor = browser();
    for path in [
        "/vote/AAAAAAAAAAAAAAAAAAAAAA",
        "/results/AAAAAAAAAAAAAAAAAAAAAA",
        "/ballots/AAAAAAAAAAAAAAAAAAAAAA/live-results",
        "/vote/not-an-id",
        "/results/%3Cscript%3E",
        "/no/such/page",
    ] {
        let response = app.get(&visitor, path).await;
        assert_eq!(response.status(), 404, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<html"), "{path} gets the 404 page");
    }
    let response = app
        .vote(&visitor, "AAAAAAAAAAAAAAAAAAAAAA", &[("option_id", "1")])
        .await;
    assert_eq!(response.status(), 404);
}

/// A ballot lock that counts how often it is taken.
struct CountingLock {
    inner: std::sync::Arc<dyn oponn_core::ports::VoteLock>,
    taken: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl oponn_core::ports::VoteLock for CountingLock {
    async fn acquire(
        &self,
        ballot: &oponn_core::domain::BallotId,
    ) -> Result<Box<dyn oponn_core::ports::LockGuard>, oponn_core::ports::LockError> {
        self.taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.acquire(ballot).await
    }
}

#[tokio::test]
async fn votes_that_arrive_while_the_lock_is_held_elsewhere_join_the_waiting_batch() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let base = oponn_testkit::TestOponn::new();
    let taken = Arc::new(AtomicUsize::new(0));
    let mut ports = base.ports().clone();
    ports.lock = Arc::new(CountingLock {
        inner: Arc::clone(&ports.lock),
        taken: Arc::clone(&taken),
    });
    let clock = Arc::new(oponn_testkit::TestClock::default());
    ports.clock = Arc::clone(&clock) as _;
    let app =
        crate::helpers::spawn_app_on(oponn_testkit::TestOponn::with_ports(ports, clock), |_| {})
            .await;
    let id = app.simple_ballot(&browser(), "one hand-off?").await;
    let ballot = oponn_core::domain::BallotId::parse(&id).unwrap();
    let service = Arc::clone(app.oponn.service());

    // Another instance holds the ballot's lock.
    let held = app.oponn.ports().lock.acquire(&ballot).await.unwrap();
    let before = taken.load(Ordering::SeqCst);
    let voters: Vec<_> = (0..3)
        .map(|_| {
            let (url, voter) = (app.url(""), browser());
            let id = id.clone();
            tokio::spawn(async move {
                let token = crate::helpers::csrf_token(&voter, &format!("{url}/vote/{id}")).await;
                voter
                    .post(format!("{url}/vote/{id}"))
                    .form(&[("X-CSRF-Token", token.as_str()), ("option_id", "1")])
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    // The first vote's batch waits for the lock; the other two queue.
    oponn_testkit::contract::within_deadline("two votes queueing behind the first", async {
        while service.votes_waiting(&ballot) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    held.release().await.unwrap();
    for voter in voters {
        assert_eq!(voter.await.unwrap(), 303);
    }
    // One batch took all three once the lock came: one more hand-off, not
    // one for the first vote and another for the two behind it.
    assert_eq!(taken.load(Ordering::SeqCst) - before, 1);
    assert_eq!(service.votes_waiting(&ballot), 0);
}

/// The page's `hx-headers` token and `data-now` clock, and the page with
/// both (and the form's token) blanked.
fn per_request_parts(html: &str) -> (String, String, String) {
    let token = crate::helpers::hidden_value(html, "X-CSRF-Token").expect("a form token");
    let headers_at = html.find("hx-headers='").expect("hx-headers") + "hx-headers='".len();
    let headers_end = headers_at + html[headers_at..].find('\'').expect("its end");
    let headers: serde_json::Value =
        serde_json::from_str(&html[headers_at..headers_end]).expect("hx-headers is JSON");
    assert_eq!(
        headers["X-CSRF-Token"],
        token.as_str(),
        "one token in both places"
    );
    let now_at = html.find("data-now=\"").expect("data-now") + "data-now=\"".len();
    let now_end = now_at + html[now_at..].find('"').expect("its end");
    let now = html[now_at..now_end].to_owned();
    let blanked = html
        .replace(&html[headers_at..headers_end], "HEADERS")
        .replace(&token.replace('/', "&#x2f;"), "TOKEN")
        .replace(&format!("data-now=\"{now}\""), "data-now=\"NOW\"");
    (token, now, blanked)
}

#[tokio::test]
async fn new_voters_get_the_same_page_with_their_own_token_and_the_clock() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app
        .create_ballot(
            &owner,
            &[("measure", "one page for all?"), ("options_raw", "yes, no")],
        )
        .await;
    let path = format!("/vote/{id}");
    let mut pages = Vec::new();
    for _ in 0..3 {
        let voter = browser();
        let html = app.page_text(&voter, &path).await;
        pages.push((voter, per_request_parts(&html)));
    }
    let (_, (_, first_now, first_page)) = &pages[0];
    for (_, (_, now, page)) in &pages[1..] {
        assert_eq!(page, first_page, "the pages differ only in token and clock");
        let (first, later) = (
            first_now.parse::<i64>().expect("a number"),
            now.parse::<i64>().expect("a number"),
        );
        assert!(
            later >= first,
            "the clock is each request's own: {first} then {later}"
        );
    }
    let tokens: std::collections::BTreeSet<&String> =
        pages.iter().map(|(_, (token, _, _))| token).collect();
    assert_eq!(tokens.len(), 3, "each voter has their own token");
    // Each voter's token is the one their own CSRF cookie accepts.
    for (voter, (token, _, _)) in &pages {
        let cast = voter
            .post(app.url(&path))
            .form(&[("X-CSRF-Token", token.as_str()), ("option_id", "1")])
            .send()
            .await
            .unwrap();
        assert_eq!(cast.status(), 303);
    }

    // Closing the ballot changes the page every new voter gets.
    let closed = app.close_ballot(&owner, &id).await;
    assert!(closed.status().is_redirection(), "{}", closed.status());
    let after = app.page_text(&browser(), &path).await;
    assert!(after.contains("data-status=\"ended\""), "{after}");
    assert!(after.contains("voting_closed: this ballot no longer takes votes."));
}
