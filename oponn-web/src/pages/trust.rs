//! Invite-only ballots, receipts and the bulletin, as pages:
//!
//! - `GET /i/{token}`: opens a voting link, then the vote page;
//! - `GET|POST /ballots/{id}/invitations`: the owner's voting links (the
//!   page that issues links is the only one that shows them);
//! - `POST /ballots/{id}/invitations/{n}/revoke`: revokes an unused link;
//! - `GET /ballots/{id}/receipts[/{code}]`: checks a receipt;
//! - `GET /ballots/{id}/bulletin`: every counted vote, and its recount.

use std::sync::Arc;

use crate::csrf::{CsrfToken, CsrfVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use oponn_core::domain::{
    BallotId, INVITATION_LABEL_MAX_CHARS, InvitationId, IssuedInvitation,
    MAX_INVITATIONS_PER_BALLOT, MAX_INVITATIONS_PER_REQUEST, ReceiptCode, messages,
};
use oponn_core::{BallotError, BulletinAccess, InvitationError};
use poem::http::{HeaderMap, StatusCode};
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::json;

use crate::guard::{ClientAddr, too_many_requests};
use crate::html::{ballot_or_refusal, csrf_refusal, error_page, not_found, render, unavailable};
use crate::identity::{
    LinkRefusal, Viewer, hold_invitation, invitation_of, kept_receipt, open_link, viewer, voter_on,
};
use crate::rates::Rate;
use crate::state::AppState;
use crate::views::{BallotView, ResultsView, bulletin_rows, invitation_link, origin};

/// `GET /i/{token}`: makes this browser the holder of the voting link and
/// shows the vote page. A link that is not valid (one page for malformed,
/// unknown and revoked) is `404`; a link used to vote, opened by another
/// browser than the one holding it, is `410`. A browser that holds
/// another link of the ballot is asked first (a page with a form), so no
/// other site can swap the link a voter holds by sending them to one.
#[handler]
pub(crate) async fn open_voting_link(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Data(client): Data<&ClientAddr>,
    Path(token): Path<String>,
) -> Response {
    hold_voting_link(&state, jar, Some(csrf), client, &token).await
}

/// The form that confirms holding another voting link.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SwitchForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
}

/// `POST /i/{token}`: this browser holds this voting link from now on,
/// in place of the other link of the same ballot it held.
#[handler]
pub(crate) async fn switch_voting_link(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    verifier: &CsrfVerifier,
    Data(client): Data<&ClientAddr>,
    Path(token): Path<String>,
    form: Option<Form<SwitchForm>>,
) -> Response {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    hold_voting_link(&state, jar, None, client, &token).await
}

/// Opens `token` and makes this browser its holder; when `ask` carries
/// the page's CSRF token and the browser holds another link of the
/// ballot, asks first instead.
async fn hold_voting_link(
    state: &AppState,
    jar: &CookieJar,
    ask: Option<&CsrfToken>,
    client: &ClientAddr,
    token: &str,
) -> Response {
    let opened = match open_link(state, client.0, token, None).await {
        Ok(opened) => opened,
        Err(LinkRefusal::NotValid) => {
            return private(error_page(
                state,
                StatusCode::NOT_FOUND,
                "link_not_valid",
                messages::LINK_NOT_VALID,
            ));
        }
        Err(LinkRefusal::TooMany(wait)) => {
            return private(too_many_requests(state, "/i", Rate::LinkGuesses, wait));
        }
        Err(LinkRefusal::Unavailable(error)) => return private(unavailable(state, &error)),
    };
    let held = invitation_of(state, jar, &opened.ballot_id);
    if opened.used && held != Some(opened.invitation) {
        return private(error_page(
            state,
            StatusCode::GONE,
            "link_used",
            messages::LINK_USED,
        ));
    }
    if let (Some(csrf), Some(other)) = (ask, held)
        && other != opened.invitation
    {
        return private(render(
            state,
            "link_switch.html",
            csrf,
            None,
            json!({ "token": token, "ballot_id": opened.ballot_id.to_string() }),
        ));
    }
    hold_invitation(state, jar, &opened.ballot_id, opened.invitation);
    // The token leaves the address bar at once.
    private(Redirect::see_other(format!("/vote/{}", opened.ballot_id)).into_response())
}

