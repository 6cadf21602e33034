//! Each rule of voting, one test apiece.

use std::sync::Arc;

use futures_util::StreamExt as _;
use oponn_adapters::memory::MemoryRepository;
use oponn_core::domain::{BallotId, Field, OptionId, OwnerId, StartRequest, messages};
use oponn_core::ports::{BallotRepository, Page};
use oponn_core::{BallotError, CastVoteError, CreateBallotError, OwnerActionError, VoteChoice};
use oponn_testkit::{TestClock, TestOponn, block_on};
use time::Duration;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{request, voter};

fn option(n: u32) -> VoteChoice {
    VoteChoice::Option(OptionId::new(n))
}

#[test]
fn invalid_ballots_are_refused_with_a_message_per_field() {
    block_on(async {
        let oponn = TestOponn::new();
        let mut bad = request(&["pizza"]);
        bad.measure = "no".to_owned();
        let error = oponn.service().create_ballot(&bad, None).await.unwrap_err();
        let CreateBallotError::Invalid(errors) = error else {
            panic!("expected validation errors, got {error:?}");
        };
        assert_eq!(
            errors.get(Field::Measure),
            Some(messages::MEASURE_TOO_SHORT)
        );
        assert_eq!(errors.get(Field::Options), Some(messages::TOO_FEW_OPTIONS));
    });
}

#[test]
fn a_scheduled_ballot_opens_when_the_clock_reaches_its_start() {
    block_on(async {
        let oponn = TestOponn::new();
        let start = oponn.service().now() + Duration::minutes(5);
        let mut scheduled = request(&["aye", "nay"]);
        scheduled.start = StartRequest::Scheduled(start.format(&Rfc3339).unwrap());
        let ballot = oponn.create(scheduled).await;
        assert_eq!(
            ballot.status_at(oponn.service().now()).label(),
            "starts in 5 minutes"
        );
        let early = oponn
            .service()
            .cast_vote(&ballot.id(), &voter("ada"), option(1))
            .await
            .unwrap_err();
        assert!(matches!(early, CastVoteError::NotOpenYet));
        assert_eq!(early.user_message().as_deref(), Some(messages::NOT_STARTED));
        oponn.clock().advance(Duration::minutes(5));
        oponn
            .service()
            .cast_vote(&ballot.id(), &voter("ada"), option(1))
            .await
            .unwrap();
    });
}

#[test]
fn votes_after_the_window_are_refused() {
    block_on(async {
        let oponn = TestOponn::new();
        let mut windowed = request(&["aye", "nay"]);
        windowed.window = 10.into();
        let ballot = oponn.create(windowed).await;
        oponn.clock().advance(Duration::minutes(10));
        let error = oponn
            .service()
            .cast_vote(&ballot.id(), &voter("ada"), option(1))
            .await
            .unwrap_err();
        assert!(matches!(error, CastVoteError::Ended));
        assert_eq!(error.user_message().as_deref(), Some(messages::ENDED));
        assert_eq!(
            ballot.status_at(oponn.service().now()).label(),
            "voting closed"
        );
    });
}

#[test]
fn only_the_owner_closes_a_ballot_early() {
    block_on(async {
        let oponn = TestOponn::new();
        let owner = OwnerId::new("owner");
        let ballot = oponn
            .service()
            .create_ballot(&request(&["aye", "nay"]), Some(owner.clone()))
            .await
            .unwrap();
        let refused = oponn
            .service()
            .close_ballot(&ballot.id(), &OwnerId::new("mallory"))
            .await
            .unwrap_err();
        assert!(matches!(refused, OwnerActionError::Forbidden));
        let closed = oponn
            .service()
            .close_ballot(&ballot.id(), &owner)
            .await
            .unwrap();
        assert_eq!(closed.status_at(oponn.service().now()).as_str(), "ended");
        let error = oponn
            .service()
            .cast_vote(&ballot.id(), &voter("ada"), option(1))
            .await
            .unwrap_err();
        assert!(matches!(error, CastVoteError::Ended));
    });
}

#[test]
fn votes_for_options_the_ballot_lacks_are_refused() {
    block_on(async {
        let oponn = TestOponn::new();
        let ballot = oponn.create_ballot("lunch?", &["pizza", "pasta"]).await;
        for choice in [option(0), option(3)] {
            let error = oponn
                .service()
                .cast_vote(&ballot.id(), &voter("ada"), choice)
                .await
                .unwrap_err();
            assert_eq!(
                error.user_message().as_deref(),
                Some(messages::INVALID_OPTION)
            );
        }
        assert_eq!(
            oponn.service().tally(&ballot.id()).await.unwrap().total(),
            0
        );
    });
}

