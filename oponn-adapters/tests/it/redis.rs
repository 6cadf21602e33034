//! The Redis adapters pass their contracts, work across instances, and
//! ride out a Redis restart.
//!
//! Contract and multi-instance tests share one server
//! ([`TestRedis::shared`]: `REDIS_URL` or a throwaway one); tests that stop
//! Redis start their own.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use oponn_adapters::redis::{
    RedisBroadcaster, RedisBroadcasterSettings, RedisLock, RedisLockSettings,
};
use oponn_core::domain::{BallotId, OptionId, Tally, TallyEvent};
use oponn_core::ports::{BroadcastError, Broadcaster, LockError, TallyStream, VoteLock};
use oponn_testkit::contract::within_deadline;
use oponn_testkit::services::redis::TestRedis;
use tokio::time::Instant;

async fn lock() -> Arc<dyn VoteLock> {
    Arc::new(RedisLock::connect(TestRedis::shared().url()).await.unwrap())
}

async fn broadcaster() -> Arc<dyn Broadcaster> {
    Arc::new(
        RedisBroadcaster::connect(TestRedis::shared().url())
            .await
            .unwrap(),
    )
}

mod lock_contract {
    oponn_testkit::vote_lock_contract!(super::lock);
}

mod broadcaster_contract {
    oponn_testkit::broadcaster_contract!(super::broadcaster);
}

fn event(ballot: BallotId, seq: u64) -> TallyEvent {
    TallyEvent {
        ballot_id: ballot,
        tally: Tally::new(seq, [(OptionId::new(1), seq), (OptionId::new(2), 1)]),
    }
}

async fn next(stream: &mut TallyStream) -> Tally {
    within_deadline("a tally arriving", stream.next())
        .await
        .expect("the tally stream stays open")
}

/// A plain connection to `url`, for looking at Redis from outside.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// How many connections subscribe to `ballot`'s updates channel.
async fn subscribers(url: &str, ballot: &BallotId) -> u64 {
    let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("ballot:{ballot}:updates"))
        .query_async(&mut raw(url).await)
        .await
        .unwrap();
    counts[0].1
}

#[test]
fn a_tally_published_on_one_instance_reaches_another() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let (first, second) = (
            RedisBroadcaster::connect(url).await.unwrap(),
            RedisBroadcaster::connect(url).await.unwrap(),
        );
        let ballot = BallotId::generate();
        let mut on_second = second.subscribe(&ballot).await.unwrap();
        let mut on_first = first.subscribe(&ballot).await.unwrap();
        let sent = event(ballot, 3);
        first.publish(&sent).await.unwrap();
        assert_eq!(next(&mut on_second).await, sent.tally);
        assert_eq!(next(&mut on_first).await, sent.tally);
    });
}

#[test]
fn each_instance_subscribes_once_per_ballot() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let broadcaster = RedisBroadcaster::connect(url).await.unwrap();
        let ballot = BallotId::generate();
        let first = broadcaster.subscribe(&ballot).await.unwrap();
        let second = broadcaster.subscribe(&ballot).await.unwrap();
        assert_eq!(subscribers(url, &ballot).await, 1);

        drop((first, second));
        assert_eq!(broadcaster.prune_idle(), 1);
        assert!(broadcaster.is_empty());
        // The listener applies subscription changes one at a time, in
        // order, each confirmed by Redis: once a later subscription is
        // confirmed, the unsubscription queued before it is done too.
        let _barrier = broadcaster.subscribe(&BallotId::generate()).await.unwrap();
        assert_eq!(subscribers(url, &ballot).await, 0);
    });
}

#[test]
fn a_stale_or_malformed_message_is_skipped() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let broadcaster = RedisBroadcaster::connect(url).await.unwrap();
        let ballot = BallotId::generate();
        let mut stream = broadcaster.subscribe(&ballot).await.unwrap();
        broadcaster.publish(&event(ballot, 5)).await.unwrap();
        assert_eq!(next(&mut stream).await.seq(), 5);

        let channel = format!("ballot:{ballot}:updates");
        let mut outsider = raw(url).await;
        for garbage in [
            "",
            "v1",
            "v1 x",
            "v9 6 1=1",
            "v1 6 1=-1",
            "\u{0}\u{ff}",
            "v1 6 1=1 1=2",
        ] {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(garbage)
                .query_async(&mut outsider)
                .await
                .unwrap();
        }
        // Older than what the stream already has: dropped.
        broadcaster.publish(&event(ballot, 4)).await.unwrap();
        broadcaster.publish(&event(ballot, 6)).await.unwrap();
        assert_eq!(next(&mut stream).await, event(ballot, 6).tally);
    });
}