/// A response that names a secret (a voting link, fresh tokens): never
/// stored by a cache, never sent on as a referrer.
fn private(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        poem::http::header::CACHE_CONTROL,
        poem::http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        poem::http::header::REFERRER_POLICY,
        poem::http::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The owner's voting-links page after an action.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct InvitationsQuery {
    /// The link just revoked.
    revoked: Option<u32>,
}

/// The form that issues voting links.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct IssueForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
    /// How many links.
    voter_links: Option<String>,
    /// Their labels, one per line, or none.
    voter_labels: Option<String>,
}

/// The count and labels a form's `voter_links` and `voter_labels` ask
/// for: labels one per line (blank lines dropped); a blank count with
/// labels is one link per label. Text that is no number is 0, which the
/// core refuses with its message.
pub(crate) fn links_asked(count: Option<&str>, labels: Option<&str>) -> (u32, Vec<String>) {
    let labels: Vec<String> = labels
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let count = match count.map(str::trim).filter(|count| !count.is_empty()) {
        Some(count) => {
            count
                .parse::<u32>()
                .unwrap_or(match count.bytes().all(|b| b.is_ascii_digit()) {
                    // Digits past u32: more than any request may ask.
                    true => u32::MAX,
                    false => 0,
                })
        }
        None => u32::try_from(labels.len()).unwrap_or(u32::MAX),
    };
    (count, labels)
}

/// `GET /ballots/{id}/invitations`: the owner's voting links.
#[handler]
pub(crate) async fn invitations_page(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<InvitationsQuery>,
) -> Response {
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    let viewer = viewer(&state, jar).await;
    let notice = query
        .revoked
        .map(|number| format!("Voting link {number} was revoked: it no longer opens the ballot."));
    links_page(&state, csrf, &viewer, &id, LinksView::default(), notice).await
}

/// What the voting-links page shows besides the list.
#[derive(Default)]
struct LinksView<'a> {
    /// Links just issued, shown this once.
    issued: Vec<IssuedInvitation>,
    /// Why the request to issue links was refused.
    error: Option<&'a str>,
    /// The issue form as submitted.
    form: Option<&'a IssueForm>,
    /// This instance's address, for whole links.
    origin: String,
}

/// Renders the owner's voting-links page, or the refusal.
async fn links_page(
    state: &AppState,
    csrf: &str,
    viewer: &Viewer,
    id: &BallotId,
    view: LinksView<'_>,
    notice: Option<String>,
) -> Response {
    let ballot = match ballot_or_refusal(state, id).await {
        Ok(ballot) => ballot,
        Err(refusal) => return refusal,
    };
    let invitations = match state.service.invitations(id, &viewer.owner).await {
        Ok(invitations) => invitations,
        Err(error) => return invitation_refusal(state, error),
    };
    let used = invitations
        .iter()
        .filter(|invitation| invitation.is_used())
        .count();
    let revoked = invitations
        .iter()
        .filter(|invitation| invitation.is_revoked())
        .count();
    let origin = view.origin.as_str();
    let (issued, csv) = issued_view(origin, &view.issued);
    let csv = (!view.issued.is_empty()).then_some(csv);
    let response = render(
        state,
        "invitations.html",
        csrf,
        Some(viewer),
        json!({
            "ballot": BallotView::new(&ballot, state.service.now()),
            "invitations": invitations.iter().map(|invitation| json!({
                "id": invitation.id.get(),
                "label": invitation.label.as_ref().map(|label| label.as_str()),
                "used": invitation.is_used(),
                "revoked": invitation.is_revoked(),
            })).collect::<Vec<_>>(),
            "counts": { "all": invitations.len(), "used": used, "revoked": revoked },
            "issued": issued,
            "issued_csv": csv,
            "error": view.error,
            "form": {
                "voter_links": view.form.and_then(|form| form.voter_links.clone()).unwrap_or_default(),
                "voter_labels": view.form.and_then(|form| form.voter_labels.clone()).unwrap_or_default(),
            },
            "notice": notice,
            "limits": {
                "per_request": MAX_INVITATIONS_PER_REQUEST,
                "per_ballot": MAX_INVITATIONS_PER_BALLOT,
                "label_chars": INVITATION_LABEL_MAX_CHARS,
            },
        }),
    );
    if view.issued.is_empty() {
        response
    } else {
        private(response)
    }
}

