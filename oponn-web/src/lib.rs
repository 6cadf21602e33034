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
//! Three layers; each imports only from the layers below (ARCHITECTURE.md
//! draws them, and `cargo test -p xtask` checks the front ends).
//!
//! - The composition root and the process: `config` ([`Config`], with the
//!   rules of each [`Environment`]), `compose` (configuration to
//!   adapters), `secrets` (the service secret and the keys derived from
//!   it), `app` ([`App`]: routes, middleware, life cycle, the reaper),
//!   `server` (the HTTP/1.1 accept loop).
//! - The front ends, siblings: `pages` (HTML), `api` (the JSON API),
//!   `auth` (sign-in routes).
//! - What they share: `state` (`AppState`), `identity` (the voter and
//!   session cookies), `providers` (how sign-in is set up), `html`
//!   (rendering, error pages), `csrf` (the forms' double-submit tokens),
//!   `live` (the per-instance live-results
//!   hub and streams), `export` (result exports), `wire` (the JSON tally),
//!   `logging` (errors with their causes),
//!   `views` (templates and view models), `spliced` (pages rendered once
//!   and served with each request's token spliced in), `guard` (what every request
//!   passes first), `limits`, `rates`, `metrics`, `assets`.
#![forbid(unsafe_code)]

mod api;
mod app;
mod assets;
mod auth;
mod compose;
mod config;
mod csrf;
mod export;
mod guard;
mod html;
mod identity;
mod limits;
mod live;
mod logging;
mod metrics;
mod pages;
mod providers;
mod rates;
mod secrets;
mod server;
mod share;
mod spliced;
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
    DEFAULT_LINK_GUESSES_PER_MINUTE, DEFAULT_STREAMS_PER_MINUTE, DEFAULT_WRITE_INS_PER_MINUTE,
    Limits, MAX_BALLOT_BODY_BYTES, MAX_BODY_BYTES,
};
pub use secrets::{SECRET_FILE, SecretError, Secrets};
