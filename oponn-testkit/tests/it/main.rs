//! The service's rules, proven on the in-memory Oponn.

// A test fails by panicking; unwrap is how these tests say "this must work".
#![allow(clippy::unwrap_used)]

mod batching;
mod helpers;
mod properties;
mod rules;
mod sessions;
mod settings;
mod stories;
