//! Redis adapters: the per-ballot vote lock and pub/sub fan-out of tallies
//! across every instance that shares one Redis.
//!
//! Redis holds nothing durable here: PostgreSQL is the source of truth.
//! Losing Redis costs the lock (the repository's constraints still keep
//! every vote counted once) and live updates until it is back; votes go on.
//!
//! - [`RedisLock`]: `SET ballot:{id}:lock <token> PX <ttl>` when it is
//!   free, taken in turn by a queue of waiters (one Lua step) and released
//!   by a compare-and-delete script, so only the holder can free it and a
//!   crashed holder's lock expires by itself. The release wakes the next
//!   waiter at once through its instance's channel `lock:wake:{instance}`.
//! - [`RedisBroadcaster`]: `PUBLISH ballot:{id}:updates <tally>`, and per
//!   instance one pub/sub connection with one `SUBSCRIBE` per watched
//!   ballot, fanned out locally through a `watch` channel per ballot.
//!
//! Every round trip to Redis is bounded by a timeout, so an unreachable
//! Redis makes a vote wait at most about a second for each of the lock and
//! the broadcast, never hang.
//!
//! # Layout
//!
//! - `lock.rs`: [`RedisLock`] and [`RedisLockSettings`].
//! - `broadcaster.rs`: [`RedisBroadcaster`], [`RedisBroadcasterSettings`]
//!   and the background listener that owns the pub/sub connection.
//! - `codec.rs`: the versioned text encoding of a tally on the wire.

mod broadcaster;
mod codec;
mod lock;

use std::time::Duration;

use oponn_core::domain::BallotId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use broadcaster::{RedisBroadcaster, RedisBroadcasterSettings};
pub use lock::{MIN_RETRY_DELAY, RedisLock, RedisLockSettings};

/// Why a Redis adapter could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The URL is not a Redis URL the client understands.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] redis::RedisError),
    /// Redis cannot be reached (or refused the connection's setup).
    #[error("cannot connect to Redis: {0}")]
    Connect(#[source] redis::RedisError),
    /// Redis did not answer within the adapter's command timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// Redis did not answer a command within the adapter's timeout: the cause
/// inside [`LockError::Unavailable`](oponn_core::ports::LockError) and
/// [`BroadcastError::Unavailable`](oponn_core::ports::BroadcastError).
#[derive(Debug, thiserror::Error)]
#[error("Redis did not answer within {0:?}")]
pub(crate) struct NoAnswer(pub(crate) Duration);

/// How many times a [`ConnectionManager`] retries a failed reconnection
/// before failing the commands that wait on it. Few, so that commands fail
/// fast during an outage; the next command starts a fresh reconnection.
const MANAGER_RECONNECT_RETRIES: usize = 2;

/// The first pause between a [`ConnectionManager`]'s reconnection attempts.
const MANAGER_RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);

/// Opens a client for `url`.
fn client(url: &str) -> Result<redis::Client, RedisSetupError> {
    redis::Client::open(url).map_err(RedisSetupError::InvalidUrl)
}

/// A self-reconnecting connection to `client` whose connection attempts and
/// responses each time out after `command_timeout`.
async fn connection_manager(
    client: redis::Client,
    command_timeout: Duration,
) -> Result<ConnectionManager, RedisSetupError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(command_timeout))
        .set_response_timeout(Some(command_timeout))
        .set_number_of_retries(MANAGER_RECONNECT_RETRIES)
        .set_min_delay(MANAGER_RECONNECT_MIN_DELAY)
        .set_max_delay(command_timeout);
    // Each attempt is bounded by the timeouts above; this bounds the whole
    // setup (the first attempt, its retries and the connection's own
    // handshake) even if a server accepts connections and then stalls.
    let deadline = command_timeout.saturating_mul(4);
    match tokio::time::timeout(deadline, ConnectionManager::new_with_config(client, config)).await {
        Ok(Ok(manager)) => Ok(manager),
        Ok(Err(error)) => Err(RedisSetupError::Connect(error)),
        Err(_) => Err(RedisSetupError::Timeout(deadline)),
    }
}

/// Runs one command on `manager`, bounded by `timeout`.
async fn query<T: redis::FromRedisValue>(
    manager: &ConnectionManager,
    command: &redis::Cmd,
    timeout: Duration,
) -> Result<T, oponn_core::ports::BoxError> {
    let mut connection = manager.clone();
    match tokio::time::timeout(timeout, command.query_async(&mut connection)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Box::new(error)),
        Err(_) => Err(Box::new(NoAnswer(timeout))),
    }
}

/// The key of a ballot's lock.
fn lock_key(ballot: &BallotId) -> String {
    format!("ballot:{ballot}:lock")
}

/// The key of the queue of instances waiting for a ballot's lock.
fn lock_queue_key(ballot: &BallotId) -> String {
    format!("ballot:{ballot}:lock:queue")
}

/// The key of when each queued waiter last asked for a ballot's lock.
fn lock_seen_key(ballot: &BallotId) -> String {
    format!("ballot:{ballot}:lock:seen")
}

/// What every instance's lock wake-up channel starts with; the instance's
/// id follows (see [`lock_wake_channel`]).
const LOCK_WAKE_CHANNEL_PREFIX: &str = "lock:wake:";

/// The pub/sub channel on which an instance is told that a ballot's lock it
/// waits for was freed: the releaser publishes there the token of the
/// waiter first in the ballot's queue.
fn lock_wake_channel(instance: &str) -> String {
    format!("{LOCK_WAKE_CHANNEL_PREFIX}{instance}")
}

/// The pub/sub channel of a ballot's tallies.
fn updates_channel(ballot: &BallotId) -> String {
    format!("ballot:{ballot}:updates")
}

/// The ballot whose updates channel is `channel`, if it is one.
fn ballot_of_channel(channel: &str) -> Option<BallotId> {
    let id = channel.strip_prefix("ballot:")?.strip_suffix(":updates")?;
    BallotId::parse(id).ok()
}

/// `delay` shortened by a random part of up to half of it, so that many
/// waiters retrying at once spread out instead of moving in lockstep.
fn jittered(delay: Duration) -> Duration {
    // Sixteen random bytes from the operating system, through the core's
    // only randomness source; eight are plenty for a fraction.
    let random = BallotId::generate();
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&random.as_bytes()[..8]);
    let fraction = (u64::from_le_bytes(eight) >> 11) as f64 / (1u64 << 53) as f64;
    delay.mul_f64(1.0 - fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        let ballot = BallotId::generate();
        assert_eq!(ballot_of_channel(&updates_channel(&ballot)), Some(ballot));
        assert_eq!(ballot_of_channel(&lock_key(&ballot)), None);
        assert_eq!(ballot_of_channel("ballot:nope:updates"), None);
        assert_eq!(ballot_of_channel("?"), None);
    }

    #[test]
    fn jitter_stays_within_half_the_delay() {
        let delay = Duration::from_millis(100);
        for _ in 0..100 {
            let jittered = jittered(delay);
            assert!(jittered <= delay && jittered >= delay / 2, "{jittered:?}");
        }
    }
}
