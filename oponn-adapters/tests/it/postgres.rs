//! The PostgreSQL repository passes the repository contract and carries the
//! service's stories, on a real server (`DATABASE_URL`, or a throwaway one).

use std::sync::Arc;

use oponn_adapters::postgres::{PostgresRepository, PostgresSettings};
use oponn_core::ports::{AccountRepository, BallotRepository};
use oponn_testkit::block_on;
use oponn_testkit::services::postgres::TestPostgres;

/// A migrated repository on a fresh database of the shared server. The
/// contract checks correctness, not speed: a connection is waited for as
/// long as a case may take, so a loaded machine (200 votes queue on one
/// ballot row) slows a case down instead of failing it. The service keeps
/// the production default (3 s, so an outage answers 503 quickly).
async fn connect_fresh() -> PostgresRepository {
    let url = TestPostgres::shared().fresh_database();
    let settings = PostgresSettings {
        acquire_timeout: oponn_testkit::contract::DEADLINE,
        ..PostgresSettings::default()
    };
    let repository = PostgresRepository::connect_with(&url, &settings)
        .await
        .unwrap();
    repository.migrate().await.unwrap();
    repository
}

async fn repository() -> Arc<dyn BallotRepository> {
    Arc::new(connect_fresh().await)
}

async fn accounts() -> Arc<dyn AccountRepository> {
    Arc::new(connect_fresh().await)
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
fn migrations_report_what_is_pending() {
    block_on(async {
        let url = TestPostgres::shared().fresh_database();
        let repository = PostgresRepository::connect(&url).await.unwrap();
        let pending = repository.pending_migrations().await.unwrap();
        assert_eq!(
            pending,
            [
                "20261122000001 ballots",
                "20261122000002 settings and accounts",
                "20261130000001 vote aliases",
                "20261130000002 sessions",
                "20261130000003 write probes",
                "20261130000004 ballot methods"
            ]
        );
        repository.migrate().await.unwrap();
        assert!(repository.pending_migrations().await.unwrap().is_empty());
        // Applying again is a no-op.
        repository.migrate().await.unwrap();
    });
}

#[test]
fn readiness_fails_when_the_database_refuses_writes() {
    block_on(async {
        let url = TestPostgres::shared().fresh_database();
        let repository = PostgresRepository::connect(&url).await.unwrap();
        repository.migrate().await.unwrap();
        repository.ping().await.unwrap();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let name: String = sqlx::query_scalar("select current_database()")
            .fetch_one(&pool)
            .await
            .unwrap();
        sqlx::query(&format!(
            "alter database \"{name}\" set default_transaction_read_only = on"
        ))
        .execute(&pool)
        .await
        .unwrap();
        // As after a failover to a standby: reachable, and refusing writes.
        let read_only = PostgresRepository::connect(&url).await.unwrap();
        assert!(read_only.ping().await.is_err());
    });
}