#[test]
fn subscriptions_survive_a_redis_restart() {
    oponn_testkit::block_on(async {
        let mut redis = TestRedis::start();
        let broadcaster = RedisBroadcaster::connect(redis.url()).await.unwrap();
        let ballot = BallotId::generate();
        let mut stream = broadcaster.subscribe(&ballot).await.unwrap();

        redis.stop();
        let started = Instant::now();
        let refused = broadcaster.publish(&event(ballot, 1)).await;
        assert!(
            matches!(refused, Err(BroadcastError::Unavailable(_))),
            "{refused:?}"
        );
        let bound = broadcaster.settings().command_timeout + Duration::from_secs(1);
        assert!(
            started.elapsed() < bound,
            "publishing took {:?}",
            started.elapsed()
        );
        assert!(broadcaster.ping().await.is_err());

        redis.restart();
        // A new subscription is confirmed only once the listener is back,
        // and it re-subscribes every watched ballot before anything else.
        let mut reconnected = None;
        for _ in 0..10 {
            if let Ok(probe) = broadcaster.subscribe(&BallotId::generate()).await {
                reconnected = Some(probe);
                break;
            }
        }
        assert!(
            reconnected.is_some(),
            "the pub/sub listener did not reconnect"
        );
        assert_eq!(subscribers(redis.url(), &ballot).await, 1);
        // The publisher reconnects on the first command after the outage.
        let mut published = false;
        for _ in 0..20 {
            if broadcaster.publish(&event(ballot, 2)).await.is_ok() {
                published = true;
                break;
            }
        }
        assert!(published, "publishing never succeeded after the restart");
        assert_eq!(next(&mut stream).await, event(ballot, 2).tally);
        broadcaster.ping().await.unwrap();
    });
}

/// The ids of the connections in pub/sub mode.
async fn pubsub_connections(url: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut raw(url).await)
        .await
        .unwrap();
    list.lines()
        .filter_map(|line| line.split(' ').find(|field| field.starts_with("id=")))
        .map(str::to_owned)
        .collect()
}

/// How many PING commands the server has run.
async fn pings(url: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut raw(url).await)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

#[test]
fn health_checks_keep_a_healthy_connection() {
    oponn_testkit::block_on(async {
        // Its own server: the only pub/sub connection and the only pings are ours.
        let redis = TestRedis::start();
        let settings = RedisBroadcasterSettings {
            health_check_interval: Duration::from_millis(10),
            ..RedisBroadcasterSettings::default()
        };
        let broadcaster = RedisBroadcaster::connect_with(redis.url(), settings)
            .await
            .unwrap();
        let ballot = BallotId::generate();
        let mut stream = broadcaster.subscribe(&ballot).await.unwrap();
        let connections = pubsub_connections(redis.url()).await;
        assert_eq!(connections.len(), 1);

        // Polls the server's own count; the pause only paces the polling.
        within_deadline("five health checks", async {
            while pings(redis.url()).await < 5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(pubsub_connections(redis.url()).await, connections);
        broadcaster.ping().await.unwrap();
        broadcaster.publish(&event(ballot, 1)).await.unwrap();
        assert_eq!(next(&mut stream).await.seq(), 1);
    });
}

#[test]
fn two_instances_exclude_each_other() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let first = RedisLock::connect(url).await.unwrap();
        let impatient = RedisLockSettings {
            wait: Duration::from_millis(300),
            ..RedisLockSettings::default()
        };
        let second = RedisLock::connect_with(url, impatient).await.unwrap();
        let ballot = BallotId::generate();

        let held = first.acquire(&ballot).await.unwrap();
        let refused = second.acquire(&ballot).await;
        assert!(
            matches!(refused, Err(LockError::Timeout)),
            "{:?}",
            refused.err()
        );
        // Another ballot is not affected.
        second
            .acquire(&BallotId::generate())
            .await
            .unwrap()
            .release()
            .await
            .unwrap();

        held.release().await.unwrap();
        second
            .acquire(&ballot)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    });
}

