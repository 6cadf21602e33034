//! The SQLite repository passes the repository contract, keeps data across
//! reopening, and carries the service's stories.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use oponn_adapters::sqlite::SqliteRepository;
use oponn_core::crypto::Sealed;
use oponn_core::domain::{Ballot, BallotId, InvitationHash, VoterId};
use oponn_core::ports::{AccountRepository, BallotRepository, NewInvitation};
use oponn_core::{BallotService, VoteChoice};
use oponn_testkit::{TestOponn, block_on};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

/// A fresh database file in a directory that lives as long as the test process.
async fn open_fresh() -> SqliteRepository {
    let dir = tempfile::tempdir().unwrap().keep();
    let repository = SqliteRepository::open(dir.join("oponn.db")).await.unwrap();
    repository.migrate().await.unwrap();
    repository
}

async fn repository() -> Arc<dyn BallotRepository> {
    Arc::new(open_fresh().await)
}

async fn accounts() -> Arc<dyn AccountRepository> {
    Arc::new(open_fresh().await)
}

mod account_contract {
    oponn_testkit::account_repository_contract!(super::accounts);
}

mod repository_contract {
    oponn_testkit::ballot_repository_contract!(super::repository);
}

mod service_stories {
    oponn_testkit::service_stories!(super::repository);
}

#[test]
fn ballots_and_votes_survive_reopening_the_file() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oponn.db");
        let first = SqliteRepository::open(&path).await.unwrap();
        first.migrate().await.unwrap();
        let oponn = TestOponn::with_repository(Arc::new(first.clone()));
        let ballot = oponn.create_ballot("durable?", &["yes", "no"]).await;
        oponn
            .service()
            .cast_vote(
                &ballot.id(),
                &oponn_core::domain::VoterId::new("ada"),
                oponn_core::VoteChoice::Option(ballot.options()[0].id()),
            )
            .await
            .unwrap();
        drop(first);
        let reopened = SqliteRepository::open(&path).await.unwrap();
        assert!(reopened.pending_migrations().await.unwrap().is_empty());
        let tally = reopened.tally(&ballot.id()).await.unwrap().unwrap();
        assert_eq!((tally.seq(), tally.total()), (1, 1));
        let journal: String = {
            let record = reopened.ballot(&ballot.id()).await.unwrap().unwrap();
            assert_eq!(record.options.len(), 2);
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(journal.contains("oponn.db-wal"), "WAL mode: {journal}");
    });
}

#[test]
fn a_new_file_reports_its_pending_migrations() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repository = SqliteRepository::open(dir.path().join("new.db"))
            .await
            .unwrap();
        let pending = repository.pending_migrations().await.unwrap();
        assert_eq!(
            pending,
            [
                "20261122000001 ballots",
                "20261122000002 settings and accounts",
                "20261130000001 vote aliases",
                "20261130000002 sessions",
                "20261130000003 write probes",
                "20261130000004 ballot methods",
                "20261130000005 receipts and invitations"
            ]
        );
        repository.migrate().await.unwrap();
        assert!(repository.pending_migrations().await.unwrap().is_empty());
    });
}

/// The database file and the two SQLite keeps beside it.
const DATABASE_FILES: [&str; 3] = ["oponn.db", "oponn.db-wal", "oponn.db-shm"];

/// Bytes an attacker looks for: every run of this many bytes of a secret.
const WINDOW: usize = 16;

/// Which of `secrets` (by index) the database files in `dir` still hold,
/// whole or as any run of [`WINDOW`] bytes.
fn secrets_in_files(dir: &Path, secrets: &[Vec<u8>]) -> Vec<usize> {
    let by_window: HashMap<&[u8], usize> = secrets
        .iter()
        .enumerate()
        .flat_map(|(index, secret)| secret.windows(WINDOW).map(move |w| (w, index)))
        .collect();
    let mut found = BTreeSet::new();
    for name in DATABASE_FILES {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
        for window in bytes.windows(WINDOW) {
            if let Some(&index) = by_window.get(window) {
                found.insert(index);
            }
        }
    }
    found.into_iter().collect()
}

async fn vote(service: &BallotService, ballot: &Ballot, voter: impl Into<String>) -> bool {
    service
        .cast_vote(
            &ballot.id(),
            &VoterId::new(voter.into()),
            VoteChoice::Option(ballot.options()[0].id()),
        )
        .await
        .is_ok()
}

