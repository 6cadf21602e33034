//! Live results: one subscription per watched ballot per instance, each
//! update rendered once and fanned out to every local watcher.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use oponn_core::domain::{Ballot, BallotId, OptionId, Results, Status, Tally};
use oponn_core::{BallotError, BallotService, ResultsAccess};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;

use crate::views::{BallotView, ResultsView, Templates};
use crate::wire::TallyBody;

/// How often an idle event stream sends a keep-alive comment.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Shortest time between two updates of one ballot's feed, however few
/// watch it: a burst of votes reaches them as at most fifty updates a
/// second, the last always the newest tally.
pub(crate) const MIN_UPDATE_INTERVAL: Duration = Duration::from_millis(20);

/// Longest time between two updates of a feed, however many watch it.
pub(crate) const MAX_UPDATE_INTERVAL: Duration = Duration::from_secs(1);

/// Time between updates for each watcher of a feed on this instance:
/// about four times what writing one update to one watcher costs the
/// server (10–12 µs, `bench/run.sh fanout-floor`), so up to 25,000
/// watchers a feed's writes take at most about a quarter of a core while
/// votes keep coming. 2,500 watchers get ten updates a second; 10,000 get
/// 2.5. Only results streams count: state-only streams (vote and share
/// pages) have a channel of their own that changes only with the state
/// ([`FeedSenders`]), so they neither wake for votes nor slow the results.
pub(crate) const UPDATE_INTERVAL_PER_WATCHER: Duration = Duration::from_micros(40);

/// The time between two updates of a feed with `watchers` watchers here:
/// [`UPDATE_INTERVAL_PER_WATCHER`] each, from [`MIN_UPDATE_INTERVAL`] to
/// [`MAX_UPDATE_INTERVAL`]. A small audience sees each vote within tens of
/// milliseconds; a crowd costs the server a bounded share of its CPU
/// instead of all of it.
pub(crate) fn update_interval(watchers: usize) -> Duration {
    UPDATE_INTERVAL_PER_WATCHER
        .saturating_mul(u32::try_from(watchers).unwrap_or(u32::MAX))
        .clamp(MIN_UPDATE_INTERVAL, MAX_UPDATE_INTERVAL)
}

/// The interval for [`coalesce`] of a feed sent through `audience`: its
/// watchers here (the channel's receivers) are counted at each update, so
/// the pace follows them as they come and go. With none (only state-only
/// streams watch the ballot), the shortest: the first results page to
/// join (a voter who just voted) then gets the newest tally at once, not
/// after a long hold, and rendering 50 times a second for nobody costs a
/// feed little beside the votes that cause it. Once `voting_ended` is set,
/// none: the few votes checked just before the end pass at once, within
/// [`FINAL_UPDATE_GRACE`], instead of being held past the feed's end.
fn feed_pace<T>(
    audience: watch::Sender<T>,
    voting_ended: Arc<AtomicBool>,
) -> impl Fn() -> Duration + Send + Sync
where
    T: Send + Sync,
{
    move || {
        if voting_ended.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            update_interval(audience.receiver_count())
        }
    }
}

/// What [`coalesce`] remembers of the last tally it let through.
struct Sent {
    at: Instant,
    seq: u64,
    counts: Vec<(OptionId, u64)>,
}

impl Sent {
    fn of(tally: &Tally) -> Self {
        Self {
            at: Instant::now(),
            seq: tally.seq(),
            counts: tally.iter().collect(),
        }
    }

    /// Whether `tally` is these counts under a newer number: how the core
    /// announces a close or a delete.
    fn renumbered_by(&self, tally: &Tally) -> bool {
        tally.seq() > self.seq && tally.iter().eq(self.counts.iter().copied())
    }
}

/// A tally let through by [`coalesce`], and whether the ballot's state
/// changed at it: the same counts as the tally before under a newer number
/// is how the core announces a close or a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coalesced {
    /// The newest tally.
    pub(crate) tally: Tally,
    /// This tally, or one merged into it, was the counts before it under a
    /// newer number: the state changed.
    pub(crate) renumbered: bool,
}

/// Coalesces a stream of tallies: the first passes at once; while more
/// arrive within `interval()` of the last one let through (asked afresh
/// after each, as the audience changes), only the newest is kept, and it
/// passes when the interval is up. When the source ends, the
/// newest tally held is still delivered. A state change (the counts last
/// let through, or held, under a newer number) passes at once and is
/// reported, so the feed reads the ballot's state afresh; one merged with
/// later votes is still reported.
pub(crate) fn coalesce<S, I>(source: S, interval: I) -> impl Stream<Item = Coalesced> + Send
where
    S: Stream<Item = Tally> + Send + Unpin,
    I: Fn() -> Duration + Send,
{
    futures_util::stream::unfold(
        (source, interval, None::<Sent>, false),
        |(mut source, interval, last_sent, ended)| async move {
            if ended {
                return None;
            }
            let mut newest = source.next().await?;
            let mut renumbered = last_sent
                .as_ref()
                .is_some_and(|sent| sent.renumbered_by(&newest));
            let mut ended = false;
            if let Some(last_sent) = last_sent.filter(|_| !renumbered) {
                let due = last_sent.at + interval();
                loop {
                    // The timer first: once the interval is up, what is
                    // held goes out at once instead of waiting on the source.
                    tokio::select! {
                        biased;
                        () = tokio::time::sleep_until(due) => break,
                        next = source.next() => match next {
                            Some(tally) if tally.seq() > newest.seq() => {
                                let state_changed = tally.iter().eq(newest.iter());
                                newest = tally;
                                if state_changed {
                                    renumbered = true;
                                    break;
                                }
                            }
                            Some(_) => {}
                            None => {
                                ended = true;
                                break;
                            }
                        },
                    }
                }
            }
            let sent = Sent::of(&newest);
            let item = Coalesced {
                tally: newest,
                renumbered,
            };
            Some((item, (source, interval, Some(sent), ended)))
        },
    )
}

