//! Watchers: fresh browsers holding `/ballots/{id}/live-results` open,
//! each noting when every new tally (event id) reached it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Client, Response, StatusCode, Url};
use sse_stream::SseByteStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::http::{self, endpoint};
use super::progress::Live;

/// How many watchers may be connecting at once: thousands of simultaneous
/// connects overflow a listen backlog and measure that instead.
const CONNECTING_AT_ONCE: usize = 128;

/// How long a watcher waits before reconnecting after its stream failed.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// How often [`Watchers::settle`] looks whether everyone has caught up.
const SETTLE_POLL: Duration = Duration::from_millis(5);

/// The step name in a watcher's error kinds.
const STEP: &str = "GET /ballots/{id}/live-results";

/// What one watcher saw.
#[derive(Debug, Default)]
pub(crate) struct WatcherRecord {
    /// True when its stream was open at some point.
    pub(crate) connected: bool,
    /// The sequence number it was shown before voting began (its first
    /// event, when that arrived before the first vote started).
    pub(crate) baseline: Option<u64>,
    /// The id of its first event, whenever it came.
    pub(crate) first_seq: Option<u64>,
    /// Each event whose id was higher than every earlier one, with when it
    /// arrived: ids and times both rise.
    pub(crate) arrivals: Vec<(u64, Instant)>,
    /// Events received.
    pub(crate) events: u64,
    /// Failures by kind.
    pub(crate) errors: BTreeMap<String, u64>,
}

impl WatcherRecord {
    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }
}

/// What the run can see of a watcher while it runs.
#[derive(Debug, Default)]
struct Shared {
    /// Its stream is open now.
    connected: AtomicBool,
    /// Its first event's id and arrival.
    first: OnceLock<(u64, Instant)>,
    /// One more than the highest id it received (0: none yet).
    highest_plus_one: AtomicU64,
}

impl Shared {
    /// The sequence number vote numbering starts from for this watcher.
    fn baseline(&self, voting_started: Instant) -> Option<u64> {
        self.first
            .get()
            .filter(|(_, at)| *at < voting_started)
            .map(|(id, _)| *id)
    }
}

/// The running watchers.
pub(crate) struct Watchers {
    shared: Vec<Arc<Shared>>,
    tasks: JoinSet<(usize, WatcherRecord)>,
    ready: mpsc::UnboundedReceiver<()>,
}

/// What every watcher task needs.
struct Context {
    url: Url,
    connect_timeout: Duration,
    connecting: Semaphore,
    live: Arc<Live>,
    stop: CancellationToken,
}

/// Starts `count` watchers on `ballot`; they run until `stop` is cancelled.
pub(crate) fn spawn(
    base: &Url,
    ballot: &str,
    count: u32,
    connect_timeout: Duration,
    live: &Arc<Live>,
    stop: &CancellationToken,
) -> Watchers {
    let context = Arc::new(Context {
        url: endpoint(base, &["ballots", ballot, "live-results"]),
        connect_timeout,
        connecting: Semaphore::new(CONNECTING_AT_ONCE),
        live: Arc::clone(live),
        stop: stop.clone(),
    });
    let (ready_tx, ready) = mpsc::unbounded_channel();
    let mut shared = Vec::new();
    let mut tasks = JoinSet::new();
    for index in 0..count as usize {
        let state = Arc::new(Shared::default());
        shared.push(Arc::clone(&state));
        let context = Arc::clone(&context);
        let ready = ready_tx.clone();
        tasks.spawn(async move { (index, watch(&context, &state, ready).await) });
    }
    Watchers {
        shared,
        tasks,
        ready,
    }
}

