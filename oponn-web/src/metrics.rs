//! Prometheus series, all prefixed `oponn_`.

use oponn_core::CastVoteError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request's latency: method and status code only, so the
/// number of series stays bounded whatever paths clients request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) method: String,
    pub(crate) status: String,
}

/// Labels of a refused vote: the reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusalLabels {
    pub(crate) reason: String,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 4 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The service's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    /// Votes accepted.
    pub(crate) votes_cast: Counter,
    /// Votes refused, by reason.
    pub(crate) votes_refused: Family<RefusalLabels, Counter>,
    /// Ballots created.
    pub(crate) ballots_created: Counter,
    /// Open SSE connections.
    pub(crate) sse_clients: Gauge,
    /// Request latency.
    pub(crate) request_duration: HistogramFamily,
}

impl Metrics {
    /// Counts a vote refused for `error`, by its reason: the pages and the
    /// API count the same reasons the same way.
    pub(crate) fn count_vote_refusal(&self, error: &CastVoteError) {
        let reason = match error {
            CastVoteError::NotFound => "not_found",
            CastVoteError::NotOpenYet => "not_open_yet",
            CastVoteError::Ended => "ended",
            CastVoteError::InvalidOption => "invalid_option",
            CastVoteError::WriteInsNotAllowed => "write_ins_not_allowed",
            CastVoteError::InvalidWriteIn(_) => "invalid_write_in",
            CastVoteError::WriteInLimitReached { .. } => "write_in_limit",
            CastVoteError::AlreadyVoted => "already_voted",
            CastVoteError::SignInRequired => "sign_in_required",
            CastVoteError::TooFewChoices { .. } => "too_few_choices",
            CastVoteError::TooManyChoices { .. } => "too_many_choices",
            CastVoteError::NothingRanked => "nothing_ranked",
            CastVoteError::WrongShape { .. } => "wrong_shape",
            CastVoteError::RankedTwice | CastVoteError::RankGivenTwice => "ranked_twice",
            _ => "unavailable",
        };
        self.votes_refused
            .get_or_create(&RefusalLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("oponn");
        let votes_cast = Counter::default();
        let votes_refused = Family::<RefusalLabels, Counter>::default();
        let ballots_created = Counter::default();
        let sse_clients = Gauge::default();
        let request_duration = HistogramFamily::new_with_constructor(latency_histogram);
        registry.register(
            "votes_cast",
            "Votes accepted and durable",
            votes_cast.clone(),
        );
        registry.register(
            "votes_refused",
            "Votes refused, by reason",
            votes_refused.clone(),
        );
        registry.register(
            "ballots_created",
            "Ballots created",
            ballots_created.clone(),
        );
        registry.register(
            "sse_clients_connected",
            "Open live-results (SSE) connections",
            sse_clients.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            request_duration.clone(),
        );
        Self {
            registry,
            votes_cast,
            votes_refused,
            ballots_created,
            sse_clients,
            request_duration,
        }
    }

    /// The text exposition format.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        text
    }
}

/// Keeps the SSE gauge honest: counts a connection while it lives.
pub(crate) struct SseClientGuard(Gauge);

impl SseClientGuard {
    pub(crate) fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for SseClientGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