/// Why a watcher got no feed.
#[derive(Debug)]
pub(crate) enum Unwatched {
    /// The results are hidden from this viewer for now; what to show.
    Hidden(&'static str),
    /// The feed could not be opened.
    Failed(BallotError),
}

/// One tally, rendered for every kind of watcher; or the news that the
/// ballot is gone.
#[derive(Debug)]
pub(crate) struct LiveUpdate {
    /// The tally's sequence number: the SSE event id.
    pub(crate) seq: u64,
    /// The results partial as a complete SSE frame (`id`, `event:
    /// results`, `data` lines), encoded once by [`sse_frame`] and
    /// shared by every HTML watcher: a client costs a reference count, not
    /// a copy. Empty once the ballot is deleted.
    pub(crate) html_frame: Bytes,
    /// Where the ballot stands, as a complete `event: state` frame whose
    /// data is [`state_json`] (and no `id`): the same bytes until the state
    /// changes, so each client sends it only when it differs from the last
    /// it sent.
    pub(crate) state_frame: Bytes,
    /// The tally, for the JSON stream; none once the ballot is deleted.
    pub(crate) body: Option<Arc<TallyBody>>,
    /// The feed's last update: voting has ended (and its late tallies have
    /// had their time) or the ballot is gone. Pages are then sent
    /// [`FINAL_FRAME`], on which the browser stops the stream instead of
    /// reconnecting.
    pub(crate) last: bool,
}

/// The frame that tells a page its stream is over for good; pages name it
/// in `sse-close`, so the browser closes the stream and does not reconnect.
pub(crate) const FINAL_FRAME: &[u8] = b"event: final\ndata: end\n\n";

/// The `state` event's data: the ballot's status (`pending`, `active`,
/// `ended`, or `deleted`) and, in Unix milliseconds, when voting opens
/// and when it closes (`null`: not by itself). Pages count down to these
/// and change their status line, form and controls when it arrives. It
/// holds no clock reading, so it stays byte-for-byte the same until the
/// ballot's state does.
pub(crate) fn state_json(ballot: &Ballot, now: OffsetDateTime) -> String {
    json!({
        "status": ballot.status_at(now).as_str(),
        "opens_at": unix_millis(ballot.schedule().starts_at()),
        "closes_at": ballot.closes_at().map(unix_millis),
    })
    .to_string()
}

/// The `state` event's data for a deleted ballot.
const DELETED_STATE: &str = r#"{"status":"deleted","opens_at":null,"closes_at":null}"#;

/// The whole answer to a browser's event stream for a ballot that is gone:
/// one `deleted` state, then the end. An `EventSource` cannot read a `404`
/// and would retry it for ever; this it can apply.
pub(crate) fn deleted_stream_body() -> Vec<u8> {
    let mut body = sse_frame("state", None, DELETED_STATE).into_bytes();
    body.extend_from_slice(FINAL_FRAME);
    body
}

/// `at` in whole milliseconds since the Unix epoch, as JavaScript's `Date`
/// counts.
pub(crate) fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// How far ahead a feed sets its timer for the next scheduled change of
/// state: a later change is reached by setting it again, so no deadline is
/// ever out of the timer's range.
const MAX_STATE_TIMER: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a feed stays open after voting ends, before it ends its
/// streams: a batch of votes checked just before the end may commit and
/// publish just after it, and its tally still reaches every page.
pub(crate) const FINAL_UPDATE_GRACE: Duration = Duration::from_secs(2);

/// The shortest wait for a scheduled change: a clock a hair behind the
/// timer sees the old state once more, then waits this long, never
/// spinning.
const MIN_STATE_TIMER: Duration = Duration::from_millis(10);

/// When `ballot`'s state next changes by the clock alone (it opens, or its
/// end time passes), as a wait from `now`; `None` when it never will.
fn next_change(ballot: &Ballot, now: OffsetDateTime) -> Option<Duration> {
    let until = match ballot.status_at(now) {
        Status::Pending { starts_in } => starts_in,
        Status::Active {
            ends_in: Some(ends_in),
        } => ends_in,
        Status::Active { ends_in: None } | Status::Ended => return None,
    };
    let until = Duration::try_from(until).unwrap_or(MIN_STATE_TIMER);
    Some(until.clamp(MIN_STATE_TIMER, MAX_STATE_TIMER))
}

/// What a watcher holds: the latest update, replaced as tallies arrive.
pub(crate) type LiveFeed = watch::Receiver<Option<Arc<LiveUpdate>>>;

/// One watched ballot's two channels. Results streams (results pages, the
/// JSON stream) see every update; state-only streams (vote and share
/// pages) see an update only when its state frame differs from the one
/// they hold, or it is the last, so a vote wakes none of them and the
/// feed's pace ([`feed_pace`]) counts only the results streams.
#[derive(Clone, Default)]
pub(crate) struct FeedSenders {
    results: watch::Sender<Option<Arc<LiveUpdate>>>,
    state: watch::Sender<Option<Arc<LiveUpdate>>>,
}

impl FeedSenders {
    /// Sends `update` to every results stream, and to the state-only
    /// streams when the state changed or the feed ends.
    fn publish(&self, update: LiveUpdate) {
        let update = Arc::new(update);
        self.state.send_if_modified(|held| {
            let changed = update.last
                || held
                    .as_ref()
                    .is_none_or(|held| held.state_frame != update.state_frame);
            if changed {
                *held = Some(Arc::clone(&update));
            }
            changed
        });
        self.results.send_replace(Some(update));
    }

