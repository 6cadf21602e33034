//! Liveness, readiness and metrics.

use serde_json::Value;

use crate::helpers::{browser, spawn_app};

#[tokio::test]
async fn liveness_and_readiness_answer() {
    let app = spawn_app().await;
    let live = app.get(&browser(), "/livez").await;
    assert_eq!(live.status(), 200);
    let ready = app.get(&browser(), "/readyz").await;
    assert_eq!(ready.status(), 200);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["status"], "ready");
    for dependency in ["storage", "lock", "broadcast", "keys"] {
        assert_eq!(report["checks"][dependency], "ok", "{dependency}");
    }
}

#[tokio::test]
async fn metrics_count_ballots_votes_and_requests() {
    let app = spawn_app().await;
    let visitor = browser();
    let id = app.simple_ballot(&visitor, "metrics").await;
    assert_eq!(app.vote_for(&visitor, &id, "1").await, 303);
    assert_eq!(app.vote_for(&visitor, &id, "1").await, 200);
    let text = app.page_text(&browser(), "/metrics").await;
    for line in [
        "oponn_ballots_created_total 1",
        "oponn_votes_cast_total 1",
        "oponn_votes_refused_total{reason=\"already_voted\"} 1",
        "oponn_sse_clients_connected 0",
        "oponn_http_request_duration_seconds_count{method=\"POST\",status=\"303\"}",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
}
