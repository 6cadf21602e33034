//! The HTTP/1.1 server: accepts connections under a cap, bounds how long a
//! client may take to send a request's headers, backs off when accepting
//! fails, and drains on shutdown.
//!
//! poem's own `Server` neither caps connections nor times header reads,
//! and retries a failing `accept` in a tight loop (out of descriptors, it
//! spun a core and logged nothing); so the loop is written here, on hyper,
//! and poem serves each request.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, IntoResponse, Request};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::limits::Limits;

/// The first wait after a failed `accept`; it doubles up to
/// [`MAX_ACCEPT_BACKOFF`] while failures continue.
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// The longest wait after a failed `accept`.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How long the refusal of a connection over the cap may take to write.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Refusals being written at once; past this a connection over the cap is
/// closed without a word, so refusing can never itself exhaust descriptors.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// What a connection over the cap reads before it is closed.
const OVER_CAPACITY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\n\
    Content-Length: 53\r\n\r\nOponn is at its connection limit; try again shortly.\n";

/// Serves `endpoint` on `listener` until `shutdown` completes, then stops
/// accepting, asks every connection to finish its current response, and
/// waits up to `grace` for them.
///
/// # Errors
/// When the listener's own address cannot be read.
pub(crate) async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let local_addr = listener.local_addr()?;
    let endpoint = Arc::new(endpoint);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut backoff = MIN_ACCEPT_BACKOFF;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote_addr) = match accepted {
            Ok(accepted) => {
                backoff = MIN_ACCEPT_BACKOFF;
                accepted
            }
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of descriptors or memory: wait for connections to
                // close rather than spin on an accept that keeps failing.
                tracing::warn!(%error, backoff_ms = backoff.as_millis(), "accepting a connection failed; backing off");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            refuse(stream, &refusals);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let endpoint = Arc::clone(&endpoint);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let endpoint = Arc::clone(&endpoint);
            async move {
                let request = Request::from((
                    request,
                    LocalAddr(Addr::SocketAddr(local_addr)),
                    RemoteAddr(Addr::SocketAddr(remote_addr)),
                    Scheme::HTTP,
                ));
                let response = match endpoint.call(request).await {
                    Ok(response) => response.into_response(),
                    Err(error) => error.into_response(),
                };
                Ok::<_, Infallible>(hyper::Response::from(response))
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, peer = %remote_addr, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::info!("connections still open after the shutdown grace period; closing them");
        }
    }
    Ok(())
}

/// Errors `accept` returns for one failed connection (the peer reset it
/// before it was accepted, and so on): the listener itself is fine.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection over the cap with a short `503` and closes it.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            stream.write_all(OVER_CAPACITY_RESPONSE).await?;
            stream.shutdown().await
        })
        .await;
        drop(permit);
    });
}

/// The body of [`OVER_CAPACITY_RESPONSE`], to check its declared length.
#[cfg(test)]
fn over_capacity_body() -> &'static [u8] {
    let split = OVER_CAPACITY_RESPONSE
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(0, |at| at + 4);
    &OVER_CAPACITY_RESPONSE[split..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_declares_its_body_length() {
        let body = over_capacity_body();
        let declared = format!("Content-Length: {}\r\n", body.len());
        assert!(
            OVER_CAPACITY_RESPONSE
                .windows(declared.len())
                .any(|window| window == declared.as_bytes())
        );
    }
}
