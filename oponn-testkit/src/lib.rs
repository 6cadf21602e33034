//! Test support for Oponn.
//!
//! - [`TestOponn`]: a complete Oponn in memory in one line, on a
//!   [`TestClock`] a test moves by hand (past a ballot's start or end).
//! - [`contract`]: one suite per port. Every adapter runs its port's suite
//!   against the real backend; an adapter is done when it passes. The
//!   `*_contract!` macros turn a suite into one `#[test]` per case.
//! - [`stories`]: whole-service scenarios (concurrent voters, write-in
//!   races) any set of adapters can run.
//! - `services` (feature `services`): throwaway PostgreSQL, Redis and
//!   moto (KMS) servers started from installed binaries.
//!
//! ```
//! use oponn_core::VoteChoice;
//! use oponn_core::domain::{OptionId, VoterId};
//! use oponn_testkit::TestOponn;
//!
//! oponn_testkit::block_on(async {
//!     let oponn = TestOponn::new();
//!     let ballot = oponn.create_ballot("lunch?", &["pizza", "pasta"]).await;
//!     let receipt = oponn
//!         .service()
//!         .cast_vote(&ballot.id(), &VoterId::new("ada"), VoteChoice::Option(OptionId::new(1)))
//!         .await
//!         .unwrap();
//!     assert_eq!(receipt.tally.total(), 1);
//! });
//! ```
//!
//! # Layout
//!
//! - `clock.rs`: [`TestClock`].
//! - `oponn.rs`: [`TestOponn`] and [`block_on`].
//! - `contract/`: one module per port; `build.rs` writes each suite's
//!   macro from the cases its module defines.
//! - `stories.rs`: service-level scenarios.
#![forbid(unsafe_code)]

mod clock;
pub mod contract;
mod oponn;
#[cfg(feature = "services")]
pub mod services;
pub mod stories;

pub use clock::TestClock;
pub use oponn::{TestOponn, block_on};
