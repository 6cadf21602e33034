//! How the API refuses: one error type, [`ApiError`], that every
//! operation returns as `Result<_, ApiError>`, each refusal a JSON problem;
//! and the wrapper that answers poem's own refusals the same way.

use std::sync::Arc;

use oponn_core::domain::{BallotId, Field, ValidationErrors, messages};
use oponn_core::{BallotError, CastVoteError, CreateBallotError, OwnerActionError};
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, EndpointExt as _, IntoResponse};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApiService};
use serde_json::Value;

use super::Api;
use crate::logging::Causes;

/// The message of every `503`: nothing was changed, try again.
const UNAVAILABLE: &str =
    "Oponn is temporarily unavailable; nothing was changed. Try again shortly.";

/// The message of a `404`.
const NO_SUCH_BALLOT: &str = "no such ballot";

/// Why an API request was refused: every operation's error, each a JSON
/// problem (`{"message"}`; `422` adds one entry per broken field rule).
///
/// One type for every operation, so each refusal has one shape and one
/// status everywhere; each operation's description lists them all, and
/// the variants say which operations answer them.
#[derive(Debug, ApiResponse)]
pub(crate) enum ApiError {
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    #[allow(
        dead_code,
        reason = "answered by `with_problem_refusals`; declared for the schema"
    )]
    BadRequest(Json<Problem>),
    /// Refused for this caller: the results are hidden from them for now,
    /// only the owner may close or delete, the ballot takes votes from
    /// signed-in accounts only, or the request came from another site.
    #[oai(status = 403)]
    Forbidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// A vote this voter cannot cast now: they already voted, or voting
    /// has not started or has ended.
    #[oai(status = 409)]
    Conflict(Json<Problem>),
    /// The request body is larger than the server accepts.
    #[oai(status = 413)]
    #[allow(
        dead_code,
        reason = "answered by the body-size limit; declared for the schema"
    )]
    TooLarge(Json<Problem>),
    /// The request body is not `application/json`.
    #[oai(status = 415)]
    #[allow(
        dead_code,
        reason = "answered by `with_problem_refusals`; declared for the schema"
    )]
    UnsupportedMediaType(Json<Problem>),
    /// The input broke the ballot's rules: a ballot that cannot be
    /// created, or a choice that is not valid for this ballot.
    #[oai(status = 422)]
    Invalid(Json<ValidationProblem>),
    /// Too many requests of this kind from this client (ballots created,
    /// write-ins, live streams opened); try again after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// A dependency is down; nothing was changed (a vote was not
    /// recorded). Try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

impl ApiError {
    /// `404`: no such ballot.
    pub(super) fn not_found() -> Self {
        Self::NotFound(Problem::new(NO_SUCH_BALLOT))
    }

