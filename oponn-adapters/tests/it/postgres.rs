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
    let repository = connect(&TestPostgres::shared().fresh_database()).await;
    repository.migrate().await.unwrap();
    repository
}

/// A repository on the database at `url` (not migrated), with the
/// contract's patient connection timeout: one instance of several.
async fn connect(url: &str) -> PostgresRepository {
    let settings = PostgresSettings {
        acquire_timeout: oponn_testkit::contract::DEADLINE,
        ..PostgresSettings::default()
    };
    PostgresRepository::connect_with(url, &settings)
        .await
        .unwrap()
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
                "20261130000004 ballot methods",
                "20261130000005 receipts and invitations"
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

/// A database at schema version 6, with a ballot and two votes as that
/// schema held them, migrated: see [`crate::before_receipts`].
#[test]
fn a_database_from_before_receipts_migrates_with_its_votes() {
    use crate::before_receipts::{
        ADA, BALLOT, BOB, CREATED, check_votes_from_before_receipts, migrator_before_receipts,
    };
    block_on(async {
        let url = TestPostgres::shared().fresh_database();
        let (_migrations, before) = migrator_before_receipts("postgres").await;
        let old = sqlx::PgPool::connect(&url).await.unwrap();
        before.run(&old).await.unwrap();
        let mut tx = old.begin().await.unwrap();
        sqlx::query(
            "insert into ballots (id, owner_id, created_at, starts_at, allow_write_in, measure, \
             tally_seq, eligibility, allow_vote_change, results_visibility, method) \
             values ($1, 'owner-before', $2, $2, true, decode(repeat('00', 40), 'hex'), 2, \
             'signed_in', true, 'after_close', 'single')",
        )
        .bind(BALLOT.as_slice())
        .bind(CREATED)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "insert into ballot_keys (ballot_id, wrapped_key) \
             values ($1, decode(repeat('00', 60), 'hex'))",
        )
        .bind(BALLOT.as_slice())
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "insert into ballot_options (ballot_id, option_id, label, label_key, write_in, \
             vote_count) values ($1, 1, decode(repeat('01', 41), 'hex'), $2, false, 1), \
             ($1, 2, decode(repeat('02', 42), 'hex'), $3, false, 1)",
        )
        .bind(BALLOT.as_slice())
        .bind([1u8; 32].as_slice())
        .bind([2u8; 32].as_slice())
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "insert into votes (ballot_id, voter_hash, option_id, choice, cast_at) \
             values ($1, $2, 1, '1', $4), ($1, $3, 2, null, $4)",
        )
        .bind(BALLOT.as_slice())
        .bind(ADA.as_slice())
        .bind(BOB.as_slice())
        .bind(CREATED)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "insert into ballot_choices (ballot_id, choice, vote_count) \
             values ($1, '1', 1), ($1, '2', 1)",
        )
        .bind(BALLOT.as_slice())
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let repository = PostgresRepository::connect(&url).await.unwrap();
        assert_eq!(
            repository.pending_migrations().await.unwrap(),
            ["20261130000005 receipts and invitations"]
        );
        repository.migrate().await.unwrap();
        // The widened check replaced the old one under its name.
        let eligibility_checks: Vec<(String, String)> = sqlx::query_as(
            "select conname::text, pg_get_constraintdef(oid) from pg_constraint \
             where conrelid = 'ballots'::regclass \
             and pg_get_constraintdef(oid) like '%eligibility%'",
        )
        .fetch_all(&old)
        .await
        .unwrap();
        assert!(
            matches!(
                eligibility_checks.as_slice(),
                [(name, check)] if name == "ballots_eligibility_check" && check.contains("invited")
            ),
            "{eligibility_checks:?}"
        );
        old.close().await;
        check_votes_from_before_receipts(Arc::new(repository)).await;
    });
}

/// Two instances' vote writers on one database, each committing batches of
/// the same ballots at once, with no lock between them (as when the Redis
/// lock was lost): their turns lock ballot rows in one order, so neither
/// waits on the other in a cycle, and every vote counts once.
#[test]
fn two_instances_committing_batches_of_the_same_ballots_count_every_vote() {
    use oponn_core::domain::{ReceiptCode, VoterHash};
    use oponn_core::ports::{NewVote, VoteTarget};

    block_on(async {
        let url = TestPostgres::shared().fresh_database();
        let first = connect(&url).await;
        first.migrate().await.unwrap();
        let second = connect(&url).await;
        let oponn = oponn_testkit::TestOponn::with_repository(Arc::new(first.clone()));
        let ballots = crate::numbered_ballots(&oponn, 12).await;
        const VOTERS_PER_BALLOT: u8 = 8;
        let mut writes = tokio::task::JoinSet::new();
        // Each instance takes half of every ballot's voters; the first
        // queues them by ballot in one order, the second in the other.
        let numbered: Vec<(u8, &oponn_core::domain::Ballot)> = (0u8..).zip(&ballots).collect();
        let orders = [
            (first.clone(), numbered.clone(), 0),
            (second.clone(), numbered.into_iter().rev().collect(), 1),
        ];
        for (repository, order, parity) in orders {
            for (n, ballot) in order {
                for voter in (0..VOTERS_PER_BALLOT).filter(|voter| voter % 2 == parity) {
                    let vote = NewVote {
                        ballot_id: ballot.id(),
                        voter: VoterHash::from_bytes([n * VOTERS_PER_BALLOT + voter; 32]),
                        aliases: Vec::new(),
                        choice: vec![VoteTarget::Existing(ballot.options()[0].id())],
                        cast_at: time::OffsetDateTime::now_utc(),
                        allow_change: false,
                        receipt: ReceiptCode::generate(),
                        invitation: None,
                    };
                    let repository = repository.clone();
                    writes.spawn(async move { repository.record_votes(&[vote]).await });
                }
            }
        }
        let outcomes = writes.join_all().await;
        assert_eq!(outcomes.len(), 12 * usize::from(VOTERS_PER_BALLOT));
        for outcome in outcomes.iter().flatten() {
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        for ballot in &ballots {
            let tally = first.tally(&ballot.id()).await.unwrap().unwrap();
            assert_eq!(
                tally.total(),
                u64::from(VOTERS_PER_BALLOT),
                "ballot {}",
                ballot.id()
            );
        }
    });
}