#[test]
fn a_deleted_ballot_leaves_no_ciphertext_in_any_database_file() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repository = SqliteRepository::open(dir.path().join("oponn.db"))
            .await
            .unwrap();
        repository.migrate().await.unwrap();
        let oponn = TestOponn::with_repository(Arc::new(repository.clone()));
        let kept = oponn
            .create_ballot("A ballot that stays", &["a", "b"])
            .await;
        let doomed = oponn
            .create_ballot(
                "Shred me: the board's secret merger vote",
                &["Merge", "Stay apart"],
            )
            .await;
        for voter in ["ada", "grace", "alan"] {
            assert!(vote(oponn.service(), &doomed, voter).await);
            assert!(vote(oponn.service(), &kept, voter).await);
        }
        // What storage holds for it, as an attacker with the files would see it.
        let record = repository.ballot(&doomed.id()).await.unwrap().unwrap();
        let mut secrets = vec![
            record.measure.as_bytes().to_vec(),
            record.wrapped_key.as_bytes().to_vec(),
        ];
        secrets.extend(record.options.iter().map(|o| o.label.as_bytes().to_vec()));
        // A voter link with a sealed label, and its token hash.
        let random = || {
            let mut bytes = [0u8; 32];
            bytes[..16].copy_from_slice(BallotId::generate().as_bytes());
            bytes[16..].copy_from_slice(BallotId::generate().as_bytes());
            bytes
        };
        let link = NewInvitation {
            token_hash: InvitationHash::from_bytes(random()),
            label: Some(Sealed::from_bytes(random().to_vec())),
            created_at: time::OffsetDateTime::now_utc(),
        };
        repository
            .add_invitations(&doomed.id(), std::slice::from_ref(&link), 10)
            .await
            .unwrap();
        secrets.push(link.token_hash.as_bytes().to_vec());
        secrets.extend(link.label.iter().map(|label| label.as_bytes().to_vec()));
        assert!(secrets.iter().all(|secret| secret.len() > WINDOW));
        assert_eq!(
            secrets_in_files(dir.path(), &secrets),
            (0..secrets.len()).collect::<Vec<_>>(),
            "the search finds the ballot before its deletion"
        );

        assert!(repository.delete_ballot(&doomed.id()).await.unwrap());

        assert_eq!(
            secrets_in_files(dir.path(), &secrets),
            Vec::<usize>::new(),
            "ciphertext of the deleted ballot (0: measure, 1: wrapped key, then its \
             options, the link's token hash and its label) is still in the database files"
        );
        let wal = std::fs::metadata(dir.path().join("oponn.db-wal")).unwrap();
        assert_eq!(
            wal.len(),
            0,
            "the WAL is truncated with the pool's connections open"
        );
        assert!(repository.ballot(&doomed.id()).await.unwrap().is_none());
        let tally = repository.tally(&kept.id()).await.unwrap().unwrap();
        assert_eq!(tally.total(), 3, "the other ballot is intact");
    });
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_database_files_are_owner_only() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oponn.db");
        let repository = SqliteRepository::open(&path).await.unwrap();
        repository.migrate().await.unwrap();
        let oponn = TestOponn::with_repository(Arc::new(repository.clone()));
        oponn
            .create_ballot("who can read me?", &["me", "you"])
            .await;
        for name in DATABASE_FILES {
            let mode = mode(&dir.path().join(name));
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
        }

        // Files an earlier version left world-readable are tightened.
        for name in DATABASE_FILES {
            let file = dir.path().join(name);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let reopened = SqliteRepository::open(&path).await.unwrap();
        reopened.ping().await.unwrap();
        for name in DATABASE_FILES {
            let mode = mode(&dir.path().join(name));
            assert_eq!(mode, 0o600, "{name} is {mode:o} after reopening");
        }
    });
}

/// A database in `dir` with filler ballots and `ballot`, opened twice: as
/// is, and capped at its present size (SQLite's `max_page_count`), as if
/// its disk had just filled.
struct FullDisk {
    roomy: SqliteRepository,
    full: SqliteRepository,
    fillers: Vec<BallotId>,
    ballot: Ballot,
    _dir: tempfile::TempDir,
}

async fn full_disk() -> FullDisk {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oponn.db");
    let roomy = SqliteRepository::open(&path).await.unwrap();
    roomy.migrate().await.unwrap();
    let oponn = TestOponn::with_repository(Arc::new(roomy.clone()));
    let labels: Vec<String> = (0..60)
        .map(|n| format!("option {n}, padded to take some room on the page"))
        .collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let mut fillers = Vec::new();
    for _ in 0..6 {
        fillers.push(oponn.create_ballot("filler", &labels).await.id());
    }
    let ballot = oponn
        .create_ballot("Does it recover?", &["yes", "no"])
        .await;
    let mut connection = SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    let pages: i64 = sqlx::query_scalar("pragma page_count")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    let full = SqliteRepository::open_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .pragma("max_page_count", pages.to_string()),
    )
    .await
    .unwrap();
    FullDisk {
        roomy,
        full,
        fillers,
        ballot,
        _dir: dir,
    }
}

impl FullDisk {
    /// Votes until storage refuses one; returns how many were counted.
    async fn fill(&self, service: &BallotService) -> usize {
        for counted in 0..10_000 {
            if !vote(service, &self.ballot, format!("filler voter {counted}")).await {
                return counted;
            }
        }
        panic!("the capped database never filled");
    }

    /// Frees space, as an operator clearing the disk would.
    async fn make_room(&self) {
        for filler in &self.fillers {
            assert!(self.roomy.delete_ballot(filler).await.unwrap());
        }
    }
}

