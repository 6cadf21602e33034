//! Sharing a ballot: the absolute links that leave the site (copied,
//! scanned, previewed in chat apps), the link-preview tags every ballot
//! page carries, and the QR code of the vote link.

use poem::http::HeaderMap;
use poem::http::header::HOST;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use oponn_core::domain::Ballot;
use serde::Serialize;

use crate::state::AppState;

/// The most of a ballot's options a link preview lists before "…".
const PREVIEW_DESCRIPTION_CHARS: usize = 160;

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

/// What a chat app shows for a shared link (Open Graph and Twitter card
/// tags): the ballot's question, its options, and this instance's own
/// preview image.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct PreviewView {
    /// The page's absolute address.
    pub(crate) url: String,
    /// The options, listed, cut at [`PREVIEW_DESCRIPTION_CHARS`].
    pub(crate) description: String,
    /// The preview image's absolute address.
    pub(crate) image: String,
}

impl PreviewView {
    /// The preview of `ballot`'s page at `path`.
    pub(crate) fn new(state: &AppState, headers: &HeaderMap, ballot: &Ballot, path: &str) -> Self {
        Self::at(&public_origin(state, headers), ballot, path)
    }

    /// The preview of `ballot`'s page at `path` on `origin`.
    pub(crate) fn at(origin: &str, ballot: &Ballot, path: &str) -> Self {
        // The owner's options only: a write-in is a voter's text, and must
        // not speak for the ballot in the link its owner shares.
        let options = ballot
            .options()
            .iter()
            .filter(|option| !option.is_write_in())
            .map(|option| option.label())
            .collect::<Vec<_>>()
            .join(" · ");
        let mut description = format!("Vote on oponn: {options}. Results update live.");
        if description.chars().count() > PREVIEW_DESCRIPTION_CHARS {
            description = description
                .chars()
                .take(PREVIEW_DESCRIPTION_CHARS - 1)
                .chain(['…'])
                .collect();
        }
        Self {
            url: format!("{origin}{path}"),
            description,
            image: format!("{origin}/static/img/preview.png"),
        }
    }
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
