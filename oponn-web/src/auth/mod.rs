//! Sign-in: the login page, OAuth 2.0 with GitHub and Google, the
//! development mock provider, and sign-out.
//!
//! The OAuth protocol (authorization URL, state, PKCE S256, code exchange)
//! is the `oauth2` crate's; this module keeps what a sign-in needs between
//! the two legs in a signed, encrypted ten-minute cookie, asks the
//! provider who signed in, hands that to
//! [`oponn_core::AccountService::sign_in`] (which makes one account of one
//! email, whichever provider vouched for it) and starts the session cookie
//! of [`crate::identity`].
//!
//! # Layout
//!
//! - this file: the routes and their handlers. How sign-in is set up
//!   ([`AuthSettings`](crate::providers::AuthSettings): the providers'
//!   `oauth2` clients, the mock's switch) is in `crate::providers`, below
//!   the front ends, since `AppState` holds it.
//! - `flow`: the cookie of a sign-in under way, and where it may return.
//!
//! # Routes
//!
//! | route | what |
//! |---|---|
//! | `GET /login` | the configured providers, and the mock provider outside staging and production |
//! | `GET /auth/{provider}/login?next=` | 303 to the provider (`github`, `google`) |
//! | `GET /auth/{provider}/callback?code&state` | finishes the sign-in; 303 to `next` |
//! | `POST /auth/mock` | one-click sign-in in development and testing; 404 elsewhere |
//! | `POST /auth/logout` | ends the session; 303 to `/` |

mod flow;

use std::sync::Arc;

use crate::csrf::{CsrfToken, CsrfVerifier};
use oponn_core::SignInError;
use oponn_core::domain::Identity;
use poem::http::{HeaderMap, StatusCode};
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Response, Route, get, handler, post};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use self::flow::{PendingSignIn, local_path};
use crate::html::{csrf_refusal, not_found, render};
use crate::identity::{begin_session, end_session, viewer};
use crate::logging::Causes;
use crate::providers::{Provider, ProviderError};
use crate::state::AppState;

/// The address the mock provider offers until someone edits it.
pub(crate) const MOCK_EMAIL: &str = "dev@oponn.local";

/// The provider name of mock sign-ins, kept apart from real providers'.
const MOCK_PROVIDER: &str = "mock";

/// The sign-in routes, nested at `/auth` (the login page,
/// [`login_page`], is mounted at `/login` beside them). Nesting at `/`
/// would shadow the dashboard at `/` itself.
pub(crate) fn routes() -> Route {
    Route::new()
        .at("/mock", get(mock_page).post(mock_sign_in))
        .at("/logout", post(logout))
        .at("/:provider/login", get(provider_login))
        .at("/:provider/callback", get(provider_callback))
}

/// `?next=` on the login page and a provider's login route.
#[derive(Debug, Default, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// The login page, with `email_error` under the mock provider's field.
async fn login(
    state: &AppState,
    jar: &CookieJar,
    csrf: &str,
    next: &str,
    mock_email: &str,
    email_error: Option<&str>,
) -> Response {
    let query = if next == "/" {
        String::new()
    } else {
        let encoded = oauth2::url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        format!("?{encoded}")
    };
    let providers: Vec<Value> = state
        .auth
        .providers
        .iter()
        .map(Provider::kind)
        .map(|kind| {
            json!({
                "slug": kind.slug(),
                "label": kind.label(),
                "login_url": format!("/auth/{}/login{query}", kind.slug()),
            })
        })
        .collect();
    let viewer = viewer(state, jar).await;
    render(
        state,
        "login.html",
        csrf,
        Some(&viewer),
        json!({
            "providers": providers,
            "mock_enabled": state.auth.mock,
            "mock_email": mock_email,
            "email_error": email_error,
            "next": next,
        }),
    )
}

/// `GET /login`: how to sign in here.
#[handler]
pub(crate) async fn login_page(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    query: poem::Result<Query<NextQuery>>,
) -> Response {
    let next = query.ok().and_then(|Query(query)| query.next);
    let next = local_path(next.as_deref());
    login(&state, jar, csrf.as_str(), &next, MOCK_EMAIL, None).await
}

/// The mock provider's form.
#[derive(Debug, Default, Deserialize)]
struct MockForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
    email: Option<String>,
    next: Option<String>,
}

