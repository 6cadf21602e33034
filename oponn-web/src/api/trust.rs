//! Voter links of invite-only ballots (owner only), receipts and the
//! public bulletin ([`TrustApi`]).

use std::sync::Arc;

use oponn_core::domain::{BallotId, Field, InvitationId, messages};
use oponn_core::{BulletinAccess, InvitationError};
use poem::http::HeaderMap;
use poem::web::Data;
use poem::web::cookie::CookieJar;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON as _;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;
use time::OffsetDateTime;

use super::ApiTags;
use super::error::{ApiError, Problem};
use super::schema::BallotIdParam;
use crate::guard::ClientAddr;
use crate::identity::viewer;
use crate::state::AppState;
use crate::views::{bulletin_rows, invitation_link, origin};
use crate::wire::TallyBody;

/// Voter links, receipts and the bulletin.
pub(crate) struct TrustApi;

/// The voter links an owner asks for.
#[derive(Debug, Object)]
pub(crate) struct InvitationsRequest {
    /// How many links (1 to 500 at a time; a ballot has at most 10,000).
    /// May be left out when `labels` are given: one link per label.
    #[oai(nullable)]
    count: Option<u32>,
    /// A label per link (a name, "table 4"), shown only to the owner; at
    /// most 100 characters each. Leave out for unlabelled links.
    #[oai(default)]
    labels: Vec<String>,
}

/// Links just issued: the only time their tokens are shown (no `Debug`:
/// tokens stay out of logs).
#[derive(Object)]
pub(crate) struct IssuedInvitations {
    /// One entry per link, in the order asked.
    invitations: Vec<IssuedInvitationBody>,
}

/// One link just issued (no `Debug`: its token stays out of logs).
#[derive(Object)]
pub(crate) struct IssuedInvitationBody {
    /// Its number within the ballot (for revoking it).
    id: u32,
    /// The owner's label, if any.
    #[oai(nullable)]
    label: Option<String>,
    /// The voting link to send to its voter.
    link: String,
    /// The token the link carries: `Authorization: Bearer {token}` votes
    /// by it through the API.
    token: String,
}

/// A ballot's voter links as its owner sees them: never a token.
#[derive(Debug, Object)]
pub(crate) struct InvitationList {
    /// Every link, in the order issued.
    invitations: Vec<InvitationBody>,
}

/// One voter link, without its token.
#[derive(Debug, Object)]
pub(crate) struct InvitationBody {
    /// Its number within the ballot.
    id: u32,
    /// The owner's label, if any.
    #[oai(nullable)]
    label: Option<String>,
    /// Whether a vote was cast with it.
    used: bool,
    /// Whether the owner revoked it.
    revoked: bool,
    /// When it was issued.
    created_at: OffsetDateTime,
}

/// Whether a receipt is in the count.
#[derive(Debug, Object)]
pub(crate) struct ReceiptBody {
    /// The receipt, as read (upper case, without separators).
    receipt: String,
    /// `counted`, `replaced` (by a later vote of the same voter) or `unknown`.
    status: String,
    /// The status in words.
    message: String,
}

