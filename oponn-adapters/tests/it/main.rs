//! Every adapter in this crate against its port's contract suite.

// A test fails by panicking; unwrap is how these tests say "this must work".
#![allow(clippy::unwrap_used)]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod before_receipts;
#[cfg(feature = "kms")]
mod kms;
mod local_key;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

/// `count` ballots ("ballot 0?", "ballot 1?", …) with options a and b,
/// created through `oponn`: the many ballots a test votes on at once.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn numbered_ballots(
    oponn: &oponn_testkit::TestOponn,
    count: usize,
) -> Vec<oponn_core::domain::Ballot> {
    let mut ballots = Vec::with_capacity(count);
    for n in 0..count {
        ballots.push(
            oponn
                .create_ballot(&format!("ballot {n}?"), &["a", "b"])
                .await,
        );
    }
    ballots
}
