//! Who is asking: a signed-in account (session cookie) or a guest browser
//! (voter cookie), both signed so neither can be forged.
//!
//! A session cookie carries a random token naming a session stored
//! server-side ([`oponn_core::AccountService`]), checked on every request
//! that presents one, so logout ends it for every copy of the cookie. A
//! guest sends no session cookie and costs no look-up. A signed-in viewer
//! keeps (or is given) the browser's voter cookie too, and votes as both:
//! see [`VoterId::from_browser`].

use oponn_core::domain::{
    AccountId, BallotId, InvitationId, OwnerId, ReceiptCode, SessionToken, VoterId,
};
use oponn_core::{SESSION_LENGTH, SignedIn, Unavailable};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;

use crate::logging::Causes;
use crate::state::AppState;

/// The signed cookie holding a browser's random voter id.
pub(crate) const VOTER_COOKIE: &str = "oponn_voter";

/// The signed cookie holding a signed-in account's session.
pub(crate) const SESSION_COOKIE: &str = "oponn_session";

/// Longest voter id accepted from a cookie; generated ones are 22 characters.
const MAX_VOTER_ID_LEN: usize = 64;

/// Whoever sent a request.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The signed-in account, if any.
    pub(crate) account: Option<Session>,
    /// Who votes: the account when signed in (presenting this browser's
    /// voter id too), else this browser.
    pub(crate) voter: VoterId,
    /// Who owns what this viewer creates: the account when signed in,
    /// else this browser.
    pub(crate) owner: OwnerId,
    /// This request gave the browser its voter cookie: a voter that new
    /// has cast no vote anywhere, so there is nothing to look up.
    pub(crate) new_voter: bool,
}

/// Identifies the sender of a request from its cookies, giving the
/// browser its voter cookie when it has none (signed in or not).
pub(crate) async fn viewer(state: &AppState, jar: &CookieJar) -> Viewer {
    let (browser, new_voter) = guest_voter(state, jar);
    match session(state, jar).await {
        Some(session) => Viewer {
            voter: VoterId::account(&session.account).from_browser(&browser),
            owner: OwnerId::account(&session.account),
            account: Some(session),
            new_voter: false,
        },
        None => Viewer {
            owner: OwnerId::guest(&browser),
            voter: browser,
            account: None,
            new_voter,
        },
    }
}

/// A signed-in account, as its live session names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The account.
    pub(crate) account: AccountId,
    /// Its email, for showing who is signed in.
    pub(crate) email: String,
}

/// The session token this request's signed session cookie carries, if
/// any; reads no storage.
fn session_token(state: &AppState, jar: &CookieJar) -> Option<SessionToken> {
    let cookie = jar.signed_with_key(&state.cookie_key).get(SESSION_COOKIE)?;
    let token = SessionToken::parse(cookie.value_str());
    if token.is_none() {
        // A cookie of the old stateless kind, or an empty one: drop it.
        clear_session_cookie(state, jar);
    }
    token
}

/// The signed-in account of this request, if its session cookie names a
/// live session: one indexed read of storage when a session cookie is
/// present, none otherwise. A revoked or expired session's cookie is
/// cleared. When storage cannot answer, the request is served signed out
/// (and the failure logged): nothing is granted on a session not checked.
pub(crate) async fn session(state: &AppState, jar: &CookieJar) -> Option<Session> {
    let token = session_token(state, jar)?;
    match state.accounts.session(&token).await {
        Ok(Some(account)) => Some(Session {
            account: account.id().clone(),
            email: account.email().as_str().to_owned(),
        }),
        Ok(None) => {
            clear_session_cookie(state, jar);
            None
        }
        Err(error) => {
            tracing::warn!(error = %Causes(&error), "checking a session failed; serving the request signed out");
            None
        }
    }
}

/// Gives this browser the cookie of the session `signed_in` started. It
/// lasts as long as a session can; storage decides when the session ends.
pub(crate) fn start_session(state: &AppState, jar: &CookieJar, signed_in: &SignedIn) {
    // A token seen before signing in does not count after it.
    crate::csrf::forget_secret(jar, state.secure_cookies);
    jar.signed_with_key(&state.cookie_key).add(cookie(
        state,
        SESSION_COOKIE,
        signed_in.token.as_str().to_owned(),
        SESSION_LENGTH,
    ));
}

/// The signed cookie carrying how many guest ballots signing in moved to
/// the account, for the dashboard to say so once.
const ADOPTED_COOKIE: &str = "oponn_adopted";

/// Starts the session `signed_in` began in this browser, and makes the
/// ballots this browser created as a guest the account's, so signing in
/// never hides a ballot or its owner's controls; the dashboard says how
/// many moved. A failure to move them is logged: the sign-in stands, and
/// the next sign-in from this browser moves them.
pub(crate) async fn begin_session(state: &AppState, jar: &CookieJar, signed_in: &SignedIn) {
    start_session(state, jar, signed_in);
    let (browser, new_browser) = guest_voter(state, jar);
    if new_browser {
        return;
    }
    match state
        .service
        .adopt_guest_ballots(&browser, signed_in.account.id())
        .await
    {
        Ok(0) => {}
        Ok(moved) => jar.signed_with_key(&state.cookie_key).add(cookie(
            state,
            ADOPTED_COOKIE,
            moved.to_string(),
            Duration::minutes(10),
        )),
        Err(error) => {
            tracing::warn!(error = %Causes(&error), "moving a guest's ballots to their account failed");
        }
    }
}

