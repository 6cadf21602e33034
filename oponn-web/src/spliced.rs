//! Pages rendered once and served many times. A ballot's vote page is the
//! same for every new voter but for two values: the request's CSRF token
//! and the server's clock. [`PageCache`] renders it once with
//! [`Placeholders`] in their place, keeps it split at them as a
//! [`SplicedPage`], and splices each request's values in: rendering the
//! template was the largest part of a vote page's CPU.
//!
//! A page is served from the cache only while everything else it was
//! rendered from is equal to what the request would render it from: the
//! caller hands that over as the entry's key, and a key that differs
//! renders the page anew.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::HtmlEscape;
use oponn_core::domain::{BallotId, VoterId};

/// The most pages a [`PageCache`] keeps (one per ballot and template):
/// a vote page is 10–20 KiB, so at most a few MiB. When full, a new page
/// replaces an arbitrary one.
pub(crate) const MAX_CACHED_PAGES: usize = 256;

/// The values a page is rendered with in place of the per-request ones:
/// random for each process, so no ballot's text can contain them.
#[derive(Debug, Clone)]
pub(crate) struct Placeholders {
    /// Stands for the CSRF token. It has a `/` between two random
    /// URL-safe halves: HTML escaping changes the `/` and JSON does not,
    /// so the page shows which escaping each place applies.
    token: String,
    /// [`Self::token`] as HTML escaping writes it.
    token_html: String,
    /// Stands for the server's clock in Unix milliseconds: 17 random
    /// digits, longer than any time a page shows.
    now_ms: i64,
}

impl Placeholders {
    /// Fresh placeholders from the operating system's random source.
    pub(crate) fn generate() -> Self {
        let (head, tail) = (VoterId::generate(), VoterId::generate());
        let token = format!("{}/{}", head.as_str(), tail.as_str());
        let token_html = HtmlEscape(&token).to_string();
        let random = BallotId::generate();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&random.as_bytes()[..8]);
        const LOWEST: u64 = 10_000_000_000_000_000;
        let now_ms = LOWEST + u64::from_le_bytes(bytes) % (9 * LOWEST);
        Self {
            token,
            token_html,
            // 17 digits fit an i64 with room to spare.
            now_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
        }
    }

    /// What to render in place of the CSRF token.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// What to render in place of the clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.now_ms
    }
}

/// One place a per-request value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The CSRF token, as written (inside JSON the template made).
    Token,
    /// The CSRF token, HTML-escaped.
    TokenHtml,
    /// The server's clock in Unix milliseconds.
    Now,
}

/// A rendered page cut at its placeholders: literal text, then a slot,
/// then literal text, and so on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SplicedPage {
    /// Each slot with the literal text before it.
    parts: Vec<(String, Slot)>,
    /// The literal text after the last slot.
    tail: String,
}

impl SplicedPage {
    /// Cuts `html`, rendered with `placeholders`, at each of them.
    pub(crate) fn parse(html: &str, placeholders: &Placeholders) -> Self {
        let now = placeholders.now_ms.to_string();
        let needles = [
            (placeholders.token.as_str(), Slot::Token),
            (placeholders.token_html.as_str(), Slot::TokenHtml),
            (now.as_str(), Slot::Now),
        ];
        let mut parts = Vec::new();
        let mut rest = html;
        loop {
            let next = needles
                .iter()
                .filter_map(|&(needle, slot)| rest.find(needle).map(|at| (at, needle, slot)))
                .min_by_key(|&(at, _, _)| at);
            let Some((at, needle, slot)) = next else {
                break;
            };
            let (before, after) = rest.split_at(at);
            parts.push((before.to_owned(), slot));
            rest = after.get(needle.len()..).unwrap_or_default();
        }
        Self {
            parts,
            tail: rest.to_owned(),
        }
    }

    /// The page with `token` and `now_ms` in their places; `None` when
    /// `token` cannot be spliced ([`spliceable`]).
    pub(crate) fn splice(&self, token: &str, now_ms: i64) -> Option<String> {
        if !spliceable(token) {
            return None;
        }
        let literal: usize = self.parts.iter().map(|(text, _)| text.len()).sum();
        let mut page = String::with_capacity(literal + self.tail.len() + 64 * self.parts.len());
        for (text, slot) in &self.parts {
            page.push_str(text);
            // Writing to a String cannot fail.
            let _ = match slot {
                Slot::Token => write!(page, "{token}"),
                Slot::TokenHtml => write!(page, "{}", HtmlEscape(token)),
                Slot::Now => write!(page, "{now_ms}"),
            };
        }
        page.push_str(&self.tail);
        Some(page)
    }
}

/// Whether `token` can be spliced into a page: it holds only standard
/// Base64's characters (as CSRF tokens do), which every escaping a
/// template applies leaves as they are but for `/`. A page for any other
/// token is rendered afresh.
pub(crate) fn spliceable(token: &str) -> bool {
    token
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='))
}

