//! The vote form: `GET /vote/{id}` and `POST /vote/{id}`.

use std::sync::Arc;

use oponn_core::domain::{Ballot, BallotId, OptionId};
use oponn_core::{BallotError, CastVoteError, VoteChoice};
use poem::http::HeaderMap;
use poem::web::cookie::CookieJar;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path};
use poem::{Response, handler};
use serde::Deserialize;
use serde_json::json;

use crate::guard::{ClientAddr, too_many_requests};
use crate::html::{csrf_refusal, is_htmx, not_found, render, success_redirect, unavailable};
use crate::identity::{Viewer, viewer};
use crate::rates::Rate;
use crate::state::AppState;
use crate::views::BallotView;

/// The vote form as submitted.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct VoteForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
    option_id: Option<String>,
    write_in_value: Option<String>,
}

/// The form value of `option_id` that means "my own write-in": the write-in
/// radio button's value on the vote form.
const WRITE_IN_FORM_VALUE: &str = "__write_in__";

/// Reads the vote form's `option_id` (an option number, or
/// [`WRITE_IN_FORM_VALUE`]) and `write_in_value` fields into the typed
/// choice the core takes.
///
/// # Errors
/// [`CastVoteError::InvalidOption`] when `option_id` is neither.
fn choice_from_form(
    option_id: &str,
    write_in_value: Option<&str>,
) -> Result<VoteChoice, CastVoteError> {
    if option_id == WRITE_IN_FORM_VALUE {
        return Ok(VoteChoice::WriteIn(
            write_in_value.unwrap_or_default().to_owned(),
        ));
    }
    OptionId::parse(option_id)
        .map(VoteChoice::Option)
        .ok_or(CastVoteError::InvalidOption)
}

/// Everything the vote form shows beyond the ballot.
struct VoteView<'a> {
    form: &'a VoteForm,
    error: Option<&'a str>,
    /// The viewer's current vote, when they have one.
    current: Option<OptionId>,
}

fn vote_page(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    viewer: &Viewer,
    ballot: &Ballot,
    view: VoteView<'_>,
) -> Response {
    let template = if is_htmx(headers) {
        "partials/vote_form.html"
    } else {
        "vote.html"
    };
    let settings = ballot.settings();
    let sign_in_required = !settings.eligibility.admits(&viewer.voter);
    let selected = view
        .form
        .option_id
        .clone()
        .or_else(|| view.current.map(|option| option.get().to_string()));
    render(
        state,
        template,
        csrf,
        Some(viewer),
        json!({
            "ballot": BallotView::new(ballot, state.service.now()),
            "error": view.error,
            "selected": selected,
            "write_in_value": view.form.write_in_value,
            "current_vote": view.current.and_then(|option| ballot.option(option)).map(|o| o.label()),
            "can_change_vote": settings.allow_vote_change,
            "write_in_option": WRITE_IN_FORM_VALUE,
            "sign_in_required": sign_in_required,
            "login_url": format!("/login?next=/vote/{}", ballot.id()),
        }),
    )
}

/// `GET /vote/{id}`: the vote form.
#[handler]
pub(crate) async fn vote_form(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    // Settles the voter cookie now, so the vote posts with it.
    let viewer = viewer(&state, jar).await;
    let ballot = match state.service.ballot(&id).await {
        Ok(ballot) => ballot,
        Err(BallotError::NotFound) => return not_found(&state),
        Err(error) => return unavailable(&state, &error),
    };
    let current = if viewer.new_voter {
        None
    } else {
        match state.service.vote_of(&id, &viewer.voter).await {
            Ok(current) => current,
            Err(error) => return unavailable(&state, &error),
        }
    };
    let form = VoteForm::default();
    let view = VoteView {
        form: &form,
        error: None,
        current,
    };
    vote_page(&state, headers, csrf, &viewer, &ballot, view)
}

/// `POST /vote/{id}`: casts (or, where allowed, changes) the vote;
/// refusals are shown on the form.
#[handler]
#[allow(
    clippy::too_many_arguments,
    reason = "each argument is one of poem's extractors"
)]
pub(crate) async fn cast_vote(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Data(client): Data<&ClientAddr>,
    form: Option<Form<VoteForm>>,
) -> Response {
    // A body that is not a form is treated as an empty one: the CSRF
    // check then refuses it with 403, like any request without a token.
    let form = form.map(|Form(form)| form).unwrap_or_default();
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    let viewer = viewer(&state, jar).await;
    let choice = choice_from_form(
        form.option_id.as_deref().unwrap_or(""),
        form.write_in_value.as_deref(),
    );
    if matches!(choice, Ok(VoteChoice::WriteIn(_)))
        && let Err(wait) = state.rates.check(Rate::WriteIns, client.0)
    {
        return too_many_requests(&state, &format!("/vote/{id}"), Rate::WriteIns, wait);
    }
    let outcome = match choice {
        Ok(choice) => state.cast_vote(id, viewer.voter.clone(), choice).await,
        Err(refusal) => Err(refusal),
    };
    let refusal = match outcome {
        Ok(_) => {
            state.metrics.votes_cast.inc();
            return success_redirect(headers, &format!("/results/{id}"));
        }
        Err(refusal) => refusal,
    };
    state.metrics.count_vote_refusal(&refusal);
    let Some(message) = refusal.user_message() else {
        return match refusal {
            CastVoteError::NotFound => not_found(&state),
            other => unavailable(&state, &other),
        };
    };
    let ballot = match state.service.ballot(&id).await {
        Ok(ballot) => ballot,
        Err(BallotError::NotFound) => return not_found(&state),
        Err(error) => return unavailable(&state, &error),
    };
    let current = state
        .service
        .vote_of(&id, &viewer.voter)
        .await
        .unwrap_or_default();
    let view = VoteView {
        form: &form,
        error: Some(message),
        current,
    };
    vote_page(&state, headers, csrf, &viewer, &ballot, view)
}

#[cfg(test)]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use oponn_core::VoteChoice;
    use oponn_core::domain::{OptionId, messages};

    use super::{WRITE_IN_FORM_VALUE, choice_from_form};

    #[test]
    fn the_form_names_an_option_by_number_or_asks_for_a_write_in() {
        assert_eq!(
            choice_from_form(" 2 ", None).unwrap(),
            VoteChoice::Option(OptionId::new(2))
        );
        assert_eq!(
            choice_from_form(WRITE_IN_FORM_VALUE, Some("sushi")).unwrap(),
            VoteChoice::WriteIn("sushi".to_owned())
        );
        assert_eq!(
            choice_from_form(WRITE_IN_FORM_VALUE, None).unwrap(),
            VoteChoice::WriteIn(String::new())
        );
        let garbage = choice_from_form("pizza", None).unwrap_err();
        assert_eq!(garbage.user_message(), Some(messages::INVALID_OPTION));
    }
}
