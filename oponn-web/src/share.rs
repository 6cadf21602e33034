//! Sharing a ballot: the absolute links that leave the site (copied,
//! scanned, previewed in chat apps) and the QR code of the vote link.

use poem::http::HeaderMap;
use poem::http::header::HOST;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::state::AppState;

/// The longest `Host` header a page turns into a link; a longer one is
/// not a name this service answers to.
const MAX_HOST_LENGTH: usize = 255;

/// Where people reach this service, as `scheme://host[:port]`, for links
/// that leave the site: `OPONN_PUBLIC_URL` when set, else the request's own
/// `Host` (over `https` in staging and production, which sit behind TLS).
/// A `Host` that is not a plain host name and port falls back to
/// `localhost`, so no header can put markup or another scheme into a link.
pub(crate) fn public_origin(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let scheme = if state.secure_cookies {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| is_host(host))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Whether `host` is a host name or address, with an optional port, and
/// nothing else.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LENGTH
        && host.bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b':' | b'[' | b']')
        })
}

/// Smallest side of a QR code's drawing, in SVG user units: the `<img>`
/// that shows it scales it to fit.
const QR_MIN_SIDE: u32 = 256;

/// The QR code of `text` as an SVG document: black modules on white with
/// the standard quiet zone, error correction level M (a code still reads
/// with 15 % of it smudged or covered). `None` when `text` is too long for
/// any QR code (about 2,300 bytes at level M; a vote link is under 100).
pub(crate) fn qr_svg(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render()
            .min_dimensions(QR_MIN_SIDE, QR_MIN_SIDE)
            .quiet_zone(true)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_and_ports_only() {
        for good in [
            "localhost",
            "127.0.0.1:8000",
            "vote.example.org",
            "[::1]:8000",
        ] {
            assert!(is_host(good), "{good}");
        }
        let long = "a".repeat(MAX_HOST_LENGTH + 1);
        for bad in [
            "",
            "evil.example/path",
            "a\"b",
            "<script>",
            "host name",
            "user@host",
            long.as_str(),
        ] {
            assert!(!is_host(bad), "{bad}");
        }
        assert!(is_host(&"a".repeat(MAX_HOST_LENGTH)));
    }

    #[test]
    fn a_qr_code_is_an_svg_and_too_long_a_text_is_none() {
        let svg = qr_svg("http://127.0.0.1:8000/vote/01JDQ6Y3V4M6P9T2W8X0Z5K7RB").unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("#000000") && svg.contains("#ffffff"));
        assert!(qr_svg(&"x".repeat(10_000)).is_none());
    }
}
