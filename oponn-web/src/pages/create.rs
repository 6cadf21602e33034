//! The create form: `GET /create`, `POST /create`, and the start-time partial.

use std::sync::Arc;

use crate::csrf::{CsrfToken, CsrfVerifier};
use oponn_core::CreateBallotError;
use oponn_core::domain::{
    BallotRequest, BallotSettings, DEFAULT_WINDOW_MINUTES, Eligibility, Field, MethodRequest,
    ResultsVisibility, StartRequest, ValidationErrors, WindowRequest, parse_invitation_labels,
};
use poem::http::HeaderMap;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Html, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::html::{csrf_refusal, is_htmx, render, success_redirect, unavailable};
use crate::identity::{Notice, Viewer, keep_notice, viewer};
use crate::state::AppState;

/// Voting windows offered on the create form: minutes (0 = until closed),
/// or [`CUSTOM_END`] for an end date and time of the creator's choosing.
const DURATION_CHOICES: [(&str, &str); 5] = [
    ("10", "10 minutes"),
    ("60", "1 hour"),
    ("1440", "1 day"),
    ("0", "indefinite"),
    (CUSTOM_END, "custom end time"),
];

/// The largest UTC offset a browser may give, in minutes: 18 hours, the
/// bound of RFC 3339 offsets (real zones stay within 14).
const MAX_UTC_OFFSET_MINUTES: u32 = 18 * 60;

/// The window choice that reads the end from `ends_at_time`.
const CUSTOM_END: &str = "custom";

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
    /// The end of voting in the browser's local time, read when
    /// `duration_mins` is [`CUSTOM_END`].
    ends_at_time: Option<String>,
    /// The browser's UTC offset today, in JavaScript's sense (UTC minus
    /// local time, in minutes): for a date with none of its own.
    tz_offset_minutes: Option<String>,
    /// The browser's UTC offset on the scheduled start's date.
    start_offset_minutes: Option<String>,
    /// The browser's UTC offset on the custom end's date.
    end_offset_minutes: Option<String>,
    eligibility: Option<String>,
    allow_vote_change: Option<String>,
    results_visibility: Option<String>,
    method: Option<String>,
    min_choices: Option<String>,
    max_choices: Option<String>,
    publish_bulletin: Option<String>,
    /// How many voter links to issue with an invite-only ballot.
    voter_links: Option<String>,
    /// Their labels, one per line (or none).
    voter_labels: Option<String>,
}

impl CreateForm {
    fn scheduled(&self) -> bool {
        self.start_time_type.as_deref() == Some("scheduled")
    }

    fn allow_write_in(&self) -> bool {
        checked(self.allow_write_in.as_deref())
    }

    /// The settings chosen; a value no form offers falls back to the default.
    fn settings(&self) -> BallotSettings {
        BallotSettings {
            eligibility: self
                .eligibility
                .as_deref()
                .and_then(Eligibility::parse)
                .unwrap_or_default(),
            allow_vote_change: checked(self.allow_vote_change.as_deref()),
            results_visibility: self
                .results_visibility
                .as_deref()
                .and_then(ResultsVisibility::parse)
                .unwrap_or_default(),
            publish_bulletin: checked(self.publish_bulletin.as_deref()),
        }
    }

    /// The method chosen, with approval bounds as typed (a blank bound is
    /// the default; text that is no number is refused by the core as out
    /// of range).
    fn method(&self) -> MethodRequest {
        let bound = |raw: Option<&str>| {
            let raw = raw.map(str::trim).filter(|raw| !raw.is_empty())?;
            Some(match raw.parse::<i64>() {
                Ok(number) => number,
                // Digits past i64: more than any ballot's options.
                Err(_) if raw.bytes().all(|byte| byte.is_ascii_digit()) => i64::MAX,
                Err(_) => 0,
            })
        };
        match self.method.as_deref() {
            Some("approval") => MethodRequest::Approval {
                min_choices: bound(self.min_choices.as_deref()),
                max_choices: bound(self.max_choices.as_deref()),
            },
            Some("ranked") => MethodRequest::Ranked,
            _ => MethodRequest::Single,
        }
    }

    /// The values to show back in the form.
    fn view(&self) -> Value {
        let duration = self
            .duration_mins
            .as_deref()
            .map(str::trim)
            .filter(|raw| *raw == CUSTOM_END || raw.parse::<u32>().is_ok())
            .map_or_else(|| DEFAULT_WINDOW_MINUTES.to_string(), str::to_owned);
        json!({
            "measure": self.measure.clone().unwrap_or_default(),
            "options_raw": self.options_raw.clone().unwrap_or_default(),
            "allow_write_in": self.allow_write_in(),
            "start_time_type": if self.scheduled() { "scheduled" } else { "now" },
            "scheduled_start_time": self.scheduled_start_time.clone().unwrap_or_default(),
            "duration_mins": duration,
            "ends_at_time": self.ends_at_time.clone().unwrap_or_default(),
            "eligibility": self.settings().eligibility.as_str(),
            "allow_vote_change": self.settings().allow_vote_change,
            "publish_bulletin": self.settings().publish_bulletin,
            "voter_links": self.voter_links.clone().unwrap_or_default(),
            "voter_labels": self.voter_labels.clone().unwrap_or_default(),
            "results_visibility": self.settings().results_visibility.as_str(),
            "method": match self.method() {
                MethodRequest::Approval { .. } => "approval",
                MethodRequest::Ranked => "ranked",
                MethodRequest::Single => "single",
            },
            "min_choices": self.min_choices.clone().unwrap_or_default(),
            "max_choices": self.max_choices.clone().unwrap_or_default(),
        })
    }

