//! Ballot settings, enforced by the service: who may vote, vote changes,
//! and when results may be seen.

use std::sync::Arc;

use oponn_core::domain::{
    AccountId, Ballot, BallotSettings, Eligibility, OptionId, OwnerId, ResultsVisibility, VoterId,
    messages,
};
use oponn_core::{BallotService, CastVoteError, HiddenUntil, ResultsAccess, VoteChoice};
use oponn_testkit::{TestOponn, block_on};

use crate::helpers::{request, voter};

fn option(n: u32) -> VoteChoice {
    VoteChoice::Option(OptionId::new(n))
}

/// Whether `viewer` may see `ballot`'s results now, as every channel asks.
async fn sees(service: &BallotService, ballot: &Ballot, viewer: Option<&VoterId>) -> bool {
    service
        .results_for(&ballot.id(), viewer)
        .await
        .unwrap()
        .results()
        .is_some()
}

async fn ballot_with(oponn: &TestOponn, settings: BallotSettings) -> Ballot {
    let mut with_settings = request(&["north", "south"]);
    with_settings.settings = settings;
    oponn
        .service()
        .create_ballot(&with_settings, Some(OwnerId::new("owner")))
        .await
        .unwrap()
}

#[test]
fn signed_in_only_ballots_refuse_guests_and_count_one_vote_per_account() {
    block_on(async {
        let oponn = TestOponn::new();
        let ballot = ballot_with(
            &oponn,
            BallotSettings {
                eligibility: Eligibility::SignedInOnly,
                ..BallotSettings::default()
            },
        )
        .await;
        let refused = oponn
            .service()
            .cast_vote(&ballot.id(), &voter("guest"), option(1))
            .await
            .unwrap_err();
        assert!(matches!(refused, CastVoteError::SignInRequired));
        assert_eq!(
            refused.user_message().as_deref(),
            Some(messages::SIGN_IN_REQUIRED)
        );
        let account = VoterId::account(&AccountId::new("ada"));
        oponn
            .service()
            .cast_vote(&ballot.id(), &account, option(1))
            .await
            .unwrap();
        let again = oponn
            .service()
            .cast_vote(&ballot.id(), &account, option(2))
            .await
            .unwrap_err();
        assert!(matches!(again, CastVoteError::AlreadyVoted));
    });
}

#[test]
fn a_vote_moves_only_where_the_ballot_allows_it() {
    block_on(async {
        let oponn = TestOponn::new();
        let fixed = ballot_with(&oponn, BallotSettings::default()).await;
        let ada = voter("ada");
        oponn
            .service()
            .cast_vote(&fixed.id(), &ada, option(1))
            .await
            .unwrap();
        assert!(matches!(
            oponn
                .service()
                .cast_vote(&fixed.id(), &ada, option(2))
                .await,
            Err(CastVoteError::AlreadyVoted)
        ));

        let changeable = ballot_with(
            &oponn,
            BallotSettings {
                allow_vote_change: true,
                ..BallotSettings::default()
            },
        )
        .await;
        oponn
            .service()
            .cast_vote(&changeable.id(), &ada, option(1))
            .await
            .unwrap();
        let moved = oponn
            .service()
            .cast_vote(&changeable.id(), &ada, option(2))
            .await
            .unwrap();
        assert_eq!(moved.changed_from, Some(vec![OptionId::new(1)]));
        assert_eq!(
            (
                moved.tally.count(OptionId::new(1)),
                moved.tally.count(OptionId::new(2))
            ),
            (0, 1)
        );
        assert_eq!(
            oponn
                .service()
                .vote_of(&changeable.id(), &ada)
                .await
                .unwrap(),
            Some(vec![OptionId::new(2)])
        );
    });
}

