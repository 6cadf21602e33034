//! Tally fan-out across instances through Redis pub/sub.
//!
//! # How messages flow
//!
//! Publishing is a plain `PUBLISH` on a [`ConnectionManager`] (a
//! multiplexed connection that reconnects by itself), bounded by a timeout.
//!
//! Receiving uses one dedicated RESP2 pub/sub connection per instance
//! (`Client::get_async_pubsub`, split into its sink, for `SUBSCRIBE` and
//! `UNSUBSCRIBE`, and its stream of messages). A single background task,
//! the *listener*, owns both halves; every change of subscriptions goes
//! through it as a [`Command`] on one queue, so `SUBSCRIBE` and
//! `UNSUBSCRIBE` reach Redis in the order the local map of watched ballots
//! changed, and a subscription can never be undone by a stale prune. The
//! listener awaits each confirmation before taking the next command
//! (messages queue meanwhile, nothing is lost), which is also what lets
//! [`subscribe`](Broadcaster::subscribe) return only once Redis has
//! confirmed the subscription.
//!
//! This was chosen over RESP3 push messages on a connection manager: the
//! pub/sub connection works with every Redis version and URL, and owning
//! the reconnection ourselves makes its backoff and the re-subscription of
//! exactly the ballots still watched explicit.
//!
//! When the pub/sub connection drops, the listener reconnects with a
//! jittered exponential backoff (capped by
//! [`RedisBroadcasterSettings::max_reconnect_delay`]) and re-subscribes
//! every ballot that still has local watchers before it serves anything
//! else. Local streams stay open throughout; they simply receive nothing
//! while Redis is away. A periodic `PING` catches a connection that died
//! without closing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use oponn_core::domain::{BallotId, Tally, TallyEvent};
use oponn_core::ports::{BroadcastError, Broadcaster, TallyStream};
use redis::aio::{ConnectionManager, PubSub, PubSubSink};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::WatchStream;

use super::{
    NoAnswer, RedisSetupError, ballot_of_channel, client, codec, connection_manager, jittered,
    query, updates_channel,
};

/// The first pause before reconnecting the pub/sub connection; it doubles
/// up to [`RedisBroadcasterSettings::max_reconnect_delay`].
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(50);

/// Tunables of a [`RedisBroadcaster`].
#[derive(Debug, Clone)]
pub struct RedisBroadcasterSettings {
    /// How long one round trip to Redis may take (a publish, a ping, a
    /// subscription's confirmation, a connection attempt) before it counts
    /// as failed (default 1 s). Publishing during an outage therefore
    /// answers [`BroadcastError::Unavailable`] within about this long.
    pub command_timeout: Duration,
    /// How long [`subscribe`](Broadcaster::subscribe) waits for its
    /// subscription to be confirmed, including waiting for the pub/sub
    /// connection to come back after an outage (default 3 s).
    pub subscribe_timeout: Duration,
    /// The longest pause between two attempts to reconnect the pub/sub
    /// connection (default 1 s).
    pub max_reconnect_delay: Duration,
    /// How often an idle pub/sub connection is pinged, to notice a peer
    /// that vanished without closing the connection (default 15 s).
    pub health_check_interval: Duration,
}

impl Default for RedisBroadcasterSettings {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(1),
            subscribe_timeout: Duration::from_secs(3),
            max_reconnect_delay: Duration::from_secs(1),
            health_check_interval: Duration::from_secs(15),
        }
    }
}

