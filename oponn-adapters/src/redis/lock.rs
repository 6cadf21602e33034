//! A per-ballot lock shared by every instance on one Redis.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use oponn_core::domain::BallotId;
use oponn_core::ports::{LockError, LockGuard, VoteLock};
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use super::{
    RedisSetupError, client, connection_manager, jittered, lock_key, lock_queue_key, lock_seen_key,
    query,
};

/// Deletes the lock only when it still holds the caller's token, in one
/// atomic step, so a holder whose lock expired cannot free its successor's.
/// Answers 1 when it deleted the lock, 0 when the lock was gone or another's.
static COMPARE_AND_DELETE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
        if redis.call("GET", KEYS[1]) == ARGV[1] then
            return redis.call("DEL", KEYS[1])
        end
        return 0
        "#,
    )
});

/// Takes the lock for a caller, in turn: one step, atomic in Redis.
///
/// `KEYS`: the lock, the ballot's queue of waiters (a list of tokens,
/// oldest first), and when each waiter last asked (a hash of token to
/// milliseconds). `ARGV`: the caller's token, the lock's time to live, how
/// long a waiter may go without asking before it is dropped from the
/// queue, and how long the queue's keys outlive their last use (all in
/// milliseconds).
///
/// The lock is taken when it is free and the caller is first in the queue
/// (or the queue is empty); otherwise the caller joins the queue's end
/// (once) and is told to ask again. So a holder that releases and at once
/// asks again queues behind the instances already waiting, instead of
/// winning every race against them. Waiters at the head that stopped
/// asking (crashed, or gave up) are dropped first, so no dead waiter holds
/// up the queue for longer than the stale time.
///
/// Answers 1 when the caller holds the lock, else 0.
static TAKE_IN_TURN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
        local lock, queue, seen = KEYS[1], KEYS[2], KEYS[3]
        local token, ttl, stale, linger = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
        if redis.call("GET", lock) == token then
            return 1
        end
        local clock = redis.call("TIME")
        local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
        if redis.call("EXISTS", lock) == 0 then
            local head = redis.call("LINDEX", queue, 0)
            while head and head ~= token do
                local last = tonumber(redis.call("HGET", seen, head) or "0")
                if now - last <= stale then
                    break
                end
                redis.call("LPOP", queue)
                redis.call("HDEL", seen, head)
                head = redis.call("LINDEX", queue, 0)
            end
            if not head or head == token then
                if head then
                    redis.call("LPOP", queue)
                    redis.call("HDEL", seen, token)
                end
                redis.call("SET", lock, token, "PX", ttl)
                return 1
            end
        end
        redis.call("HSET", seen, token, now)
        redis.call("PEXPIRE", seen, linger)
        if not redis.call("LPOS", queue, token) then
            redis.call("RPUSH", queue, token)
        end
        redis.call("PEXPIRE", queue, linger)
        return 0
        "#,
    )
});

/// Gives up a wait: the waiter leaves the queue, so it stops holding up the
/// waiters behind it at once, and frees the lock if its last ask took it
/// without the answer being read (the task was cancelled with the ask in
/// flight), so nobody waits out the expiry of a lock no guard holds.
///
/// `KEYS`: the lock, the queue, the last-seen hash. `ARGV`: the waiter's
/// token.
static GIVE_UP_WAIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
        redis.call("LREM", KEYS[2], 0, ARGV[1])
        redis.call("HDEL", KEYS[3], ARGV[1])
        if redis.call("GET", KEYS[1]) == ARGV[1] then
            redis.call("DEL", KEYS[1])
        end
        return 0
        "#,
    )
});

/// The first pause before asking again for a held lock; it doubles up to
/// [`MAX_RETRY_DELAY`].
const MIN_RETRY_DELAY: Duration = Duration::from_millis(1);

/// The longest pause between two asks for a held lock: short, because
/// holders keep it only for one batch's check-and-record, and a waiter
/// first in the queue takes it on its next ask after the release.
const MAX_RETRY_DELAY: Duration = Duration::from_millis(8);

/// How long a queued waiter may go without asking before the next taker
/// drops it from the queue: many times [`MAX_RETRY_DELAY`], so only a
/// waiter that is gone (crashed, cut off, cancelled without leaving) is.
const STALE_WAITER: Duration = Duration::from_millis(250);

