//! Results: the page, the live SSE stream, and CSV/JSON exports. Each
//! shows a tally only to a viewer the ballot's results visibility allows.

use std::sync::Arc;

use std::task::Poll;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use oponn_core::BallotError;
use oponn_core::domain::{Ballot, BallotId, Results};
use poem::http::{HeaderMap, StatusCode, header};
use poem::web::cookie::CookieJar;
use poem::web::{CsrfToken, Data, Path};
use poem::{Body, IntoResponse, Response, handler};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;

use super::{error_page, hidden_results_message, not_found, render, unavailable};
use crate::api::KEEP_ALIVE;
use crate::identity::{Viewer, viewer};
use crate::live::{LiveFeed, LiveUpdate};
use crate::metrics::SseClientGuard;
use crate::state::AppState;
use crate::views::{BallotView, ResultsView};

/// Why a viewer gets no results.
enum Refusal {
    NotFound,
    Hidden(Ballot),
    Unavailable(BallotError),
}

/// The ballot and its results, if `viewer` may see them now.
async fn visible_results(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
) -> Result<(Ballot, Results), Refusal> {
    let id = BallotId::parse(id).map_err(|_| Refusal::NotFound)?;
    let (ballot, results) = state
        .service
        .results(&id)
        .await
        .map_err(|error| match error {
            BallotError::NotFound => Refusal::NotFound,
            other => Refusal::Unavailable(other),
        })?;
    match state
        .service
        .can_see_results(&ballot, Some(&viewer.voter))
        .await
    {
        Ok(true) => Ok((ballot, results)),
        Ok(false) => Err(Refusal::Hidden(ballot)),
        Err(error) => Err(Refusal::Unavailable(error)),
    }
}

/// The answer for streams and exports that may not show the tally.
fn refused(state: &AppState, refusal: Refusal) -> Response {
    match refusal {
        Refusal::NotFound => not_found(state),
        Refusal::Unavailable(error) => unavailable(state, &error),
        Refusal::Hidden(ballot) => error_page(
            state,
            StatusCode::FORBIDDEN,
            "results_hidden",
            hidden_results_message(ballot.settings().results_visibility),
        ),
    }
}

