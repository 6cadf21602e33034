//! A clock tests move by hand.

use std::sync::{Mutex, PoisonError};

use oponn_core::ports::Clock;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A [`Clock`] that stands still until the test moves it.
#[derive(Debug)]
pub struct TestClock {
    now: Mutex<OffsetDateTime>,
}

impl TestClock {
    /// A clock at `start`.
    pub fn at(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// Sets the clock to `to`, which must not lie before the current time
    /// (the [`Clock`] contract says time never goes backwards).
    ///
    /// # Panics
    /// When `to` is earlier than the clock's current time.
    pub fn set(&self, to: OffsetDateTime) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(to >= *now, "a TestClock never goes backwards");
        *now = to;
    }
}

impl Default for TestClock {
    /// A clock at 2030-01-01 00:00 UTC, so tests do not depend on today.
    fn default() -> Self {
        Self::at(datetime!(2030-01-01 00:00 UTC))
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
