//! Every limit the server puts on a client: sizes, times, connections and
//! rates. Each is named here, documented in SECURITY.md, and (where a
//! public instance and a benchmark want different values) a setting.

use std::net::IpAddr;
use std::time::Duration;

use oponn_core::DEFAULT_MAX_WRITE_IN_OPTIONS;

/// Largest body of a ballot-creation request (`POST /create`,
/// `POST /api/v1/ballots`), in bytes. A ballot at its limits (a 255-
/// character measure and 64 options of 64 characters, each character
/// four UTF-8 bytes, percent- or `\u`-escaped) is under 64 KiB.
pub const MAX_BALLOT_BODY_BYTES: usize = 96 * 1024;

/// Largest body of any other request, in bytes: a vote, a sign-in form,
/// an owner action. A few hundred bytes in practice.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Default for [`Limits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for [`Limits::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// File descriptors kept back from [`Limits::max_connections`]'s default,
/// for the database, Redis, KMS, logs and the listener itself.
const RESERVED_DESCRIPTORS: usize = 128;

/// The fewest connections the default ever allows.
const MIN_DEFAULT_CONNECTIONS: usize = 64;

/// Default for [`Limits::ballots_per_minute`].
pub const DEFAULT_BALLOTS_PER_MINUTE: u32 = 10;

/// Default for [`Limits::write_ins_per_minute`].
pub const DEFAULT_WRITE_INS_PER_MINUTE: u32 = 20;

/// Default for [`Limits::streams_per_minute`].
pub const DEFAULT_STREAMS_PER_MINUTE: u32 = 120;

/// Default for [`Limits::link_guesses_per_minute`].
pub const DEFAULT_LINK_GUESSES_PER_MINUTE: u32 = 20;

