//! `/ballots`: create, read, close and delete.

use std::sync::Arc;

use oponn_core::domain::{BallotRequest, BallotSettings, StartRequest};
use poem::web::Data;
use poem::web::cookie::CookieJar;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use super::bodies::{BallotBody, CreateBallotBody};
use super::error::ApiError;
use super::schema::{BallotIdParam, CreateRules, Documented};
use crate::identity::viewer;
use crate::state::AppState;

/// The ballot operations.
pub(crate) struct BallotsApi;

/// A ballot was created.
#[derive(ApiResponse)]
enum Created {
    /// The ballot was created; `Location` is its address in the API.
    #[oai(status = 201)]
    Ballot(Json<BallotBody>, #[oai(header = "Location")] String),
}

/// A ballot, read or changed.
#[derive(ApiResponse)]
enum BallotReply {
    /// The ballot as it now is.
    #[oai(status = 200)]
    Ok(Json<BallotBody>),
}

/// A ballot was deleted.
#[derive(ApiResponse)]
enum Deleted {
    /// Deleted: its key first, then its rows (SECURITY.md says what that
    /// guarantees for copies and backups).
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi]
impl BallotsApi {
    /// Create a ballot.
    ///
    /// The ballot is owned by the caller's `oponn_voter` cookie, as for the pages.
    #[oai(path = "/ballots", method = "post", tag = "ApiTags::Ballots")]
    async fn create_ballot(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        body: Json<Documented<CreateBallotBody, CreateRules>>,
    ) -> Result<Created, ApiError> {
        let body = body.0.into_inner();
        let method = body.method();
        let request = BallotRequest {
            measure: body.measure,
            options: body.options,
            allow_write_in: body.allow_write_in,
            start: body
                .scheduled_start
                .map_or(StartRequest::Now, StartRequest::Scheduled),
            window: body.window_minutes.into(),
            settings: BallotSettings {
                eligibility: body.eligibility.into(),
                allow_vote_change: body.allow_vote_change,
                results_visibility: body.results_visibility.into(),
                publish_bulletin: body.publish_bulletin,
            },
            method,
        };
        let owner = viewer(&state, jar).await.owner;
        let ballot = state
            .service
            .create_ballot(&request, Some(owner))
            .await
            .map_err(ApiError::from_create)?;
        state.metrics.ballots_created.inc();
        let location = format!("/api/v1/ballots/{}", ballot.id());
        Ok(Created::Ballot(
            Json(BallotBody::new(&ballot, state.service.now())),
            location,
        ))
    }

    /// Read a ballot.
    #[oai(path = "/ballots/:id", method = "get", tag = "ApiTags::Ballots")]
    async fn ballot(
        &self,
        state: Data<&Arc<AppState>>,
        id: Path<BallotIdParam>,
    ) -> Result<BallotReply, ApiError> {
        let id = super::ballot_id(&id)?;
        let ballot = state
            .service
            .ballot(&id)
            .await
            .map_err(|error| ApiError::from_read("reading a ballot", id, error))?;
        Ok(BallotReply::Ok(Json(BallotBody::new(
            &ballot,
            state.service.now(),
        ))))
    }

    /// Close a ballot early (its owner only: the signed-in account, or the
    /// browser that created it as a guest).
    #[oai(path = "/ballots/:id/close", method = "post", tag = "ApiTags::Ballots")]
    async fn close_ballot(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
    ) -> Result<BallotReply, ApiError> {
        let id = super::ballot_id(&id)?;
        let owner = viewer(&state, jar).await.owner;
        let ballot = state
            .service
            .close_ballot(&id, &owner)
            .await
            .map_err(|error| ApiError::from_owner_action("closing a ballot", id, error))?;
        Ok(BallotReply::Ok(Json(BallotBody::new(
            &ballot,
            state.service.now(),
        ))))
    }

    /// Delete a ballot (its owner only). Its data key is destroyed first;
    /// see SECURITY.md for what that guarantees about copies and backups.
    #[oai(path = "/ballots/:id", method = "delete", tag = "ApiTags::Ballots")]
    async fn delete_ballot(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
    ) -> Result<Deleted, ApiError> {
        let id = super::ballot_id(&id)?;
        let owner = viewer(&state, jar).await.owner;
        state
            .service
            .delete_ballot(&id, &owner)
            .await
            .map_err(|error| ApiError::from_owner_action("deleting a ballot", id, error))?;
        state.vote_pages.forget(&id);
        Ok(Deleted::Deleted)
    }
}
