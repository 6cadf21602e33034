//! End-to-end tests: real HTTP against a server bound to port 0.

// A test fails by panicking; unwrap is how these tests say "this must work".
#![allow(clippy::unwrap_used)]

mod api;
mod binary;
mod browser;
mod create;
mod helpers;
mod live;
mod operations;
mod security;
mod vote;
