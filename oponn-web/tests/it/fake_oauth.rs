//! A small OAuth 2.0 provider, started inside a test on a free port, that
//! speaks just enough of GitHub's and Google's protocols for Oponn's real
//! sign-in code to run against it over HTTP: `/authorize` (checks the
//! request and redirects back with a code), `/token` (checks the code and
//! the PKCE verifier against the S256 challenge), GitHub's `/user` and
//! `/user/emails`, and Google's `/userinfo`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oponn_web::OAuthProviderConfig;
use poem::http::{HeaderMap, StatusCode};
use poem::listener::TcpAcceptor;
use poem::web::{Data, Form, Json, Query, Redirect};
use poem::{EndpointExt, IntoResponse, Response, Route, Server, get, handler, post};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Oponn's public origin as the providers know it (the address a reverse
/// proxy would give it). Tests reach the app at its real address: see
/// [`FakeProvider::back_to_app`].
pub(crate) const PUBLIC_ORIGIN: &str = "http://oponn.test";

/// Who the fake provider says signed in.
#[derive(Debug, Clone)]
pub(crate) struct FakeIdentity {
    /// The provider's id for the person (a number for GitHub-like ones).
    pub(crate) subject: String,
    /// Their email.
    pub(crate) email: String,
    /// Whether the provider vouches for the email.
    pub(crate) verified: bool,
}

impl FakeIdentity {
    /// A person with a verified email.
    pub(crate) fn verified(subject: &str, email: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            email: email.to_owned(),
            verified: true,
        }
    }
}

/// A code handed out by `/authorize`, waiting for `/token`.
#[derive(Debug, Clone)]
struct Grant {
    redirect_uri: String,
    code_challenge: String,
}

/// The fake provider's state.
#[derive(Debug)]
struct Inner {
    client_id: String,
    client_secret: String,
    identity: FakeIdentity,
    /// Answer `/authorize` with `error=access_denied`.
    deny: bool,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, FakeIdentity>,
    /// Every request's path, in order.
    seen: Vec<String>,
    /// Every authorization request's query.
    authorizations: Vec<HashMap<String, String>>,
}

/// The state every handler shares.
type Shared = Arc<Mutex<Inner>>;

