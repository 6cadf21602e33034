//! Several `oponn` processes on one PostgreSQL, one Redis and one KMS
//! (moto): live updates cross instances, tallies stay exact under
//! concurrent load, and the database holds no plaintext.

use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use oponn_testkit::services::moto::TestMoto;
use oponn_testkit::services::postgres::TestPostgres;
use oponn_testkit::services::redis::TestRedis;
use serde_json::{Value, json};

use crate::helpers::{DEADLINE, SseReader, browser, get_json, post_json};
use crate::process::OponnProcess;

/// One database, one Redis and one KMS key, shared by the instances a test starts.
pub(crate) struct Cluster {
    pub(crate) database_url: String,
    pub(crate) redis: TestRedis,
    key_id: String,
    kms_endpoint: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    pub(crate) async fn start() -> Self {
        Self::on_database(TestPostgres::shared().fresh_database()).await
    }

    pub(crate) async fn on_database(database_url: String) -> Self {
        let kms_endpoint = TestMoto::shared().endpoint().to_owned();
        Self {
            key_id: create_kms_key(&kms_endpoint).await,
            database_url,
            redis: TestRedis::start(),
            kms_endpoint,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts one more `oponn` on the shared backends.
    pub(crate) async fn instance(&self) -> OponnProcess {
        OponnProcess::start(
            self.dir.path(),
            &[
                ("DATABASE_URL", &self.database_url),
                ("REDIS_URL", self.redis.url()),
                ("OPONN_KMS_KEY_ID", &self.key_id),
                ("OPONN_KMS_ENDPOINT", &self.kms_endpoint),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                (
                    "OPONN_SECRET_KEY",
                    "one secret shared by every instance of the cluster",
                ),
            ],
        )
        .await
    }
}

/// Creates a symmetric key in moto through KMS's JSON protocol.
async fn create_kms_key(endpoint: &str) -> String {
    let response: Value = reqwest::Client::new()
        .post(endpoint)
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("X-Amz-Target", "TrentService.CreateKey")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20301122/us-east-1/kms/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(r#"{"KeySpec":"SYMMETRIC_DEFAULT","KeyUsage":"ENCRYPT_DECRYPT"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a ballot through `instance`'s API.
pub(crate) async fn create_ballot(instance: &OponnProcess, body: Value) -> String {
    let created = post_json(&browser(), &instance.url("/api/v1/ballots"), &body).await;
    assert_eq!(created.status(), 201);
    created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Watches the live results of a ballot with no votes yet on `instance`,
/// past its first event (the empty tally, sequence 0).
pub(crate) async fn watch_new_ballot(instance: &OponnProcess, id: &str) -> SseReader {
    let mut watcher = SseReader::new(
        browser()
            .get(instance.url(&format!("/ballots/{id}/live-results")))
            .send()
            .await
            .unwrap(),
    )
    .skipping("state");
    assert_eq!(watcher.next().await.id.as_deref(), Some("0"));
    watcher
}

/// Casts one vote as a fresh voter through `instance`'s API; returns the status.
pub(crate) async fn vote_as_new_voter(instance: &OponnProcess, id: &str, body: Value) -> u16 {
    post_json(
        &browser(),
        &instance.url(&format!("/api/v1/ballots/{id}/votes")),
        &body,
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn a_vote_on_one_instance_reaches_a_watcher_on_another_within_a_second() {
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = create_ballot(&a, json!({ "measure": "across?", "options": ["a", "b"] })).await;
    let mut watcher = watch_new_ballot(&b, &id).await;
    let voted_at = Instant::now();
    assert_eq!(
        vote_as_new_voter(&a, &id, json!({ "option_id": 2 })).await,
        201
    );
    let event = tokio::time::timeout(Duration::from_secs(1), watcher.next())
        .await
        .expect("the vote on A reaches B's watcher within a second");
    println!("vote on A seen on B after {:?}", voted_at.elapsed());
    assert_eq!(event.id.as_deref(), Some("1"));
    assert!(event.data.contains("100.0"), "{}", event.data);
}

#[tokio::test]
async fn concurrent_voters_across_two_instances_are_counted_exactly() {
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = create_ballot(
        &a,
        json!({ "measure": "load", "options": ["x", "y", "z"], "allow_write_in": true }),
    )
    .await;
    let instances = [&a, &b];
    let votes = (0..64).map(|n| {
        let instance = instances[n % 2];
        let body = match n % 4 {
            0 => json!({ "write_in": if n % 8 == 0 { "Pizza" } else { "  pizza " } }),
            k => json!({ "option_id": k }),
        };
        let id = id.clone();
        async move { vote_as_new_voter(instance, &id, body).await }
    });
    let statuses = futures_util::future::join_all(votes).await;
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    for instance in instances {
        let tally = get_json(
            &browser(),
            &instance.url(&format!("/api/v1/ballots/{id}/tally")),
        )
        .await;
        assert_eq!(tally["total"], 64);
        assert_eq!(tally["seq"], 64);
        let counts: Vec<(String, u64)> = tally["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["label"].as_str().unwrap().to_owned(),
                    row["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            counts.len(),
            4,
            "racing write-ins made one option: {counts:?}"
        );
        assert!(counts.iter().all(|(_, count)| *count == 16), "{counts:?}");
    }
}

#[tokio::test]
async fn the_database_holds_no_plaintext() {
    let cluster = Cluster::start().await;
    let a = cluster.instance().await;
    let secrets = [
        "Confidential Measure Text",
        "Alphaoption",
        "Bravooption",
        "Charliewritein",
    ];
    let id = create_ballot(
        &a,
        json!({ "measure": secrets[0], "options": [secrets[1], secrets[2]], "allow_write_in": true }),
    )
    .await;
    assert_eq!(
        vote_as_new_voter(&a, &id, json!({ "option_id": 1 })).await,
        201
    );
    assert_eq!(
        vote_as_new_voter(&a, &id, json!({ "write_in": secrets[3] })).await,
        201
    );
    // Every row of every table, text and bytes alike.
    let dump = StdCommand::new("pg_dump")
        .args(["--data-only", "--inserts", &cluster.database_url])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).to_lowercase();
    assert!(
        dump.contains("insert into public.votes"),
        "the dump has the votes"
    );
    for secret in secrets {
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !dump.contains(&secret.to_lowercase()),
            "{secret} stored as text"
        );
        assert!(!dump.contains(&hex), "{secret} stored as bytes");
    }
    // Nor do voters appear: only 32-byte keyed hashes.
    let voter_cookie_count = dump.matches("oponn_voter").count();
    assert_eq!(voter_cookie_count, 0);
    let _ = DEADLINE;
}

#[tokio::test]
async fn closing_or_deleting_on_one_instance_ends_the_streams_on_another() {
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let owner = browser();
    for action in ["close", "delete"] {
        let created = post_json(
            &owner,
            &a.url("/api/v1/ballots"),
            &json!({ "measure": "ends everywhere?", "options": ["a", "b"] }),
        )
        .await;
        assert_eq!(created.status(), 201);
        let id = created.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let watcher = watch_new_ballot(&b, &id).await;
        let request = match action {
            "close" => owner.post(a.url(&format!("/api/v1/ballots/{id}/close"))),
            _ => owner.delete(a.url(&format!("/api/v1/ballots/{id}"))),
        };
        let done = request
            .header("X-Requested-With", "oponn-tests")
            .send()
            .await
            .unwrap();
        assert!(done.status().is_success(), "{action}: {}", done.status());
        watcher.until_closed().await;
    }
}
