//! Before and after the load: creating the ballot, reading its tally.

use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};

use super::SimulateError;
use super::http::{self, endpoint};
use super::page::{self, CSRF_FIELD};

/// The question of a ballot the tool creates.
const MEASURE: &str = "oponn simulate: which one?";

/// The voting window of a created ballot, in minutes: one of the create
/// form's choices, long enough for any run.
const WINDOW_MINUTES: u32 = 1440;

/// The most of a refusal's body quoted in an error.
const DETAIL_LIMIT: usize = 200;

/// A ballot's tally as `GET /api/v1/ballots/{id}/tally` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TallyReading {
    /// Votes across all options.
    pub(crate) total: u64,
    /// The tally's sequence number, when the answer has one.
    pub(crate) seq: Option<u64>,
}

/// Creates a ballot with `options` as a browser would, through the create
/// form; if that fails, through the JSON API. Returns its id.
pub(crate) async fn create_ballot(
    base: &Url,
    options: &[String],
    timeout: Duration,
) -> Result<String, SimulateError> {
    let options: Vec<&str> = options
        .iter()
        .map(|option| option.trim())
        .filter(|option| !option.is_empty())
        .collect();
    let browser = http::browser(timeout).map_err(SimulateError::Client)?;
    let form = match through_form(&browser, base, &options).await {
        Ok(id) => return Ok(id),
        Err(form) => form,
    };
    match through_api(&browser, base, &options).await {
        Ok(id) => Ok(id),
        Err(api) => Err(SimulateError::CreateBallot { form, api }),
    }
}

async fn through_form(browser: &Client, base: &Url, options: &[&str]) -> Result<String, String> {
    let url = endpoint(base, &["create"]);
    let page = browser
        .get(url.clone())
        .send()
        .await
        .map_err(|error| http::failure("GET /create", &error))?;
    if page.status() != StatusCode::OK {
        return Err(http::refused("GET /create", page.status(), None));
    }
    let html = page
        .text()
        .await
        .map_err(|error| http::failure("GET /create", &error))?;
    let token = page::csrf_token(&html).ok_or("GET /create: no CSRF token on the page")?;
    // One line of commas: Oponn reads it so, and so does a server that
    // splits only on commas (the original service).
    let options_raw = options.join(",");
    let window = WINDOW_MINUTES.to_string();
    let fields = [
        (CSRF_FIELD, token.as_str()),
        ("measure", MEASURE),
        ("options_raw", options_raw.as_str()),
        ("duration_mins", window.as_str()),
        ("start_time_type", "now"),
    ];
    let answer = browser
        .post(url.clone())
        .form(&fields)
        .send()
        .await
        .map_err(|error| http::failure("POST /create", &error))?;
    let status = answer.status();
    let target = match status {
        StatusCode::SEE_OTHER => answer.headers().get(LOCATION),
        StatusCode::NO_CONTENT => answer.headers().get("HX-Redirect"),
        _ => None,
    };
    if let Some(target) = target {
        let target = target.to_str().unwrap_or_default();
        return ballot_id_in(&url, target)
            .ok_or_else(|| format!("POST /create: redirected to {target:?}, not a vote page"));
    }
    let body = answer.text().await.unwrap_or_default();
    let messages = page::form_errors(&body);
    if messages.is_empty() {
        Err(http::refused("POST /create", status, None))
    } else {
        Err(http::refused(
            "POST /create",
            status,
            Some(&messages.join("; ")),
        ))
    }
}

async fn through_api(browser: &Client, base: &Url, options: &[&str]) -> Result<String, String> {
    const STEP: &str = "POST /api/v1/ballots";
    let body = json!({
        "measure": MEASURE,
        "options": options,
        "window_minutes": WINDOW_MINUTES,
    });
    let answer = browser
        .post(endpoint(base, &["api", "v1", "ballots"]))
        .json(&body)
        .send()
        .await
        .map_err(|error| http::failure(STEP, &error))?;
    let status = answer.status();
    if !status.is_success() {
        let detail = answer.text().await.unwrap_or_default();
        let detail: String = detail.trim().chars().take(DETAIL_LIMIT).collect();
        return Err(http::refused(
            STEP,
            status,
            (!detail.is_empty()).then_some(detail.as_str()),
        ));
    }
    let created: Value = answer
        .json()
        .await
        .map_err(|error| http::failure(STEP, &error))?;
    created
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{STEP}: no id in the answer"))
}

