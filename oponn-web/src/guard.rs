//! The request guard: what every request passes before a handler sees it.
//!
//! In order: who the client is (the peer, or a trusted proxy's
//! `X-Forwarded-For`); a refusal of state-changing requests a browser sent
//! cross-site; the per-client rate limits of routes that create things;
//! and the body, read under a size cap and a deadline before any handler
//! runs, so no handler ever buffers more than its route allows.

use std::net::IpAddr;
use std::time::Duration;

use poem::error::ReadBodyError;
use poem::http::{Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use serde_json::json;

use crate::html;
use crate::limits::{Limits, MAX_BALLOT_BODY_BYTES, MAX_BODY_BYTES};
use crate::rates::Rate;
use crate::state::AppState;

/// The client a request came from, as the guard decided; handlers read it
/// from the request's data to apply their own rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

/// The custom header that marks an API call as sent by a script, not a
/// plain cross-site form: any header outside the CORS-safelisted set makes
/// a browser ask the server first, which Oponn never grants.
pub(crate) const API_REQUEST_HEADER: &str = "X-Requested-With";

/// What a route is, for the limits that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteKind {
    /// `POST /create`, `POST /api/v1/ballots`.
    CreateBallot,
    /// `GET /ballots/{id}/live-results`, `GET /ballots/{id}/live-state`,
    /// `GET /api/v1/ballots/{id}/tally/stream`.
    OpenStream,
    /// Everything else.
    Other,
}

/// Most path segments a route the guard tells apart has (with the empty
/// one before the first `/`); a longer path is none of them.
const MAX_ROUTE_SEGMENTS: usize = 7;

/// Calls `classify` with `path`'s segments, on the stack: the guard runs on
/// every request, votes included, and needs no allocation to name a route.
fn with_segments<T>(path: &str, longer: T, classify: impl FnOnce(&[&str]) -> T) -> T {
    let mut segments = [""; MAX_ROUTE_SEGMENTS];
    let mut count = 0;
    for segment in path.trim_end_matches('/').split('/') {
        let Some(slot) = segments.get_mut(count) else {
            return longer;
        };
        *slot = segment;
        count += 1;
    }
    classify(&segments[..count])
}

fn route_kind(method: &Method, path: &str) -> RouteKind {
    with_segments(path, RouteKind::Other, |segments| {
        match (method, segments) {
            (&Method::POST, ["", "create"] | ["", "api", "v1", "ballots"]) => {
                RouteKind::CreateBallot
            }
            (&Method::GET, ["", "ballots", _, "live-results" | "live-state"])
            | (&Method::GET, ["", "api", "v1", "ballots", _, "tally", "stream"]) => {
                RouteKind::OpenStream
            }
            _ => RouteKind::Other,
        }
    })
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The API's `POST` operations: create a ballot, vote, close.
fn is_api_write(path: &str) -> bool {
    with_segments(path, false, |segments| {
        matches!(
            segments,
            ["", "api", "v1", "ballots"] | ["", "api", "v1", "ballots", _, "votes" | "close"]
        )
    })
}

/// Methods that change state: everything but the safe ones.
fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Runs the guard, then `endpoint`.
pub(crate) async fn guard<E: Endpoint>(
    state: &AppState,
    endpoint: &E,
    mut request: Request,
) -> poem::Result<Response> {
    let limits = &state.limits;
    let peer = request
        .remote_addr()
        .as_socket_addr()
        .map(|address| address.ip());
    let client = client_addr(peer, request.headers(), &limits.trusted_proxies);
    request.extensions_mut().insert(ClientAddr(client));
    let path = request.uri().path().to_owned();
    let kind = route_kind(request.method(), &path);

    if changes_state(request.method()) {
        if let Some(refusal) = cross_site_refusal(state, &request) {
            return Ok(refuse(state, &path, StatusCode::FORBIDDEN, refusal, None));
        }
        // Only a POST can come from a plain form; other methods already
        // need a preflight cross-site. A POST the API does not take is
        // left to the router's 405.
        if request.method() == Method::POST && is_api_write(&path) && !is_script_request(&request) {
            return Ok(refuse(
                state,
                &path,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "API requests that change anything must send `Content-Type: application/json` \
                 (or an `X-Requested-With` header).",
                None,
            ));
        }
    }

    let rate = match kind {
        RouteKind::CreateBallot => Some(Rate::Ballots),
        RouteKind::OpenStream => Some(Rate::Streams),
        RouteKind::Other => None,
    };
    if let Some(rate) = rate
        && let Err(retry_after) = state.rates.check(rate, client)
    {
        return Ok(too_many_requests(state, &path, rate, retry_after));
    }

    let limit = match kind {
        RouteKind::CreateBallot => MAX_BALLOT_BODY_BYTES,
        _ => MAX_BODY_BYTES,
    };
    if let Err((status, message)) = buffer_body(&mut request, limit, limits).await {
        return Ok(refuse(state, &path, status, message, None));
    }
    endpoint
        .call(request)
        .await
        .map(IntoResponse::into_response)
}

/// Reads the whole body into memory, refusing it (`413`) when it is
/// declared or turns out larger than `limit`, and (`408`) when it takes
/// longer than the body timeout; a body-less request passes untouched.
async fn buffer_body(
    request: &mut Request,
    limit: usize,
    limits: &Limits,
) -> Result<(), (StatusCode, &'static str)> {
    const TOO_LARGE: &str = "The request body is larger than this route accepts.";
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE));
    }
    let body = request.take_body();
    if body.is_empty() {
        request.set_body(body);
        return Ok(());
    }
    match tokio::time::timeout(limits.body_read_timeout, body.into_bytes_limit(limit)).await {
        Ok(Ok(bytes)) => {
            request.set_body(Body::from_bytes(bytes));
            Ok(())
        }
        Ok(Err(ReadBodyError::PayloadTooLarge)) => Err((StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)),
        Ok(Err(_)) => Err((
            StatusCode::BAD_REQUEST,
            "The request body could not be read.",
        )),
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "The request body took too long to arrive.",
        )),
    }
}