#[test]
fn holders_on_two_instances_never_overlap() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let instances: Vec<Arc<dyn VoteLock>> = vec![
            Arc::new(RedisLock::connect(url).await.unwrap()),
            Arc::new(RedisLock::connect(url).await.unwrap()),
        ];
        let ballot = BallotId::generate();
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..6)
            .map(|task| {
                let lock = Arc::clone(&instances[task % 2]);
                let inside = Arc::clone(&inside);
                tokio::spawn(async move {
                    for _ in 0..5 {
                        let guard = lock.acquire(&ballot).await.unwrap();
                        let before = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(before, 0, "two holders at once");
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        guard.release().await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            within_deadline("every holder finishing", task)
                .await
                .unwrap();
        }
    });
}

#[test]
fn a_dropped_guard_frees_the_lock_before_it_expires() {
    oponn_testkit::block_on(async {
        let settings = RedisLockSettings {
            ttl: Duration::from_secs(600),
            ..RedisLockSettings::default()
        };
        let lock = RedisLock::connect_with(TestRedis::shared().url(), settings)
            .await
            .unwrap();
        let ballot = BallotId::generate();
        drop(lock.acquire(&ballot).await.unwrap());
        // Within the 5 s wait, long before the 10 minute expiry.
        lock.acquire(&ballot)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    });
}

#[test]
fn releasing_a_lock_that_expired_reports_it_lost() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let lock = RedisLock::connect(url).await.unwrap();
        let ballot = BallotId::generate();
        let guard = lock.acquire(&ballot).await.unwrap();
        // What expiry does, without waiting for it.
        let key = format!("ballot:{ballot}:lock");
        let deleted: i64 = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut raw(url).await)
            .await
            .unwrap();
        assert_eq!(deleted, 1, "the lock lives at {key}");
        // Someone else takes it meanwhile; the late release must not free it.
        let successor = lock.acquire(&ballot).await.unwrap();
        assert!(matches!(guard.release().await, Err(LockError::Lost)));
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut raw(url).await)
            .await
            .unwrap();
        assert_eq!(exists, 1, "the successor's lock survives");
        successor.release().await.unwrap();
    });
}

#[test]
fn the_lock_answers_promptly_while_redis_is_down() {
    oponn_testkit::block_on(async {
        let mut redis = TestRedis::start();
        let lock = RedisLock::connect(redis.url()).await.unwrap();
        lock.ping().await.unwrap();
        redis.stop();

        let started = Instant::now();
        let outcome = lock.acquire(&BallotId::generate()).await;
        assert!(
            matches!(outcome, Err(LockError::Unavailable(_) | LockError::Timeout)),
            "{:?}",
            outcome.err()
        );
        let settings = lock.settings();
        let bound = settings.wait + settings.command_timeout;
        assert!(
            started.elapsed() <= bound,
            "acquiring took {:?}",
            started.elapsed()
        );
        assert!(matches!(lock.ping().await, Err(LockError::Unavailable(_))));

        redis.restart();
        let mut guard = None;
        for _ in 0..20 {
            if let Ok(taken) = lock.acquire(&BallotId::generate()).await {
                guard = Some(taken);
                break;
            }
        }
        guard
            .expect("the lock works again once Redis is back")
            .release()
            .await
            .unwrap();
    });
}

#[test]
fn a_bad_url_is_a_setup_error() {
    oponn_testkit::block_on(async {
        assert!(RedisLock::connect("not a url").await.is_err());
        assert!(
            RedisBroadcaster::connect_with(
                "redis://127.0.0.1:1/",
                RedisBroadcasterSettings::default()
            )
            .await
            .is_err()
        );
    });
}

/// The length of ballot `ballot`'s queue of lock waiters.
async fn queued(url: &str, ballot: &BallotId) -> i64 {
    redis::cmd("LLEN")
        .arg(format!("ballot:{ballot}:lock:queue"))
        .query_async(&mut raw(url).await)
        .await
        .unwrap()
}

