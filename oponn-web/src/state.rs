//! What every handler shares.

use std::sync::Arc;

use oponn_core::{AccountService, BallotService};
use poem::web::cookie::CookieKey;
use tokio_util::sync::CancellationToken;

use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::views::Templates;

/// Shared state, built once by the composition root.
pub(crate) struct AppState {
    /// Every rule about ballots and votes.
    pub(crate) service: Arc<BallotService>,
    /// Sign-in and accounts.
    pub(crate) accounts: Arc<AccountService>,
    /// The sign-in providers configured, and whether the mock one is allowed.
    pub(crate) auth: crate::auth::AuthSettings,
    /// Compiled page templates.
    pub(crate) templates: Arc<Templates>,
    /// This instance's live result feeds.
    pub(crate) hub: Arc<LiveHub>,
    /// Prometheus series.
    pub(crate) metrics: Metrics,
    /// Signs the voter cookie; shared by every instance serving the same users.
    pub(crate) cookie_key: CookieKey,
    /// Seals CSRF tokens; derived apart from the cookie key.
    pub(crate) csrf_key: [u8; 32],
    /// Cookies carry `Secure` (staging and production).
    pub(crate) secure_cookies: bool,
    /// CSRF checks are off (development tooling only; refused in production).
    pub(crate) skip_csrf: bool,
    /// Cancelled on shutdown: ends SSE streams and the reaper.
    pub(crate) shutdown: CancellationToken,
}
