//! The JSON API under `/api/v1`, described by poem-openapi.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use oponn_core::domain::{
    Ballot, BallotId, BallotRequest, BallotSettings, Eligibility, Field, LABEL_MAX_CHARS,
    MAX_OPTIONS, MAX_WINDOW_MINUTES, MEASURE_MAX_CHARS, MEASURE_MIN_CHARS, Results,
    ResultsVisibility, StartRequest, ValidationErrors,
};
use oponn_core::{BallotError, CastVoteError, CreateBallotError, OwnerActionError, VoteChoice};
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::web::cookie::CookieJar;
use poem::{Endpoint, EndpointExt as _, IntoResponse, Response};
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::{EventStream, Json, Payload as _};
use poem_openapi::registry::{MetaMediaType, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, OpenApiService, ResponseContent, Tags};
use serde_json::Value;
use time::OffsetDateTime;

use crate::guard::ClientAddr;
use crate::identity::viewer;
use crate::metrics::SseClientGuard;
use crate::rates::Rate;
use crate::state::AppState;

/// How often an idle event stream sends a keep-alive comment.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Tags)]
enum ApiTags {
    /// Ballots: create and read.
    Ballots,
    /// Votes and tallies.
    Votes,
}

/// The JSON API.
pub(crate) struct Api;

/// A request value whose schema states rules that the core enforces.
///
/// A poem-openapi validator would refuse such input itself, with a `400`
/// naming one rule, before the core saw it; the core answers `422` naming
/// every broken rule in its own words. So these rules are only documented
/// here, and the core stays the one place that checks them.
pub(crate) struct Documented<T, R>(T, PhantomData<fn() -> R>);

/// The rules a [`Documented`] value's schema states.
pub(crate) trait SchemaRules {
    /// The documented schema, given the plain schema of the value's type.
    fn schema(plain: MetaSchemaRef) -> MetaSchemaRef;

    /// The names of the fields the schema declares as text (a string, or
    /// an array of strings): poem-openapi would read a number or a boolean
    /// there as its text (`false` as `"false"`), which the schema does not
    /// allow, so such a body is refused before it is parsed.
    fn text_fields() -> &'static [&'static str] {
        &[]
    }
}

/// `None` when every field `names` lists in `value` holds text (or null,
/// or is absent); else the first field that does not.
fn non_text_field(value: Option<&Value>, names: &[&'static str]) -> Option<&'static str> {
    let object = value?.as_object()?;
    names.iter().copied().find(|name| match object.get(*name) {
        None | Some(Value::Null | Value::String(_)) => false,
        Some(Value::Array(items)) => !items.iter().all(Value::is_string),
        Some(_) => true,
    })
}

impl<T, R> Documented<T, R> {
    /// The value as parsed.
    fn into_inner(self) -> T {
        self.0
    }
}

impl<T, R> Deref for Documented<T, R> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: std::fmt::Debug, R> std::fmt::Debug for Documented<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Default, R> Default for Documented<T, R> {
    fn default() -> Self {
        Self(T::default(), PhantomData)
    }
}

impl<T: Type, R: SchemaRules> Type for Documented<T, R> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        R::schema(T::schema_ref())
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T: ParseFromJSON, R: SchemaRules> ParseFromJSON for Documented<T, R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        if let Some(field) = non_text_field(value.as_ref(), R::text_fields()) {
            return Err(ParseError::custom(format!("`{field}` must be text")));
        }
        T::parse_from_json(value)
            .map(|value| Self(value, PhantomData))
            .map_err(ParseError::propagate)
    }
}

impl<T: ParseFromParameter, R: SchemaRules> ParseFromParameter for Documented<T, R> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        T::parse_from_parameter(value)
            .map(|value| Self(value, PhantomData))
            .map_err(ParseError::propagate)
    }
}

impl<T: ToJSON, R: SchemaRules> ToJSON for Documented<T, R> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// Characters the core refuses in user text: controls, bidi controls and
/// invisible (default-ignorable) characters of the Basic Multilingual Plane.
const REFUSED_CHARACTERS: &str = r"\x00-\x1F\x7F-\x9F\xAD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u2028-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB";

/// User text as the core keeps it: no refused characters, and no
/// whitespace at either end (the core trims it, so lengths are counted
/// without it).
fn text_pattern() -> String {
    format!("^[^\\s{REFUSED_CHARACTERS}](?:[^{REFUSED_CHARACTERS}]*[^\\s{REFUSED_CHARACTERS}])?$")
}

/// User text of `min` to `max` characters.
fn text_schema(min: usize, max: usize) -> MetaSchema {
    MetaSchema {
        min_length: Some(min),
        max_length: Some(max),
        pattern: Some(text_pattern()),
        ..MetaSchema::new("string")
    }
}

/// An inline schema.
fn inline(schema: MetaSchema) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(schema))
}

