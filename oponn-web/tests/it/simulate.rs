//! `oponn simulate` against a real server: the load tool's figures and
//! its tally check.

use std::time::Duration;

use clap::Parser as _;
use oponn_simulate::{Progress, Report, SimulateArgs, TallyCheck, measure};

use crate::helpers::{TestApp, browser, spawn_app};

/// The tool's arguments for `app`, after `oponn simulate --url …`.
fn args(app: &TestApp, rest: &[&str]) -> SimulateArgs {
    let url = app.url("");
    let mut line = vec!["simulate", "--url", url.as_str(), "--settle", "10s"];
    line.extend_from_slice(rest);
    SimulateArgs::try_parse_from(line).unwrap()
}

async fn simulate(app: &TestApp, rest: &[&str]) -> Report {
    measure(&args(app, rest), Progress::Off).await.unwrap()
}

#[tokio::test]
async fn every_vote_is_acknowledged_counted_and_seen_by_every_watcher() {
    let app = spawn_app().await;
    let id = app.simple_ballot(&browser(), "load?").await;

    let report = simulate(
        &app,
        &[
            "--ballot",
            &id,
            "--voters",
            "40",
            "--concurrency",
            "8",
            "--watchers",
            "3",
        ],
    )
    .await;

    assert!(report.passed());
    let votes = report.votes.unwrap();
    assert_eq!(votes.ballot, id);
    assert!(!votes.created);
    assert_eq!(votes.voters, 40);
    assert_eq!(votes.acknowledged, 40);
    assert!(votes.errors.is_empty(), "{:?}", votes.errors);
    assert!(
        votes.watcher_errors.is_empty(),
        "{:?}",
        votes.watcher_errors
    );
    let post = votes.post_latency.unwrap();
    assert_eq!(post.count, 40);
    // A loopback round trip is tens of microseconds at the very least.
    assert!(post.p50 >= Duration::from_micros(10), "{post:?}");
    assert!(post.p50 <= post.p90 && post.p90 <= post.p99 && post.p99 <= post.max);
    assert_eq!(
        votes.tally,
        TallyCheck::Ok {
            total: 40,
            before: 0,
            acknowledged: 40
        }
    );
    assert_eq!(votes.watchers.len(), 3);
    for watcher in &votes.watchers {
        assert!(watcher.connected);
        assert_eq!(watcher.first_seq, Some(0), "shown the empty tally first");
        assert_eq!(watcher.last_seq, Some(40), "saw the final tally");
    }
    assert_eq!(votes.delivery_pairs, 120);
    assert_eq!(votes.never_arrived, 0);
    assert_eq!(votes.delivery.unwrap().count, 120);
    assert!(report.livez.is_none());
}

#[tokio::test]
async fn without_a_ballot_it_creates_one_and_can_measure_livez_beside_it() {
    let app = spawn_app().await;

    let report = simulate(
        &app,
        &[
            "--voters",
            "12",
            "--concurrency",
            "4",
            "--options",
            "red,green,blue",
            "--target",
            "both",
        ],
    )
    .await;

    let votes = report.votes.as_ref().unwrap();
    assert!(votes.created);
    assert_eq!(votes.acknowledged, 12);
    assert!(votes.tally.is_ok(), "{}", votes.tally);
    let ballot = crate::helpers::get_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{}", votes.ballot)),
    )
    .await;
    let labels: Vec<&str> = ballot["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|option| option["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["red", "green", "blue"]);

    let livez = report.livez.as_ref().unwrap();
    assert!(livez.requests > 0);
    assert!(report.vote_to_livez_ratio().is_some());

    let printed = report.to_string();
    assert!(printed.contains("tally check: OK 12 = 12"), "{printed}");
    assert!(printed.contains("votes/s is"), "{printed}");
}