/// A running fake provider; stops when dropped.
pub(crate) struct FakeProvider {
    address: String,
    inner: Shared,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Numbers the ids, codes and tokens every fake provider hands out.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A value never handed out before in this test binary.
fn fresh(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

impl FakeProvider {
    /// Starts a provider on 127.0.0.1:0 that signs `identity` in.
    pub(crate) async fn start(identity: FakeIdentity) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            client_id: fresh("client"),
            client_secret: fresh("secret"),
            identity,
            deny: false,
            codes: HashMap::new(),
            tokens: HashMap::new(),
            seen: Vec::new(),
            authorizations: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let routes = Route::new()
            .at("/authorize", get(authorize))
            .at("/token", post(token))
            .at("/user", get(github_user))
            .at("/user/emails", get(github_emails))
            .at("/userinfo", get(google_userinfo))
            .data(Arc::clone(&inner));
        let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
        let server = tokio::spawn(Server::new_with_acceptor(acceptor).run(routes));
        Self {
            address,
            inner,
            server,
        }
    }

    /// The provider's state.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Oponn's settings for this provider as GitHub: its endpoints, and
    /// a redirect to `/auth/github/callback` at [`PUBLIC_ORIGIN`].
    pub(crate) fn github(&self) -> OAuthProviderConfig {
        let inner = self.lock();
        OAuthProviderConfig {
            auth_url: format!("{}/authorize", self.address),
            token_url: format!("{}/token", self.address),
            user_info_url: self.address.clone(),
            ..OAuthProviderConfig::github(
                inner.client_id.clone(),
                inner.client_secret.clone(),
                format!("{PUBLIC_ORIGIN}/auth/github/callback"),
            )
        }
    }

    /// Oponn's settings for this provider as Google.
    pub(crate) fn google(&self) -> OAuthProviderConfig {
        let inner = self.lock();
        OAuthProviderConfig {
            auth_url: format!("{}/authorize", self.address),
            token_url: format!("{}/token", self.address),
            user_info_url: format!("{}/userinfo", self.address),
            ..OAuthProviderConfig::google(
                inner.client_id.clone(),
                inner.client_secret.clone(),
                format!("{PUBLIC_ORIGIN}/auth/google/callback"),
            )
        }
    }

    /// Makes `/authorize` answer as if the person clicked "deny".
    pub(crate) fn deny(&self) {
        self.lock().deny = true;
    }

    /// The paths requested so far, in order.
    pub(crate) fn seen(&self) -> Vec<String> {
        self.lock().seen.clone()
    }

    /// The query of the last authorization request.
    pub(crate) fn last_authorization(&self) -> HashMap<String, String> {
        self.lock()
            .authorizations
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// Codes issued and not yet exchanged.
    pub(crate) fn unexchanged_codes(&self) -> usize {
        self.lock().codes.len()
    }

    /// The URL on the test app a redirect to [`PUBLIC_ORIGIN`] means.
    pub(crate) fn back_to_app(app_address: &str, location: &str) -> String {
        let path = location
            .strip_prefix(PUBLIC_ORIGIN)
            .unwrap_or_else(|| panic!("{location} does not lead back to oponn"));
        format!("{app_address}{path}")
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An OAuth error answer.
fn bad_request(error: &str) -> Response {
    Json(json!({ "error": error }))
        .with_status(StatusCode::BAD_REQUEST)
        .into_response()
}

/// `GET /authorize`: checks the request, then 303 back to `redirect_uri`
/// with a code (or `error=access_denied`) and the same state.
#[handler]
fn authorize(inner: Data<&Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.seen.push("/authorize".to_owned());
    inner.authorizations.push(query.clone());
    let field = |name: &str| query.get(name).filter(|value| !value.is_empty()).cloned();
    let (Some(redirect_uri), Some(state), Some(challenge)) = (
        field("redirect_uri"),
        field("state"),
        field("code_challenge"),
    ) else {
        return bad_request("invalid_request");
    };
    if field("response_type").as_deref() != Some("code")
        || field("client_id").as_deref() != Some(inner.client_id.as_str())
        || field("code_challenge_method").as_deref() != Some("S256")
    {
        return bad_request("invalid_request");
    }
    let mut back = reqwest::Url::parse(&redirect_uri).unwrap();
    if inner.deny {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &state);
    } else {
        let code = fresh("code");
        inner.codes.insert(
            code.clone(),
            Grant {
                redirect_uri,
                code_challenge: challenge,
            },
        );
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state);
    }
    Redirect::see_other(back.as_str()).into_response()
}

/// `POST /token`: the client's credentials, a code issued for the same
/// `redirect_uri`, and a verifier whose S256 digest is the code's challenge.
#[handler]
fn token(inner: Data<&Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.seen.push("/token".to_owned());
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    if field("client_id") != inner.client_id || field("client_secret") != inner.client_secret {
        return Json(json!({ "error": "invalid_client" }))
            .with_status(StatusCode::UNAUTHORIZED)
            .into_response();
    }
    if field("grant_type") != "authorization_code" {
        return bad_request("unsupported_grant_type");
    }
    // A code is good for one exchange only.
    let Some(grant) = inner.codes.remove(&field("code")) else {
        return bad_request("invalid_grant");
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if grant.redirect_uri != field("redirect_uri") || grant.code_challenge != challenge {
        return bad_request("invalid_grant");
    }
    let access_token = fresh("token");
    let identity = inner.identity.clone();
    inner.tokens.insert(access_token.clone(), identity);
    Json(json!({ "access_token": access_token, "token_type": "bearer", "scope": "read:user" }))
        .into_response()
}

/// The identity `headers` carry a bearer token for, if any.
fn bearer(inner: &Inner, headers: &HeaderMap) -> Option<FakeIdentity> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let presented = value.strip_prefix("Bearer ")?;
    inner.tokens.get(presented).cloned()
}

/// What GitHub and Google answer a bad token.
fn unauthorized() -> Response {
    Json(json!({ "message": "Bad credentials" }))
        .with_status(StatusCode::UNAUTHORIZED)
        .into_response()
}

/// GitHub's `GET /user`.
#[handler]
fn github_user(inner: Data<&Shared>, headers: &HeaderMap) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.seen.push("/user".to_owned());
    let Some(identity) = bearer(&inner, headers) else {
        return unauthorized();
    };
    let id = identity
        .subject
        .parse::<u64>()
        .map_or_else(|_| json!(identity.subject), |id| json!(id));
    Json(json!({ "id": id, "login": "octo", "email": null })).into_response()
}

/// GitHub's `GET /user/emails`: a verified non-primary address, then the
/// identity's as the primary one.
#[handler]
fn github_emails(inner: Data<&Shared>, headers: &HeaderMap) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.seen.push("/user/emails".to_owned());
    let Some(identity) = bearer(&inner, headers) else {
        return unauthorized();
    };
    Json(json!([
        { "email": "noreply@users.example", "primary": false, "verified": true, "visibility": null },
        { "email": identity.email, "primary": true, "verified": identity.verified, "visibility": "private" },
    ]))
    .into_response()
}

/// Google's OpenID Connect `GET /userinfo`.
#[handler]
fn google_userinfo(inner: Data<&Shared>, headers: &HeaderMap) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.seen.push("/userinfo".to_owned());
    let Some(identity) = bearer(&inner, headers) else {
        return unauthorized();
    };
    Json(json!({
        "sub": identity.subject,
        "email": identity.email,
        "email_verified": identity.verified,
        "name": "Ada",
    }))
    .into_response()
}
