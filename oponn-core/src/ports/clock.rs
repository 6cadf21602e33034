//! The clock port: what time it is.

use time::OffsetDateTime;

/// Tells the time. Ballot status is derived from it, so tests swap in a
/// clock they can move past a ballot's start or end.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in UTC. Successive calls never go backwards.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
