//! The API's request and response bodies, and their conversions from the
//! core's types.

use std::sync::Arc;

use futures_util::stream::BoxStream;
use oponn_core::VoteChoice;
use oponn_core::domain::{
    Ballot, BallotMethod, Eligibility, MethodRequest, OptionId, ResultsVisibility,
};
use poem::http::header;
use poem::{IntoResponse, Response};
use poem_openapi::payload::{EventStream, Json, Payload as _};
use poem_openapi::registry::{MetaMediaType, MetaSchema, Registry};
use poem_openapi::types::Type;
use poem_openapi::{Enum, Object, ResponseContent};
use serde_json::Value;
use time::OffsetDateTime;

use super::schema::{inline, object};
use crate::export::CSV_MEDIA_TYPE;
use crate::wire::TallyBody;

/// The window of a ballot created without one: the create form's default.
fn default_window_minutes() -> u32 {
    oponn_core::domain::DEFAULT_WINDOW_MINUTES
}

/// A ballot to create.
#[derive(Debug, Object)]
pub(crate) struct CreateBallotBody {
    /// The question: 3 to 255 characters after trimming.
    pub(super) measure: String,
    /// The options: each 1 to 64 characters, unique ignoring case; at
    /// least 2 (1 with write-ins), at most 64.
    pub(super) options: Vec<String>,
    /// Whether voters may write in their own option.
    #[oai(default)]
    pub(super) allow_write_in: bool,
    /// When voting opens (RFC 3339); now when absent or null.
    #[oai(nullable)]
    pub(super) scheduled_start: Option<String>,
    /// How long voting stays open, in minutes: 60 (an hour, as on the
    /// create form) when absent; 0 means until closed; at most 525600 (a
    /// year).
    #[oai(default = "default_window_minutes")]
    pub(super) window_minutes: u32,
    /// Who may vote (default `anyone`).
    #[oai(default)]
    pub(super) eligibility: EligibilityBody,
    /// Whether voters may change their vote while the ballot is open; the
    /// last choice counts (default false).
    #[oai(default)]
    pub(super) allow_vote_change: bool,
    /// When results may be seen (default `always`).
    #[oai(default)]
    pub(super) results_visibility: VisibilityBody,
    /// Publish every counted vote as (receipt, choice) on the ballot's
    /// bulletin, under the same rules as the results (default false):
    /// anyone can then recount, and a voter can show others how they voted.
    #[oai(default)]
    pub(super) publish_bulletin: bool,
    /// How voters choose (default `single`).
    #[oai(default)]
    pub(super) method: MethodBody,
    /// For `approval`: the fewest options a voter must choose (default 1).
    #[oai(nullable)]
    pub(super) min_choices: Option<i64>,
    /// For `approval`: the most options a voter may choose (default: the
    /// number of options).
    #[oai(nullable)]
    pub(super) max_choices: Option<i64>,
}

impl CreateBallotBody {
    /// The method asked for, with its bounds.
    pub(super) fn method(&self) -> MethodRequest {
        match self.method {
            MethodBody::Single => MethodRequest::Single,
            MethodBody::Approval => MethodRequest::Approval {
                min_choices: self.min_choices,
                max_choices: self.max_choices,
            },
            MethodBody::Ranked => MethodRequest::Ranked,
        }
    }
}

/// How voters choose on a ballot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum MethodBody {
    /// One option (or a write-in) per voter.
    #[default]
    Single,
    /// Between `min_choices` and `max_choices` options per voter; each
    /// option's count is the voters approving it.
    Approval,
    /// A ranking per voter, counted by instant-runoff, with the Condorcet
    /// check beside it. No write-ins.
    Ranked,
}

impl From<BallotMethod> for MethodBody {
    fn from(method: BallotMethod) -> Self {
        match method {
            BallotMethod::Single => MethodBody::Single,
            BallotMethod::Approval { .. } => MethodBody::Approval,
            BallotMethod::Ranked => MethodBody::Ranked,
        }
    }
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
    /// Holders of the owner's personal voting links only (`POST
    /// /ballots/{id}/invitations`): one vote per link.
    Invited,
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
            EligibilityBody::Invited => Eligibility::Invited,
        }
    }
}

