//! What a sign-in keeps while the browser is at the provider: the OAuth
//! state, the PKCE verifier and where to return, in a short-lived cookie,
//! signed and encrypted (a private cookie, so not even the browser's owner
//! reads the verifier); and the rule for where a sign-in may return to.

use poem::web::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::state::AppState;

/// The private (encrypted and signed) cookie holding a sign-in under way.
pub(crate) const FLOW_COOKIE: &str = "oponn_oauth";

/// Only the sign-in routes need the cookie.
const FLOW_COOKIE_PATH: &str = "/auth";

/// How long someone may spend at the provider.
pub(crate) const FLOW_LENGTH: Duration = Duration::minutes(10);

/// Longest return path kept; anything longer returns to `/`.
const MAX_NEXT_LEN: usize = 1024;

/// A sign-in under way, as its cookie holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingSignIn {
    /// The provider's slug: a callback at another provider is refused.
    pub(crate) provider: String,
    /// The OAuth state the callback must bring back.
    pub(crate) state: String,
    /// The PKCE verifier for the code exchange.
    pub(crate) pkce_verifier: String,
    /// Where to go once signed in (a local path).
    pub(crate) next: String,
    /// Unix time after which the cookie is void, whatever the browser kept.
    pub(crate) expires: i64,
}

impl PendingSignIn {
    /// Keeps this sign-in in the browser for [`FLOW_LENGTH`].
    pub(crate) fn store(&self, state: &AppState, jar: &CookieJar) {
        match serde_json::to_string(self) {
            Ok(value) => {
                jar.private_with_key(&state.cookie_key)
                    .add(flow_cookie(state, value, FLOW_LENGTH))
            }
            // Plain strings and an integer always serialize; should that
            // ever change, the callback refuses the sign-in as expired.
            Err(error) => tracing::error!(%error, "keeping a sign-in failed"),
        }
    }

    /// The sign-in this browser has under way, if its cookie is valid and
    /// not expired.
    pub(crate) fn load(state: &AppState, jar: &CookieJar) -> Option<Self> {
        let cookie = jar.private_with_key(&state.cookie_key).get(FLOW_COOKIE)?;
        let pending: Self = serde_json::from_str(cookie.value_str()).ok()?;
        (pending.expires > state.service.now().unix_timestamp()).then_some(pending)
    }

    /// Forgets this browser's sign-in under way.
    pub(crate) fn clear(state: &AppState, jar: &CookieJar) {
        jar.add(flow_cookie(state, String::new(), Duration::ZERO));
    }

    /// Whether `state` from the callback is the one this sign-in sent.
    pub(crate) fn state_matches(&self, state: &str) -> bool {
        // Constant time, so the comparison says nothing about near misses.
        let (ours, theirs) = (self.state.as_bytes(), state.as_bytes());
        ours.len() == theirs.len()
            && ours
                .iter()
                .zip(theirs)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

/// The flow cookie with the house attributes, scoped to `/auth`.
fn flow_cookie(state: &AppState, value: String, max_age: Duration) -> Cookie {
    let mut cookie = Cookie::new_with_str(FLOW_COOKIE, value);
    cookie.set_http_only(true);
    // Lax, not Strict: the provider's redirect back is a cross-site
    // top-level navigation, which must carry the cookie.
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(state.secure_cookies);
    cookie.set_path(FLOW_COOKIE_PATH);
    cookie.set_max_age(std::time::Duration::from_secs(
        max_age.whole_seconds().max(0).unsigned_abs(),
    ));
    cookie
}

/// Where a sign-in may return: a local path (one leading `/`, not `//`,
/// no backslash or control character), else `/`. This keeps `?next=` from
/// sending people to another site (an open redirect).
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.len() <= MAX_NEXT_LEN
                && !path.chars().any(|c| c == '\\' || c.is_control()) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_kept() {
        for good in ["/", "/create", "/vote/abc?x=1#y"] {
            assert_eq!(local_path(Some(good)), good);
        }
        for bad in [
            "",
            "create",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
        assert_eq!(local_path(Some(&format!("/{}", "a".repeat(2000)))), "/");
    }

    #[test]
    fn state_must_match_exactly() {
        let pending = PendingSignIn {
            provider: "github".to_owned(),
            state: "abc123".to_owned(),
            pkce_verifier: "v".to_owned(),
            next: "/".to_owned(),
            expires: 0,
        };
        assert!(pending.state_matches("abc123"));
        for other in ["", "abc12", "abc1234", "abc124"] {
            assert!(!pending.state_matches(other), "{other}");
        }
    }
}