#[test]
fn readiness_fails_while_the_database_cannot_grow_and_returns_with_room() {
    block_on(async {
        let disk = full_disk().await;
        let oponn = TestOponn::with_repository(Arc::new(disk.full.clone()));
        disk.fill(oponn.service()).await;
        assert!(
            disk.full.ping().await.is_err(),
            "a database that refuses votes is not ready"
        );
        disk.make_room().await;
        disk.full.ping().await.unwrap();
    });
}

#[test]
fn votes_count_again_as_soon_as_the_disk_has_room() {
    block_on(async {
        let disk = full_disk().await;
        let oponn = TestOponn::with_repository(Arc::new(disk.full.clone()));
        let before = disk.fill(oponn.service()).await;
        // More refusals, on connections that may each be left broken.
        let refused = futures_util::future::join_all(
            (0..16).map(|n| vote(oponn.service(), &disk.ballot, format!("refused {n}"))),
        )
        .await;
        assert!(refused.iter().all(|counted| !counted));
        disk.make_room().await;
        let mut outcomes = String::new();
        for n in 0..24 {
            let counted = vote(oponn.service(), &disk.ballot, format!("after {n}")).await;
            outcomes.push(if counted { '+' } else { 'x' });
        }
        assert_eq!(outcomes, "+".repeat(24), "votes after space returned");
        let concurrent = futures_util::future::join_all(
            (0..16).map(|n| vote(oponn.service(), &disk.ballot, format!("together {n}"))),
        )
        .await;
        assert!(concurrent.iter().all(|counted| *counted));
        let tally = disk.full.tally(&disk.ballot.id()).await.unwrap().unwrap();
        assert_eq!(tally.total(), u64::try_from(before + 24 + 16).unwrap());
    });
}

/// A file at schema version 6, with a ballot and two votes as that schema
/// held them, migrated: see [`crate::before_receipts`].
#[test]
fn a_file_from_before_receipts_migrates_with_its_votes() {
    use crate::before_receipts::{
        ADA, BALLOT, BOB, CREATED, check_votes_from_before_receipts, migrator_before_receipts,
    };
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oponn.db");
        let (_migrations, before) = migrator_before_receipts("sqlite").await;
        let mut old = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true)
            .connect()
            .await
            .unwrap();
        before.run(&mut old).await.unwrap();
        let created = CREATED.unix_timestamp() * 1_000_000;
        sqlx::query(
            "insert into ballots (id, owner_id, created_at, starts_at, allow_write_in, measure, \
             tally_seq, eligibility, allow_vote_change, results_visibility, method) \
             values (?1, 'owner-before', ?2, ?2, 1, zeroblob(40), 2, 'signed_in', 1, \
             'after_close', 'single'); \
             insert into ballot_keys (ballot_id, wrapped_key) values (?1, zeroblob(60)); \
             insert into ballot_options (ballot_id, option_id, label, label_key, write_in, \
             vote_count) values (?1, 1, zeroblob(41), ?3, 0, 1), (?1, 2, zeroblob(42), ?4, 0, 1); \
             insert into votes (ballot_id, voter_hash, option_id, choice, cast_at) \
             values (?1, ?5, 1, '1', ?2), (?1, ?6, 2, null, ?2); \
             insert into ballot_choices (ballot_id, choice, vote_count) \
             values (?1, '1', 1), (?1, '2', 1);",
        )
        .bind(BALLOT.as_slice())
        .bind(created)
        .bind([1u8; 32].as_slice())
        .bind([2u8; 32].as_slice())
        .bind(ADA.as_slice())
        .bind(BOB.as_slice())
        .execute(&mut old)
        .await
        .unwrap();
        old.close().await.unwrap();

        let repository = SqliteRepository::open(&path).await.unwrap();
        assert_eq!(
            repository.pending_migrations().await.unwrap(),
            ["20261130000005 receipts and invitations"]
        );
        repository.migrate().await.unwrap();
        check_votes_from_before_receipts(Arc::new(repository)).await;
    });
}

#[test]
fn votes_on_many_ballots_at_once_take_turns_writing_and_all_count() {
    block_on(async {
        let oponn = Arc::new(TestOponn::with_repository(repository().await));
        let ballots = crate::numbered_ballots(&oponn, 12).await;
        // Every ballot's voters at once: their batches meet at SQLite's
        // one writer, where they queue in this process.
        let mut votes = tokio::task::JoinSet::new();
        for (n, ballot) in ballots.iter().enumerate() {
            for voter in 0..4 {
                let (oponn, ballot) = (Arc::clone(&oponn), ballot.clone());
                votes.spawn(async move {
                    vote(oponn.service(), &ballot, format!("voter {n}-{voter}")).await
                });
            }
        }
        let outcomes = votes.join_all().await;
        assert_eq!(outcomes.len(), 48);
        assert!(outcomes.iter().all(|&counted| counted));
        for ballot in &ballots {
            let tally = oponn.service().tally(&ballot.id()).await.unwrap();
            assert_eq!(tally.total(), 4, "ballot {}", ballot.id());
        }
    });
}
