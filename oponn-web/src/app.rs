//! The application: routes, middleware and the server's life cycle.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use poem::endpoint::EmbeddedFilesEndpoint;
use poem::http::{HeaderValue, StatusCode, header};
use poem::middleware::CookieJarManager;
use poem::web::cookie::CookieKey;
use poem::web::{Data, Html, Json};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler, post};
use poem_openapi::OpenApiService;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::assets::StaticFiles;
use crate::compose::{ComposeError, Services, Wiring, build_services};
use crate::config::Config;
use crate::csrf::CsrfProtection;
use crate::live::LiveHub;
use crate::metrics::{Metrics, RequestLabels};
use crate::rates::RateLimits;
use crate::secrets::{SecretError, Secrets};
use crate::spliced::PageCache;
use crate::state::AppState;
use crate::views::Templates;
use crate::{html, pages};

/// How often the reaper prunes idle per-ballot state.
pub const REAPER_INTERVAL: Duration = Duration::from_secs(60);

/// How long shutdown waits for open requests before closing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The Content-Security-Policy of every response: scripts, styles and
/// connections from this origin only, no inline code, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A built service, bound to its address and ready to run.
pub struct App {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    wiring: Wiring,
}

impl App {
    /// Builds the service `config` describes and binds `config.bind`
    /// (port 0 picks a free port; see [`App::local_addr`]).
    ///
    /// # Errors
    /// [`StartupError`] naming what could not be set up.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        // The address first: when it is taken, nothing is created on disk
        // (no secret, key or database file).
        let listener = bind(config).await?;
        let secrets = load_secrets(config)?;
        let (services, wiring) = build_services(config, &secrets).await?;
        Self::on_listener(config, &secrets, services, wiring, listener)
    }

    /// Builds the web service around already-built services; for tests
    /// that bring their own (say, on a clock they control).
    ///
    /// # Errors
    /// [`StartupError`] naming what could not be set up.
    pub async fn with_services(
        config: &Config,
        secrets: &Secrets,
        services: Services,
        wiring: Wiring,
    ) -> Result<Self, StartupError> {
        let listener = bind(config).await?;
        Self::on_listener(config, secrets, services, wiring, listener)
    }

    /// The web service around `services`, serving on `listener`.
    fn on_listener(
        config: &Config,
        secrets: &Secrets,
        services: Services,
        wiring: Wiring,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, StartupError> {
        let service = services.ballots;
        let templates = Arc::new(Templates::load().map_err(StartupError::Templates)?);
        let shutdown = CancellationToken::new();
        let hub = Arc::new(LiveHub::new(
            Arc::clone(&service),
            Arc::clone(&templates),
            shutdown.clone(),
        ));
        let state = Arc::new(AppState {
            service,
            accounts: services.accounts,
            auth: crate::providers::AuthSettings::new(config),
            templates,
            vote_pages: PageCache::new(),
            hub,
            metrics: Metrics::new(),
            cookie_key: CookieKey::from(&secrets.cookie_key[..]),
            csrf_key: secrets.csrf_key,
            secure_cookies: config.secure_cookies(),
            public_url: config.public_url.clone(),
            skip_csrf: config.skip_csrf,
            limits: config.limits.clone(),
            rates: RateLimits::new(&config.limits),
            shutdown,
        });
        Ok(Self {
            listener,
            state,
            wiring,
        })
    }

    /// The address the service listens on.
    ///
    /// # Errors
    /// When the operating system cannot tell.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// What the service runs on, for the startup log.
    pub fn wiring(&self) -> &Wiring {
        &self.wiring
    }

    /// Serves until `shutdown` completes, then ends live streams, lets open
    /// requests finish (up to 10 s) and returns.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let token = self.state.shutdown.clone();
        spawn_reaper(Arc::clone(&self.state));
        let endpoint = routes(Arc::clone(&self.state));
        let limits = self.state.limits.clone();
        crate::server::serve(
            self.listener,
            endpoint,
            &limits,
            async move {
                shutdown.await;
                tracing::info!("shutting down: closing live streams");
                token.cancel();
            },
            SHUTDOWN_GRACE,
        )
        .await
    }
}

