//! Liveness, readiness and metrics.

use serde_json::Value;

use crate::helpers::{browser, spawn_app};

#[tokio::test]
async fn liveness_and_readiness_answer() {
    let app = spawn_app().await;
    let live = browser().get(app.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = browser().get(app.url("/readyz")).send().await.unwrap();
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
    let id = app
        .create_ballot(&visitor, &[("measure", "metrics"), ("options_raw", "a, b")])
        .await;
    assert_eq!(
        app.vote(&visitor, &id, &[("option_id", "1")])
            .await
            .status(),
        303
    );
    assert_eq!(
        app.vote(&visitor, &id, &[("option_id", "1")])
            .await
            .status(),
        200
    );
    let text = browser()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
