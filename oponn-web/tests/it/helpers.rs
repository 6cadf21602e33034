//! `spawn_app` and a small browser: the tools every test uses.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use oponn_testkit::TestOponn;
use oponn_web::{App, Config, Environment, Secrets, Services, Wiring};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, Response, StatusCode, redirect};
use serde_json::Value;
use tokio::sync::oneshot;

/// How long a test waits for something that must happen before failing.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// A running server on a free port, over the in-memory Oponn and its test clock.
pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) oponn: TestOponn,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub(crate) async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(TestOponn::new(), adjust).await
}

/// A running server over `oponn` (its ports as a test chose them).
pub(crate) async fn spawn_app_on(oponn: TestOponn, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::development();
    config.environment = Environment::Testing;
    config.bind = "127.0.0.1:0".to_owned();
    config.secret_key = Some("an end-to-end test secret of some length".to_owned());
    // Every test sends from one address; the tests of the limits set them.
    config.limits = config.limits.clone().without_rate_limits();
    adjust(&mut config);
    let secrets = Secrets::derive(config.secret_key.as_deref().unwrap()).unwrap();
    let wiring = Wiring {
        storage: "memory".to_owned(),
        coordination: "memory".to_owned(),
        keys: "memory".to_owned(),
    };
    let services = Services {
        ballots: Arc::clone(oponn.service()),
        accounts: Arc::clone(oponn.accounts()),
    };
    let app = App::with_services(&config, &secrets, services, wiring)
        .await
        .unwrap();
    let address = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        oponn,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stops the server as SIGTERM would and waits for it to finish.
    pub(crate) async fn shut_down(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => tokio::time::timeout(DEADLINE, server)
                .await
                .expect("the server stops within the deadline")
                .unwrap(),
            None => Ok(()),
        }
    }

    /// Sends a GET for `path` from `browser`.
    pub(crate) async fn get(&self, browser: &Client, path: &str) -> Response {
        browser.get(self.url(path)).send().await.unwrap()
    }

    /// The body of `path` as `browser` is served it.
    pub(crate) async fn page_text(&self, browser: &Client, path: &str) -> String {
        get_text(browser, &self.url(path)).await
    }

    /// A form post to `path` with `fields` and a valid CSRF token, ready to send.
    pub(crate) async fn form_post(
        &self,
        browser: &Client,
        path: &str,
        fields: &[(&str, &str)],
    ) -> RequestBuilder {
        // Tokens belong to the browser's CSRF cookie, not to a page.
        let token = csrf_token(browser, &self.url("/create")).await;
        let mut form: Vec<(&str, &str)> = vec![("X-CSRF-Token", &token)];
        form.extend_from_slice(fields);
        browser.post(self.url(path)).form(&form)
    }

    /// Closes ballot `id` through the owner's form, as `browser`.
    pub(crate) async fn close_ballot(&self, browser: &Client, id: &str) -> Response {
        self.form_post(browser, &format!("/ballots/{id}/close"), &[])
            .await
            .send()
            .await
            .unwrap()
    }

    /// Creates a ballot through the form and returns its id.
    pub(crate) async fn create_ballot(&self, browser: &Client, fields: &[(&str, &str)]) -> String {
        let response = self
            .form_post(browser, "/create", fields)
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "creating {fields:?}");
        let location = location(&response);
        location
            .strip_prefix("/vote/")
            .expect("redirected to the vote page")
            .to_owned()
    }

    /// Creates a ballot on `measure` with the options "a, b" and returns its id.
    pub(crate) async fn simple_ballot(&self, browser: &Client, measure: &str) -> String {
        self.create_ballot(browser, &[("measure", measure), ("options_raw", "a, b")])
            .await
    }

    /// Votes through the form; returns the response.
    pub(crate) async fn vote(
        &self,
        browser: &Client,
        id: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        self.form_post(browser, &format!("/vote/{id}"), fields)
            .await
            .send()
            .await
            .unwrap()
    }

    /// Votes for `option_id` through the form; returns the response status.
    pub(crate) async fn vote_for(&self, browser: &Client, id: &str, option_id: &str) -> StatusCode {
        self.vote(browser, id, &[("option_id", option_id)])
            .await
            .status()
    }

    /// Opens the event stream at `path`, resuming after `last_event_id` if given.
    pub(crate) async fn event_stream(
        &self,
        browser: &Client,
        path: &str,
        last_event_id: Option<&str>,
    ) -> SseReader {
        let mut request = browser.get(self.url(path));
        if let Some(last) = last_event_id {
            request = request.header("Last-Event-ID", last);
        }
        open_stream(request, path).await
    }

    /// Opens the event stream at `path` as a browser's `EventSource` does,
    /// asking for `text/event-stream`.
    pub(crate) async fn event_stream_accepting_events(
        &self,
        browser: &Client,
        path: &str,
    ) -> SseReader {
        let request = browser
            .get(self.url(path))
            .header("Accept", "text/event-stream");
        open_stream(request, path).await
    }

    /// Opens the live results of ballot `id`, resuming after `last_event_id`
    /// if given; its reader passes over the ballot's `state` events.
    pub(crate) async fn live_results(
        &self,
        browser: &Client,
        id: &str,
        last_event_id: Option<&str>,
    ) -> SseReader {
        self.event_stream(
            browser,
            &format!("/ballots/{id}/live-results"),
            last_event_id,
        )
        .await
        .skipping("state")
    }

    /// Opens the live state of ballot `id`.
    pub(crate) async fn live_state(&self, browser: &Client, id: &str) -> SseReader {
        self.event_stream(browser, &format!("/ballots/{id}/live-state"), None)
            .await
    }
}

