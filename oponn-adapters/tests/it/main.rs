//! Every adapter in this crate against its port's contract suite.

// A test fails by panicking; unwrap is how these tests say "this must work".
#![allow(clippy::unwrap_used)]

mod local_key;
mod memory;
