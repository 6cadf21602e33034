//! CSRF protection of the HTML forms: a double-submit token, cheap enough
//! to hand out on every page request.
//!
//! A browser holds a random 256-bit secret in the `oponn_csrf` cookie
//! (`__Host-oponn_csrf` where cookies are `Secure`), signed with the
//! service's CSRF key and stamped with when it was issued; signing in or
//! out drops it ([`forget_secret`]).
//! Each page's forms carry that secret masked with fresh random bytes
//! (`mask || mask XOR secret`, so no two responses carry the same token
//! and compression cannot leak it); a form posted back is accepted when its
//! token unmasks to the cookie's secret. A cross-site page can neither
//! read the cookie nor a page's token, so it cannot forge the pair.
//!
//! The secret stays the same for as long as the browser keeps coming back
//! within [`CSRF_COOKIE_LIFETIME`], so a form opened in one tab stays valid
//! while other tabs load pages. The cookie is issued again (same secret, a
//! new lifetime) only once it is [`CSRF_COOKIE_REFRESH`] old: most
//! responses set no cookie at all and cost one mask, where poem's `Csrf`
//! middleware decrypted the cookie and encrypted a new cookie and token,
//! each with fresh nonces, on every request.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use poem::web::cookie::{Cookie, CookieJar};
use poem::{Endpoint, FromRequest, Middleware, Request, RequestBody};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::identity::house_cookie;

/// The cookie that holds a browser's CSRF secret, where cookies are not
/// `Secure` (development).
pub(crate) const CSRF_COOKIE: &str = "oponn_csrf";

/// The same cookie where cookies are `Secure` (staging, production): the
/// `__Host-` prefix makes browsers refuse it unless this host set it over
/// HTTPS for path `/`, so a sibling subdomain cannot plant a secret of its
/// choosing.
pub(crate) const SECURE_CSRF_COOKIE: &str = "__Host-oponn_csrf";

/// How far in the future a cookie's issue time may lie and still count
/// (as issued now): instances behind one load balancer whose clocks differ
/// by less than this honour each other's cookies.
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// How long a CSRF cookie stays valid after it was last issued: a browser
/// away for longer gets a new secret, and forms it kept open from before
/// are refused (reload and try again).
pub(crate) const CSRF_COOKIE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// How old a valid CSRF cookie gets before a response issues it again,
/// with the same secret and a new [`CSRF_COOKIE_LIFETIME`]: a browser in
/// use keeps its secret, and only one response an hour sets the cookie.
pub(crate) const CSRF_COOKIE_REFRESH: Duration = Duration::from_secs(60 * 60);

/// Bytes of a CSRF secret.
const SECRET_BYTES: usize = 32;

/// Bytes of a cookie: when it was issued (seconds since the Unix epoch,
/// big-endian), the secret, and the HMAC-SHA256 of both.
const COOKIE_BYTES: usize = 8 + SECRET_BYTES + 32;

/// Bytes of a form token: the mask, then the secret masked with it.
const TOKEN_BYTES: usize = 2 * SECRET_BYTES;

/// The longest text that can decode to [`TOKEN_BYTES`] or [`COOKIE_BYTES`]
/// (base64 without padding), so longer input is refused before decoding.
const MAX_ENCODED_CHARS: usize = COOKIE_BYTES.div_ceil(3) * 4;

type Secret = [u8; SECRET_BYTES];

/// The token this response's forms carry, as the `csrf_token` field or
/// the `X-CSRF-Token` header: standard base64 without padding (86
/// characters). Masked on first use, so a request that renders no form (a
/// vote posted and redirected) draws no random bytes for it.
#[derive(Clone)]
pub(crate) struct CsrfToken {
    secret: Secret,
    text: OnceLock<String>,
}

impl CsrfToken {
    fn new(secret: Secret) -> Self {
        Self {
            secret,
            text: OnceLock::new(),
        }
    }

    /// The token's text, the same for every use within one response.
    pub(crate) fn as_str(&self) -> &str {
        self.text.get_or_init(|| mask(&self.secret))
    }
}

impl std::ops::Deref for CsrfToken {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("CsrfToken").finish_non_exhaustive()
    }
}

impl<'a> FromRequest<'a> for &'a CsrfToken {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        request
            .extensions()
            .get::<CsrfToken>()
            .ok_or_else(|| middleware_missing("CsrfToken"))
    }
}

/// Checks a posted token against the secret of the cookie the request
/// came with.
#[derive(Clone)]
pub(crate) struct CsrfVerifier {
    /// The secret of a valid cookie on the request; `None` when it had no
    /// cookie, or one that was forged, damaged or expired.
    secret: Option<Secret>,
}

