//! The [`BallotRepository`] contract.

use std::collections::HashSet;
use std::sync::Arc;

use oponn_core::crypto::{LabelKey, Sealed, WrappedKey};
use oponn_core::domain::{
    BallotId, BallotMethod, BallotSettings, Eligibility, InvitationHash, InvitationId, OptionId,
    OwnerId, ReceiptCode, ReceiptStatus, ResultsVisibility, Tally, VoterHash,
};
use oponn_core::ports::{
    AddInvitationsError, BallotRecord, BallotRepository, InvitationRecord, NewInvitation, NewVote,
    OptionRecord, Page, RecordVoteError, RecordedVote, RepositoryError, Revoked, VoteTarget,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A fixed moment with whole seconds, which every backend stores exactly.
const T0: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

fn option(id: u32, key: u8, write_in: bool) -> OptionRecord {
    OptionRecord {
        id: OptionId::new(id),
        label: Sealed::from_bytes(vec![key; 40 + id as usize]),
        label_key: LabelKey::from_bytes([key; 32]),
        write_in,
    }
}

fn record(owner: Option<&OwnerId>, created_at: OffsetDateTime) -> BallotRecord {
    BallotRecord {
        id: BallotId::generate(),
        owner: owner.cloned(),
        created_at,
        starts_at: created_at,
        ends_at: Some(created_at + Duration::hours(1)),
        closed_at: None,
        allow_write_in: true,
        // Not the defaults, so a repository that drops them fails.
        settings: BallotSettings {
            eligibility: Eligibility::SignedInOnly,
            allow_vote_change: false,
            results_visibility: ResultsVisibility::AfterClose,
            publish_bulletin: true,
        },
        wrapped_key: WrappedKey::from_bytes((0..73).collect()),
        measure: Sealed::from_bytes((0..60).rev().collect()),
        method: BallotMethod::Single,
        options: vec![option(1, 1, false), option(2, 2, false)],
    }
}

fn voter(n: u32) -> VoterHash {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[4..20].copy_from_slice(BallotId::generate().as_bytes());
    VoterHash::from_bytes(bytes)
}

fn vote(ballot: &BallotRecord, voter: VoterHash, target: VoteTarget) -> NewVote {
    NewVote {
        ballot_id: ballot.id,
        voter,
        aliases: Vec::new(),
        choice: vec![target],
        cast_at: T0,
        allow_change: false,
        receipt: oponn_core::domain::ReceiptCode::generate(),
        invitation: None,
    }
}

fn change(ballot: &BallotRecord, voter: VoterHash, option: u32) -> NewVote {
    NewVote {
        allow_change: true,
        receipt: oponn_core::domain::ReceiptCode::generate(),
        invitation: None,
        ..vote(ballot, voter, VoteTarget::Existing(OptionId::new(option)))
    }
}

/// Records `voter`'s vote for existing option `option`, which must succeed.
async fn vote_for(
    repository: &Arc<dyn BallotRepository>,
    ballot: &BallotRecord,
    voter: VoterHash,
    option: u32,
) -> RecordedVote {
    repository
        .record_vote(&vote(
            ballot,
            voter,
            VoteTarget::Existing(OptionId::new(option)),
        ))
        .await
        .expect("recording a valid vote works")
}

async fn stored(repository: &Arc<dyn BallotRepository>) -> BallotRecord {
    let ballot = record(None, T0);
    repository
        .insert_ballot(&ballot)
        .await
        .expect("inserting a ballot works");
    ballot
}

/// A stored ballot reads back field for field.
pub async fn inserted_ballot_reads_back_unchanged(repository: Arc<dyn BallotRepository>) {
    let owner = OwnerId::new(format!("owner-{}", BallotId::generate()));
    let ballot = record(Some(&owner), T0);
    repository.insert_ballot(&ballot).await.unwrap();
    assert_eq!(repository.ballot(&ballot.id).await.unwrap(), Some(ballot));
}

/// A second ballot with the same id is a conflict, and the first survives.
pub async fn duplicate_id_conflicts(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let mut twin = record(None, T0);
    twin.id = ballot.id;
    let error = repository.insert_ballot(&twin).await.unwrap_err();
    assert!(matches!(error, RepositoryError::Conflict), "{error:?}");
    assert_eq!(repository.ballot(&ballot.id).await.unwrap(), Some(ballot));
}

/// Unknown ids read as `None`, not as errors.
pub async fn missing_ballot_reads_as_none(repository: Arc<dyn BallotRepository>) {
    let id = BallotId::generate();
    assert_eq!(repository.ballot(&id).await.unwrap(), None);
    assert_eq!(repository.tally(&id).await.unwrap(), None);
}

/// A new ballot's tally is at sequence 0 with no votes.
pub async fn new_ballot_has_an_empty_tally(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (0, 0));
}

/// Each vote is counted for its option and advances the sequence by one.
pub async fn votes_count_and_advance_the_sequence(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let one = VoteTarget::Existing(OptionId::new(1));
    let two = VoteTarget::Existing(OptionId::new(2));
    let first = repository
        .record_vote(&vote(&ballot, voter(1), one.clone()))
        .await
        .unwrap();
    assert_eq!(first.choice, [OptionId::new(1)]);
    assert_eq!(first.tally.seq(), 1);
    repository
        .record_vote(&vote(&ballot, voter(2), one))
        .await
        .unwrap();
    let third = repository
        .record_vote(&vote(&ballot, voter(3), two))
        .await
        .unwrap();
    assert_eq!(third.tally.seq(), 3);
    assert_eq!(third.tally.count(OptionId::new(1)), 2);
    assert_eq!(third.tally.count(OptionId::new(2)), 1);
    assert_eq!(
        repository.tally(&ballot.id).await.unwrap(),
        Some(third.tally)
    );
}

/// One vote per voter: the second is refused and changes nothing.
pub async fn second_vote_by_a_voter_is_refused_and_not_counted(
    repository: Arc<dyn BallotRepository>,
) {
    let ballot = stored(&repository).await;
    let voter = voter(1);
    vote_for(&repository, &ballot, voter, 1).await;
    let error = repository
        .record_vote(&vote(
            &ballot,
            voter,
            VoteTarget::Existing(OptionId::new(2)),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, RecordVoteError::AlreadyVoted), "{error:?}");
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (1, 1));
    assert_eq!(tally.count(OptionId::new(2)), 0);
}

/// A vote for an option the ballot lacks is refused.
pub async fn vote_for_an_unknown_option_is_refused(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let error = repository
        .record_vote(&vote(
            &ballot,
            voter(1),
            VoteTarget::Existing(OptionId::new(9)),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, RecordVoteError::UnknownOption), "{error:?}");
    assert_eq!(
        repository.tally(&ballot.id).await.unwrap().unwrap().seq(),
        0
    );
}

/// A vote cast once the ballot is closed is refused, alone or in a batch,
/// and nothing is counted; a vote cast before the close still counts.
pub async fn vote_on_a_closed_ballot_is_refused(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let early = vote(&ballot, voter(1), VoteTarget::Existing(OptionId::new(1)));
    let closed_at = T0 + Duration::minutes(5);
    assert!(
        repository
            .close_ballot(&ballot.id, closed_at)
            .await
            .unwrap()
    );
    let late = |n| NewVote {
        cast_at: closed_at,
        ..vote(&ballot, voter(n), VoteTarget::Existing(OptionId::new(2)))
    };
    let error = repository.record_vote(&late(2)).await.unwrap_err();
    assert!(matches!(error, RecordVoteError::BallotClosed), "{error:?}");
    let outcomes = repository.record_votes(&[early, late(3)]).await;
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(
        matches!(outcomes[1], Err(RecordVoteError::BallotClosed)),
        "{:?}",
        outcomes[1]
    );
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.count(OptionId::new(2))), (1, 0));
}

/// A vote on a ballot that does not exist is refused.
pub async fn vote_on_a_missing_ballot_is_refused(repository: Arc<dyn BallotRepository>) {
    let ballot = record(None, T0);
    let error = repository
        .record_vote(&vote(
            &ballot,
            voter(1),
            VoteTarget::Existing(OptionId::new(1)),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RecordVoteError::BallotNotFound),
        "{error:?}"
    );
}