/// `GET /results/{id}`: the results, live; or why they are hidden.
#[handler]
pub(crate) async fn results_page(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let viewer = viewer(&state, jar).await;
    let now = state.service.now();
    let (ballot, results) = match visible_results(&state, &viewer, &id).await {
        Ok((ballot, results)) => (ballot, Some(results)),
        Err(Refusal::Hidden(ballot)) => (ballot, None),
        Err(refusal) => return refused(&state, refusal),
    };
    let hidden = results
        .is_none()
        .then(|| hidden_results_message(ballot.settings().results_visibility));
    render(
        &state,
        "results.html",
        csrf,
        Some(&viewer),
        json!({
            "ballot": BallotView::new(&ballot, now),
            "results": results.as_ref().map(ResultsView::from),
            "results_hidden": hidden,
            "is_owner": ballot.owner() == Some(&viewer.owner),
        }),
    )
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

/// `GET /ballots/{id}/live-results`: the results partial over SSE; `403`
/// while the viewer may not see results.
#[handler]
pub(crate) async fn live_results(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    let viewer = viewer(&state, jar).await;
    let ballot = match visible_results(&state, &viewer, &id).await {
        Ok((ballot, _)) => ballot,
        Err(refusal) => return refused(&state, refusal),
    };
    let feed = match state.hub.watch(ballot.id()).await {
        Ok(feed) => feed,
        Err(BallotError::NotFound) => return not_found(&state),
        Err(error) => return unavailable(&state, &error),
    };
    let resume_after = headers
        .get("Last-Event-ID")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    let guard = SseClientGuard::new(&state.metrics.sse_clients);
    let mut frames = live_updates(feed, resume_after, state.shutdown.clone())
        .map(move |update| {
            let _connected = &guard;
            Ok::<_, std::io::Error>(update.html_frame.clone())
        })
        .boxed();
    // As poem's SSE response does, with the frames already encoded: the
    // next update when there is one, else a keep-alive comment on each tick;
    // the body ends when the updates do (shutdown, or the feed closing).
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

fn timestamp(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The export of `ballot`'s results as JSON: its metadata, then one entry
/// per option with count and percentage.
pub(crate) fn export_document(
    ballot: &Ballot,
    results: &Results,
    now: time::OffsetDateTime,
) -> serde_json::Value {
    let settings = ballot.settings();
    json!({
        "ballot": {
            "id": ballot.id().to_string(),
            "measure": ballot.measure(),
            "status": ballot.status_at(now).as_str(),
            "created_at": timestamp(ballot.created_at()),
            "starts_at": timestamp(ballot.schedule().starts_at()),
            "ends_at": ballot.schedule().ends_at().map(timestamp),
            "closed_at": ballot.closed_at().map(timestamp),
            "allow_write_in": ballot.allow_write_in(),
            "eligibility": settings.eligibility.as_str(),
            "allow_vote_change": settings.allow_vote_change,
            "results_visibility": settings.results_visibility.as_str(),
        },
        "exported_at": timestamp(now),
        "seq": results.seq,
        "total": results.total,
        "options": results.rows.iter().map(|row| json!({
            "option": row.label,
            "count": row.count,
            "percentage": (row.percent * 10.0).round() / 10.0,
        })).collect::<Vec<_>>(),
    })
}

/// The export as CSV: a header row, then `option,count,percentage` rows.
pub(crate) fn export_csv_text(results: &Results) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["option", "count", "percentage"])?;
    for row in &results.rows {
        writer.write_record([
            spreadsheet_safe(&row.label),
            row.count.to_string(),
            format!("{:.1}", row.percent),
        ])?;
    }
    let bytes = writer.into_inner().map_err(|error| error.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Characters that make a spreadsheet read a cell as a formula (or, for
/// tab and the line breaks, shift it into one) when a cell begins with them;
/// the full-width forms too, which some spreadsheets fold to ASCII.
const FORMULA_TRIGGERS: &[char] = &[
    '=', '+', '-', '@', '\t', '\r', '\n', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// A text cell a spreadsheet will show as text: one that begins with a
/// formula trigger gets a leading `'` (OWASP's advice for CSV injection).
/// For CSV only: JSON keeps text verbatim.
pub(crate) fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(FORMULA_TRIGGERS) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The `Content-Disposition` of an export: a download named after the ballot.
pub(crate) fn attachment(ballot: &Ballot, extension: &str) -> String {
    format!("attachment; filename=\"oponn-{}.{extension}\"", ballot.id())
}

/// `GET /results/{id}/export.json`.
#[handler]
pub(crate) async fn export_json(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    let viewer = viewer(&state, jar).await;
    match visible_results(&state, &viewer, &id).await {
        Ok((ballot, results)) => {
            let document = export_document(&ballot, &results, state.service.now());
            poem::web::Json(document)
                .with_header(header::CONTENT_DISPOSITION, attachment(&ballot, "json"))
                .into_response()
        }
        Err(refusal) => refused(&state, refusal),
    }
}

/// `GET /results/{id}/export.csv`.
#[handler]
pub(crate) async fn export_csv(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    let viewer = viewer(&state, jar).await;
    match visible_results(&state, &viewer, &id).await {
        Ok((ballot, results)) => match export_csv_text(&results) {
            Ok(text) => text
                .with_content_type("text/csv; charset=utf-8")
                .with_header(header::CONTENT_DISPOSITION, attachment(&ballot, "csv"))
                .into_response(),
            Err(error) => unavailable(&state, &error),
        },
        Err(refusal) => refused(&state, refusal),
    }
}