    /// The feed's pace ([`feed_pace`]): by its results streams alone.
    fn pace(&self, voting_ended: Arc<AtomicBool>) -> impl Fn() -> Duration + Send + Sync + use<> {
        feed_pace(self.results.clone(), voting_ended)
    }

    /// Whether any stream still watches either channel.
    fn watched(&self) -> bool {
        self.results.receiver_count() > 0 || self.state.receiver_count() > 0
    }

    /// Completes once both channels have had no watchers (not necessarily
    /// at the same moment: callers check [`watched`](Self::watched) again).
    async fn closed(&self) {
        tokio::join!(self.results.closed(), self.state.closed());
    }

    /// Whether `other` is this very feed, not a newer one of its ballot.
    fn same_feed(&self, other: &Self) -> bool {
        self.results.same_channel(&other.results)
    }
}

/// Per-ballot live feeds of this instance.
pub(crate) struct LiveHub {
    service: Arc<BallotService>,
    templates: Arc<Templates>,
    /// The senders of each watched ballot. An async mutex, held while a
    /// new feed subscribes to the core, so two first watchers of a ballot
    /// never open two subscriptions. Each sender keeps only the latest
    /// update: a lagging watcher skips to it and never receives a stale
    /// one last.
    feeds: Mutex<HashMap<BallotId, FeedSenders>>,
    shutdown: CancellationToken,
}

impl LiveHub {
    pub(crate) fn new(
        service: Arc<BallotService>,
        templates: Arc<Templates>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            service,
            templates,
            feeds: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Joins the feed of the ballot `access` shows, opening it (one core
    /// subscription) when this is its first watcher here. The current
    /// tally arrives at once. Taking the viewer's [`ResultsAccess`] makes
    /// every stream ask [`results_for`](BallotService::results_for) first.
    ///
    /// # Errors
    /// [`Unwatched::Hidden`] when the results are hidden from this viewer;
    /// [`Unwatched::Failed`] when the feed cannot be opened.
    pub(crate) async fn watch(
        self: &Arc<Self>,
        access: &ResultsAccess,
    ) -> Result<LiveFeed, Unwatched> {
        let id = match access {
            ResultsAccess::Shown { ballot, .. } => ballot.id(),
            ResultsAccess::Hidden { message, .. } => return Err(Unwatched::Hidden(message)),
        };
        self.join(id, |feed| feed.results.subscribe())
            .await
            .map_err(Unwatched::Failed)
    }

    /// Joins ballot `id`'s feed for its state alone (open, closed,
    /// deleted), which every viewer may follow, whoever may see results.
    /// The receiver changes only with the state, not with each vote.
    ///
    /// # Errors
    /// [`BallotError::NotFound`] for no such ballot; another error when
    /// the feed cannot be opened.
    pub(crate) async fn watch_state(
        self: &Arc<Self>,
        id: BallotId,
    ) -> Result<LiveFeed, BallotError> {
        self.join(id, |feed| feed.state.subscribe()).await
    }

    /// Joins ballot `id`'s feed through `subscribe` (one of its channels),
    /// opening the feed when this is its first watcher. The receiver is
    /// taken under the map's lock, so the feed's task never sees a feed
    /// without watchers that is about to gain one.
    async fn join(
        self: &Arc<Self>,
        id: BallotId,
        subscribe: impl FnOnce(&FeedSenders) -> LiveFeed,
    ) -> Result<LiveFeed, BallotError> {
        let mut feeds = self.feeds.lock().await;
        if let Some(feed) = feeds.get(&id) {
            return Ok(subscribe(feed));
        }
        let tallies = self.service.subscribe(&id).await?;
        let feed = FeedSenders::default();
        let receiver = subscribe(&feed);
        feeds.insert(id, feed.clone());
        let voting_ended = Arc::new(AtomicBool::new(false));
        let pace = feed.pace(Arc::clone(&voting_ended));
        let tallies = Box::pin(coalesce(tallies, pace));
        tokio::spawn(Arc::clone(self).run_feed(id, feed, tallies, voting_ended));
        Ok(receiver)
    }

    /// Closes feeds nobody watches (their tasks also close themselves; this
    /// catches any left behind). Returns how many were closed.
    pub(crate) async fn prune_idle(&self) -> usize {
        let mut feeds = self.feeds.lock().await;
        let before = feeds.len();
        feeds.retain(|_, feed| feed.watched());
        before - feeds.len()
    }

    async fn run_feed(
        self: Arc<Self>,
        id: BallotId,
        feed: FeedSenders,
        mut tallies: CoalescedStream,
        voting_ended: Arc<AtomicBool>,
    ) {
        let mut previous: Option<Tally> = None;
        // When the ballot next opens or closes by the clock, to tell every
        // page at that moment; far in the future when it never will. Once
        // voting has ended, when the feed ends instead.
        let never = || Instant::now() + MAX_STATE_TIMER;
        let mut state_due = never();
        let mut ending = false;
        loop {
            voting_ended.store(ending, Ordering::Relaxed);
            tokio::select! {
                // A tally ready when the feed's end is due still goes out.
                biased;
                () = self.shutdown.cancelled() => break,
                coalesced = tallies.next() => {
                    let Some(Coalesced { tally, renumbered }) = coalesced else { break };
                    // The same counts under a newer number: the ballot's
                    // state changed (the core announces a close or a
                    // delete so), perhaps on another instance. Read it
                    // afresh, not from the cache.
                    if renumbered {
                        self.service.refresh(&id);
                    }
                    match self.render(&id, &tally).await {
                        Ok(rendered) => {
                            if !ending {
                                (state_due, ending) = next_due(&rendered, never);
                            }
                            feed.publish(rendered.update);
                        }
                        // Deleted: say so, then nothing is left to show.
                        Err(BallotError::NotFound) => {
                            feed.publish(deleted(tally.seq()));
                            break;
                        }
                        Err(error) => tracing::warn!(ballot = %id, %error, "live update not rendered"),
                    }
                    previous = Some(tally);
                }
                () = tokio::time::sleep_until(state_due), if previous.is_some() => {
                    if ending {
                        // Every late tally has had its time: end the streams
                        // rather than hold them open on a ballot that will
                        // not change again, telling pages it is final.
                        let last = feed.results.borrow().as_deref().map(LiveUpdate::last_of);
                        if let Some(last) = last {
                            feed.publish(last);
                        }
                        break;
                    }
                    let Some(tally) = previous.as_ref() else { continue };
                    match self.render(&id, tally).await {
                        Ok(rendered) => {
                            (state_due, ending) = next_due(&rendered, never);
                            feed.publish(rendered.update);
                        }
                        Err(BallotError::NotFound) => {
                            feed.publish(deleted(tally.seq()));
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(ballot = %id, %error, "live state not rendered");
                            state_due = Instant::now() + Duration::from_secs(1);
                        }
                    }
                }
                () = feed.closed() => {
                    // Re-check under the map's lock: a watcher may have
                    // joined between the last one leaving and now.
                    let mut feeds = self.feeds.lock().await;
                    if !feed.watched() {
                        if feeds.get(&id).is_some_and(|held| held.same_feed(&feed)) {
                            feeds.remove(&id);
                        }
                        return;
                    }
                }
            }
        }
        let mut feeds = self.feeds.lock().await;
        if feeds.get(&id).is_some_and(|held| held.same_feed(&feed)) {
            feeds.remove(&id);
        }
        // Dropping the senders ends every watcher's stream; browsers reconnect.
    }

    /// The update for `tally`, with what the feed needs to know of the
    /// ballot's state.
    async fn render(&self, id: &BallotId, tally: &Tally) -> Result<Rendered, BallotError> {
        // The service's cached ballot, reread when the tally counts a
        // write-in it has not seen.
        let ballot = &self.service.ballot_for_tally(id, tally).await?;
        let results = Results::new(ballot, tally);
        let view = ResultsView::from(&results);
        let html = self
            .templates
            .render(
                "partials/results.html",
                json!({
                    "ballot": BallotView::new(ballot, self.service.now()),
                    "results": view,
                }),
            )
            .unwrap_or_else(|error| {
                tracing::error!(%error, "rendering the results partial failed");
                String::new()
            });
        let frame = sse_frame("results", Some(tally.seq()), &html);
        let now = self.service.now();
        let update = LiveUpdate {
            seq: tally.seq(),
            html_frame: Bytes::from(frame),
            state_frame: Bytes::from(sse_frame("state", None, &state_json(ballot, now))),
            body: Some(Arc::new(TallyBody::new(ballot, &results))),
            last: false,
        };
        Ok(Rendered {
            update,
            next_change: next_change(ballot, now),
            ended: matches!(ballot.status_at(now), Status::Ended),
        })
    }
}

/// When a feed next wakes by the clock after `rendered`, and whether it is
/// ending: once voting has ended, it wakes [`FINAL_UPDATE_GRACE`] later to
/// end its streams; before, when the state next changes by the clock.
fn next_due(rendered: &Rendered, never: impl Fn() -> Instant) -> (Instant, bool) {
    if rendered.ended {
        (Instant::now() + FINAL_UPDATE_GRACE, true)
    } else {
        let due = rendered
            .next_change
            .map_or_else(never, |wait| Instant::now() + wait);
        (due, false)
    }
}

/// The coalesced tallies a feed renders.
type CoalescedStream = std::pin::Pin<Box<dyn Stream<Item = Coalesced> + Send>>;

/// A rendered update and the ballot's state behind it.
struct Rendered {
    update: LiveUpdate,
    /// How long until the state next changes by the clock, if it will.
    next_change: Option<Duration>,
    /// Whether voting has ended.
    ended: bool,
}

/// The last update of a deleted ballot's feed: its state, and no results.
fn deleted(seq: u64) -> LiveUpdate {
    LiveUpdate {
        seq,
        html_frame: Bytes::new(),
        state_frame: Bytes::from(sse_frame("state", None, DELETED_STATE)),
        body: None,
        last: true,
    }
}

impl LiveUpdate {
    /// `self` again as the feed's last update.
    fn last_of(&self) -> Self {
        Self {
            seq: self.seq,
            html_frame: self.html_frame.clone(),
            state_frame: self.state_frame.clone(),
            body: self.body.clone(),
            last: true,
        }
    }
}

/// One complete SSE frame. Every line break in `data` (`\r\n`, a lone
/// `\r` or `\n`: all three end a line for a browser's `EventSource`)
/// starts a new `data:` line, so no text in it can end the frame early or
/// inject a field of its own (`event:`, `id:`, `retry:`).
///
/// A frame without an `id` leaves the browser's last event id as it was,
/// so `Last-Event-ID` keeps naming the last tally seen.
pub(crate) fn sse_frame(event: &str, id: Option<u64>, data: &str) -> String {
    let mut frame = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        frame.push_str("id: ");
        frame.push_str(&id.to_string());
        frame.push('\n');
    }
    frame.push_str("event: ");
    frame.push_str(event);
    frame.push('\n');
    for line in data.split("\r\n").flat_map(|line| line.split(['\r', '\n'])) {
        frame.push_str("data: ");
        frame.push_str(line);
        frame.push('\n');
    }
    frame.push('\n');
    frame
}

/// What an HTML page's event stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageStream {
    /// The results partial on every update, and the state when it changes.
    Results,
    /// Only the state, when it changes: for pages that show no results.
    State,
}

/// The frames one HTML client is sent from `feed`: for each update, its
/// results frame (unless `kind` is [`PageStream::State`], or the client
/// already has that tally: `resume_after`, or an earlier update), then its
/// state frame when that differs from the last this client was sent, and
/// [`FINAL_FRAME`] after the feed's last update. The first update always
/// carries the state, so a page that reconnects after a change catches up.
pub(crate) fn page_frames(
    feed: LiveFeed,
    kind: PageStream,
    resume_after: Option<u64>,
    shutdown: CancellationToken,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let mut last_state = Bytes::new();
    let mut tallies = NewTallies::new(resume_after);
    WatchStream::new(feed)
        .filter_map(std::future::ready)
        .take_until(shutdown.cancelled_owned())
        .filter_map(move |update| {
            let new_tally = tallies.admit(update.seq);
            let results = match kind {
                PageStream::Results if new_tally => Some(update.html_frame.clone()),
                _ => None,
            };
            let state = (update.state_frame != last_state).then(|| {
                last_state = update.state_frame.clone();
                update.state_frame.clone()
            });
            let last = update.last.then_some(Bytes::from_static(FINAL_FRAME));
            // Nearly every update is one frame (the results), sent as the
            // shared bytes: no allocation per watcher. Only a change of
            // state or the last update joins two or three.
            let mut frames = [results, state, last]
                .into_iter()
                .flatten()
                .filter(|frame| !frame.is_empty());
            let first = frames.next();
            std::future::ready(match frames.next() {
                None => first,
                Some(second) => {
                    let mut joined = first.map(Vec::from).unwrap_or_default();
                    joined.extend_from_slice(&second);
                    frames.for_each(|more| joined.extend_from_slice(&more));
                    Some(Bytes::from(joined))
                }
            })
        })
}

/// Which tallies one client has not yet been sent: only those newer than
/// the one it already holds (`Last-Event-ID`, or the tally its page was
/// rendered with), then than the last it was sent. So an update that
/// re-renders the same tally (the state changing by the clock) never
/// repeats an event, and a page rendered with a newer tally than its feed
/// has sent yet (the feed holds the vote for its interval) is not set
/// back to an older one. Sequences only grow: a close or a delete
/// renumbers the tally upward.
struct NewTallies {
    resume_after: Option<u64>,
    last_sent: Option<u64>,
}

impl NewTallies {
    fn new(resume_after: Option<u64>) -> Self {
        Self {
            resume_after,
            last_sent: None,
        }
    }