#[test]
fn write_ins_follow_the_ballot_and_their_own_rules() {
    block_on(async {
        let oponn = TestOponn::new();
        let closed = oponn.create_ballot("lunch?", &["pizza", "pasta"]).await;
        let refused = oponn
            .service()
            .cast_vote(
                &closed.id(),
                &voter("ada"),
                VoteChoice::WriteIn("sushi".into()),
            )
            .await
            .unwrap_err();
        assert_eq!(
            refused.user_message().as_deref(),
            Some(messages::WRITE_INS_NOT_ALLOWED)
        );

        let mut open = request(&["Pizza"]);
        open.allow_write_in = true;
        let ballot = oponn.create(open).await;
        let vote = |name: &'static str, text: &str| {
            let choice = VoteChoice::WriteIn(text.to_owned());
            let service = std::sync::Arc::clone(oponn.service());
            let id = ballot.id();
            async move { service.cast_vote(&id, &voter(name), choice).await }
        };
        let empty = vote("a", "   ").await.unwrap_err();
        assert_eq!(
            empty.user_message().as_deref(),
            Some(messages::WRITE_IN_REQUIRED)
        );
        let long = vote("a", &"x".repeat(65)).await.unwrap_err();
        assert_eq!(
            long.user_message().as_deref(),
            Some(messages::WRITE_IN_TOO_LONG)
        );
        // Equal to the predefined option ignoring case: counts toward it.
        assert_eq!(
            vote("a", " PIZZA ").await.unwrap().option_id(),
            OptionId::new(1)
        );
        let sushi = vote("b", "sushi   bar").await.unwrap();
        assert_eq!(sushi.option_id(), OptionId::new(2));
        assert_eq!(
            vote("c", "Sushi Bar").await.unwrap().option_id(),
            OptionId::new(2)
        );
        let reread = oponn.service().ballot(&ballot.id()).await.unwrap();
        assert_eq!(reread.options()[1].label(), "sushi bar");
        assert_eq!(sushi.tally.seq(), 2);
    });
}

#[test]
fn unknown_ballots_are_not_found_everywhere() {
    block_on(async {
        let oponn = TestOponn::new();
        let id = BallotId::generate();
        let service = oponn.service();
        assert!(matches!(
            service.ballot(&id).await,
            Err(BallotError::NotFound)
        ));
        assert!(matches!(
            service.tally(&id).await,
            Err(BallotError::NotFound)
        ));
        assert!(matches!(
            service.subscribe(&id).await,
            Err(BallotError::NotFound)
        ));
        assert!(matches!(
            service.cast_vote(&id, &voter("ada"), option(1)).await,
            Err(CastVoteError::NotFound)
        ));
    });
}

#[test]
fn a_subscription_starts_with_the_current_tally_then_follows_votes() {
    block_on(async {
        let oponn = TestOponn::new();
        let ballot = oponn.create_ballot("lunch?", &["pizza", "pasta"]).await;
        let service = oponn.service();
        service
            .cast_vote(&ballot.id(), &voter("a"), option(1))
            .await
            .unwrap();
        let mut tallies = service.subscribe(&ballot.id()).await.unwrap();
        assert_eq!(tallies.next().await.unwrap().seq(), 1);
        service
            .cast_vote(&ballot.id(), &voter("b"), option(2))
            .await
            .unwrap();
        let next = tallies.next().await.unwrap();
        assert_eq!((next.seq(), next.count(OptionId::new(2))), (2, 1));
    });
}

#[test]
fn storage_holds_no_plaintext() {
    block_on(async {
        let oponn = TestOponn::new();
        let mut secret = request(&["Alpha Choice", "Bravo Choice"]);
        secret.measure = "Top Secret Measure".to_owned();
        secret.allow_write_in = true;
        let ballot = oponn.create(secret).await;
        oponn
            .service()
            .cast_vote(
                &ballot.id(),
                &voter("a"),
                VoteChoice::WriteIn("Charlie Write".into()),
            )
            .await
            .unwrap();
        let record = oponn
            .ports()
            .repository
            .ballot(&ballot.id())
            .await
            .unwrap()
            .unwrap();
        let mut stored: Vec<&[u8]> = vec![record.measure.as_bytes(), record.wrapped_key.as_bytes()];
        stored.extend(record.options.iter().map(|o| o.label.as_bytes()));
        for plaintext in ["Top Secret", "Alpha", "Bravo", "Charlie"] {
            for bytes in &stored {
                assert!(
                    !bytes
                        .windows(plaintext.len())
                        .any(|w| w == plaintext.as_bytes()),
                    "{plaintext} stored in the clear"
                );
            }
        }
    });
}

