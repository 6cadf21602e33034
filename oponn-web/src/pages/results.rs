//! Results: the page, the live SSE stream, CSV/JSON exports and the
//! cast-vote records. Each
//! shows a tally only to a viewer the core's
//! [`results_for`](oponn_core::BallotService::results_for) lets see it.

use std::sync::Arc;
use std::task::Poll;

use crate::csrf::CsrfToken;
use bytes::Bytes;
use futures_util::StreamExt as _;
use oponn_core::domain::{Ballot, BallotId, Results};
use oponn_core::{BallotError, ResultsAccess};
use poem::http::{HeaderMap, StatusCode, header};
use poem::web::cookie::CookieJar;
use poem::web::{Data, Path, Query};
use poem::{Body, IntoResponse, Response, handler};
use serde_json::json;

use crate::export::{
    CSV_MEDIA_TYPE, attachment, ballots_csv_text, ballots_document, export_csv_text,
    export_document,
};
use crate::html::{error_page, not_found, render, unavailable};
use crate::identity::{Notice, Viewer, kept_receipt, take_notice, viewer, voter_on};
use crate::live::{KEEP_ALIVE, LiveFeed, PageStream, Unwatched, deleted_stream_body, page_frames};
use crate::metrics::SseClientGuard;
use crate::state::AppState;
use crate::views::{BallotView, ResultsView};

use crate::share::PreviewView;

/// Why a viewer gets no results.
enum Refusal {
    /// No such ballot (or an id that cannot be one).
    NotFound,
    /// The results are hidden from this viewer for now; what to show.
    Hidden(&'static str),
    /// A dependency failed.
    Unavailable(BallotError),
}

/// What `viewer` may see of ballot `id`'s results, as the core decides it.
async fn results_access(
    state: &AppState,
    jar: &CookieJar,
    viewer: &Viewer,
    id: &str,
) -> Result<ResultsAccess, Refusal> {
    let id = BallotId::parse(id).map_err(|_| Refusal::NotFound)?;
    let voter = voter_on(state, jar, viewer, &id);
    state
        .service
        .results_for(&id, Some(&voter))
        .await
        .map_err(|error| match error {
            BallotError::NotFound => Refusal::NotFound,
            other => Refusal::Unavailable(other),
        })
}

/// The ballot and its results, if `viewer` may see them now.
async fn visible_results(
    state: &AppState,
    jar: &CookieJar,
    viewer: &Viewer,
    id: &str,
) -> Result<(Ballot, Results), Refusal> {
    match results_access(state, jar, viewer, id).await? {
        ResultsAccess::Shown { ballot, results } => Ok((ballot, results)),
        ResultsAccess::Hidden { message, .. } => Err(Refusal::Hidden(message)),
    }
}

/// What a results page shows `viewer` of ballot `id`: the ballot, and its
/// results or why they are hidden; or the page that answers instead (`404`,
/// `503`).
pub(super) async fn page_results(
    state: &AppState,
    jar: &CookieJar,
    viewer: &Viewer,
    id: &str,
) -> Result<(Ballot, Option<Results>, Option<&'static str>), Box<Response>> {
    match results_access(state, jar, viewer, id).await {
        Ok(ResultsAccess::Shown { ballot, results }) => Ok((ballot, Some(results), None)),
        Ok(ResultsAccess::Hidden {
            ballot, message, ..
        }) => Ok((ballot, None, Some(message))),
        Err(refusal) => Err(Box::new(refused(state, refusal))),
    }
}

/// The answer for streams and exports that may not show the tally.
fn refused(state: &AppState, refusal: Refusal) -> Response {
    match refusal {
        Refusal::NotFound => not_found(state),
        Refusal::Unavailable(error) => unavailable(state, &error),
        Refusal::Hidden(message) => {
            error_page(state, StatusCode::FORBIDDEN, "results_hidden", message)
        }
    }
}

/// `GET /results/{id}`: the results, live; or why they are hidden.
#[handler]
pub(crate) async fn results_page(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let viewer = viewer(&state, jar).await;
    let now = state.service.now();
    let (ballot, results, hidden) = match page_results(&state, jar, &viewer, &id).await {
        Ok(shown) => shown,
        Err(refusal) => return *refusal,
    };
    render(
        &state,
        "results.html",
        csrf,
        Some(&viewer),
        json!({
            "ballot": BallotView::new(&ballot, now),
            "results": results.as_ref().map(ResultsView::from),
            "results_hidden": hidden,
            "is_owner": ballot.is_owned_by(&viewer.owner),
            "receipt": kept_receipt(&state, jar, &ballot.id()).map(|receipt| receipt.to_string()),
            "notice": take_notice(&state, jar).map(Notice::message),
            "preview": PreviewView::new(&state, headers, &ballot, &format!("/results/{}", ballot.id())),
            "share_path": format!("/ballots/{}/share", ballot.id()),
            "present_path": format!("/results/{}/present", ballot.id()),
        }),
    )
}

/// `GET /ballots/{id}/live-results`: the results partial over SSE; `403`
/// while the viewer may not see results. `?after=` names the tally the
/// page already shows: no older one is sent.
#[handler]
pub(crate) async fn live_results(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    Path(id): Path<String>,
    query: poem::Result<Query<AfterQuery>>,
) -> Response {
    let viewer = viewer(&state, jar).await;
    let access = match results_access(&state, jar, &viewer, &id).await {
        Ok(access) => access,
        Err(Refusal::NotFound) => return gone(&state, headers),
        Err(refusal) => return refused(&state, refusal),
    };
    let feed = match state.hub.watch(&access).await {
        Ok(feed) => feed,
        Err(Unwatched::Hidden(message)) => return refused(&state, Refusal::Hidden(message)),
        Err(Unwatched::Failed(BallotError::NotFound)) => return gone(&state, headers),
        Err(Unwatched::Failed(error)) => return unavailable(&state, &error),
    };
    // The tally the client holds: the last event it saw when it
    // reconnects, else the one its page was rendered with (`?after=`), so
    // the stream never sets the page back to an older tally. Text that is
    // not a number is ignored, as if absent.
    let resume_after = headers
        .get("Last-Event-ID")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .or_else(|| {
            query
                .ok()
                .and_then(|Query(query)| query.after?.trim().parse().ok())
        });
    event_stream(&state, feed, PageStream::Results, resume_after)
}

/// `?after=` on a results stream: the sequence of the tally its page shows.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct AfterQuery {
    after: Option<String>,
}