/// An object schema stating only these properties' rules.
fn object(properties: Vec<(&'static str, MetaSchema)>) -> MetaSchema {
    MetaSchema {
        properties: properties
            .into_iter()
            .map(|(name, schema)| (name, inline(schema)))
            .collect(),
        ..MetaSchema::new("object")
    }
}

/// A ballot to create: the rules of each field, and at least 2 options, or
/// 1 when write-ins are allowed.
#[derive(Debug)]
pub(crate) struct CreateRules;

impl SchemaRules for CreateRules {
    fn text_fields() -> &'static [&'static str] {
        &["measure", "options", "scheduled_start"]
    }

    fn schema(plain: MetaSchemaRef) -> MetaSchemaRef {
        let fields = inline(object(vec![
            ("measure", text_schema(MEASURE_MIN_CHARS, MEASURE_MAX_CHARS)),
            (
                "options",
                MetaSchema {
                    min_items: Some(1),
                    max_items: Some(MAX_OPTIONS),
                    unique_items: Some(true),
                    items: Some(Box::new(inline(text_schema(1, LABEL_MAX_CHARS)))),
                    ..MetaSchema::new("array")
                },
            ),
            (
                "scheduled_start",
                MetaSchema {
                    format: Some("date-time"),
                    nullable: true,
                    ..MetaSchema::new("string")
                },
            ),
            (
                "window_minutes",
                MetaSchema {
                    minimum: Some(0.0),
                    maximum: Some(f64::from(MAX_WINDOW_MINUTES)),
                    ..MetaSchema::new("integer")
                },
            ),
        ]));
        let write_ins = inline(MetaSchema {
            required: vec!["allow_write_in"],
            properties: vec![(
                "allow_write_in",
                inline(MetaSchema {
                    enum_items: vec![Value::Bool(true)],
                    ..MetaSchema::new("boolean")
                }),
            )],
            ..MetaSchema::new("object")
        });
        let two_options = inline(object(vec![(
            "options",
            MetaSchema {
                min_items: Some(2),
                ..MetaSchema::new("array")
            },
        )]));
        inline(MetaSchema {
            all_of: vec![plain, fields],
            any_of: vec![write_ins, two_options],
            ..MetaSchema::new("object")
        })
    }
}

/// A vote names exactly one of `option_id` and `write_in` (1 to 64
/// characters); the other is absent or null.
#[derive(Debug)]
pub(crate) struct VoteRules;

impl SchemaRules for VoteRules {
    fn text_fields() -> &'static [&'static str] {
        &["write_in"]
    }

    fn schema(plain: MetaSchemaRef) -> MetaSchemaRef {
        let absent = || MetaSchema {
            enum_items: vec![Value::Null],
            nullable: true,
            ..MetaSchema::ANY
        };
        let by_option = inline(MetaSchema {
            required: vec!["option_id"],
            ..object(vec![
                (
                    "option_id",
                    MetaSchema {
                        // Options are numbered from 1.
                        minimum: Some(1.0),
                        maximum: Some(f64::from(u32::MAX)),
                        ..MetaSchema::new_with_format("integer", "uint32")
                    },
                ),
                ("write_in", absent()),
            ])
        });
        let by_write_in = inline(MetaSchema {
            required: vec!["write_in"],
            ..object(vec![
                ("write_in", text_schema(1, LABEL_MAX_CHARS)),
                ("option_id", absent()),
            ])
        });
        inline(MetaSchema {
            all_of: vec![plain],
            one_of: vec![by_option, by_write_in],
            ..MetaSchema::new("object")
        })
    }
}

/// A ballot id: 22 characters of URL-safe base64 encoding 16 bytes, so
/// the last one carries no stray bits. Any other id is `404`.
#[derive(Debug)]
pub(crate) struct BallotIdRules;

impl SchemaRules for BallotIdRules {
    fn schema(plain: MetaSchemaRef) -> MetaSchemaRef {
        plain.merge(MetaSchema {
            min_length: Some(22),
            max_length: Some(22),
            pattern: Some("^[A-Za-z0-9_-]{21}[AQgw]$".to_owned()),
            ..MetaSchema::ANY
        })
    }
}

/// A ballot id in a path.
type BallotIdParam = Documented<String, BallotIdRules>;

/// A request poem-openapi could not read, answered with the operation's
/// own problem response instead of poem's plain text.
pub(crate) trait ParseRefusal {
    /// `400`: the request is malformed (bad JSON, a bad parameter).
    fn bad_request(problem: Json<Problem>) -> Self;
    /// `415`: the body is not `application/json`.
    fn unsupported_media_type(problem: Json<Problem>) -> Self
    where
        Self: Sized,
    {
        Self::bad_request(problem)
    }
}

/// The `bad_request_handler` of every API response.
fn refuse_unparsed<R: ParseRefusal>(error: poem::Error) -> R {
    if error.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        R::unsupported_media_type(Problem::new(format!(
            "send the request body as application/json: {error}"
        )))
    } else {
        R::bad_request(Problem::new(error.to_string()))
    }
}

macro_rules! parse_refusal {
    ($response:ident) => {
        impl ParseRefusal for $response {
            fn bad_request(problem: Json<Problem>) -> Self {
                Self::BadRequest(problem)
            }
        }
    };
    ($response:ident, with_body) => {
        impl ParseRefusal for $response {
            fn bad_request(problem: Json<Problem>) -> Self {
                Self::BadRequest(problem)
            }
            fn unsupported_media_type(problem: Json<Problem>) -> Self {
                Self::UnsupportedMediaType(problem)
            }
        }
    };
}