#[test]
fn deleting_a_ballot_removes_it_and_only_its_owner_may() {
    block_on(async {
        let oponn = TestOponn::new();
        let owner = OwnerId::new("owner");
        let ballot = oponn
            .service()
            .create_ballot(&request(&["aye", "nay"]), Some(owner.clone()))
            .await
            .unwrap();
        let refused = oponn
            .service()
            .delete_ballot(&ballot.id(), &OwnerId::new("mallory"))
            .await
            .unwrap_err();
        assert!(matches!(refused, OwnerActionError::Forbidden));
        oponn
            .service()
            .delete_ballot(&ballot.id(), &owner)
            .await
            .unwrap();
        assert!(matches!(
            oponn.service().ballot(&ballot.id()).await,
            Err(BallotError::NotFound)
        ));
        let owned = oponn
            .service()
            .ballots_owned_by(&owner, Page::numbered(1, 10).unwrap())
            .await
            .unwrap();
        assert!(owned.is_empty());
    });
}

#[test]
fn cached_data_keys_expire_and_are_pruned() {
    block_on(async {
        let oponn = TestOponn::new();
        let ballot = oponn.create_ballot("lunch?", &["pizza", "pasta"]).await;
        assert_eq!(oponn.service().prune_idle().keys, 0);
        oponn.clock().advance(Duration::minutes(16));
        assert_eq!(oponn.service().prune_idle().keys, 1);
        // The key is unwrapped again on demand.
        assert_eq!(
            oponn
                .service()
                .ballot(&ballot.id())
                .await
                .unwrap()
                .measure(),
            "lunch?"
        );
    });
}

#[test]
fn a_close_on_another_instance_holds_against_its_cached_ballot() {
    block_on(async {
        let storage: Arc<dyn BallotRepository> = Arc::new(MemoryRepository::new());
        let first = TestOponn::with_repository(Arc::clone(&storage));
        let second = TestOponn::with_repository(storage);
        let owner = OwnerId::new("owner");
        let ballot = first
            .service()
            .create_ballot(&request(&["aye", "nay"]), Some(owner.clone()))
            .await
            .unwrap();
        let id = ballot.id();
        let aye = || VoteChoice::Option(OptionId::new(1));
        // The second instance votes, so it holds the ballot in its cache.
        second
            .service()
            .cast_vote(&id, &voter("early"), aye())
            .await
            .unwrap();
        first.service().close_ballot(&id, &owner).await.unwrap();
        let late = second
            .service()
            .cast_vote(&id, &voter("late"), aye())
            .await
            .unwrap_err();
        assert!(matches!(late, CastVoteError::Ended), "{late:?}");
        assert_eq!(second.service().tally(&id).await.unwrap().total(), 1);
    });
}

#[test]
fn a_write_in_from_another_instance_shows_despite_the_cached_ballot() {
    block_on(async {
        let first = TestOponn::new();
        let second = TestOponn::with_ports(first.ports().clone(), Arc::new(TestClock::default()));
        let mut lunch = request(&["pizza", "pasta"]);
        lunch.allow_write_in = true;
        let id = first
            .service()
            .create_ballot(&lunch, None)
            .await
            .unwrap()
            .id();
        // The second instance caches the ballot as it was.
        assert_eq!(
            second.service().ballot(&id).await.unwrap().options().len(),
            2
        );
        first
            .service()
            .cast_vote(&id, &voter("v"), VoteChoice::WriteIn("Sushi".to_owned()))
            .await
            .unwrap();
        let tally = second.service().tally(&id).await.unwrap();
        let ballot = second
            .service()
            .ballot_for_tally(&id, &tally)
            .await
            .unwrap();
        let labels: Vec<&str> = ballot.options().iter().map(|o| o.label()).collect();
        assert_eq!(labels, ["pizza", "pasta", "Sushi"]);
        let (_, results) = second.service().results(&id).await.unwrap();
        assert_eq!(results.total, 1);
    });
}

#[test]
fn closing_or_deleting_announces_the_last_tally_under_the_next_number() {
    block_on(async {
        let oponn = TestOponn::new();
        let owner = OwnerId::new("owner");
        let service = oponn.service();
        for delete in [false, true] {
            let ballot = service
                .create_ballot(&request(&["aye", "nay"]), Some(owner.clone()))
                .await
                .unwrap();
            let id = ballot.id();
            service
                .cast_vote(&id, &voter("a"), option(2))
                .await
                .unwrap();
            let mut tallies = service.subscribe(&id).await.unwrap();
            assert_eq!(tallies.next().await.unwrap().seq(), 1);
            if delete {
                service.delete_ballot(&id, &owner).await.unwrap();
            } else {
                service.close_ballot(&id, &owner).await.unwrap();
            }
            // Every instance's watchers hear of it, though no vote changed.
            let announced = tallies.next().await.unwrap();
            assert_eq!(announced.seq(), 2);
            assert_eq!(announced.count(OptionId::new(2)), 1);
            assert_eq!(announced.total(), 1);
        }
    });
}