/// How many guest ballots the last sign-in moved to the account, once:
/// the cookie is cleared as it is read.
pub(crate) fn take_adopted_count(state: &AppState, jar: &CookieJar) -> Option<u64> {
    let signed = jar.signed_with_key(&state.cookie_key);
    let moved = signed.get(ADOPTED_COOKIE)?.value_str().parse().ok();
    signed.add(cookie(state, ADOPTED_COOKIE, String::new(), Duration::ZERO));
    moved
}

/// The signed cookie carrying what the next page should confirm to the
/// person who acted (a ballot closed, a ballot deleted).
const NOTICE_COOKIE: &str = "oponn_notice";

/// What an owner's action did, said once on the page that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The owner just created their ballot: its vote page opens with the
    /// share view.
    Created,
    /// The owner closed their ballot.
    Closed,
    /// The owner deleted their ballot.
    Deleted,
}

impl Notice {
    /// The cookie's value.
    fn as_str(self) -> &'static str {
        match self {
            Notice::Created => "created",
            Notice::Closed => "closed",
            Notice::Deleted => "deleted",
        }
    }

    /// What the page says.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Notice::Created => {
                "Your ballot is ready. Share its vote link or QR code; the results update live."
            }
            Notice::Closed => {
                "Voting is closed: no more votes are taken, and the results are final."
            }
            Notice::Deleted => {
                "The ballot was deleted: its key first, then its votes. Its links now answer 404."
            }
        }
    }
}

/// Keeps `notice` for the next page this browser loads.
pub(crate) fn keep_notice(state: &AppState, jar: &CookieJar, notice: Notice) {
    jar.signed_with_key(&state.cookie_key).add(cookie(
        state,
        NOTICE_COOKIE,
        notice.as_str().to_owned(),
        Duration::minutes(1),
    ));
}

/// The notice kept for this page, once: the cookie is cleared as it is read.
pub(crate) fn take_notice(state: &AppState, jar: &CookieJar) -> Option<Notice> {
    let signed = jar.signed_with_key(&state.cookie_key);
    let notice = match signed.get(NOTICE_COOKIE)?.value_str() {
        "created" => Some(Notice::Created),
        "closed" => Some(Notice::Closed),
        "deleted" => Some(Notice::Deleted),
        _ => None,
    };
    signed.add(cookie(state, NOTICE_COOKIE, String::new(), Duration::ZERO));
    notice
}

/// Signs this browser out: ends its session in storage, for every copy of
/// the cookie, then clears the cookie.
///
/// # Errors
/// [`Unavailable`] when storage could not end the session: the cookie is
/// kept, so the browser can try again.
pub(crate) async fn end_session(state: &AppState, jar: &CookieJar) -> Result<(), Unavailable> {
    if let Some(token) = session_token(state, jar) {
        state.accounts.sign_out(&token).await?;
    }
    clear_session_cookie(state, jar);
    crate::csrf::forget_secret(jar, state.secure_cookies);
    Ok(())
}

/// Clears the session cookie.
fn clear_session_cookie(state: &AppState, jar: &CookieJar) {
    jar.signed_with_key(&state.cookie_key).add(cookie(
        state,
        SESSION_COOKIE,
        String::new(),
        Duration::ZERO,
    ));
}

/// This browser's voter id, and whether it was minted just now.
fn guest_voter(state: &AppState, jar: &CookieJar) -> (VoterId, bool) {
    let signed = jar.signed_with_key(&state.cookie_key);
    let existing = signed
        .get(VOTER_COOKIE)
        .map(|cookie| cookie.value_str().to_owned())
        .filter(|id| !id.is_empty() && id.len() <= MAX_VOTER_ID_LEN);
    if let Some(id) = existing {
        return (VoterId::new(id), false);
    }
    let id = VoterId::generate();
    signed.add(cookie(
        state,
        VOTER_COOKIE,
        id.as_str().to_owned(),
        Duration::days(365),
    ));
    (id, true)
}

/// The prefix of the signed cookie naming the invitation a browser votes
/// by on one invite-only ballot: `oponn_invite_{ballot id}`, one per ballot.
const INVITATION_COOKIE_PREFIX: &str = "oponn_invite_";

/// How long a browser keeps an opened voting link: long enough to come
/// back and change the vote on a ballot that runs for weeks.
const INVITATION_COOKIE_AGE: Duration = Duration::days(90);

/// The prefix of the signed cookie holding the receipt of this browser's
/// last vote on one ballot, `oponn_receipt_{ballot id}`: the results page
/// shows it after the redirect that follows a vote.
const RECEIPT_COOKIE_PREFIX: &str = "oponn_receipt_";

/// How long the results page keeps showing a vote's receipt.
const RECEIPT_COOKIE_AGE: Duration = Duration::hours(1);

