//! The load tool behind `oponn simulate`, for any server that exposes
//! Oponn's routes: many browsers voting through the pages, watchers holding
//! the live results open over Server-Sent Events, latencies, and a check
//! that the server's tally equals the votes it acknowledged.
//!
//! It is its own crate because it is a client: it shares no code with the
//! server and brings dependencies (an HTML parser, an SSE decoder,
//! histograms) that no server code needs. The `oponn` binary only parses
//! [`SimulateArgs`] and calls [`run`].
//!
//! ```no_run
//! # async fn load() -> Result<(), oponn_simulate::SimulateError> {
//! use clap::Parser as _;
//! use oponn_simulate::{Progress, SimulateArgs, measure};
//!
//! let args = SimulateArgs::parse_from(["simulate", "--voters", "100", "--watchers", "10"]);
//! let report = measure(&args, Progress::Off).await?;
//! assert!(report.passed(), "{report}");
//! # Ok(()) }
//! ```
//!
//! It acts like many browsers at once. Each simulated voter is a fresh
//! browser with no cookies: it loads `/vote/{id}`, keeps the cookies the
//! page sets, takes the CSRF token and one option (uniformly at random)
//! from the HTML, and posts the form with those cookies without following
//! the redirect, exactly as a person's browser would. The voters of one
//! worker take turns on its keep-alive connection, as visitors do behind a
//! reverse proxy (`--fresh-connections` gives each its own connection). So
//! it measures the whole page path, and it works against any
//! implementation of Oponn's routes. Watchers hold the live results stream
//! (`/ballots/{id}/live-results`) open and note when each tally arrives.
//! At the end the tool reads the server's tally and checks that it equals
//! the number of votes it saw acknowledged.
//!
//! [`run`] measures and prints; [`measure`] only measures and returns a
//! [`Report`], whose `Display` is the printed summary, so tests assert on
//! figures rather than text.
//!
//! With `--target livez` the same workers hammer `GET /livez` instead, and
//! with `--target both` they do so right after the votes, for as long as
//! the votes took: the ratio of votes/s to `/livez` req/s at the same
//! concurrency, from one run of one tool, is the figure that says how
//! close the vote path is to what the server and machine can do at all.
//!
//! # What counts
//!
//! - A vote is *acknowledged* when its `POST /vote/{id}` answers `303`, or
//!   `204` with an `HX-Redirect` header. Anything else is an error, counted
//!   by kind: the step and HTTP status, with the refusal shown in the
//!   page's `.alert-error` when there is one, or the transport failure
//!   (connect, timeout). A vote already sent is never abandoned, even when
//!   `--duration` runs out, so no vote can be recorded unseen.
//! - *Vote POST latency* is the POST alone (not the page load before it),
//!   from sending it to its answer's headers, over acknowledged votes.
//!
//! # Watcher delivery
//!
//! Event ids on the live results stream are the tally's sequence number,
//! which grows by one per vote, and a burst of votes may be coalesced into
//! one event carrying the latest tally. So the tool cannot tell which vote
//! an event "is"; it can tell when a watcher first knew of *at least k*
//! votes. Number the acknowledged votes 1, 2, … in the order their POSTs
//! returned, and let `b` be the sequence number a watcher was shown before
//! voting began (its first event; else the tally read before the run).
//! Then the delivery delay of vote k at watcher w is
//!
//! > (the time w first received an event with id ≥ b + k) − (the time the
//! > k-th acknowledgement returned),
//!
//! taken as zero when the event came first (the server may publish before
//! the client reads its own answer). The report gives p50/p99/max over all
//! (vote, watcher) pairs, and how many pairs never arrived before the
//! watchers were stopped: once every connected watcher has seen the last
//! vote, or `--settle` after the last vote. This is exact only when this
//! tool is the ballot's only voter during the run: anyone else's vote
//! shifts the numbering.
//!
//! # Layout
//!
//! - `lib.rs`: [`SimulateArgs`], [`Target`], [`SimulateError`], and
//!   [`run`]/[`measure`], which run the phases in order.
//! - `http`: HTTP clients, the cookies a page sets, and how a failed
//!   request is named.
//! - `page`: what the tool reads from HTML: the CSRF token and option ids
//!   (lol_html's streaming selectors), refusal messages (`scraper`).
//! - `setup`: creating a ballot (the form, else the JSON API) and reading
//!   its tally.
//! - `voter`: the voters, `--concurrency` of them at a time.
//! - `watcher`: SSE watchers and when each tally reached them; the
//!   `text/event-stream` framing is decoded by `sse-stream` (memchr-based:
//!   at thousands of watchers the tool shares the machine's cores with the
//!   server, so its cost per event matters).
//! - `livez`: the `/livez` baseline.
//! - `report`: [`Report`] and its parts, percentiles, the delivery
//!   computation, and the summary text.
//! - `progress`: the progress line on standard error.
#![forbid(unsafe_code)]

