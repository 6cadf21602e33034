//! `GET /`: the viewer's ballots.

use std::sync::Arc;

use crate::csrf::CsrfToken;
use oponn_core::BallotError;
use oponn_core::ports::Page;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Query};
use poem::{Response, handler};
use serde::Deserialize;
use serde_json::json;

use crate::html::{render, unavailable};
use crate::identity::{Notice, take_adopted_count, take_notice, viewer};
use crate::state::AppState;
use crate::views::{BallotView, DashboardEntry};

/// Ballots on one page of the dashboard: a page costs what it shows,
/// however many ballots an owner has.
pub(crate) const DASHBOARD_PAGE_SIZE: u32 = 20;

/// `?page=N`, from 1; anything else is page 1.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    page: Option<String>,
}

/// `GET /`: the signed-in account's ballots, or the ones this browser
/// created as a guest, with status and vote count (when the viewer may see
/// the count; a hidden tally stays hidden here too), newest first, a page
/// at a time.
#[handler]
pub(crate) async fn dashboard_page(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    query: Option<Query<PageQuery>>,
) -> Response {
    let viewer = viewer(&state, jar).await;
    let number = query
        .and_then(|Query(query)| query.page)
        .and_then(|page| page.trim().parse::<u32>().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1);
    // One more than a page, to know whether another follows.
    let window = Page::numbered(number, DASHBOARD_PAGE_SIZE).map(|page| Page {
        limit: DASHBOARD_PAGE_SIZE + 1,
        ..page
    });
    let mut ballots = match window {
        Some(window) => match state.service.ballots_owned_by(&viewer.owner, window).await {
            Ok(ballots) => ballots,
            Err(error) => return unavailable(&state, &error),
        },
        None => Vec::new(),
    };
    let has_next = ballots.len() > DASHBOARD_PAGE_SIZE as usize;
    ballots.truncate(DASHBOARD_PAGE_SIZE as usize);
    let now = state.service.now();
    let mut entries = Vec::with_capacity(ballots.len());
    for ballot in &ballots {
        let total_votes = match state
            .service
            .results_for(&ballot.id(), Some(&viewer.voter))
            .await
        {
            Ok(access) => access.results().map(|results| results.total),
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
    render(
        &state,
        "index.html",
        csrf,
        Some(&viewer),
        json!({
            "ballots": entries,
            "signed_in": viewer.account.is_some(),
            "page": number,
            "previous_page": number.checked_sub(1).filter(|page| *page >= 1),
            "next_page": if has_next { number.checked_add(1) } else { None },
            "adopted": take_adopted_count(&state, jar),
            "notice": take_notice(&state, jar).map(Notice::message),
        }),
    )
}
