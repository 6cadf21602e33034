//! A per-ballot lock shared by every instance on one Redis, whose waiters
//! are woken when it is released.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use oponn_core::domain::BallotId;
use oponn_core::ports::{LockError, LockGuard, VoteLock};
use redis::aio::{ConnectionManager, PubSub};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{
    LOCK_WAKE_CHANNEL_PREFIX, RedisSetupError, client, connection_manager, jittered, lock_key,
    lock_queue_key, lock_seen_key, lock_wake_channel, query,
};

/// A Lua function the scripts below share: tells the waiter first in a
/// ballot's queue (`queue`) that the lock is free, by publishing its token
/// on its instance's wake-up channel (`prefix` followed by the part of the
/// token before its first `.`; see [`RedisLock`]'s tokens). A head of
/// another shape (none of ours) is left to wake by its own polling.
const WAKE_HEAD: &str = r#"
local function wake_head(queue, prefix)
    local head = redis.call("LINDEX", queue, 0)
    if head then
        local instance = string.match(head, "^([^.]+)%.")
        if instance then
            redis.call("PUBLISH", prefix .. instance, head)
        end
    end
end
"#;

/// Releases the lock only when it still holds the caller's token, in one
/// atomic step, so a holder whose lock expired cannot free its successor's;
/// then wakes the waiter first in the queue, so the lock changes hands
/// without waiting for that waiter's next ask. A lock found already
/// expired wakes that waiter too: it is free.
///
/// `KEYS`: the lock, the ballot's queue of waiters. `ARGV`: the caller's
/// token, the wake-up channels' prefix. Answers 1 when it deleted the lock,
/// 0 when the lock was gone or another's.
static RELEASE_AND_WAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r#"{WAKE_HEAD}
        local holder = redis.call("GET", KEYS[1])
        if holder == ARGV[1] then
            redis.call("DEL", KEYS[1])
            wake_head(KEYS[2], ARGV[2])
            return 1
        end
        if not holder then
            -- Expired meanwhile: free, and maybe nobody was told.
            wake_head(KEYS[2], ARGV[2])
        end
        return 0
        "#
    ))
});

/// Takes the lock for a caller, in turn: one step, atomic in Redis.
///
/// `KEYS`: the lock, the ballot's queue of waiters (a list of tokens,
/// oldest first), and when each waiter counts as gone unless it asks again
/// (a hash of token to Redis clock milliseconds). `ARGV`: the caller's
/// token, the lock's time to live, how long the caller may go without
/// asking before it is dropped from the queue (its own setting: each
/// waiter says how long it may pause), how long the queue's keys outlive
/// their last use (all in milliseconds), and the wake-up channels' prefix.
///
/// The lock is taken when it is free and the caller is first in the queue
/// (or the queue is empty); otherwise the caller joins the queue's end
/// (once) and is told to ask again. So a holder that releases and at once
/// asks again queues behind the instances already waiting, instead of
/// winning every race against them. Waiters at the head that stopped
/// asking (crashed, or gave up) are dropped first, so no dead waiter holds
/// up the queue for longer than the stale time. A caller that finds the
/// lock free but another live waiter first wakes that waiter.
///
/// Answers 1 when the caller holds the lock, else 0.
static TAKE_IN_TURN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r#"{WAKE_HEAD}
        local lock, queue, seen = KEYS[1], KEYS[2], KEYS[3]
        local token, ttl, stale, linger, prefix = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
        if redis.call("GET", lock) == token then
            return 1
        end
        local clock = redis.call("TIME")
        local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
        if redis.call("EXISTS", lock) == 0 then
            local head = redis.call("LINDEX", queue, 0)
            while head and head ~= token do
                local gone_after = tonumber(redis.call("HGET", seen, head) or "0")
                if now <= gone_after then
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
            -- Free, and another waiter is next: it may have missed its
            -- wake-up (the lock expired, or its channel was down).
            wake_head(queue, prefix)
        end
        redis.call("HSET", seen, token, now + stale)
        redis.call("PEXPIRE", seen, linger)
        if not redis.call("LPOS", queue, token) then
            redis.call("RPUSH", queue, token)
        end
        redis.call("PEXPIRE", queue, linger)
        return 0
        "#
    ))
});

