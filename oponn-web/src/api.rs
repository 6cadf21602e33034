//! The JSON API under `/api/v1`, described by poem-openapi.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use oponn_core::domain::{
    Ballot, BallotId, BallotRequest, BallotSettings, Eligibility, Field, Results,
    ResultsVisibility, StartRequest, ValidationErrors,
};
use oponn_core::{BallotError, CastVoteError, CreateBallotError, OwnerActionError, VoteChoice};
use poem::web::Data;
use poem::web::cookie::CookieJar;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::{EventStream, Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use time::OffsetDateTime;

use crate::identity::viewer;
use crate::metrics::SseClientGuard;
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
    /// When voting opens (RFC 3339); now when absent.
    scheduled_start: Option<String>,
    /// How long voting stays open, in minutes; 0 (the default) means until closed.
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
    ends_at: Option<OffsetDateTime>,
    /// When the owner closed voting early, if they did.
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
    option_id: Option<u32>,
    /// A write-in (when the ballot allows them): 1 to 64 characters; one
    /// equal to an existing option, ignoring case, counts toward it.
    write_in: Option<String>,
}

/// An accepted, durable vote.
#[derive(Debug, Object)]
pub(crate) struct VoteAccepted {
    /// The option the vote counted toward.
    option_id: u32,
    /// When this changed an earlier vote: the option it was moved from.
    changed_from: Option<u32>,
    /// The tally including this vote; absent while the ballot's results
    /// are hidden from this voter.
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
enum CreateBallotResponse {
    /// The ballot was created.
    #[oai(status = 201)]
    Created(Json<BallotBody>, #[oai(header = "Location")] String),
    /// The ballot broke creation rules.
    #[oai(status = 422)]
    Invalid(Json<ValidationProblem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
enum BallotResponse {
    /// The ballot.
    #[oai(status = 200)]
    Ok(Json<BallotBody>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
enum TallyResponse {
    /// The current tally.
    #[oai(status = 200)]
    Ok(Json<TallyBody>),
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
enum VoteResponse {
    /// The vote is recorded and durable.
    #[oai(status = 201)]
    Accepted(Json<VoteAccepted>),
    /// The ballot takes votes from signed-in accounts only.
    #[oai(status = 403)]
    Forbidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// This voter already voted, or voting has not started or has ended.
    #[oai(status = 409)]
    Conflict(Json<Problem>),
    /// The choice is not valid for this ballot.
    #[oai(status = 422)]
    Invalid(Json<Problem>),
    /// A dependency is down; the vote was not recorded. Try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
enum TallyStreamResponse {
    /// Server-sent events named `tally`, each a JSON tally whose `seq` is
    /// the event id: the current tally at once, then one per change.
    #[oai(status = 200)]
    Ok(EventStream<BoxStream<'static, Arc<TallyBody>>>),
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
enum OwnerResponse {
    /// Done; the ballot as it now is.
    #[oai(status = 200)]
    Ok(Json<BallotBody>),
    /// Only the ballot's owner may do this.
    #[oai(status = 403)]
    Forbidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
enum DeleteResponse {
    /// Deleted: its key first, so its rows are unreadable anywhere.
    #[oai(status = 204)]
    Deleted,
    /// Only the ballot's owner may do this.
    #[oai(status = 403)]
    Forbidden(Json<Problem>),
    /// No such ballot.
    #[oai(status = 404)]
    NotFound(Json<Problem>),
    /// A dependency is down; try again.
    #[oai(status = 503)]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
enum ExportResponse {
    /// The results: ballot metadata, then option, count and percentage.
    #[oai(status = 200)]
    Json(Json<serde_json::Value>),
    /// The results as CSV: `option,count,percentage`.
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Csv(PlainText<String>),
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
        body: Json<CreateBallotBody>,
    ) -> CreateBallotResponse {
        let body = body.0;
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
    async fn ballot(&self, state: Data<&Arc<AppState>>, id: Path<String>) -> BallotResponse {
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
        id: Path<String>,
        body: Json<VoteBody>,
    ) -> VoteResponse {
        let Some(id) = parse_id(&id) else {
            return VoteResponse::NotFound(Problem::new("no such ballot"));
        };
        let choice = match (body.0.option_id, body.0.write_in) {
            (Some(option), None) => VoteChoice::Option(oponn_core::domain::OptionId::new(option)),
            (None, Some(text)) => VoteChoice::WriteIn(text),
            _ => {
                return VoteResponse::Invalid(Problem::new(
                    "give exactly one of option_id and write_in",
                ));
            }
        };
        let voter = viewer(&state, jar).await.voter;
        match state.service.cast_vote(&id, &voter, choice).await {
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
        id: Path<String>,
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

    /// Delete a ballot (its owner only). Its data key is destroyed first,
    /// so its rows are unreadable in any copy of the database.
    #[oai(path = "/ballots/:id", method = "delete", tag = "ApiTags::Ballots")]
    async fn delete_ballot(
        &self,
        state: Data<&Arc<AppState>>,
        jar: &CookieJar,
        id: Path<String>,
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
        id: Path<String>,
        #[oai(default)] format: poem_openapi::param::Query<ExportFormat>,
    ) -> ExportResponse {
        match visible(&state, jar, &id).await {
            Ok((ballot, results)) => {
                match format.0 {
                    ExportFormat::Json => ExportResponse::Json(Json(
                        crate::pages::export_document(&ballot, &results, state.service.now()),
                    )),
                    ExportFormat::Csv => match crate::pages::export_csv_text(&results) {
                        Ok(text) => ExportResponse::Csv(PlainText(text)),
                        Err(error) => {
                            tracing::error!(%error, "writing CSV failed");
                            ExportResponse::Unavailable(Problem::new(UNAVAILABLE))
                        }
                    },
                }
            }
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
        id: Path<String>,
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
        id: Path<String>,
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
        TallyStreamResponse::Ok(EventStream::new(updates).keep_alive(KEEP_ALIVE).to_event(
            |tally| {
                let data = serde_json::to_string(&poem_openapi::types::ToJSON::to_json(&tally))
                    .unwrap_or_default();
                poem::web::sse::Event::message(data)
                    .event_type("tally")
                    .id(tally.seq.to_string())
            },
        ))
    }
}
