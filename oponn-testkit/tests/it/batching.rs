//! Group commit: concurrent votes share commits, and a cancelled request
//! never strands the votes queued behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use oponn_adapters::memory::MemoryRepository;
use oponn_core::VoteChoice;
use oponn_core::domain::VoterHash;
use oponn_core::domain::{
    BallotId, InvitationHash, InvitationId, OptionId, OwnerId, ReceiptCode, ReceiptStatus, Tally,
};
use oponn_core::ports::{
    AddInvitationsError, BallotRecord, BallotRepository, Bulletin, InvitationRecord, NewInvitation,
    NewVote, Page, RecordVoteError, RecordedVote, RepositoryError, Revoked,
};
use oponn_testkit::{TestOponn, block_on};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::helpers::{request, voter};

/// Memory storage whose batch writes take a while, like a disk flush, and
/// may be held closed by the test; counts the batches it is given.
struct SlowStorage {
    inner: MemoryRepository,
    batches: AtomicUsize,
    /// Each batch write takes one permit: the test decides when writes finish.
    gate: Semaphore,
}

#[async_trait]
impl BallotRepository for SlowStorage {
    async fn insert_ballot(&self, ballot: &BallotRecord) -> Result<(), RepositoryError> {
        self.inner.insert_ballot(ballot).await
    }
    async fn ballot(&self, id: &BallotId) -> Result<Option<BallotRecord>, RepositoryError> {
        self.inner.ballot(id).await
    }
    async fn ballots_owned_by(
        &self,
        owner: &OwnerId,
        page: Page,
    ) -> Result<Vec<BallotRecord>, RepositoryError> {
        self.inner.ballots_owned_by(owner, page).await
    }
    async fn record_vote(&self, vote: &NewVote) -> Result<RecordedVote, RecordVoteError> {
        self.inner.record_vote(vote).await
    }
    async fn record_votes(&self, votes: &[NewVote]) -> Vec<Result<RecordedVote, RecordVoteError>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let _permit = self.gate.acquire().await;
        self.inner.record_votes(votes).await
    }
    async fn vote_of(
        &self,
        ballot: &BallotId,
        voter: &VoterHash,
    ) -> Result<Option<Vec<OptionId>>, RepositoryError> {
        self.inner.vote_of(ballot, voter).await
    }
    async fn tally(&self, id: &BallotId) -> Result<Option<Tally>, RepositoryError> {
        self.inner.tally(id).await
    }
    async fn close_ballot(
        &self,
        id: &BallotId,
        at: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        self.inner.close_ballot(id, at).await
    }
    async fn delete_ballot(&self, id: &BallotId) -> Result<bool, RepositoryError> {
        self.inner.delete_ballot(id).await
    }
    async fn add_invitations(
        &self,
        ballot: &BallotId,
        invitations: &[NewInvitation],
        max_per_ballot: u32,
    ) -> Result<Vec<InvitationId>, AddInvitationsError> {
        self.inner
            .add_invitations(ballot, invitations, max_per_ballot)
            .await
    }
    async fn invitations(
        &self,
        ballot: &BallotId,
    ) -> Result<Vec<InvitationRecord>, RepositoryError> {
        self.inner.invitations(ballot).await
    }
    async fn invitation(
        &self,
        token_hash: &InvitationHash,
    ) -> Result<Option<InvitationRecord>, RepositoryError> {
        self.inner.invitation(token_hash).await
    }
    async fn revoke_invitation(
        &self,
        ballot: &BallotId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> Result<Revoked, RepositoryError> {
        self.inner.revoke_invitation(ballot, id, at).await
    }
    async fn receipt_status(
        &self,
        ballot: &BallotId,
        receipt: &ReceiptCode,
    ) -> Result<ReceiptStatus, RepositoryError> {
        self.inner.receipt_status(ballot, receipt).await
    }
    async fn bulletin(&self, ballot: &BallotId) -> Result<Option<Bulletin>, RepositoryError> {
        self.inner.bulletin(ballot).await
    }
    async fn transfer_ballots(&self, from: &OwnerId, to: &OwnerId) -> Result<u64, RepositoryError> {
        self.inner.transfer_ballots(from, to).await
    }
}

fn slow(permits: usize) -> Arc<SlowStorage> {
    Arc::new(SlowStorage {
        inner: MemoryRepository::new(),
        batches: AtomicUsize::new(0),
        gate: Semaphore::new(permits),
    })
}

