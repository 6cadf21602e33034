//! What a run measured ([`Report`]), how the figures are computed from the
//! raw records, and the printed summary (`Display`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Target;
use super::setup::TallyReading;
use super::voter::Voted;
use super::watcher::WatcherRecord;

/// Everything one run measured.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// The server's base URL.
    pub url: String,
    /// What was loaded.
    pub target: Target,
    /// Voters (or `/livez` requests) in flight at once.
    pub concurrency: u32,
    /// The vote phase, when the target included votes.
    pub votes: Option<VoteReport>,
    /// The `/livez` phase, when the target included it.
    pub livez: Option<LivezReport>,
}

impl Report {
    /// False when the server's tally contradicts the acknowledged votes:
    /// the one outcome that makes `oponn simulate` exit non-zero.
    pub fn passed(&self) -> bool {
        !matches!(
            self.votes.as_ref().map(|votes| &votes.tally),
            Some(TallyCheck::Mismatch { .. })
        )
    }

    /// Votes/s as a share of `/livez` req/s, when both were measured.
    pub fn vote_to_livez_ratio(&self) -> Option<f64> {
        let votes = self.votes.as_ref()?.votes_per_second();
        let livez = self.livez.as_ref()?.requests_per_second();
        (livez > 0.0).then(|| votes / livez)
    }
}

/// The vote phase of a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VoteReport {
    /// The ballot voted on (the first, with `--ballots`).
    pub ballot: String,
    /// How many ballots the voters were spread over (`--ballots`).
    pub ballots: usize,
    /// True when the tool created the ballot.
    pub created: bool,
    /// Voters that started (fewer than asked when `--duration` ran out).
    pub voters: u64,
    /// Votes the server acknowledged (`303`, or `204` with `HX-Redirect`).
    pub acknowledged: u64,
    /// From the first voter's start to the last voter's end.
    pub elapsed: Duration,
    /// The vote POST alone, over acknowledged votes.
    pub post_latency: Option<LatencySummary>,
    /// Failed votes by kind (step, status and message, or transport failure).
    pub errors: BTreeMap<String, u64>,
    /// Each watcher, in the order they were started.
    pub watchers: Vec<WatcherSummary>,
    /// Watcher failures by kind (refused streams, streams that ended, …).
    pub watcher_errors: BTreeMap<String, u64>,
    /// Time from a vote's acknowledgement to its arrival at a watcher,
    /// over all (vote, watcher) pairs that arrived; see the module docs.
    pub delivery: Option<LatencySummary>,
    /// (vote, watcher) pairs considered: acknowledged votes × watchers.
    pub delivery_pairs: u64,
    /// Pairs whose vote never reached that watcher before it was stopped.
    pub never_arrived: u64,
    /// The server's tally against the acknowledged votes.
    pub tally: TallyCheck,
}

impl VoteReport {
    /// Acknowledged votes per second of the vote phase.
    pub fn votes_per_second(&self) -> f64 {
        per_second(self.acknowledged, self.elapsed)
    }

    /// Failed votes, all kinds together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Watchers whose stream was open at some point.
    pub fn watchers_connected(&self) -> usize {
        self.watchers
            .iter()
            .filter(|watcher| watcher.connected)
            .count()
    }
}

/// One watcher's view of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatcherSummary {
    /// True when its stream was open at some point.
    pub connected: bool,
    /// The id of its first event: the tally it was first shown.
    pub first_seq: Option<u64>,
    /// The highest event id it received: the latest tally it saw.
    pub last_seq: Option<u64>,
    /// Events received.
    pub events: u64,
}

/// The `/livez` phase of a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LivezReport {
    /// Successful answers.
    pub requests: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Request to complete answer, over successful requests.
    pub latency: Option<LatencySummary>,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
}