/// Waits until ballot `ballot`'s lock queue holds `length` waiters.
async fn until_queued(url: &str, ballot: &BallotId, length: i64) {
    within_deadline("the lock queue reaching its length", async {
        while queued(url, ballot).await != length {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[test]
fn a_waiting_instance_gets_the_lock_before_its_last_holder_takes_it_again() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let first = Arc::new(RedisLock::connect(url).await.unwrap());
        let second = Arc::new(RedisLock::connect(url).await.unwrap());
        let ballot = BallotId::generate();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));

        let held = first.acquire(&ballot).await.unwrap();
        let waiter = {
            let (second, order) = (Arc::clone(&second), Arc::clone(&order));
            tokio::spawn(async move {
                let guard = second.acquire(&ballot).await.unwrap();
                order.lock().unwrap().push("second");
                guard.release().await.unwrap();
            })
        };
        until_queued(url, &ballot, 1).await;
        // The holder releases and asks again at once, as an instance with
        // a queue of its own votes does: it queues behind the waiter
        // instead of winning the race (which polling with backoff lost to
        // it nearly every time).
        held.release().await.unwrap();
        let again = first.acquire(&ballot).await.unwrap();
        order.lock().unwrap().push("first");
        again.release().await.unwrap();
        within_deadline("the waiter finishing", waiter)
            .await
            .unwrap();
        assert_eq!(*order.lock().unwrap(), ["second", "first"]);
        assert_eq!(queued(url, &ballot).await, 0, "nobody left in the queue");
    });
}

#[test]
fn a_waiter_that_is_gone_holds_up_nobody() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let lock = RedisLock::connect(url).await.unwrap();
        let ballot = BallotId::generate();
        // A waiter that crashed while first in the queue, last seen long ago.
        let mut connection = raw(url).await;
        let () = redis::cmd("RPUSH")
            .arg(format!("ballot:{ballot}:lock:queue"))
            .arg("crashed-waiter")
            .query_async(&mut connection)
            .await
            .unwrap();
        let () = redis::cmd("HSET")
            .arg(format!("ballot:{ballot}:lock:seen"))
            .arg("crashed-waiter")
            .arg(0)
            .query_async(&mut connection)
            .await
            .map(|_: i64| ())
            .unwrap();
        lock.acquire(&ballot)
            .await
            .expect("the stale waiter is dropped, not waited for")
            .release()
            .await
            .unwrap();
        assert_eq!(queued(url, &ballot).await, 0);

        // A waiter whose task is cancelled leaves the queue at once.
        let held = lock.acquire(&ballot).await.unwrap();
        let other = Arc::new(RedisLock::connect(url).await.unwrap());
        let waiting = tokio::spawn({
            let other = Arc::clone(&other);
            async move { other.acquire(&ballot).await.map(drop) }
        });
        until_queued(url, &ballot, 1).await;
        waiting.abort();
        until_queued(url, &ballot, 0).await;
        held.release().await.unwrap();
    });
}

/// Polls `future` once, so that what it sends is on its way, and hands it
/// back unfinished; `None` when it finished within that poll (the answer
/// was quick enough), its output dropped.
async fn polled_once<F: std::future::Future + Unpin>(mut future: F) -> Option<F> {
    let pending = std::future::poll_fn(|context| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut future).poll(context).is_pending())
    })
    .await;
    pending.then_some(future)
}

/// Whether ballot `ballot`'s lock is held by anyone.
async fn locked(url: &str, ballot: &BallotId) -> bool {
    redis::cmd("EXISTS")
        .arg(format!("ballot:{ballot}:lock"))
        .query_async::<i64>(&mut raw(url).await)
        .await
        .unwrap()
        == 1
}

/// A lock whose keys outlive any test deadline, so that only leaving or
/// releasing, never expiry, can clear them.
async fn long_lived_lock(url: &str) -> RedisLock {
    let settings = RedisLockSettings {
        ttl: Duration::from_secs(600),
        ..RedisLockSettings::default()
    };
    let lock = RedisLock::connect_with(url, settings).await.unwrap();
    // Load the scripts, so that each ask below is one round trip.
    let warm_up = BallotId::generate();
    lock.acquire(&warm_up)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    lock
}

