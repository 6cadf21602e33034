//! The `/livez` baseline: the same number of workers as the voters, on
//! one pooled client, sending `GET /livez` back to back for a while. What
//! the server answers there is its floor cost per request on this machine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Url};
use tokio::task::JoinSet;

use super::SimulateError;
use super::http::{self, endpoint};
use super::progress::Live;
use super::report::{Latencies, LivezReport};

/// The floor path Oponn serves: its liveness probe.
pub(crate) const DEFAULT_FLOOR_PATH: &str = "/livez";

/// What one worker counted.
struct Counted {
    requests: u64,
    latency: Latencies,
    errors: BTreeMap<String, u64>,
}

/// Sends `GET /livez` from `concurrency` workers for `duration`; requests
/// under way when it ends still finish and count.
///
/// # Errors
///
/// [`SimulateError::Client`] when the HTTP client cannot be built.
pub(crate) async fn run(
    base: &Url,
    path: &str,
    concurrency: u32,
    duration: Duration,
    timeout: Duration,
    live: &Arc<Live>,
) -> Result<LivezReport, SimulateError> {
    let client = http::pooled(timeout).map_err(SimulateError::Client)?;
    let (path_only, query) = path
        .split_once('?')
        .map_or((path, None), |(path, query)| (path, Some(query)));
    let segments: Vec<&str> = path_only
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let mut url = endpoint(base, &segments);
    url.set_query(query);
    let step: Arc<str> = Arc::from(format!("GET {path}"));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        workers.spawn(worker(
            client.clone(),
            url.clone(),
            Arc::clone(&step),
            deadline,
            Arc::clone(live),
        ));
    }
    let mut total = Counted {
        requests: 0,
        latency: Latencies::new(),
        errors: BTreeMap::new(),
    };
    while let Some(worker) = workers.join_next().await {
        match worker {
            Ok(counted) => {
                total.requests += counted.requests;
                total.latency.merge(&counted.latency);
                for (kind, count) in counted.errors {
                    *total.errors.entry(kind).or_insert(0) += count;
                }
            }
            Err(_) => {
                *total
                    .errors
                    .entry("internal: a /livez task failed".to_owned())
                    .or_insert(0) += 1;
            }
        }
    }
    Ok(LivezReport {
        requests: total.requests,
        elapsed: started.elapsed(),
        latency: total.latency.summary(),
        errors: total.errors,
    })
}

async fn worker(
    client: Client,
    url: Url,
    step: Arc<str>,
    deadline: Instant,
    live: Arc<Live>,
) -> Counted {
    let mut counted = Counted {
        requests: 0,
        latency: Latencies::new(),
        errors: BTreeMap::new(),
    };
    while Instant::now() < deadline {
        let sent = Instant::now();
        let outcome = match client.get(url.clone()).send().await {
            Ok(answer) if answer.status().is_success() => match answer.bytes().await {
                Ok(_) => Ok(()),
                Err(error) => Err(http::failure(&step, &error)),
            },
            Ok(answer) => Err(http::refused(&step, answer.status(), None)),
            Err(error) => Err(http::failure(&step, &error)),
        };
        match outcome {
            Ok(()) => {
                counted.latency.record(sent.elapsed());
                counted.requests += 1;
                live.count_done();
            }
            Err(kind) => {
                *counted.errors.entry(kind).or_insert(0) += 1;
                live.count_error();
            }
        }
    }
    counted
}
