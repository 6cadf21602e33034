//! A per-ballot lock shared by every instance on one Redis.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use oponn_core::domain::BallotId;
use oponn_core::ports::{LockError, LockGuard, VoteLock};
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use super::{RedisSetupError, client, connection_manager, jittered, lock_key, query};

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

/// The first pause before asking again for a held lock; it doubles up to
/// [`MAX_RETRY_DELAY`].
const MIN_RETRY_DELAY: Duration = Duration::from_millis(5);

/// The longest pause between two tries at a held lock: short, because
/// holders keep it only for one vote's check-and-record.
const MAX_RETRY_DELAY: Duration = Duration::from_millis(50);

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
/// Taking the lock is `SET ballot:{id}:lock <token> NX PX <ttl>` with a
/// token of 128 random bits; a held lock is retried with a short, jittered
/// backoff until [`RedisLockSettings::wait`] passes. Releasing is a
/// compare-and-delete script. A guard dropped without release (a cancelled
/// task) deletes its lock from a spawned task at once, or failing that
/// leaves it to the expiry. Redis errors are never retried: an unreachable
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
        // 128 bits from the operating system: no other taker can guess it,
        // so no other taker can release this lock.
        let token = BallotId::generate().to_string();
        let ttl_millis = u64::try_from(self.settings.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let set = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis)
            .to_owned();
        let deadline = Instant::now() + self.settings.wait;
        let mut delay = MIN_RETRY_DELAY;
        loop {
            // `OK` when taken, nil when someone else holds it.
            let answer: redis::Value = query(&self.connection, &set, self.settings.command_timeout)
                .await
                .map_err(LockError::Unavailable)?;
            if !matches!(answer, redis::Value::Nil) {
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

/// A lock this instance holds: the key and the token that proves it.
struct RedisLockGuard {
    connection: ConnectionManager,
    key: String,
    token: String,
    command_timeout: Duration,
    /// Set once released, so that dropping the guard afterwards does not
    /// release a second time.
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
        let mut connection = connection.clone();
        let mut invocation = COMPARE_AND_DELETE.key(key);
        invocation.arg(token);
        match tokio::time::timeout(timeout, invocation.invoke_async::<i64>(&mut connection)).await {
            Ok(Ok(deleted)) => Ok(deleted == 1),
            Ok(Err(error)) => Err(LockError::Unavailable(Box::new(error))),
            Err(_) => Err(LockError::Unavailable(Box::new(super::NoAnswer(timeout)))),
        }
    }
}

#[async_trait]
impl LockGuard for RedisLockGuard {
    async fn release(mut self: Box<Self>) -> Result<(), LockError> {
        self.released = true;
        let deleted = Self::compare_and_delete(
            &self.connection,
            &self.key,
            &self.token,
            self.command_timeout,
        )
        .await?;
        if deleted {
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