#[test]
fn a_wait_cancelled_before_its_answer_arrives_leaves_the_queue() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let lock = long_lived_lock(url).await;
        let ballot = BallotId::generate();
        let held = lock.acquire(&ballot).await.unwrap();
        // Redis queues the waiter, but the waiter is dropped before it
        // reads that answer (a request cancelled at that moment), or, when
        // the answer came within the first poll, while it pauses.
        let waiting = polled_once(lock.acquire(&ballot))
            .await
            .expect("a queued waiter pauses before asking again");
        until_queued(url, &ballot, 1).await;
        drop(waiting);
        until_queued(url, &ballot, 0).await;
        held.release().await.unwrap();
    });
}

#[test]
fn a_take_cancelled_before_its_answer_arrives_frees_the_lock() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let lock = long_lived_lock(url).await;
        // Redis gives the lock, but the taker is dropped before it reads
        // that answer: nobody holds a guard, so nobody else may wait out
        // the ten minute expiry. When the answer comes within the first
        // poll, the scene is set again on another ballot.
        let ballot = within_deadline("a take still unanswered after one poll", async {
            loop {
                let ballot = BallotId::generate();
                let Some(taking) = polled_once(lock.acquire(&ballot)).await else {
                    continue;
                };
                while !locked(url, &ballot).await {
                    tokio::task::yield_now().await;
                }
                drop(taking);
                break ballot;
            }
        })
        .await;
        within_deadline("the untaken lock being freed", async {
            while locked(url, &ballot).await {
                tokio::task::yield_now().await;
            }
        })
        .await;
    });
}

/// A lock whose waiters never ask again by themselves within any test
/// deadline, nor give up: only a wake-up from a release can hand them the
/// lock in time.
async fn deaf_lock(url: &str) -> Arc<RedisLock> {
    let hour = Duration::from_secs(3600);
    let settings = RedisLockSettings {
        wait: hour,
        first_retry_delay: hour,
        max_retry_delay: hour,
        ..RedisLockSettings::default()
    };
    Arc::new(RedisLock::connect_with(url, settings).await.unwrap())
}

/// Waits for the lock of `ballot` on `lock` in a task, answering once it
/// holds the lock and has released it.
fn waiting_for(lock: &Arc<RedisLock>, ballot: BallotId) -> tokio::task::JoinHandle<()> {
    let lock = Arc::clone(lock);
    tokio::spawn(async move {
        lock.acquire(&ballot)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    })
}

/// Frees `ballot`'s lock behind its holder's back, as its expiry does:
/// no release runs, so nobody is woken.
async fn expire(url: &str, ballot: &BallotId) {
    let deleted: i64 = redis::cmd("DEL")
        .arg(format!("ballot:{ballot}:lock"))
        .query_async(&mut raw(url).await)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the lock was held");
}

#[test]
fn a_release_wakes_the_waiter_on_another_instance() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let ballot = BallotId::generate();
        let (held, mut waiting) = held_with_waiting(url, ballot, 1).await;
        let waiting = waiting.remove(0);
        held.release().await.unwrap();
        // Its next ask by itself is an hour away: only the wake-up is in time.
        within_deadline("the woken waiter taking the lock", waiting)
            .await
            .unwrap();
        assert_eq!(queued(url, &ballot).await, 0);
    });
}

/// `ballot`'s lock held by one instance, and `count` waiters of as many
/// others that only a wake-up serves in time, queued in order: the guard
/// and the waiting tasks, first in line first.
async fn held_with_waiting(
    url: &str,
    ballot: BallotId,
    count: i64,
) -> (
    Box<dyn oponn_core::ports::LockGuard>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let holder = RedisLock::connect(url).await.unwrap();
    let held = holder.acquire(&ballot).await.unwrap();
    let mut waiting = Vec::new();
    for queued in 1..=count {
        waiting.push(waiting_for(&deaf_lock(url).await, ballot));
        until_queued(url, &ballot, queued).await;
    }
    (held, waiting)
}

#[test]
fn a_release_wakes_the_next_waiter_after_one_gave_up() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let ballot = BallotId::generate();
        let (held, waiting) = held_with_waiting(url, ballot, 2).await;
        let [gives_up, stays] = <[_; 2]>::try_from(waiting).unwrap();
        gives_up.abort();
        until_queued(url, &ballot, 1).await;
        held.release().await.unwrap();
        within_deadline("the waiter left first taking the lock", stays)
            .await
            .unwrap();
    });
}