impl CsrfVerifier {
    /// Whether `token` is one this browser's cookie was handed with: false
    /// when the request had no valid cookie, or the token is malformed or
    /// another secret's.
    pub(crate) fn is_valid(&self, token: &str) -> bool {
        let Some(secret) = &self.secret else {
            return false;
        };
        let Some(bytes) = decode::<TOKEN_BYTES>(&STANDARD_NO_PAD, token) else {
            return false;
        };
        let (mask, masked) = bytes.split_at(SECRET_BYTES);
        let unmasked: Vec<u8> = mask.iter().zip(masked).map(|(m, s)| m ^ s).collect();
        unmasked.ct_eq(secret).into()
    }
}

impl std::fmt::Debug for CsrfVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whether there is a secret, never the secret.
        f.debug_struct("CsrfVerifier")
            .field("has_cookie", &self.secret.is_some())
            .finish()
    }
}

impl<'a> FromRequest<'a> for &'a CsrfVerifier {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        request
            .extensions()
            .get::<CsrfVerifier>()
            .ok_or_else(|| middleware_missing("CsrfVerifier"))
    }
}

/// A route without [`CsrfProtection`] asked for what it provides: a bug in
/// the routes, answered `500` rather than a panic.
fn middleware_missing(what: &str) -> poem::Error {
    tracing::error!(
        what,
        "a handler asked for CSRF state on a route without CsrfProtection"
    );
    poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// The middleware: reads the request's CSRF cookie, issues one when it is
/// missing, invalid or due for refresh, and hands the handler a fresh
/// [`CsrfToken`] and a [`CsrfVerifier`]. Needs a cookie jar from an outer
/// `CookieJarManager`, which writes the cookie into the response.
#[derive(Clone)]
pub(crate) struct CsrfProtection {
    key: [u8; 32],
    secure: bool,
}

impl CsrfProtection {
    /// Signs cookies with `key`; `secure` marks them `Secure` (HTTPS only).
    pub(crate) fn new(key: [u8; 32], secure: bool) -> Self {
        Self { key, secure }
    }

    fn cookie_name(&self) -> &'static str {
        cookie_name(self.secure)
    }

    /// The cookie's value for `secret`, issued at `now`.
    fn cookie_value(&self, secret: &Secret, now: u64) -> String {
        let mut bytes = Vec::with_capacity(COOKIE_BYTES);
        bytes.extend_from_slice(&now.to_be_bytes());
        bytes.extend_from_slice(secret);
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The secret of a cookie value and when it was issued, when this key
    /// signed it and it is younger than [`CSRF_COOKIE_LIFETIME`] at `now`.
    fn open_cookie(&self, value: &str, now: u64) -> Option<(Secret, u64)> {
        let bytes = decode::<COOKIE_BYTES>(&URL_SAFE_NO_PAD, value)?;
        let (signed, tag) = bytes.split_at(COOKIE_BYTES - 32);
        if !bool::from(self.tag(signed).ct_eq(tag)) {
            return None;
        }
        let (issued, secret) = signed.split_at(8);
        let issued = u64::from_be_bytes(issued.try_into().ok()?);
        if issued.saturating_sub(now) > MAX_CLOCK_SKEW.as_secs() {
            return None;
        }
        if now.saturating_sub(issued) >= CSRF_COOKIE_LIFETIME.as_secs() {
            return None;
        }
        Some((secret.try_into().ok()?, issued))
    }

    fn tag(&self, bytes: &[u8]) -> [u8; 32] {
        // HMAC accepts a key of any length; this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else {
            return [0; 32];
        };
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// What a request at `now` with CSRF cookie value `cookie` gets: the
    /// verifier, the token for its forms, and the cookie value to set, if
    /// any.
    fn for_request(
        &self,
        cookie: Option<&str>,
        now: u64,
    ) -> (CsrfVerifier, CsrfToken, Option<String>) {
        let valid = cookie.and_then(|value| self.open_cookie(value, now));
        let verifier = CsrfVerifier {
            secret: valid.map(|(secret, _)| secret),
        };
        let (secret, set_cookie) = match valid {
            Some((secret, issued)) => {
                let refresh = now.saturating_sub(issued) >= CSRF_COOKIE_REFRESH.as_secs();
                (secret, refresh.then(|| self.cookie_value(&secret, now)))
            }
            None => {
                let secret = random::<SECRET_BYTES>();
                (secret, Some(self.cookie_value(&secret, now)))
            }
        };
        (verifier, CsrfToken::new(secret), set_cookie)
    }
}

/// The CSRF cookie's name where cookies are `Secure` or not.
fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_CSRF_COOKIE
    } else {
        CSRF_COOKIE
    }
}

