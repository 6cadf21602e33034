//! The [`Clock`] contract.

use std::sync::Arc;

use oponn_core::ports::Clock;
use time::UtcOffset;

/// Readings are in UTC and never decrease.
pub async fn time_is_utc_and_never_goes_backwards(clock: Arc<dyn Clock>) {
    let mut previous = clock.now();
    assert_eq!(previous.offset(), UtcOffset::UTC);
    for _ in 0..10_000 {
        let now = clock.now();
        assert!(
            now >= previous,
            "the clock went from {previous} back to {now}"
        );
        previous = now;
    }
}
