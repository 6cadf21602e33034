//! HTTP clients, and the names under which failed requests are counted.

use std::time::Duration;

use cookie::Cookie;
use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};
use reqwest::{Client, StatusCode, Url, redirect};

/// A fresh browser: its own cookie jar and connections; redirects are not
/// followed, so a `303` is seen as the acknowledgement it is. `timeout`
/// bounds each whole request.
pub(crate) fn browser(timeout: Duration) -> reqwest::Result<Client> {
    Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
}

/// A fresh browser for an event stream: like [`browser`], but only the
/// connection is bounded, since the response never ends by itself.
pub(crate) fn streaming_browser(connect_timeout: Duration) -> reqwest::Result<Client> {
    Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .build()
}

/// One client shared by many requests, keeping its connections alive
/// between them: for `/livez` and the tally reads, which carry no identity.
pub(crate) fn pooled(timeout: Duration) -> reqwest::Result<Client> {
    Client::builder()
        .redirect(redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
}

/// The `Cookie` header a browser would send back after an answer with
/// `headers`: every cookie its `Set-Cookie` headers set, as `name=value`
/// pairs. `None` when it set none.
pub(crate) fn cookies_set_by(headers: &HeaderMap) -> Option<HeaderValue> {
    let pairs: Vec<String> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| Cookie::parse(value).ok())
        .map(|cookie| format!("{}={}", cookie.name(), cookie.value()))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    HeaderValue::from_str(&pairs.join("; ")).ok()
}

/// `base` (which ends in `/`) followed by `segments`, each escaped as one
/// path segment.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The error kind of a request at `step` (e.g. `POST /vote`) that got no
/// usable answer.
pub(crate) fn failure(step: &str, error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "broken body"
    } else if error.is_redirect() {
        "bad redirect"
    } else {
        "request failed"
    };
    format!("{step}: {what}")
}

/// The error kind of an answer at `step` with an unexpected `status`, with
/// the message the page showed, if any.
pub(crate) fn refused(step: &str, status: StatusCode, message: Option<&str>) -> String {
    match message {
        Some(message) => format!("{step}: {status}: {message}"),
        None => format!("{step}: {status}"),
    }
}
