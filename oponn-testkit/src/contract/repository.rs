//! The [`BallotRepository`] contract.

use std::collections::HashSet;
use std::sync::Arc;

use oponn_core::crypto::{LabelKey, Sealed, WrappedKey};
use oponn_core::domain::{
    BallotId, BallotMethod, BallotSettings, Eligibility, OptionId, OwnerId, ResultsVisibility,
    VoterHash,
};
use oponn_core::ports::{
    BallotRecord, BallotRepository, NewVote, OptionRecord, Page, RecordVoteError, RecordedVote,
    RepositoryError, VoteTarget,
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