/// Why a state-changing request looks cross-site, if it does: the browser's
/// own `Sec-Fetch-Site` when it sends one, else `Origin` against `Host`.
/// Requests with neither (scripts, old browsers) pass: they carry no
/// ambient credentials a page could have forged, or face the CSRF token.
fn cross_site_refusal(state: &AppState, request: &Request) -> Option<&'static str> {
    const CROSS_SITE: &str = "This request came from another site, so it was refused. \
         Open Oponn itself and try again.";
    let headers = request.headers();
    if let Some(site) = headers.get("Sec-Fetch-Site") {
        // `none`: the user acted directly (typed the address, a bookmark).
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            _ => Some(CROSS_SITE),
        };
    }
    let origin = headers.get(header::ORIGIN)?;
    let Ok(origin) = origin.to_str() else {
        return Some(CROSS_SITE);
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        // `null` (a sandboxed frame, a redirect chain, a `data:` page) or garbage.
        return Some(CROSS_SITE);
    };
    if state.secure_cookies && !scheme.eq_ignore_ascii_case("https") {
        return Some(CROSS_SITE);
    }
    // Behind a trusted proxy that rewrites `Host`, the host the browser
    // used is the one the proxy forwards.
    let peer_is_proxy = request
        .remote_addr()
        .as_socket_addr()
        .is_some_and(|peer| state.limits.trusted_proxies.contains(&canonical(peer.ip())));
    let forwarded_host = peer_is_proxy
        .then(|| headers.get("X-Forwarded-Host"))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next_back())
        .map(str::trim);
    let host = forwarded_host
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
        })
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    match host {
        Some(host) if host.eq_ignore_ascii_case(authority) => None,
        _ => Some(CROSS_SITE),
    }
}

/// True when a browser could not have sent this request from a plain
/// cross-site form: a JSON body type, or the custom API header.
fn is_script_request(request: &Request) -> bool {
    let headers = request.headers();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        });
    json || headers.contains_key(API_REQUEST_HEADER) || headers.contains_key(header::AUTHORIZATION)
}

