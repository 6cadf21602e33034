//! Contract suites: what every implementation of a port must do.
//!
//! Each suite is a module of `pub async fn case(port)` functions and a
//! macro that expands to one `#[test]` per case, given an `async fn` that
//! builds a fresh port. The macros are generated (build.rs) from the
//! modules: defining a case registers it; helpers are private.
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

// The suites' macros (`ballot_repository_contract!`, …, `service_stories!`),
// written by build.rs from the cases each module defines: a `pub async fn`
// in a suite's module is a case, and runs against every adapter.
include!(concat!(env!("OUT_DIR"), "/suites.rs"));

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
