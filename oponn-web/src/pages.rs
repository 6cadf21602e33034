//! The HTML pages: parse the request, call the core, render a template.

use std::sync::Arc;

use futures_util::Stream;
use futures_util::StreamExt as _;
use oponn_core::domain::{BallotId, BallotRequest, Field, StartRequest, ValidationErrors};
use oponn_core::{BallotError, CastVoteError, CreateBallotError, VoteChoice};
use poem::http::{HeaderMap, StatusCode};
use poem::web::cookie::CookieJar;
use poem::web::sse::{Event, SSE};
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Html, Path, Query, Redirect};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;

use crate::api::KEEP_ALIVE;
use crate::identity::{guest_owner, voter};
use crate::live::{LiveFeed, LiveUpdate};
use crate::metrics::{RefusalLabels, SseClientGuard};
use crate::state::AppState;
use crate::views::{BallotView, DashboardEntry, ResultsView};

/// The form field (and header) carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "X-CSRF-Token";

/// Voting windows offered on the create form, in minutes (0 = until closed).
const DURATION_CHOICES: [(u32, &str); 4] = [
    (10, "10 minutes"),
    (60, "1 hour"),
    (1440, "1 day"),
    (0, "indefinite"),
];

/// The window preselected on an empty create form.
const DEFAULT_DURATION: u32 = 60;

const UNAVAILABLE_MESSAGE: &str = "Oponn is temporarily unavailable. Nothing was changed: \
     if you were voting, your vote was not recorded. Please try again in a moment.";

fn is_htmx(headers: &HeaderMap) -> bool {
    headers
        .get("HX-Request")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"))
}

/// Renders `template` with `context` plus what every page needs.
pub(crate) fn render(state: &AppState, template: &str, csrf: &str, context: Value) -> Response {
    let mut context = context;
    if let Value::Object(map) = &mut context {
        map.insert("csrf_token".to_owned(), json!(csrf));
        map.insert("version".to_owned(), json!(env!("CARGO_PKG_VERSION")));
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
        json!({ "message": "No ballot lives at this address. Check the link, or create a new ballot." }),
    )
    .with_status(StatusCode::NOT_FOUND)
    .into_response()
}

fn error_page(state: &AppState, status: StatusCode, title: &str, message: &str) -> Response {
    render(
        state,
        "error.html",
        "",
        json!({ "status": status.as_u16(), "title": title, "message": message }),
    )
    .with_status(status)
    .into_response()
}