impl Watchers {
    /// Waits until every watcher has received its first tally (or has
    /// failed to connect), at most `timeout`.
    pub(crate) async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..self.shared.len() {
            match tokio::time::timeout_at(deadline, self.ready.recv()).await {
                Ok(Some(())) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Waits until every connected watcher has seen all `acknowledged`
    /// votes of the run that started at `voting_started`, at most
    /// `timeout`. `fallback` is the sequence number before the run for
    /// watchers that got no tally before it.
    pub(crate) async fn settle(
        &self,
        voting_started: Instant,
        fallback: u64,
        acknowledged: u64,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let behind = self.shared.iter().any(|watcher| {
                let baseline = watcher.baseline(voting_started).unwrap_or(fallback);
                watcher.connected.load(Ordering::Relaxed)
                    && watcher.highest_plus_one.load(Ordering::Relaxed)
                        < baseline.saturating_add(acknowledged).saturating_add(1)
            });
            if !behind {
                break;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// Waits for the (stopped) watchers and returns their records, in the
    /// order they were started.
    pub(crate) async fn join(mut self, voting_started: Instant) -> Vec<WatcherRecord> {
        let mut records: Vec<WatcherRecord> = (0..self.shared.len())
            .map(|_| WatcherRecord::default())
            .collect();
        // A watcher cannot panic on what the server sends; should one fail
        // anyway, its record stays empty.
        while let Some(finished) = self.tasks.join_next().await {
            if let Ok((index, record)) = finished
                && let Some(slot) = records.get_mut(index)
            {
                *slot = record;
            }
        }
        for (record, shared) in records.iter_mut().zip(&self.shared) {
            record.baseline = shared.baseline(voting_started);
        }
        records
    }
}

/// One watcher: connects, reads events until stopped, reconnects (with
/// `Last-Event-ID`) after a stream that fails or ends, and gives up on a
/// refusal (`4xx`) that retrying cannot change.
async fn watch(
    context: &Context,
    shared: &Shared,
    ready: mpsc::UnboundedSender<()>,
) -> WatcherRecord {
    let mut record = WatcherRecord::default();
    let mut ready = Some(ready);
    let client = match http::streaming_browser(context.connect_timeout) {
        Ok(client) => client,
        Err(error) => {
            record.error(format!("HTTP client: {}", http::failure("setup", &error)));
            signal(&mut ready);
            return record;
        }
    };
    let mut last_event_id: Option<String> = None;
    loop {
        let answer = tokio::select! {
            biased;
            () = context.stop.cancelled() => break,
            answer = connect(context, &client, last_event_id.as_deref()) => answer,
        };
        let retry = match answer {
            Err(error) => {
                record.error(http::failure(STEP, &error));
                true
            }
            Ok(answer) if answer.status() != StatusCode::OK => {
                let status = answer.status();
                record.error(http::refused(STEP, status, None));
                !status.is_client_error()
            }
            Ok(answer) if !is_event_stream(&answer) => {
                record.error(format!("{STEP}: the answer is not text/event-stream"));
                false
            }
            Ok(answer) => {
                record.connected = true;
                shared.connected.store(true, Ordering::Relaxed);
                context
                    .live
                    .watchers_connected
                    .fetch_add(1, Ordering::Relaxed);
                let ended = read(
                    context,
                    shared,
                    answer,
                    &mut record,
                    &mut ready,
                    &mut last_event_id,
                )
                .await;
                shared.connected.store(false, Ordering::Relaxed);
                context
                    .live
                    .watchers_connected
                    .fetch_sub(1, Ordering::Relaxed);
                match ended {
                    None => break,
                    Some(Ended::Failed(kind)) => {
                        record.error(kind);
                        true
                    }
                    // Over for good: a browser stops here too.
                    Some(Ended::Final) => false,
                    Some(Ended::Gone) => {
                        record.connected = false;
                        record.error(format!(
                            "{STEP}: the ballot does not exist (its stream said deleted)"
                        ));
                        false
                    }
                }
            }
        };
        // Voting should not wait for a watcher that could not connect.
        signal(&mut ready);
        if !retry {
            break;
        }
        tokio::select! {
            biased;
            () = context.stop.cancelled() => break,
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
    signal(&mut ready);
    record
}

fn is_event_stream(answer: &Response) -> bool {
    answer
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

fn signal(ready: &mut Option<mpsc::UnboundedSender<()>>) {
    if let Some(ready) = ready.take() {
        // The run may have stopped waiting; that is fine.
        let _ = ready.send(());
    }
}

async fn connect(
    context: &Context,
    client: &Client,
    last_event_id: Option<&str>,
) -> reqwest::Result<Response> {
    // The semaphore is never closed; were it, connecting unthrottled is fine.
    let _permit = context.connecting.acquire().await.ok();
    let mut request = client
        .get(context.url.clone())
        .header(ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await
}

/// How a watcher's stream ended before the run stopped.
enum Ended {
    /// It failed or ended without a word: the error kind; reconnect.
    Failed(String),
    /// The server said it is over for good (`event: final`): voting ended.
    Final,
    /// The ballot does not exist (any more): its stream said `deleted`.
    Gone,
}

/// Reads the event stream of `answer` into `record` until the run stops
/// (`None`) or the stream fails or ends.
async fn read(
    context: &Context,
    shared: &Shared,
    answer: Response,
    record: &mut WatcherRecord,
    ready: &mut Option<mpsc::UnboundedSender<()>>,
    last_event_id: &mut Option<String>,
) -> Option<Ended> {
    // Raw blocks, `:` comments (keep-alives) already dropped; a block
    // without data is not an event (WHATWG), though its id still counts
    // for `Last-Event-ID`.
    let mut blocks = Box::pin(SseByteStream::new(answer.bytes_stream()));
    loop {
        let block = tokio::select! {
            biased;
            () = context.stop.cancelled() => return None,
            block = blocks.next() => block,
        };
        let at = Instant::now();
        let block = match block {
            None => return Some(Ended::Failed(format!("{STEP}: the stream ended"))),
            Some(Err(sse_stream::Error::Body(error))) => {
                return Some(Ended::Failed(
                    match error.downcast_ref::<reqwest::Error>() {
                        Some(error) => http::failure(STEP, error),
                        None => format!("{STEP}: the stream broke"),
                    },
                ));
            }
            Some(Err(_)) => {
                return Some(Ended::Failed(format!(
                    "{STEP}: the stream is not an event stream"
                )));
            }
            Some(Ok(block)) => block,
        };
        if let Some(id) = &block.id {
            *last_event_id = Some(id.clone());
        }
        // A block without data is no event; a `state` event (the ballot
        // opening or closing) carries no tally, unless it says the ballot
        // is gone; `final` ends the stream for good.
        match block.event.as_deref() {
            Some("final") => return Some(Ended::Final),
            Some("state") => {
                if block
                    .data
                    .as_deref()
                    .is_some_and(|data| data.contains(r#""status":"deleted""#))
                {
                    return Some(Ended::Gone);
                }
                continue;
            }
            _ if block.data.is_none() => continue,
            _ => {}
        }
        record.events += 1;
        // Oponn numbers every event with its tally's sequence number; a
        // server that does not (the original service) is placed by the
        // votes the event renders, which is the same number.
        let id = match block.id.as_deref() {
            Some(id) => match id.trim().parse::<u64>() {
                Ok(id) => id,
                Err(_) => {
                    record.error(format!("{STEP}: an event id is not a sequence number"));
                    continue;
                }
            },
            None => match block.data.as_deref().and_then(crate::page::rendered_total) {
                Some(total) => total,
                None => continue,
            },
        };
        if record.first_seq.is_none() {
            record.first_seq = Some(id);
            let _ = shared.first.set((id, at));
            signal(ready);
        }
        if record
            .arrivals
            .last()
            .is_none_or(|&(highest, _)| id > highest)
        {
            record.arrivals.push((id, at));
            shared
                .highest_plus_one
                .store(id.saturating_add(1), Ordering::Relaxed);
        }
    }
}