impl LivezReport {
    /// Successful requests per second.
    pub fn requests_per_second(&self) -> f64 {
        per_second(self.requests, self.elapsed)
    }
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencySummary {
    /// How many durations.
    pub count: u64,
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

/// The server's tally after the run, against the votes it acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TallyCheck {
    /// `total` = `before` + `acknowledged`: nothing lost, nothing extra.
    Ok {
        /// The server's total after the run.
        total: u64,
        /// Its total before the run (0 for a ballot the tool created).
        before: u64,
        /// Votes acknowledged during the run.
        acknowledged: u64,
    },
    /// `total` ≠ `before` + `acknowledged`.
    Mismatch {
        /// The server's total after the run.
        total: u64,
        /// Its total before the run (0 for a ballot the tool created).
        before: u64,
        /// Votes acknowledged during the run.
        acknowledged: u64,
    },
    /// The tally could not be read, before or after the run.
    NotMade {
        /// Why.
        reason: String,
    },
}

impl TallyCheck {
    /// Compares the tallies read `before` and `after` the run with the
    /// `acknowledged` votes. A ballot the tool `created` started at zero,
    /// whatever the read before it said.
    pub(crate) fn new(
        before: Result<TallyReading, String>,
        after: Result<TallyReading, String>,
        created: bool,
        acknowledged: u64,
    ) -> Self {
        let after = match after {
            Ok(after) => after,
            Err(reason) => return Self::NotMade { reason },
        };
        let before = match (before, created) {
            (_, true) => 0,
            (Ok(before), false) => before.total,
            (Err(reason), false) => {
                return Self::NotMade {
                    reason: format!("the tally before the run is unknown: {reason}"),
                };
            }
        };
        let total = after.total;
        if before.checked_add(acknowledged) == Some(total) {
            Self::Ok {
                total,
                before,
                acknowledged,
            }
        } else {
            Self::Mismatch {
                total,
                before,
                acknowledged,
            }
        }
    }

    /// True when the check was made and the tally matched.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok { .. })
    }
}

/// Durations in nanoseconds, to three significant figures.
#[derive(Debug, Clone)]
pub(crate) struct Latencies(Histogram<u64>);

impl Latencies {
    pub(crate) fn new() -> Self {
        // Auto-resizing from 1 ns: three significant figures is in range.
        Self(Histogram::new(3).expect("3 significant figures are supported"))
    }

    pub(crate) fn record(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        // `record` grows the histogram to fit; only a value beyond what any
        // histogram can hold is clamped.
        if self.0.record(nanos).is_err() {
            self.0.saturating_record(nanos);
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        // Both auto-resize, so adding cannot run out of range; were it to,
        // the other's samples are recorded one bucket at a time instead.
        if self.0.add(&other.0).is_err() {
            for bucket in other.0.iter_recorded() {
                self.0
                    .saturating_record_n(bucket.value_iterated_to(), bucket.count_at_value());
            }
        }
    }

    pub(crate) fn summary(&self) -> Option<LatencySummary> {
        if self.0.is_empty() {
            return None;
        }
        let at = |quantile: f64| Duration::from_nanos(self.0.value_at_quantile(quantile));
        Some(LatencySummary {
            count: self.0.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: Duration::from_nanos(self.0.max()),
        })
    }
}

/// Delivery delays over all (vote, watcher) pairs, as the module docs
/// define them.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) latencies: Latencies,
    pub(crate) pairs: u64,
    pub(crate) never_arrived: u64,
}

/// For each watcher, walks the acknowledgements (sorted by time) and the
/// watcher's arrivals (rising ids) together: vote k is covered by the first
/// arrival with id ≥ baseline + k. Linear in votes plus arrivals per watcher.
pub(crate) fn delivery(acks: &[Instant], watchers: &[WatcherRecord], fallback: u64) -> Delivery {
    let mut result = Delivery {
        latencies: Latencies::new(),
        pairs: 0,
        never_arrived: 0,
    };
    for watcher in watchers {
        let baseline = watcher.baseline.unwrap_or(fallback);
        let mut next = 0;
        for (index, acked_at) in acks.iter().enumerate() {
            let needed = baseline.saturating_add(index as u64 + 1);
            while watcher
                .arrivals
                .get(next)
                .is_some_and(|&(id, _)| id < needed)
            {
                next += 1;
            }
            result.pairs += 1;
            match watcher.arrivals.get(next) {
                Some(&(_, arrived_at)) => result
                    .latencies
                    .record(arrived_at.saturating_duration_since(*acked_at)),
                None => result.never_arrived += 1,
            }
        }
    }
    result
}

