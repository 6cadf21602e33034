//! Contract suites: what every implementation of a port must do.
//!
//! Each suite is a module of `async fn case(port)` functions and a macro
//! that expands to one `#[test]` per case, given an `async fn` that builds
//! a fresh port:
//!
//! ```text
//! async fn repository() -> Arc<dyn BallotRepository> { /* … */ }
//! oponn_testkit::ballot_repository_contract!(repository);
//! ```
//!
//! Cases use fresh random ballot ids, so a suite may share one database
//! with other tests.

// Contract cases fail by panicking, like any test.
#![allow(clippy::unwrap_used)]

pub mod accounts;
pub mod broadcaster;
pub mod clock;
pub mod key_wrapper;
pub mod lock;
pub mod repository;

/// How long a case waits for something that must happen before calling it
/// a failure. Generous, because it bounds a failure, not a success.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Awaits `future`, failing the case when it does not finish by [`DEADLINE`].
///
/// # Panics
/// When the deadline passes: the behaviour under test did not happen.
pub async fn within_deadline<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not happen within {DEADLINE:?}"),
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($suite:ident, $make:path, [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                $crate::block_on(async {
                    let port = $make().await;
                    $crate::contract::$suite::$case(port).await;
                });
            }
        )*
    };
}

/// One `#[test]` per [`repository`] case, each on a port from `$make`.
#[macro_export]
macro_rules! ballot_repository_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            repository,
            $make,
            [
                inserted_ballot_reads_back_unchanged,
                duplicate_id_conflicts,
                missing_ballot_reads_as_none,
                new_ballot_has_an_empty_tally,
                votes_count_and_advance_the_sequence,
                second_vote_by_a_voter_is_refused_and_not_counted,
                vote_for_an_unknown_option_is_refused,
                vote_on_a_missing_ballot_is_refused,
                vote_on_a_closed_ballot_is_refused,
                write_in_adds_an_option,
                write_in_equal_to_an_option_merges_into_it,
                write_in_with_a_taken_id_is_refused,
                concurrent_voters_are_all_counted,
                concurrent_attempts_by_one_voter_count_once,
                concurrent_equal_write_ins_make_one_option,
                ballots_are_listed_by_owner_newest_first,
                closing_keeps_the_earliest_close,
                deleting_removes_the_ballot_and_its_votes,
                a_changed_vote_moves_between_options,
                a_voters_choice_reads_back,
                concurrent_changes_keep_the_tally_exact,
                a_batch_records_each_vote_as_if_alone,
                a_batch_matches_its_votes_one_by_one,
                a_refused_batch_writes_nothing,
                a_large_batch_counts_every_vote,
                a_batch_across_ballots_records_each_vote,
                every_identity_a_voter_presents_is_one_voter,
                a_change_by_any_identity_moves_the_one_vote,
                a_batch_of_identities_matches_its_votes_one_by_one,
            ]
        );
    };
}

/// One `#[test]` per [`accounts`] case, each on a port from `$make`.
#[macro_export]
macro_rules! account_repository_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            accounts,
            $make,
            [
                a_first_sign_in_creates_an_account,
                signing_in_again_finds_the_same_account,
                one_email_through_two_providers_is_one_account,
                racing_first_sign_ins_make_one_account,
                unknown_accounts_read_as_none,
                a_session_names_its_account_until_it_expires,
                a_revoked_session_names_no_one,
                pruning_deletes_only_expired_sessions,
            ]
        );
    };
}

/// One `#[test]` per [`lock`] case, each on a port from `$make`.
#[macro_export]
macro_rules! vote_lock_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            lock,
            $make,
            [
                released_lock_can_be_taken_again,
                holders_of_one_ballot_exclude_each_other,
                ballots_lock_independently,
                dropped_guard_frees_the_lock,
                pruning_spares_held_locks,
            ]
        );
    };
}

/// One `#[test]` per [`broadcaster`] case, each on a port from `$make`.
#[macro_export]
macro_rules! broadcaster_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            broadcaster,
            $make,
            [
                subscriber_receives_a_later_tally,
                every_subscriber_receives_it,
                subscribers_see_only_their_ballot,
                a_burst_ends_with_the_latest_tally,
                pruning_spares_watched_ballots,
            ]
        );
    };
}

/// One `#[test]` per [`key_wrapper`] case, each on a port from `$make`.
#[macro_export]
macro_rules! key_wrapper_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            key_wrapper,
            $make,
            [
                wrapped_key_unwraps_to_the_same_key,
                wrapped_key_is_not_the_key,
                key_wrapped_for_one_ballot_does_not_unwrap_for_another,
                altered_wrapped_key_is_rejected,
                garbage_is_rejected,
            ]
        );
    };
}

/// One `#[test]` per [`clock`] case, each on a port from `$make`.
#[macro_export]
macro_rules! clock_contract {
    ($make:path) => {
        $crate::__contract_tests!(clock, $make, [time_is_utc_and_never_goes_backwards]);
    };
}

/// One `#[test]` per [`stories`](crate::stories) scenario, each on the
/// whole service over a repository from `$make` (other ports in memory).
#[macro_export]
macro_rules! service_stories {
    ($make:path) => {
        $crate::__story_tests!(
            $make,
            [
                concurrent_distinct_voters_are_counted_exactly,
                one_voter_racing_itself_votes_once,
                racing_equal_write_ins_make_one_option,
                a_browser_and_its_account_vote_once,
                write_ins_stop_at_the_limit,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __story_tests {
    ($make:path, [$($story:ident),* $(,)?]) => {
        $(
            #[test]
            fn $story() {
                $crate::block_on(async {
                    let oponn = $crate::TestOponn::with_repository($make().await);
                    $crate::stories::$story(::std::sync::Arc::clone(oponn.service())).await;
                });
            }
        )*
    };
}
