//! Sharing and presenting a ballot: the share view (vote link with a copy
//! button, its QR code, the results link), the QR code itself and the
//! presenter view for a projector.

use std::sync::Arc;

use crate::csrf::CsrfToken;
use oponn_core::domain::{Ballot, Eligibility};
use poem::http::{HeaderMap, StatusCode, header};
use poem::web::cookie::CookieJar;
use poem::web::{Data, Path};
use poem::{IntoResponse, Response, handler};
use serde::Serialize;
use serde_json::json;

use crate::html::{ballot_at, render};
use crate::identity::viewer;
use crate::share::{PreviewView, public_origin, qr_svg};
use crate::state::AppState;
use crate::views::{BallotView, ResultsView};

use super::results::page_results;

/// The links that share a ballot, as the share view and the presenter
/// view show them.
#[derive(Debug, Serialize)]
pub(crate) struct ShareView {
    /// The vote page's absolute address: what the QR code holds.
    pub(crate) vote_link: String,
    /// The site's address without its scheme: with `/vote/{id}`, the
    /// short link the presenter view shows, to read off a wall.
    pub(crate) short_host: String,
    /// The results page's absolute address.
    pub(crate) results_link: String,
    /// The QR code's own path on this site.
    pub(crate) qr_path: String,
    /// The presenter view's path.
    pub(crate) present_path: String,
    /// An invite-only ballot: its public vote link lets no one vote, so
    /// the views point to the owner's personal voting links instead of
    /// offering it (and its QR code).
    pub(crate) invite_only: bool,
    /// Where the owner issues personal voting links.
    pub(crate) invitations_path: String,
}

impl ShareView {
    pub(crate) fn new(state: &AppState, headers: &HeaderMap, ballot: &Ballot) -> Self {
        let id = ballot.id();
        let origin = public_origin(state, headers);
        let vote_link = format!("{origin}/vote/{id}");
        let short_host = origin
            .split_once("://")
            .map_or_else(|| origin.clone(), |(_, rest)| rest.to_owned());
        Self {
            short_host,
            results_link: format!("{origin}/results/{id}"),
            qr_path: format!("/ballots/{id}/qr.svg"),
            present_path: format!("/results/{id}/present"),
            invite_only: ballot.settings().eligibility == Eligibility::Invited,
            invitations_path: format!("/ballots/{id}/invitations"),
            vote_link,
        }
    }
}

/// `GET /ballots/{id}/share`: the vote link with a copy button, its QR
/// code and the results link. Anyone may see it: it holds only links the
/// vote page already gives.
#[handler]
pub(crate) async fn share_page(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let ballot = match ballot_at(&state, &id).await {
        Ok(ballot) => ballot,
        Err(refusal) => return refusal,
    };
    let viewer = viewer(&state, jar).await;
    let id = ballot.id();
    render(
        &state,
        "share.html",
        csrf,
        Some(&viewer),
        json!({
            "ballot": BallotView::new(&ballot, state.service.now()),
            "share": ShareView::new(&state, headers, &ballot),
            "preview": PreviewView::new(&state, headers, &ballot, &format!("/vote/{id}")),
        }),
    )
}

/// `GET /ballots/{id}/qr.svg`: the QR code of the ballot's vote link, as
/// an SVG image to show, print or save.
#[handler]
pub(crate) async fn qr_code(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ballot = match ballot_at(&state, &id).await {
        Ok(ballot) => ballot,
        Err(refusal) => return refusal,
    };
    let link = ShareView::new(&state, headers, &ballot).vote_link;
    match qr_svg(&link) {
        Some(svg) => Response::builder()
            .content_type("image/svg+xml")
            // Made from the request's host when no public address is set.
            .header(header::VARY, "Host")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(svg),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /results/{id}/present`: the presenter view for a projector: the
/// question in large type, live bars, and the QR code and short link to
/// vote, without the site's header and footer.
#[handler]
pub(crate) async fn present_page(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let viewer = viewer(&state, jar).await;
    let (ballot, results, hidden) = match page_results(&state, jar, &viewer, &id).await {
        Ok(shown) => shown,
        Err(refusal) => return *refusal,
    };
    let id = ballot.id();
    render(
        &state,
        "present.html",
        csrf,
        Some(&viewer),
        json!({
            "ballot": BallotView::new(&ballot, state.service.now()),
            "results": results.as_ref().map(ResultsView::from),
            "results_hidden": hidden,
            "share": ShareView::new(&state, headers, &ballot),
            "preview": PreviewView::new(&state, headers, &ballot, &format!("/results/{id}")),
        }),
    )
}
