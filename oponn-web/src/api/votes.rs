//! `/ballots/{id}/votes` and the results: the current tally, the live
//! tally stream and the export. Every tally goes out only to a viewer the
//! core's [`results_for`](oponn_core::BallotService::results_for) lets see it.

use std::sync::Arc;

use futures_util::StreamExt as _;
use oponn_core::domain::{Ballot, BallotId, Results};
use oponn_core::{ResultsAccess, VoteChoice};
use poem::http::HeaderMap;
use poem::web::Data;
use poem::web::cookie::CookieJar;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use super::bodies::{ExportBody, ExportFormat, TallyEvents, VoteAccepted, VoteBody};
use super::error::{ApiError, Problem};
use super::schema::{BallotIdParam, Documented, VoteRules};
use crate::export::{attachment, ballots_document, export_csv_text, export_document};
use crate::guard::ClientAddr;

use crate::live::{KEEP_ALIVE, Unwatched, live_updates};
use crate::logging::Causes;
use crate::metrics::SseClientGuard;
use crate::rates::Rate;
use crate::state::AppState;
use crate::wire::TallyBody;

/// The vote and results operations.
pub(crate) struct VotesApi;

/// A vote was recorded.
#[derive(ApiResponse)]
enum VoteRecorded {
    /// The vote is recorded and durable.
    #[oai(status = 201)]
    Accepted(Json<VoteAccepted>),
}

/// The current tally.
#[derive(ApiResponse)]
enum TallyReply {
    /// The current tally.
    #[oai(status = 200)]
    Ok(Json<TallyBody>),
}

/// The live tally.
#[derive(ApiResponse)]
enum TallyStreamReply {
    /// Server-sent events named `tally`, each a JSON tally whose `seq` is
    /// the event id: the current tally at once, then one per change.
    #[oai(status = 200)]
    Ok(TallyEvents),
}

/// A cast-vote record.
#[derive(ApiResponse)]
enum BallotsReply {
    /// The ballot's id, method, sequence and options, and `ballots`: one
    /// `{"option_ids", "labels"}` per counted vote.
    #[oai(status = 200)]
    Ok(Json<serde_json::Value>),
}

/// A results export.
#[derive(ApiResponse)]
enum ExportReply {
    /// The results: as JSON (the default), ballot metadata, then option,
    /// count and percentage; as CSV (`format=csv`), `option,count,percentage`.
    #[oai(status = 200)]
    Ok(ExportBody),
}

/// What the viewer may see of the results of the ballot `id` names: the
/// voting link an `Authorization: Bearer` header names, else the cookies'
/// voter. An unknown ballot is a `404` before the viewer is identified, so
/// it gets no voter cookie.
async fn results_access(
    state: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    client: &ClientAddr,
    id: &str,
) -> Result<ResultsAccess, ApiError> {
    let id = super::ballot_id(id)?;
    let read = |error| ApiError::from_read("reading results", id, error);
    state.service.ballot(&id).await.map_err(read)?;
    let voter = super::api_voter(state, jar, headers, client.0, &id, false).await?;
    state
        .service
        .results_for(&id, Some(&voter))
        .await
        .map_err(read)
}

/// The ballot `id` names and its results, if the cookie's viewer may see
/// them now; else `403` saying when they will show.
async fn visible(
    state: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    client: &ClientAddr,
    id: &str,
) -> Result<(Ballot, Results), ApiError> {
    match results_access(state, jar, headers, client, id).await? {
        ResultsAccess::Shown { ballot, results } => Ok((ballot, results)),
        ResultsAccess::Hidden { message, .. } => Err(ApiError::Forbidden(Problem::new(message))),
    }
}

#[OpenApi]
impl VotesApi {
    /// Cast a vote.
    ///
    /// One vote per voter. The voter is identified by the signed
    /// `oponn_voter` cookie, the same one the pages use: a client without
    /// it gets one in this response's `Set-Cookie` and must send it back
    /// (keep a cookie jar). A browser that voted on the page is therefore
    /// the same voter here and cannot vote again through the API.
    /// The vote is acknowledged only once durable, with its receipt.
    ///
    /// On an invite-only ballot, vote with a voting link's token as
    /// `Authorization: Bearer {token}` (the part of the link after `/i/`):
    /// one vote per link, whoever sends it. A token that is not a live
    /// link of this ballot is refused with `403`; too many such tokens
    /// from one client are refused with `429` for a while.
    #[oai(path = "/ballots/:id/votes", method = "post", tag = "ApiTags::Votes")]
    async fn cast_vote(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
        client: Data<&ClientAddr>,
        headers: &HeaderMap,
        body: Json<Documented<VoteBody, VoteRules>>,
    ) -> Result<VoteRecorded, ApiError> {
        let id = super::ballot_id(&id)?;
        let choice = body
            .0
            .into_inner()
            .choice()
            .map_err(|message| ApiError::invalid("option_id", message))?;
        let choice_field = match choice {
            VoteChoice::Option(_) | VoteChoice::WriteIn(_) => "option_id",
            VoteChoice::Options { .. } => "option_ids",
            VoteChoice::Ranking(_) => "ranking",
        };
        if choice.has_write_in()
            && let Err(wait) = state.rates.check(Rate::WriteIns, client.0.0)
        {
            return Err(ApiError::TooManyRequests(
                Problem::new(Rate::WriteIns.message()),
                wait.as_secs().saturating_add(1),
            ));
        }
        state
            .service
            .ballot(&id)
            .await
            .map_err(|error| ApiError::from_read("reading a ballot", id, error))?;
        let voter = super::api_voter(&state, jar, headers, client.0.0, &id, true).await?;
        let receipt = match state.cast_vote(id, voter.clone(), choice).await {
            Ok(receipt) => receipt,
            Err(error) => {
                state.metrics.count_vote_refusal(&error);
                return Err(ApiError::from_vote(id, choice_field, error));
            }
        };
        state.metrics.votes_cast.inc();
        // The vote is durable; the tally comes back only to a voter the
        // ballot's results visibility allows (and not at all if the ballot
        // cannot be read now).
        let tally = match state.service.receipt_results(&id, &voter, &receipt).await {
            Ok(ResultsAccess::Shown { ballot, results }) => Some(TallyBody::new(&ballot, &results)),
            Ok(ResultsAccess::Hidden { .. }) => None,
            Err(error) => {
                tracing::warn!(error = %Causes(&error), ballot = %id, "reading the results after a vote failed");
                None
            }
        };
        Ok(VoteRecorded::Accepted(Json(VoteAccepted {
            option_id: receipt.option_id().get(),
            option_ids: receipt.choice.iter().map(|option| option.get()).collect(),
            changed_from: receipt
                .changed_from
                .as_ref()
                .and_then(|choice| choice.first())
                .map(|option| option.get()),
            tally,
            receipt: receipt.receipt.to_string(),
            receipt_url: format!("/ballots/{id}/receipts/{}", receipt.receipt),
            receipt_api_url: format!("/api/v1/ballots/{id}/receipts/{}", receipt.receipt),
        })))
    }

