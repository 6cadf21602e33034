//! The `oponn` binary itself: configuration, startup and signals.

use serde_json::json;

use crate::helpers::{SseReader, browser, get_json, post_json};
use crate::process::{OponnProcess, oponn_command};

#[tokio::test]
async fn production_refuses_to_start_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let output = oponn_command(dir.path())
        .env("OPONN_ENV", "production")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["DATABASE_URL", "OPONN_KMS_KEY_ID", "OPONN_SECRET_KEY"] {
        assert!(stderr.contains(name), "{stderr}");
    }
    assert!(!stderr.contains("REDIS_URL"), "{stderr}");
}

#[tokio::test]
async fn the_binary_serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let oponn = OponnProcess::start(dir.path(), &[]).await;
    // The zero-config default keeps its data, key and secret in the working directory.
    for file in ["oponn.db", "oponn.key", "oponn.secret"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    let client = browser();
    assert_eq!(
        client
            .get(oponn.url("/livez"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let created: serde_json::Value = post_json(
        &client,
        &oponn.url("/api/v1/ballots"),
        &json!({ "measure": "signals", "options": ["a", "b"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap();
    let mut stream = SseReader::new(
        client
            .get(oponn.url(&format!("/ballots/{id}/live-results")))
            .send()
            .await
            .unwrap(),
    );
    stream.next().await;
    let closing = tokio::spawn(stream.until_closed());
    let status = oponn.terminate().await;
    closing.await.unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_embedded_default_keeps_ballots_votes_and_voters_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let voter = browser();
    let first = OponnProcess::start(dir.path(), &[]).await;
    let created: serde_json::Value = post_json(
        &voter,
        &first.url("/api/v1/ballots"),
        &json!({ "measure": "restart?", "options": ["stay", "go"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let votes = format!("/api/v1/ballots/{id}/votes");
    assert_eq!(
        post_json(&voter, &first.url(&votes), &json!({ "option_id": 1 }))
            .await
            .status(),
        201
    );
    assert!(first.terminate().await.success());

    let second = OponnProcess::start(dir.path(), &[]).await;
    let tally = get_json(&voter, &second.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(tally["total"], 1);
    assert_eq!(tally["options"][0]["count"], 1);
    // The same browser is still the same voter: its signed cookie survived too.
    let again = post_json(&voter, &second.url(&votes), &json!({ "option_id": 2 })).await;
    assert_eq!(again.status(), 409);
    assert!(second.terminate().await.success());
}

#[tokio::test]
async fn migrate_applies_then_reports_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/fresh.db", dir.path().display());
    let run = || async {
        let output = oponn_command(dir.path())
            .arg("migrate")
            .env("DATABASE_URL", &database)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(run().await.contains("applied 20261122000001 ballots"));
    assert!(run().await.contains("up to date"));
}

#[tokio::test]
async fn production_refuses_a_database_that_is_behind() {
    let dir = tempfile::tempdir().unwrap();
    let output = oponn_command(dir.path())
        .env("OPONN_ENV", "production")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/behind.db", dir.path().display()),
        )
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("OPONN_KMS_KEY_ID", "alias/oponn")
        .env(
            "OPONN_SECRET_KEY",
            "a production secret that is long enough",
        )
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("oponn migrate"), "{stderr}");
    assert!(stderr.contains("20261122000001 ballots"), "{stderr}");
}

#[tokio::test]
async fn the_version_is_the_binarys_own_name_and_number() {
    let dir = tempfile::tempdir().unwrap();
    let output = oponn_command(dir.path())
        .arg("--version")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("oponn {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn a_taken_address_stops_the_server_before_it_creates_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = oponn_command(dir.path())
        .args(["serve", "--bind", &address])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&address), "{stderr}");
    let created: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(created.is_empty(), "{created:?}");
}

#[tokio::test]
async fn the_startup_log_names_where_to_go_without_colour_codes_when_piped() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let mut child = oponn_command(dir.path())
        .env_remove("NO_COLOR")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut log = Vec::new();
    tokio::time::timeout(crate::helpers::DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("mock sign-in");
            log.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no startup log: {log:?}"));
    let log = log.join("\n");
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    assert!(log.contains("/api/docs"), "{log}");
    assert!(log.contains("/login"), "{log}");
    let secret = dir.path().canonicalize().unwrap().join("oponn.secret");
    assert!(log.contains(&secret.display().to_string()), "{log}");
    child.kill().await.unwrap();
}