/// Gives up a wait: the waiter leaves the queue, so it stops holding up the
/// waiters behind it at once, and frees the lock if its last ask took it
/// without the answer being read (the task was cancelled with the ask in
/// flight), so nobody waits out the expiry of a lock no guard holds.
///
/// A free lock then goes to the next waiter, woken at once.
///
/// `KEYS`: the lock, the queue, the last-seen hash. `ARGV`: the waiter's
/// token, the wake-up channels' prefix.
static GIVE_UP_WAIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r#"{WAKE_HEAD}
        redis.call("LREM", KEYS[2], 0, ARGV[1])
        redis.call("HDEL", KEYS[3], ARGV[1])
        local holder = redis.call("GET", KEYS[1])
        if holder == ARGV[1] then
            redis.call("DEL", KEYS[1])
            holder = false
        end
        if not holder then
            wake_head(KEYS[2], ARGV[2])
        end
        return 0
        "#
    ))
});

/// The shortest pause a waiter takes between two asks, whatever its
/// settings say: a waiter never asks Redis back to back.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(1);

/// How many asks a queued waiter may miss (at its longest pause,
/// [`RedisLockSettings::max_retry_delay`]) before the next taker drops it
/// from the queue as gone (crashed, cut off, cancelled without leaving):
/// many, so that a live waiter slowed by a busy machine is never dropped.
const STALE_AFTER_MISSED_ASKS: u32 = 30;

/// The first pause before the lock's wake-up listener reconnects; it
/// doubles up to [`MAX_RECONNECT_DELAY`].
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(50);

/// The longest pause between two reconnections of the wake-up listener.
/// While it is away, waiters still take the lock, on their own asks.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// How often the wake-up listener pings its connection, so that one that
/// died without closing is found and replaced.
const WAKE_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(10);

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
    /// The first pause before a waiter asks again for a held lock; it
    /// doubles up to [`max_retry_delay`](Self::max_retry_delay) (default
    /// 1 ms; at least [`MIN_RETRY_DELAY`]). A waiter is woken at once when
    /// the lock is released, so the lock changes hands without these asks
    /// while every instance is healthy. They still matter: they keep a
    /// waiter in the queue (one that stops asking is dropped as gone), and
    /// they are how waiters get a lock whose wake-up was lost (it expired,
    /// the wake-up connection was down, or it went to a waiter first in the
    /// queue whose instance had crashed).
    pub first_retry_delay: Duration,
    /// The longest pause between two asks of a waiter (default 8 ms; at
    /// least [`MIN_RETRY_DELAY`]). A waiter that misses 30 asks at this
    /// pause is dropped from the queue as gone, so this also bounds how
    /// long a crashed waiter first in the queue holds up the ones behind
    /// it: 30 times this (240 ms by default). Keep it well under
    /// [`wait`](Self::wait).
    pub max_retry_delay: Duration,
}

impl RedisLockSettings {
    /// The first and the longest pause between a waiter's asks, as used:
    /// neither under [`MIN_RETRY_DELAY`], and the first no longer than the
    /// longest.
    fn pauses(&self) -> (Duration, Duration) {
        let longest = self.max_retry_delay.max(MIN_RETRY_DELAY);
        (
            self.first_retry_delay.clamp(MIN_RETRY_DELAY, longest),
            longest,
        )
    }
}

impl Default for RedisLockSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            wait: Duration::from_secs(5),
            command_timeout: Duration::from_secs(1),
            first_retry_delay: Duration::from_millis(1),
            max_retry_delay: Duration::from_millis(8),
        }
    }
}