/// Sends `request` for the event stream at `path`: `200` and
/// `text/event-stream`, read as events.
async fn open_stream(request: reqwest::RequestBuilder, path: &str) -> SseReader {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert!(
        header(response.headers(), "content-type").starts_with("text/event-stream"),
        "{path}"
    );
    SseReader::new(response)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A fresh browser: its own cookie jar, redirects not followed.
pub(crate) fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) fn location(response: &Response) -> String {
    header(response.headers(), "location")
}

pub(crate) fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The values of every `set-cookie` header of `response`.
pub(crate) fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

/// The body at `url` as text.
pub(crate) async fn get_text(browser: &Client, url: &str) -> String {
    browser.get(url).send().await.unwrap().text().await.unwrap()
}

/// The body at `url` as JSON.
pub(crate) async fn get_json(browser: &Client, url: &str) -> Value {
    browser.get(url).send().await.unwrap().json().await.unwrap()
}

/// Posts `body` as JSON to `url`; returns the response.
pub(crate) async fn post_json(browser: &Client, url: &str, body: &Value) -> Response {
    browser.post(url).json(body).send().await.unwrap()
}

/// Loads `page` and returns the CSRF token of its form.
pub(crate) async fn csrf_token(browser: &Client, page: &str) -> String {
    let html = get_text(browser, page).await;
    hidden_value(&html, "X-CSRF-Token").unwrap_or_else(|| panic!("no CSRF token in {page}"))
}

/// The value of the input named `name`, unescaped.
pub(crate) fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let tag_start = html[..html.find(&marker)?].rfind('<')?;
    let tag_end = tag_start + html[tag_start..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value_start = tag.find("value=\"")? + "value=\"".len();
    let value_end = value_start + tag[value_start..].find('"')?;
    Some(unescape(&tag[value_start..value_end]))
}

pub(crate) fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<String>,
    pub(crate) event: Option<String>,
    pub(crate) data: String,
}

/// Reads server-sent events from a response body.
pub(crate) struct SseReader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// An event type [`next`](Self::next) passes over.
    skipped: Option<&'static str>,
}

impl SseReader {
    pub(crate) fn new(response: Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
            skipped: None,
        }
    }

    /// This reader, passing over events of type `event`.
    pub(crate) fn skipping(mut self, event: &'static str) -> Self {
        self.skipped = Some(event);
        self
    }

    /// The next event (keep-alive comments skipped), failing after [`DEADLINE`].
    pub(crate) async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let event = self.next_event().await;
                if self.skipped.is_none() || event.event.as_deref() != self.skipped {
                    return event;
                }
            }
        })
        .await
        .expect("an event arrives within the deadline")
    }

    async fn next_event(&mut self) -> SseEvent {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        event.event = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if !data.is_empty() {
                    event.data = data.join("\n");
                    return event;
                }
            }
            let chunk = self
                .body
                .next()
                .await
                .expect("the event stream stays open")
                .unwrap();
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Reads until the body ends (the server closed the stream), failing
    /// after [`DEADLINE`].
    pub(crate) async fn until_closed(mut self) {
        tokio::time::timeout(DEADLINE, async {
            while let Some(chunk) = self.body.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        })
        .await
        .expect("the stream closes within the deadline");
    }
}
