//! Outage drills: Redis and PostgreSQL go away and come back while
//! `oponn` runs.

use std::time::Duration;

use oponn_testkit::services::postgres::TestPostgres;
use serde_json::{Value, json};

use crate::cluster::{Cluster, create_ballot, vote_as_new_voter, watch_new_ballot};
use crate::helpers::{DEADLINE, browser, csrf_token, get_json};
use crate::process::OponnProcess;

async fn readiness(instance: &OponnProcess) -> (u16, Value) {
    let response = browser().get(instance.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Retries `attempt` until it returns true, failing after [`DEADLINE`]:
/// for recoveries whose moment the test cannot know.
async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !attempt().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_redis_votes_still_count_and_live_updates_come_back() {
    let mut cluster = Cluster::start().await;
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = create_ballot(
        &a,
        json!({ "measure": "redis drill", "options": ["a", "b"] }),
    )
    .await;
    let mut watcher = watch_new_ballot(&b, &id).await;

    cluster.redis.stop();
    // The database is the last line: votes are accepted and durable.
    for _ in 0..3 {
        assert_eq!(
            vote_as_new_voter(&a, &id, json!({ "option_id": 1 })).await,
            201
        );
    }
    let tally = get_json(&browser(), &b.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 3);
    let (status, report) = readiness(&a).await;
    assert_eq!(status, 503);
    assert_eq!(report["checks"]["storage"], "ok");
    assert_eq!(report["checks"]["broadcast"], "unavailable");

    cluster.redis.restart();
    for instance in [&a, &b] {
        eventually("readiness after Redis returned", || async {
            readiness(instance).await.0 == 200
        })
        .await;
    }
    // Live updates resume by themselves: while votes keep coming on A, B's
    // watcher starts receiving them again, and what it receives is current.
    let mut acknowledged = 3;
    let event = tokio::time::timeout(DEADLINE, async {
        loop {
            assert_eq!(
                vote_as_new_voter(&a, &id, json!({ "option_id": 2 })).await,
                201
            );
            acknowledged += 1;
            if let Ok(event) =
                tokio::time::timeout(Duration::from_millis(500), watcher.next()).await
            {
                return event;
            }
        }
    })
    .await
    .expect("live updates resume within the deadline");
    assert_eq!(
        event.id,
        Some(acknowledged.to_string()),
        "the watcher sees the latest tally"
    );
    let tally = get_json(&browser(), &a.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], acknowledged);
}

#[tokio::test]
async fn without_postgres_votes_are_refused_clearly_and_nothing_acknowledged_is_lost() {
    let mut postgres = TestPostgres::start();
    let cluster = Cluster::on_database(postgres.fresh_database()).await;
    let a = cluster.instance().await;
    let id = create_ballot(
        &a,
        json!({ "measure": "postgres drill", "options": ["a", "b"] }),
    )
    .await;
    let mut acknowledged = 0;
    for _ in 0..3 {
        assert_eq!(
            vote_as_new_voter(&a, &id, json!({ "option_id": 1 })).await,
            201
        );
        acknowledged += 1;
    }

    postgres.stop();
    // JSON: 503 with a message.
    let refused = crate::helpers::post_json(
        &browser(),
        &a.url(&format!("/api/v1/ballots/{id}/votes")),
        &json!({ "option_id": 2 }),
    )
    .await;
    assert_eq!(refused.status(), 503);
    let message = refused.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("temporarily unavailable"), "{message}");
    // HTML: the 503 page, for a vote posted from the form and for a page load.
    let voter = browser();
    let token = csrf_token(&voter, &a.url("/create")).await;
    let posted = voter
        .post(a.url(&format!("/vote/{id}")))
        .form(&[("X-CSRF-Token", token.as_str()), ("option_id", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 503);
    assert!(
        posted
            .text()
            .await
            .unwrap()
            .contains("temporarily unavailable")
    );
    let page = browser()
        .get(a.url(&format!("/vote/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("temporarily unavailable")
    );
    let (status, report) = readiness(&a).await;
    assert_eq!(status, 503);
    assert_eq!(report["checks"]["storage"], "unavailable");

    postgres.restart();
    // The service recovers by itself.
    eventually("a vote after PostgreSQL returned", || async {
        vote_as_new_voter(&a, &id, json!({ "option_id": 2 })).await == 201
    })
    .await;
    acknowledged += 1;
    let tally = get_json(&browser(), &a.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(
        tally["total"], acknowledged,
        "every acknowledged vote is there, no other"
    );
    assert_eq!(readiness(&a).await.0, 200);
}