/// `GET /ballots/{id}/live-state`: the ballot's state over SSE (`event:
/// state`, when it opens, closes or is deleted), for every page that
/// shows the ballot, whether or not its viewer may see results.
#[handler]
pub(crate) async fn live_state(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    match state.hub.watch_state(id).await {
        Ok(feed) => event_stream(&state, feed, PageStream::State, None),
        Err(BallotError::NotFound) => gone(&state, headers),
        Err(error) => unavailable(&state, &error),
    }
}

/// The answer for a stream of a ballot that does not exist (any more): to
/// a browser's `EventSource` (it asks for `text/event-stream`), a stream of
/// one `deleted` state, which its page applies and stops on, where a `404`
/// would be retried for ever; to anything else, the `404` page.
fn gone(state: &AppState, headers: &HeaderMap) -> Response {
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if !wants_events {
        return not_found(state);
    }
    Response::builder()
        .content_type("text/event-stream")
        .header("Cache-Control", "no-cache")
        .body(deleted_stream_body())
}

/// An HTML page's event stream of `feed`: as poem's SSE response does, but
/// with the frames already encoded. The next frame when there is one, else
/// a keep-alive comment on each tick; the body ends when the updates do
/// (shutdown, or the feed closing).
fn event_stream(
    state: &AppState,
    feed: LiveFeed,
    kind: PageStream,
    resume_after: Option<u64>,
) -> Response {
    let guard = SseClientGuard::new(&state.metrics.sse_clients);
    let mut frames = page_frames(feed, kind, resume_after, state.shutdown.clone())
        .map(move |frame| {
            let _connected = &guard;
            Ok::<_, std::io::Error>(frame)
        })
        .boxed();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let body = futures_util::stream::poll_fn(move |cx| {
        if let Poll::Ready(frame) = frames.poll_next_unpin(cx) {
            return Poll::Ready(frame);
        }
        ticks
            .poll_tick(cx)
            .map(|_| Some(Ok(Bytes::from_static(b":\n\n"))))
    });
    Response::builder()
        .content_type("text/event-stream")
        .header("Cache-Control", "no-cache")
        .header("X-Accel-Buffering", "no")
        .body(Body::from_bytes_stream(body))
}

/// A download of a ballot's results.
#[derive(Debug, Clone, Copy)]
enum Download {
    /// The results, with the ballot's metadata, as JSON.
    ResultsJson,
    /// The results as CSV.
    ResultsCsv,
    /// The cast-vote record as JSON.
    BallotsJson,
    /// The cast-vote record as CSV.
    BallotsCsv,
}

/// The media type of a JSON download.
const JSON_MEDIA_TYPE: &str = "application/json; charset=utf-8";

/// Serves `what` of ballot `id` to whoever may see its results, as an
/// attachment (a file to save, never a page to render).
async fn download(state: &AppState, jar: &CookieJar, id: &str, what: Download) -> Response {
    let viewer = viewer(state, jar).await;
    let (ballot, results) = match visible_results(state, jar, &viewer, id).await {
        Ok(visible) => visible,
        Err(refusal) => return refused(state, refusal),
    };
    let (text, media_type, extension) = match what {
        Download::ResultsJson => (
            Ok(export_document(&ballot, &results, state.service.now()).to_string()),
            JSON_MEDIA_TYPE,
            "json",
        ),
        Download::ResultsCsv => (export_csv_text(&results), CSV_MEDIA_TYPE, "csv"),
        Download::BallotsJson => (
            Ok(ballots_document(&ballot, &results).to_string()),
            JSON_MEDIA_TYPE,
            "ballots.json",
        ),
        Download::BallotsCsv => (ballots_csv_text(&results), CSV_MEDIA_TYPE, "ballots.csv"),
    };
    match text {
        Ok(text) => text
            .with_content_type(media_type)
            .with_header(header::CONTENT_DISPOSITION, attachment(&ballot, extension))
            .into_response(),
        Err(error) => unavailable(state, &error),
    }
}

/// `GET /results/{id}/export.json`.
#[handler]
pub(crate) async fn export_json(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    download(&state, jar, &id, Download::ResultsJson).await
}

/// `GET /results/{id}/export.csv`.
#[handler]
pub(crate) async fn export_csv(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    download(&state, jar, &id, Download::ResultsCsv).await
}

/// `GET /results/{id}/ballots.json`: the cast-vote record, for a recount.
#[handler]
pub(crate) async fn ballots_json(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    download(&state, jar, &id, Download::BallotsJson).await
}

/// `GET /results/{id}/ballots.csv`: the cast-vote record as CSV.
#[handler]
pub(crate) async fn ballots_csv(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    download(&state, jar, &id, Download::BallotsCsv).await
}