/// A new write-in becomes an option of the ballot and is counted.
pub async fn write_in_adds_an_option(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let write_in = option(3, 3, true);
    let recorded = repository
        .record_vote(&vote(
            &ballot,
            voter(1),
            VoteTarget::WriteIn(write_in.clone()),
        ))
        .await
        .unwrap();
    assert_eq!(recorded.choice, [OptionId::new(3)]);
    assert_eq!(recorded.tally.count(OptionId::new(3)), 1);
    let reread = repository.ballot(&ballot.id).await.unwrap().unwrap();
    assert_eq!(reread.options.len(), 3);
    assert_eq!(reread.options[2], write_in);
}

/// A write-in whose label key matches an option counts toward that option.
pub async fn write_in_equal_to_an_option_merges_into_it(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    // Label key 2 is option 2's.
    let recorded = repository
        .record_vote(&vote(
            &ballot,
            voter(1),
            VoteTarget::WriteIn(option(3, 2, true)),
        ))
        .await
        .unwrap();
    assert_eq!(recorded.choice, [OptionId::new(2)]);
    assert_eq!(recorded.tally.count(OptionId::new(2)), 1);
    let reread = repository.ballot(&ballot.id).await.unwrap().unwrap();
    assert_eq!(reread.options.len(), 2);
}

/// A write-in under an id another option holds is refused, not merged.
pub async fn write_in_with_a_taken_id_is_refused(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let error = repository
        .record_vote(&vote(
            &ballot,
            voter(1),
            VoteTarget::WriteIn(option(2, 9, true)),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, RecordVoteError::OptionIdTaken), "{error:?}");
    assert_eq!(
        repository.tally(&ballot.id).await.unwrap().unwrap().seq(),
        0
    );
}

/// 200 voters at once, with no lock held: every vote counted once, and
/// every sequence number handed out once.
pub async fn concurrent_voters_are_all_counted(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let repository = Arc::clone(&repository);
            let vote = vote(
                &ballot,
                voter(n),
                VoteTarget::Existing(OptionId::new(1 + n % 2)),
            );
            tokio::spawn(async move { repository.record_vote(&vote).await })
        })
        .collect();
    let mut seqs = HashSet::new();
    for task in tasks {
        let recorded = task.await.unwrap().unwrap();
        assert!(seqs.insert(recorded.tally.seq()), "a sequence was reused");
    }
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (200, 200));
    assert_eq!(tally.count(OptionId::new(1)), 100);
}