/// A [`VoteLock`] in Redis, so that instances sharing one Redis take turns
/// on a ballot.
///
/// Taking the lock sets `ballot:{id}:lock` to a token with a time to live,
/// in turn: a taker that finds it held joins the ballot's queue of waiters,
/// and the lock goes to the queue's first waiter when it is free (see
/// `TAKE_IN_TURN`), so instances take turns instead of the last holder
/// winning every race. Releasing is a compare-and-delete script that also
/// wakes the next waiter: it publishes that waiter's token on its
/// instance's channel (`lock:wake:{instance}`), where this instance's
/// listener task hears it and wakes the waiting task, which takes the lock
/// on its next ask. A waiter also asks again by itself with a short,
/// jittered backoff ([`RedisLockSettings::first_retry_delay`] doubling to
/// [`RedisLockSettings::max_retry_delay`]) until
/// [`RedisLockSettings::wait`] passes, so a lost wake-up (an expired lock,
/// a listener reconnecting) costs only a pause.
///
/// A token is the instance's id and 128 random bits, joined by a `.`: no
/// other taker can guess it, so no other taker can release the lock, and
/// its first part names the channel that wakes it.
///
/// Each instance subscribes to its own wake-up channel: a Redis user
/// restricted by an ACL needs the channels `lock:wake:*` (`&lock:wake:*`)
/// besides the keys `ballot:*`.
///
/// A guard dropped without release (a cancelled task) deletes its lock
/// from a spawned task at once, or failing that leaves it to the expiry; so
/// does a wait cancelled with an ask in flight, which also leaves the queue
/// (see `GIVE_UP_WAIT`). Redis errors are never retried: an unreachable
/// Redis answers [`LockError::Unavailable`] promptly, and the service then
/// votes without the lock.
#[derive(Debug, Clone)]
pub struct RedisLock {
    /// Shared by every acquire and release: one multiplexed connection
    /// that reconnects by itself after Redis comes back.
    connection: ConnectionManager,
    settings: RedisLockSettings,
    /// This instance's id: the first part of its tokens and of its
    /// wake-up channel's name.
    instance: Arc<str>,
    /// The tasks of this instance waiting for a lock, woken by the listener.
    waiters: Arc<Waiters>,
    /// Stops the wake-up listener once the last clone of this lock is gone.
    _listener: Arc<AbortOnDrop>,
}

impl RedisLock {
    /// Connects to the Redis at `url` with default settings.
    ///
    /// # Errors
    /// [`RedisSetupError`] when the URL is invalid or Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, RedisSetupError> {
        Self::connect_with(url, RedisLockSettings::default()).await
    }

    /// Connects to the Redis at `url`, subscribes this instance's wake-up
    /// channel and starts its listener task on the current tokio runtime.
    ///
    /// # Errors
    /// [`RedisSetupError`] when the URL is invalid or Redis cannot be reached.
    pub async fn connect_with(
        url: &str,
        settings: RedisLockSettings,
    ) -> Result<Self, RedisSetupError> {
        let client = client(url)?;
        let connection = connection_manager(client.clone(), settings.command_timeout).await?;
        let instance: Arc<str> = BallotId::generate().to_string().into();
        let channel = lock_wake_channel(&instance);
        let first =
            match tokio::time::timeout(settings.command_timeout, subscribed(&client, &channel))
                .await
            {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(error)) => return Err(RedisSetupError::Connect(error)),
                Err(_) => return Err(RedisSetupError::Timeout(settings.command_timeout)),
            };
        let waiters = Arc::new(Waiters::default());
        let listener = WakeListener {
            client,
            channel,
            waiters: Arc::clone(&waiters),
            command_timeout: settings.command_timeout,
        };
        let task = tokio::spawn(listener.run(first));
        Ok(Self {
            connection,
            settings,
            instance,
            waiters,
            _listener: Arc::new(AbortOnDrop(task.abort_handle())),
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
        // 128 bits from the operating system after the instance's id.
        let token = format!("{}.{}", self.instance, BallotId::generate());
        let millis = |span: Duration| u64::try_from(span.as_millis()).unwrap_or(u64::MAX).max(1);
        let ttl = millis(self.settings.ttl);
        let linger = millis(self.settings.ttl + self.settings.wait);
        let (first_delay, max_delay) = self.settings.pauses();
        let stale = millis(max_delay.saturating_mul(STALE_AFTER_MISSED_ASKS));
        let mut take = TAKE_IN_TURN.prepare_invoke();
        take.key(&key)
            .key(&queue)
            .key(&seen)
            .arg(&token)
            .arg(ttl)
            .arg(stale)
            .arg(linger)
            .arg(LOCK_WAKE_CHANNEL_PREFIX);
        // Listening before the first ask: a release that follows it at
        // once still finds this waiter.
        let woken = self.waiters.register(&token);
        // Gives up the wait if it ends without a guard: it timed out, Redis
        // failed, or the task was dropped, even with an ask in flight.
        let mut waiting = UnfinishedWait {
            connection: self.connection.clone(),
            key: key.clone(),
            queue: queue.clone(),
            seen,
            token: token.clone(),
            command_timeout: self.settings.command_timeout,
            finished: false,
        };
        let deadline = Instant::now() + self.settings.wait;
        let mut delay = first_delay;
        loop {
            let taken: i64 = invoke(&self.connection, &take, self.settings.command_timeout)
                .await
                .map_err(LockError::Unavailable)?;
            if taken == 1 {
                waiting.finished = true;
                return Ok(Box::new(RedisLockGuard {
                    connection: self.connection.clone(),
                    key,
                    queue,
                    token,
                    command_timeout: self.settings.command_timeout,
                    released: false,
                }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LockError::Timeout);
            }
            // Whichever comes first: the release's wake-up, or the pause.
            tokio::select! {
                () = woken.notified() => {}
                () = tokio::time::sleep(jittered(delay).min(deadline - now)) => {
                    delay = delay.saturating_mul(2).min(max_delay);
                }
            }
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
            give_up
                .key(&key)
                .key(&queue)
                .key(&seen)
                .arg(&token)
                .arg(LOCK_WAKE_CHANNEL_PREFIX);
            if let Err(error) = invoke::<i64>(&connection, &give_up, timeout).await {
                tracing::debug!(%queue, %error, "giving up a lock wait failed; it goes stale");
            }
        });
    }
}

