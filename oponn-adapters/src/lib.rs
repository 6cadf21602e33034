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
//! - `sqlite` (feature `sqlite`): storage in one SQLite file (WAL), the
//!   zero-configuration default.
//! - `postgres` (feature `postgres`): storage in PostgreSQL, the source of
//!   truth for several instances.
//! - `redis` (feature `redis`): the per-ballot lock (`SET NX PX`) and
//!   pub/sub fan-out across instances.
//! - `kms` (feature `kms`): data keys wrapped by AWS KMS (or a
//!   KMS-compatible endpoint).
#![forbid(unsafe_code)]

#[cfg(feature = "kms")]
pub mod kms;
#[cfg(feature = "local-key")]
pub mod local_key;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod probe;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::SqlSetupError;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod writer;
