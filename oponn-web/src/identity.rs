//! Who is asking: a signed-in account (session cookie) or a guest browser
//! (voter cookie), both signed so neither can be forged.

use oponn_core::domain::{Account, AccountId, OwnerId, VoterId};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use time::{Duration, OffsetDateTime};

use crate::state::AppState;

/// The signed cookie holding a browser's random voter id.
pub(crate) const VOTER_COOKIE: &str = "oponn_voter";

/// The signed cookie holding a signed-in account's session.
pub(crate) const SESSION_COOKIE: &str = "oponn_session";

/// How long a session lasts.
pub(crate) const SESSION_LENGTH: Duration = Duration::days(7);

/// Longest voter id accepted from a cookie; generated ones are 22 characters.
const MAX_VOTER_ID_LEN: usize = 64;

/// Whoever sent a request.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The signed-in account, if any.
    pub(crate) account: Option<Session>,
    /// Who votes: the account when signed in, else this browser.
    pub(crate) voter: VoterId,
    /// Who owns what this viewer creates: the account when signed in,
    /// else this browser.
    pub(crate) owner: OwnerId,
    /// This request gave the browser its voter cookie: a voter that new
    /// has cast no vote anywhere, so there is nothing to look up.
    pub(crate) new_voter: bool,
}

/// Identifies the sender of a request from its cookies, giving a guest
/// browser its voter cookie when it has none.
pub(crate) fn viewer(state: &AppState, jar: &CookieJar) -> Viewer {
    match session(state, jar) {
        Some(session) => Viewer {
            voter: VoterId::account(&session.account),
            owner: account_owner(&session.account),
            account: Some(session),
            new_voter: false,
        },
        None => {
            let (voter, new_voter) = guest_voter(state, jar);
            Viewer {
                owner: guest_owner(&voter),
                voter,
                account: None,
                new_voter,
            }
        }
    }
}

/// A signed-in account, as its session cookie names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The account.
    pub(crate) account: AccountId,
    /// Its email, for showing who is signed in without a database read.
    pub(crate) email: String,
}

/// The signed-in account of this request, if its session is valid.
pub(crate) fn session(state: &AppState, jar: &CookieJar) -> Option<Session> {
    let cookie = jar.signed_with_key(&state.cookie_key).get(SESSION_COOKIE)?;
    let mut fields = cookie.value_str().splitn(3, '|');
    let (account, expires, email) = (fields.next()?, fields.next()?, fields.next()?);
    let expires = OffsetDateTime::from_unix_timestamp(expires.parse().ok()?).ok()?;
    (expires > OffsetDateTime::now_utc() && !account.is_empty()).then(|| Session {
        account: AccountId::new(account),
        email: email.to_owned(),
    })
}

/// Signs `account` in on this browser for [`SESSION_LENGTH`].
pub(crate) fn start_session(state: &AppState, jar: &CookieJar, account: &Account) {
    let expires = OffsetDateTime::now_utc() + SESSION_LENGTH;
    let value = format!(
        "{}|{}|{}",
        account.id().as_str(),
        expires.unix_timestamp(),
        account.email().as_str()
    );
    jar.signed_with_key(&state.cookie_key).add(cookie(
        state,
        SESSION_COOKIE,
        value,
        SESSION_LENGTH,
    ));
}

/// Signs this browser out.
pub(crate) fn end_session(state: &AppState, jar: &CookieJar) {
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

/// A cookie with the house attributes: `HttpOnly`, `SameSite=Lax`, path
/// `/`, and `Secure` in staging and production.
fn cookie(state: &AppState, name: &str, value: String, max_age: Duration) -> Cookie {
    let mut cookie = Cookie::new_with_str(name, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(state.secure_cookies);
    cookie.set_path("/");
    cookie.set_max_age(std::time::Duration::from_secs(
        max_age.whole_seconds().max(0).unsigned_abs(),
    ));
    cookie
}

/// The owner id of ballots a browser creates without signing in.
pub(crate) fn guest_owner(voter: &VoterId) -> OwnerId {
    OwnerId::new(format!("guest:{}", voter.as_str()))
}

/// The owner id of ballots an account creates.
pub(crate) fn account_owner(account: &AccountId) -> OwnerId {
    OwnerId::new(format!("account:{}", account.as_str()))
}