/// A lock this instance holds: the key, the queue of its waiters (the
/// next is woken at release) and the token that proves it.
struct RedisLockGuard {
    connection: ConnectionManager,
    key: String,
    queue: String,
    token: String,
    command_timeout: Duration,
    /// Set once a release has had its answer, so that dropping the guard
    /// afterwards does not release a second time.
    released: bool,
}

impl RedisLockGuard {
    /// Runs the release script (compare-and-delete, then wake the next
    /// waiter); `Ok(true)` when it deleted ours.
    async fn release_and_wake(
        connection: &ConnectionManager,
        key: &str,
        queue: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<bool, LockError> {
        let mut invocation = RELEASE_AND_WAKE.key(key);
        invocation
            .key(queue)
            .arg(token)
            .arg(LOCK_WAKE_CHANNEL_PREFIX);
        invoke::<i64>(connection, &invocation, timeout)
            .await
            .map(|deleted| deleted == 1)
            .map_err(LockError::Unavailable)
    }
}

#[async_trait]
impl LockGuard for RedisLockGuard {
    async fn release(mut self: Box<Self>) -> Result<(), LockError> {
        let deleted = Self::release_and_wake(
            &self.connection,
            &self.key,
            &self.queue,
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
        let queue = std::mem::take(&mut self.queue);
        let token = std::mem::take(&mut self.token);
        let timeout = self.command_timeout;
        runtime.spawn(async move {
            match Self::release_and_wake(&connection, &key, &queue, &token, timeout).await {
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%key, %error, "freeing a dropped lock failed; it will expire");
                }
            }
        });
    }
}

/// The tasks of one instance that wait for a lock, by token: what the
/// wake-up listener wakes.
#[derive(Debug, Default)]
struct Waiters(Mutex<HashMap<String, Arc<Notify>>>);

impl Waiters {
    /// Listens for wake-ups of `token` until the returned registration is
    /// dropped.
    fn register(self: &Arc<Self>, token: &str) -> Registration {
        let notify = Arc::new(Notify::new());
        self.map().insert(token.to_owned(), Arc::clone(&notify));
        Registration {
            waiters: Arc::clone(self),
            token: token.to_owned(),
            notify,
        }
    }

