//! A database from before receipts and invitations (schema version 6)
//! keeps its ballots and votes through the migration that adds them, and
//! its votes, which have no receipt, get one when next made.
//!
//! Each SQL dialect builds such a database (the migrations up to version
//! 6, then rows as that schema held them), migrates it, and hands the
//! repository to [`check_votes_from_before_receipts`].

use std::path::Path;
use std::sync::Arc;

use oponn_core::domain::{
    BallotId, BallotMethod, Eligibility, OptionId, ReceiptCode, ReceiptStatus, ResultsVisibility,
    Tally, VoterHash,
};
use oponn_core::ports::{BallotRepository, NewVote, RecordVoteError, VoteTarget};
use sqlx::migrate::Migrator;
use time::OffsetDateTime;
use time::macros::datetime;

/// The ballot the old rows hold.
pub(crate) const BALLOT: [u8; 16] = [0xB0; 16];
/// A voter whose vote (for option 1) has its whole choice stored.
pub(crate) const ADA: [u8; 32] = [0xA1; 32];
/// A voter whose vote (for option 2) is older still: no choice stored.
pub(crate) const BOB: [u8; 32] = [0xB1; 32];
/// When the old ballot was created and its votes cast.
pub(crate) const CREATED: OffsetDateTime = datetime!(2026-11-01 12:00 UTC);

/// The last migration before receipts: the schema the old rows fit.
const LAST_VERSION_BEFORE: &str = "20261130000004";

/// The migrations of `dialect` (`sqlite`, `postgres`) up to version 6,
/// copied to a directory of their own, and a migrator over them.
pub(crate) async fn migrator_before_receipts(dialect: &str) -> (tempfile::TempDir, Migrator) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect);
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let version = name.split('_').next().unwrap_or_default();
        if name.ends_with(".sql") && version <= LAST_VERSION_BEFORE {
            std::fs::copy(entry.path(), copy.path().join(&name)).unwrap();
        }
    }
    let migrator = Migrator::new(copy.path()).await.unwrap();
    assert_eq!(
        migrator.iter().last().map(|migration| migration.version),
        Some(LAST_VERSION_BEFORE.parse().unwrap())
    );
    (copy, migrator)
}

fn code(text: &str) -> ReceiptCode {
    ReceiptCode::parse(text).unwrap()
}

fn again(voter: [u8; 32], option: u32, receipt: &str) -> NewVote {
    NewVote {
        ballot_id: BallotId::from_bytes(BALLOT),
        voter: VoterHash::from_bytes(voter),
        aliases: Vec::new(),
        choice: vec![VoteTarget::Existing(OptionId::new(option))],
        cast_at: CREATED + time::Duration::days(1),
        allow_change: true,
        receipt: code(receipt),
        invitation: None,
    }
}

/// What a migrated version-6 database must do: read its ballot as it was
/// (settings kept, no bulletin published), leave its votes without
/// receipts off the bulletin, give a vote made again a receipt without
/// moving the count, and a changed one a receipt while retiring none.
pub(crate) async fn check_votes_from_before_receipts(repository: Arc<dyn BallotRepository>) {
    let id = BallotId::from_bytes(BALLOT);
    let ballot = repository.ballot(&id).await.unwrap().unwrap();
    assert_eq!(ballot.settings.eligibility, Eligibility::SignedInOnly);
    assert!(ballot.settings.allow_vote_change);
    assert_eq!(
        ballot.settings.results_visibility,
        ResultsVisibility::AfterClose
    );
    assert!(!ballot.settings.publish_bulletin);
    assert_eq!(
        (ballot.method, ballot.options.len()),
        (BallotMethod::Single, 2)
    );
    let tally = repository.tally(&id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (2, 2));

    let bulletin = repository.bulletin(&id).await.unwrap().unwrap();
    assert_eq!((bulletin.tally_seq, bulletin.rows.len()), (2, 0));

    // Ada makes the same choice again: her vote gets a receipt, nothing moves.
    let same = repository
        .record_vote(&again(ADA, 1, "DDDDDDDDD1"))
        .await
        .unwrap();
    assert_eq!(
        (same.receipt.clone(), same.changed_from, same.tally.seq()),
        (code("DDDDDDDDD1"), None, 2)
    );
    // Bob changes: a receipt, and none retired (his vote had none).
    let changed = repository
        .record_vote(&again(BOB, 1, "DDDDDDDDD2"))
        .await
        .unwrap();
    assert_eq!(
        (changed.changed_from, changed.tally.seq()),
        (Some(vec![OptionId::new(2)]), 3)
    );
    for receipt in ["DDDDDDDDD1", "DDDDDDDDD2"] {
        assert_eq!(
            repository
                .receipt_status(&id, &code(receipt))
                .await
                .unwrap(),
            ReceiptStatus::Counted
        );
    }
    let taken = repository
        .record_vote(&again([0xC1; 32], 2, "DDDDDDDDD1"))
        .await
        .unwrap_err();
    assert!(matches!(taken, RecordVoteError::ReceiptTaken), "{taken:?}");

    let bulletin = repository.bulletin(&id).await.unwrap().unwrap();
    let receipts: Vec<&str> = bulletin
        .rows
        .iter()
        .map(|row| row.receipt.as_str())
        .collect();
    assert_eq!(receipts, ["DDDDDDDDD1", "DDDDDDDDD2"]);
    let tally = repository.tally(&id).await.unwrap().unwrap();
    assert_eq!(
        Tally::recount(
            bulletin.tally_seq,
            ballot.method,
            bulletin.rows.iter().map(|row| row.choice.as_slice())
        ),
        tally
    );
    assert_eq!(tally.count(OptionId::new(1)), 2);
}