/// Binds the address `config` names.
async fn bind(config: &Config) -> Result<tokio::net::TcpListener, StartupError> {
    tokio::net::TcpListener::bind(&config.bind)
        .await
        .map_err(|source| StartupError::Bind {
            address: config.bind.clone(),
            source,
        })
}

fn load_secrets(config: &Config) -> Result<Secrets, StartupError> {
    match &config.secret_key {
        Some(secret) => Ok(Secrets::derive(secret)?),
        None => {
            let (secrets, path) = Secrets::from_data_dir(&config.data_dir)?;
            let path = std::path::absolute(&path).unwrap_or(path);
            tracing::info!(path = %path.display(), "cookie secret kept in a local file");
            Ok(secrets)
        }
    }
}

fn spawn_reaper(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(REAPER_INTERVAL);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    let pruned = state.service.prune_idle();
                    state.rates.prune();
                    state.vote_pages.prune();
                    let feeds = state.hub.prune_idle().await;
                    // Expired sessions already sign no one in; this only
                    // keeps their rows from piling up.
                    let sessions = state.accounts.prune_sessions().await.unwrap_or_else(|error| {
                        tracing::warn!(%error, "pruning expired sessions failed");
                        0
                    });
                    tracing::debug!(?pruned, feeds, sessions, "reaper pass");
                }
            }
        }
    });
}

fn routes(state: Arc<AppState>) -> impl Endpoint {
    let api = OpenApiService::new(api::api(), "Oponn", env!("CARGO_PKG_VERSION"))
        .description(
            "Real-time voting: create ballots, cast one vote per voter, follow tallies live.\n\n\
             Voters are identified by the signed `oponn_voter` cookie, shared with the HTML \
             pages. Requests with a body must be `application/json`, which browsers cannot \
             send cross-site without a CORS preflight that Oponn never grants; so the API \
             needs no CSRF token.",
        )
        // Relative, so "Try it out" calls whatever origin served the page,
        // behind a proxy too.
        .server("/api/v1");
    let spec = api.spec();
    let csrf = CsrfProtection::new(state.csrf_key, state.secure_cookies);
    let page_routes = Route::new()
        .at("/", get(pages::dashboard_page))
        .at(
            "/create",
            get(pages::create_form).post(pages::create_ballot),
        )
        .at("/partials/start-time-input", get(pages::start_time_input))
        .at("/vote/:id", get(pages::vote_form).post(pages::cast_vote))
        .at("/results/:id", get(pages::results_page))
        .at("/results/:id/present", get(pages::present_page))
        .at("/ballots/:id/share", get(pages::share_page))
        .at("/results/:id/export.csv", get(pages::export_csv))
        .at("/results/:id/export.json", get(pages::export_json))
        .at("/results/:id/ballots.csv", get(pages::ballots_csv))
        .at("/results/:id/ballots.json", get(pages::ballots_json))
        .at("/ballots/:id/close", post(pages::close_ballot))
        .at(
            "/ballots/:id/delete",
            get(pages::confirm_delete).post(pages::delete_ballot),
        )
        .at(
            "/ballots/:id/invitations",
            get(pages::invitations_page).post(pages::issue_invitations),
        )
        .at(
            "/ballots/:id/invitations/:invitation/revoke",
            post(pages::revoke_invitation),
        )
        .at("/ballots/:id/receipts", get(pages::receipt_search))
        .at("/ballots/:id/receipts/:code", get(pages::receipt_check))
        .at("/ballots/:id/bulletin", get(pages::bulletin_page))
        .at(
            "/i/:token",
            get(pages::open_voting_link).post(pages::switch_voting_link),
        )
        .at("/login", get(crate::auth::login_page))
        .nest("/auth", crate::auth::routes())
        .with(csrf);
    let cookie_key = state.cookie_key.clone();
    Route::new()
        .nest("/api/v1", api::with_problem_refusals(api))
        .at(
            "/api/openapi.json",
            get(poem::endpoint::make_sync(move |_| {
                spec.clone().with_content_type("application/json")
            })),
        )
        .at("/api/docs", get(api_docs))
        .at("/ballots/:id/live-results", get(pages::live_results))
        .at("/ballots/:id/live-state", get(pages::live_state))
        .at("/ballots/:id/qr.svg", get(pages::qr_code))
        .at("/favicon.ico", get(favicon))
        .at("/livez", get(livez))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics))
        .nest("/static", EmbeddedFilesEndpoint::<StaticFiles>::new())
        .nest("/", page_routes)
        .with(CookieJarManager::with_key(cookie_key))
        .data(Arc::clone(&state))
        .around(move |endpoint, request| finish_response(Arc::clone(&state), endpoint, request))
}