/// The ballot id in a redirect to `/vote/{id}`, resolved against `from`.
fn ballot_id_in(from: &Url, target: &str) -> Option<String> {
    let target = from.join(target).ok()?;
    let mut segments = target.path_segments()?;
    segments.by_ref().find(|segment| *segment == "vote")?;
    segments
        .next()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Reads the ballot's tally through the JSON API; `Err` says why it could
/// not (the route may not exist on another implementation).
pub(crate) async fn read_tally(
    client: &Client,
    base: &Url,
    ballot: &str,
) -> Result<TallyReading, String> {
    match read_api_tally(client, base, ballot).await {
        Ok(tally) => Ok(tally),
        // A server without Oponn's JSON API: the results page shows it.
        Err(api) => read_page_tally(client, base, ballot)
            .await
            .map_err(|page| format!("{api}; {page}")),
    }
}

/// The votes on all of `ballots` together: one ballot's tally as
/// [`read_tally`] reads it, or the sum of several (which has no sequence).
pub(crate) async fn read_total(
    client: &Client,
    base: &Url,
    ballots: &[String],
) -> Result<TallyReading, String> {
    if let [ballot] = ballots {
        return read_tally(client, base, ballot).await;
    }
    let mut total: u64 = 0;
    for ballot in ballots {
        let tally = read_tally(client, base, ballot)
            .await
            .map_err(|error| format!("ballot {ballot}: {error}"))?;
        total = total
            .checked_add(tally.total)
            .ok_or("the ballots' totals add up beyond 2^64")?;
    }
    Ok(TallyReading { total, seq: None })
}

async fn read_api_tally(client: &Client, base: &Url, ballot: &str) -> Result<TallyReading, String> {
    const STEP: &str = "GET /api/v1/ballots/{id}/tally";
    let answer = client
        .get(endpoint(base, &["api", "v1", "ballots", ballot, "tally"]))
        .send()
        .await
        .map_err(|error| http::failure(STEP, &error))?;
    if answer.status() != StatusCode::OK {
        return Err(http::refused(STEP, answer.status(), None));
    }
    let tally: Value = answer
        .json()
        .await
        .map_err(|_| format!("{STEP}: the answer is not JSON"))?;
    let total = tally
        .get("total")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{STEP}: no `total` in the answer"))?;
    Ok(TallyReading {
        total,
        seq: tally.get("seq").and_then(Value::as_u64),
    })
}

/// The tally as the results page renders it ([`page::rendered_total`]).
async fn read_page_tally(
    client: &Client,
    base: &Url,
    ballot: &str,
) -> Result<TallyReading, String> {
    const STEP: &str = "GET /results/{id}";
    let answer = client
        .get(endpoint(base, &["results", ballot]))
        .send()
        .await
        .map_err(|error| http::failure(STEP, &error))?;
    if answer.status() != StatusCode::OK {
        return Err(http::refused(STEP, answer.status(), None));
    }
    let html = answer
        .text()
        .await
        .map_err(|error| http::failure(STEP, &error))?;
    let total =
        page::rendered_total(&html).ok_or_else(|| format!("{STEP}: the page shows no counts"))?;
    Ok(TallyReading { total, seq: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ballot_id_is_read_from_the_redirect() {
        let from = Url::parse("http://127.0.0.1:8000/create").unwrap();
        assert_eq!(
            ballot_id_in(&from, "/vote/AbC-12_x").as_deref(),
            Some("AbC-12_x")
        );
        assert_eq!(
            ballot_id_in(&from, "http://other.test/prefix/vote/xyz?x=1").as_deref(),
            Some("xyz")
        );
        assert_eq!(ballot_id_in(&from, "/results/xyz"), None);
        assert_eq!(ballot_id_in(&from, "/vote/"), None);
    }
}
