//! The floors Oponn's benchmarks measure it against: `bench/run.sh
//! fanout-floor` (live results) and `bench/run.sh vote-floor` (a durable
//! vote on the embedded default).
//!
//! A bare tokio server that does only what delivering one vote to N
//! watchers cannot avoid: it holds N loopback connections open and, when a
//! vote arrives, writes one frame of the size Oponn's results frame has to
//! every one of them. No framework, no middleware, no rendering. Given a
//! database file, it first commits each vote to it ([`durable`]) and
//! answers only once the vote is on disk. It answers just enough of
//! Oponn's routes for `oponn simulate` to drive it as it drives Oponn (the
//! same voters, the same watchers, the same timing):
//!
//! - `GET /ballots/{id}/live-results`: an event stream, the current frame
//!   at once, then each new one;
//! - `GET /vote/{id}`: a page of the size of Oponn's vote page, with a
//!   voter cookie, a CSRF field and four options;
//! - `POST /vote/{id}`: commits the vote (with a database), counts it,
//!   writes the frame to every watcher, answers `303`;
//! - `GET /api/v1/ballots/{id}/tally`: `{"seq", "total"}`;
//! - `GET /livez`: `ok`.
//!
//! Usage: `fanout-floor ADDRESS [FRAME_BYTES [DATABASE_FILE]]` (default
//! `127.0.0.1:8095`, 1,741 bytes: Oponn's results frame for a four-option
//! ballot; no database).

mod durable;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Oponn's results frame for a four-option ballot, in bytes.
const DEFAULT_FRAME_BYTES: usize = 1_741;

/// Oponn's vote page for a four-option ballot, in bytes: the floor's
/// page is padded to it, so the kernel copies as much per page load.
const VOTE_PAGE_BYTES: usize = 4_639;

/// The most a request's head and body may take; a longer one is dropped.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What every connection shares: the vote count, the newest frame, the
/// vote page and, with a database, its writer.
struct Floor {
    votes: AtomicU64,
    frames: watch::Sender<Bytes>,
    frame_bytes: usize,
    vote_page: String,
    storage: Option<durable::Votes>,
}

impl Floor {
    /// The frame for tally `seq`, padded to the configured size.
    fn frame(&self, seq: u64) -> Bytes {
        let head = format!("id: {seq}\nevent: results\ndata: ");
        let padding = self.frame_bytes.saturating_sub(head.len() + 2).max(1);
        let mut frame = Vec::with_capacity(head.len() + padding + 2);
        frame.extend_from_slice(head.as_bytes());
        frame.resize(head.len() + padding, b'x');
        frame.extend_from_slice(b"\n\n");
        Bytes::from(frame)
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8095".to_owned());
    let frame_bytes = args
        .next()
        .and_then(|bytes| bytes.parse().ok())
        .unwrap_or(DEFAULT_FRAME_BYTES);
    let storage = match args.next() {
        Some(path) => Some(durable::Votes::open(&path)?),
        None => None,
    };
    let listener = TcpListener::bind(&address).await?;
    let (frames, _) = watch::channel(Bytes::new());
    let floor = Arc::new(Floor {
        votes: AtomicU64::new(0),
        frames,
        frame_bytes,
        vote_page: vote_page(),
        storage,
    });
    floor.frames.send_replace(floor.frame(0));
    println!(
        "fanout-floor listening on http://{address}, {frame_bytes}-byte frames, {}",
        if floor.storage.is_some() {
            "votes committed to SQLite"
        } else {
            "votes in memory"
        }
    );
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        tokio::spawn(serve(Arc::clone(&floor), socket));
    }
}

