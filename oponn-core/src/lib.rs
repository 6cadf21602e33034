//! The core of Oponn, a real-time voting service: its domain, its rules and
//! the ports through which it does I/O.
//!
//! This crate is pure. It runs no runtime and opens no socket, file or
//! database: storage, locking, fan-out, key management and time all sit
//! behind the traits in [`ports`], implemented in `oponn-adapters` (or by
//! you). [`BallotService`] ties them together and owns every rule, so the
//! HTML pages, the JSON API and embedding services cannot disagree.
//!
//! ```text
//! BallotRequest ──BallotDraft::parse──▶ BallotService::create_ballot ──▶ Ballot
//! VoteChoice ──BallotService::cast_vote (lock · check · record · publish)──▶ VoteReceipt
//! BallotService::subscribe ──▶ Tally, Tally, … (current first, then each change)
//! ```
//!
//! # Layout
//!
//! - [`domain`]: ballots, options, write-ins, schedules, statuses, tallies,
//!   validation messages and ids. Validating constructors; no I/O.
//! - [`crypto`]: per-ballot data keys, sealing with XChaCha20-Poly1305
//!   bound to ballot and field, label keys, the bounded key cache.
//! - [`ports`]: `BallotRepository`, `VoteLock`, `Broadcaster`,
//!   `KeyWrapper`, `Clock`, each with the errors an implementation must return.
//! - [`recording`]: the one decision every repository executes when it
//!   records a batch of votes (who voted, changes, write-ins, closes).
//! - [`service`]: [`BallotService`] and one error enum per operation.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod domain;
pub mod ports;
pub mod recording;
pub mod service;

pub use service::{
    AccountService, BallotError, BallotService, BulletinAccess, CastVoteError, CreateBallotError,
    DEFAULT_MAX_WRITE_IN_OPTIONS, Dependency, HiddenUntil, InvitationError, OpenInvitationError,
    OpenedInvitation, OwnerActionError, Ports, PruneReport, PublishedBulletin, ResultsAccess,
    SESSION_LENGTH, ServiceSettings, SignInError, SignedIn, Unavailable, VoteChoice, VoteReceipt,
};