impl From<Eligibility> for EligibilityBody {
    fn from(eligibility: Eligibility) -> Self {
        match eligibility {
            Eligibility::Anyone => EligibilityBody::Anyone,
            Eligibility::SignedInOnly => EligibilityBody::SignedIn,
            Eligibility::Invited => EligibilityBody::Invited,
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
    pub(super) id: String,
    /// The page where people vote: the link to share.
    pub(super) vote_url: String,
    /// The page of the results, live.
    pub(super) results_url: String,
    /// The question.
    pub(super) measure: String,
    /// `pending`, `active` or `ended`.
    pub(super) status: String,
    /// The status in words: "starts in 5 minutes", "ends in 2 hours", "voting open", "voting closed".
    pub(super) status_label: String,
    /// Whether voters may write in their own option.
    pub(super) allow_write_in: bool,
    /// When voting opens.
    pub(super) starts_at: OffsetDateTime,
    /// When voting closes by itself, if ever.
    #[oai(nullable)]
    pub(super) ends_at: Option<OffsetDateTime>,
    /// When the owner closed voting early, if they did.
    #[oai(nullable)]
    pub(super) closed_at: Option<OffsetDateTime>,
    /// The options, predefined first, then write-ins.
    pub(super) options: Vec<OptionBody>,
    /// Who may vote.
    pub(super) eligibility: EligibilityBody,
    /// Whether voters may change their vote while the ballot is open.
    pub(super) allow_vote_change: bool,
    /// When results may be seen.
    pub(super) results_visibility: VisibilityBody,
    /// Whether the ballot's bulletin (`GET /ballots/{id}/bulletin`) is published.
    pub(super) publish_bulletin: bool,
    /// How voters choose.
    pub(super) method: MethodBody,
    /// For `approval`: the fewest options a voter must choose.
    #[oai(nullable)]
    pub(super) min_choices: Option<u32>,
    /// For `approval`: the most options a voter may choose.
    #[oai(nullable)]
    pub(super) max_choices: Option<u32>,
}

impl BallotBody {
    /// `ballot` as it stands at `now`.
    pub(super) fn new(ballot: &Ballot, now: OffsetDateTime) -> Self {
        let status = ballot.status_at(now);
        Self {
            id: ballot.id().to_string(),
            vote_url: format!("/vote/{}", ballot.id()),
            results_url: format!("/results/{}", ballot.id()),
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
            publish_bulletin: ballot.settings().publish_bulletin,
            results_visibility: ballot.settings().results_visibility.into(),
            method: ballot.method().into(),
            min_choices: ballot.method().min_choices(),
            max_choices: ballot.method().max_choices(),
        }
    }
}

/// One option of a ballot.
#[derive(Debug, Object)]
pub(crate) struct OptionBody {
    /// The option's number, to vote with.
    pub(super) id: u32,
    /// Its text.
    pub(super) label: String,
    /// True when a voter wrote it in.
    pub(super) write_in: bool,
}

/// A vote, shaped by the ballot's method: `{"option_id"}` or
/// `{"write_in"}` (single), `{"option_ids", "write_in"?}` (approval),
/// `{"ranking"}` (ranked, most preferred first).
#[derive(Debug, Object)]
pub(crate) struct VoteBody {
    /// The chosen option's id.
    #[oai(nullable)]
    pub(super) option_id: Option<u32>,
    /// A write-in (when the ballot allows them): 1 to 64 characters; one
    /// equal to an existing option, ignoring case, counts toward it.
    #[oai(nullable)]
    pub(super) write_in: Option<String>,
    /// The chosen options' ids (approval).
    #[oai(nullable)]
    pub(super) option_ids: Option<Vec<u32>>,
    /// The options' ids, most preferred first, each at most once (ranked).
    #[oai(nullable)]
    pub(super) ranking: Option<Vec<u32>>,
}

impl VoteBody {
    /// The choice this body makes, or why it makes none.
    pub(super) fn choice(self) -> Result<VoteChoice, &'static str> {
        let ids = |ids: Vec<u32>| ids.into_iter().map(OptionId::new).collect();
        match (self.option_id, self.write_in, self.option_ids, self.ranking) {
            (Some(option), None, None, None) => Ok(VoteChoice::Option(OptionId::new(option))),
            (None, Some(text), None, None) => Ok(VoteChoice::WriteIn(text)),
            (None, write_in, Some(options), None) => Ok(VoteChoice::Options {
                options: ids(options),
                write_in,
            }),
            (None, None, None, Some(ranking)) => Ok(VoteChoice::Ranking(ids(ranking))),
            (_, _, None, None) => Err("give exactly one of option_id and write_in"),
            _ => Err("give option_ids (with an optional write_in) or ranking, alone"),
        }
    }
}

/// An accepted, durable vote.
#[derive(Debug, Object)]
pub(crate) struct VoteAccepted {
    /// The option the vote counted toward: the first of its choice.
    pub(super) option_id: u32,
    /// Every option the vote counted toward: one, a set in id order, or a
    /// ranking in rank order.
    pub(super) option_ids: Vec<u32>,
    /// When this changed an earlier vote: the first option it was moved from.
    #[oai(nullable)]
    pub(super) changed_from: Option<u32>,
    /// The tally including this vote; null while the ballot's results
    /// are hidden from this voter.
    #[oai(nullable)]
    pub(super) tally: Option<TallyBody>,
    /// The vote's receipt: keep it to check later that the vote is in the
    /// count. A change of vote gives a new one and retires the old.
    pub(super) receipt: String,
    /// The page where a person checks the receipt: `counted`, `replaced
    /// by a later vote` or `unknown`.
    pub(super) receipt_url: String,
    /// The same check as JSON: `GET` it for `{"status": "counted" |
    /// "replaced" | "unknown"}`.
    pub(super) receipt_api_url: String,
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

/// A results export: one `200` response with two media types.
pub(super) enum ExportBody {
    /// `application/json`.
    Json(Value),
    /// `text/csv`, with its `Content-Disposition` (an attachment: a
    /// spreadsheet to save, never a page to render).
    Csv(String, String),
}

impl IntoResponse for ExportBody {
    fn into_response(self) -> Response {
        match self {
            Self::Json(document) => Json(document).into_response(),
            Self::Csv(text, disposition) => text
                .with_content_type(CSV_MEDIA_TYPE)
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
                content_type: CSV_MEDIA_TYPE,
                schema: inline(MetaSchema::new("string")),
            },
        ]
    }
}

/// The live tally's server-sent events.
///
/// Before OpenAPI 3.2, a `text/event-stream` schema describes one event
/// (its `event`, `id` and `data` fields), not the array poem-openapi
/// declares for an [`EventStream`].
pub(super) struct TallyEvents(pub(super) EventStream<BoxStream<'static, Arc<TallyBody>>>);

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
