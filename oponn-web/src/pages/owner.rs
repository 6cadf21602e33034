//! The owner's controls: close a ballot early, delete it (after a
//! confirmation page that works without JavaScript), each confirmed on
//! the page that follows.

use std::sync::Arc;

use crate::csrf::{CsrfToken, CsrfVerifier};
use oponn_core::OwnerActionError;
use oponn_core::domain::{BallotId, messages};
use poem::http::{HeaderMap, StatusCode};
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Path};
use poem::{Response, handler};
use serde::Deserialize;
use serde_json::json;

use crate::html::{
    ballot_at, csrf_refusal, error_page, not_found, render, success_redirect, unavailable,
};
use crate::identity::{Notice, Viewer, keep_notice, viewer};
use crate::state::AppState;
use crate::views::BallotView;

/// An owner's form: only the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OwnerForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
}

/// The page answering an owner action the core refused.
fn owner_action_refused(state: &AppState, error: OwnerActionError) -> Response {
    match error {
        OwnerActionError::NotFound => not_found(state),
        OwnerActionError::Forbidden => error_page(
            state,
            StatusCode::FORBIDDEN,
            "not_your_ballot",
            messages::NOT_OWNER,
        ),
        other => unavailable(state, &other),
    }
}

/// The ballot an owner's form names and who sent it, once the CSRF token
/// checks out; otherwise the refusal to answer with.
async fn owner_request(
    state: &AppState,
    headers: &HeaderMap,
    jar: &CookieJar,
    verifier: &CsrfVerifier,
    id: &str,
    form: Option<Form<OwnerForm>>,
) -> Result<(BallotId, Viewer), Box<Response>> {
    // A body that is not a form is treated as an empty one: the CSRF
    // check then refuses it with 403, like any request without a token.
    let form = form.map(|Form(form)| form).unwrap_or_default();
    if let Some(refusal) = csrf_refusal(state, verifier, headers, form.csrf_token.as_deref()) {
        return Err(Box::new(refusal));
    }
    let id = BallotId::parse(id).map_err(|_| Box::new(not_found(state)))?;
    Ok((id, viewer(state, jar).await))
}

/// `POST /ballots/{id}/close`: ends voting now; the owner only.
#[handler]
pub(crate) async fn close_ballot(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    form: Option<Form<OwnerForm>>,
) -> Response {
    let (id, viewer) = match owner_request(&state, headers, jar, verifier, &id, form).await {
        Ok(request) => request,
        Err(refusal) => return *refusal,
    };
    match state.service.close_ballot(&id, &viewer.owner).await {
        Ok(_) => {
            keep_notice(&state, jar, Notice::Closed);
            success_redirect(headers, &format!("/results/{id}"))
        }
        Err(error) => owner_action_refused(&state, error),
    }
}

/// `POST /ballots/{id}/delete`: destroys the ballot's key, then its rows;
/// the owner only.
#[handler]
pub(crate) async fn delete_ballot(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    form: Option<Form<OwnerForm>>,
) -> Response {
    let (id, viewer) = match owner_request(&state, headers, jar, verifier, &id, form).await {
        Ok(request) => request,
        Err(refusal) => return *refusal,
    };
    match state.service.delete_ballot(&id, &viewer.owner).await {
        Ok(()) => {
            state.vote_pages.forget(&id);
            keep_notice(&state, jar, Notice::Deleted);
            success_redirect(headers, "/")
        }
        Err(error) => owner_action_refused(&state, error),
    }
}

/// `GET /ballots/{id}/delete`: asks the owner to confirm, with a form that
/// posts the deletion: a step that needs no JavaScript.
#[handler]
pub(crate) async fn confirm_delete(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let ballot = match ballot_at(&state, &id).await {
        Ok(ballot) => ballot,
        Err(refusal) => return refusal,
    };
    let viewer = viewer(&state, jar).await;
    if !ballot.is_owned_by(&viewer.owner) {
        return owner_action_refused(&state, OwnerActionError::Forbidden);
    }
    render(
        &state,
        "delete.html",
        csrf,
        Some(&viewer),
        json!({ "ballot": BallotView::new(&ballot, state.service.now()) }),
    )
}