    /// Wakes the waiter holding `token`, if it still waits. A wake-up that
    /// comes before the waiter pauses is kept for that pause.
    fn wake(&self, token: &str) {
        if let Some(notify) = self.map().get(token) {
            notify.notify_one();
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // Nothing panics while holding it; a poisoned map is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One waiter's place in [`Waiters`]; dropping it stops the listening.
struct Registration {
    waiters: Arc<Waiters>,
    token: String,
    notify: Arc<Notify>,
}

impl Registration {
    /// Completes at the next wake-up of this waiter's token.
    async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.waiters.map().remove(&self.token);
    }
}

/// Aborts a task when dropped: the wake-up listener ends with the last
/// clone of its lock.
#[derive(Debug)]
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A pub/sub connection to `client` subscribed to `channel`.
async fn subscribed(client: &redis::Client, channel: &str) -> Result<PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// The task that hears this instance's lock wake-ups and wakes the waiter
/// each names.
struct WakeListener {
    client: redis::Client,
    channel: String,
    waiters: Arc<Waiters>,
    command_timeout: Duration,
}

impl WakeListener {
    /// Serves `first`, then reconnects whenever the connection is lost,
    /// until the task is aborted. While it is away, waiters take the lock
    /// on their own asks.
    async fn run(self, first: PubSub) {
        let mut connection = first;
        loop {
            self.serve(connection).await;
            tracing::warn!(
                "the Redis lock's wake-up connection was lost; waiters poll until it is back"
            );
            connection = self.reconnect().await;
        }
    }

    /// Wakes the waiter named by each message until the connection fails
    /// (a closed stream, or an unanswered health-check ping).
    async fn serve(&self, pubsub: PubSub) {
        let (mut sink, mut messages) = pubsub.split();
        let period = WAKE_HEALTH_CHECK_INTERVAL;
        let mut health = tokio::time::interval_at(Instant::now() + period, period);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => match message.get_payload::<String>() {
                        Ok(token) => self.waiters.wake(&token),
                        Err(error) => tracing::debug!(%error, "a lock wake-up was not text"),
                    },
                    None => return,
                },
                _ = health.tick() => {
                    let ping = tokio::time::timeout(self.command_timeout, sink.ping::<redis::Value>());
                    if !matches!(ping.await, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    /// Connects and subscribes again, with a jittered, doubling pause.
    async fn reconnect(&self) -> PubSub {
        let mut delay = MIN_RECONNECT_DELAY;
        loop {
            tokio::time::sleep(jittered(delay)).await;
            delay = delay.saturating_mul(2).min(MAX_RECONNECT_DELAY);
            match tokio::time::timeout(
                self.command_timeout,
                subscribed(&self.client, &self.channel),
            )
            .await
            {
                Ok(Ok(pubsub)) => {
                    tracing::info!("the Redis lock's wake-up connection is back");
                    return pubsub;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "reconnecting the lock's wake-ups failed")
                }
                Err(_) => tracing::debug!("reconnecting the lock's wake-ups timed out"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_up_before_the_pause_is_kept_for_it() {
        let waiters = Arc::new(Waiters::default());
        let registration = waiters.register("instance.token");
        waiters.wake("instance.token");
        // Completes at once: the wake-up came while the waiter was asking.
        tokio::time::timeout(Duration::from_secs(30), registration.notified())
            .await
            .expect("the kept wake-up ends the pause");
    }

    #[tokio::test]
    async fn only_the_named_waiter_is_woken() {
        let waiters = Arc::new(Waiters::default());
        let named = waiters.register("instance.named");
        let other = waiters.register("instance.other");
        waiters.wake("instance.named");
        waiters.wake("instance.unknown");
        named.notified().await;
        let other_woken = std::pin::pin!(other.notified());
        assert!(futures_util::poll!(other_woken).is_pending());
    }

    #[test]
    fn pauses_are_at_least_the_minimum_and_the_first_at_most_the_longest() {
        let settings = |first_ms, max_ms| RedisLockSettings {
            first_retry_delay: Duration::from_millis(first_ms),
            max_retry_delay: Duration::from_millis(max_ms),
            ..RedisLockSettings::default()
        };
        let ms = Duration::from_millis;
        assert_eq!(settings(0, 0).pauses(), (MIN_RETRY_DELAY, MIN_RETRY_DELAY));
        assert_eq!(settings(0, 8).pauses(), (MIN_RETRY_DELAY, ms(8)));
        assert_eq!(settings(3_600_000, 8).pauses(), (ms(8), ms(8)));
        assert_eq!(settings(2, 16).pauses(), (ms(2), ms(16)));
        assert_eq!(RedisLockSettings::default().pauses(), (ms(1), ms(8)));
    }

    #[test]
    fn a_registration_leaves_when_dropped() {
        let waiters = Arc::new(Waiters::default());
        let registration = waiters.register("instance.token");
        assert_eq!(waiters.map().len(), 1);
        drop(registration);
        assert!(waiters.map().is_empty());
        // Waking a waiter that left is harmless.
        waiters.wake("instance.token");
    }
}