/// `GET /auth/mock`: the mock provider is a form on the login page.
#[handler]
async fn mock_page(state: Data<&Arc<AppState>>) -> Response {
    if state.auth.mock {
        Redirect::see_other("/login").into_response()
    } else {
        not_found(&state)
    }
}

/// `POST /auth/mock`: signs in as the email given, in one click; a 404
/// in staging and production, whatever the request.
#[handler]
async fn mock_sign_in(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    headers: &HeaderMap,
    form: poem::Result<Form<MockForm>>,
) -> Response {
    if !state.auth.mock {
        return not_found(&state);
    }
    let Ok(Form(form)) = form else {
        return signed_in_error_page(
            &state,
            jar,
            csrf.as_str(),
            StatusCode::BAD_REQUEST,
            "request_refused",
            "The sign-in form could not be read. Reload the page and try again.",
        )
        .await;
    };
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let next = local_path(form.next.as_deref());
    let email = form
        .email
        .as_deref()
        .map(str::trim)
        .filter(|email| !email.is_empty())
        .unwrap_or(MOCK_EMAIL);
    let identity = Identity::new(MOCK_PROVIDER, email.to_lowercase());
    match state.accounts.sign_in(&identity, email).await {
        Ok(signed_in) => {
            begin_session(&state, jar, &signed_in).await;
            tracing::info!(provider = MOCK_PROVIDER, "signed in");
            Redirect::see_other(next).into_response()
        }
        Err(SignInError::InvalidEmail(_)) => {
            login(
                &state,
                jar,
                csrf.as_str(),
                &next,
                email,
                Some("enter an email address, like dev@oponn.local"),
            )
            .await
        }
        Err(error) => sign_in_unavailable(&state, jar, csrf.as_str(), &error).await,
    }
}

/// The logout form.
#[derive(Debug, Default, Deserialize)]
struct LogoutForm {
    #[serde(rename = "X-CSRF-Token")]
    csrf_token: Option<String>,
}

/// `POST /auth/logout`: signs this browser out.
#[handler]
async fn logout(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    headers: &HeaderMap,
    form: poem::Result<Form<LogoutForm>>,
) -> Response {
    let token = form.ok().and_then(|Form(form)| form.csrf_token);
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, token.as_deref()) {
        return refusal;
    }
    match end_session(&state, jar).await {
        Ok(()) => Redirect::see_other("/").into_response(),
        Err(error) => {
            tracing::error!(error = %Causes(&error), "signing out failed: a dependency is unavailable");
            signed_in_error_page(
                &state,
                jar,
                csrf.as_str(),
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Oponn could not sign you out just now, so you are still signed in. Please \
                 try again in a moment.",
            )
            .await
        }
    }
}

/// `GET /auth/{provider}/login`: sends the browser to the provider, keeping
/// the state, PKCE verifier and `next` in the flow cookie.
#[handler]
async fn provider_login(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(provider): Path<String>,
    query: poem::Result<Query<NextQuery>>,
) -> Response {
    let Some(provider) = state.auth.providers.get(&provider) else {
        return not_found(&state);
    };
    let next = query.ok().and_then(|Query(query)| query.next);
    let authorization = provider.authorize();
    PendingSignIn {
        provider: provider.kind().slug().to_owned(),
        state: authorization.state,
        pkce_verifier: authorization.pkce_verifier,
        next: local_path(next.as_deref()),
        // The service's clock, so tests that move time move this too.
        expires: state
            .service
            .now()
            .checked_add(flow::FLOW_LENGTH)
            .map_or(i64::MAX, OffsetDateTime::unix_timestamp),
    }
    .store(&state, jar);
    Redirect::see_other(authorization.url).into_response()
}

