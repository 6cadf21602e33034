//! Per-client rate limits (GCRA, by `governor`): ballots created, votes
//! carrying a write-in, live streams opened.
//!
//! A client is an IPv4 address, or an IPv6 /64 (one subscriber's usual
//! allocation, so rotating through one's own addresses gains nothing).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::limits::Limits;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rate {
    /// Ballots created (`OPONN_BALLOTS_PER_MINUTE`).
    Ballots,
    /// Votes carrying a write-in (`OPONN_WRITE_INS_PER_MINUTE`).
    WriteIns,
    /// Live-result streams opened (`OPONN_STREAMS_PER_MINUTE`).
    Streams,
}

impl Rate {
    /// What the client is told.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Rate::Ballots => "You are creating ballots too quickly. Wait a moment and try again.",
            Rate::WriteIns => "You are sending write-ins too quickly. Wait a moment and try again.",
            Rate::Streams => {
                "Too many live-result connections from your address. Wait a moment and try again."
            }
        }
    }
}

/// The limiters in force; a limit set to 0 has none.
pub(crate) struct RateLimits {
    ballots: Option<DefaultKeyedRateLimiter<u128>>,
    write_ins: Option<DefaultKeyedRateLimiter<u128>>,
    streams: Option<DefaultKeyedRateLimiter<u128>>,
    clock: DefaultClock,
}

fn per_minute(count: u32) -> Option<DefaultKeyedRateLimiter<u128>> {
    NonZeroU32::new(count).map(|count| RateLimiter::keyed(Quota::per_minute(count)))
}

/// The key of a client: its IPv4 address, or its IPv6 /64.
fn client_key(client: IpAddr) -> u128 {
    match client {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64 << 64) | 1,
    }
}

impl RateLimits {
    /// The limiters `limits` asks for.
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            ballots: per_minute(limits.ballots_per_minute),
            write_ins: per_minute(limits.write_ins_per_minute),
            streams: per_minute(limits.streams_per_minute),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one `rate` event for `client`.
    ///
    /// # Errors
    /// How long the client must wait, when it is over the limit (the event
    /// is then not counted).
    pub(crate) fn check(&self, rate: Rate, client: IpAddr) -> Result<(), Duration> {
        let limiter = match rate {
            Rate::Ballots => &self.ballots,
            Rate::WriteIns => &self.write_ins,
            Rate::Streams => &self.streams,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .check_key(&client_key(client))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients whose limits have fully refilled, so the state
    /// stays as large as the set of recently active clients.
    pub(crate) fn prune(&self) {
        for limiter in [&self.ballots, &self.write_ins, &self.streams]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32) -> Limits {
        Limits {
            ballots_per_minute: per_minute,
            write_ins_per_minute: per_minute,
            streams_per_minute: per_minute,
            ..Limits::default()
        }
    }

    #[test]
    fn a_client_gets_its_burst_then_waits() {
        let rates = RateLimits::new(&limits(3));
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(rates.check(Rate::Ballots, client).is_ok());
        }
        let wait = rates.check(Rate::Ballots, client).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20));
        // Another client, and another kind of event, are counted apart.
        assert!(
            rates
                .check(Rate::Ballots, "192.0.2.2".parse().unwrap())
                .is_ok()
        );
        assert!(rates.check(Rate::Streams, client).is_ok());
    }

    #[test]
    fn zero_is_no_limit() {
        let rates = RateLimits::new(&limits(0));
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(rates.check(Rate::Streams, client).is_ok());
        }
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let rates = RateLimits::new(&limits(1));
        assert!(
            rates
                .check(Rate::Ballots, "2001:db8::1".parse().unwrap())
                .is_ok()
        );
        assert!(
            rates
                .check(Rate::Ballots, "2001:db8::ffff:2".parse().unwrap())
                .is_err()
        );
        assert!(
            rates
                .check(Rate::Ballots, "2001:db8:0:1::1".parse().unwrap())
                .is_ok()
        );
    }
}