/// Drops this browser's CSRF secret, at sign-in and sign-out: the next
/// page it loads is issued a new one, so a token seen before no longer
/// counts after. Forms already open are refused once (reload the page).
pub(crate) fn forget_secret(jar: &CookieJar, secure: bool) {
    jar.add(house_cookie(
        cookie_name(secure),
        String::new(),
        Duration::ZERO,
        secure,
    ));
}

/// `secret` masked with fresh random bytes, as a form token's text.
fn mask(secret: &Secret) -> String {
    let mask = random::<SECRET_BYTES>();
    let mut token = Vec::with_capacity(TOKEN_BYTES);
    token.extend_from_slice(&mask);
    token.extend(mask.iter().zip(secret).map(|(m, s)| m ^ s));
    STANDARD_NO_PAD.encode(token)
}

/// `N` bytes from the operating system's random source.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    oponn_core::crypto::fill_random(&mut bytes);
    bytes
}

/// Exactly `N` bytes from base64 `text`, or `None`.
fn decode<const N: usize>(engine: &impl base64::Engine, text: &str) -> Option<[u8; N]> {
    if text.len() > MAX_ENCODED_CHARS {
        return None;
    }
    engine.decode(text).ok()?.try_into().ok()
}

/// Seconds since the Unix epoch (0 for a clock set before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl<E: Endpoint> Middleware<E> for CsrfProtection {
    type Output = CsrfEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CsrfEndpoint {
            inner,
            protection: self.clone(),
        }
    }
}

/// An endpoint behind [`CsrfProtection`].
pub(crate) struct CsrfEndpoint<E> {
    inner: E,
    protection: CsrfProtection,
}

