//! The HTML pages: parse the request, call the core, render a template.
//!
//! # Layout
//!
//! - this file: rendering, error pages, CSRF checks and redirects shared by all pages;
//! - `dashboard.rs`: `GET /`;
//! - `create.rs`: the create form and its start-time partial;
//! - `vote.rs`: the vote form and casting votes;
//! - `results.rs`: results, live results over SSE, exports;
//! - `owner.rs`: closing and deleting a ballot.

mod create;
mod dashboard;
mod owner;
mod results;
mod vote;

use oponn_core::CastVoteError;
use poem::http::{HeaderMap, StatusCode};
use poem::web::{CsrfVerifier, Html, Redirect};
use poem::{IntoResponse, Response};
use serde_json::{Value, json};

pub(crate) use create::{create_ballot, create_form, start_time_input};
pub(crate) use dashboard::dashboard_page;
pub(crate) use owner::{close_ballot, delete_ballot};
pub(crate) use results::{
    attachment, export_csv, export_csv_text, export_document, export_json, live_results,
    live_updates, results_page,
};
pub(crate) use vote::{cast_vote, vote_form};

use crate::identity::Viewer;
use crate::metrics::RefusalLabels;
use crate::state::AppState;

/// The form field (and header) carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "X-CSRF-Token";

const UNAVAILABLE_MESSAGE: &str = "Oponn is temporarily unavailable. Nothing was changed: \
     if you were voting, your vote was not recorded. Please try again in a moment.";

pub(crate) fn is_htmx(headers: &HeaderMap) -> bool {
    headers
        .get("HX-Request")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"))
}

/// Renders `template` with `context` plus what every page needs: the CSRF
/// token, the version, and who is signed in.
pub(crate) fn render(
    state: &AppState,
    template: &str,
    csrf: &str,
    viewer: Option<&Viewer>,
    context: Value,
) -> Response {
    let mut context = context;
    if let Value::Object(map) = &mut context {
        map.insert("csrf_token".to_owned(), json!(csrf));
        map.insert("version".to_owned(), json!(env!("CARGO_PKG_VERSION")));
        let email = viewer
            .and_then(|viewer| viewer.account.as_ref())
            .map(|s| s.email.clone());
        map.insert("viewer_email".to_owned(), json!(email));
    }
    match state.templates.render(template, context) {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, template, "rendering a page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The 404 page.
pub(crate) fn not_found(state: &AppState) -> Response {
    render(
        state,
        "not_found.html",
        "",
        None,
        json!({ "message": "No ballot lives at this address. Check the link, or create a new ballot." }),
    )
    .with_status(StatusCode::NOT_FOUND)
    .into_response()
}

/// An error page with `status`.
pub(crate) fn error_page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    render(
        state,
        "error.html",
        "",
        None,
        json!({ "status": status.as_u16(), "title": title, "message": message }),
    )
    .with_status(status)
    .into_response()
}

/// The 503 page for a failed dependency; the cause goes to the log.
pub(crate) fn unavailable(state: &AppState, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "a dependency failed");
    error_page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        UNAVAILABLE_MESSAGE,
    )
}

/// Double-submit check: the token from the form field or the
/// `X-CSRF-Token` header must match the CSRF cookie.
pub(crate) fn csrf_refusal(
    state: &AppState,
    verifier: &CsrfVerifier,
    headers: &HeaderMap,
    form_token: Option<&str>,
) -> Option<Response> {
    if state.skip_csrf {
        return None;
    }
    let token = form_token.or_else(|| headers.get(CSRF_FIELD).and_then(|v| v.to_str().ok()));
    if token.is_some_and(|token| verifier.is_valid(token)) {
        return None;
    }
    Some(error_page(
        state,
        StatusCode::FORBIDDEN,
        "request_refused",
        "This form's security token was missing or did not match. Reload the page and try again.",
    ))
}

/// `303` to `to`, or `204` + `HX-Redirect` for htmx.
pub(crate) fn success_redirect(headers: &HeaderMap, to: &str) -> Response {
    if is_htmx(headers) {
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header("HX-Redirect", to)
            .finish()
    } else {
        Redirect::see_other(to).into_response()
    }
}

/// Counts a refused vote by its reason.
pub(crate) fn count_refusal(state: &AppState, error: &CastVoteError) {
    let reason = match error {
        CastVoteError::NotFound => "not_found",
        CastVoteError::NotOpenYet => "not_open_yet",
        CastVoteError::Ended => "ended",
        CastVoteError::InvalidOption => "invalid_option",
        CastVoteError::WriteInsNotAllowed => "write_ins_not_allowed",
        CastVoteError::InvalidWriteIn(_) => "invalid_write_in",
        CastVoteError::WriteInLimitReached { .. } => "write_in_limit",
        CastVoteError::AlreadyVoted => "already_voted",
        CastVoteError::SignInRequired => "sign_in_required",
        _ => "unavailable",
    };
    state
        .metrics
        .votes_refused
        .get_or_create(&RefusalLabels {
            reason: reason.to_owned(),
        })
        .inc();
}

/// The message shown where results would be, when the viewer may not see them yet.
pub(crate) fn hidden_results_message(
    visibility: oponn_core::domain::ResultsVisibility,
) -> &'static str {
    use oponn_core::domain::ResultsVisibility;
    match visibility {
        ResultsVisibility::AfterVoting => {
            "Results are shown once you have voted, or when voting closes."
        }
        ResultsVisibility::AfterClose | ResultsVisibility::Always => {
            "Results are shown when voting closes."
        }
    }
}