    /// The scheduled start as text, with the browser's UTC offset attached
    /// when it sent a bare `datetime-local` value (which has none).
    fn scheduled_start(&self) -> String {
        self.in_browser_zone(
            self.scheduled_start_time.as_deref(),
            self.start_offset_minutes.as_deref(),
        )
    }

    /// The window asked for: the chosen minutes, a custom end, or the
    /// default when the form names none.
    fn window(&self) -> WindowRequest {
        match self.duration_mins.as_deref().map(str::trim) {
            None | Some("") => WindowRequest::Minutes(DEFAULT_WINDOW_MINUTES),
            Some(CUSTOM_END) => WindowRequest::Until(self.in_browser_zone(
                self.ends_at_time.as_deref(),
                self.end_offset_minutes.as_deref(),
            )),
            // The window is read by the core, so its error is reported
            // with every other field's.
            Some(typed) => WindowRequest::Typed(typed.to_owned()),
        }
    }

    /// `text` with the browser's UTC offset attached when it is a bare
    /// `datetime-local` value (which has none): the offset the browser gave
    /// for that date (`date_offset`), else today's; otherwise as typed.
    fn in_browser_zone(&self, text: Option<&str>, date_offset: Option<&str>) -> String {
        let text = text.unwrap_or("").trim();
        let offset = |raw: Option<&str>| {
            raw.and_then(|raw| raw.trim().parse::<i32>().ok())
                .filter(|minutes| minutes.unsigned_abs() <= MAX_UTC_OFFSET_MINUTES)
        };
        let browser_offset =
            offset(date_offset).or_else(|| offset(self.tz_offset_minutes.as_deref()));
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
            Field::MinChoices => "min_choices",
            Field::MaxChoices => "max_choices",
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
    viewer: &Viewer,
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
        Some(viewer),
        json!({ "form": form, "errors": errors, "duration_choices": duration_choices() }),
    )
}

/// `GET /create`: the empty create form.
#[handler]
pub(crate) async fn create_form(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
) -> Response {
    let form = CreateForm::default().view();
    render(
        &state,
        "create.html",
        csrf,
        Some(&viewer(&state, jar).await),
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
    form: Option<Form<CreateForm>>,
) -> Response {
    // A body that is not a form is treated as an empty one: the CSRF
    // check then refuses it with 403, like any request without a token.
    let form = form.map(|Form(form)| form).unwrap_or_default();
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let viewer = viewer(&state, jar).await;
    // Voting links asked for with an invite-only ballot are checked
    // first, so a ballot is never created without the links it asked for.
    let invited = form.settings().eligibility == Eligibility::Invited;
    let (link_count, link_labels) =
        super::trust::links_asked(form.voter_links.as_deref(), form.voter_labels.as_deref());
    // Links are asked for when either field says anything; then they must
    // be a valid request, so typing `abc` or `-1` is an error, not none.
    let links_asked = [&form.voter_links, &form.voter_labels]
        .into_iter()
        .any(|field| field.as_deref().is_some_and(|text| !text.trim().is_empty()));
    if invited
        && links_asked
        && let Err(error) = parse_invitation_labels(link_count, &link_labels)
    {
        return create_page(
            &state,
            headers,
            csrf,
            &viewer,
            form.view(),
            json!({ "voter_links": error.message() }),
        );
    }
    let request = BallotRequest {
        measure: form.measure.clone().unwrap_or_default(),
        options: oponn_core::domain::split_option_text(form.options_raw.as_deref().unwrap_or("")),
        allow_write_in: form.allow_write_in(),
        start: if form.scheduled() {
            StartRequest::Scheduled(form.scheduled_start())
        } else {
            StartRequest::Now
        },
        window: form.window(),
        settings: form.settings(),
        method: form.method(),
    };
    match state
        .service
        .create_ballot(&request, Some(viewer.owner.clone()))
        .await
    {
        Ok(ballot) if invited && links_asked => {
            state.metrics.ballots_created.inc();
            match state
                .service
                .issue_invitations(&ballot.id(), &viewer.owner, link_count, &link_labels)
                .await
            {
                Ok(issued) => {
                    super::trust::links_created(&state, headers, csrf, &viewer, &ballot, &issued)
                }
                // The ballot stands; its owner issues links from its page.
                Err(error) => {
                    tracing::warn!(ballot = %ballot.id(), %error, "issuing voting links with a new ballot failed");
                    success_redirect(headers, &format!("/ballots/{}/invitations", ballot.id()))
                }
            }
        }
        Ok(ballot) if invited => {
            state.metrics.ballots_created.inc();
            success_redirect(headers, &format!("/ballots/{}/invitations", ballot.id()))
        }
        Ok(ballot) => {
            state.metrics.ballots_created.inc();
            // The vote page opens once with the share view.
            keep_notice(&state, jar, Notice::Created);
            success_redirect(headers, &format!("/vote/{}", ballot.id()))
        }
        Err(CreateBallotError::Invalid(errors)) => create_page(
            &state,
            headers,
            csrf,
            &viewer,
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
            None,
            json!({ "form": {}, "errors": {} }),
        )
    } else {
        Html(String::new()).into_response()
    }
}

/// A checkbox's value: ticked when present with a true-ish value.
fn checked(value: Option<&str>) -> bool {
    matches!(value.map(str::trim), Some("on" | "true" | "1" | "yes"))
}