/// Answers about voter links.
#[derive(ApiResponse)]
enum InvitationsReply {
    /// The links were issued (`Cache-Control: no-store`: they are secrets).
    #[oai(status = 201)]
    Issued(
        Json<IssuedInvitations>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The ballot's links.
    #[oai(status = 200)]
    Listed(Json<InvitationList>),
    /// The link was revoked.
    #[oai(status = 204)]
    Revoked,
}

/// A receipt's status.
#[derive(ApiResponse)]
enum ReceiptReply {
    /// Whether it is in the count; nothing more.
    #[oai(status = 200)]
    Ok(Json<ReceiptBody>),
}

/// A ballot's bulletin.
#[derive(ApiResponse)]
enum BulletinReply {
    /// Every counted vote as `{receipt, option_ids, labels}` sorted by
    /// receipt (`rows`), and the tally recounted from those rows alone
    /// (`tally`, with the sequence number of the tally they make).
    #[oai(status = 200)]
    Ok(Json<Value>),
}

impl ApiError {
    /// The answer to a refused voter-link request on `ballot`.
    fn from_invitations(doing: &str, ballot: BallotId, error: InvitationError) -> Self {
        match error {
            InvitationError::NotFound => Self::not_found(),
            InvitationError::UnknownInvitation => {
                Self::NotFound(Problem::new("no such voter link"))
            }
            InvitationError::Forbidden => {
                Self::Forbidden(Problem::new(messages::NOT_OWNER_OF_LINKS))
            }
            InvitationError::NotInviteOnly => {
                Self::Conflict(Problem::new(messages::NOT_INVITE_ONLY))
            }
            InvitationError::Ended => Self::Conflict(Problem::new(messages::ENDED)),
            InvitationError::Used => Self::Conflict(Problem::new(messages::INVITATION_USED)),
            InvitationError::LimitReached => {
                Self::Conflict(Problem::new(messages::INVITATIONS_LIMIT_REACHED))
            }
            InvitationError::Invalid(error) => {
                let field = match error.message() {
                    messages::INVITATION_COUNT => "count",
                    _ => "labels",
                };
                debug_assert_eq!(error.field(), Field::Invitations);
                Self::invalid(field, error.message())
            }
            other => Self::unavailable(doing, Some(ballot), &other),
        }
    }
}

#[OpenApi]
impl TrustApi {
    /// Issue voting links for an invite-only ballot (its owner only, while
    /// voting has not ended). Each link lets one person vote once; the
    /// links and tokens are in this reply and never shown again.
    #[oai(
        path = "/ballots/:id/invitations",
        method = "post",
        tag = "ApiTags::Invitations"
    )]
    async fn issue_invitations(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        headers: &HeaderMap,
        id: Path<BallotIdParam>,
        body: Json<InvitationsRequest>,
    ) -> Result<InvitationsReply, ApiError> {
        let id = super::ballot_id(&id)?;
        let owner = viewer(&state, jar).await.owner;
        let count = body
            .0
            .count
            .or_else(|| u32::try_from(body.0.labels.len()).ok())
            .unwrap_or(0);
        let issued = state
            .service
            .issue_invitations(&id, &owner, count, &body.0.labels)
            .await
            .map_err(|error| ApiError::from_invitations("issuing voter links", id, error))?;
        let origin = origin(state.secure_cookies, headers);
        Ok(InvitationsReply::Issued(
            Json(IssuedInvitations {
                invitations: issued
                    .into_iter()
                    .map(|invitation| IssuedInvitationBody {
                        id: invitation.id.get(),
                        label: invitation.label.map(|label| label.as_str().to_owned()),
                        link: invitation_link(&origin, &invitation.token),
                        token: invitation.token.as_str().to_owned(),
                    })
                    .collect(),
            }),
            "no-store".to_owned(),
        ))
    }

    /// List an invite-only ballot's voting links (its owner only): labels,
    /// used or not, revoked or not. Tokens are never shown again.
    #[oai(
        path = "/ballots/:id/invitations",
        method = "get",
        tag = "ApiTags::Invitations"
    )]
    async fn list_invitations(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
    ) -> Result<InvitationsReply, ApiError> {
        let id = super::ballot_id(&id)?;
        let owner = viewer(&state, jar).await.owner;
        let invitations = state
            .service
            .invitations(&id, &owner)
            .await
            .map_err(|error| ApiError::from_invitations("listing voter links", id, error))?;
        Ok(InvitationsReply::Listed(Json(InvitationList {
            invitations: invitations
                .into_iter()
                .map(|invitation| InvitationBody {
                    id: invitation.id.get(),
                    used: invitation.is_used(),
                    revoked: invitation.is_revoked(),
                    label: invitation.label.map(|label| label.as_str().to_owned()),
                    created_at: invitation.created_at,
                })
                .collect(),
        })))
    }

    /// Revoke an unused voting link (its owner only): it then opens
    /// nothing and votes nothing. A link already used to vote stays (`409`).
    #[oai(
        path = "/ballots/:id/invitations/:invitation_id",
        method = "delete",
        tag = "ApiTags::Invitations"
    )]
    async fn revoke_invitation(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
        invitation_id: Path<String>,
    ) -> Result<InvitationsReply, ApiError> {
        let id = super::ballot_id(&id)?;
        let invitation = InvitationId::parse(&invitation_id)
            .ok_or_else(|| ApiError::NotFound(Problem::new("no such voter link")))?;
        let owner = viewer(&state, jar).await.owner;
        state
            .service
            .revoke_invitation(&id, &owner, invitation)
            .await
            .map_err(|error| ApiError::from_invitations("revoking a voter link", id, error))?;
        Ok(InvitationsReply::Revoked)
    }

    /// Check a vote's receipt: whether it is `counted`, `replaced` by a
    /// later vote of the same voter, or `unknown` to this ballot. It says
    /// nothing else (not the choice, not the voter).
    #[oai(
        path = "/ballots/:id/receipts/:receipt",
        method = "get",
        tag = "ApiTags::Invitations"
    )]
    async fn check_receipt(
        &self,
        state: Data<&Arc<AppState>>,
        id: Path<BallotIdParam>,
        receipt: Path<String>,
    ) -> Result<ReceiptReply, ApiError> {
        let id = super::ballot_id(&id)?;
        let status = state
            .service
            .receipt_status(&id, &receipt)
            .await
            .map_err(|error| ApiError::from_read("checking a receipt", id, error))?;
        let shown = oponn_core::domain::ReceiptCode::parse(&receipt).map_or_else(
            || receipt.chars().take(64).collect(),
            |code| code.to_string(),
        );
        Ok(ReceiptReply::Ok(Json(ReceiptBody {
            receipt: shown,
            status: status.as_str().to_owned(),
            message: status.message().to_owned(),
        })))
    }

    /// A ballot's public bulletin, when its owner published one, under the
    /// same rules as its results: every counted vote as (receipt, choice),
    /// sorted by receipt, and the tally recounted from those rows. Nothing
    /// in it leads to a voter. `404` when the ballot has none.
    #[oai(
        path = "/ballots/:id/bulletin",
        method = "get",
        tag = "ApiTags::Invitations"
    )]
    async fn bulletin(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        headers: &HeaderMap,
        client: Data<&ClientAddr>,
        id: Path<BallotIdParam>,
    ) -> Result<BulletinReply, ApiError> {
        let id = super::ballot_id(&id)?;
        let read = |error| ApiError::from_read("reading a bulletin", id, error);
        state.service.ballot(&id).await.map_err(read)?;
        let voter = super::api_voter(&state, jar, headers, client.0.0, &id, false).await?;
        match state
            .service
            .bulletin_for(&id, Some(&voter))
            .await
            .map_err(read)?
        {
            BulletinAccess::NotPublished { .. } => {
                Err(ApiError::NotFound(Problem::new(messages::NO_BULLETIN)))
            }
            BulletinAccess::Hidden { message, .. } => {
                Err(ApiError::Forbidden(Problem::new(message)))
            }
            BulletinAccess::Shown(bulletin) => {
                let tally = TallyBody::new(&bulletin.ballot, &bulletin.results);
                Ok(BulletinReply::Ok(Json(serde_json::json!({
                    "ballot_id": id.to_string(),
                    "method": bulletin.ballot.method().as_str(),
                    "seq": bulletin.results.seq,
                    "rows": bulletin_rows(&bulletin),
                    "tally": tally.to_json().unwrap_or(Value::Null),
                }))))
            }
        }
    }
}