#[tokio::test]
async fn voters_spread_over_many_ballots_in_turn_and_the_check_sums_them() {
    let app = spawn_app().await;

    let report = simulate(
        &app,
        &["--ballots", "3", "--voters", "31", "--concurrency", "4"],
    )
    .await;

    assert!(report.passed());
    let votes = report.votes.as_ref().unwrap();
    assert!(votes.created);
    assert_eq!(votes.ballots, 3);
    assert_eq!(votes.acknowledged, 31);
    assert!(votes.errors.is_empty(), "{:?}", votes.errors);
    assert_eq!(
        votes.tally,
        TallyCheck::Ok {
            total: 31,
            before: 0,
            acknowledged: 31
        }
    );
    // Voters 0, 3, …, 30 voted on the first ballot.
    let first = crate::helpers::get_json(
        &browser(),
        &app.url(&format!("/api/v1/ballots/{}/tally", votes.ballot)),
    )
    .await;
    assert_eq!(first["total"], 11, "{first}");
    let printed = report.to_string();
    assert!(printed.contains("ballots: 3 (created)"), "{printed}");
}

#[test]
fn many_ballots_are_bounded_and_not_combined_with_a_ballot_or_watchers() {
    let parse = |line: &[&str]| SimulateArgs::try_parse_from(line);
    let limit = oponn_simulate::MAX_BALLOTS.to_string();
    assert_eq!(
        parse(&["simulate", "--ballots", &limit]).unwrap().ballots,
        1000
    );
    let over = (oponn_simulate::MAX_BALLOTS + 1).to_string();
    assert!(parse(&["simulate", "--ballots", &over]).is_err());
    assert!(parse(&["simulate", "--ballots", "0"]).is_err());
    assert!(parse(&["simulate", "--ballots", "2", "--watchers", "1"]).is_err());
    assert!(parse(&["simulate", "--ballots", "2", "--ballot", "abc"]).is_err());
}

#[tokio::test]
async fn a_caller_that_sets_watchers_on_many_ballots_is_refused_before_any_load() {
    let app = spawn_app().await;
    let mut many = args(&app, &["--ballots", "2"]);
    many.watchers = 1;
    assert!(matches!(
        measure(&many, Progress::Off).await,
        Err(oponn_simulate::SimulateError::WatchersOnManyBallots)
    ));
    let mut beyond = args(&app, &[]);
    beyond.ballots = oponn_simulate::MAX_BALLOTS + 1;
    assert!(matches!(
        measure(&beyond, Progress::Off).await,
        Err(oponn_simulate::SimulateError::BallotCount(1001))
    ));
}

#[tokio::test]
async fn an_unknown_ballot_is_counted_as_errors_and_fails_the_tally_check() {
    let app = spawn_app().await;

    let report = simulate(
        &app,
        &[
            "--ballot",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "--voters",
            "5",
            "--concurrency",
            "2",
            "--watchers",
            "2",
        ],
    )
    .await;

    let votes = report.votes.unwrap();
    assert_eq!(votes.acknowledged, 0);
    assert_eq!(votes.error_count(), 5);
    assert_eq!(
        votes.errors.get("GET /vote: 404 Not Found"),
        Some(&5),
        "{:?}",
        votes.errors
    );
    // A watcher asks as a browser does, so it hears the ballot is gone
    // (a plain request would get 404) and stops.
    assert!(
        votes
            .watcher_errors
            .keys()
            .all(|kind| kind.contains("the ballot does not exist")),
        "{:?}",
        votes.watcher_errors
    );
    assert_eq!(votes.watcher_errors.values().sum::<u64>(), 2);
    assert_eq!(votes.watchers_connected(), 0);
    assert!(votes.post_latency.is_none());
    assert!(matches!(votes.tally, TallyCheck::NotMade { .. }));
    assert!(!votes.tally.is_ok());
}

#[tokio::test]
async fn the_livez_target_reports_requests_and_latencies() {
    let app = spawn_app().await;

    let report = simulate(
        &app,
        &[
            "--target",
            "livez",
            "--concurrency",
            "4",
            "--duration",
            "300ms",
        ],
    )
    .await;

    assert!(report.votes.is_none());
    let livez = report.livez.unwrap();
    assert!(livez.requests > 0);
    assert!(livez.errors.is_empty(), "{:?}", livez.errors);
    assert_eq!(livez.latency.unwrap().count, livez.requests);
    assert!(livez.requests_per_second() > 0.0);
}
