//! The voters: `concurrency` workers, each taking the next voter until
//! all have voted or the deadline passes. Every voter is a fresh browser:
//! it starts with no cookies and keeps the ones the vote page sets. A
//! worker's voters take turns on its keep-alive connection, as visitors
//! do behind a reverse proxy, unless `fresh_connections` asks for a new
//! connection per voter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom as _;
use reqwest::header::COOKIE;
use reqwest::{Client, StatusCode, Url};
use tokio::task::JoinSet;

use super::http::{self, endpoint};
use super::page::{self, CSRF_FIELD};
use super::progress::Live;
use super::report::Latencies;

/// What the voters are to do.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) base: Url,
    /// The ballots, taken in turn: voter k votes on ballot k mod their number.
    pub(crate) ballots: Vec<String>,
    /// How many voters in all.
    pub(crate) voters: u64,
    /// How many at once.
    pub(crate) concurrency: u32,
    /// No voter starts after this; those under way finish.
    pub(crate) deadline: Option<Instant>,
    /// Bounds each request.
    pub(crate) timeout: Duration,
    /// A new connection (and HTTP client) per voter instead of one
    /// keep-alive connection per worker.
    pub(crate) fresh_connections: bool,
}

/// What the voters did.
#[derive(Debug)]
pub(crate) struct Voted {
    /// Voters that started.
    pub(crate) started: u64,
    /// When each acknowledgement returned, in time order.
    pub(crate) acks: Vec<Instant>,
    /// The vote POST alone, over acknowledged votes.
    pub(crate) post_latency: Latencies,
    /// Failed votes by kind.
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Voted {
    fn new() -> Self {
        Self {
            started: 0,
            acks: Vec::new(),
            post_latency: Latencies::new(),
            errors: BTreeMap::new(),
        }
    }

    fn absorb(&mut self, other: Self) {
        self.started += other.started;
        self.acks.extend(other.acks);
        self.post_latency.merge(&other.post_latency);
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_insert(0) += count;
        }
    }
}

/// An acknowledged vote.
struct Ack {
    /// The POST, from sending to the answer's headers.
    latency: Duration,
    /// When the answer arrived.
    at: Instant,
}

/// Runs every voter of `plan`, bumping `live` as votes are acknowledged
/// or fail.
pub(crate) async fn run(plan: Plan, live: &Arc<Live>) -> Voted {
    let vote_urls: Arc<[Url]> = plan
        .ballots
        .iter()
        .map(|ballot| endpoint(&plan.base, &["vote", ballot]))
        .collect();
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency {
        workers.spawn(worker(
            Arc::clone(&plan),
            Arc::clone(&vote_urls),
            Arc::clone(&next),
            Arc::clone(live),
        ));
    }
    let mut voted = Voted::new();
    while let Some(worker) = workers.join_next().await {
        match worker {
            Ok(part) => voted.absorb(part),
            // A worker cannot panic on what the server sends; should one
            // fail anyway, the run still reports what the others saw.
            Err(_) => {
                *voted
                    .errors
                    .entry("internal: a voter task failed".to_owned())
                    .or_insert(0) += 1
            }
        }
    }
    voted.acks.sort_unstable();
    voted
}

async fn worker(
    plan: Arc<Plan>,
    vote_urls: Arc<[Url]>,
    next: Arc<AtomicU64>,
    live: Arc<Live>,
) -> Voted {
    let mut voted = Voted::new();
    // The worker's keep-alive client, once made (never, with fresh connections).
    let mut shared: Option<Client> = None;
    loop {
        if plan
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            break;
        }
        let voter = next.fetch_add(1, Ordering::Relaxed);
        if voter >= plan.voters {
            break;
        }
        let Some(vote_url) = ballot_of(voter, &vote_urls) else {
            break;
        };
        voted.started += 1;
        let client = match &shared {
            Some(client) => Ok(Client::clone(client)),
            None => http::pooled(plan.timeout),
        };
        let outcome = match client {
            Ok(client) => {
                if !plan.fresh_connections {
                    shared.get_or_insert_with(|| client.clone());
                }
                vote(vote_url, &client).await
            }
            Err(error) => Err(format!("HTTP client: {}", http::failure("setup", &error))),
        };
        match outcome {
            Ok(ack) => {
                voted.post_latency.record(ack.latency);
                voted.acks.push(ack.at);
                live.count_done();
            }
            Err(kind) => {
                *voted.errors.entry(kind).or_insert(0) += 1;
                live.count_error();
            }
        }
    }
    voted
}

/// The vote page of voter number `voter`: the ballots are taken in
/// turn. `None` only when there are none.
fn ballot_of(voter: u64, vote_urls: &[Url]) -> Option<&Url> {
    let count = u64::try_from(vote_urls.len()).ok().filter(|&n| n > 0)?;
    vote_urls.get(usize::try_from(voter % count).ok()?)
}

/// One voter: a fresh browser loads the vote page, picks an option at
/// random and posts the form with the cookies the page set. `Err` is the
/// error kind.
async fn vote(url: &Url, client: &Client) -> Result<Ack, String> {
    let page = client
        .get(url.clone())
        .send()
        .await
        .map_err(|error| http::failure("GET /vote", &error))?;
    if page.status() != StatusCode::OK {
        let status = page.status();
        let html = page.text().await.unwrap_or_default();
        return Err(http::refused(
            "GET /vote",
            status,
            page::alert(&html).as_deref(),
        ));
    }
    let cookies = http::cookies_set_by(page.headers());
    let html = page
        .text()
        .await
        .map_err(|error| http::failure("GET /vote", &error))?;
    let form = page::vote_form(&html).map_err(|missing| format!("GET /vote: {missing}"))?;
    let option = form
        .option_ids
        .choose(&mut rand::rng())
        .cloned()
        .unwrap_or_default();

    let mut post = client.post(url.clone()).form(&[
        (CSRF_FIELD, form.csrf_token.as_str()),
        ("option_id", option.as_str()),
    ]);
    if let Some(cookies) = cookies {
        post = post.header(COOKIE, cookies);
    }
    let sent = Instant::now();
    let answer = post
        .send()
        .await
        .map_err(|error| http::failure("POST /vote", &error))?;
    let at = Instant::now();
    let status = answer.status();
    let acknowledged = status == StatusCode::SEE_OTHER
        || (status == StatusCode::NO_CONTENT && answer.headers().contains_key("HX-Redirect"));
    if acknowledged {
        return Ok(Ack {
            latency: at.duration_since(sent),
            at,
        });
    }
    let html = answer.text().await.unwrap_or_default();
    Err(http::refused(
        "POST /vote",
        status,
        page::alert(&html).as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_take_the_ballots_in_turn() {
        let urls: Vec<Url> = ["a", "b", "c"]
            .iter()
            .map(|id| Url::parse(&format!("http://127.0.0.1/vote/{id}")).unwrap())
            .collect();
        let ballot = |voter| ballot_of(voter, &urls).map(|url| url.path().to_owned());
        assert_eq!(ballot(0).as_deref(), Some("/vote/a"));
        assert_eq!(ballot(4).as_deref(), Some("/vote/b"));
        assert_eq!(ballot(u64::MAX).as_deref(), Some("/vote/a"));
        assert_eq!(ballot_of(0, &[]), None);
    }
}