/// How the server bounds what one client, and all clients together, may
/// cost it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `OPONN_MAX_CONNECTIONS`: open connections at once; one more is
    /// answered `503` and closed. Default: the process's open-file limit
    /// less 128 (so the server never runs out of descriptors).
    pub max_connections: usize,
    /// `OPONN_HEADER_TIMEOUT_SECS`: how long a connection may take to send
    /// a request's headers, counted from the end of the previous response
    /// (so it is also how long an idle keep-alive connection stays open).
    /// Default 30 s.
    pub header_read_timeout: Duration,
    /// `OPONN_BODY_TIMEOUT_SECS`: how long a request may take to send its
    /// whole body once its headers arrived. Default 30 s.
    pub body_read_timeout: Duration,
    /// `OPONN_BALLOTS_PER_MINUTE`: ballots one client may create per
    /// minute (a burst of that many, refilled evenly); 0 turns the limit
    /// off. Default 10.
    pub ballots_per_minute: u32,
    /// `OPONN_WRITE_INS_PER_MINUTE`: votes carrying a write-in one client
    /// may send per minute; 0 turns the limit off. Default 20.
    pub write_ins_per_minute: u32,
    /// `OPONN_STREAMS_PER_MINUTE`: live-result streams one client may open
    /// per minute; 0 turns the limit off. Default 120.
    pub streams_per_minute: u32,
    /// `OPONN_LINK_GUESSES_PER_MINUTE`: voting links and bearer tokens
    /// that are not valid one client may present per minute; past it,
    /// every link it presents (a valid one too) is refused with `429`
    /// until its allowance refills (one more every 3 s at the default),
    /// so guessing tokens goes nowhere fast.
    /// 0 turns the limit off. Default 20.
    pub link_guesses_per_minute: u32,
    /// `OPONN_MAX_WRITE_IN_OPTIONS`: options voters may add to one ballot
    /// by writing them in; a write-in matching an existing option still
    /// counts past it. Default 100.
    pub max_write_in_options: usize,
    /// `OPONN_TRUSTED_PROXIES`: comma-separated addresses of reverse
    /// proxies whose `X-Forwarded-For` names the client. Empty by default:
    /// the client is the connection's peer, and the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            ballots_per_minute: DEFAULT_BALLOTS_PER_MINUTE,
            write_ins_per_minute: DEFAULT_WRITE_INS_PER_MINUTE,
            streams_per_minute: DEFAULT_STREAMS_PER_MINUTE,
            link_guesses_per_minute: DEFAULT_LINK_GUESSES_PER_MINUTE,
            max_write_in_options: DEFAULT_MAX_WRITE_IN_OPTIONS,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Limits {
    /// No rate limits: for load tests and benchmarks that send everything
    /// from one address.
    pub fn without_rate_limits(self) -> Self {
        Self {
            ballots_per_minute: 0,
            write_ins_per_minute: 0,
            streams_per_minute: 0,
            link_guesses_per_minute: 0,
            ..self
        }
    }

    /// Reads the settings `get` has, keeping the defaults for the rest.
    ///
    /// # Errors
    /// [`InvalidSetting`] naming a malformed setting.
    pub(crate) fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, InvalidSetting> {
        let defaults = Self::default();
        let seconds = |name: &'static str, default: Duration| -> Result<Duration, InvalidSetting> {
            get(name).map_or(Ok(default), |value| {
                match parse_number::<u64>(name, &value)? {
                    0 => Err(InvalidSetting {
                        name,
                        reason: "must be at least 1 second".to_owned(),
                    }),
                    secs => Ok(Duration::from_secs(secs)),
                }
            })
        };
        let rate = |name: &'static str, default: u32| -> Result<u32, InvalidSetting> {
            get(name).map_or(Ok(default), |value| parse_number(name, &value))
        };
        let max_connections = match get("OPONN_MAX_CONNECTIONS") {
            None => defaults.max_connections,
            Some(value) => match parse_number::<usize>("OPONN_MAX_CONNECTIONS", &value)? {
                0 => {
                    return Err(InvalidSetting {
                        name: "OPONN_MAX_CONNECTIONS",
                        reason: "must be at least 1".to_owned(),
                    });
                }
                n => n,
            },
        };
        let trusted_proxies = match get("OPONN_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(value) => value
                .split(',')
                .map(str::trim)
                .filter(|piece| !piece.is_empty())
                .map(|piece| {
                    piece.parse().map_err(|_| InvalidSetting {
                        name: "OPONN_TRUSTED_PROXIES",
                        reason: format!("{piece:?} is not an IP address"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            max_connections,
            header_read_timeout: seconds(
                "OPONN_HEADER_TIMEOUT_SECS",
                defaults.header_read_timeout,
            )?,
            body_read_timeout: seconds("OPONN_BODY_TIMEOUT_SECS", defaults.body_read_timeout)?,
            ballots_per_minute: rate("OPONN_BALLOTS_PER_MINUTE", defaults.ballots_per_minute)?,
            write_ins_per_minute: rate(
                "OPONN_WRITE_INS_PER_MINUTE",
                defaults.write_ins_per_minute,
            )?,
            streams_per_minute: rate("OPONN_STREAMS_PER_MINUTE", defaults.streams_per_minute)?,
            link_guesses_per_minute: rate(
                "OPONN_LINK_GUESSES_PER_MINUTE",
                defaults.link_guesses_per_minute,
            )?,
            max_write_in_options: get("OPONN_MAX_WRITE_IN_OPTIONS")
                .map_or(Ok(defaults.max_write_in_options), |value| {
                    parse_number("OPONN_MAX_WRITE_IN_OPTIONS", &value)
                })?,
            trusted_proxies,
        })
    }
}

/// A limit's setting that cannot be read: its variable, and why.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub(crate) struct InvalidSetting {
    /// The environment variable.
    pub(crate) name: &'static str,
    /// What is wrong with its value.
    pub(crate) reason: String,
}

fn parse_number<T: std::str::FromStr>(
    name: &'static str,
    value: &str,
) -> Result<T, InvalidSetting> {
    value.trim().parse().map_err(|_| InvalidSetting {
        name,
        reason: format!("{value:?} is not a whole number in range"),
    })
}

/// The open-file limit less a reserve, read from `/proc/self/limits`
/// (Linux); 1,024 less the reserve where it cannot be read.
fn default_max_connections() -> usize {
    let soft_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    soft_limit
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(MIN_DEFAULT_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Limits, InvalidSetting> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Limits::read(&|name: &str| vars.get(name).cloned())
    }

    #[test]
    fn defaults_suit_a_public_instance() {
        let limits = read(&[]).unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(30));
        assert_eq!(limits.ballots_per_minute, DEFAULT_BALLOTS_PER_MINUTE);
        assert!(limits.max_connections >= MIN_DEFAULT_CONNECTIONS);
        assert!(limits.trusted_proxies.is_empty());
    }

    #[test]
    fn every_setting_is_read_and_zero_turns_a_rate_off() {
        let limits = read(&[
            ("OPONN_MAX_CONNECTIONS", "500"),
            ("OPONN_HEADER_TIMEOUT_SECS", "5"),
            ("OPONN_BODY_TIMEOUT_SECS", "7"),
            ("OPONN_BALLOTS_PER_MINUTE", "0"),
            ("OPONN_WRITE_INS_PER_MINUTE", "3"),
            ("OPONN_STREAMS_PER_MINUTE", "4"),
            ("OPONN_MAX_WRITE_IN_OPTIONS", "5"),
            ("OPONN_TRUSTED_PROXIES", "10.0.0.1, ::1"),
        ])
        .unwrap();
        assert_eq!(limits.max_connections, 500);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(5));
        assert_eq!(limits.body_read_timeout, Duration::from_secs(7));
        assert_eq!(limits.ballots_per_minute, 0);
        assert_eq!(limits.write_ins_per_minute, 3);
        assert_eq!(limits.streams_per_minute, 4);
        assert_eq!(limits.max_write_in_options, 5);
        assert_eq!(limits.trusted_proxies.len(), 2);
    }

    #[test]
    fn malformed_or_zero_values_are_named() {
        for (name, value) in [
            ("OPONN_MAX_CONNECTIONS", "0"),
            ("OPONN_MAX_CONNECTIONS", "-1"),
            ("OPONN_HEADER_TIMEOUT_SECS", "0"),
            ("OPONN_BODY_TIMEOUT_SECS", "soon"),
            ("OPONN_STREAMS_PER_MINUTE", "99999999999"),
            ("OPONN_TRUSTED_PROXIES", "proxy.local"),
        ] {
            let error = read(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(name), "{name}={value}: {error}");
        }
    }
}