mod http;
mod livez;
mod page;
mod progress;
mod report;
mod setup;
mod voter;
mod watcher;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

pub use progress::Progress;
pub use report::{LatencySummary, LivezReport, Report, TallyCheck, VoteReport, WatcherSummary};

use progress::Live;

/// How long the `/livez` phase lasts when neither `--duration` nor a vote
/// phase says otherwise.
const DEFAULT_LIVEZ_DURATION: Duration = Duration::from_secs(10);

/// The shortest `/livez` phase `--target both` runs, so a quick vote phase
/// still gets a meaningful baseline.
const MIN_LIVEZ_DURATION: Duration = Duration::from_secs(1);

/// How long voting waits for every watcher to connect and receive the
/// current tally before it starts anyway.
const WATCHERS_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The most ballots `--ballots` creates for one run: enough to spread a
/// load the way many small votes at once do, few enough that creating
/// them (two requests each) stays a small part of any run.
pub const MAX_BALLOTS: u32 = 1000;

/// Load a running Oponn like many browsers at once, and report.
///
/// Exits 1 when the server's tally differs from the number of
/// acknowledged votes, 2 when the run could not start.
#[derive(Debug, Clone, Parser)]
#[command(name = "simulate")]
pub struct SimulateArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// The ballot to vote on; without it, one is created (through the
    /// create form, else the JSON API). An id may begin with `-`.
    #[arg(long, allow_hyphen_values = true)]
    pub ballot: Option<String>,
    /// How many ballots to create and spread the voters over, in turn
    /// (voter k votes on ballot k mod n), instead of one; at most
    /// [`MAX_BALLOTS`]. The tally check then sums them all. Watchers time
    /// one ballot's tallies, so they are not combined with it.
    #[arg(
        long,
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BALLOTS)),
        conflicts_with_all = ["ballot", "watchers"],
    )]
    pub ballots: u32,
    /// How many voters, each a fresh browser casting one vote.
    #[arg(long, default_value_t = 1000)]
    pub voters: u64,
    /// How many voters (or `/livez` requests) are in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// How many watchers hold the live results stream open.
    #[arg(long, default_value_t = 0)]
    pub watchers: u32,
    /// Stop starting voters after this long (e.g. `30s`, `2m`); in-flight
    /// votes still finish. For `--target livez`, how long to run.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// The options of a created ballot, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "alpha,beta,gamma,delta")]
    pub options: Vec<String>,
    /// What to load: votes, `/livez`, or both (`/livez` right after the
    /// votes, for as long as they took).
    #[arg(long, value_enum, default_value_t = Target::Votes)]
    pub target: Target,
    /// How long one request may take before it counts as a timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// How long watchers may take, after the last vote, to receive it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub settle: Duration,
    /// The path the floor baseline requests (`--target livez` or `both`):
    /// Oponn's `/livez`; for a server without it, its cheapest page (the
    /// original service: `/partials/start-time-input?start_time_type=now`).
    #[arg(long, default_value = livez::DEFAULT_FLOOR_PATH)]
    pub floor_path: String,
    /// Give every voter a new connection, as separate browsers would have,
    /// instead of letting each worker's voters take turns on one
    /// keep-alive connection, as visitors do behind a reverse proxy.
    #[arg(long)]
    pub fresh_connections: bool,
}

/// What a run loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Voters (and watchers) on one ballot, or voters on several
    /// (`--ballots`).
    Votes,
    /// `GET /livez`: the server's floor cost per request.
    Livez,
    /// Votes, then `/livez` for as long as the votes took.
    Both,
}