/// A ballot to create.
#[derive(Debug, Object)]
pub(crate) struct CreateBallotBody {
    /// The question: 3 to 255 characters after trimming.
    measure: String,
    /// The options: each 1 to 64 characters, unique ignoring case; at
    /// least 2 (1 with write-ins), at most 64.
    options: Vec<String>,
    /// Whether voters may write in their own option.
    #[oai(default)]
    allow_write_in: bool,
    /// When voting opens (RFC 3339); now when absent or null.
    #[oai(nullable)]
    scheduled_start: Option<String>,
    /// How long voting stays open, in minutes; 0 (the default) means until
    /// closed; at most 525600 (a year).
    #[oai(default)]
    window_minutes: u32,
    /// Who may vote (default `anyone`).
    #[oai(default)]
    eligibility: EligibilityBody,
    /// Whether voters may change their vote while the ballot is open; the
    /// last choice counts (default false).
    #[oai(default)]
    allow_vote_change: bool,
    /// When results may be seen (default `always`).
    #[oai(default)]
    results_visibility: VisibilityBody,
}

/// Who may vote on a ballot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum EligibilityBody {
    /// Anyone with the link: one vote per browser, or per account when signed in.
    #[default]
    Anyone,
    /// Signed-in accounts only: one vote per account.
    SignedIn,
}

/// When a ballot's results may be seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum VisibilityBody {
    /// Always, by anyone with the link.
    #[default]
    Always,
    /// By a voter once they voted; by everyone once voting ends.
    AfterVoting,
    /// By everyone, owner included, once voting ends.
    AfterClose,
}

impl From<EligibilityBody> for Eligibility {
    fn from(body: EligibilityBody) -> Self {
        match body {
            EligibilityBody::Anyone => Eligibility::Anyone,
            EligibilityBody::SignedIn => Eligibility::SignedInOnly,
        }
    }
}

impl From<Eligibility> for EligibilityBody {
    fn from(eligibility: Eligibility) -> Self {
        match eligibility {
            Eligibility::Anyone => EligibilityBody::Anyone,
            Eligibility::SignedInOnly => EligibilityBody::SignedIn,
        }
    }
}

impl From<VisibilityBody> for ResultsVisibility {
    fn from(body: VisibilityBody) -> Self {
        match body {
            VisibilityBody::Always => ResultsVisibility::Always,
            VisibilityBody::AfterVoting => ResultsVisibility::AfterVoting,
            VisibilityBody::AfterClose => ResultsVisibility::AfterClose,
        }
    }
}

impl From<ResultsVisibility> for VisibilityBody {
    fn from(visibility: ResultsVisibility) -> Self {
        match visibility {
            ResultsVisibility::Always => VisibilityBody::Always,
            ResultsVisibility::AfterVoting => VisibilityBody::AfterVoting,
            ResultsVisibility::AfterClose => VisibilityBody::AfterClose,
        }
    }
}

/// A ballot.
#[derive(Debug, Object)]
pub(crate) struct BallotBody {
    /// The ballot's id: 22 URL-safe characters.
    id: String,
    /// The question.
    measure: String,
    /// `pending`, `active` or `ended`.
    status: String,
    /// The status in words: "starts in 5 minutes", "ends in 2 hours", "voting open", "voting closed".
    status_label: String,
    /// Whether voters may write in their own option.
    allow_write_in: bool,
    /// When voting opens.
    starts_at: OffsetDateTime,
    /// When voting closes by itself, if ever.
    #[oai(nullable)]
    ends_at: Option<OffsetDateTime>,
    /// When the owner closed voting early, if they did.
    #[oai(nullable)]
    closed_at: Option<OffsetDateTime>,
    /// The options, predefined first, then write-ins.
    options: Vec<OptionBody>,
    /// Who may vote.
    eligibility: EligibilityBody,
    /// Whether voters may change their vote while the ballot is open.
    allow_vote_change: bool,
    /// When results may be seen.
    results_visibility: VisibilityBody,
}

impl BallotBody {
    fn new(ballot: &Ballot, now: OffsetDateTime) -> Self {
        let status = ballot.status_at(now);
        Self {
            id: ballot.id().to_string(),
            measure: ballot.measure().to_owned(),
            status: status.as_str().to_owned(),
            status_label: status.label(),
            allow_write_in: ballot.allow_write_in(),
            starts_at: ballot.schedule().starts_at(),
            ends_at: ballot.schedule().ends_at(),
            closed_at: ballot.closed_at(),
            options: ballot
                .options()
                .iter()
                .map(|option| OptionBody {
                    id: option.id().get(),
                    label: option.label().to_owned(),
                    write_in: option.is_write_in(),
                })
                .collect(),
            eligibility: ballot.settings().eligibility.into(),
            allow_vote_change: ballot.settings().allow_vote_change,
            results_visibility: ballot.settings().results_visibility.into(),
        }
    }
}

