//! What every HTML response shares: rendering a template with the context
//! each page needs, the error pages, the CSRF check, and redirects that
//! work with and without htmx. Below the page front ends (`pages`, `auth`)
//! and the request guard, which all answer in HTML.

use crate::csrf::CsrfVerifier;
use poem::http::{HeaderMap, StatusCode};
use poem::web::{Html, Redirect};
use poem::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::identity::Viewer;
use crate::logging::Causes;
use crate::state::AppState;

/// The form field (and header) carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "X-CSRF-Token";

/// What a page says when a dependency failed: nothing changed, try again.
const UNAVAILABLE_MESSAGE: &str = "Oponn is temporarily unavailable. Nothing was changed: \
     if you were voting, your vote was not recorded. Please try again in a moment.";

/// Whether the request came from htmx (`HX-Request: true`), which gets a
/// partial instead of a whole page and `HX-Redirect` instead of a `303`.
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
    match render_html(state, template, csrf, viewer, context) {
        Ok(html) => Html(html).into_response(),
        Err(error) => rendering_failed(template, &error),
    }
}

/// The page [`render`] answers with, as text.
///
/// # Errors
/// A missing template or a rendering failure.
pub(crate) fn render_html(
    state: &AppState,
    template: &str,
    csrf: &str,
    viewer: Option<&Viewer>,
    context: Value,
) -> Result<String, minijinja::Error> {
    let mut context = context;
    if let Value::Object(map) = &mut context {
        map.insert("csrf_token".to_owned(), json!(csrf));
        map.insert("version".to_owned(), json!(env!("CARGO_PKG_VERSION")));
        let email = viewer
            .and_then(|viewer| viewer.account.as_ref())
            .map(|s| s.email.clone());
        map.insert("viewer_email".to_owned(), json!(email));
    }
    state.templates.render(template, context)
}

/// The answer when a page could not be rendered (a build defect): `500`,
/// and the error in the log.
pub(crate) fn rendering_failed(template: &str, error: &minijinja::Error) -> Response {
    tracing::error!(%error, template, "rendering a page failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// The 404 page for a ballot that does not exist (or an id that cannot
/// be one): `404 :: ballot_not_found`.
pub(crate) fn not_found(state: &AppState) -> Response {
    render(
        state,
        "not_found.html",
        "",
        None,
        json!({
            "heading": "ballot_not_found",
            "message": "No ballot lives at this address. It may have been deleted, or the link may be mistyped. Check the link, or create a new ballot.",
        }),
    )
    .with_status(StatusCode::NOT_FOUND)
    .into_response()
}

/// The 404 page for an address no route serves: `404 :: page_not_found`.
pub(crate) fn page_not_found(state: &AppState) -> Response {
    render(state, "not_found.html", "", None, json!({}))
        .with_status(StatusCode::NOT_FOUND)
        .into_response()
}

/// The ballot `id` names, or the page that answers for it: `404` when
/// there is none, `503` when it cannot be read.
pub(crate) async fn ballot_or_refusal(
    state: &AppState,
    id: &oponn_core::domain::BallotId,
) -> Result<oponn_core::domain::Ballot, Response> {
    match state.service.ballot(id).await {
        Ok(ballot) => Ok(ballot),
        Err(oponn_core::BallotError::NotFound) => Err(not_found(state)),
        Err(error) => Err(unavailable(state, &error)),
    }
}

/// The ballot a path's `{id}` names, or the page that answers for it:
/// `404` for text that cannot be an id or for no such ballot, `503` when
/// it cannot be read.
pub(crate) async fn ballot_at(
    state: &AppState,
    raw_id: &str,
) -> Result<oponn_core::domain::Ballot, Response> {
    let id = oponn_core::domain::BallotId::parse(raw_id).map_err(|_| not_found(state))?;
    ballot_or_refusal(state, &id).await
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
pub(crate) fn unavailable(state: &AppState, error: &(dyn std::error::Error + 'static)) -> Response {
    tracing::error!(error = %Causes(error), "a dependency failed");
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