/// A [`Broadcaster`] over Redis pub/sub on channel `ballot:{id}:updates`,
/// so that a vote accepted by one instance reaches watchers on all of them.
///
/// Publishing is `PUBLISH` on a self-reconnecting connection, bounded by
/// [`RedisBroadcasterSettings::command_timeout`]: during an outage it
/// answers [`BroadcastError::Unavailable`] quickly instead of holding up
/// the vote (which is already durable).
///
/// Receiving uses one pub/sub connection per instance, owned by a
/// background task (the *listener*), with at most one Redis subscription
/// per watched ballot however many local subscribers it has. They share a
/// `watch` channel holding the latest tally: a slow subscriber skips to the
/// newest tally instead of queueing stale ones, and a tally that is not
/// newer than the one held is dropped. [`subscribe`](Broadcaster::subscribe)
/// returns once Redis has confirmed the subscription, and
/// [`prune_idle`](Broadcaster::prune_idle) unsubscribes ballots nobody
/// here watches any more.
///
/// When the pub/sub connection drops, the listener reconnects by itself
/// (backoff capped by [`RedisBroadcasterSettings::max_reconnect_delay`])
/// and subscribes again every ballot still watched; local streams stay
/// open throughout and simply receive nothing while Redis is away.
/// [`ping`](Broadcaster::ping) fails while the listener is disconnected.
/// Dropping the broadcaster stops the listener and closes its connection.
#[derive(Debug)]
pub struct RedisBroadcaster {
    /// Publishes and pings; reconnects by itself after an outage.
    publisher: ConnectionManager,
    /// State shared with the listener task.
    shared: Arc<Shared>,
    /// The listener's queue. Unbounded because senders must not wait (one
    /// of them is the synchronous `prune_idle`) and each caller adds at most
    /// one command; its only receiver is the listener, which ends once this,
    /// the only sender, is dropped with the broadcaster. Commands are sent
    /// while holding the `ballots` lock, so they queue in the order the map
    /// changed.
    commands: mpsc::UnboundedSender<Command>,
    settings: RedisBroadcasterSettings,
}

/// What the broadcaster and its listener share.
#[derive(Debug)]
struct Shared {
    /// Per watched ballot, the sender of its `watch` channel: capacity one
    /// tally, the latest, which every local subscriber reads. A plain
    /// mutex: held only to find, insert or remove an entry, to hand a tally
    /// to a channel, and to queue the matching command, never across an
    /// await.
    ballots: Mutex<HashMap<BallotId, watch::Sender<Option<Tally>>>>,
    /// True while the listener holds a pub/sub connection on which every
    /// watched ballot is subscribed; read by `ping`.
    listening: AtomicBool,
}

impl Shared {
    fn ballots(&self) -> MutexGuard<'_, HashMap<BallotId, watch::Sender<Option<Tally>>>> {
        self.ballots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A change of subscriptions, for the listener.
#[derive(Debug)]
enum Command {
    /// Make sure `ballot` is subscribed, then signal `done`. Dropping
    /// `done` unsent means it could not be.
    Subscribe {
        ballot: BallotId,
        done: oneshot::Sender<()>,
    },
    /// These ballots were pruned: unsubscribe those still absent from the
    /// map when the command is handled.
    Unsubscribe(Vec<BallotId>),
}

/// Why the listener stopped serving a connection.
enum Ended {
    /// The broadcaster was dropped.
    Stopped,
    /// The connection failed; reconnect.
    Lost,
}

impl RedisBroadcaster {
    /// Connects to the Redis at `url` with default settings.
    ///
    /// # Errors
    /// [`RedisSetupError`] when the URL is invalid or Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, RedisSetupError> {
        Self::connect_with(url, RedisBroadcasterSettings::default()).await
    }

    /// Connects to the Redis at `url` and starts the listener task on the
    /// current tokio runtime.
    ///
    /// # Errors
    /// [`RedisSetupError`] when the URL is invalid or Redis cannot be reached.
    pub async fn connect_with(
        url: &str,
        settings: RedisBroadcasterSettings,
    ) -> Result<Self, RedisSetupError> {
        let client = client(url)?;
        let publisher = connection_manager(client.clone(), settings.command_timeout).await?;
        let pubsub =
            match tokio::time::timeout(settings.command_timeout, client.get_async_pubsub()).await {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(error)) => return Err(RedisSetupError::Connect(error)),
                Err(_) => return Err(RedisSetupError::Timeout(settings.command_timeout)),
            };
        let shared = Arc::new(Shared {
            ballots: Mutex::new(HashMap::new()),
            listening: AtomicBool::new(true),
        });
        let (commands, queue) = mpsc::unbounded_channel();
        let listener = Listener {
            client,
            shared: Arc::clone(&shared),
            commands: queue,
            settings: settings.clone(),
            subscribed: HashSet::new(),
            waiting: Vec::new(),
        };
        tokio::spawn(listener.run(pubsub));
        Ok(Self {
            publisher,
            shared,
            commands,
            settings,
        })
    }

    /// The settings this broadcaster runs with.
    pub fn settings(&self) -> &RedisBroadcasterSettings {
        &self.settings
    }

    /// How many ballots have a local channel, watched or not.
    pub fn len(&self) -> usize {
        self.shared.ballots().len()
    }

    /// True when no ballot has a local channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The listener is gone: only when the runtime that ran it shut down.