/// Assembles the vote phase's report from its raw records.
pub(crate) fn vote_report(
    ballots: &[String],
    created: bool,
    voted: Voted,
    elapsed: Duration,
    watched: Vec<WatcherRecord>,
    fallback_baseline: u64,
    tally: TallyCheck,
) -> VoteReport {
    let delivery = delivery(&voted.acks, &watched, fallback_baseline);
    let mut watcher_errors = BTreeMap::new();
    let watchers = watched
        .iter()
        .map(|watcher| {
            for (kind, count) in &watcher.errors {
                *watcher_errors.entry(kind.clone()).or_insert(0) += count;
            }
            WatcherSummary {
                connected: watcher.connected,
                first_seq: watcher.first_seq,
                last_seq: watcher.arrivals.last().map(|&(id, _)| id),
                events: watcher.events,
            }
        })
        .collect();
    VoteReport {
        ballot: ballots.first().cloned().unwrap_or_default(),
        ballots: ballots.len(),
        created,
        voters: voted.started,
        acknowledged: voted.acks.len() as u64,
        elapsed,
        post_latency: voted.post_latency.summary(),
        errors: voted.errors,
        watchers,
        watcher_errors,
        delivery: delivery.latencies.summary(),
        delivery_pairs: delivery.pairs,
        never_arrived: delivery.never_arrived,
        tally,
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// A duration in milliseconds with two decimals: latencies here range
/// from tens of microseconds to seconds.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}ms", self.0.as_secs_f64() * 1000.0)
    }
}

fn write_errors(
    f: &mut fmt::Formatter<'_>,
    title: &str,
    errors: &BTreeMap<String, u64>,
) -> fmt::Result {
    let total: u64 = errors.values().sum();
    if total == 0 {
        return writeln!(f, "{title}: none");
    }
    writeln!(f, "{title}: {total}")?;
    let mut by_count: Vec<_> = errors.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    for (kind, count) in by_count {
        writeln!(f, "  {count:>8}  {kind}")?;
    }
    Ok(())
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}  p90 {}  p99 {}  max {}  (n={})",
            Millis(self.p50),
            Millis(self.p90),
            Millis(self.p99),
            Millis(self.max),
            self.count
        )
    }
}

impl fmt::Display for TallyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verdict, relation, total, before, acknowledged) = match self {
            Self::NotMade { reason } => {
                return write!(f, "tally check: NOT MADE ({reason})");
            }
            Self::Ok {
                total,
                before,
                acknowledged,
            } => ("OK", "=", total, before, acknowledged),
            Self::Mismatch {
                total,
                before,
                acknowledged,
            } => ("MISMATCH", "!=", total, before, acknowledged),
        };
        if *before == 0 {
            write!(
                f,
                "tally check: {verdict} {total} {relation} {acknowledged} (server total {relation} votes acknowledged)"
            )
        } else {
            write!(
                f,
                "tally check: {verdict} {total} {relation} {before} + {acknowledged} (server total {relation} total before the run + votes acknowledged)"
            )
        }
    }
}

impl fmt::Display for VoteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let created = if self.created { " (created)" } else { "" };
        match self.ballots {
            0 | 1 => writeln!(f, "ballot: {}{created}", self.ballot)?,
            many => writeln!(f, "ballots: {many}{created}, the first {}", self.ballot)?,
        }
        writeln!(
            f,
            "votes acknowledged: {} of {} voters in {:.2}s: {:.1} votes/s",
            self.acknowledged,
            self.voters,
            self.elapsed.as_secs_f64(),
            self.votes_per_second()
        )?;
        match &self.post_latency {
            Some(latency) => writeln!(f, "vote POST latency: {latency}")?,
            None => writeln!(f, "vote POST latency: no vote acknowledged")?,
        }
        write_errors(f, "vote errors", &self.errors)?;
        if !self.watchers.is_empty() {
            let last: Vec<u64> = self.watchers.iter().filter_map(|w| w.last_seq).collect();
            let seen = match (last.iter().min(), last.iter().max()) {
                (Some(low), Some(high)) if low == high && last.len() == self.watchers.len() => {
                    format!("each ended at seq {low}")
                }
                (Some(low), Some(high)) => {
                    format!("{} ended between seq {low} and {high}", last.len())
                }
                _ => "none saw a tally".to_owned(),
            };
            writeln!(
                f,
                "watchers: {} of {} connected, {seen}",
                self.watchers_connected(),
                self.watchers.len(),
            )?;
            match &self.delivery {
                Some(delivery) => writeln!(f, "watcher delivery: {delivery}")?,
                None => writeln!(f, "watcher delivery: nothing delivered")?,
            }
            writeln!(
                f,
                "watcher pairs: {} (votes x watchers), {} never arrived",
                self.delivery_pairs, self.never_arrived
            )?;
            write_errors(f, "watcher errors", &self.watcher_errors)?;
        }
        writeln!(f, "{}", self.tally)
    }
}

