//! Per-client rate limits (GCRA, by `governor`): ballots created, votes
//! carrying a write-in, live streams opened, voting links guessed.
//!
//! A client is an IPv4 address, or an IPv6 /64 (one subscriber's usual
//! allocation, so rotating through one's own addresses gains nothing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    /// Voting links and bearer tokens that were not valid
    /// (`OPONN_LINK_GUESSES_PER_MINUTE`).
    LinkGuesses,
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
            Rate::LinkGuesses => {
                "Too many voting links that are not valid came from your address. Wait a moment and try again."
            }
        }
    }
}

/// The limiters in force; a limit set to 0 has none.
pub(crate) struct RateLimits {
    ballots: Option<DefaultKeyedRateLimiter<u128>>,
    write_ins: Option<DefaultKeyedRateLimiter<u128>>,
    streams: Option<DefaultKeyedRateLimiter<u128>>,
    link_guesses: Option<DefaultKeyedRateLimiter<u128>>,
    /// Clients over the link-guess limit, until when: every link they
    /// present is refused meanwhile. Only clients past the limit are here,
    /// and pruning drops them once their time is up.
    guessers: Mutex<HashMap<u128, Instant>>,
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
            link_guesses: per_minute(limits.link_guesses_per_minute),
            guessers: Mutex::new(HashMap::new()),
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
            Rate::LinkGuesses => &self.link_guesses,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .check_key(&client_key(client))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// How long `client` must wait before it may present a voting link
    /// again, when it guessed too many; `None` when it may now.
    pub(crate) fn link_guesses_blocked(&self, client: IpAddr) -> Option<Duration> {
        let guessers = self.guessers.lock().unwrap_or_else(PoisonError::into_inner);
        let until = guessers.get(&client_key(client))?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts one link or token from `client` that was not valid; when
    /// that puts it over the limit, it is refused every link until the
    /// returned wait is over.
    pub(crate) fn count_link_guess(&self, client: IpAddr) -> Option<Duration> {
        let wait = self.check(Rate::LinkGuesses, client).err()?;
        self.guessers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(client_key(client), Instant::now() + wait);
        Some(wait)
    }

    /// Forgets clients whose limits have fully refilled, so the state
    /// stays as large as the set of recently active clients.
    pub(crate) fn prune(&self) {
        let now = Instant::now();
        self.guessers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, until| *until > now);
        for limiter in [
            &self.ballots,
            &self.write_ins,
            &self.streams,
            &self.link_guesses,
        ]
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
            link_guesses_per_minute: per_minute,
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
    fn a_client_past_its_link_guesses_is_refused_every_link_until_it_waits() {
        let rates = RateLimits::new(&limits(3));
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(rates.count_link_guess(client), None);
            assert_eq!(rates.link_guesses_blocked(client), None);
        }
        let wait = rates.count_link_guess(client).unwrap();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20));
        assert!(rates.link_guesses_blocked(client).is_some());
        assert_eq!(
            rates.link_guesses_blocked("192.0.2.2".parse().unwrap()),
            None
        );
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