/// Tunables of a [`RedisLock`].
#[derive(Debug, Clone)]
pub struct RedisLockSettings {
    /// How long a taken lock lives in Redis unless released (default 10 s).
    ///
    /// The expiry is what frees the lock of a holder that crashed or lost
    /// its network without releasing. A holder still working past it may
    /// lose the lock to another taker; that is harmless, because the
    /// repository enforces one vote per voter and unique write-ins by
    /// itself, and the late holder's release reports [`LockError::Lost`].
    pub ttl: Duration,
    /// How long [`acquire`](VoteLock::acquire) keeps trying for a lock
    /// others hold before it gives up with [`LockError::Timeout`]
    /// (default 5 s). The last try may add up to one `command_timeout`.
    pub wait: Duration,
    /// How long any one round trip to Redis may take before the lock is
    /// reported [`LockError::Unavailable`] (default 1 s).
    pub command_timeout: Duration,
}

impl Default for RedisLockSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            wait: Duration::from_secs(5),
            command_timeout: Duration::from_secs(1),
        }
    }
}

/// A [`VoteLock`] in Redis, so that instances sharing one Redis take turns
/// on a ballot.
///
/// Taking the lock sets `ballot:{id}:lock` to a token of 128 random bits
/// with a time to live, in turn: a taker that finds it held joins the
/// ballot's queue of waiters and asks again with a short, jittered backoff
/// (1 to 8 ms) until [`RedisLockSettings::wait`] passes; the lock goes to
/// the queue's first waiter when it is free (see `TAKE_IN_TURN`), so
/// instances take turns instead of the last holder winning every race.
/// Releasing is a compare-and-delete script. A guard dropped without release (a cancelled
/// task) deletes its lock from a spawned task at once, or failing that
/// leaves it to the expiry; so does a wait cancelled with an ask in flight,
/// which also leaves the queue (see `GIVE_UP_WAIT`). Redis errors are never retried: an unreachable
/// Redis answers [`LockError::Unavailable`] promptly, and the service then
/// votes without the lock.
#[derive(Debug, Clone)]
pub struct RedisLock {
    /// Shared by every acquire and release: one multiplexed connection
    /// that reconnects by itself after Redis comes back.
    connection: ConnectionManager,
    settings: RedisLockSettings,
}

impl RedisLock {
    /// Connects to the Redis at `url` with default settings.
    ///
    /// # Errors
    /// [`RedisSetupError`] when the URL is invalid or Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, RedisSetupError> {
        Self::connect_with(url, RedisLockSettings::default()).await
    }

    /// Connects to the Redis at `url`.
    ///
    /// # Errors
    /// [`RedisSetupError`] when the URL is invalid or Redis cannot be reached.
    pub async fn connect_with(
        url: &str,
        settings: RedisLockSettings,
    ) -> Result<Self, RedisSetupError> {
        let connection = connection_manager(client(url)?, settings.command_timeout).await?;
        Ok(Self {
            connection,
            settings,
        })
    }

    /// The settings this lock runs with.
    pub fn settings(&self) -> &RedisLockSettings {
        &self.settings
    }
}