/// One connection: requests one after another (keep-alive) until it is
/// closed or becomes an event stream.
async fn serve(floor: Arc<Floor>, mut socket: TcpStream) {
    let mut buffer = Vec::with_capacity(2048);
    loop {
        let Some((method, path, body_start, body_end)) =
            read_request(&mut socket, &mut buffer).await
        else {
            return;
        };
        // Only a vote's body is read; every other request's is skipped.
        let option = if method == "POST" {
            buffer.get(body_start..body_end).map_or(1, chosen_option)
        } else {
            1
        };
        buffer.drain(..body_end);
        let answer = match (method.as_str(), path.as_str()) {
            ("GET", path) if path.ends_with("/live-results") => {
                stream(&floor, socket).await;
                return;
            }
            ("GET", "/livez") => page("200 OK", "text/plain", "ok"),
            ("GET", path) if path.starts_with("/vote/") => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Set-Cookie: floor_voter={:016x}; HttpOnly; SameSite=Lax; Path=/\r\n\
                 Content-Length: {}\r\n\r\n{}",
                floor.votes.load(Ordering::Relaxed),
                floor.vote_page.len(),
                floor.vote_page
            ),
            ("POST", path) if path.starts_with("/vote/") => {
                if let Some(storage) = &floor.storage
                    && !storage.cast(option).await
                {
                    let failed = page("500 Internal Server Error", "text/plain", "not stored");
                    if socket.write_all(failed.as_bytes()).await.is_err() {
                        return;
                    }
                    continue;
                }
                let seq = floor.votes.fetch_add(1, Ordering::SeqCst) + 1;
                floor.frames.send_replace(floor.frame(seq));
                let id = path.trim_start_matches("/vote/");
                format!(
                    "HTTP/1.1 303 See Other\r\nLocation: /results/{id}\r\nContent-Length: 0\r\n\r\n"
                )
            }
            ("GET", path) if path.ends_with("/tally") => {
                let seq = floor.votes.load(Ordering::SeqCst);
                page(
                    "200 OK",
                    "application/json",
                    &format!(r#"{{"seq":{seq},"total":{seq}}}"#),
                )
            }
            _ => page("404 Not Found", "text/plain", "not found"),
        };
        if socket.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The vote page: a form with a CSRF field and the ballot's options,
/// padded with a comment to [`VOTE_PAGE_BYTES`].
fn vote_page() -> String {
    let mut page = String::from(
        r#"<form method="post"><input type="hidden" name="X-CSRF-Token" value="floor">"#,
    );
    for option in 1..=durable::OPTIONS {
        page.push_str(&format!(
            r#"<input type="radio" name="option_id" value="{option}">"#
        ));
    }
    page.push_str("</form><!--");
    let padding = VOTE_PAGE_BYTES.saturating_sub(page.len() + 3);
    page.extend(std::iter::repeat_n('x', padding));
    page.push_str("-->");
    page
}

/// The option a vote's form body names (`option_id=N`), 1 when it names
/// none or one the ballot lacks.
fn chosen_option(body: &[u8]) -> i64 {
    std::str::from_utf8(body)
        .ok()
        .and_then(|body| {
            body.split('&')
                .find_map(|field| field.strip_prefix("option_id="))
        })
        .and_then(|option| option.parse().ok())
        .filter(|option| (1..=durable::OPTIONS).contains(option))
        .unwrap_or(1)
}

/// A whole answer with `body`.
fn page(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Holds the connection as an event stream: the current frame at once,
/// then each new one, until the watcher leaves.
async fn stream(floor: &Floor, mut socket: TcpStream) {
    let mut frames = floor.frames.subscribe();
    let head =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
    let first = frames.borrow_and_update().clone();
    if socket.write_all(head).await.is_err() || socket.write_all(&first).await.is_err() {
        return;
    }
    while frames.changed().await.is_ok() {
        let frame = frames.borrow_and_update().clone();
        if socket.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Reads one request into `buffer`: its method, its path without the
/// query, and where its body starts and ends. `None` when the connection
/// closes or the request is malformed or too large.
async fn read_request(
    socket: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, String, usize, usize)> {
    loop {
        if let Some(head_end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = std::str::from_utf8(buffer.get(..head_end)?).ok()?;
            let mut lines = head.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let method = first.next()?.to_owned();
            let path = first.next()?.split('?').next()?.to_owned();
            let length: usize = lines
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse().ok())
                .unwrap_or(0);
            let body_start = head_end.checked_add(4)?;
            let body_end = body_start.checked_add(length)?;
            if body_end > MAX_REQUEST_BYTES {
                return None;
            }
            while buffer.len() < body_end {
                if !read_more(socket, buffer).await {
                    return None;
                }
            }
            return Some((method, path, body_start, body_end));
        }
        if buffer.len() > MAX_REQUEST_BYTES || !read_more(socket, buffer).await {
            return None;
        }
    }
}

/// Appends what the socket has to `buffer`; false when it closed.
async fn read_more(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(read) => {
            buffer.extend_from_slice(chunk.get(..read).unwrap_or_default());
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{VOTE_PAGE_BYTES, chosen_option, durable, vote_page};

    #[test]
    fn the_vote_page_is_oponns_size_and_offers_every_option() {
        let page = vote_page();
        assert_eq!(page.len(), VOTE_PAGE_BYTES);
        assert!(page.contains(r#"name="X-CSRF-Token" value="floor""#));
        for option in 1..=durable::OPTIONS {
            assert!(page.contains(&format!(r#"name="option_id" value="{option}""#)));
        }
        assert!(page.ends_with("-->"));
    }

    #[test]
    fn a_vote_names_one_of_the_ballots_options_or_counts_for_the_first() {
        assert_eq!(chosen_option(b"X-CSRF-Token=floor&option_id=4"), 4);
        assert_eq!(chosen_option(b"option_id=2&X-CSRF-Token=floor"), 2);
        assert_eq!(chosen_option(b"option_id=5"), 1);
        assert_eq!(chosen_option(b"option_id=0"), 1);
        assert_eq!(chosen_option(b"option_id=-1"), 1);
        assert_eq!(chosen_option(b"option_id=99999999999999999999"), 1);
        assert_eq!(chosen_option(b"X-CSRF-Token=floor"), 1);
        assert_eq!(chosen_option(&[0xff, 0xfe]), 1);
    }
}