fn unavailable(state: &AppState, error: &dyn std::fmt::Display) -> Response {
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
fn csrf_refusal(
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

fn success_redirect(headers: &HeaderMap, to: &str) -> Response {
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
        CastVoteError::AlreadyVoted => "already_voted",
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

/// `GET /`: the ballots this browser created.
#[handler]
pub(crate) async fn dashboard(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
) -> Response {
    let owner = guest_owner(&voter(&state, jar));
    let ballots = match state.service.ballots_owned_by(&owner).await {
        Ok(ballots) => ballots,
        Err(error) => return unavailable(&state, &error),
    };
    let now = state.service.now();
    let mut entries = Vec::with_capacity(ballots.len());
    for ballot in &ballots {
        let total_votes = match state.service.tally(&ballot.id()).await {
            Ok(tally) => tally.total(),
            Err(BallotError::NotFound) => continue,
            Err(error) => return unavailable(&state, &error),
        };
        let view = BallotView::new(ballot, now);
        entries.push(DashboardEntry {
            id: view.id,
            measure: view.measure,
            status: view.status,
            status_label: view.status_label,
            total_votes,
            vote_url: view.vote_url,
            results_url: view.results_url,
        });
    }
    render(&state, "index.html", csrf, json!({ "ballots": entries }))
}

/// The create form as submitted; every field optional so that a bad value
/// becomes a message under its field, never a bare 400.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CreateForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
    measure: Option<String>,
    options_raw: Option<String>,
    allow_write_in: Option<String>,
    start_time_type: Option<String>,
    scheduled_start_time: Option<String>,
    duration_mins: Option<String>,
    tz_offset_minutes: Option<String>,
}

impl CreateForm {
    fn scheduled(&self) -> bool {
        self.start_time_type.as_deref() == Some("scheduled")
    }

    fn allow_write_in(&self) -> bool {
        matches!(
            self.allow_write_in.as_deref().map(str::trim),
            Some("on" | "true" | "1" | "yes")
        )
    }

    /// The values to show back in the form.
    fn view(&self) -> Value {
        let duration = self
            .duration_mins
            .as_deref()
            .and_then(|raw| raw.trim().parse::<u32>().ok())
            .unwrap_or(DEFAULT_DURATION);
        json!({
            "measure": self.measure.clone().unwrap_or_default(),
            "options_raw": self.options_raw.clone().unwrap_or_default(),
            "allow_write_in": self.allow_write_in(),
            "start_time_type": if self.scheduled() { "scheduled" } else { "now" },
            "scheduled_start_time": self.scheduled_start_time.clone().unwrap_or_default(),
            "duration_mins": duration,
        })
    }

    /// The scheduled start as text, with the browser's UTC offset attached
    /// when it sent a bare `datetime-local` value (which has none).
    fn scheduled_start(&self) -> String {
        let text = self.scheduled_start_time.as_deref().unwrap_or("").trim();
        let browser_offset = self
            .tz_offset_minutes
            .as_deref()
            .and_then(|raw| raw.trim().parse::<i32>().ok())
            .filter(|minutes| minutes.abs() <= 18 * 60);
        let bare_local = matches!(text.len(), 16 | 19) && text.as_bytes().get(10) == Some(&b'T');
        match browser_offset {
            Some(js_offset) if bare_local => {
                // JavaScript's getTimezoneOffset is UTC minus local time.
                let east = -js_offset;
                let seconds = if text.len() == 16 { ":00" } else { "" };
                let sign = if east < 0 { '-' } else { '+' };
                format!(
                    "{text}{seconds}{sign}{:02}:{:02}",
                    east.abs() / 60,
                    east.abs() % 60
                )
            }
            _ => text.to_owned(),
        }
    }
}

fn create_form_errors(errors: &ValidationErrors) -> Value {
    let mut map = serde_json::Map::new();
    for error in errors.iter() {
        let field = match error.field() {
            Field::Measure => "measure",
            Field::Options => "options_raw",
            Field::ScheduledStart => "scheduled_start_time",
            Field::VotingWindow => "duration_mins",
            _ => continue,
        };
        map.insert(field.to_owned(), json!(error.message()));
    }
    Value::Object(map)
}

fn duration_choices() -> Value {
    DURATION_CHOICES
        .iter()
        .map(|(value, label)| json!({ "value": value, "label": label }))
        .collect()
}

fn create_page(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    form: Value,
    errors: Value,
) -> Response {
    let template = if is_htmx(headers) {
        "partials/create_form.html"
    } else {
        "create.html"
    };
    render(
        state,
        template,
        csrf,
        json!({ "form": form, "errors": errors, "duration_choices": duration_choices() }),
    )
}

/// `GET /create`: the empty create form.
#[handler]
pub(crate) async fn create_form(state: Data<&Arc<AppState>>, csrf: &CsrfToken) -> Response {
    let form = CreateForm::default().view();
    render(
        &state,
        "create.html",
        csrf,
        json!({ "form": form, "errors": {}, "duration_choices": duration_choices() }),
    )
}

/// `POST /create`: validate, create, redirect to the vote page.
#[handler]
pub(crate) async fn create_ballot(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let window_minutes = match form.duration_mins.as_deref().map(str::trim) {
        None | Some("") => Ok(0),
        Some(raw) => oponn_core::domain::parse_window_minutes(raw),
    };
    let window_minutes = match window_minutes {
        Ok(minutes) => minutes,
        Err(error) => {
            let errors = ValidationErrors::from(error);
            return create_page(
                &state,
                headers,
                csrf,
                form.view(),
                create_form_errors(&errors),
            );
        }
    };
    let request = BallotRequest {
        measure: form.measure.clone().unwrap_or_default(),
        options: oponn_core::domain::split_option_text(form.options_raw.as_deref().unwrap_or("")),
        allow_write_in: form.allow_write_in(),
        start: if form.scheduled() {
            StartRequest::Scheduled(form.scheduled_start())
        } else {
            StartRequest::Now
        },
        window_minutes,
    };
    let owner = guest_owner(&voter(&state, jar));
    match state.service.create_ballot(&request, Some(owner)).await {
        Ok(ballot) => {
            state.metrics.ballots_created.inc();
            success_redirect(headers, &format!("/vote/{}", ballot.id()))
        }
        Err(CreateBallotError::Invalid(errors)) => create_page(
            &state,
            headers,
            csrf,
            form.view(),
            create_form_errors(&errors),
        ),
        Err(error) => unavailable(&state, &error),
    }
}

/// Query of the start-time partial.
#[derive(Debug, Deserialize)]
pub(crate) struct StartTimeQuery {
    start_time_type: Option<String>,
}

/// `GET /partials/start-time-input`: the scheduled-start input, or nothing.
#[handler]
pub(crate) async fn start_time_input(
    state: Data<&Arc<AppState>>,
    csrf: &CsrfToken,
    Query(query): Query<StartTimeQuery>,
) -> Response {
    if query.start_time_type.as_deref() == Some("scheduled") {
        render(
            &state,
            "partials/start_time_input.html",
            csrf,
            json!({ "form": {}, "errors": {} }),
        )
    } else {
        Html(String::new()).into_response()
    }
}

/// The vote form as submitted.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct VoteForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
    option_id: Option<String>,
    write_in_value: Option<String>,
}

fn vote_page(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    ballot: &oponn_core::domain::Ballot,
    form: &VoteForm,
    error: Option<&str>,
) -> Response {
    let template = if is_htmx(headers) {
        "partials/vote_form.html"
    } else {
        "vote.html"
    };
    render(
        state,
        template,
        csrf,
        json!({
            "ballot": BallotView::new(ballot, state.service.now()),
            "error": error,
            "selected": form.option_id,
            "write_in_value": form.write_in_value,
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
    match state.service.ballot(&id).await {
        Ok(ballot) => {
            // Settle the voter cookie now, so the vote posts with it.
            voter(&state, jar);
            vote_page(&state, headers, csrf, &ballot, &VoteForm::default(), None)
        }
        Err(BallotError::NotFound) => not_found(&state),
        Err(error) => unavailable(&state, &error),
    }
}

/// `POST /vote/{id}`: cast the vote; refusals are shown on the form.
#[handler]
pub(crate) async fn cast_vote(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Response {
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    let voter = voter(&state, jar);
    let choice = VoteChoice::from_form(
        form.option_id.as_deref().unwrap_or(""),
        form.write_in_value.as_deref(),
    );
    let outcome = match choice {
        Ok(choice) => state.service.cast_vote(&id, &voter, choice).await,
        Err(refusal) => Err(refusal),
    };
    let refusal = match outcome {
        Ok(_) => {
            state.metrics.votes_cast.inc();
            return success_redirect(headers, &format!("/results/{id}"));
        }
        Err(refusal) => refusal,
    };
    count_refusal(&state, &refusal);
    let Some(message) = refusal.user_message() else {
        return match refusal {
            CastVoteError::NotFound => not_found(&state),
            other => unavailable(&state, &other),
        };
    };
    match state.service.ballot(&id).await {
        Ok(ballot) => vote_page(&state, headers, csrf, &ballot, &form, Some(message)),
        Err(BallotError::NotFound) => not_found(&state),
        Err(error) => unavailable(&state, &error),
    }
}

/// `GET /results/{id}`: the results, live.
#[handler]
pub(crate) async fn results(
    state: Data<&Arc<AppState>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    match state.service.results(&id).await {
        Ok((ballot, results)) => render(
            &state,
            "results.html",
            csrf,
            json!({
                "ballot": BallotView::new(&ballot, state.service.now()),
                "results": ResultsView::from(&results),
            }),
        ),
        Err(BallotError::NotFound) => not_found(&state),
        Err(error) => unavailable(&state, &error),
    }
}

/// The updates of `feed` for one client: the current one at once (unless
/// it is the one the client last saw, `resume_after`), then each newer
/// one, until shutdown.
pub(crate) fn live_updates(
    feed: LiveFeed,
    resume_after: Option<u64>,
    shutdown: CancellationToken,
) -> impl Stream<Item = Arc<LiveUpdate>> + Send + 'static {
    let mut first = true;
    WatchStream::new(feed)
        .filter_map(std::future::ready)
        .filter(move |update| {
            let already_seen = first && resume_after == Some(update.seq);
            first = false;
            std::future::ready(!already_seen)
        })
        .take_until(shutdown.cancelled_owned())
}

/// `GET /ballots/{id}/live-results`: the results partial over SSE.
#[handler]
pub(crate) async fn live_results(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    let feed = match state.hub.watch(id).await {
        Ok(feed) => feed,
        Err(BallotError::NotFound) => return not_found(&state),
        Err(error) => return unavailable(&state, &error),
    };
    let resume_after = headers
        .get("Last-Event-ID")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    let guard = SseClientGuard::new(&state.metrics.sse_clients);
    let events = live_updates(feed, resume_after, state.shutdown.clone()).map(move |update| {
        let _connected = &guard;
        Event::message(update.html.clone())
            .event_type("results")
            .id(update.seq.to_string())
    });
    SSE::new(events).keep_alive(KEEP_ALIVE).into_response()
}