    /// Export a ballot's results as JSON or CSV (`?format=csv`), for whoever
    /// may see them.
    #[oai(path = "/ballots/:id/results", method = "get", tag = "ApiTags::Votes")]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        headers: &HeaderMap,
        client: Data<&ClientAddr>,
        id: Path<BallotIdParam>,
        #[oai(default)] format: Query<ExportFormat>,
    ) -> Result<ExportReply, ApiError> {
        let (ballot, results) = visible(&state, jar, headers, &client, &id).await?;
        let body = match format.0 {
            ExportFormat::Json => {
                ExportBody::Json(export_document(&ballot, &results, state.service.now()))
            }
            ExportFormat::Csv => {
                let text = export_csv_text(&results).map_err(|error| {
                    ApiError::unavailable("writing CSV", Some(ballot.id()), &error)
                })?;
                ExportBody::Csv(text, attachment(&ballot, "csv"))
            }
        };
        Ok(ExportReply::Ok(body))
    }

    /// Read a ballot's cast-vote record: one entry per counted vote, the
    /// options chosen in order (rank order for a ranking), by id and label,
    /// in an order that says nothing about who voted or when; for whoever
    /// may see the results, so anyone can recount.
    #[oai(path = "/ballots/:id/ballots", method = "get", tag = "ApiTags::Votes")]
    async fn ballots(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        headers: &HeaderMap,
        client: Data<&ClientAddr>,
        id: Path<BallotIdParam>,
    ) -> Result<BallotsReply, ApiError> {
        let (ballot, results) = visible(&state, jar, headers, &client, &id).await?;
        Ok(BallotsReply::Ok(Json(ballots_document(&ballot, &results))))
    }

    /// Read a ballot's current tally.
    ///
    /// Subject to the ballot's results visibility: `403` while hidden from
    /// this viewer (identified by cookie, as for votes).
    #[oai(path = "/ballots/:id/tally", method = "get", tag = "ApiTags::Votes")]
    async fn tally(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        headers: &HeaderMap,
        client: Data<&ClientAddr>,
        id: Path<BallotIdParam>,
    ) -> Result<TallyReply, ApiError> {
        let (ballot, results) = visible(&state, jar, headers, &client, &id).await?;
        Ok(TallyReply::Ok(Json(TallyBody::new(&ballot, &results))))
    }

    /// Follow a ballot's tally live.
    ///
    /// Server-sent events: the current tally at once, then one per change
    /// (a burst may be coalesced into its latest tally). Each event's id is
    /// the tally's `seq`; reconnect with `Last-Event-ID` to resume without
    /// receiving a tally you already have.
    #[oai(
        path = "/ballots/:id/tally/stream",
        method = "get",
        tag = "ApiTags::Votes"
    )]
    async fn tally_stream(
        &self,
        state: Data<&Arc<AppState>>,
        id: Path<BallotIdParam>,
        jar: &CookieJar,
        headers: &HeaderMap,
        client: Data<&ClientAddr>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
    ) -> Result<TallyStreamReply, ApiError> {
        let access = results_access(&state, jar, headers, &client, &id).await?;
        let id: BallotId = access.ballot().id();
        let feed = state
            .hub
            .watch(&access)
            .await
            .map_err(|refused| match refused {
                Unwatched::Hidden(message) => ApiError::Forbidden(Problem::new(message)),
                Unwatched::Failed(error) => ApiError::from_read("opening a live feed", id, error),
            })?;
        let resume_after = last_event_id
            .0
            .as_deref()
            .and_then(|id| id.trim().parse().ok());
        let guard = SseClientGuard::new(&state.metrics.sse_clients);
        let updates = live_updates(feed, resume_after, state.shutdown.clone())
            .filter_map(move |update| {
                let _connected = &guard;
                // A deleted ballot's last update has no tally: the stream
                // then ends.
                std::future::ready(update.body.clone())
            })
            .boxed();
        Ok(TallyStreamReply::Ok(TallyEvents(
            EventStream::new(updates)
                .keep_alive(KEEP_ALIVE)
                .to_event(|tally| {
                    let data = serde_json::to_string(&poem_openapi::types::ToJSON::to_json(&tally))
                        .unwrap_or_default();
                    poem::web::sse::Event::message(data)
                        .event_type("tally")
                        .id(tally.seq.to_string())
                }),
        )))
    }
}