impl Target {
    fn votes(self) -> bool {
        matches!(self, Self::Votes | Self::Both)
    }

    fn livez(self) -> bool {
        matches!(self, Self::Livez | Self::Both)
    }
}

/// Why a run could not be made at all. Everything the server does wrong
/// during a run is counted in the [`Report`] instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulateError {
    /// `--url` is not an `http` or `https` base URL.
    #[error("--url {url}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Watchers were asked for on a run over several ballots: they time
    /// one ballot's tallies against every acknowledged vote.
    #[error("--watchers cannot be combined with --ballots above 1: watchers time one ballot")]
    WatchersOnManyBallots,
    /// `--ballots` asked for more than [`MAX_BALLOTS`] (or for none).
    #[error("--ballots {0}: between 1 and {MAX_BALLOTS}")]
    BallotCount(u32),
    /// No ballot was given and none could be created.
    #[error("cannot create a ballot: through the form, {form}; through the JSON API, {api}")]
    CreateBallot {
        /// What went wrong with `POST /create`.
        form: String,
        /// What went wrong with `POST /api/v1/ballots`.
        api: String,
    },
}

/// Runs the load described by `args` with a progress line on standard
/// error, prints the summary on standard output, and returns the report.
///
/// # Errors
///
/// [`SimulateError`] when the run cannot start; see [`measure`].
pub async fn run(args: SimulateArgs) -> Result<Report, SimulateError> {
    let report = measure(&args, Progress::Stderr).await?;
    print!("{report}");
    Ok(report)
}

/// Runs the load described by `args` and returns what was measured,
/// printing nothing but the progress line `progress` asks for.
///
/// # Errors
///
/// [`SimulateError::Url`] for a URL that is not an HTTP base,
/// [`SimulateError::Client`] when no HTTP client can be built, and
/// [`SimulateError::CreateBallot`] when no ballot was given and none could
/// be created. A server that misbehaves during the run is not an error:
/// its failures are counted in the report.
pub async fn measure(args: &SimulateArgs, progress: Progress) -> Result<Report, SimulateError> {
    let base = base_url(&args.url)?;
    let mut report = Report {
        url: base.to_string(),
        target: args.target,
        concurrency: args.concurrency,
        votes: None,
        livez: None,
    };
    if args.target.votes() {
        report.votes = Some(vote_phase(&base, args, progress).await?);
    }
    if args.target.livez() {
        let duration = match (&report.votes, args.duration) {
            (Some(votes), _) => votes.elapsed.max(MIN_LIVEZ_DURATION),
            (None, Some(duration)) => duration,
            (None, None) => DEFAULT_LIVEZ_DURATION,
        };
        let live = Arc::new(Live::new(0));
        let ticker = progress.start("/livez", Arc::clone(&live));
        let livez = livez::run(
            &base,
            &args.floor_path,
            args.concurrency,
            duration,
            args.timeout,
            &live,
        )
        .await;
        ticker.stop().await;
        report.livez = Some(livez?);
    }
    Ok(report)
}