#[test]
fn concurrent_vote_changes_keep_the_tally_exact() {
    block_on(async {
        let oponn = TestOponn::new();
        let ballot = ballot_with(
            &oponn,
            BallotSettings {
                allow_vote_change: true,
                ..BallotSettings::default()
            },
        )
        .await;
        let tasks: Vec<_> = (0..25)
            .map(|n| {
                let service = Arc::clone(oponn.service());
                let id = ballot.id();
                tokio::spawn(async move {
                    let who = voter(&format!("voter {n}"));
                    let mut last = OptionId::new(1);
                    for round in 0..6u32 {
                        last = OptionId::new(1 + (round + n) % 2);
                        let receipt = service
                            .cast_vote(&id, &who, VoteChoice::Option(last))
                            .await
                            .unwrap();
                        assert!(receipt.tally.total() <= 25);
                    }
                    last
                })
            })
            .collect();
        let mut expected = [0u64; 2];
        for task in tasks {
            expected[(task.await.unwrap().get() - 1) as usize] += 1;
        }
        let tally = oponn.service().tally(&ballot.id()).await.unwrap();
        assert_eq!(tally.total(), 25);
        assert_eq!(
            [tally.count(OptionId::new(1)), tally.count(OptionId::new(2))],
            expected
        );
    });
}

#[test]
fn results_visibility_follows_votes_and_the_close() {
    block_on(async {
        let oponn = TestOponn::new();
        let service = oponn.service();
        let (ada, bob) = (voter("ada"), voter("bob"));
        let after_voting = ballot_with(
            &oponn,
            BallotSettings {
                results_visibility: ResultsVisibility::AfterVoting,
                ..BallotSettings::default()
            },
        )
        .await;
        assert!(!sees(service, &after_voting, Some(&ada)).await);
        assert!(!sees(service, &after_voting, None).await);
        service
            .cast_vote(&after_voting.id(), &ada, option(1))
            .await
            .unwrap();
        assert!(sees(service, &after_voting, Some(&ada)).await);
        assert!(!sees(service, &after_voting, Some(&bob)).await);

        let after_close = ballot_with(
            &oponn,
            BallotSettings {
                results_visibility: ResultsVisibility::AfterClose,
                ..BallotSettings::default()
            },
        )
        .await;
        service
            .cast_vote(&after_close.id(), &ada, option(1))
            .await
            .unwrap();
        assert!(!sees(service, &after_close, Some(&ada)).await);
        let closed = service
            .close_ballot(&after_close.id(), &OwnerId::new("owner"))
            .await
            .unwrap();
        assert!(sees(service, &closed, Some(&bob)).await);
        assert!(sees(service, &closed, None).await);
    });
}

#[test]
fn results_access_says_why_results_are_hidden_and_until_when() {
    block_on(async {
        let oponn = TestOponn::new();
        let service = oponn.service();
        let ada = voter("ada");
        let after_voting = ballot_with(
            &oponn,
            BallotSettings {
                results_visibility: ResultsVisibility::AfterVoting,
                ..BallotSettings::default()
            },
        )
        .await;
        match service
            .results_for(&after_voting.id(), Some(&ada))
            .await
            .unwrap()
        {
            ResultsAccess::Hidden {
                ballot,
                reason,
                message,
            } => {
                assert_eq!(ballot.id(), after_voting.id());
                assert_eq!(reason, HiddenUntil::Voted);
                assert_eq!(message, messages::RESULTS_AFTER_VOTING);
            }
            shown => panic!("results shown before voting: {shown:?}"),
        }
        // The vote's own reply carries the tally that includes it.
        let receipt = service
            .cast_vote(&after_voting.id(), &ada, option(2))
            .await
            .unwrap();
        let access = service
            .receipt_results(&after_voting.id(), &ada, &receipt)
            .await
            .unwrap();
        let results = access.results().expect("a voter sees the results");
        assert_eq!((results.total, results.seq), (1, receipt.tally.seq()));

        let after_close = ballot_with(
            &oponn,
            BallotSettings {
                results_visibility: ResultsVisibility::AfterClose,
                ..BallotSettings::default()
            },
        )
        .await;
        let receipt = service
            .cast_vote(&after_close.id(), &ada, option(1))
            .await
            .unwrap();
        let access = service
            .receipt_results(&after_close.id(), &ada, &receipt)
            .await
            .unwrap();
        assert!(access.results().is_none());
        assert!(matches!(
            access,
            ResultsAccess::Hidden {
                reason: HiddenUntil::Closed,
                message: messages::RESULTS_AFTER_CLOSE,
                ..
            }
        ));
        assert!(matches!(
            service
                .results_for(&oponn_core::domain::BallotId::generate(), None)
                .await,
            Err(oponn_core::BallotError::NotFound)
        ));
    });
}