    /// Whether the tally `seq` is new to the client; then it counts as
    /// sent.
    fn admit(&mut self, seq: u64) -> bool {
        let held = self.last_sent.or(self.resume_after);
        let new = held.is_none_or(|held| seq > held);
        if new {
            self.last_sent = Some(seq);
        }
        new
    }
}

/// The updates of `feed` for one client: the current one at once (unless
/// it is the one the client last saw, `resume_after`), then each one with
/// a newer tally, until shutdown.
pub(crate) fn live_updates(
    feed: LiveFeed,
    resume_after: Option<u64>,
    shutdown: CancellationToken,
) -> impl Stream<Item = Arc<LiveUpdate>> + Send + 'static {
    let mut tallies = NewTallies::new(resume_after);
    WatchStream::new(feed)
        .filter_map(std::future::ready)
        .filter(move |update| std::future::ready(tallies.admit(update.seq)))
        .take_until(shutdown.cancelled_owned())
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use oponn_core::domain::{OptionId, Tally};
    use tokio_stream::wrappers::UnboundedReceiverStream;

    use super::*;

    /// What a browser's `EventSource` makes of a stream: each event's type
    /// and data, splitting lines on `\r\n`, `\r` and `\n` as it does.
    fn parse_events(stream: &str) -> Vec<(String, String)> {
        let mut events = Vec::new();
        let (mut event, mut data) = (String::from("message"), Vec::new());
        for line in stream
            .split("\r\n")
            .flat_map(|line| line.split(['\r', '\n']))
        {
            if line.is_empty() {
                if !data.is_empty() {
                    events.push((event.clone(), data.join("\n")));
                }
                event = String::from("message");
                data.clear();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push(value.to_owned());
            } else if let Some(value) = line.strip_prefix("event: ") {
                value.clone_into(&mut event);
            }
        }
        events
    }