impl<E: Endpoint> Endpoint for CsrfEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut request: Request) -> poem::Result<Self::Output> {
        let cookie = request.cookie().get(self.protection.cookie_name());
        let (verifier, token, set_cookie) = self
            .protection
            .for_request(cookie.as_ref().map(Cookie::value_str), unix_now());
        if let Some(value) = set_cookie {
            request.cookie().add(house_cookie(
                self.protection.cookie_name(),
                value,
                CSRF_COOKIE_LIFETIME,
                self.protection.secure,
            ));
        }
        request.extensions_mut().insert(token);
        request.extensions_mut().insert(verifier);
        self.inner.call(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn protection() -> CsrfProtection {
        CsrfProtection::new([7; 32], false)
    }

    #[test]
    fn a_token_is_valid_with_the_cookie_it_was_handed_with_and_no_other() {
        let protection = protection();
        let (verifier, token, cookie) = protection.for_request(None, NOW);
        assert!(
            !verifier.is_valid(token.as_str()),
            "no cookie came with this one"
        );
        let cookie = cookie.expect("a new browser gets a cookie");
        let (verifier, _, _) = protection.for_request(Some(&cookie), NOW + 1);
        assert!(verifier.is_valid(token.as_str()));
        let (_, _, other_cookie) = protection.for_request(None, NOW);
        let (other, _, _) = protection.for_request(other_cookie.as_deref(), NOW);
        assert!(!other.is_valid(token.as_str()), "another browser's secret");
    }

    #[test]
    fn each_response_gets_a_different_token_for_the_same_secret() {
        let protection = protection();
        let (_, _, cookie) = protection.for_request(None, NOW);
        let (verifier, first, none) = protection.for_request(cookie.as_deref(), NOW);
        let (_, second, _) = protection.for_request(cookie.as_deref(), NOW);
        assert!(none.is_none(), "a fresh cookie is not set again");
        assert_ne!(first.as_str(), second.as_str());
        assert!(verifier.is_valid(first.as_str()) && verifier.is_valid(second.as_str()));
        assert_eq!(first.as_str().len(), 86);
        assert_eq!(first.as_str(), &*first, "one text per response");
    }

    #[test]
    fn the_cookie_is_issued_again_with_the_same_secret_once_it_is_an_hour_old() {
        let protection = protection();
        let (_, token, cookie) = protection.for_request(None, NOW);
        let refresh = CSRF_COOKIE_REFRESH.as_secs();
        let (_, _, again) = protection.for_request(cookie.as_deref(), NOW + refresh - 1);
        assert!(again.is_none());
        let (verifier, _, again) = protection.for_request(cookie.as_deref(), NOW + refresh);
        let again = again.expect("an hour-old cookie is issued again");
        assert!(verifier.is_valid(token.as_str()));
        // The new cookie carries the same secret: the old page's token
        // stays valid with it, for a new lifetime.
        let later = NOW + CSRF_COOKIE_LIFETIME.as_secs();
        let (verifier, _, _) = protection.for_request(Some(&again), later);
        assert!(verifier.is_valid(token.as_str()));
    }

    #[test]
    fn a_cookie_is_refused_from_the_end_of_its_lifetime() {
        let protection = protection();
        let (_, token, cookie) = protection.for_request(None, NOW);
        let lifetime = CSRF_COOKIE_LIFETIME.as_secs();
        let (verifier, _, _) = protection.for_request(cookie.as_deref(), NOW + lifetime - 1);
        assert!(verifier.is_valid(token.as_str()));
        let (verifier, new_token, new_cookie) =
            protection.for_request(cookie.as_deref(), NOW + lifetime);
        assert!(!verifier.is_valid(token.as_str()), "expired");
        let new_cookie = new_cookie.expect("an expired cookie is replaced");
        let (verifier, _, _) = protection.for_request(Some(&new_cookie), NOW + lifetime);
        assert!(verifier.is_valid(new_token.as_str()));
        assert!(!verifier.is_valid(token.as_str()), "a new secret");
    }

    #[test]
    fn a_cookie_from_a_clock_ahead_counts_up_to_the_skew_allowed() {
        let protection = protection();
        let (_, token, cookie) = protection.for_request(None, NOW);
        // Another instance, its clock behind this one's by up to the skew.
        let skew = MAX_CLOCK_SKEW.as_secs();
        let (verifier, _, reissued) = protection.for_request(cookie.as_deref(), NOW - skew);
        assert!(verifier.is_valid(token.as_str()));
        assert!(reissued.is_none(), "the same secret, not replaced");
        let (verifier, _, reissued) = protection.for_request(cookie.as_deref(), NOW - skew - 1);
        assert!(
            !verifier.is_valid(token.as_str()),
            "further ahead is refused"
        );
        assert!(reissued.is_some());
    }

    #[test]
    fn cookies_signed_with_another_key_or_altered_are_refused() {
        let protection = protection();
        let (_, token, cookie) = protection.for_request(None, NOW);
        let cookie = cookie.unwrap();
        let stranger = CsrfProtection::new([8; 32], false);
        assert!(
            !stranger
                .for_request(Some(&cookie), NOW)
                .0
                .is_valid(token.as_str())
        );
        for at in 0..cookie.len() {
            let mut altered = cookie.clone().into_bytes();
            altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            let (verifier, _, reissued) = protection.for_request(Some(&altered), NOW);
            if altered != cookie {
                assert!(!verifier.is_valid(token.as_str()), "altered at {at}");
                assert!(reissued.is_some());
            }
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let protection = protection();
        let (_, token, cookie) = protection.for_request(None, NOW);
        let (verifier, _, _) = protection.for_request(cookie.as_deref(), NOW);
        let shown = format!("{token:?} {verifier:?}");
        assert_eq!(shown, "CsrfToken { .. } CsrfVerifier { has_cookie: true }");
    }

    #[test]
    fn text_is_decoded_up_to_the_longest_a_cookie_can_be_and_no_further() {
        assert_eq!(MAX_ENCODED_CHARS, 96);
        let longest = "A".repeat(MAX_ENCODED_CHARS);
        assert!(decode::<COOKIE_BYTES>(&URL_SAFE_NO_PAD, &longest).is_some());
        let longer = "A".repeat(MAX_ENCODED_CHARS + 1);
        assert!(decode::<COOKIE_BYTES>(&URL_SAFE_NO_PAD, &longer).is_none());
        assert!(decode::<TOKEN_BYTES>(&STANDARD_NO_PAD, &"A".repeat(86)).is_some());
        assert!(decode::<TOKEN_BYTES>(&STANDARD_NO_PAD, &"A".repeat(87)).is_none());
    }

    #[test]
    fn malformed_tokens_and_cookies_of_any_length_are_refused_without_panicking() {
        let protection = protection();
        let (_, token, cookie) = protection.for_request(None, NOW);
        let (verifier, _, _) = protection.for_request(cookie.as_deref(), NOW);
        for text in [
            String::new(),
            "=".to_owned(),
            "é".repeat(43),
            "%FF".to_owned(),
            "A-_".repeat(32),
            token.as_str()[..85].to_owned(),
            format!("{}A", token.as_str()),
            format!("{}==", token.as_str()),
            "A".repeat(MAX_ENCODED_CHARS + 1),
            "A".repeat(1 << 20),
            token.as_str().replace('A', "-"),
        ] {
            if text != token.as_str() {
                assert!(!verifier.is_valid(&text), "{text:.40}");
            }
            let (refused, _, reissued) = protection.for_request(Some(&text), NOW);
            assert!(!refused.is_valid(token.as_str()));
            assert!(reissued.is_some());
        }
    }
}
