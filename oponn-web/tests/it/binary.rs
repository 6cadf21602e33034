//! The `oponn` binary itself: configuration, startup and signals.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::helpers::{DEADLINE, SseReader, browser, post_json};

fn oponn() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oponn"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn production_refuses_to_start_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let output = oponn()
        .current_dir(dir.path())
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
    let mut child = oponn()
        .current_dir(dir.path())
        .env("OPONN_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("oponn exited before listening");
    })
    .await
    .expect("oponn starts within the deadline");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // The zero-config default keeps its key and secret in the working directory.
    assert!(dir.path().join("oponn.key").exists());
    assert!(dir.path().join("oponn.secret").exists());

    let client = browser();
    assert_eq!(
        client
            .get(format!("{address}/livez"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let created: serde_json::Value = post_json(
        &client,
        &format!("{address}/api/v1/ballots"),
        &serde_json::json!({ "measure": "signals", "options": ["a", "b"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap();
    let mut stream = SseReader::new(
        client
            .get(format!("{address}/ballots/{id}/live-results"))
            .send()
            .await
            .unwrap(),
    );
    stream.next().await;

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    stream.until_closed().await;
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("oponn exits within the deadline")
        .unwrap();
    assert!(status.success(), "{status}");
}