/// The page a ballot created with voting links answers with, showing
/// them this once: in place of the create form for htmx, else whole.
pub(crate) fn links_created(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    viewer: &Viewer,
    ballot: &oponn_core::domain::Ballot,
    issued: &[IssuedInvitation],
) -> Response {
    let origin = origin(state.secure_cookies, headers);
    let template = if crate::html::is_htmx(headers) {
        "partials/links_created.html"
    } else {
        "links_created.html"
    };
    let (links, csv) = issued_view(&origin, issued);
    private(render(
        state,
        template,
        csrf,
        Some(viewer),
        json!({
            "ballot": BallotView::new(ballot, state.service.now()),
            "issued": links,
            "issued_csv": csv,
        }),
    ))
}

/// Links just issued as the pages show them (number, label, whole link),
/// and as a CSV to save, in a `data:` URL: nothing is kept to serve later.
fn issued_view(origin: &str, issued: &[IssuedInvitation]) -> (Vec<serde_json::Value>, String) {
    let links = issued
        .iter()
        .map(|invitation| {
            json!({
                "id": invitation.id.get(),
                "label": invitation.label.as_ref().map(|label| label.as_str()),
                "link": invitation_link(origin, &invitation.token),
            })
        })
        .collect();
    let csv = format!(
        "data:text/csv;charset=utf-8;base64,{}",
        STANDARD.encode(links_csv(origin, issued))
    );
    (links, csv)
}

/// The links just issued as CSV (`label,link`), for the owner to save:
/// formula-looking labels are quoted so a spreadsheet shows them as text.
fn links_csv(origin: &str, issued: &[IssuedInvitation]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut rows = vec![["label".to_owned(), "link".to_owned()]];
    rows.extend(issued.iter().map(|invitation| {
        [
            crate::export::spreadsheet_safe(
                invitation.label.as_ref().map_or("", |label| label.as_str()),
            ),
            invitation_link(origin, &invitation.token),
        ]
    }));
    for row in rows {
        // Writing to memory cannot fail.
        let _ = writer.write_record(row);
    }
    writer
        .into_inner()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The page for a refused voting-links request.
fn invitation_refusal(state: &AppState, error: InvitationError) -> Response {
    let (status, title, message) = match error {
        InvitationError::NotFound => return not_found(state),
        InvitationError::Forbidden => (
            StatusCode::FORBIDDEN,
            "not_owner",
            messages::NOT_OWNER_OF_LINKS,
        ),
        InvitationError::NotInviteOnly => (
            StatusCode::CONFLICT,
            "not_invite_only",
            messages::NOT_INVITE_ONLY,
        ),
        InvitationError::UnknownInvitation => (
            StatusCode::NOT_FOUND,
            "no_such_link",
            "This ballot has no such voting link.",
        ),
        InvitationError::Used => (StatusCode::CONFLICT, "link_used", messages::INVITATION_USED),
        other => return unavailable(state, &other),
    };
    error_page(state, status, title, message)
}

/// `POST /ballots/{id}/invitations`: issues voting links, and shows them
/// this once, with a CSV of them to save.
#[handler]
pub(crate) async fn issue_invitations(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    form: Option<Form<IssueForm>>,
) -> Response {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    let viewer = viewer(&state, jar).await;
    let (count, labels) = links_asked(form.voter_links.as_deref(), form.voter_labels.as_deref());
    let origin = origin(state.secure_cookies, headers);
    match state
        .service
        .issue_invitations(&id, &viewer.owner, count, &labels)
        .await
    {
        Ok(issued) => {
            let view = LinksView {
                issued,
                origin,
                ..LinksView::default()
            };
            links_page(&state, csrf, &viewer, &id, view, None).await
        }
        Err(InvitationError::Invalid(error)) => {
            let view = LinksView {
                error: Some(error.message()),
                form: Some(&form),
                origin,
                ..LinksView::default()
            };
            links_page(&state, csrf, &viewer, &id, view, None)
                .await
                .with_status(StatusCode::UNPROCESSABLE_ENTITY)
                .into_response()
        }
        Err(error @ (InvitationError::Ended | InvitationError::LimitReached)) => {
            let message = match error {
                InvitationError::Ended => messages::ENDED,
                _ => messages::INVITATIONS_LIMIT_REACHED,
            };
            let view = LinksView {
                error: Some(message),
                form: Some(&form),
                origin,
                ..LinksView::default()
            };
            links_page(&state, csrf, &viewer, &id, view, None)
                .await
                .with_status(StatusCode::CONFLICT)
                .into_response()
        }
        Err(error) => invitation_refusal(&state, error),
    }
}

/// The revoke button's form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
}

