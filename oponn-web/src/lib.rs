//! The Oponn web service: server-rendered HTMX pages, live results over
//! Server-Sent Events, a JSON API described by OpenAPI, and the `oponn`
//! binary's composition root.
//!
//! The crate is thin by design: handlers parse requests, call
//! [`oponn_core::BallotService`], and render templates or JSON. Every rule
//! about ballots and votes lives in the core, so pages and API agree.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = oponn_web::Config::from_env()?;
//! let app = oponn_web::App::build(&config).await?;
//! println!("listening on {}", app.local_addr()?);
//! app.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `config`: [`Config`] from the environment, with the rules of each
//!   [`Environment`].
//! - `compose`: the composition root: configuration to adapters.
//! - `secrets`: the service secret and the keys derived from it.
//! - `app`: [`App`]: routes, middleware (security headers, CSRF, cookies,
//!   metrics), the server's life cycle, the reaper.
//! - `pages`: HTML handlers. `api`: the JSON API. `live`: the per-instance
//!   live-results hub (one subscription and one render per ballot).
//! - `views`: templates and their view models. `identity`: the voter cookie.
//! - `auth`: sign-in: `/login`, OAuth 2.0 with GitHub and Google (the
//!   `oauth2` crate), the development mock provider, logout.
//! - `server`: the HTTP/1.1 accept loop: connection cap, header timeout,
//!   accept back-off, graceful drain. `guard`: what every request passes
//!   first (client address, cross-site refusal, rate limits, body size and
//!   time). `limits`: every limit and its setting. `rates`: the per-client
//!   rate limiters.
//! - `metrics`: Prometheus series. `assets`: embedded templates and files.
#![forbid(unsafe_code)]

mod api;
mod app;
mod assets;
mod auth;
mod compose;
mod config;
mod export;
mod guard;
mod html;
mod identity;
mod limits;
mod live;
mod metrics;
mod pages;
mod rates;
mod secrets;
mod server;
mod state;
mod views;
mod wire;

pub use app::{App, CONTENT_SECURITY_POLICY, REAPER_INTERVAL, StartupError};
pub use compose::{
    ComposeError, DATABASE_FILE, KEY_FILE, Services, Wiring, build_services, migrate,
};
pub use config::{Config, ConfigError, Environment, OAuthProviderConfig};
pub use limits::{
    DEFAULT_BALLOTS_PER_MINUTE, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_STREAMS_PER_MINUTE, DEFAULT_WRITE_INS_PER_MINUTE, Limits, MAX_BALLOT_BODY_BYTES,
    MAX_BODY_BYTES,
};
pub use secrets::{SECRET_FILE, SecretError, Secrets};