/// The invitation this browser votes by on `ballot`, from its signed
/// cookie (which names the ballot too, so it cannot be moved to another).
pub(crate) fn invitation_of(
    state: &AppState,
    jar: &CookieJar,
    ballot: &BallotId,
) -> Option<InvitationId> {
    let cookie = jar
        .signed_with_key(&state.cookie_key)
        .get(&format!("{INVITATION_COOKIE_PREFIX}{ballot}"))?;
    let (named, invitation) = cookie.value_str().split_once('.')?;
    if named != ballot.to_string() {
        return None;
    }
    InvitationId::parse(invitation)
}

/// Makes this browser the holder of `invitation` on `ballot`.
pub(crate) fn hold_invitation(
    state: &AppState,
    jar: &CookieJar,
    ballot: &BallotId,
    invitation: InvitationId,
) {
    jar.signed_with_key(&state.cookie_key).add(cookie(
        state,
        &format!("{INVITATION_COOKIE_PREFIX}{ballot}"),
        format!("{ballot}.{invitation}"),
        INVITATION_COOKIE_AGE,
    ));
}

/// Who votes on `ballot` from this browser: the invitation it holds for
/// that ballot, if any, else the viewer's own voter.
pub(crate) fn voter_on(
    state: &AppState,
    jar: &CookieJar,
    viewer: &Viewer,
    ballot: &BallotId,
) -> VoterId {
    invitation_of(state, jar, ballot).map_or_else(|| viewer.voter.clone(), VoterId::invited)
}

/// Keeps the receipt of the vote just cast on `ballot`, for the page the
/// voter lands on next.
pub(crate) fn keep_receipt(
    state: &AppState,
    jar: &CookieJar,
    ballot: &BallotId,
    receipt: &ReceiptCode,
) {
    jar.signed_with_key(&state.cookie_key).add(cookie(
        state,
        &format!("{RECEIPT_COOKIE_PREFIX}{ballot}"),
        receipt.as_str().to_owned(),
        RECEIPT_COOKIE_AGE,
    ));
}

/// The receipt of this browser's last vote on `ballot`, while it is kept.
pub(crate) fn kept_receipt(
    state: &AppState,
    jar: &CookieJar,
    ballot: &BallotId,
) -> Option<ReceiptCode> {
    let cookie = jar
        .signed_with_key(&state.cookie_key)
        .get(&format!("{RECEIPT_COOKIE_PREFIX}{ballot}"))?;
    ReceiptCode::parse(cookie.value_str())
}

/// A cookie with the house attributes: `HttpOnly`, `SameSite=Lax`, path
/// `/`, and `Secure` in staging and production.
fn cookie(state: &AppState, name: &str, value: String, max_age: Duration) -> Cookie {
    house_cookie(
        name,
        value,
        std::time::Duration::from_secs(max_age.whole_seconds().max(0).unsigned_abs()),
        state.secure_cookies,
    )
}

/// A cookie with the house attributes: `HttpOnly`, `SameSite=Lax` (a link
/// followed from another site still carries it), path `/`, and `Secure`
/// when `secure` (staging and production).
pub(crate) fn house_cookie(
    name: &str,
    value: String,
    max_age: std::time::Duration,
    secure: bool,
) -> Cookie {
    let mut cookie = Cookie::new_with_str(name, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(secure);
    cookie.set_path("/");
    cookie.set_max_age(max_age);
    cookie
}

/// Why a voting link (or a bearer token) opened nothing.
#[derive(Debug)]
pub(crate) enum LinkRefusal {
    /// It is not a live link (malformed, unknown, revoked, another
    /// ballot's): one answer for all, so a guess learns nothing.
    NotValid,
    /// This client presented too many links that were not valid; it may
    /// present one again after this long.
    TooMany(std::time::Duration),
    /// Storage could not answer.
    Unavailable(Unavailable),
}

/// Opens the voting link `token` for `client`, on `ballot` when one is
/// named (a bearer token on a vote): counts every link that is not valid
/// against the client's link-guess limit, and refuses every link while it
/// is over it.
pub(crate) async fn open_link(
    state: &AppState,
    client: std::net::IpAddr,
    token: &str,
    ballot: Option<&BallotId>,
) -> Result<oponn_core::OpenedInvitation, LinkRefusal> {
    if let Some(wait) = state.rates.link_guesses_blocked(client) {
        return Err(LinkRefusal::TooMany(wait));
    }
    match state.service.open_invitation(token).await {
        Ok(opened) if ballot.is_none_or(|ballot| *ballot == opened.ballot_id) => {
            return Ok(opened);
        }
        Ok(_) | Err(oponn_core::OpenInvitationError::NotValid) => {}
        Err(oponn_core::OpenInvitationError::Unavailable(error)) => {
            return Err(LinkRefusal::Unavailable(error));
        }
        Err(other) => {
            return Err(LinkRefusal::Unavailable(Unavailable::new(
                oponn_core::Dependency::Storage,
                other,
            )));
        }
    }
    match state.rates.count_link_guess(client) {
        Some(wait) => Err(LinkRefusal::TooMany(wait)),
        None => Err(LinkRefusal::NotValid),
    }
}
