//! The progress line: counters the workers bump, and a task that shows
//! them on standard error while a phase runs.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the line is redrawn in place on a terminal.
const TERMINAL_EVERY: Duration = Duration::from_millis(250);

/// How often a plain line is printed when standard error is not a
/// terminal (a log file should not fill with redraws).
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Where the progress line of a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nowhere: for tests and callers that only want the [`super::Report`].
    Off,
    /// Standard error: redrawn in place on a terminal, otherwise a plain
    /// line every few seconds.
    Stderr,
}

/// The counters a phase's workers bump and the progress line reads.
/// Relaxed atomics: each is a tally of its own, read only for display.
#[derive(Debug)]
pub(crate) struct Live {
    /// Votes acknowledged, or `/livez` answers received.
    pub(crate) done: AtomicU64,
    /// Failed votes or requests.
    pub(crate) errors: AtomicU64,
    /// Watchers whose stream is open right now.
    pub(crate) watchers_connected: AtomicU64,
    /// Watchers asked for.
    watchers: u64,
}

impl Live {
    pub(crate) fn new(watchers: u32) -> Self {
        Self {
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            watchers_connected: AtomicU64::new(0),
            watchers: u64::from(watchers),
        }
    }

    pub(crate) fn count_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running progress line; [`Ticker::stop`] ends it.
pub(crate) struct Ticker {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Prints a one-off line about the run (not a measurement).
    pub(crate) fn note(self, text: &str) {
        if self == Self::Stderr {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// Starts showing `live`'s counters, under `label` ("votes", "/livez").
    pub(crate) fn start(self, label: &'static str, live: Arc<Live>) -> Ticker {
        if self == Self::Off {
            return Ticker {
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = oneshot::channel::<()>();
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal {
            TERMINAL_EVERY
        } else {
            PLAIN_EVERY
        };
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (started, 0_u64);
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                let finished = tokio::select! {
                    _ = &mut stopped => true,
                    _ = ticks.tick() => false,
                };
                let now = Instant::now();
                let done = live.done.load(Ordering::Relaxed);
                // The rate of the last interval while running; the whole
                // run's on the final line, whose interval may be a sliver.
                let since = if finished { (started, 0) } else { last };
                let interval = now.duration_since(since.0).as_secs_f64();
                let rate = if interval > 0.0 {
                    done.saturating_sub(since.1) as f64 / interval
                } else {
                    0.0
                };
                last = (now, done);
                let line = line(label, &live, now.duration_since(started), done, rate);
                let mut out = std::io::stderr().lock();
                // A progress line that cannot be written is not worth failing for.
                let _ = if terminal {
                    write!(out, "\r\x1b[2K{line}")
                } else {
                    writeln!(out, "{line}")
                };
                if finished {
                    if terminal {
                        let _ = writeln!(out);
                    }
                    break;
                }
            }
        });
        Ticker {
            stop: Some(stop),
            task: Some(task),
        }
    }
}

fn line(label: &str, live: &Live, elapsed: Duration, done: u64, rate: f64) -> String {
    let errors = live.errors.load(Ordering::Relaxed);
    let what = if label == "votes" {
        "acknowledged"
    } else {
        "answered"
    };
    let mut line = format!(
        "[{:>7.1}s] {label}: {done} {what}, {rate:.0}/s, {errors} errors",
        elapsed.as_secs_f64()
    );
    if live.watchers > 0 {
        let connected = live.watchers_connected.load(Ordering::Relaxed);
        line.push_str(&format!(", watchers {connected}/{}", live.watchers));
    }
    line
}

impl Ticker {
    /// Draws the line one last time and ends it.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_counts_rate_and_watchers() {
        let live = Live::new(20);
        live.count_done();
        live.count_error();
        live.watchers_connected.store(19, Ordering::Relaxed);
        let text = line("votes", &live, Duration::from_millis(1500), 1, 2.4);
        assert_eq!(
            text,
            "[    1.5s] votes: 1 acknowledged, 2/s, 1 errors, watchers 19/20"
        );
        let text = line("/livez", &Live::new(0), Duration::ZERO, 0, 0.0);
        assert_eq!(text, "[    0.0s] /livez: 0 answered, 0/s, 0 errors");
    }
}