#[derive(Debug, thiserror::Error)]
#[error("the Redis pub/sub listener has stopped")]
struct ListenerStopped;

/// The pub/sub connection is down and reconnecting.
#[derive(Debug, thiserror::Error)]
#[error("the Redis pub/sub connection is down; reconnecting")]
struct NotListening;

/// A subscription was not confirmed in time (Redis down, or too slow).
#[derive(Debug, thiserror::Error)]
#[error("the Redis subscription was not confirmed within {0:?}")]
struct NotConfirmed(Duration);

#[async_trait]
impl Broadcaster for RedisBroadcaster {
    async fn publish(&self, event: &TallyEvent) -> Result<(), BroadcastError> {
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(updates_channel(&event.ballot_id))
            .arg(codec::encode(&event.tally));
        // The answer is how many connections received it; none is fine.
        query::<i64>(&self.publisher, &publish, self.settings.command_timeout)
            .await
            .map(drop)
            .map_err(BroadcastError::Unavailable)
    }

    async fn subscribe(&self, ballot: &BallotId) -> Result<TallyStream, BroadcastError> {
        let (receiver, confirmed) = {
            let mut ballots = self.shared.ballots();
            let receiver = ballots
                .entry(*ballot)
                .or_insert_with(|| watch::channel(None).0)
                .subscribe();
            let (done, confirmed) = oneshot::channel();
            self.commands
                .send(Command::Subscribe {
                    ballot: *ballot,
                    done,
                })
                .map_err(|_| BroadcastError::Unavailable(Box::new(ListenerStopped)))?;
            (receiver, confirmed)
        };
        match tokio::time::timeout(self.settings.subscribe_timeout, confirmed).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(BroadcastError::Unavailable(Box::new(NotListening))),
            Err(_) => {
                return Err(BroadcastError::Unavailable(Box::new(NotConfirmed(
                    self.settings.subscribe_timeout,
                ))));
            }
        }
        let tallies = WatchStream::from_changes(receiver).filter_map(std::future::ready);
        Ok(Box::pin(tallies))
    }

    fn prune_idle(&self) -> usize {
        let mut ballots = self.shared.ballots();
        let idle: Vec<BallotId> = ballots
            .iter()
            .filter(|(_, sender)| sender.receiver_count() == 0)
            .map(|(ballot, _)| *ballot)
            .collect();
        for ballot in &idle {
            ballots.remove(ballot);
        }
        let pruned = idle.len();
        if !idle.is_empty() {
            // A stopped listener holds no subscription to undo.
            let _ = self.commands.send(Command::Unsubscribe(idle));
        }
        pruned
    }

    async fn ping(&self) -> Result<(), BroadcastError> {
        query::<String>(
            &self.publisher,
            &redis::cmd("PING"),
            self.settings.command_timeout,
        )
        .await
        .map_err(BroadcastError::Unavailable)?;
        if self.shared.listening.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(BroadcastError::Unavailable(Box::new(NotListening)))
        }
    }
}

/// The background task that owns the pub/sub connection.
struct Listener {
    client: redis::Client,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    settings: RedisBroadcasterSettings,
    /// The ballots subscribed on the current connection; emptied when it is lost.
    subscribed: HashSet<BallotId>,
    /// Subscribers waiting for the connection to come back. Their ballots
    /// are in the map (each holds a receiver), so reconnecting subscribes
    /// them with the rest; then they are told.
    waiting: Vec<oneshot::Sender<()>>,
}

