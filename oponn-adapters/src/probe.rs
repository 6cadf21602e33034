//! The SQL repositories' readiness check: a write that commits, shared by
//! both dialects so that a flood of readiness requests costs at most one
//! write per [`WRITE_PROBE_INTERVAL`].

use std::future::Future;
use std::time::{Duration, Instant};

use oponn_core::ports::RepositoryError;
use tokio::sync::Mutex;

/// How long a successful write probe vouches for storage: readiness checks
/// within this interval reuse its answer instead of writing again. A failed
/// probe vouches for nothing: the next check probes again, so readiness
/// returns as soon as storage accepts writes.
pub(crate) const WRITE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes a write probe writes (and deletes in the same transaction): a few
/// pages, about what a batch of votes adds, so a database that has no room
/// for a batch fails the probe too.
pub(crate) const WRITE_PROBE_BYTES: i64 = 16 * 1024;

/// When storage last proved it accepts writes. One probe runs at a time;
/// concurrent checks wait for it and share its answer.
#[derive(Debug, Default)]
pub(crate) struct WriteProbe {
    /// The end of the last successful probe.
    last_success: Mutex<Option<Instant>>,
}

impl WriteProbe {
    /// Runs `probe` unless one succeeded within [`WRITE_PROBE_INTERVAL`].
    pub(crate) async fn check<F>(&self, probe: F) -> Result<(), RepositoryError>
    where
        F: Future<Output = Result<(), RepositoryError>>,
    {
        let mut last_success = self.last_success.lock().await;
        if let Some(at) = *last_success
            && at.elapsed() < WRITE_PROBE_INTERVAL
        {
            return Ok(());
        }
        *last_success = None;
        probe.await?;
        *last_success = Some(Instant::now());
        Ok(())
    }
}
