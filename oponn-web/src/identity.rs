//! Who is asking: the voter id in a signed cookie.

use oponn_core::domain::{OwnerId, VoterId};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;

use crate::state::AppState;

/// The signed cookie holding a browser's random voter id.
pub(crate) const VOTER_COOKIE: &str = "oponn_voter";

/// Longest voter id accepted from a cookie; generated ones are 22 characters.
const MAX_VOTER_ID_LEN: usize = 64;

/// The voter id of this browser (or API client), from its signed cookie;
/// a fresh one, set in the response, when it has none or it was forged.
pub(crate) fn voter(state: &AppState, jar: &CookieJar) -> VoterId {
    let signed = jar.signed_with_key(&state.cookie_key);
    let existing = signed
        .get(VOTER_COOKIE)
        .map(|cookie| cookie.value_str().to_owned())
        .filter(|id| !id.is_empty() && id.len() <= MAX_VOTER_ID_LEN);
    if let Some(id) = existing {
        return VoterId::new(id);
    }
    let id = VoterId::generate();
    let mut cookie = Cookie::new_with_str(VOTER_COOKIE, id.as_str());
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(state.secure_cookies);
    cookie.set_path("/");
    cookie.set_max_age(std::time::Duration::from_secs(
        Duration::days(365).whole_seconds().unsigned_abs(),
    ));
    signed.add(cookie);
    id
}

/// The owner id of ballots this browser creates without signing in.
pub(crate) fn guest_owner(voter: &VoterId) -> OwnerId {
    OwnerId::new(format!("guest:{}", voter.as_str()))
}