/// `POST /ballots/{id}/invitations/{n}/revoke`: revokes an unused link,
/// then back to the list with a notice.
#[handler]
pub(crate) async fn revoke_invitation(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    verifier: &CsrfVerifier,
    Path((id, invitation)): Path<(String, String)>,
    form: Option<Form<RevokeForm>>,
) -> Response {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let (Ok(id), Some(invitation)) = (BallotId::parse(&id), InvitationId::parse(&invitation))
    else {
        return not_found(&state);
    };
    let viewer = viewer(&state, jar).await;
    match state
        .service
        .revoke_invitation(&id, &viewer.owner, invitation)
        .await
    {
        Ok(()) => Redirect::see_other(format!("/ballots/{id}/invitations?revoked={invitation}"))
            .into_response(),
        Err(error) => invitation_refusal(&state, error),
    }
}

/// A receipt typed into the check form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReceiptQuery {
    /// The receipt, as typed.
    code: Option<String>,
}

/// `GET /ballots/{id}/receipts?code=`: the check form's answer.
#[handler]
pub(crate) async fn receipt_search(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<ReceiptQuery>,
) -> Response {
    receipt_page(&state, jar, csrf, &id, query.code.as_deref().unwrap_or("")).await
}

/// `GET /ballots/{id}/receipts/{code}`: whether a receipt is counted.
#[handler]
pub(crate) async fn receipt_check(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path((id, code)): Path<(String, String)>,
) -> Response {
    receipt_page(&state, jar, csrf, &id, &code).await
}

/// Renders whether `code` is counted on ballot `id`, and nothing more.
async fn receipt_page(
    state: &AppState,
    jar: &CookieJar,
    csrf: &str,
    id: &str,
    code: &str,
) -> Response {
    let Ok(id) = BallotId::parse(id) else {
        return not_found(state);
    };
    let status = match state.service.receipt_status(&id, code).await {
        Ok(status) => status,
        Err(BallotError::NotFound) => return not_found(state),
        Err(error) => return unavailable(state, &error),
    };
    let ballot = match ballot_or_refusal(state, &id).await {
        Ok(ballot) => ballot,
        Err(refusal) => return refusal,
    };
    let shown = ReceiptCode::parse(code)
        .map_or_else(|| code.chars().take(40).collect(), |code| code.to_string());
    let viewer = viewer(state, jar).await;
    render(
        state,
        "receipt.html",
        csrf,
        Some(&viewer),
        json!({
            "ballot": BallotView::new(&ballot, state.service.now()),
            "receipt": shown,
            "status": status.as_str(),
            "message": status.message(),
            "asked": !code.trim().is_empty(),
        }),
    )
}