/// Which page an entry is: a ballot's, in one template.
type PageOf = (BallotId, &'static str);

/// Rendered pages by ballot and template, each with the key it was
/// rendered from; at most [`MAX_CACHED_PAGES`].
#[derive(Debug)]
pub(crate) struct PageCache<K> {
    placeholders: Placeholders,
    pages: Mutex<HashMap<PageOf, (K, Arc<SplicedPage>)>>,
}

impl<K: PartialEq> PageCache<K> {
    /// An empty cache with fresh placeholders.
    pub(crate) fn new() -> Self {
        Self {
            placeholders: Placeholders::generate(),
            pages: Mutex::new(HashMap::new()),
        }
    }

    /// What pages are rendered with in place of per-request values.
    pub(crate) fn placeholders(&self) -> &Placeholders {
        &self.placeholders
    }

    /// The page of `ballot` in `template` when it was rendered from `key`.
    pub(crate) fn get(
        &self,
        ballot: BallotId,
        template: &'static str,
        key: &K,
    ) -> Option<Arc<SplicedPage>> {
        let pages = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        pages
            .get(&(ballot, template))
            .filter(|(stored, _)| stored == key)
            .map(|(_, page)| Arc::clone(page))
    }

    /// Keeps `page`, rendered from `key`, in place of any earlier page of
    /// `ballot` in `template`.
    pub(crate) fn insert(
        &self,
        ballot: BallotId,
        template: &'static str,
        key: K,
        page: Arc<SplicedPage>,
    ) {
        let mut pages = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        if pages.len() >= MAX_CACHED_PAGES && !pages.contains_key(&(ballot, template)) {
            let evicted = pages.keys().next().copied();
            if let Some(evicted) = evicted {
                pages.remove(&evicted);
            }
        }
        pages.insert((ballot, template), (key, page));
    }

    /// How many pages are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::{Environment, context};

    const TEMPLATE: &str = r#"<body hx-headers='{{ {"X-CSRF-Token": token}|tojson }}'><h1>{{ title }}</h1><input value="{{ token }}"><p data-now="{{ now }}">{{ now }}</p></body>"#;

    fn render(title: &str, token: &str, now: i64) -> String {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.add_template("page.html", TEMPLATE)
            .expect("the template parses");
        env.get_template("page.html")
            .and_then(|template| template.render(context! { title, token, now }))
            .expect("the template renders")
    }

    #[test]
    fn a_spliced_page_is_the_page_rendered_with_the_values() {
        let placeholders = Placeholders::generate();
        for title in ["Lunch?", "<b>&'\"/", "a/b", "1700000000000", "{{ token }}"] {
            let page = SplicedPage::parse(
                &render(title, placeholders.token(), placeholders.now_ms()),
                &placeholders,
            );
            // Every character standard Base64 uses, '/' and '+' included.
            for token in [
                "AbC+/=",
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/==",
                "",
            ] {
                for now in [0, 1_764_000_000_000, i64::MAX, -1] {
                    assert_eq!(page.splice(token, now), Some(render(title, token, now)));
                }
            }
        }
    }

    #[test]
    fn a_token_beyond_base64_is_not_spliced() {
        let placeholders = Placeholders::generate();
        let page = SplicedPage::parse(
            &render("t", placeholders.token(), placeholders.now_ms()),
            &placeholders,
        );
        for token in ["a<b", "a\"b", "a'b", "a&b", "é", "a b"] {
            assert_eq!(page.splice(token, 0), None, "{token}");
        }
    }

    #[test]
    fn placeholders_are_random_and_of_their_shape() {
        let (a, b) = (Placeholders::generate(), Placeholders::generate());
        assert_ne!(a.token, b.token);
        assert_ne!(a.now_ms, b.now_ms);
        for placeholders in [a, b] {
            assert_eq!(placeholders.now_ms.to_string().len(), 17);
            assert!(placeholders.token.contains('/'));
            assert_ne!(placeholders.token, placeholders.token_html);
        }
    }

    #[test]
    fn a_page_is_served_only_for_its_own_key() {
        let cache = PageCache::<u32>::new();
        let ballot = BallotId::generate();
        let page = Arc::new(SplicedPage::parse("<p>x</p>", cache.placeholders()));
        cache.insert(ballot, "vote.html", 1, Arc::clone(&page));
        assert_eq!(cache.get(ballot, "vote.html", &1), Some(Arc::clone(&page)));
        assert_eq!(cache.get(ballot, "vote.html", &2), None);
        assert_eq!(cache.get(ballot, "partials/vote_form.html", &1), None);
        assert_eq!(cache.get(BallotId::generate(), "vote.html", &1), None);
        // A new rendering replaces the old.
        cache.insert(ballot, "vote.html", 2, Arc::clone(&page));
        assert_eq!(cache.get(ballot, "vote.html", &1), None);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_keeps_at_most_its_limit() {
        let cache = PageCache::<u32>::new();
        let page = Arc::new(SplicedPage::parse("", cache.placeholders()));
        let ballots: Vec<BallotId> = (0..=MAX_CACHED_PAGES)
            .map(|_| BallotId::generate())
            .collect();
        for ballot in &ballots[..MAX_CACHED_PAGES] {
            cache.insert(*ballot, "vote.html", 0, Arc::clone(&page));
        }
        assert_eq!(cache.len(), MAX_CACHED_PAGES);
        // Replacing a kept page evicts nothing.
        cache.insert(ballots[0], "vote.html", 1, Arc::clone(&page));
        assert_eq!(cache.len(), MAX_CACHED_PAGES);
        // One more ballot takes an old page's place.
        let newest = ballots[MAX_CACHED_PAGES];
        cache.insert(newest, "vote.html", 0, Arc::clone(&page));
        assert_eq!(cache.len(), MAX_CACHED_PAGES);
        assert!(cache.get(newest, "vote.html", &0).is_some());
    }
}
