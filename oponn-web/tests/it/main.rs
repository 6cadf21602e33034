//! End-to-end tests: real HTTP against a server bound to port 0.

// A test fails by panicking; unwrap is how these tests say "this must work".
#![allow(clippy::unwrap_used)]

mod api;
mod auth;
mod binary;
mod browser;
mod cluster;
mod create;
mod fake_oauth;
mod fuzz;
mod hardening;
mod helpers;
mod hostile_input;
mod identity;
mod journey;
mod live;
mod methods;
mod openapi;
mod operations;
mod outage;
mod process;
mod security;
mod settings;
mod share;
mod simulate;
mod storage;
mod trust;
mod vote;