/// What a provider sends the browser back with.
#[derive(Debug, Default, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/{provider}/callback`: checks the state, exchanges the code,
/// asks who signed in, and starts their session.
#[handler]
async fn provider_callback(
    state: Data<&Arc<AppState>>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(provider): Path<String>,
    query: poem::Result<Query<CallbackQuery>>,
) -> Response {
    let Some(provider) = state.auth.providers.get(&provider) else {
        return not_found(&state);
    };
    let label = provider.kind().label();
    let slug = provider.kind().slug();
    let pending = PendingSignIn::load(&state, jar);
    PendingSignIn::clear(&state, jar);
    macro_rules! fail {
        ($status:expr, $title:expr, $message:expr $(,)?) => {
            signed_in_error_page(&state, jar, csrf.as_str(), $status, $title, $message).await
        };
    }
    let query = query.map(|Query(query)| query).unwrap_or_default();
    if let Some(error) = &query.error {
        tracing::info!(
            provider = slug,
            error = %error,
            description = query.error_description.as_deref().unwrap_or(""),
            "the provider did not sign someone in"
        );
        let message = if error == "access_denied" {
            format!(
                "{label} did not sign you in: access was denied. Nothing changed; you can \
                 sign in again from the login page."
            )
        } else {
            format!(
                "{label} could not sign you in. Nothing changed; you can sign in again from \
                 the login page."
            )
        };
        return fail!(StatusCode::BAD_REQUEST, "sign_in_cancelled", &message);
    }
    let verified = pending.filter(|pending| {
        pending.provider == slug
            && query
                .state
                .as_deref()
                .is_some_and(|sent| pending.state_matches(sent))
    });
    let Some(pending) = verified else {
        tracing::warn!(
            provider = slug,
            "sign-in callback with a missing or wrong state"
        );
        return fail!(
            StatusCode::FORBIDDEN,
            "sign_in_refused",
            "This sign-in could not be verified: it may have expired, or been started in \
             another browser. Please sign in again.",
        );
    };
    let Some(code) = query.code.filter(|code| !code.is_empty()) else {
        tracing::warn!(provider = slug, "sign-in callback without a code");
        return fail!(
            StatusCode::BAD_REQUEST,
            "sign_in_failed",
            &format!("{label} sent you back without a sign-in code. Please sign in again."),
        );
    };
    let identity = match state.auth.providers.http() {
        Ok(http) => provider.identify(http, code, pending.pkce_verifier).await,
        Err(error) => Err(error),
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(ProviderError::NoVerifiedEmail) => {
            tracing::info!(provider = slug, "sign-in refused: no verified email");
            return fail!(
                StatusCode::BAD_REQUEST,
                "email_not_verified",
                &format!(
                    "Your {label} account has no verified email address. Verify one with \
                     {label}, then sign in again."
                ),
            );
        }
        Err(error) => {
            tracing::warn!(provider = slug, %error, "sign-in failed at the provider");
            return fail!(
                StatusCode::BAD_GATEWAY,
                "sign_in_failed",
                &format!(
                    "{label} could not confirm who you are just now. Nothing changed; please \
                     try again in a moment."
                ),
            );
        }
    };
    let identity_key = Identity::new(slug, identity.subject);
    match state.accounts.sign_in(&identity_key, &identity.email).await {
        Ok(signed_in) => {
            begin_session(&state, jar, &signed_in).await;
            tracing::info!(provider = slug, "signed in");
            Redirect::see_other(pending.next).into_response()
        }
        Err(SignInError::InvalidEmail(_)) => {
            tracing::info!(provider = slug, "sign-in refused: unusable email");
            fail!(
                StatusCode::BAD_REQUEST,
                "email_not_usable",
                &format!("{label} gave an email address Oponn cannot use."),
            )
        }
        Err(error) => sign_in_unavailable(&state, jar, csrf.as_str(), &error).await,
    }
}

/// The error page, with who is signed in (and a working logout form) in
/// the header.
async fn signed_in_error_page(
    state: &AppState,
    jar: &CookieJar,
    csrf: &str,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let viewer = viewer(state, jar).await;
    render(
        state,
        "error.html",
        csrf,
        Some(&viewer),
        json!({ "status": status.as_u16(), "title": title, "message": message }),
    )
    .with_status(status)
    .into_response()
}

/// Storage failed: the cause goes to the log, a plain message to the page.
async fn sign_in_unavailable(
    state: &AppState,
    jar: &CookieJar,
    csrf: &str,
    error: &(dyn std::error::Error + Send + Sync + 'static),
) -> Response {
    tracing::error!(error = %Causes(error), "signing in failed: a dependency is unavailable");
    signed_in_error_page(
        state,
        jar,
        csrf,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "Oponn is temporarily unavailable, so you were not signed in. Please try again in \
         a moment.",
    )
    .await
}