/// One option of a ballot.
#[derive(Debug, Object)]
pub(crate) struct OptionBody {
    /// The option's number, to vote with.
    id: u32,
    /// Its text.
    label: String,
    /// True when a voter wrote it in.
    write_in: bool,
}

/// A vote: exactly one of `option_id` and `write_in`.
#[derive(Debug, Object)]
pub(crate) struct VoteBody {
    /// The chosen option's id.
    #[oai(nullable)]
    option_id: Option<u32>,
    /// A write-in (when the ballot allows them): 1 to 64 characters; one
    /// equal to an existing option, ignoring case, counts toward it.
    #[oai(nullable)]
    write_in: Option<String>,
}

/// An accepted, durable vote.
#[derive(Debug, Object)]
pub(crate) struct VoteAccepted {
    /// The option the vote counted toward.
    option_id: u32,
    /// When this changed an earlier vote: the option it was moved from.
    #[oai(nullable)]
    changed_from: Option<u32>,
    /// The tally including this vote; null while the ballot's results
    /// are hidden from this voter.
    #[oai(nullable)]
    tally: Option<TallyBody>,
}

/// A ballot's tally.
#[derive(Debug, Clone, Object)]
pub(crate) struct TallyBody {
    /// The ballot's id.
    ballot_id: String,
    /// Grows by one with each vote; the newest tally has the largest.
    seq: u64,
    /// Votes across all options.
    total: u64,
    /// Every option with its count.
    options: Vec<TallyRow>,
}

impl TallyBody {
    pub(crate) fn new(ballot: &Ballot, results: &Results) -> Self {
        Self {
            ballot_id: ballot.id().to_string(),
            seq: results.seq,
            total: results.total,
            options: results
                .rows
                .iter()
                .map(|row| TallyRow {
                    option_id: row.option_id.get(),
                    label: row.label.clone(),
                    count: row.count,
                    percent: row.percent,
                    leading: row.leading,
                })
                .collect(),
        }
    }
}

/// One option's count.
#[derive(Debug, Clone, Object)]
pub(crate) struct TallyRow {
    /// The option's id.
    option_id: u32,
    /// Its text.
    label: String,
    /// Votes for it.
    count: u64,
    /// Its share of all votes, 0 to 100.
    percent: f64,
    /// True when no option has more votes (and it has at least one).
    leading: bool,
}

/// Why a request was refused.
#[derive(Debug, Object)]
pub(crate) struct Problem {
    /// What went wrong, for people.
    message: String,
}

impl Problem {
    fn new(message: impl Into<String>) -> Json<Self> {
        Json(Self {
            message: message.into(),
        })
    }
}

/// Input that broke rules, with a message per field.
#[derive(Debug, Object)]
pub(crate) struct ValidationProblem {
    /// A summary.
    message: String,
    /// One entry per field that broke a rule.
    errors: Vec<FieldProblem>,
}

/// One field's broken rule.
#[derive(Debug, Object)]
pub(crate) struct FieldProblem {
    /// The request field: `measure`, `options`, `scheduled_start`, `window_minutes` or `write_in`.
    field: String,
    /// The rule, in words.
    message: String,
}

fn api_field(field: Field) -> &'static str {
    match field {
        Field::Measure => "measure",
        Field::Options => "options",
        Field::ScheduledStart => "scheduled_start",
        Field::VotingWindow => "window_minutes",
        Field::WriteIn => "write_in",
        _ => "request",
    }
}

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

const UNAVAILABLE: &str =
    "Oponn is temporarily unavailable; nothing was changed. Try again shortly.";

#[derive(ApiResponse)]
#[oai(bad_request_handler = "refuse_unparsed")]
enum CreateBallotResponse {
    /// The ballot was created.
    #[oai(status = 201)]
    Created(Json<BallotBody>, #[oai(header = "Location")] String),
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<Problem>),
    /// The request came from another site.
    #[oai(status = 403)]
    #[allow(
        dead_code,
        reason = "answered by the cross-site check; declared for the schema"
    )]
    CrossSite(Json<Problem>),
    /// The request body is larger than the server accepts.
    #[oai(status = 413)]
    #[allow(
        dead_code,
        reason = "answered by the body-size limit; declared for the schema"
    )]
    TooLarge(Json<Problem>),
    /// The request body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<Problem>),
    /// The ballot broke creation rules.
    #[oai(status = 422)]
    Invalid(Json<ValidationProblem>),
    /// Too many requests from this client; try again after `Retry-After` seconds.
    #[oai(status = 429)]
    #[allow(
        dead_code,
        reason = "answered by the rate limiter; declared for the schema"
    )]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "refuse_unparsed")]
enum BallotResponse {
    /// The ballot.
    #[oai(status = 200)]
    Ok(Json<BallotBody>),
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "refuse_unparsed")]
enum TallyResponse {
    /// The current tally.
    #[oai(status = 200)]
    Ok(Json<TallyBody>),
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<Problem>),
    /// The ballot's results are hidden from this viewer for now.
    #[oai(status = 403)]
    Hidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "refuse_unparsed")]