#[async_trait]
impl VoteLock for RedisLock {
    async fn acquire(&self, ballot: &BallotId) -> Result<Box<dyn LockGuard>, LockError> {
        let key = lock_key(ballot);
        let queue = lock_queue_key(ballot);
        let seen = lock_seen_key(ballot);
        // 128 bits from the operating system: no other taker can guess it,
        // so no other taker can release this lock.
        let token = BallotId::generate().to_string();
        let millis = |span: Duration| u64::try_from(span.as_millis()).unwrap_or(u64::MAX).max(1);
        let ttl = millis(self.settings.ttl);
        let linger = millis(self.settings.ttl + self.settings.wait);
        let mut take = TAKE_IN_TURN.prepare_invoke();
        take.key(&key)
            .key(&queue)
            .key(&seen)
            .arg(&token)
            .arg(ttl)
            .arg(millis(STALE_WAITER))
            .arg(linger);
        // Gives up the wait if it ends without a guard: it timed out, Redis
        // failed, or the task was dropped, even with an ask in flight.
        let mut waiting = UnfinishedWait {
            connection: self.connection.clone(),
            key: key.clone(),
            queue,
            seen,
            token: token.clone(),
            command_timeout: self.settings.command_timeout,
            finished: false,
        };
        let deadline = Instant::now() + self.settings.wait;
        let mut delay = MIN_RETRY_DELAY;
        loop {
            let taken: i64 = invoke(&self.connection, &take, self.settings.command_timeout)
                .await
                .map_err(LockError::Unavailable)?;
            if taken == 1 {
                waiting.finished = true;
                return Ok(Box::new(RedisLockGuard {
                    connection: self.connection.clone(),
                    key,
                    token,
                    command_timeout: self.settings.command_timeout,
                    released: false,
                }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LockError::Timeout);
            }
            tokio::time::sleep(jittered(delay).min(deadline - now)).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }

    async fn ping(&self) -> Result<(), LockError> {
        query::<String>(
            &self.connection,
            &redis::cmd("PING"),
            self.settings.command_timeout,
        )
        .await
        .map(drop)
        .map_err(LockError::Unavailable)
    }
}

/// Runs a prepared script, failing after `timeout`.
async fn invoke<T: redis::FromRedisValue>(
    connection: &ConnectionManager,
    invocation: &redis::ScriptInvocation<'_>,
    timeout: Duration,
) -> Result<T, oponn_core::ports::BoxError> {
    let mut connection = connection.clone();
    match tokio::time::timeout(timeout, invocation.invoke_async(&mut connection)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Box::new(error)),
        Err(_) => Err(Box::new(super::NoAnswer(timeout))),
    }
}

/// A wait for the lock that has not (yet) handed out a guard. Dropped
/// unfinished (it gave up, Redis failed, or its task was cancelled, perhaps
/// with an ask in flight), it gives the wait up from a spawned task (see
/// `GIVE_UP_WAIT`); if that fails too, the next taker drops the waiter once
/// it is stale, and the lock's expiry frees a lock it may have taken.
struct UnfinishedWait {
    connection: ConnectionManager,
    key: String,
    queue: String,
    seen: String,
    token: String,
    command_timeout: Duration,
    /// Set once the lock is handed to a guard, which then owns freeing it.
    finished: bool,
}

impl Drop for UnfinishedWait {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let connection = self.connection.clone();
        let (key, queue, seen, token) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.queue),
            std::mem::take(&mut self.seen),
            std::mem::take(&mut self.token),
        );
        let timeout = self.command_timeout;
        runtime.spawn(async move {
            let mut give_up = GIVE_UP_WAIT.prepare_invoke();
            give_up.key(&key).key(&queue).key(&seen).arg(&token);
            if let Err(error) = invoke::<i64>(&connection, &give_up, timeout).await {
                tracing::debug!(%queue, %error, "giving up a lock wait failed; it goes stale");
            }
        });
    }
}

/// A lock this instance holds: the key and the token that proves it.
struct RedisLockGuard {
    connection: ConnectionManager,
    key: String,
    token: String,
    command_timeout: Duration,
    /// Set once a release has had its answer, so that dropping the guard
    /// afterwards does not release a second time.
    released: bool,
}

impl RedisLockGuard {
    /// Runs the compare-and-delete script; `Ok(true)` when it deleted ours.
    async fn compare_and_delete(
        connection: &ConnectionManager,
        key: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<bool, LockError> {
        let mut invocation = COMPARE_AND_DELETE.key(key);
        invocation.arg(token);
        invoke::<i64>(connection, &invocation, timeout)
            .await
            .map(|deleted| deleted == 1)
            .map_err(LockError::Unavailable)
    }
}

#[async_trait]
impl LockGuard for RedisLockGuard {
    async fn release(mut self: Box<Self>) -> Result<(), LockError> {
        let deleted = Self::compare_and_delete(
            &self.connection,
            &self.key,
            &self.token,
            self.command_timeout,
        )
        .await;
        // Only now: a release cancelled before its command went out (Redis
        // reconnecting) leaves the freeing to the drop.
        self.released = true;
        if deleted? {
            Ok(())
        } else {
            Err(LockError::Lost)
        }
    }
}

impl Drop for RedisLockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Dropped while held (a cancelled vote): free the lock now rather
        // than make the ballot wait out the expiry. Outside a runtime there
        // is nowhere to run the release, and the expiry frees it instead.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let connection = self.connection.clone();
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        let timeout = self.command_timeout;
        runtime.spawn(async move {
            match Self::compare_and_delete(&connection, &key, &token, timeout).await {
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%key, %error, "freeing a dropped lock failed; it will expire");
                }
            }
        });
    }
}