/// Rows on one page of the bulletin: a page costs what it shows; the
/// JSON bulletin has every row.
pub(crate) const BULLETIN_PAGE_ROWS: usize = 500;

/// The bulletin's search box, and its page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BulletinQuery {
    /// A receipt to find.
    receipt: Option<String>,
    /// The page of rows, from 1.
    page: Option<String>,
}

/// `GET /ballots/{id}/bulletin`: every counted vote as (receipt, choice)
/// and the result recounted from them, when the owner published it.
#[handler]
pub(crate) async fn bulletin_page(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<BulletinQuery>,
) -> Response {
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    let viewer = viewer(&state, jar).await;
    let voter = voter_on(&state, jar, &viewer, &id);
    let bulletin = match state.service.bulletin_for(&id, Some(&voter)).await {
        Ok(BulletinAccess::Shown(bulletin)) => bulletin,
        Ok(BulletinAccess::NotPublished { .. }) => {
            return error_page(
                &state,
                StatusCode::NOT_FOUND,
                "no_bulletin",
                messages::NO_BULLETIN,
            );
        }
        Ok(BulletinAccess::Hidden { message, .. }) => {
            return error_page(&state, StatusCode::FORBIDDEN, "bulletin_hidden", message);
        }
        Err(BallotError::NotFound) => return not_found(&state),
        Err(error) => return unavailable(&state, &error),
    };
    let searched = query
        .receipt
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty());
    let wanted = searched.and_then(ReceiptCode::parse);
    let page = query
        .page
        .as_deref()
        .and_then(|page| page.trim().parse::<usize>().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1);
    let pages = bulletin.rows.len().div_ceil(BULLETIN_PAGE_ROWS).max(1);
    let selected = if searched.is_some() {
        // Rows are sorted by receipt: one binary search finds it.
        wanted
            .and_then(|wanted| {
                bulletin
                    .rows
                    .binary_search_by(|row| row.receipt.cmp(&wanted))
                    .ok()
            })
            .and_then(|at| bulletin.rows.get(at).cloned())
            .into_iter()
            .collect()
    } else {
        bulletin
            .rows
            .iter()
            .skip(page.saturating_sub(1).saturating_mul(BULLETIN_PAGE_ROWS))
            .take(BULLETIN_PAGE_ROWS)
            .cloned()
            .collect()
    };
    let rows = bulletin_rows(&oponn_core::PublishedBulletin {
        ballot: bulletin.ballot.clone(),
        rows: selected,
        results: bulletin.results.clone(),
    });
    let mine = kept_receipt(&state, jar, &id).map(|receipt| receipt.to_string());
    render(
        &state,
        "bulletin.html",
        csrf,
        Some(&viewer),
        json!({
            "ballot": BallotView::new(&bulletin.ballot, state.service.now()),
            "results": ResultsView::from(&bulletin.results),
            "rows": rows,
            "counted": bulletin.rows.len(),
            "searched": searched,
            "mine": mine,
            "page": page,
            "previous_page": page.checked_sub(1).filter(|page| *page >= 1),
            "next_page": (page < pages && searched.is_none()).then_some(page + 1),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::links_asked;

    #[test]
    fn links_are_asked_by_count_or_by_labels() {
        assert_eq!(links_asked(Some(" 3 "), None), (3, vec![]));
        assert_eq!(
            links_asked(None, Some("Ana\n\n table 4 \r\n")),
            (2, vec!["Ana".to_owned(), "table 4".to_owned()])
        );
        assert_eq!(links_asked(Some(""), Some("")), (0, vec![]));
        assert_eq!(links_asked(Some("lots"), None).0, 0);
        assert_eq!(links_asked(Some("99999999999999"), None).0, u32::MAX);
    }
}