enum VoteResponse {
    /// The vote is recorded and durable.
    #[oai(status = 201)]
    Accepted(Json<VoteAccepted>),
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<Problem>),
    /// The ballot takes votes from signed-in accounts only, or the request
    /// came from another site.
    #[oai(status = 403)]
    Forbidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// This voter already voted, or voting has not started or has ended.
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
    UnsupportedMediaType(Json<Problem>),
    /// The choice is not valid for this ballot.
    #[oai(status = 422)]
    Invalid(Json<Problem>),
    /// This client sent write-ins too quickly; `Retry-After` says when to try again.
    #[oai(status = 429)]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// A dependency is down; the vote was not recorded. Try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "refuse_unparsed")]
enum TallyStreamResponse {
    /// Server-sent events named `tally`, each a JSON tally whose `seq` is
    /// the event id: the current tally at once, then one per change.
    #[oai(status = 200)]
    Ok(TallyEvents),
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<Problem>),
    /// The ballot's results are hidden from this viewer for now.
    #[oai(status = 403)]
    Hidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// Too many requests from this client; try again after `Retry-After` seconds.
    #[oai(status = 429)]
    #[allow(
        dead_code,
        reason = "answered by the rate limiter; declared for the schema"
    )]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

/// The live tally's server-sent events.
///
/// Before OpenAPI 3.2, a `text/event-stream` schema describes one event
/// (its `event`, `id` and `data` fields), not the array poem-openapi
/// declares for an [`EventStream`].
struct TallyEvents(EventStream<BoxStream<'static, Arc<TallyBody>>>);

impl IntoResponse for TallyEvents {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl ResponseContent for TallyEvents {
    fn media_types() -> Vec<MetaMediaType> {
        let data = MetaSchema {
            description: Some("A `TallyBody`, as JSON."),
            ..MetaSchema::new("string")
        };
        let event = MetaSchema {
            enum_items: vec![Value::from("tally")],
            ..MetaSchema::new("string")
        };
        let id = MetaSchema {
            description: Some("The tally's `seq`."),
            pattern: Some("^[0-9]+$".to_owned()),
            ..MetaSchema::new("string")
        };
        vec![MetaMediaType {
            content_type: "text/event-stream",
            schema: inline(MetaSchema {
                required: vec!["data"],
                ..object(vec![("event", event), ("id", id), ("data", data)])
            }),
        }]
    }

    fn register(registry: &mut Registry) {
        TallyBody::register(registry);
    }
}

/// The API endpoint, with poem's own refusals (no such path, or a method
/// the path does not take) answered as JSON problems like the
/// operations' own, and `405` listing the path's methods in `Allow`.
pub(crate) fn with_problem_refusals(service: OpenApiService<Api, ()>) -> impl Endpoint {
    let methods = Arc::new(PathMethods::from_spec(&service.spec()));
    service.around(move |endpoint, request| {
        let methods = Arc::clone(&methods);
        async move {
            let path = request.uri().path().to_owned();
            let error = match endpoint.call(request).await {
                Ok(response) => return Ok(response.into_response()),
                Err(error) => error,
            };
            let status = error.status();
            let mut response = Problem::new(error.to_string())
                .with_status(status)
                .into_response();
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

fn parse_id(id: &str) -> Option<BallotId> {
    BallotId::parse(id).ok()
}

/// Why a viewer gets no results through the API.
enum Refusal {
    NotFound,
    Hidden(&'static str),
    Unavailable,
}

/// The ballot and its results, if the cookie's viewer may see them now.
async fn visible(
    state: &AppState,
    jar: &CookieJar,
    id: &str,
) -> Result<(Ballot, Results), Refusal> {
    let id = parse_id(id).ok_or(Refusal::NotFound)?;
    let unavailable = |error: BallotError| match error {
        BallotError::NotFound => Refusal::NotFound,
        other => {
            tracing::error!(error = %other, ballot = %id, "reading results failed");
            Refusal::Unavailable
        }
    };
    let (ballot, results) = state.service.results(&id).await.map_err(unavailable)?;
    let viewer = viewer(state, jar).await;
    if state
        .service
        .can_see_results(&ballot, Some(&viewer.voter))
        .await
        .map_err(unavailable)?
    {
        Ok((ballot, results))
    } else {
        Err(Refusal::Hidden(crate::pages::hidden_results_message(
            ballot.settings().results_visibility,
        )))
    }
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "refuse_unparsed")]
enum OwnerResponse {
    /// Done; the ballot as it now is.
    #[oai(status = 200)]
    Ok(Json<BallotBody>),
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<Problem>),
    /// Only the ballot's owner may do this, and not from another site.
    #[oai(status = 403)]
    Forbidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// The request body is larger than the server accepts.
    #[oai(status = 413)]
    #[allow(
        dead_code,
        reason = "answered by the body-size limit; declared for the schema"
    )]
    TooLarge(Json<Problem>),
    /// The request body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<Problem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "refuse_unparsed")]
enum DeleteResponse {
    /// Deleted: its key first, then its rows (SECURITY.md says what that
    /// guarantees for copies and backups).
    #[oai(status = 204)]
    Deleted,
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<Problem>),
    /// Only the ballot's owner may do this, and not from another site.
    #[oai(status = 403)]
    Forbidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// The request body is larger than the server accepts.
    #[oai(status = 413)]
    #[allow(
        dead_code,
        reason = "answered by the body-size limit; declared for the schema"
    )]
    TooLarge(Json<Problem>),
    /// The request body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<Problem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "refuse_unparsed")]
enum ExportResponse {
    /// The results: as JSON (the default), ballot metadata, then option,
    /// count and percentage; as CSV (`format=csv`), `option,count,percentage`.
    #[oai(status = 200)]
    Ok(ExportBody),
    /// The request could not be read: malformed JSON or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<Problem>),
    /// The ballot's results are hidden from this viewer for now.
    #[oai(status = 403)]
    Hidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

/// A results export: one `200` response with two media types.
enum ExportBody {
    /// `application/json`.
    Json(Value),
    /// `text/csv`, with its `Content-Disposition` (an attachment: a
    /// spreadsheet to save, never a page to render).
    Csv(String, String),
}

/// The media type of a CSV export.
const CSV: &str = "text/csv; charset=utf-8";

impl IntoResponse for ExportBody {
    fn into_response(self) -> Response {
        match self {
            Self::Json(document) => Json(document).into_response(),
            Self::Csv(text, disposition) => text
                .with_content_type(CSV)
                .with_header(header::CONTENT_DISPOSITION, disposition)
                .into_response(),
        }
    }
}

impl ResponseContent for ExportBody {
    fn media_types() -> Vec<MetaMediaType> {
        vec![
            MetaMediaType {
                content_type: Json::<Value>::CONTENT_TYPE,
                schema: inline(MetaSchema::new("object")),
            },
            MetaMediaType {
                content_type: CSV,
                schema: inline(MetaSchema::new("string")),
            },
        ]
    }
}

impl ExportResponse {
    /// The results as JSON.
    fn json(document: Value) -> Self {
        Self::Ok(ExportBody::Json(document))
    }

    /// The results as CSV text, to download as `disposition` says.
    fn csv(text: String, disposition: String) -> Self {
        Self::Ok(ExportBody::Csv(text, disposition))
    }
}

/// Export formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum ExportFormat {
    /// JSON with the ballot's metadata.
    #[default]
    Json,
    /// CSV rows.
    Csv,
}

parse_refusal!(CreateBallotResponse, with_body);
parse_refusal!(BallotResponse);
parse_refusal!(TallyResponse);
parse_refusal!(VoteResponse, with_body);
parse_refusal!(TallyStreamResponse);
parse_refusal!(OwnerResponse, with_body);
parse_refusal!(DeleteResponse, with_body);
parse_refusal!(ExportResponse);

const NOT_OWNER: &str = "Only the person who created this ballot may close or delete it.";

#[OpenApi]
impl Api {
    /// Create a ballot.
    ///
    /// The ballot is owned by the caller's `oponn_voter` cookie, as for the pages.
    #[oai(path = "/ballots", method = "post", tag = "ApiTags::Ballots")]
    async fn create_ballot(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        body: Json<Documented<CreateBallotBody, CreateRules>>,
    ) -> CreateBallotResponse {
        let body = body.0.into_inner();
        let request = BallotRequest {
            measure: body.measure,
            options: body.options,
            allow_write_in: body.allow_write_in,
            start: body
                .scheduled_start
                .map_or(StartRequest::Now, StartRequest::Scheduled),
            window_minutes: body.window_minutes,
            settings: BallotSettings {
                eligibility: body.eligibility.into(),
                allow_vote_change: body.allow_vote_change,
                results_visibility: body.results_visibility.into(),
            },
        };
        let owner = viewer(&state, jar).await.owner;
        match state.service.create_ballot(&request, Some(owner)).await {
            Ok(ballot) => {
                state.metrics.ballots_created.inc();
                let location = format!("/api/v1/ballots/{}", ballot.id());
                CreateBallotResponse::Created(
                    Json(BallotBody::new(&ballot, state.service.now())),
                    location,
                )
            }
            Err(CreateBallotError::Invalid(errors)) => {
                CreateBallotResponse::Invalid(validation_problem(&errors))
            }
            Err(error) => {
                tracing::error!(%error, "creating a ballot failed");
                CreateBallotResponse::Unavailable(Problem::new(UNAVAILABLE))
            }
        }
    }

    /// Read a ballot.
    #[oai(path = "/ballots/:id", method = "get", tag = "ApiTags::Ballots")]
    async fn ballot(&self, state: Data<&Arc<AppState>>, id: Path<BallotIdParam>) -> BallotResponse {
        let Some(id) = parse_id(&id) else {
            return BallotResponse::NotFound(Problem::new("no such ballot"));
        };
        match state.service.ballot(&id).await {
            Ok(ballot) => BallotResponse::Ok(Json(BallotBody::new(&ballot, state.service.now()))),
            Err(BallotError::NotFound) => BallotResponse::NotFound(Problem::new("no such ballot")),
            Err(error) => {
                tracing::error!(%error, ballot = %id, "reading a ballot failed");
                BallotResponse::Unavailable(Problem::new(UNAVAILABLE))
            }
        }
    }

    /// Cast a vote.
    ///
    /// One vote per voter. The voter is identified by the signed
    /// `oponn_voter` cookie, the same one the pages use: a client without
    /// it gets one in this response's `Set-Cookie` and must send it back
    /// (keep a cookie jar). A browser that voted on the page is therefore
    /// the same voter here and cannot vote again through the API.
    /// The vote is acknowledged only once durable.
    #[oai(path = "/ballots/:id/votes", method = "post", tag = "ApiTags::Votes")]
    async fn cast_vote(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
        client: Data<&ClientAddr>,
        body: Json<Documented<VoteBody, VoteRules>>,
    ) -> VoteResponse {
        let Some(id) = parse_id(&id) else {
            return VoteResponse::NotFound(Problem::new("no such ballot"));
        };
        let choice = match (body.0.0.option_id, body.0.0.write_in) {
            (Some(option), None) => VoteChoice::Option(oponn_core::domain::OptionId::new(option)),
            (None, Some(text)) => VoteChoice::WriteIn(text),
            _ => {
                return VoteResponse::Invalid(Problem::new(
                    "give exactly one of option_id and write_in",
                ));
            }
        };
        if matches!(choice, VoteChoice::WriteIn(_))
            && let Err(wait) = state.rates.check(Rate::WriteIns, client.0.0)
        {
            return VoteResponse::TooManyRequests(
                Problem::new(Rate::WriteIns.message()),
                wait.as_secs().saturating_add(1),
            );
        }
        let voter = viewer(&state, jar).await.voter;
        match state.cast_vote(id, voter.clone(), choice).await {
            Ok(receipt) => {
                state.metrics.votes_cast.inc();
                // The vote is durable; the tally comes back only to a voter
                // the ballot's results visibility allows (and not at all if
                // the ballot cannot be read now).
                let tally = match state.service.ballot(&id).await {
                    Ok(ballot) => {
                        match state.service.can_see_results(&ballot, Some(&voter)).await {
                            Ok(true) => Some(TallyBody::new(
                                &ballot,
                                &Results::new(&ballot, &receipt.tally),
                            )),
                            Ok(false) => None,
                            Err(error) => {
                                tracing::warn!(%error, ballot = %id, "checking visibility after a vote failed");
                                None
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, ballot = %id, "reading the ballot after a vote failed");
                        None
                    }
                };
                VoteResponse::Accepted(Json(VoteAccepted {
                    option_id: receipt.option_id.get(),
                    changed_from: receipt.changed_from.map(|option| option.get()),
                    tally,
                }))
            }
            Err(error) => {
                crate::pages::count_refusal(&state, &error);
                match error {
                    CastVoteError::NotFound => {
                        VoteResponse::NotFound(Problem::new("no such ballot"))
                    }
                    CastVoteError::SignInRequired => VoteResponse::Forbidden(Problem::new(
                        error.user_message().unwrap_or_default(),
                    )),
                    CastVoteError::AlreadyVoted
                    | CastVoteError::NotOpenYet
                    | CastVoteError::Ended => VoteResponse::Conflict(Problem::new(
                        error.user_message().unwrap_or_default(),
                    )),
                    CastVoteError::Unavailable(error) => {
                        tracing::error!(%error, ballot = %id, "casting a vote failed");
                        VoteResponse::Unavailable(Problem::new(UNAVAILABLE))
                    }
                    other => VoteResponse::Invalid(Problem::new(
                        other.user_message().unwrap_or("invalid vote"),
                    )),
                }
            }
        }
    }

    /// Close a ballot early (its owner only: the signed-in account, or the
    /// browser that created it as a guest).
    #[oai(path = "/ballots/:id/close", method = "post", tag = "ApiTags::Ballots")]
    async fn close_ballot(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
    ) -> OwnerResponse {
        let Some(id) = parse_id(&id) else {
            return OwnerResponse::NotFound(Problem::new("no such ballot"));
        };
        match state
            .service
            .close_ballot(&id, &viewer(&state, jar).await.owner)
            .await
        {
            Ok(ballot) => OwnerResponse::Ok(Json(BallotBody::new(&ballot, state.service.now()))),
            Err(OwnerActionError::NotFound) => {
                OwnerResponse::NotFound(Problem::new("no such ballot"))
            }
            Err(OwnerActionError::Forbidden) => OwnerResponse::Forbidden(Problem::new(NOT_OWNER)),
            Err(error) => {
                tracing::error!(%error, ballot = %id, "closing a ballot failed");
                OwnerResponse::Unavailable(Problem::new(UNAVAILABLE))
            }
        }
    }

    /// Delete a ballot (its owner only). Its data key is destroyed first;
    /// see SECURITY.md for what that guarantees about copies and backups.
    #[oai(path = "/ballots/:id", method = "delete", tag = "ApiTags::Ballots")]
    async fn delete_ballot(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
    ) -> DeleteResponse {
        let Some(id) = parse_id(&id) else {
            return DeleteResponse::NotFound(Problem::new("no such ballot"));
        };
        match state
            .service
            .delete_ballot(&id, &viewer(&state, jar).await.owner)
            .await
        {
            Ok(()) => DeleteResponse::Deleted,
            Err(OwnerActionError::NotFound) => {
                DeleteResponse::NotFound(Problem::new("no such ballot"))
            }
            Err(OwnerActionError::Forbidden) => DeleteResponse::Forbidden(Problem::new(NOT_OWNER)),
            Err(error) => {
                tracing::error!(%error, ballot = %id, "deleting a ballot failed");
                DeleteResponse::Unavailable(Problem::new(UNAVAILABLE))
            }
        }
    }

    /// Export a ballot's results as JSON or CSV (`?format=csv`), for whoever
    /// may see them.
    #[oai(path = "/ballots/:id/results", method = "get", tag = "ApiTags::Votes")]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
        #[oai(default)] format: poem_openapi::param::Query<ExportFormat>,
    ) -> ExportResponse {
        match visible(&state, jar, &id).await {
            Ok((ballot, results)) => match format.0 {
                ExportFormat::Json => ExportResponse::json(crate::pages::export_document(
                    &ballot,
                    &results,
                    state.service.now(),
                )),
                ExportFormat::Csv => match crate::pages::export_csv_text(&results) {
                    Ok(text) => ExportResponse::csv(text, crate::pages::attachment(&ballot, "csv")),
                    Err(error) => {
                        tracing::error!(%error, "writing CSV failed");
                        ExportResponse::Unavailable(Problem::new(UNAVAILABLE))
                    }
                },
            },
            Err(Refusal::NotFound) => ExportResponse::NotFound(Problem::new("no such ballot")),
            Err(Refusal::Hidden(message)) => ExportResponse::Hidden(Problem::new(message)),
            Err(Refusal::Unavailable) => ExportResponse::Unavailable(Problem::new(UNAVAILABLE)),
        }
    }

    /// Read a ballot's current tally.
    #[oai(path = "/ballots/:id/tally", method = "get", tag = "ApiTags::Votes")]
    ///
    /// Subject to the ballot's results visibility: `403` while hidden from
    /// this viewer (identified by cookie, as for votes).
    async fn tally(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<BallotIdParam>,
    ) -> TallyResponse {
        match visible(&state, jar, &id).await {
            Ok((ballot, results)) => TallyResponse::Ok(Json(TallyBody::new(&ballot, &results))),
            Err(Refusal::NotFound) => TallyResponse::NotFound(Problem::new("no such ballot")),
            Err(Refusal::Hidden(message)) => TallyResponse::Hidden(Problem::new(message)),
            Err(Refusal::Unavailable) => TallyResponse::Unavailable(Problem::new(UNAVAILABLE)),
        }
    }

    /// Follow a ballot's tally live.
    ///
    /// Server-sent events: the current tally at once, then one per change
    /// (a burst may be coalesced into its latest tally). Each event's id is
    /// the tally's `seq`; reconnect with `Last-Event-ID` to resume without
    /// receiving a tally you already have.
    #[oai(
        path = "/ballots/:id/tally/stream",
        method = "get",
        tag = "ApiTags::Votes"
    )]
    async fn tally_stream(
        &self,
        state: Data<&Arc<AppState>>,
        id: Path<BallotIdParam>,
        jar: &CookieJar,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
    ) -> TallyStreamResponse {
        let id = match visible(&state, jar, &id).await {
            Ok((ballot, _)) => ballot.id(),
            Err(Refusal::NotFound) => {
                return TallyStreamResponse::NotFound(Problem::new("no such ballot"));
            }
            Err(Refusal::Hidden(message)) => {
                return TallyStreamResponse::Hidden(Problem::new(message));
            }
            Err(Refusal::Unavailable) => {
                return TallyStreamResponse::Unavailable(Problem::new(UNAVAILABLE));
            }
        };
        let feed = match state.hub.watch(id).await {
            Ok(feed) => feed,
            Err(BallotError::NotFound) => {
                return TallyStreamResponse::NotFound(Problem::new("no such ballot"));
            }
            Err(error) => {
                tracing::error!(%error, ballot = %id, "opening a live feed failed");
                return TallyStreamResponse::Unavailable(Problem::new(UNAVAILABLE));
            }
        };
        let resume_after = last_event_id
            .0
            .as_deref()
            .and_then(|id| id.trim().parse().ok());
        let guard = SseClientGuard::new(&state.metrics.sse_clients);
        let updates = crate::pages::live_updates(feed, resume_after, state.shutdown.clone())
            .map(move |update| {
                let _connected = &guard;
                Arc::clone(&update.body)
            })
            .boxed();
        TallyStreamResponse::Ok(TallyEvents(
            EventStream::new(updates)
                .keep_alive(KEEP_ALIVE)
                .to_event(|tally| {
                    let data = serde_json::to_string(&poem_openapi::types::ToJSON::to_json(&tally))
                        .unwrap_or_default();
                    poem::web::sse::Event::message(data)
                        .event_type("tally")
                        .id(tally.seq.to_string())
                }),
        ))
    }
}