    /// `503`, with `error` and its causes logged as what `doing` failed
    /// on, with the ballot concerned when there is one.
    pub(super) fn unavailable(
        doing: &str,
        ballot: Option<BallotId>,
        error: &(dyn std::error::Error + 'static),
    ) -> Self {
        match ballot {
            Some(ballot) => tracing::error!(error = %Causes(error), %ballot, "{doing} failed"),
            None => tracing::error!(error = %Causes(error), "{doing} failed"),
        }
        Self::Unavailable(Problem::new(UNAVAILABLE))
    }

    /// `422` for a choice (or request) refused with one message.
    pub(super) fn invalid(field: &'static str, message: &str) -> Self {
        Self::Invalid(Json(ValidationProblem {
            message: message.to_owned(),
            errors: vec![FieldProblem {
                field: field.to_owned(),
                message: message.to_owned(),
            }],
        }))
    }

    /// The answer to a refused read of `ballot`: `404`, or `503`.
    pub(super) fn from_read(doing: &str, ballot: BallotId, error: BallotError) -> Self {
        match error {
            BallotError::NotFound => Self::not_found(),
            other => Self::unavailable(doing, Some(ballot), &other),
        }
    }

    /// The answer to a refused creation: `422` naming each broken rule, or `503`.
    pub(super) fn from_create(error: CreateBallotError) -> Self {
        match error {
            CreateBallotError::Invalid(errors) => Self::Invalid(validation_problem(&errors)),
            other => Self::unavailable("creating a ballot", None, &other),
        }
    }

    /// The answer to a refused close or delete of `ballot`.
    pub(super) fn from_owner_action(
        doing: &str,
        ballot: BallotId,
        error: OwnerActionError,
    ) -> Self {
        match error {
            OwnerActionError::NotFound => Self::not_found(),
            OwnerActionError::Forbidden => Self::Forbidden(Problem::new(messages::NOT_OWNER)),
            other => Self::unavailable(doing, Some(ballot), &other),
        }
    }

    /// The answer to a refused vote on `ballot`, by the rule it broke;
    /// `choice_field` is the request field that carried the choice
    /// (`option_id`, `option_ids` or `ranking`).
    pub(super) fn from_vote(
        ballot: BallotId,
        choice_field: &'static str,
        error: CastVoteError,
    ) -> Self {
        let message = error
            .user_message()
            .unwrap_or(std::borrow::Cow::Borrowed("invalid vote"));
        match error {
            CastVoteError::NotFound => Self::not_found(),
            CastVoteError::SignInRequired
            | CastVoteError::InvitationRequired
            | CastVoteError::InvitationNotValid => Self::Forbidden(Problem::new(message)),
            CastVoteError::AlreadyVoted | CastVoteError::NotOpenYet | CastVoteError::Ended => {
                Self::Conflict(Problem::new(message))
            }
            CastVoteError::Unavailable(error) => {
                Self::unavailable("casting a vote", Some(ballot), &error)
            }
            CastVoteError::WriteInsNotAllowed
            | CastVoteError::InvalidWriteIn(_)
            | CastVoteError::WriteInLimitReached { .. } => Self::invalid("write_in", &message),
            _ => Self::invalid(choice_field, &message),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Object)]
pub(crate) struct Problem {
    /// What went wrong, for people.
    message: String,
}

impl Problem {
    /// A problem saying `message`.
    pub(crate) fn new(message: impl Into<String>) -> Json<Self> {
        Json(Self {
            message: message.into(),
        })
    }
}

/// Input that broke rules, with a message per field.
#[derive(Debug, Object)]
pub(crate) struct ValidationProblem {
    /// A summary; for a vote, the rule it broke.
    message: String,
    /// One entry per field that broke a rule.
    errors: Vec<FieldProblem>,
}

/// One field's broken rule.
#[derive(Debug, Object)]
pub(crate) struct FieldProblem {
    /// The request field: `measure`, `options`, `scheduled_start`,
    /// `window_minutes`, `min_choices`, `max_choices`, `option_id`,
    /// `option_ids`, `ranking` or `write_in`.
    field: String,
    /// The rule, in words.
    message: String,
}

/// The request field `field` is checked on.
fn api_field(field: Field) -> &'static str {
    match field {
        Field::Measure => "measure",
        Field::Options => "options",
        Field::ScheduledStart => "scheduled_start",
        Field::VotingWindow => "window_minutes",
        Field::WriteIn => "write_in",
        Field::MinChoices => "min_choices",
        Field::MaxChoices => "max_choices",
        Field::Choice => "option_ids",
        _ => "request",
    }
}

/// The `422` body of `errors`, each named by its request field.
fn validation_problem(errors: &ValidationErrors) -> Json<ValidationProblem> {
    Json(ValidationProblem {
        message: "the request broke validation rules".to_owned(),
        errors: errors
            .iter()
            .map(|error| FieldProblem {
                field: api_field(error.field()).to_owned(),
                message: error.message().to_owned(),
            })
            .collect(),
    })
}

/// The API endpoint, with poem's own refusals (no such path, a method the
/// path does not take, a body or parameter that cannot be read) answered
/// as JSON problems like the operations' own, and `405` listing the
/// path's methods in `Allow`.
pub(crate) fn with_problem_refusals(service: OpenApiService<Api, ()>) -> impl Endpoint {
    let methods = Arc::new(PathMethods::from_spec(&service.spec()));
    service.around(move |endpoint, request| {
        let methods = Arc::clone(&methods);
        async move {
            let path = request.uri().path().to_owned();
            let error = match endpoint.call(request).await {
                Ok(response) => return Ok(response.into_response()),
                // An operation's own refusal: an [`ApiError`], already a
                // JSON problem with its headers.
                Err(error) if error.is_from_response() => return Ok(error.into_response()),
                Err(error) => error,
            };
            let status = error.status();
            let message = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                format!("send the request body as application/json: {error}")
            } else {
                error.to_string()
            };
            let mut response = Problem::new(message).with_status(status).into_response();
            if status == StatusCode::METHOD_NOT_ALLOWED
                && let Some(allow) = methods.allow(&path)
            {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            Ok(response)
        }
    })
}

/// Each documented path template with the methods it takes, for `Allow`.
struct PathMethods(Vec<(Vec<String>, HeaderValue)>);

impl PathMethods {
    fn from_spec(spec: &str) -> Self {
        let document: Value = serde_json::from_str(spec).unwrap_or_default();
        let paths = document
            .get("paths")
            .and_then(Value::as_object)
            .map(|paths| {
                paths
                    .iter()
                    .filter_map(|(template, operations)| {
                        let methods: Vec<String> = operations
                            .as_object()?
                            .keys()
                            .map(|method| method.to_ascii_uppercase())
                            .collect();
                        let allow = HeaderValue::from_str(&methods.join(", ")).ok()?;
                        Some((template.split('/').map(str::to_owned).collect(), allow))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self(paths)
    }

    /// The `Allow` value of the template `path` matches, if any.
    fn allow(&self, path: &str) -> Option<HeaderValue> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == segments.len()
                    && template.iter().zip(&segments).all(|(part, segment)| {
                        part == segment || (part.starts_with('{') && !segment.is_empty())
                    })
            })
            .map(|(_, allow)| allow.clone())
    }
}