    #[test]
    fn no_line_break_in_data_can_inject_a_field_or_an_event() {
        for hostile in [
            "Ramen\revent: hijacked",
            "Ramen\r\revent: results\rdata: fake",
            "Ramen\n\nevent: hijacked\ndata: x",
            "Ramen\r\n\r\nid: 99",
            "Ramen\rretry: 1",
        ] {
            let frame = sse_frame("results", Some(7), &format!("<td>{hostile}</td>"));
            let events = parse_events(&frame);
            assert_eq!(events.len(), 1, "{hostile:?} made {events:?}");
            assert_eq!(events[0].0, "results", "{hostile:?}");
            assert!(!frame.contains("\nevent: hijacked"), "{hostile:?}");
            for line in frame.split(['\r', '\n']).filter(|line| !line.is_empty()) {
                assert!(
                    line.starts_with("data: ") || line == "event: results" || line == "id: 7",
                    "{hostile:?} gave the line {line:?}"
                );
            }
        }
    }

    fn tally(seq: u64) -> Tally {
        Tally::new(seq, [(OptionId::new(1), seq)])
    }

    /// A sender of tallies and what [`coalesce`] makes of them at `interval`.
    fn coalesced(
        interval: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> (
        tokio::sync::mpsc::UnboundedSender<Tally>,
        std::pin::Pin<Box<impl Stream<Item = Coalesced>>>,
    ) {
        let (send, receive) = tokio::sync::mpsc::unbounded_channel();
        (
            send,
            Box::pin(coalesce(UnboundedReceiverStream::new(receive), interval)),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_merged_with_a_vote_is_still_reported_as_a_state_change() {
        let (send, mut out) = coalesced(|| MIN_UPDATE_INTERVAL);
        send.send(tally(1)).unwrap();
        assert!(!out.next().await.unwrap().renumbered);
        // A vote, then the close announced as its counts renumbered, in
        // one interval: one update, marked.
        send.send(tally(2)).unwrap();
        send.send(tally(2).renumbered(3)).unwrap();
        let merged = out.next().await.unwrap();
        assert_eq!(merged.tally.seq(), 3);
        assert!(merged.renumbered, "the close is not lost in the merge");
        // Plain votes merged are no state change.
        send.send(tally(4)).unwrap();
        send.send(tally(5)).unwrap();
        assert!(!out.next().await.unwrap().renumbered);
    }

    #[test]
    fn a_client_is_sent_each_tally_once_and_a_resumed_one_not_again() {
        let mut fresh = NewTallies::new(None);
        assert!(fresh.admit(3), "the current tally at once");
        assert!(!fresh.admit(3), "the same tally re-rendered is no event");
        assert!(fresh.admit(4));
        assert!(!fresh.admit(2), "an older one never goes out after a newer");
        let mut resumed = NewTallies::new(Some(7));
        assert!(!resumed.admit(7), "the client already has 7");
        assert!(!resumed.admit(7));
        assert!(resumed.admit(8));
        let mut behind = NewTallies::new(Some(1));
        assert!(behind.admit(5), "a client behind gets the current one");
        // A page rendered with tally 5 while its feed still holds 3 (the
        // vote waits out the feed's interval): 3 would set it back.
        let mut ahead = NewTallies::new(Some(5));
        assert!(!ahead.admit(3), "older than the page's own");
        assert!(!ahead.admit(5));
        assert!(ahead.admit(6));
        assert!(!ahead.admit(4));
    }

    /// An update of tally `seq` whose state frame is `state`.
    fn update(seq: u64, state: &'static str) -> LiveUpdate {
        LiveUpdate {
            seq,
            html_frame: Bytes::from(sse_frame("results", Some(seq), "<p>counts</p>")),
            state_frame: Bytes::from_static(state.as_bytes()),
            body: None,
            last: false,
        }
    }

    #[test]
    fn state_only_streams_wake_for_a_change_of_state_not_for_votes() {
        let feed = FeedSenders::default();
        let mut results = feed.results.subscribe();
        let mut state = feed.state.subscribe();

        feed.publish(update(1, "active"));
        assert!(results.has_changed().unwrap() && state.has_changed().unwrap());
        results.mark_unchanged();
        state.mark_unchanged();

        // Votes: every results stream wakes, no state-only stream does.
        for seq in 2..=5 {
            feed.publish(update(seq, "active"));
            assert!(results.has_changed().unwrap());
            results.mark_unchanged();
            assert!(!state.has_changed().unwrap(), "woken by vote {seq}");
        }
        assert_eq!(results.borrow().as_ref().map(|held| held.seq), Some(5));

        // The ballot closes: both wake, the state streams to the new state.
        feed.publish(update(6, "ended"));
        assert!(results.has_changed().unwrap() && state.has_changed().unwrap());
        assert_eq!(
            state
                .borrow_and_update()
                .as_ref()
                .map(|held| held.state_frame.clone()),
            Some(Bytes::from_static(b"ended"))
        );
        // The last update ends every stream, its state unchanged or not.
        feed.publish(update(7, "ended").last_of());
        assert!(state.has_changed().unwrap());
        assert!(state.borrow().as_ref().is_some_and(|held| held.last));
    }

    #[tokio::test]
    async fn a_feed_is_watched_while_either_channel_has_a_stream() {
        let feed = FeedSenders::default();
        assert!(!feed.watched());
        let state = feed.state.subscribe();
        assert!(feed.watched());
        let results = feed.results.subscribe();
        drop(state);
        assert!(feed.watched());
        drop(results);
        assert!(!feed.watched());
        // Both channels had their last stream leave: the feed's task ends.
        tokio::time::timeout(Duration::from_secs(30), feed.closed())
            .await
            .expect("closed once neither channel has a stream");

        // While a vote page still watches the state, the feed goes on,
        // though its results have no stream left.
        let state = feed.state.subscribe();
        let results = feed.results.subscribe();
        drop(results);
        let mut closing = std::pin::pin!(feed.closed());
        assert!(futures_util::poll!(closing.as_mut()).is_pending());
        drop(state);
        tokio::time::timeout(Duration::from_secs(30), closing)
            .await
            .expect("closed once the state stream left too");
        let copy = feed.clone();
        assert!(copy.same_feed(&feed) && !FeedSenders::default().same_feed(&feed));
    }

    #[test]
    fn state_only_streams_do_not_slow_the_results() {
        let feed = FeedSenders::default();
        let pace = feed.pace(Arc::new(AtomicBool::new(false)));
        let _results = feed.results.subscribe();
        assert_eq!(pace(), MIN_UPDATE_INTERVAL);
        let _state_only: Vec<_> = (0..10_000).map(|_| feed.state.subscribe()).collect();
        assert_eq!(pace(), MIN_UPDATE_INTERVAL, "state-only streams slowed it");
        let _more: Vec<_> = (0..2_499).map(|_| feed.results.subscribe()).collect();
        assert_eq!(pace(), update_interval(2_500));
    }

    #[test]
    fn a_feed_only_vote_pages_watch_holds_no_tally_from_its_first_results_page() {
        // A voter's vote page opened the feed; the vote's tally must not
        // wait out a long interval before the results page it leads to.
        let feed = FeedSenders::default();
        let pace = feed.pace(Arc::new(AtomicBool::new(false)));
        let _state_only: Vec<_> = (0..10_000).map(|_| feed.state.subscribe()).collect();
        assert_eq!(pace(), MIN_UPDATE_INTERVAL);
        let _results = feed.results.subscribe();
        assert_eq!(pace(), MIN_UPDATE_INTERVAL);
    }

    #[test]
    fn the_update_interval_grows_with_the_audience_between_its_bounds() {
        let micros = |watchers| update_interval(watchers).as_micros();
        assert_eq!(micros(0), 20_000);
        assert_eq!(micros(500), 20_000, "the floor up to 500 watchers");
        assert_eq!(micros(501), 20_040);
        assert_eq!(micros(2_500), 100_000, "ten updates a second");
        assert_eq!(micros(10_000), 400_000);
        assert_eq!(micros(25_000), 1_000_000, "the ceiling from 25,000");
        assert_eq!(micros(25_001), 1_000_000);
        assert_eq!(micros(usize::MAX), 1_000_000);
    }

    #[test]
    fn a_feed_is_paced_by_the_watchers_it_has_at_each_update() {
        let (sender, first) = watch::channel(());
        let voting_ended = Arc::new(AtomicBool::new(false));
        let interval = feed_pace(sender.clone(), Arc::clone(&voting_ended));
        assert_eq!(interval(), MIN_UPDATE_INTERVAL, "one watcher");
        let crowd: Vec<_> = (1..2_500).map(|_| sender.subscribe()).collect();
        assert_eq!(interval(), Duration::from_millis(100), "2,500 watchers");
        voting_ended.store(true, Ordering::Relaxed);
        assert_eq!(interval(), Duration::ZERO, "late votes pass at once");
        voting_ended.store(false, Ordering::Relaxed);
        drop(crowd);
        assert_eq!(interval(), MIN_UPDATE_INTERVAL, "the crowd left");
        drop(first);
        assert_eq!(interval(), MIN_UPDATE_INTERVAL, "no results stream left");
    }

    #[tokio::test(start_paused = true)]
    async fn a_state_change_is_not_held_by_a_long_interval() {
        let (send, mut out) = coalesced(|| MAX_UPDATE_INTERVAL);
        send.send(tally(1)).unwrap();
        assert!(!out.next().await.unwrap().renumbered);
        // The close alone: the counts last sent, renumbered.
        send.send(tally(1).renumbered(2)).unwrap();
        let started = Instant::now();
        let closed = out.next().await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(closed.tally.seq(), 2);
        assert!(closed.renumbered);
        // A late vote held, then a delete announced on its counts: the
        // delete passes when it arrives, not when the interval is up.
        send.send(tally(3)).unwrap();
        let started = Instant::now();
        let (_, deleted) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                send.send(tally(3).renumbered(4)).unwrap();
            },
            out.next()
        );
        let deleted = deleted.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(deleted.tally.seq(), 4);
        assert!(deleted.renumbered);
    }

    #[tokio::test(start_paused = true)]
    async fn once_voting_has_ended_late_votes_pass_at_once_whatever_the_audience() {
        let (sender, _first) = watch::channel(());
        let _crowd: Vec<_> = (1..25_000).map(|_| sender.subscribe()).collect();
        let voting_ended = Arc::new(AtomicBool::new(false));
        let (send, mut out) = coalesced(feed_pace(sender.clone(), Arc::clone(&voting_ended)));
        send.send(tally(1)).unwrap();
        assert_eq!(out.next().await.unwrap().tally.seq(), 1);
        send.send(tally(2)).unwrap();
        let started = Instant::now();
        assert_eq!(out.next().await.unwrap().tally.seq(), 2);
        assert_eq!(started.elapsed(), MAX_UPDATE_INTERVAL, "25,000 watchers");
        // The feed saw the end: the next late vote is not held for a
        // second, past the feed's own end.
        voting_ended.store(true, Ordering::Relaxed);
        send.send(tally(3)).unwrap();
        let started = Instant::now();
        assert_eq!(out.next().await.unwrap().tally.seq(), 3);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_interval_is_asked_afresh_after_each_update() {
        use std::sync::atomic::AtomicU64;
        let millis = Arc::new(AtomicU64::new(20));
        let (send, mut out) = coalesced({
            let millis = Arc::clone(&millis);
            move || Duration::from_millis(millis.load(Ordering::Relaxed))
        });
        send.send(tally(1)).unwrap();
        assert_eq!(out.next().await.unwrap().tally.seq(), 1);
        // The audience grew: the next update waits the longer interval.
        millis.store(400, Ordering::Relaxed);
        send.send(tally(2)).unwrap();
        let started = Instant::now();
        assert_eq!(out.next().await.unwrap().tally.seq(), 2);
        let waited = started.elapsed();
        assert!(
            waited > Duration::from_millis(390) && waited <= Duration::from_millis(400),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_becomes_the_first_tally_then_the_newest() {
        let (send, mut out) = coalesced(|| MIN_UPDATE_INTERVAL);
        send.send(tally(1)).unwrap();
        assert_eq!(out.next().await.unwrap().tally.seq(), 1);
        for seq in 2..=100 {
            send.send(tally(seq)).unwrap();
        }
        let started = Instant::now();
        assert_eq!(
            out.next().await.unwrap().tally.seq(),
            100,
            "one update carries the whole burst"
        );
        assert!(
            started.elapsed() <= MIN_UPDATE_INTERVAL,
            "and it comes when the interval is up"
        );
        drop(send);
        assert!(out.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn spaced_tallies_pass_one_by_one_and_the_last_is_never_lost() {
        let (send, mut out) = coalesced(|| MIN_UPDATE_INTERVAL);
        for seq in 1..=3 {
            send.send(tally(seq)).unwrap();
            assert_eq!(out.next().await.unwrap().tally.seq(), seq);
            tokio::time::advance(MIN_UPDATE_INTERVAL * 2).await;
        }
        // A last burst, then the source ends before the interval is up.
        send.send(tally(4)).unwrap();
        send.send(tally(5)).unwrap();
        drop(send);
        assert_eq!(out.next().await.unwrap().tally.seq(), 4);
        assert_eq!(
            out.next().await.unwrap().tally.seq(),
            5,
            "the newest is delivered at the end"
        );
        assert!(out.next().await.is_none());
    }
}
