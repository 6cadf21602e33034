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