impl fmt::Display for LivezReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "/livez: {} answered in {:.2}s: {:.1} req/s",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests_per_second()
        )?;
        match &self.latency {
            Some(latency) => writeln!(f, "/livez latency: {latency}")?,
            None => writeln!(f, "/livez latency: no answer")?,
        }
        write_errors(f, "/livez errors", &self.errors)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "oponn simulate: {} at concurrency {}",
            self.url, self.concurrency
        )?;
        if let Some(votes) = &self.votes {
            write!(f, "{votes}")?;
        }
        if let Some(livez) = &self.livez {
            write!(f, "{livez}")?;
        }
        if let Some(ratio) = self.vote_to_livez_ratio() {
            writeln!(
                f,
                "votes/s is {:.1}% of /livez req/s at the same concurrency",
                ratio * 100.0
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watcher(baseline: Option<u64>, arrivals: Vec<(u64, Instant)>) -> WatcherRecord {
        WatcherRecord {
            connected: true,
            baseline,
            first_seq: baseline,
            events: arrivals.len() as u64,
            arrivals,
            errors: BTreeMap::new(),
        }
    }

    #[test]
    fn a_coalesced_event_covers_every_vote_up_to_its_id() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let acks = [ms(10), ms(20), ms(30)];
        // The watcher was shown seq 5 before the run; one event (seq 7)
        // covered votes 1 and 2, the next (seq 8) vote 3.
        let watchers = [watcher(Some(5), vec![(5, ms(0)), (7, ms(25)), (8, ms(31))])];
        let result = delivery(&acks, &watchers, 0);
        assert_eq!(result.pairs, 3);
        assert_eq!(result.never_arrived, 0);
        let summary = result.latencies.summary().unwrap();
        assert_eq!(summary.count, 3);
        // Delays 15, 5 and 1 ms, to three significant figures.
        assert!(summary.max >= Duration::from_micros(14_990), "{summary:?}");
        assert!(summary.max <= Duration::from_micros(15_010), "{summary:?}");
    }

    #[test]
    fn votes_never_shown_are_counted_and_early_events_count_as_zero() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let acks = [ms(10), ms(20)];
        // Arrived before its acknowledgement returned: a zero delay. The
        // second vote never arrived. The second watcher has no baseline of
        // its own and falls back to the tally read before the run.
        let watchers = [
            watcher(Some(0), vec![(0, ms(0)), (1, ms(5))]),
            watcher(None, vec![(3, ms(30))]),
        ];
        let result = delivery(&acks, &watchers, 1);
        assert_eq!(result.pairs, 4);
        assert_eq!(result.never_arrived, 1);
        let summary = result.latencies.summary().unwrap();
        assert_eq!(summary.count, 3);
        // Delays 0, 10 and 20 ms, to three significant figures.
        let near = |value: Duration, ms: u64| {
            value.abs_diff(Duration::from_millis(ms)) <= Duration::from_micros(20)
        };
        assert!(near(summary.p50, 10), "{summary:?}");
        assert!(near(summary.max, 20), "{summary:?}");
    }

    #[test]
    fn the_tally_check_accounts_for_votes_before_the_run() {
        let reading = |total| {
            Ok(TallyReading {
                total,
                seq: Some(total),
            })
        };
        let check = TallyCheck::new(reading(0), reading(40), true, 40);
        assert!(check.is_ok());
        assert!(check.to_string().starts_with("tally check: OK 40 = 40"));

        let check = TallyCheck::new(reading(10), reading(49), false, 40);
        assert_eq!(
            check,
            TallyCheck::Mismatch {
                total: 49,
                before: 10,
                acknowledged: 40
            }
        );
        assert!(
            check
                .to_string()
                .starts_with("tally check: MISMATCH 49 != 10 + 40")
        );

        let check = TallyCheck::new(reading(0), Err("404 Not Found".to_owned()), false, 0);
        assert!(!check.is_ok());
        assert!(check.to_string().contains("NOT MADE (404 Not Found)"));
    }

    #[test]
    fn merged_latencies_keep_every_sample() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record(Duration::from_micros(100));
        b.record(Duration::from_secs(3));
        b.record(Duration::ZERO);
        a.merge(&b);
        let summary = a.summary().unwrap();
        assert_eq!(summary.count, 3);
        assert!(summary.max >= Duration::from_millis(2990));
        assert_eq!(Latencies::new().summary(), None);
    }
}
