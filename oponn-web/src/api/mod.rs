//! The JSON API under `/api/v1`, described by poem-openapi.
//!
//! A front end beside `pages`: it parses a request, calls the core, and
//! answers JSON. It imports only what sits below both front ends
//! (`state`, `identity`, `live`, `export`, `wire`, `guard`, `rates`,
//! `metrics`), never a page.
//!
//! # Layout
//!
//! - `ballots`: create, read, close, delete ([`BallotsApi`]).
//! - `votes`: casting votes, the tally, its live stream, the export
//!   ([`VotesApi`]).
//! - `trust`: voting links of invite-only ballots, receipts, the
//!   bulletin ([`TrustApi`]).
//! - `bodies`: request and response bodies. `schema`: the documented
//!   rules of bodies and parameters. `error`: [`ApiError`], the one
//!   refusal type every operation returns, and the wrapper that answers
//!   poem's own refusals as JSON problems too.

mod ballots;
mod bodies;
mod error;
mod schema;
mod trust;
mod votes;

use oponn_core::domain::BallotId;
use poem_openapi::Tags;

pub(crate) use self::ballots::BallotsApi;
pub(crate) use self::error::{ApiError, with_problem_refusals};
pub(crate) use self::trust::TrustApi;
pub(crate) use self::votes::VotesApi;

/// The whole API: every operation, by resource.
pub(crate) type Api = (BallotsApi, VotesApi, TrustApi);

/// The API, as the router mounts it.
pub(crate) fn api() -> Api {
    (BallotsApi, VotesApi, TrustApi)
}

#[derive(Tags)]
enum ApiTags {
    /// Ballots: create, read, close and delete.
    Ballots,
    /// Votes and tallies.
    Votes,
    /// Voting links of invite-only ballots, vote receipts and the public bulletin.
    Invitations,
}

/// The ballot a path's id names; `404` for text that cannot be one.
fn ballot_id(id: &str) -> Result<BallotId, ApiError> {
    BallotId::parse(id).map_err(|_| ApiError::not_found())
}
