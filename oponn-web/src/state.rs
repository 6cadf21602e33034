//! What every handler shares.

use std::sync::Arc;

use oponn_core::domain::{BallotId, VoterId};
use oponn_core::{
    AccountService, BallotService, CastVoteError, Dependency, Unavailable, VoteChoice, VoteReceipt,
};
use poem::web::cookie::CookieKey;
use tokio_util::sync::CancellationToken;

use crate::limits::Limits;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::providers::AuthSettings;
use crate::rates::RateLimits;
use crate::spliced::PageCache;
use crate::views::{Templates, VotePageKey};

/// Shared state, built once by the composition root.
pub(crate) struct AppState {
    /// Every rule about ballots and votes.
    pub(crate) service: Arc<BallotService>,
    /// Sign-in and accounts.
    pub(crate) accounts: Arc<AccountService>,
    /// The sign-in providers configured, and whether the mock one is allowed.
    pub(crate) auth: AuthSettings,
    /// Compiled page templates.
    pub(crate) templates: Arc<Templates>,
    /// Vote pages as new voters see them, rendered once per ballot.
    pub(crate) vote_pages: PageCache<VotePageKey<'static>>,
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
    /// Connection, size, time and rate limits.
    pub(crate) limits: Limits,
    /// Per-client rate limiters, pruned by the reaper.
    pub(crate) rates: RateLimits,
    /// Where people reach this service (`OPONN_PUBLIC_URL`), for links
    /// that leave the site; none to take each request's `Host`.
    pub(crate) public_url: Option<String>,
    /// Cancelled on shutdown: ends SSE streams and the reaper.
    pub(crate) shutdown: CancellationToken,
}

impl AppState {
    /// Casts a vote on a task of its own, which runs to its end whatever
    /// becomes of the request: the vote may be committing a batch that
    /// other voters' votes share, and a client hanging up must not cancel
    /// their commit (nor leave a stored vote reported as failed).
    pub(crate) async fn cast_vote(
        &self,
        id: BallotId,
        voter: VoterId,
        choice: VoteChoice,
    ) -> Result<VoteReceipt, CastVoteError> {
        let service = Arc::clone(&self.service);
        let task = tokio::spawn(async move { service.cast_vote(&id, &voter, choice).await });
        match task.await {
            Ok(outcome) => outcome,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down; the vote may or may not have
            // been recorded.
            Err(error) => Err(CastVoteError::Unavailable(Unavailable::new(
                Dependency::Storage,
                error,
            ))),
        }
    }
}
