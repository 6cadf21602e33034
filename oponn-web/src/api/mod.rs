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

use std::net::IpAddr;

use oponn_core::domain::{BallotId, VoterId, messages};
use poem::http::{HeaderMap, header};
use poem::web::cookie::CookieJar;
use poem_openapi::Tags;

use self::error::Problem;
use crate::identity::{LinkRefusal, open_link, viewer, voter_on};
use crate::rates::Rate;
use crate::state::AppState;

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

/// The voting-link token an `Authorization: Bearer` header carries, if
/// any: another scheme (a proxy's Basic credentials) is not a link.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Who a request speaks for on ballot `id`: the voting link its
/// `Authorization: Bearer` names (`403` for a token that is not a live
/// link of this ballot, `429` for a client that sent too many), else the
/// voter its cookies name. A link already used to vote casts no other
/// vote (`409`) when `casting`, but still reads what its voter may see.
async fn api_voter(
    state: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    client: IpAddr,
    id: &BallotId,
    casting: bool,
) -> Result<VoterId, ApiError> {
    let Some(token) = bearer_token(headers) else {
        return Ok(voter_on(state, jar, &viewer(state, jar).await, id));
    };
    match open_link(state, client, token, Some(id)).await {
        Ok(opened) if casting && opened.used => {
            Err(ApiError::Conflict(Problem::new(messages::LINK_USED)))
        }
        Ok(opened) => Ok(VoterId::invited(opened.invitation)),
        Err(LinkRefusal::NotValid) => {
            Err(ApiError::Forbidden(Problem::new(messages::LINK_NOT_VALID)))
        }
        Err(LinkRefusal::TooMany(wait)) => Err(ApiError::TooManyRequests(
            Problem::new(Rate::LinkGuesses.message()),
            wait.as_secs().saturating_add(1),
        )),
        Err(LinkRefusal::Unavailable(error)) => Err(ApiError::unavailable(
            "opening a voting link",
            Some(*id),
            &error,
        )),
    }
}

/// The ballot a path's id names; `404` for text that cannot be one.
fn ballot_id(id: &str) -> Result<BallotId, ApiError> {
    BallotId::parse(id).map_err(|_| ApiError::not_found())
}
