//! `GET /`: the viewer's ballots.

use std::sync::Arc;

use oponn_core::BallotError;
use poem::web::cookie::CookieJar;
use poem::web::{CsrfToken, Data};
use poem::{Response, handler};
use serde_json::json;

use super::{render, unavailable};
use crate::identity::viewer;
use crate::state::AppState;
use crate::views::{BallotView, DashboardEntry};

/// `GET /`: the signed-in account's ballots, or the ones this browser
/// created as a guest, with status and vote count (when the viewer may see
/// the count; a hidden tally stays hidden here too).
#[handler]
pub(crate) async fn dashboard_page(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
) -> Response {
    let viewer = viewer(&state, jar).await;
    let ballots = match state.service.ballots_owned_by(&viewer.owner).await {
        Ok(ballots) => ballots,
        Err(error) => return unavailable(&state, &error),
    };
    let now = state.service.now();
    let mut entries = Vec::with_capacity(ballots.len());
    for ballot in &ballots {
        let visible = match state
            .service
            .can_see_results(ballot, Some(&viewer.voter))
            .await
        {
            Ok(visible) => visible,
            Err(error) => return unavailable(&state, &error),
        };
        let total_votes = if visible {
            match state.service.tally(&ballot.id()).await {
                Ok(tally) => Some(tally.total()),
                Err(BallotError::NotFound) => continue,
                Err(error) => return unavailable(&state, &error),
            }
        } else {
            None
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
    render(
        &state,
        "index.html",
        csrf,
        Some(&viewer),
        json!({ "ballots": entries, "signed_in": viewer.account.is_some() }),
    )
}
