//! The embedded default's storage seen from outside: readiness while the
//! disk is full, votes once it has room, owner-only files.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use oponn_adapters::sqlite::{SqliteConnectOptions, SqliteRepository};
use oponn_core::ports::BallotRepository as _;
use oponn_testkit::TestOponn;
use oponn_web::{App, Config, Environment, Secrets, Services, Wiring, build_services};
use serde_json::Value;

use crate::helpers::browser;

/// Serves `oponn` on a free port; returns its address.
async fn serve(oponn: &TestOponn) -> String {
    let mut config = Config::development();
    config.environment = Environment::Testing;
    config.bind = "127.0.0.1:0".to_owned();
    let secrets = Secrets::derive("a storage test secret of enough length").unwrap();
    let services = Services {
        ballots: Arc::clone(oponn.service()),
        accounts: Arc::clone(oponn.accounts()),
    };
    let wiring = Wiring {
        storage: "SQLite".to_owned(),
        coordination: "memory".to_owned(),
        keys: "memory".to_owned(),
    };
    let app = App::with_services(&config, &secrets, services, wiring)
        .await
        .unwrap();
    let address = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run(std::future::pending::<()>()));
    address
}

async fn readiness(address: &str) -> (u16, Value) {
    let response = browser()
        .get(format!("{address}/readyz"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn readiness_reports_a_full_disk_and_votes_count_once_it_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oponn.db");
    let roomy = SqliteRepository::open(&path).await.unwrap();
    roomy.migrate().await.unwrap();
    let setup = TestOponn::with_repository(Arc::new(roomy.clone()));
    let mut fillers = Vec::new();
    for n in 0..6 {
        let labels: Vec<String> = (0..60).map(|o| format!("filler {n} option {o}")).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        fillers.push(setup.create_ballot("filler", &labels).await.id());
    }
    let ballot = setup.create_ballot("Full disk?", &["yes", "no"]).await;
    // SQLite keeps max_page_count at no less than the file's size: each
    // connection may not grow the file past what it found, as on a full disk.
    let full = SqliteRepository::open_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .pragma("max_page_count", "1"),
    )
    .await
    .unwrap();
    let oponn = TestOponn::with_repository(Arc::new(full));
    let address = serve(&oponn).await;
    let vote = |voter: String| {
        let service = Arc::clone(oponn.service());
        let ballot = ballot.clone();
        async move {
            service
                .cast_vote(
                    &ballot.id(),
                    &oponn_core::domain::VoterId::new(voter),
                    oponn_core::VoteChoice::Option(ballot.options()[0].id()),
                )
                .await
                .is_ok()
        }
    };
    let mut filled = false;
    for n in 0..10_000 {
        if !vote(format!("filling {n}")).await {
            filled = true;
            break;
        }
    }
    assert!(filled, "the capped database never filled");

    let (status, report) = readiness(&address).await;
    assert_eq!(
        (status, &report["checks"]["storage"]),
        (503, &Value::from("unavailable"))
    );

    for filler in &fillers {
        assert!(roomy.delete_ballot(filler).await.unwrap());
    }
    let (status, report) = readiness(&address).await;
    assert_eq!(
        (status, &report["checks"]["storage"]),
        (200, &Value::from("ok"))
    );
    for n in 0..10 {
        assert!(
            vote(format!("after {n}")).await,
            "vote {n} after space returned"
        );
    }
}

#[tokio::test]
async fn a_fresh_data_directory_gets_owner_only_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::development();
    config.environment = Environment::Testing;
    config.data_dir = dir.path().to_path_buf();
    let secrets = Secrets::derive("a storage test secret of enough length").unwrap();
    let (services, _) = build_services(&config, &secrets).await.unwrap();
    // A write makes SQLite create the WAL and its index.
    services.ballots.check_dependencies().await;
    for name in ["oponn.db", "oponn.db-wal", "oponn.db-shm", "oponn.key"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
}
