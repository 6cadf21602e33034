//! Adapters for the ports of `oponn-core`: each implements one port against
//! one backend, and passes that port's contract suite from `oponn-testkit`.
//!
//! Pick them in a composition root; they never depend on each other or on
//! a web framework.
//!
//! # Layout
//!
//! - [`memory`] (feature `memory`): in-process repository, per-ballot mutex
//!   lock and watch-channel broadcaster, for tests, examples and a single
//!   process.
//! - [`local_key`] (feature `local-key`): a key wrapper whose
//!   key-encryption key lives in a local file, for development and the
//!   embedded default.
#![forbid(unsafe_code)]

#[cfg(feature = "local-key")]
pub mod local_key;
#[cfg(feature = "memory")]
pub mod memory;