/// Turns every outcome into a response (so 404s get the page and the
/// headers too), adds the security headers and records the latency.
async fn finish_response<E: Endpoint>(
    state: Arc<AppState>,
    endpoint: Arc<E>,
    request: Request,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = method_label(request.method());
    let path = request.uri().path().to_owned();
    // The last line of defence: a handler that panics answers 500 and is
    // logged, instead of dropping the connection with no response.
    let outcome = std::panic::AssertUnwindSafe(crate::guard::guard(&state, &*endpoint, request))
        .catch_unwind()
        .await;
    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(error)) if error.status() == StatusCode::NOT_FOUND => html::page_not_found(&state),
        Ok(Err(error)) => error.into_response(),
        Err(panic) => {
            let cause = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(path = %loggable_path(&path), %cause, "a request handler panicked");
            internal_error(&state, &path)
        }
    };
    if path.starts_with("/api/") {
        response = as_json_problem(response);
    }
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        // A page that names a secret sets a stricter policy of its own
        // (`Referrer-Policy: no-referrer`), which stands.
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    if state.secure_cookies {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    state
        .metrics
        .request_duration
        .get_or_create(&RequestLabels {
            method: method.to_owned(),
            status: response.status().as_u16().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    Ok(response)
}

/// An API error that is not yet a JSON problem (a router's or an
/// extractor's plain-text refusal) as `{"message": …}`, keeping its status
/// and headers: every API error has one shape, whoever answered it.
fn as_json_problem(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = status.canonical_reason().unwrap_or("request refused");
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Response::from_parts(parts, json!({ "message": message }).to_string().into())
}

/// The method as a metric label: one of the standard methods, else
/// `other`, so made-up methods cannot grow the number of series.
fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The `500` of a handler that failed unexpectedly.
fn internal_error(state: &AppState, path: &str) -> Response {
    const MESSAGE: &str = "Something went wrong on our side; it has been logged. \
         Nothing is known to have changed: reload the page and try again.";
    if path.starts_with("/api/") {
        Json(json!({ "message": MESSAGE }))
            .with_status(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response()
    } else {
        html::error_page(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            MESSAGE,
        )
    }
}

#[handler]
fn api_docs(state: Data<&Arc<AppState>>) -> poem::Response {
    match state.templates.render("api_docs.html", json!({})) {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering the API docs failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[handler]
fn livez() -> &'static str {
    "ok"
}

#[handler]
async fn readyz(state: Data<&Arc<AppState>>) -> Response {
    let checks = state.service.check_dependencies().await;
    let ready = checks.iter().all(|(_, result)| result.is_ok());
    let report: serde_json::Map<String, serde_json::Value> = checks
        .iter()
        .map(|(dependency, result)| {
            let status = match result {
                Ok(()) => "ok".to_owned(),
                Err(error) => {
                    tracing::warn!(error = %crate::logging::Causes(error), "readiness check failed");
                    "unavailable".to_owned()
                }
            };
            (dependency.as_str().to_owned(), json!(status))
        })
        .collect();
    let body =
        Json(json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": report }));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    body.with_status(status).into_response()
}

#[handler]
fn metrics(state: Data<&Arc<AppState>>) -> Response {
    state
        .metrics
        .encode()
        .with_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .into_response()
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The secret is unusable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The adapters could not be assembled.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// A template failed to compile (a build defect).
    #[error("templates: {0}")]
    Templates(minijinja::Error),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// `path` as logs may show it: a voting link's token (`/i/{token}`) is a
/// vote, and stays out of logs.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/i/") {
        "/i/…"
    } else {
        path
    }
}

/// `GET /favicon.ico`: the icon, for browsers that ask before reading a
/// page's `<link rel="icon">`.
#[handler]
fn favicon() -> Response {
    match StaticFiles::get("img/favicon.svg") {
        Some(file) => Response::builder()
            .content_type("image/svg+xml")
            .header(header::CACHE_CONTROL, "public, max-age=86400")
            .body(file.data.into_owned()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
