//! The SQLite repository passes the repository contract, keeps data across
//! reopening, and carries the service's stories.

use std::sync::Arc;

use oponn_adapters::sqlite::SqliteRepository;
use oponn_core::ports::{AccountRepository, BallotRepository};
use oponn_testkit::{TestOponn, block_on};

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
                "20261122000002 settings and accounts"
            ]
        );
        repository.migrate().await.unwrap();
        assert!(repository.pending_migrations().await.unwrap().is_empty());
    });
}