/// Creates the ballot if needed, connects the watchers, votes, lets the
/// watchers catch up, and checks the tally.
async fn vote_phase(
    base: &Url,
    args: &SimulateArgs,
    progress: Progress,
) -> Result<VoteReport, SimulateError> {
    if args.ballots == 0 || args.ballots > MAX_BALLOTS {
        return Err(SimulateError::BallotCount(args.ballots));
    }
    if args.ballots > 1 && args.watchers > 0 {
        return Err(SimulateError::WatchersOnManyBallots);
    }
    let (ballots, created) = match &args.ballot {
        Some(id) => (vec![id.trim().to_owned()], false),
        None => {
            let mut ballots = Vec::new();
            for _ in 0..args.ballots {
                ballots.push(setup::create_ballot(base, &args.options, args.timeout).await?);
            }
            (ballots, true)
        }
    };
    // The ballot watchers watch: the only one whenever there are watchers.
    let ballot = ballots.first().cloned().unwrap_or_default();
    let client = http::pooled(args.timeout).map_err(SimulateError::Client)?;
    let before = setup::read_total(&client, base, &ballots).await;

    let live = Arc::new(Live::new(args.watchers));
    let stop_watchers = CancellationToken::new();
    let mut watchers = watcher::spawn(
        base,
        &ballot,
        args.watchers,
        args.timeout,
        &live,
        &stop_watchers,
    );
    if args.watchers > 0 {
        let connecting = Instant::now();
        progress.note(&format!("connecting {} watchers…", args.watchers));
        watchers.wait_ready(WATCHERS_READY_TIMEOUT).await;
        progress.note(&format!(
            "{} of {} watchers connected in {:.1}s",
            live.watchers_connected.load(Ordering::Relaxed),
            args.watchers,
            connecting.elapsed().as_secs_f64()
        ));
    }

    let ticker = progress.start("votes", Arc::clone(&live));
    let started = Instant::now();
    let plan = voter::Plan {
        base: base.clone(),
        ballots: ballots.clone(),
        voters: args.voters,
        concurrency: args.concurrency,
        deadline: args.duration.map(|duration| started + duration),
        timeout: args.timeout,
        fresh_connections: args.fresh_connections,
    };
    let voted = voter::run(plan, &live).await;
    let elapsed = started.elapsed();

    let fallback_baseline = before.as_ref().map_or(0, |tally| tally.seq.unwrap_or(0));
    let acknowledged = voted.acks.len() as u64;
    watchers
        .settle(started, fallback_baseline, acknowledged, args.settle)
        .await;
    ticker.stop().await;
    stop_watchers.cancel();
    let watched = watchers.join(started).await;

    let after = setup::read_total(&client, base, &ballots).await;
    let tally = TallyCheck::new(before, after, created, acknowledged);
    Ok(report::vote_report(
        &ballots,
        created,
        voted,
        elapsed,
        watched,
        fallback_baseline,
        tally,
    ))
}

/// `url` as a base that paths can be appended to: `http(s)`, ending in `/`.
fn base_url(url: &str) -> Result<Url, SimulateError> {
    let invalid = |reason: String| SimulateError::Url {
        url: url.to_owned(),
        reason,
    };
    let mut base = Url::parse(url.trim()).map_err(|error| invalid(error.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err(invalid("not an http or https URL".to_owned()));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.set_query(None);
    base.set_fragment(None);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_gain_a_trailing_slash_and_keep_their_path() {
        let base = base_url("http://127.0.0.1:8000").unwrap();
        assert_eq!(base.as_str(), "http://127.0.0.1:8000/");
        let base = base_url("https://example.test/oponn?x=1").unwrap();
        assert_eq!(base.as_str(), "https://example.test/oponn/");
        assert_eq!(
            http::endpoint(&base, &["vote", "abc"]).as_str(),
            "https://example.test/oponn/vote/abc"
        );
    }

    #[test]
    fn non_http_urls_are_refused() {
        assert!(matches!(
            base_url("ftp://example.test"),
            Err(SimulateError::Url { .. })
        ));
        assert!(matches!(
            base_url("not a url"),
            Err(SimulateError::Url { .. })
        ));
    }

    #[test]
    fn a_ballot_id_that_begins_with_a_hyphen_is_an_id_not_a_flag() {
        let args = SimulateArgs::try_parse_from(["simulate", "--ballot", "-x3Pg7LV_Zdf_EcMFiewAb"])
            .unwrap();
        assert_eq!(args.ballot.as_deref(), Some("-x3Pg7LV_Zdf_EcMFiewAb"));
    }

    #[test]
    fn the_command_line_parses_with_defaults() {
        let args = SimulateArgs::try_parse_from([
            "simulate",
            "--voters",
            "5",
            "--duration",
            "30s",
            "--options",
            "yes,no",
        ])
        .unwrap();
        assert_eq!(args.url, "http://127.0.0.1:8000");
        assert_eq!(args.voters, 5);
        assert_eq!(args.concurrency, 32);
        assert_eq!(args.duration, Some(Duration::from_secs(30)));
        assert_eq!(args.options, ["yes", "no"]);
        assert_eq!(args.target, Target::Votes);
        assert!(SimulateArgs::try_parse_from(["simulate", "--concurrency", "0"]).is_err());
    }
}