#[test]
fn votes_arriving_during_a_commit_share_the_next_one() {
    block_on(async {
        // The first batch is held until every vote has queued behind it.
        let storage = slow(0);
        let oponn = TestOponn::with_repository(Arc::clone(&storage) as _);
        let ballot = oponn.create(request(&["a", "b"])).await;
        let tasks: Vec<_> = (0..100)
            .map(|n| {
                let service = Arc::clone(oponn.service());
                let id = ballot.id();
                tokio::spawn(async move {
                    service
                        .cast_vote(
                            &id,
                            &voter(&format!("v{n}")),
                            VoteChoice::Option(OptionId::new(1 + n % 2)),
                        )
                        .await
                })
            })
            .collect();
        // Wait until the first batch is in the (held) write, then let every write through.
        while storage.batches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
        storage.gate.add_permits(1_000);
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let tally = oponn.service().tally(&ballot.id()).await.unwrap();
        assert_eq!((tally.total(), tally.seq()), (100, 100));
        let batches = storage.batches.load(Ordering::SeqCst);
        assert!(
            batches < 100,
            "100 votes took {batches} commits: no grouping"
        );
        assert!(batches >= 1);
    });
}

#[test]
fn a_cancelled_commit_strands_no_one_queued_behind_it() {
    block_on(async {
        let storage = slow(0);
        let oponn = TestOponn::with_repository(Arc::clone(&storage) as _);
        let ballot = oponn.create(request(&["a", "b"])).await;
        let id = ballot.id();
        // The first voter takes the turn and blocks inside the write.
        let first = {
            let service = Arc::clone(oponn.service());
            tokio::spawn(async move {
                service
                    .cast_vote(&id, &voter("first"), VoteChoice::Option(OptionId::new(1)))
                    .await
            })
        };
        while storage.batches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let second = {
            let service = Arc::clone(oponn.service());
            tokio::spawn(async move {
                service
                    .cast_vote(&id, &voter("second"), VoteChoice::Option(OptionId::new(2)))
                    .await
            })
        };
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        // The first request goes away mid-commit; writes may proceed now.
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        storage.gate.add_permits(1_000);
        let receipt = second.await.unwrap().unwrap();
        assert_eq!(receipt.option_id(), OptionId::new(2));
        assert_eq!(
            oponn
                .service()
                .tally(&id)
                .await
                .unwrap()
                .count(OptionId::new(2)),
            1
        );
    });
}

#[test]
fn a_refused_vote_leaves_no_phantom_write_in_for_its_batch() {
    block_on(async {
        let storage = slow(0);
        let oponn = TestOponn::with_repository(Arc::clone(&storage) as _);
        let mut approval = request(&["a", "b", "c"]);
        approval.allow_write_in = true;
        approval.method = oponn_core::domain::MethodRequest::Approval {
            min_choices: None,
            max_choices: Some(2),
        };
        let ballot = oponn.create(approval).await;
        let id = ballot.id();
        let cast = |name: &'static str, options: Vec<u32>, write_in: &'static str| {
            let service = Arc::clone(oponn.service());
            tokio::spawn(async move {
                service
                    .cast_vote(
                        &id,
                        &voter(name),
                        VoteChoice::Options {
                            options: options.into_iter().map(OptionId::new).collect(),
                            write_in: Some(write_in.to_owned()),
                        },
                    )
                    .await
            })
        };
        // The first voter takes the turn and is held inside the write...
        let first = cast("first", vec![1], "tea");
        while storage.batches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // ...while the next batch queues: a vote refused for too many
        // choices writes in "cake", then a valid vote writes in "cake";
        // "first" tries again, refused by storage, writing in "pie",
        // then another voter writes in "pie".
        let too_many = cast("greedy", vec![1, 2], "cake");
        let valid = cast("fair", vec![3], "cake");
        let again = cast("first", vec![2], "pie");
        let pie = cast("late", vec![], "pie");
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
        storage.gate.add_permits(1_000);
        first.await.unwrap().unwrap();
        assert!(matches!(
            too_many.await.unwrap(),
            Err(oponn_core::CastVoteError::TooManyChoices { max: 2 })
        ));
        let valid = valid.await.unwrap().expect("the valid write-in counts");
        assert!(matches!(
            again.await.unwrap(),
            Err(oponn_core::CastVoteError::AlreadyVoted)
        ));
        let pie = pie
            .await
            .unwrap()
            .expect("a write-in refused in storage strands no one");
        let tally = oponn.service().tally(&id).await.unwrap();
        assert_eq!(tally.total(), 3);
        let results = oponn.service().results(&id).await.unwrap().1;
        let count = |label: &str| {
            results
                .rows
                .iter()
                .find(|row| row.label == label)
                .map(|row| row.count)
        };
        assert_eq!(
            (count("cake"), count("pie"), count("tea")),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(valid.choice.len(), 2);
        assert_eq!(pie.choice.len(), 1);
    });
}