/// 50 attempts by one voter at once, with no lock held: exactly one counts.
pub async fn concurrent_attempts_by_one_voter_count_once(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let voter = voter(1);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let repository = Arc::clone(&repository);
            let vote = vote(&ballot, voter, VoteTarget::Existing(OptionId::new(1)));
            tokio::spawn(async move { repository.record_vote(&vote).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(RecordVoteError::AlreadyVoted) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(
        repository.tally(&ballot.id).await.unwrap().unwrap().total(),
        1
    );
}

/// 30 voters writing in the same label at once, with no lock held: one
/// option, 30 votes.
pub async fn concurrent_equal_write_ins_make_one_option(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let tasks: Vec<_> = (0..30)
        .map(|n| {
            let repository = Arc::clone(&repository);
            let vote = vote(&ballot, voter(n), VoteTarget::WriteIn(option(3, 7, true)));
            tokio::spawn(async move { repository.record_vote(&vote).await })
        })
        .collect();
    for task in tasks {
        let recorded = task.await.unwrap().unwrap();
        assert_eq!(recorded.choice, [OptionId::new(3)]);
    }
    let reread = repository.ballot(&ballot.id).await.unwrap().unwrap();
    assert_eq!(reread.options.len(), 3);
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!(tally.count(OptionId::new(3)), 30);
}

/// An owner's ballots come back newest first, and nobody else's do.
pub async fn ballots_are_listed_by_owner_newest_first(repository: Arc<dyn BallotRepository>) {
    let owner = OwnerId::new(format!("owner-{}", BallotId::generate()));
    let older = record(Some(&owner), T0);
    let newer = record(Some(&owner), T0 + Duration::minutes(5));
    let stranger = record(Some(&OwnerId::new("someone else")), T0);
    for ballot in [&older, &newer, &stranger] {
        repository.insert_ballot(ballot).await.unwrap();
    }
    let page = |number: u32, size: u32| {
        let repository = Arc::clone(&repository);
        let owner = owner.clone();
        async move {
            repository
                .ballots_owned_by(&owner, Page::numbered(number, size).unwrap())
                .await
                .unwrap()
                .into_iter()
                .map(|ballot| ballot.id)
                .collect::<Vec<BallotId>>()
        }
    };
    assert_eq!(page(1, 10).await, vec![newer.id, older.id]);
    // Pages split the same order, and a page past the end is empty.
    assert_eq!(page(1, 1).await, vec![newer.id]);
    assert_eq!(page(2, 1).await, vec![older.id]);
    assert!(page(3, 1).await.is_empty());
    assert!(page(u32::MAX, u32::MAX).await.is_empty());
}

/// Closing records the close time; closing later keeps the earlier one.
pub async fn closing_keeps_the_earliest_close(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let first = T0 + Duration::minutes(10);
    assert!(repository.close_ballot(&ballot.id, first).await.unwrap());
    assert!(
        repository
            .close_ballot(&ballot.id, first + Duration::minutes(1))
            .await
            .unwrap()
    );
    let reread = repository.ballot(&ballot.id).await.unwrap().unwrap();
    assert_eq!(reread.closed_at, Some(first));
    assert!(
        !repository
            .close_ballot(&BallotId::generate(), first)
            .await
            .unwrap()
    );
}

/// Deleting removes the ballot, its tally and its votes.
pub async fn deleting_removes_the_ballot_and_its_votes(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    vote_for(&repository, &ballot, voter(1), 1).await;
    assert!(repository.delete_ballot(&ballot.id).await.unwrap());
    assert_eq!(repository.ballot(&ballot.id).await.unwrap(), None);
    assert_eq!(repository.tally(&ballot.id).await.unwrap(), None);
    let error = repository
        .record_vote(&vote(
            &ballot,
            voter(2),
            VoteTarget::Existing(OptionId::new(1)),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RecordVoteError::BallotNotFound),
        "{error:?}"
    );
    assert!(!repository.delete_ballot(&ballot.id).await.unwrap());
}

/// With changes allowed, a second vote moves the first: one count leaves
/// the old option as one arrives at the new, the sequence advances.
pub async fn a_changed_vote_moves_between_options(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let voter = voter(1);
    repository
        .record_vote(&change(&ballot, voter, 1))
        .await
        .unwrap();
    let moved = repository
        .record_vote(&change(&ballot, voter, 2))
        .await
        .unwrap();
    assert_eq!(moved.changed_from, Some(vec![OptionId::new(1)]));
    assert_eq!(moved.tally.count(OptionId::new(1)), 0);
    assert_eq!(moved.tally.count(OptionId::new(2)), 1);
    assert_eq!((moved.tally.total(), moved.tally.seq()), (1, 2));
    assert_eq!(
        repository.vote_of(&ballot.id, &voter).await.unwrap(),
        Some(vec![OptionId::new(2)])
    );
    // The same choice again changes nothing.
    let same = repository
        .record_vote(&change(&ballot, voter, 2))
        .await
        .unwrap();
    assert_eq!(same.changed_from, None);
    assert_eq!((same.tally.total(), same.tally.seq()), (1, 2));
}

/// A voter's choice can be read back; a stranger has none.
pub async fn a_voters_choice_reads_back(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let (voter, stranger) = (voter(1), voter(2));
    assert_eq!(repository.vote_of(&ballot.id, &voter).await.unwrap(), None);
    vote_for(&repository, &ballot, voter, 2).await;
    assert_eq!(
        repository.vote_of(&ballot.id, &voter).await.unwrap(),
        Some(vec![OptionId::new(2)])
    );
    assert_eq!(
        repository.vote_of(&ballot.id, &stranger).await.unwrap(),
        None
    );
}

/// 20 voters each changing their vote 5 times at once: the total stays the
/// number of voters at every step, and the final counts match the final choices.
pub async fn concurrent_changes_keep_the_tally_exact(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let voters: Vec<VoterHash> = (0..20).map(voter).collect();
    for voter in &voters {
        repository
            .record_vote(&change(&ballot, *voter, 1))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = voters
        .iter()
        .map(|voter| {
            let (repository, ballot, voter) = (Arc::clone(&repository), ballot.clone(), *voter);
            tokio::spawn(async move {
                for round in 0..5u32 {
                    let recorded = repository
                        .record_vote(&change(&ballot, voter, 1 + round % 2))
                        .await
                        .unwrap();
                    assert_eq!(
                        recorded.tally.total(),
                        20,
                        "a change never shows both or neither"
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!(tally.total(), 20);
    let mut expected = (0u64, 0u64);
    for voter in &voters {
        match repository.vote_of(&ballot.id, voter).await.unwrap() {
            Some(choice) if choice == [OptionId::new(1)] => expected.0 += 1,
            Some(_) => expected.1 += 1,
            None => panic!("a voter lost their vote"),
        }
    }
    assert_eq!(
        (tally.count(OptionId::new(1)), tally.count(OptionId::new(2))),
        expected
    );
}

/// A batch behaves exactly like its votes recorded one by one, in order:
/// a repeat voter is refused, an unknown option is refused, equal write-ins
/// merge, and the tally counts only what was accepted.
pub async fn a_batch_records_each_vote_as_if_alone(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let (ada, bob, cy, di, ed) = (voter(1), voter(2), voter(3), voter(4), voter(5));
    let batch = [
        vote(&ballot, ada, VoteTarget::Existing(OptionId::new(1))),
        vote(&ballot, bob, VoteTarget::Existing(OptionId::new(2))),
        vote(&ballot, ada, VoteTarget::Existing(OptionId::new(2))),
        vote(&ballot, cy, VoteTarget::Existing(OptionId::new(9))),
        vote(&ballot, di, VoteTarget::WriteIn(option(3, 7, true))),
        vote(&ballot, ed, VoteTarget::WriteIn(option(3, 7, true))),
    ];
    let outcomes = repository.record_votes(&batch).await;
    assert_eq!(outcomes.len(), 6);
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok());
    assert!(
        matches!(outcomes[2], Err(RecordVoteError::AlreadyVoted)),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], Err(RecordVoteError::UnknownOption)),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(outcomes[4].as_ref().unwrap().choice, [OptionId::new(3)]);
    assert_eq!(outcomes[5].as_ref().unwrap().choice, [OptionId::new(3)]);
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (4, 4));
    assert_eq!(
        (
            tally.count(OptionId::new(1)),
            tally.count(OptionId::new(2)),
            tally.count(OptionId::new(3))
        ),
        (1, 1, 2)
    );
    assert_eq!(repository.vote_of(&ballot.id, &cy).await.unwrap(), None);
}

/// The votes of [`a_batch_matches_its_votes_one_by_one`], on `ballot`,
/// where voter 1 already voted for option 1 with changes allowed. Each
/// comment is what recording that vote alone, in order, answers.
fn mixed_batch(ballot: &BallotRecord) -> Vec<NewVote> {
    let [a, b, c, d, e, f, h] = [1, 2, 3, 4, 5, 6, 8].map(fixed_voter);
    vec![
        // Moves from 1 to 2: sequence 2.
        change(ballot, a, 2),
        // The same choice again: nothing moves, still sequence 2.
        change(ballot, a, 2),
        // A new voter: sequence 3.
        vote(ballot, b, VoteTarget::Existing(OptionId::new(1))),
        // A repeat without changes allowed: refused.
        vote(ballot, b, VoteTarget::Existing(OptionId::new(2))),
        // A new write-in becomes option 3: sequence 4.
        vote(ballot, c, VoteTarget::WriteIn(option(3, 7, true))),
        // A vote for the option written in just before: sequence 5.
        vote(ballot, d, VoteTarget::Existing(OptionId::new(3))),
        // An equal write-in merges into option 3: sequence 6.
        vote(ballot, e, VoteTarget::WriteIn(option(4, 7, true))),
        // A write-in under a taken id: refused.
        vote(ballot, f, VoteTarget::WriteIn(option(2, 9, true))),
        // An unknown option: refused, and f may still vote.
        vote(ballot, f, VoteTarget::Existing(OptionId::new(9))),
        // b's first vote of this batch moves: sequence 7.
        change(ballot, b, 2),
        // c moves off the new write-in: sequence 8.
        change(ballot, c, 1),
        // A new voter with changes allowed: sequence 9.
        change(ballot, h, 1),
    ]
}

/// Voter `n`, the same in every call (unlike [`voter`]), so two ballots
/// can be given the same votes.
fn fixed_voter(n: u32) -> VoterHash {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    VoterHash::from_bytes(bytes)
}

/// A batch mixing new votes, refusals, changes, re-votes and write-ins
/// answers exactly what its votes answer recorded one by one, receipt for
/// receipt and sequence for sequence, and leaves the same ballot behind.
pub async fn a_batch_matches_its_votes_one_by_one(repository: Arc<dyn BallotRepository>) {
    let (batched, one_by_one) = (stored(&repository).await, stored(&repository).await);
    let a = fixed_voter(1);
    for ballot in [&batched, &one_by_one] {
        repository.record_vote(&change(ballot, a, 1)).await.unwrap();
    }
    let outcomes = batch_equals_one_by_one(&repository, &batched, &one_by_one, mixed_batch).await;

    let seqs: Vec<Option<u64>> = outcomes
        .iter()
        .map(|outcome| outcome.as_ref().ok().map(|recorded| recorded.tally.seq()))
        .collect();
    let accepted = |seq| Some(seq);
    assert_eq!(
        seqs,
        [
            accepted(2),
            accepted(2),
            accepted(3),
            None,
            accepted(4),
            accepted(5),
            accepted(6),
            None,
            None,
            accepted(7),
            accepted(8),
            accepted(9),
        ]
    );
    let receipt = |index: usize| outcomes[index].as_ref().unwrap();
    assert_eq!(receipt(0).changed_from, Some(vec![OptionId::new(1)]));
    assert_eq!(receipt(1).changed_from, None);
    assert_eq!(receipt(1).tally, receipt(0).tally);
    assert!(matches!(outcomes[3], Err(RecordVoteError::AlreadyVoted)));
    assert_eq!(receipt(4).choice, [OptionId::new(3)]);
    assert_eq!(receipt(5).tally.count(OptionId::new(3)), 2);
    assert_eq!(receipt(6).choice, [OptionId::new(3)]);
    assert!(matches!(outcomes[7], Err(RecordVoteError::OptionIdTaken)));
    assert!(matches!(outcomes[8], Err(RecordVoteError::UnknownOption)));
    assert_eq!(receipt(9).changed_from, Some(vec![OptionId::new(1)]));
    assert_eq!(receipt(10).changed_from, Some(vec![OptionId::new(3)]));
    assert_eq!(receipt(11).changed_from, None);

    // What is stored is what the last receipt said, on both ballots.
    for ballot in [&batched, &one_by_one] {
        let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
        assert_eq!(
            Some(&tally),
            outcomes.last().unwrap().as_ref().ok().map(|r| &r.tally)
        );
        assert_eq!((tally.seq(), tally.total()), (9, 6));
        assert_eq!(
            [1, 2, 3].map(|option| tally.count(OptionId::new(option))),
            [2, 2, 2]
        );
        let reread = repository.ballot(&ballot.id).await.unwrap().unwrap();
        assert_eq!(reread.options.len(), 3);
        assert_eq!(reread.options[2], option(3, 7, true));
        let choices = [
            (1, Some(2)),
            (2, Some(2)),
            (3, Some(1)),
            (4, Some(3)),
            (5, Some(3)),
            (6, None),
            (8, Some(1)),
        ];
        for (n, choice) in choices {
            assert_eq!(
                repository
                    .vote_of(&ballot.id, &fixed_voter(n))
                    .await
                    .unwrap(),
                choice.map(|option| vec![OptionId::new(option)]),
                "voter {n}"
            );
        }
    }
}

/// A batch whose every vote is refused writes nothing: no option, no vote,
/// no sequence step; a batch on a missing ballot refuses each vote; an
/// empty batch answers nothing.
pub async fn a_refused_batch_writes_nothing(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let voter = fixed_voter;
    vote_for(&repository, &ballot, voter(1), 1).await;
    let refused = [
        vote(&ballot, voter(1), VoteTarget::WriteIn(option(3, 7, true))),
        vote(&ballot, voter(2), VoteTarget::Existing(OptionId::new(9))),
        vote(&ballot, voter(3), VoteTarget::WriteIn(option(1, 9, true))),
        vote(&ballot, voter(4), VoteTarget::Existing(OptionId::new(3))),
    ];
    let outcomes = repository.record_votes(&refused).await;
    assert!(
        matches!(
            outcomes.as_slice(),
            [
                Err(RecordVoteError::AlreadyVoted),
                Err(RecordVoteError::UnknownOption),
                Err(RecordVoteError::OptionIdTaken),
                Err(RecordVoteError::UnknownOption),
            ]
        ),
        "{outcomes:?}"
    );
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (1, 1));
    assert_eq!(
        repository.ballot(&ballot.id).await.unwrap(),
        Some(ballot.clone())
    );
    for n in 2..=4 {
        assert_eq!(
            repository.vote_of(&ballot.id, &voter(n)).await.unwrap(),
            None
        );
    }

    let missing = record(None, T0);
    let outcomes = repository
        .record_votes(&[
            vote(&missing, voter(1), VoteTarget::Existing(OptionId::new(1))),
            vote(&missing, voter(2), VoteTarget::WriteIn(option(3, 7, true))),
        ])
        .await;
    assert!(
        matches!(
            outcomes.as_slice(),
            [
                Err(RecordVoteError::BallotNotFound),
                Err(RecordVoteError::BallotNotFound)
            ]
        ),
        "{outcomes:?}"
    );
    assert!(repository.record_votes(&[]).await.is_empty());
}

/// A batch larger than any one statement may bind (1,000 votes, a third
/// of them new write-ins) counts every vote once, numbers them one by one,
/// and keeps every write-in.
pub async fn a_large_batch_counts_every_vote(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let write_in = |n: u32| {
        let mut label_key = [0xAB; 32];
        label_key[..4].copy_from_slice(&n.to_be_bytes());
        OptionRecord {
            id: OptionId::new(3 + n / 3),
            label: Sealed::from_bytes(n.to_be_bytes().repeat(10)),
            label_key: LabelKey::from_bytes(label_key),
            write_in: true,
        }
    };
    let batch: Vec<NewVote> = (0..1000u32)
        .map(|n| {
            let target = if n % 3 == 0 {
                VoteTarget::WriteIn(write_in(n))
            } else {
                VoteTarget::Existing(OptionId::new(1 + n % 2))
            };
            vote(&ballot, fixed_voter(n), target)
        })
        .collect();
    let outcomes = repository.record_votes(&batch).await;
    assert_eq!(outcomes.len(), 1000);
    for (n, outcome) in (0u64..).zip(&outcomes) {
        let recorded = outcome.as_ref().unwrap();
        assert_eq!(recorded.tally.seq(), n + 1);
        assert_eq!(recorded.tally.total(), n + 1);
    }
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!(
        Some(&tally),
        outcomes.last().unwrap().as_ref().ok().map(|r| &r.tally)
    );
    let reread = repository.ballot(&ballot.id).await.unwrap().unwrap();
    assert_eq!(reread.options.len(), 2 + 334);
    assert_eq!(reread.options.last(), Some(&write_in(999)));
    assert_eq!(tally.count(OptionId::new(3 + 999 / 3)), 1);
    assert_eq!(
        repository
            .vote_of(&ballot.id, &fixed_voter(998))
            .await
            .unwrap(),
        Some(vec![OptionId::new(1)])
    );
}

/// A batch that spans two ballots (the service never sends one, but the
/// port allows it) still answers each vote as if recorded alone.
pub async fn a_batch_across_ballots_records_each_vote(repository: Arc<dyn BallotRepository>) {
    let (first, second) = (stored(&repository).await, stored(&repository).await);
    let outcomes = repository
        .record_votes(&[
            vote(
                &first,
                fixed_voter(1),
                VoteTarget::Existing(OptionId::new(1)),
            ),
            vote(
                &second,
                fixed_voter(1),
                VoteTarget::Existing(OptionId::new(2)),
            ),
            vote(
                &first,
                fixed_voter(1),
                VoteTarget::Existing(OptionId::new(2)),
            ),
            vote(
                &second,
                fixed_voter(2),
                VoteTarget::Existing(OptionId::new(2)),
            ),
        ])
        .await;
    let seqs: Vec<Option<u64>> = outcomes
        .iter()
        .map(|outcome| outcome.as_ref().ok().map(|recorded| recorded.tally.seq()))
        .collect();
    assert_eq!(seqs, [Some(1), Some(1), None, Some(2)], "{outcomes:?}");
    assert!(matches!(outcomes[2], Err(RecordVoteError::AlreadyVoted)));
    let second_tally = repository.tally(&second.id).await.unwrap().unwrap();
    assert_eq!(second_tally.count(OptionId::new(2)), 2);
}

/// A vote for existing option `option` by `voter`, who also presents
/// `aliases` (a signed-in account voting from a browser: the account, then
/// the browser's guest identity).
fn presenting(
    ballot: &BallotRecord,
    voter: VoterHash,
    aliases: &[VoterHash],
    option: u32,
    allow_change: bool,
) -> NewVote {
    NewVote {
        aliases: aliases.to_vec(),
        allow_change,
        receipt: oponn_core::domain::ReceiptCode::generate(),
        invitation: None,
        ..vote(ballot, voter, VoteTarget::Existing(OptionId::new(option)))
    }
}

/// Every identity a voter presents is one voter: a browser that voted as
/// a guest cannot vote again signed in, and a vote cast signed in marks
/// the browser, so it cannot vote again as a guest. Refusals write nothing.
pub async fn every_identity_a_voter_presents_is_one_voter(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let (laptop, ada) = (voter(1), voter(2));
    vote_for(&repository, &ballot, laptop, 1).await;
    let error = repository
        .record_vote(&presenting(&ballot, ada, &[laptop], 2, false))
        .await
        .unwrap_err();
    assert!(matches!(error, RecordVoteError::AlreadyVoted), "{error:?}");
    assert_eq!(repository.vote_of(&ballot.id, &ada).await.unwrap(), None);

    let (phone, bob, tablet) = (voter(3), voter(4), voter(5));
    let recorded = repository
        .record_vote(&presenting(&ballot, bob, &[phone], 2, false))
        .await
        .unwrap();
    assert_eq!((recorded.tally.seq(), recorded.tally.total()), (2, 2));
    for (who, aliases) in [(phone, vec![]), (bob, vec![tablet]), (tablet, vec![phone])] {
        let error = repository
            .record_vote(&presenting(&ballot, who, &aliases, 1, false))
            .await
            .unwrap_err();
        assert!(matches!(error, RecordVoteError::AlreadyVoted), "{error:?}");
    }
    // Both identities read back the one vote.
    for who in [bob, phone] {
        assert_eq!(
            repository.vote_of(&ballot.id, &who).await.unwrap(),
            Some(vec![OptionId::new(2)])
        );
    }
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (2, 2));
    assert_eq!(
        (tally.count(OptionId::new(1)), tally.count(OptionId::new(2))),
        (1, 1)
    );
    // The aliases go with the ballot.
    assert!(repository.delete_ballot(&ballot.id).await.unwrap());
    assert_eq!(repository.vote_of(&ballot.id, &phone).await.unwrap(), None);
}

/// With changes allowed, any identity of the voter moves their one vote,
/// and each identity it presents is linked to that vote, even when the
/// choice is the same again.
pub async fn a_change_by_any_identity_moves_the_one_vote(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let (laptop, ada, phone) = (voter(1), voter(2), voter(3));
    repository
        .record_vote(&change(&ballot, laptop, 1))
        .await
        .unwrap();
    // Signed in on the laptop: the account joins the laptop's vote.
    let moved = repository
        .record_vote(&presenting(&ballot, ada, &[laptop], 2, true))
        .await
        .unwrap();
    assert_eq!(moved.changed_from, Some(vec![OptionId::new(1)]));
    assert_eq!((moved.tally.seq(), moved.tally.total()), (2, 1));
    // The account on a phone: the same vote, and the phone joins it.
    let moved = repository
        .record_vote(&presenting(&ballot, ada, &[phone], 1, true))
        .await
        .unwrap();
    assert_eq!(moved.changed_from, Some(vec![OptionId::new(2)]));
    // The phone as a guest: still the same vote.
    let moved = repository
        .record_vote(&change(&ballot, phone, 2))
        .await
        .unwrap();
    assert_eq!(moved.changed_from, Some(vec![OptionId::new(1)]));
    assert_eq!((moved.tally.seq(), moved.tally.total()), (4, 1));
    for who in [laptop, ada, phone] {
        assert_eq!(
            repository.vote_of(&ballot.id, &who).await.unwrap(),
            Some(vec![OptionId::new(2)])
        );
    }

    // The same choice again moves nothing but links the new identity.
    let (desktop, cy) = (voter(4), voter(5));
    repository
        .record_vote(&change(&ballot, desktop, 1))
        .await
        .unwrap();
    let same = repository
        .record_vote(&presenting(&ballot, cy, &[desktop], 1, true))
        .await
        .unwrap();
    assert_eq!(same.changed_from, None);
    assert_eq!((same.tally.seq(), same.tally.total()), (5, 2));
    assert_eq!(
        repository.vote_of(&ballot.id, &cy).await.unwrap(),
        Some(vec![OptionId::new(1)])
    );
}

/// The votes of [`a_batch_of_identities_matches_its_votes_one_by_one`]:
/// each comment is what recording that vote alone, in order, answers.
fn identity_batch(ballot: &BallotRecord) -> Vec<NewVote> {
    let [laptop, ada, phone, bob, tablet, cy] = [1, 2, 3, 4, 5, 6].map(fixed_voter);
    vec![
        // The laptop as a guest: a new vote.
        presenting(ballot, laptop, &[], 1, false),
        // Ada on the laptop: the laptop voted, refused.
        presenting(ballot, ada, &[laptop], 2, false),
        // Bob on the phone: a new vote, the phone marked.
        presenting(ballot, bob, &[phone], 2, false),
        // The phone as a guest: refused.
        presenting(ballot, phone, &[], 1, false),
        // Bob on the tablet: refused, and the tablet stays unmarked.
        presenting(ballot, bob, &[tablet], 1, false),
        // The tablet as a guest: a new vote.
        presenting(ballot, tablet, &[], 1, false),
        // Cy on the laptop with changes allowed: moves the laptop's vote.
        presenting(ballot, cy, &[laptop], 2, true),
        // Cy alone: the same vote, moved back.
        presenting(ballot, cy, &[], 1, true),
    ]
}

/// A batch of votes from voters presenting several identities answers
/// exactly what its votes answer recorded one by one.
pub async fn a_batch_of_identities_matches_its_votes_one_by_one(
    repository: Arc<dyn BallotRepository>,
) {
    let (batched, one_by_one) = (stored(&repository).await, stored(&repository).await);
    let outcomes =
        batch_equals_one_by_one(&repository, &batched, &one_by_one, identity_batch).await;
    let accepted: Vec<bool> = outcomes.iter().map(Result::is_ok).collect();
    assert_eq!(
        accepted,
        [true, false, true, false, false, true, true, true],
        "{outcomes:?}"
    );
    for ballot in [&batched, &one_by_one] {
        let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
        assert_eq!((tally.seq(), tally.total()), (5, 3));
        assert_eq!(
            (tally.count(OptionId::new(1)), tally.count(OptionId::new(2))),
            (2, 1)
        );
        let choices = [(1, 1), (3, 2), (4, 2), (5, 1), (6, 1)];
        for (n, choice) in choices {
            assert_eq!(
                repository
                    .vote_of(&ballot.id, &fixed_voter(n))
                    .await
                    .unwrap(),
                Some(vec![OptionId::new(choice)]),
                "identity {n}"
            );
        }
        assert_eq!(
            repository
                .vote_of(&ballot.id, &fixed_voter(2))
                .await
                .unwrap(),
            None
        );
    }
}

/// Records `votes` for `batched` as one batch and for `one_by_one` vote by
/// vote (each vote with the same receipt on both), checks that both gave
/// the same outcomes, and returns the batch's.
async fn batch_equals_one_by_one(
    repository: &Arc<dyn BallotRepository>,
    batched: &BallotRecord,
    one_by_one: &BallotRecord,
    votes: impl Fn(&BallotRecord) -> Vec<NewVote>,
) -> Vec<Result<RecordedVote, RecordVoteError>> {
    let batch = votes(batched);
    let outcomes = repository.record_votes(&batch).await;
    let mut expected = Vec::new();
    for (vote, twin) in votes(one_by_one).into_iter().zip(&batch) {
        let vote = NewVote {
            receipt: twin.receipt.clone(),
            ..vote
        };
        expected.push(repository.record_vote(&vote).await);
    }
    assert_eq!(format!("{outcomes:?}"), format!("{expected:?}"));
    outcomes
}

/// Option ids from their numbers.
fn ids(options: &[u32]) -> Vec<OptionId> {
    options.iter().map(|&n| OptionId::new(n)).collect()
}

/// A stored ballot with options 1 to 3, voted by `method`.
async fn stored_with(repository: &Arc<dyn BallotRepository>, method: BallotMethod) -> BallotRecord {
    let ballot = BallotRecord {
        method,
        allow_write_in: !method.is_ranked(),
        options: vec![
            option(1, 1, false),
            option(2, 2, false),
            option(3, 3, false),
        ],
        ..record(None, T0)
    };
    repository
        .insert_ballot(&ballot)
        .await
        .expect("inserting a ballot works");
    ballot
}

/// A vote by `voter` for existing options `options`, in order.
fn choosing(ballot: &BallotRecord, voter: VoterHash, options: &[u32]) -> NewVote {
    NewVote {
        choice: options
            .iter()
            .map(|&option| VoteTarget::Existing(OptionId::new(option)))
            .collect(),
        allow_change: true,
        receipt: oponn_core::domain::ReceiptCode::generate(),
        invitation: None,
        ..vote(ballot, voter, VoteTarget::Existing(OptionId::new(1)))
    }
}

/// Each distinct choice of `tally` with its voters.
fn choices_of(tally: &oponn_core::domain::Tally) -> Vec<(Vec<OptionId>, u64)> {
    tally
        .choices()
        .map(|(choice, voters)| (choice.to_vec(), voters))
        .collect()
}

const APPROVAL: BallotMethod = BallotMethod::Approval {
    min_choices: 1,
    max_choices: 2,
};

/// Every method, with its approval bounds, reads back as stored.
pub async fn every_method_reads_back(repository: Arc<dyn BallotRepository>) {
    for method in [APPROVAL, BallotMethod::Ranked, BallotMethod::Single] {
        let ballot = stored_with(&repository, method).await;
        let read = repository.ballot(&ballot.id).await.unwrap().unwrap();
        assert_eq!(read.method, method);
        assert_eq!(read, ballot);
    }
}

/// The rankings of a ranked batch, with the outcome of each.
fn ranked_batch(ballot: &BallotRecord) -> Vec<NewVote> {
    let [a, b, c, d] = [11, 12, 13, 14].map(fixed_voter);
    vec![
        // A full ranking, a partial one, and one of a single option.
        choosing(ballot, a, &[2, 1, 3]),
        choosing(ballot, b, &[2, 1]),
        choosing(ballot, c, &[3]),
        // The same ranking again: nothing moves.
        choosing(ballot, a, &[2, 1, 3]),
        // A new order of the same options is a change.
        choosing(ballot, a, &[1, 2, 3]),
        // An option ranked twice counts once, where first ranked.
        choosing(ballot, d, &[3, 3, 1]),
        // An unknown option refuses the whole ranking.
        choosing(ballot, b, &[1, 9]),
    ]
}

/// A ranked batch: each ranking kept in its order, first preferences
/// counted per option, every distinct ranking with its voters, exactly as
/// the same votes recorded one by one.
pub async fn a_ranked_batch_matches_its_votes_one_by_one(repository: Arc<dyn BallotRepository>) {
    let batched = stored_with(&repository, BallotMethod::Ranked).await;
    let one_by_one = stored_with(&repository, BallotMethod::Ranked).await;
    let outcomes = batch_equals_one_by_one(&repository, &batched, &one_by_one, ranked_batch).await;
    let receipt = |index: usize| outcomes[index].as_ref().unwrap();
    assert_eq!(receipt(0).choice, ids(&[2, 1, 3]));
    assert_eq!(
        (receipt(3).changed_from.clone(), receipt(3).tally.seq()),
        (None, 3)
    );
    assert_eq!(receipt(4).changed_from, Some(ids(&[2, 1, 3])));
    assert_eq!(receipt(5).choice, ids(&[3, 1]));
    assert!(matches!(outcomes[6], Err(RecordVoteError::UnknownOption)));
    for ballot in [&batched, &one_by_one] {
        let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
        assert_eq!(Some(&tally), outcomes[5].as_ref().ok().map(|r| &r.tally));
        assert_eq!((tally.seq(), tally.total()), (5, 4));
        assert_eq!([1, 2, 3].map(|n| tally.count(OptionId::new(n))), [1, 1, 2]);
        assert_eq!(
            choices_of(&tally),
            [
                (ids(&[1, 2, 3]), 1),
                (ids(&[2, 1]), 1),
                (ids(&[3]), 1),
                (ids(&[3, 1]), 1),
            ]
        );
        assert_eq!(
            repository
                .vote_of(&ballot.id, &fixed_voter(11))
                .await
                .unwrap(),
            Some(ids(&[1, 2, 3]))
        );
    }
}

/// An approval batch: each set stored in id order, each of its options
/// counted once, a write-in among them, exactly as one by one.
pub async fn an_approval_batch_matches_its_votes_one_by_one(repository: Arc<dyn BallotRepository>) {
    let batch = |ballot: &BallotRecord| {
        let [a, b, c] = [21, 22, 23].map(fixed_voter);
        vec![
            choosing(ballot, a, &[3, 1]),
            NewVote {
                choice: vec![
                    VoteTarget::Existing(OptionId::new(2)),
                    VoteTarget::WriteIn(option(4, 40, true)),
                ],
                ..choosing(ballot, b, &[])
            },
            // An equal write-in merges into option 4, beside option 1.
            NewVote {
                choice: vec![
                    VoteTarget::WriteIn(option(5, 40, true)),
                    VoteTarget::Existing(OptionId::new(1)),
                ],
                ..choosing(ballot, c, &[])
            },
            // a's change drops option 3.
            choosing(ballot, a, &[1]),
        ]
    };
    let batched = stored_with(&repository, APPROVAL).await;
    let one_by_one = stored_with(&repository, APPROVAL).await;
    let outcomes = batch_equals_one_by_one(&repository, &batched, &one_by_one, batch).await;
    assert_eq!(outcomes[0].as_ref().unwrap().choice, ids(&[1, 3]));
    assert_eq!(outcomes[2].as_ref().unwrap().choice, ids(&[1, 4]));
    for ballot in [&batched, &one_by_one] {
        let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
        assert_eq!((tally.seq(), tally.total()), (4, 3), "voters, not marks");
        assert_eq!(
            [1, 2, 3, 4].map(|n| tally.count(OptionId::new(n))),
            [2, 1, 0, 2]
        );
        assert_eq!(
            choices_of(&tally),
            [(ids(&[1]), 1), (ids(&[1, 4]), 1), (ids(&[2, 4]), 1)]
        );
        let stored = repository.ballot(&ballot.id).await.unwrap().unwrap();
        assert_eq!(stored.options.len(), 4, "one option written in");
    }
}

/// Concurrent changes of ranking keep every count exact: each voter's one
/// ranking, first preferences and distinct rankings agree.
pub async fn concurrent_ranking_changes_keep_the_counts_exact(
    repository: Arc<dyn BallotRepository>,
) {
    let ballot = stored_with(&repository, BallotMethod::Ranked).await;
    let voters: Vec<VoterHash> = (100..112).map(voter).collect();
    let tasks: Vec<_> = voters
        .iter()
        .enumerate()
        .map(|(n, voter)| {
            let (repository, ballot, voter) = (Arc::clone(&repository), ballot.clone(), *voter);
            tokio::spawn(async move {
                for round in 0..4usize {
                    let first = [1, 2, 3][(n + round) % 3];
                    let rest: Vec<u32> = [1, 2, 3].into_iter().filter(|o| *o != first).collect();
                    let ranking = [vec![first], rest[..round % 3].to_vec()].concat();
                    repository
                        .record_vote(&choosing(&ballot, voter, &ranking))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!(tally.total(), 12);
    let mut rankings: std::collections::BTreeMap<Vec<OptionId>, u64> = Default::default();
    for voter in &voters {
        let ranking = repository
            .vote_of(&ballot.id, voter)
            .await
            .unwrap()
            .expect("every voter kept a vote");
        *rankings.entry(ranking).or_default() += 1;
    }
    assert_eq!(
        choices_of(&tally),
        rankings.clone().into_iter().collect::<Vec<_>>()
    );
    for option in [1, 2, 3].map(OptionId::new) {
        let first: u64 = rankings
            .iter()
            .filter(|(ranking, _)| ranking.first() == Some(&option))
            .map(|(_, voters)| voters)
            .sum();
        assert_eq!(tally.count(option), first);
    }
}

/// A ranking on a closed ballot is refused like any vote.
pub async fn a_ranking_on_a_closed_ballot_is_refused(repository: Arc<dyn BallotRepository>) {
    let ballot = stored_with(&repository, BallotMethod::Ranked).await;
    assert!(repository.close_ballot(&ballot.id, T0).await.unwrap());
    let refused = repository
        .record_vote(&choosing(&ballot, voter(1), &[2, 1]))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, RecordVoteError::BallotClosed),
        "{refused:?}"
    );
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (0, 0));
}

/// A vote by `voter` for existing option `option`, changes allowed, with
/// receipt `receipt`.
fn receipted(ballot: &BallotRecord, voter: VoterHash, option: u32, receipt: &str) -> NewVote {
    NewVote {
        receipt: code(receipt),
        ..change(ballot, voter, option)
    }
}

/// The receipt code `text`, which must be one.
fn code(text: &str) -> ReceiptCode {
    ReceiptCode::parse(text).expect("a receipt code")
}

/// Every vote gets back the receipt it carried; a receipt is given once
/// per ballot: a vote carrying one the ballot already gave, to a counted
/// vote or a replaced one, alone or earlier in its batch, is refused and
/// records nothing. Another ballot may give the same code.
pub async fn receipts_are_given_back_and_never_twice_on_a_ballot(
    repository: Arc<dyn BallotRepository>,
) {
    let ballot = stored(&repository).await;
    let (ada, stranger, cy) = (voter(1), voter(2), voter(3));
    let first = repository
        .record_vote(&receipted(&ballot, ada, 1, "AAAAAAAAA1"))
        .await
        .unwrap();
    assert_eq!(first.receipt, code("AAAAAAAAA1"));
    let taken = repository
        .record_vote(&receipted(&ballot, stranger, 2, "AAAAAAAAA1"))
        .await
        .unwrap_err();
    assert!(matches!(taken, RecordVoteError::ReceiptTaken), "{taken:?}");
    assert_eq!(
        repository.vote_of(&ballot.id, &stranger).await.unwrap(),
        None
    );

    // Ada's change replaces her receipt: it stays given.
    let changed = repository
        .record_vote(&receipted(&ballot, ada, 2, "AAAAAAAAA2"))
        .await
        .unwrap();
    assert_eq!(changed.receipt, code("AAAAAAAAA2"));
    let outcomes = repository
        .record_votes(&[
            receipted(&ballot, stranger, 1, "AAAAAAAAA1"),
            receipted(&ballot, stranger, 1, "AAAAAAAAA3"),
            receipted(&ballot, cy, 1, "AAAAAAAAA3"),
        ])
        .await;
    assert!(
        matches!(
            outcomes.as_slice(),
            [
                Err(RecordVoteError::ReceiptTaken),
                Ok(_),
                Err(RecordVoteError::ReceiptTaken)
            ]
        ),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].as_ref().unwrap().receipt, code("AAAAAAAAA3"));
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!((tally.seq(), tally.total()), (3, 2));
    assert_eq!(repository.vote_of(&ballot.id, &cy).await.unwrap(), None);

    // Receipts are unique within a ballot, not across ballots.
    let other = stored(&repository).await;
    let elsewhere = repository
        .record_vote(&receipted(&other, voter(4), 1, "AAAAAAAAA1"))
        .await
        .unwrap();
    assert_eq!(elsewhere.receipt, code("AAAAAAAAA1"));
}

/// A change replaces the vote's receipt: the old one reads as replaced,
/// the new one as counted; the same choice again keeps the standing
/// receipt. A code no vote of the ballot had is unknown, even when another
/// ballot gave it.
pub async fn a_change_retires_the_old_receipt(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let ada = voter(1);
    let status = |ballot: BallotId, receipt: &'static str| {
        let repository = Arc::clone(&repository);
        async move {
            repository
                .receipt_status(&ballot, &code(receipt))
                .await
                .unwrap()
        }
    };
    repository
        .record_vote(&receipted(&ballot, ada, 1, "BBBBBBBBB1"))
        .await
        .unwrap();
    assert_eq!(
        status(ballot.id, "BBBBBBBBB1").await,
        ReceiptStatus::Counted
    );
    let moved = repository
        .record_vote(&receipted(&ballot, ada, 2, "BBBBBBBBB2"))
        .await
        .unwrap();
    assert_eq!(moved.changed_from, Some(vec![OptionId::new(1)]));
    assert_eq!(moved.receipt, code("BBBBBBBBB2"));
    assert_eq!(
        status(ballot.id, "BBBBBBBBB1").await,
        ReceiptStatus::Replaced
    );
    assert_eq!(
        status(ballot.id, "BBBBBBBBB2").await,
        ReceiptStatus::Counted
    );

    // The same choice again: nothing moves, the receipt stands.
    let same = repository
        .record_vote(&receipted(&ballot, ada, 2, "BBBBBBBBB3"))
        .await
        .unwrap();
    assert_eq!(
        (same.changed_from, same.receipt),
        (None, code("BBBBBBBBB2"))
    );
    assert_eq!(
        status(ballot.id, "BBBBBBBBB3").await,
        ReceiptStatus::Unknown
    );
    assert_eq!(
        status(ballot.id, "BBBBBBBBB2").await,
        ReceiptStatus::Counted
    );

    // A change and a change back within one batch retires both earlier
    // receipts: their voter was told each.
    let outcomes = repository
        .record_votes(&[
            receipted(&ballot, ada, 1, "BBBBBBBBB4"),
            receipted(&ballot, ada, 2, "BBBBBBBBB5"),
        ])
        .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    for (receipt, expected) in [
        ("BBBBBBBBB2", ReceiptStatus::Replaced),
        ("BBBBBBBBB4", ReceiptStatus::Replaced),
        ("BBBBBBBBB5", ReceiptStatus::Counted),
    ] {
        assert_eq!(status(ballot.id, receipt).await, expected, "{receipt}");
    }

    let other = stored(&repository).await;
    assert_eq!(status(other.id, "BBBBBBBBB5").await, ReceiptStatus::Unknown);
    assert_eq!(status(other.id, "BBBBBBBBB1").await, ReceiptStatus::Unknown);
    assert_eq!(
        status(BallotId::generate(), "BBBBBBBBB5").await,
        ReceiptStatus::Unknown
    );
}

/// The bulletin lists every counted vote as (receipt, whole choice),
/// sorted by receipt, with the sequence of the tally they make: recounting
/// its rows gives the stored tally. Replaced votes are not on it.
pub async fn the_bulletin_lists_every_counted_vote(repository: Arc<dyn BallotRepository>) {
    let ballot = stored_with(&repository, BallotMethod::Ranked).await;
    let empty = repository.bulletin(&ballot.id).await.unwrap().unwrap();
    assert_eq!((empty.tally_seq, empty.rows.len()), (0, 0));
    let ranking = |n: u32, ranking: &[u32], receipt: &str| NewVote {
        receipt: code(receipt),
        ..choosing(&ballot, fixed_voter(n), ranking)
    };
    let outcomes = repository
        .record_votes(&[
            ranking(1, &[2, 1, 3], "ZZZZZZZZZ1"),
            ranking(2, &[3], "0000000002"),
            ranking(3, &[1, 3], "MMMMMMMMM3"),
        ])
        .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // Voter 2 changes: the old receipt leaves the bulletin.
    repository
        .record_vote(&ranking(2, &[2, 3], "5555555552"))
        .await
        .unwrap();
    let bulletin = repository.bulletin(&ballot.id).await.unwrap().unwrap();
    let rows: Vec<(&str, Vec<OptionId>)> = bulletin
        .rows
        .iter()
        .map(|row| (row.receipt.as_str(), row.choice.clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("5555555552", ids(&[2, 3])),
            ("MMMMMMMMM3", ids(&[1, 3])),
            ("ZZZZZZZZZ1", ids(&[2, 1, 3])),
        ]
    );
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!(bulletin.tally_seq, tally.seq());
    assert_eq!(bulletin.tally_seq, 4);
    let recounted = Tally::recount(
        bulletin.tally_seq,
        ballot.method,
        bulletin.rows.iter().map(|row| row.choice.as_slice()),
    );
    assert_eq!(recounted, tally);
    assert_eq!(
        repository.bulletin(&BallotId::generate()).await.unwrap(),
        None
    );
}

/// A voter link to store, its token hash made of `n` and a random part.
fn new_invitation(n: u8, label: Option<&[u8]>) -> NewInvitation {
    let mut hash = [n; 32];
    hash[..16].copy_from_slice(BallotId::generate().as_bytes());
    NewInvitation {
        token_hash: InvitationHash::from_bytes(hash),
        label: label.map(|label| Sealed::from_bytes(label.to_vec())),
        created_at: T0 + Duration::seconds(i64::from(n)),
    }
}

/// Invitation numbers from theirs.
fn numbers(ids: &[InvitationId]) -> Vec<u32> {
    ids.iter().map(|id| id.get()).collect()
}

/// Links are numbered from 1 across requests; the limit counts every link
/// a ballot has and holds at its boundary (exactly the most is fine, one
/// more is refused with nothing stored); a link is found by its token hash
/// with its ballot, and an unknown hash finds nothing.
pub async fn invitations_are_numbered_and_limited(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let first = [
        new_invitation(1, Some(b"sealed label one")),
        new_invitation(2, None),
    ];
    let ids = repository
        .add_invitations(&ballot.id, &first, 5)
        .await
        .unwrap();
    assert_eq!(numbers(&ids), [1, 2]);
    let second: Vec<NewInvitation> = (3..=5).map(|n| new_invitation(n, None)).collect();
    let ids = repository
        .add_invitations(&ballot.id, &second, 5)
        .await
        .unwrap();
    assert_eq!(numbers(&ids), [3, 4, 5], "exactly the limit is fine");
    let refused = repository
        .add_invitations(&ballot.id, &[new_invitation(6, None)], 5)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, AddInvitationsError::LimitReached),
        "{refused:?}"
    );
    let stored_links = repository.invitations(&ballot.id).await.unwrap();
    let stored_numbers: Vec<u32> = stored_links.iter().map(|link| link.id.get()).collect();
    assert_eq!(stored_numbers, [1, 2, 3, 4, 5]);

    let found = repository
        .invitation(&first[0].token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found,
        InvitationRecord {
            ballot_id: ballot.id,
            id: InvitationId::new(1),
            token_hash: first[0].token_hash,
            label: first[0].label.clone(),
            created_at: first[0].created_at,
            used_at: None,
            revoked_at: None,
        }
    );
    assert_eq!(stored_links[0], found);
    assert_eq!(stored_links[1].label, None);
    assert_eq!(
        repository
            .invitation(&new_invitation(9, None).token_hash)
            .await
            .unwrap(),
        None
    );

    // One more than the limit in one request stores none of them.
    let fresh = stored(&repository).await;
    let too_many: Vec<NewInvitation> = (1..=4).map(|n| new_invitation(n, None)).collect();
    let refused = repository
        .add_invitations(&fresh.id, &too_many, 3)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, AddInvitationsError::LimitReached),
        "{refused:?}"
    );
    assert!(repository.invitations(&fresh.id).await.unwrap().is_empty());
    assert_eq!(
        repository
            .invitation(&too_many[0].token_hash)
            .await
            .unwrap(),
        None
    );
    // Numbers are per ballot.
    let ids = repository
        .add_invitations(&fresh.id, &too_many[..3], 3)
        .await
        .unwrap();
    assert_eq!(numbers(&ids), [1, 2, 3]);

    let missing = repository
        .add_invitations(&BallotId::generate(), &[new_invitation(7, None)], 5)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, AddInvitationsError::BallotNotFound),
        "{missing:?}"
    );
    assert!(
        repository
            .invitations(&BallotId::generate())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A stored invite-only ballot with two voter links, and their records.
async fn invite_only(repository: &Arc<dyn BallotRepository>) -> (BallotRecord, Vec<NewInvitation>) {
    let mut ballot = record(None, T0);
    ballot.settings.eligibility = Eligibility::Invited;
    repository.insert_ballot(&ballot).await.unwrap();
    let links = vec![new_invitation(1, Some(b"for ada")), new_invitation(2, None)];
    repository
        .add_invitations(&ballot.id, &links, 10)
        .await
        .unwrap();
    (ballot, links)
}

/// A vote by the holder of invitation `number` (voting as its own
/// identity, as the service has it) for option `option`.
fn invited(ballot: &BallotRecord, number: u32, option: u32) -> NewVote {
    let mut identity = [0xEE; 32];
    identity[..4].copy_from_slice(&number.to_be_bytes());
    NewVote {
        invitation: Some(InvitationId::new(number)),
        ..change(ballot, VoterHash::from_bytes(identity), option)
    }
}

/// A revoked link votes no more; a link a vote was cast with is marked
/// used (by its first vote) and can no longer be revoked; revoking twice
/// keeps the first time; a link the ballot lacks is not found.
pub async fn revoked_links_cannot_vote_and_used_links_stay(repository: Arc<dyn BallotRepository>) {
    let (ballot, links) = invite_only(&repository).await;
    assert_eq!(
        repository
            .ballot(&ballot.id)
            .await
            .unwrap()
            .unwrap()
            .settings
            .eligibility,
        Eligibility::Invited
    );
    let link = |n: usize| {
        let repository = Arc::clone(&repository);
        let hash = links[n].token_hash;
        async move { repository.invitation(&hash).await.unwrap().unwrap() }
    };
    let (first, second) = (InvitationId::new(1), InvitationId::new(2));
    let revoked_at = T0 + Duration::minutes(1);
    let revoke = |id: InvitationId, at: OffsetDateTime| {
        let repository = Arc::clone(&repository);
        async move {
            repository
                .revoke_invitation(&ballot.id, id, at)
                .await
                .unwrap()
        }
    };
    assert_eq!(revoke(first, revoked_at).await, Revoked::Revoked);
    assert_eq!(
        revoke(first, revoked_at + Duration::minutes(1)).await,
        Revoked::Revoked
    );
    assert_eq!(link(0).await.revoked_at, Some(revoked_at));
    let refused = repository
        .record_vote(&invited(&ballot, 1, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, RecordVoteError::InvitationRevoked),
        "{refused:?}"
    );
    assert_eq!(
        repository.tally(&ballot.id).await.unwrap().unwrap().seq(),
        0
    );
    assert_eq!(link(0).await.used_at, None);

    // The second link votes, then changes its vote a minute later.
    let vote = invited(&ballot, 2, 1);
    repository.record_vote(&vote).await.unwrap();
    assert_eq!(link(1).await.used_at, Some(vote.cast_at));
    let later = NewVote {
        cast_at: vote.cast_at + Duration::minutes(1),
        ..invited(&ballot, 2, 2)
    };
    repository.record_vote(&later).await.unwrap();
    assert_eq!(link(1).await.used_at, Some(vote.cast_at), "the first use");
    assert_eq!(revoke(second, revoked_at).await, Revoked::Used);
    let used = link(1).await;
    assert_eq!((used.used_at, used.revoked_at), (Some(vote.cast_at), None));

    assert_eq!(
        revoke(InvitationId::new(9), revoked_at).await,
        Revoked::NotFound
    );
    let other = stored(&repository).await;
    assert_eq!(
        repository
            .revoke_invitation(&other.id, second, revoked_at)
            .await
            .unwrap(),
        Revoked::NotFound
    );
}

/// Votes and revocations of the same links at once, with no lock held:
/// each link ends either used by its counted vote (the revocation told
/// it was used) or revoked (its vote refused), never both or neither.
pub async fn revoking_while_voting_never_revokes_a_used_link(
    repository: Arc<dyn BallotRepository>,
) {
    let mut ballot = record(None, T0);
    ballot.settings.eligibility = Eligibility::Invited;
    repository.insert_ballot(&ballot).await.unwrap();
    let links: Vec<NewInvitation> = (1..=20).map(|n| new_invitation(n, None)).collect();
    let ids = repository
        .add_invitations(&ballot.id, &links, 20)
        .await
        .unwrap();
    let tasks: Vec<_> = ids
        .iter()
        .map(|&id| {
            let (repository, ballot) = (Arc::clone(&repository), ballot.clone());
            tokio::spawn(async move {
                let vote = invited(&ballot, id.get(), 1 + id.get() % 2);
                let (voted, revoked) = futures_util::join!(
                    repository.record_vote(&vote),
                    repository.revoke_invitation(&ballot.id, id, T0)
                );
                (voted, revoked.unwrap())
            })
        })
        .collect();
    let mut counted = 0;
    for task in tasks {
        match task.await.unwrap() {
            (Ok(_), Revoked::Used) => counted += 1,
            (Err(RecordVoteError::InvitationRevoked), Revoked::Revoked) => {}
            other => panic!("a link both voted and revoked, or neither: {other:?}"),
        }
    }
    let tally = repository.tally(&ballot.id).await.unwrap().unwrap();
    assert_eq!(tally.total(), counted);
    for link in repository.invitations(&ballot.id).await.unwrap() {
        assert!(
            link.used_at.is_some() != link.revoked_at.is_some(),
            "link {}: {link:?}",
            link.id
        );
    }
}

/// Concurrent requests for links, with no lock held, never take a ballot
/// past its limit nor give a number twice.
pub async fn concurrent_requests_for_links_keep_the_limit(repository: Arc<dyn BallotRepository>) {
    let ballot = stored(&repository).await;
    let tasks: Vec<_> = (0..10u8)
        .map(|request| {
            let (repository, id) = (Arc::clone(&repository), ballot.id);
            tokio::spawn(async move {
                let links: Vec<NewInvitation> = (0..3)
                    .map(|n| new_invitation(request * 3 + n, None))
                    .collect();
                repository.add_invitations(&id, &links, 10).await
            })
        })
        .collect();
    let mut given = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(ids) => given.extend(numbers(&ids)),
            Err(AddInvitationsError::LimitReached) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    given.sort_unstable();
    assert_eq!(given, (1..=9).collect::<Vec<u32>>());
    assert_eq!(repository.invitations(&ballot.id).await.unwrap().len(), 9);
}

/// Deleting a ballot takes its links and its receipts with it.
pub async fn deleting_a_ballot_removes_its_links_and_receipts(
    repository: Arc<dyn BallotRepository>,
) {
    let (ballot, links) = invite_only(&repository).await;
    repository
        .record_vote(&NewVote {
            receipt: code("CCCCCCCCC1"),
            ..invited(&ballot, 1, 1)
        })
        .await
        .unwrap();
    repository
        .record_vote(&NewVote {
            receipt: code("CCCCCCCCC2"),
            ..invited(&ballot, 1, 2)
        })
        .await
        .unwrap();
    assert!(repository.delete_ballot(&ballot.id).await.unwrap());
    for link in &links {
        assert_eq!(repository.invitation(&link.token_hash).await.unwrap(), None);
    }
    assert!(repository.invitations(&ballot.id).await.unwrap().is_empty());
    for receipt in ["CCCCCCCCC1", "CCCCCCCCC2"] {
        assert_eq!(
            repository
                .receipt_status(&ballot.id, &code(receipt))
                .await
                .unwrap(),
            ReceiptStatus::Unknown
        );
    }
    assert_eq!(repository.bulletin(&ballot.id).await.unwrap(), None);
}

/// Moving a guest's ballots to their account moves exactly theirs, and
/// says how many.
pub async fn transferring_ballots_moves_exactly_the_owners(repository: Arc<dyn BallotRepository>) {
    let owner = |name: &str| OwnerId::new(format!("{name}-{}", BallotId::generate()));
    let (guest, account, bystander) = (owner("guest"), owner("account"), owner("bystander"));
    let mut guests = Vec::new();
    for minutes in [0, 5] {
        let ballot = record(Some(&guest), T0 + Duration::minutes(minutes));
        repository.insert_ballot(&ballot).await.unwrap();
        guests.push(ballot.id);
    }
    let theirs = record(Some(&bystander), T0);
    repository.insert_ballot(&theirs).await.unwrap();
    let owned = |owner: OwnerId| {
        let repository = Arc::clone(&repository);
        async move {
            repository
                .ballots_owned_by(&owner, Page::numbered(1, 10).unwrap())
                .await
                .unwrap()
                .into_iter()
                .map(|ballot| ballot.id)
                .collect::<Vec<BallotId>>()
        }
    };
    assert_eq!(
        repository.transfer_ballots(&guest, &account).await.unwrap(),
        2
    );
    assert!(owned(guest.clone()).await.is_empty());
    assert_eq!(owned(account.clone()).await, [guests[1], guests[0]]);
    assert_eq!(owned(bystander).await, [theirs.id]);
    assert_eq!(
        repository.transfer_ballots(&guest, &account).await.unwrap(),
        0
    );
}