impl Listener {
    /// Serves `first`, then reconnects whenever the connection is lost,
    /// until the broadcaster is dropped.
    async fn run(mut self, first: PubSub) {
        let mut connection = Some(first);
        loop {
            let pubsub = match connection.take() {
                Some(pubsub) => pubsub,
                None => match self.reconnect().await {
                    Some(pubsub) => pubsub,
                    None => return,
                },
            };
            match self.serve(pubsub).await {
                Ended::Stopped => return,
                Ended::Lost => {
                    self.shared.listening.store(false, Ordering::Relaxed);
                    self.subscribed.clear();
                    tracing::warn!(
                        "Redis pub/sub connection lost; live updates pause until it is back"
                    );
                }
            }
        }
    }

    /// Connects again, with backoff, handling commands meanwhile; `None`
    /// when the broadcaster was dropped.
    async fn reconnect(&mut self) -> Option<PubSub> {
        let mut delay = MIN_RECONNECT_DELAY;
        loop {
            let pause = tokio::time::sleep(jittered(delay));
            delay = (delay * 2).min(self.settings.max_reconnect_delay);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    command = self.commands.recv() => match command {
                        None => return None,
                        Some(Command::Subscribe { done, .. }) => self.waiting.push(done),
                        // Nothing is subscribed without a connection.
                        Some(Command::Unsubscribe(_)) => {}
                    },
                }
            }
            // Forget subscribers that gave up waiting.
            self.waiting.retain(|done| !done.is_closed());
            match tokio::time::timeout(
                self.settings.command_timeout,
                self.client.get_async_pubsub(),
            )
            .await
            {
                Ok(Ok(pubsub)) => {
                    tracing::info!("Redis pub/sub connection restored");
                    return Some(pubsub);
                }
                Ok(Err(error)) => tracing::debug!(%error, "reconnecting to Redis pub/sub failed"),
                Err(_) => tracing::debug!("reconnecting to Redis pub/sub timed out"),
            }
        }
    }

    /// Subscribes every watched ballot on `pubsub`, then delivers its
    /// messages and handles commands until it fails or the broadcaster is
    /// dropped.
    async fn serve(&mut self, pubsub: PubSub) -> Ended {
        let (mut sink, mut messages) = pubsub.split();
        let watched: Vec<BallotId> = self
            .shared
            .ballots()
            .iter()
            .filter(|(_, sender)| sender.receiver_count() > 0)
            .map(|(ballot, _)| *ballot)
            .collect();
        if !watched.is_empty() {
            let channels: Vec<String> = watched.iter().map(updates_channel).collect();
            if let Err(error) = self.confirm(sink.subscribe(&channels)).await {
                tracing::debug!(%error, "re-subscribing watched ballots failed");
                return Ended::Lost;
            }
            self.subscribed.extend(watched);
        }
        self.shared.listening.store(true, Ordering::Relaxed);
        for done in self.waiting.drain(..) {
            let _ = done.send(());
        }

        let period = self.settings.health_check_interval;
        let mut health = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                command = self.commands.recv() => Event::Command(command),
                message = messages.next() => Event::Message(message),
                _ = health.tick() => Event::HealthCheck,
            };
            let outcome = match event {
                Event::Command(None) => return Ended::Stopped,
                Event::Command(Some(command)) => self.handle(command, &mut sink).await,
                Event::Message(None) => Err(()),
                Event::Message(Some(message)) => {
                    self.deliver(&message);
                    Ok(())
                }
                Event::HealthCheck => self
                    .confirm(sink.ping::<redis::Value>())
                    .await
                    .map(drop)
                    .map_err(|error| tracing::debug!(%error, "Redis pub/sub ping failed")),
            };
            if outcome.is_err() {
                return Ended::Lost;
            }
        }
    }

    /// Applies one command on the connection; `Err` when the connection
    /// failed.
    async fn handle(&mut self, command: Command, sink: &mut PubSubSink) -> Result<(), ()> {
        match command {
            Command::Subscribe { ballot, done } => {
                // A subscriber that gave up holds no receiver any more:
                // nobody here needs the subscription.
                if done.is_closed() {
                    return Ok(());
                }
                if !self.subscribed.contains(&ballot) {
                    match self.confirm(sink.subscribe(updates_channel(&ballot))).await {
                        Ok(()) => {
                            self.subscribed.insert(ballot);
                        }
                        Err(error) if is_connection_failure(&error) => {
                            // Retried with every watched ballot on reconnection.
                            self.waiting.push(done);
                            return Err(());
                        }
                        Err(error) => {
                            // Refused by Redis (an ACL, say): dropping `done`
                            // tells the subscriber.
                            tracing::warn!(%ballot, %error, "Redis refused a subscription");
                            return Ok(());
                        }
                    }
                }
                let _ = done.send(());
                Ok(())
            }
            Command::Unsubscribe(ballots) => {
                let gone: Vec<BallotId> = {
                    let watched = self.shared.ballots();
                    // A ballot back in the map was subscribed again since it
                    // was pruned: keep its subscription.
                    ballots
                        .into_iter()
                        .filter(|ballot| {
                            !watched.contains_key(ballot) && self.subscribed.contains(ballot)
                        })
                        .collect()
                };
                if gone.is_empty() {
                    return Ok(());
                }
                let channels: Vec<String> = gone.iter().map(updates_channel).collect();
                match self.confirm(sink.unsubscribe(&channels)).await {
                    Ok(()) => {
                        for ballot in &gone {
                            self.subscribed.remove(ballot);
                        }
                        Ok(())
                    }
                    // Reconnecting drops every subscription anyway.
                    Err(error) if is_connection_failure(&error) => Err(()),
                    Err(error) => {
                        tracing::warn!(%error, "Redis refused an unsubscription");
                        Ok(())
                    }
                }
            }
        }
    }

    /// Hands a received tally to its ballot's local subscribers, unless it
    /// is not newer than the one they already have.
    fn deliver(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let Some(ballot) = ballot_of_channel(channel) else {
            tracing::warn!(%channel, "skipping a message on an unexpected channel");
            return;
        };
        let tally = match codec::decode(message.get_payload_bytes()) {
            Ok(tally) => tally,
            Err(error) => {
                tracing::warn!(%ballot, %error, "skipping a malformed tally message");
                return;
            }
        };
        let ballots = self.shared.ballots();
        // No entry: pruned, and its unsubscription is on its way.
        if let Some(sender) = ballots.get(&ballot) {
            sender.send_if_modified(|latest| {
                let newer = latest
                    .as_ref()
                    .is_none_or(|latest| tally.seq() > latest.seq());
                if newer {
                    *latest = Some(tally);
                }
                newer
            });
        }
    }

    /// Awaits a pub/sub round trip for at most the command timeout.
    async fn confirm<T>(
        &self,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RoundTripError> {
        match tokio::time::timeout(self.settings.command_timeout, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(RoundTripError::Redis(error)),
            Err(_) => Err(RoundTripError::NoAnswer(NoAnswer(
                self.settings.command_timeout,
            ))),
        }
    }
}

/// What the listener's `select!` saw.
enum Event {
    Command(Option<Command>),
    Message(Option<redis::Msg>),
    HealthCheck,
}

/// A failed round trip on the pub/sub connection.
#[derive(Debug, thiserror::Error)]
enum RoundTripError {
    /// Redis answered with an error, or the connection failed.
    #[error(transparent)]
    Redis(redis::RedisError),
    /// Redis did not answer in time.
    #[error(transparent)]
    NoAnswer(NoAnswer),
}

/// True when `error` means the connection is unusable, rather than a
/// refusal on a healthy one.
fn is_connection_failure(error: &RoundTripError) -> bool {
    match error {
        RoundTripError::NoAnswer(_) => true,
        RoundTripError::Redis(error) => {
            error.is_unrecoverable_error() || error.is_io_error() || error.is_connection_dropped()
        }
    }
}
