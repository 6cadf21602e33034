//! Whole-service scenarios: the guarantees a voter relies on, checked
//! through [`BallotService`] on whatever adapters it runs on.

// Stories fail by panicking, like any test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use oponn_core::domain::{
    AccountId, Ballot, BallotRequest, BallotSettings, MethodRequest, OptionId, StartRequest,
    VoterId, comparison_key,
};
use oponn_core::{BallotService, CastVoteError, DEFAULT_MAX_WRITE_IN_OPTIONS, VoteChoice};

async fn ballot(service: &BallotService, allow_write_in: bool) -> Ballot {
    let request = BallotRequest {
        measure: "story ballot".to_owned(),
        options: vec!["north".to_owned(), "south".to_owned()],
        allow_write_in,
        start: StartRequest::Now,
        window: 0.into(),
        settings: BallotSettings::default(),
        method: MethodRequest::Single,
    };
    service.create_ballot(&request, None).await.unwrap()
}

/// 50 tasks × 20 votes from distinct voters: the tally is exactly 1,000,
/// split exactly as cast.
pub async fn concurrent_distinct_voters_are_counted_exactly(service: Arc<BallotService>) {
    let ballot = ballot(&service, false).await;
    let tasks: Vec<_> = (0..50)
        .map(|task| {
            let service = Arc::clone(&service);
            let id = ballot.id();
            tokio::spawn(async move {
                for vote in 0..20 {
                    let voter = VoterId::new(format!("voter-{task}-{vote}"));
                    let option = OptionId::new(1 + (vote % 2));
                    service
                        .cast_vote(&id, &voter, VoteChoice::Option(option))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let tally = service.tally(&ballot.id()).await.unwrap();
    assert_eq!(tally.total(), 1_000);
    assert_eq!(tally.seq(), 1_000);
    assert_eq!(tally.count(OptionId::new(1)), 500);
    assert_eq!(tally.count(OptionId::new(2)), 500);
}

/// 100 concurrent attempts by one voter: exactly one accepted, the rest
/// told they already voted.
pub async fn one_voter_racing_itself_votes_once(service: Arc<BallotService>) {
    let ballot = ballot(&service, false).await;
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let service = Arc::clone(&service);
            let id = ballot.id();
            tokio::spawn(async move {
                let option = OptionId::new(1 + (n % 2));
                service
                    .cast_vote(
                        &id,
                        &VoterId::new("the same voter"),
                        VoteChoice::Option(option),
                    )
                    .await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CastVoteError::AlreadyVoted) => {}
            Err(other) => panic!("unexpected refusal: {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(service.tally(&ballot.id()).await.unwrap().total(), 1);
}

/// 40 voters writing in the same dish in different spellings at once: one
/// new option holding all 40 votes, shown as the first spelling recorded.
pub async fn racing_equal_write_ins_make_one_option(service: Arc<BallotService>) {
    let ballot = ballot(&service, true).await;
    let spellings = ["Pizza", "pizza", "  PIZZA ", "ｐｉｚｚａ"];
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let service = Arc::clone(&service);
            let id = ballot.id();
            let text = spellings[n % spellings.len()].to_owned();
            tokio::spawn(async move {
                service
                    .cast_vote(
                        &id,
                        &VoterId::new(format!("v{n}")),
                        VoteChoice::WriteIn(text),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().option_id(), OptionId::new(3));
    }
    let reread = service.ballot(&ballot.id()).await.unwrap();
    assert_eq!(reread.options().len(), 3);
    assert_eq!(comparison_key(reread.options()[2].label()), "pizza");
    assert!(reread.options()[2].is_write_in());
    assert_eq!(
        service
            .tally(&ballot.id())
            .await
            .unwrap()
            .count(OptionId::new(3)),
        40
    );
}

/// A browser and the account signed in on it are one voter: a guest vote
/// refuses the account's on that browser, and an account's vote marks the
/// browser it was cast from, whichever identity comes first.
pub async fn a_browser_and_its_account_vote_once(service: Arc<BallotService>) {
    let ballot = ballot(&service, false).await;
    let id = ballot.id();
    let north = VoteChoice::Option(OptionId::new(1));
    let laptop = VoterId::new("laptop");
    let ada = VoterId::account(&AccountId::new("ada"));
    service
        .cast_vote(&id, &laptop, north.clone())
        .await
        .unwrap();
    let refused = service
        .cast_vote(&id, &ada.clone().from_browser(&laptop), north.clone())
        .await;
    assert!(
        matches!(refused, Err(CastVoteError::AlreadyVoted)),
        "{refused:?}"
    );
    // Signed in on the laptop, Ada sees the laptop's vote as hers.
    assert_eq!(
        service
            .vote_of(&id, &ada.clone().from_browser(&laptop))
            .await
            .unwrap(),
        Some(vec![OptionId::new(1)])
    );

    let (phone, tablet) = (VoterId::new("phone"), VoterId::new("tablet"));
    let bob = VoterId::account(&AccountId::new("bob"));
    service
        .cast_vote(&id, &bob.clone().from_browser(&phone), north.clone())
        .await
        .unwrap();
    for again in [phone, bob.from_browser(&tablet)] {
        let refused = service.cast_vote(&id, &again, north.clone()).await;
        assert!(
            matches!(refused, Err(CastVoteError::AlreadyVoted)),
            "{refused:?}"
        );
    }
    assert_eq!(service.tally(&id).await.unwrap().total(), 2);

    // Racing: a browser voting as a guest and signed in at once, 40 times.
    let cy = VoterId::account(&AccountId::new("cy"));
    let desktop = VoterId::new("desktop");
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let service = Arc::clone(&service);
            let voter = if n % 2 == 0 {
                desktop.clone()
            } else {
                cy.clone().from_browser(&desktop)
            };
            tokio::spawn(async move {
                service
                    .cast_vote(&id, &voter, VoteChoice::Option(OptionId::new(2)))
                    .await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CastVoteError::AlreadyVoted) => {}
            Err(other) => panic!("unexpected refusal: {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(service.tally(&id).await.unwrap().total(), 3);
}

/// Write-ins add options up to the service's limit and no further, even
/// when the last free places are raced for; past it, a write-in matching an
/// existing option still counts and a new one is refused.
pub async fn write_ins_stop_at_the_limit(service: Arc<BallotService>) {
    let limit = DEFAULT_MAX_WRITE_IN_OPTIONS;
    let ballot = ballot(&service, true).await;
    let id = ballot.id();
    let write_in = |voter: String, text: String| {
        let service = Arc::clone(&service);
        async move {
            service
                .cast_vote(&id, &VoterId::new(voter), VoteChoice::WriteIn(text))
                .await
        }
    };
    // All but the last five places, one by one.
    for n in 0..limit - 5 {
        write_in(format!("v{n}"), format!("dish {n}"))
            .await
            .unwrap();
    }
    // Ten voters race for the last five places: exactly five win.
    let racers: Vec<_> = (0..10)
        .map(|n| tokio::spawn(write_in(format!("racer{n}"), format!("racing dish {n}"))))
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => created += 1,
            Err(CastVoteError::WriteInLimitReached { limit: reported }) => {
                assert_eq!(reported, limit);
            }
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    assert_eq!(created, 5);
    let options = service.ballot(&id).await.unwrap().options().len();
    assert_eq!(options, 2 + limit);

    // Full: a new write-in is refused with a message for the voter...
    let refused = write_in("late".to_owned(), "one more dish".to_owned())
        .await
        .unwrap_err();
    assert!(matches!(refused, CastVoteError::WriteInLimitReached { limit: l } if l == limit));
    assert!(refused.user_message().is_some());
    // ...and that voter may still vote for an existing option, written in
    // or chosen.
    let receipt = write_in("late".to_owned(), "DISH 7".to_owned())
        .await
        .unwrap();
    assert_eq!(receipt.option_id(), OptionId::new(3 + 7));
    service
        .cast_vote(
            &id,
            &VoterId::new("later"),
            VoteChoice::Option(OptionId::new(1)),
        )
        .await
        .unwrap();
    let reread = service.ballot(&id).await.unwrap();
    assert_eq!(reread.options().len(), 2 + limit);
    assert_eq!(service.tally(&id).await.unwrap().total(), limit as u64 + 2);
}