/// The client: the peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one.
fn client_addr(
    peer: Option<IpAddr>,
    headers: &poem::http::HeaderMap,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), canonical);
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("X-Forwarded-For")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(address) if trusted_proxies.contains(&canonical(address)) => continue,
            Ok(address) => return canonical(address),
            // A hop the proxy chain did not write: trust nothing before it.
            Err(_) => return peer,
        }
    }
    peer
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// A refusal in the shape of its channel: a JSON problem under `/api/`,
/// an error page elsewhere.
fn refuse(
    state: &AppState,
    path: &str,
    status: StatusCode,
    message: &str,
    retry_after: Option<Duration>,
) -> Response {
    let mut response = if is_api(path) {
        poem::web::Json(json!({ "message": message }))
            .with_status(status)
            .into_response()
    } else {
        let title = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::TOO_MANY_REQUESTS => "slow_down",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_request",
            _ => "request_refused",
        };
        html::error_page(state, status, title, message)
    };
    if let Some(wait) = retry_after {
        // Whole seconds, rounded up: `Retry-After: 0` would invite a storm.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.max(1).into());
    }
    if matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT | StatusCode::BAD_REQUEST
    ) {
        // The body was not read to its end: the connection cannot carry
        // another request.
        response.headers_mut().insert(
            header::CONNECTION,
            poem::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// The `429` of a rate limit, with `Retry-After`.
pub(crate) fn too_many_requests(
    state: &AppState,
    path: &str,
    rate: Rate,
    retry_after: Duration,
) -> Response {
    refuse(
        state,
        path,
        StatusCode::TOO_MANY_REQUESTS,
        rate.message(),
        Some(retry_after),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_longer_than_any_route_is_none_of_them() {
        // The longest route has exactly MAX_ROUTE_SEGMENTS segments.
        assert_eq!(
            route_kind(&Method::GET, "/api/v1/ballots/abc/tally/stream/"),
            RouteKind::OpenStream
        );
        assert_eq!(
            route_kind(&Method::GET, "/api/v1/ballots/abc/tally/stream/more"),
            RouteKind::Other
        );
        assert!(!is_api_write("/api/v1/ballots/abc/votes/x/y/z"));
        assert_eq!(
            route_kind(&Method::POST, &"/x".repeat(10_000)),
            RouteKind::Other
        );
    }

    #[test]
    fn only_the_apis_own_posts_need_a_scripts_request() {
        assert!(is_api_write("/api/v1/ballots"));
        assert!(is_api_write("/api/v1/ballots/abc/votes"));
        assert!(is_api_write("/api/v1/ballots/abc/close"));
        assert!(!is_api_write("/api/v1/ballots/abc"));
        assert!(!is_api_write("/api/v1/ballots/abc/tally"));
        assert!(!is_api_write("/create"));
    }

    #[test]
    fn routes_are_classified_by_method_and_template() {
        assert_eq!(
            route_kind(&Method::POST, "/create"),
            RouteKind::CreateBallot
        );
        assert_eq!(route_kind(&Method::GET, "/create"), RouteKind::Other);
        assert_eq!(
            route_kind(&Method::POST, "/api/v1/ballots"),
            RouteKind::CreateBallot
        );
        assert_eq!(
            route_kind(&Method::GET, "/ballots/abc/live-results"),
            RouteKind::OpenStream
        );
        assert_eq!(
            route_kind(&Method::GET, "/api/v1/ballots/abc/tally/stream"),
            RouteKind::OpenStream
        );
        assert_eq!(
            route_kind(&Method::POST, "/api/v1/ballots/abc/votes"),
            RouteKind::Other
        );
    }

    fn client_of(peer: &str, forwarded: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
        let mut headers = poem::http::HeaderMap::new();
        if let Some(forwarded) = forwarded {
            headers.insert("X-Forwarded-For", forwarded.parse().unwrap());
        }
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        client_addr(Some(peer.ip()), &headers, trusted)
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_of("192.0.2.7:5000", Some("203.0.113.9"), &[proxy]),
            ip("192.0.2.7"),
            "a client cannot name itself"
        );
        assert_eq!(
            client_of("10.0.0.1:5000", Some("198.51.100.1, 203.0.113.9"), &[proxy]),
            ip("203.0.113.9"),
            "the rightmost hop the proxy wrote, not what the client claimed"
        );
        assert_eq!(client_of("10.0.0.1:5000", Some("me"), &[proxy]), proxy);
        assert_eq!(client_of("10.0.0.1:5000", None, &[proxy]), proxy);
        assert_eq!(
            client_of("[::ffff:192.0.2.7]:5000", None, &[]),
            ip("192.0.2.7")
        );
    }
}