#[test]
fn a_waiter_giving_up_a_free_lock_wakes_the_next() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let ballot = BallotId::generate();
        let (_held, waiting) = held_with_waiting(url, ballot, 2).await;
        let [gives_up, stays] = <[_; 2]>::try_from(waiting).unwrap();
        // The lock expires: free, but nobody is told. The first waiter
        // then leaves without taking it; the second must hear of it.
        expire(url, &ballot).await;
        gives_up.abort();
        within_deadline("the next waiter taking the free lock", stays)
            .await
            .unwrap();
    });
}

#[test]
fn a_taker_finding_a_free_lock_wakes_the_waiter_first_in_line() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let ballot = BallotId::generate();
        let newcomer = deaf_lock(url).await;
        let (_held, mut waiting) = held_with_waiting(url, ballot, 1).await;
        let waiting = waiting.remove(0);
        // The lock expires, and nobody is told; a newcomer then finds it
        // free but not its turn: it wakes the waiter, and queues behind it
        // (the waiter's release then wakes the newcomer).
        expire(url, &ballot).await;
        let later = waiting_for(&newcomer, ballot);
        within_deadline("the waiter first in line taking the lock", waiting)
            .await
            .unwrap();
        within_deadline("the newcomer taking it next", later)
            .await
            .unwrap();
    });
}

/// How many instances listen for lock wake-ups: the wake-up channels
/// subscribed, one per instance (its id is in the channel's name).
async fn wake_listeners(url: &str) -> usize {
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("lock:wake:*")
        .query_async(&mut raw(url).await)
        .await
        .unwrap();
    channels.len()
}

/// Waits until `count` instances listen for lock wake-ups.
async fn until_wake_listeners(url: &str, count: usize) {
    within_deadline("the wake-up listeners reaching their number", async {
        while wake_listeners(url).await != count {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[test]
fn wake_ups_resume_after_a_redis_restart() {
    oponn_testkit::block_on(async {
        let mut redis = TestRedis::start();
        let holder = RedisLock::connect(redis.url()).await.unwrap();
        let waiter = deaf_lock(redis.url()).await;
        assert_eq!(wake_listeners(redis.url()).await, 2);

        redis.stop();
        redis.restart();
        // Both listeners subscribe again.
        until_wake_listeners(redis.url(), 2).await;
        // The command connections reconnect on their first commands.
        within_deadline("both locks answering again", async {
            while holder.ping().await.is_err() || waiter.ping().await.is_err() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let ballot = BallotId::generate();
        let held = holder.acquire(&ballot).await.unwrap();
        let waiting = waiting_for(&waiter, ballot);
        until_queued(redis.url(), &ballot, 1).await;
        held.release().await.unwrap();
        within_deadline("the woken waiter taking the lock", waiting)
            .await
            .unwrap();
    });
}

#[test]
fn the_wake_up_listener_stops_with_its_lock() {
    oponn_testkit::block_on(async {
        let redis = TestRedis::start();
        let lock = RedisLock::connect(redis.url()).await.unwrap();
        let clone = lock.clone();
        drop(lock);
        assert_eq!(
            wake_listeners(redis.url()).await,
            1,
            "a clone still uses it"
        );
        drop(clone);
        // The listener's connection closes.
        until_wake_listeners(redis.url(), 0).await;
    });
}

#[test]
fn each_waiter_says_how_long_it_may_pause_before_it_counts_as_gone() {
    oponn_testkit::block_on(async {
        let url = TestRedis::shared().url();
        let ballot = BallotId::generate();
        let (held, mut waiting) = held_with_waiting(url, ballot, 1).await;
        let waiting = waiting.remove(0);
        let mut connection = raw(url).await;
        let gone_after: Vec<u64> = redis::cmd("HVALS")
            .arg(format!("ballot:{ballot}:lock:seen"))
            .query_async(&mut connection)
            .await
            .unwrap();
        let (seconds, _): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut connection)
            .await
            .unwrap();
        // Thirty pauses of an hour: a taker with the default 8 ms pauses
        // must not drop this waiter after its own 240 ms.
        let now = seconds * 1000;
        assert_eq!(gone_after.len(), 1);
        assert!(
            gone_after[0] > now + 29 * 3600 * 1000,
            "gone after {} ms, now {now} ms",
            gone_after[0]
        );
        held.release().await.unwrap();
        within_deadline("the patient waiter taking the lock", waiting)
            .await
            .unwrap();
    });
}
