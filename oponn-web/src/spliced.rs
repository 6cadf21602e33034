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
use std::time::{Duration, Instant};

use minijinja::HtmlEscape;
use oponn_core::domain::{BallotId, VoterId};

/// The most pages a [`PageCache`] keeps (one per ballot and template).
pub(crate) const MAX_CACHED_PAGES: usize = 256;

/// The most bytes of pages a [`PageCache`] keeps. A vote page is 5–20 KiB;
/// the largest (a ranked ballot of 64 options, a select of 64 ranks for
/// each) about 180 KiB. A page larger than this alone is never kept.
pub(crate) const MAX_CACHED_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// How long a page is served after it was rendered; a busy ballot's page
/// is rendered once per lifetime. A deletion on this instance drops the
/// ballot's pages at once; after one on another instance, the reaper
/// drops them (with the ballot's decrypted text) on its first pass past
/// their lifetime.
pub(crate) const PAGE_LIFETIME: Duration = Duration::from_secs(10);

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
    /// The bytes of literal text the page holds.
    fn bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|(text, _)| text.len())
            .sum::<usize>()
            .saturating_add(self.tail.len())
    }

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
        let mut page = String::with_capacity(self.bytes().saturating_add(64 * self.parts.len()));
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

/// Whether `token` can be spliced into a page: it is not empty and holds
/// only standard Base64's characters (as CSRF tokens do), which every escaping a
/// template applies leaves as they are but for `/`. A page for any other
/// token is rendered afresh.
fn spliceable(token: &str) -> bool {
    // An empty token is not spliced: templates leave out what carries it.
    !token.is_empty()
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='))
}

/// Which page an entry is: a ballot's, in one template.
type PageOf = (BallotId, &'static str);

/// A kept page, with the key it was rendered from and when.
#[derive(Debug)]
struct Entry<K> {
    key: K,
    page: Arc<SplicedPage>,
    rendered_at: Instant,
}

/// The kept pages and their bytes.
#[derive(Debug)]
struct Pages<K> {
    entries: HashMap<PageOf, Entry<K>>,
    bytes: usize,
}

impl<K> Pages<K> {
    /// Keeps only the pages `keep` says to, and counts their bytes.
    fn retain(&mut self, mut keep: impl FnMut(&PageOf, &Entry<K>) -> bool) {
        let Self { entries, bytes } = self;
        entries.retain(|page_of, entry| {
            let kept = keep(page_of, entry);
            if !kept {
                *bytes = bytes.saturating_sub(entry.page.bytes());
            }
            kept
        });
    }

    fn remove(&mut self, page_of: &PageOf) {
        if let Some(entry) = self.entries.remove(page_of) {
            self.bytes = self.bytes.saturating_sub(entry.page.bytes());
        }
    }
}

/// Rendered pages by ballot and template, each with the key it was
/// rendered from; at most [`MAX_CACHED_PAGES`] and
/// [`MAX_CACHED_PAGE_BYTES`], each for [`PAGE_LIFETIME`].
#[derive(Debug)]
pub(crate) struct PageCache<K> {
    placeholders: Placeholders,
    pages: Mutex<Pages<K>>,
}

impl<K: PartialEq> PageCache<K> {
    /// An empty cache with fresh placeholders.
    pub(crate) fn new() -> Self {
        Self {
            placeholders: Placeholders::generate(),
            pages: Mutex::new(Pages {
                entries: HashMap::new(),
                bytes: 0,
            }),
        }
    }

    /// What pages are rendered with in place of per-request values.
    pub(crate) fn placeholders(&self) -> &Placeholders {
        &self.placeholders
    }

    /// The page of `ballot` in `template` when it was rendered from `key`
    /// less than [`PAGE_LIFETIME`] ago.
    pub(crate) fn get<Q>(
        &self,
        ballot: BallotId,
        template: &'static str,
        key: &Q,
    ) -> Option<Arc<SplicedPage>>
    where
        K: PartialEq<Q>,
    {
        self.get_at(ballot, template, key, Instant::now())
    }

    fn get_at<Q>(
        &self,
        ballot: BallotId,
        template: &'static str,
        key: &Q,
        now: Instant,
    ) -> Option<Arc<SplicedPage>>
    where
        K: PartialEq<Q>,
    {
        let pages = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        pages
            .entries
            .get(&(ballot, template))
            .filter(|entry| entry.key == *key)
            .filter(|entry| now.saturating_duration_since(entry.rendered_at) < PAGE_LIFETIME)
            .map(|entry| Arc::clone(&entry.page))
    }

    /// Keeps `page`, rendered from `key` just now, in place of any earlier
    /// page of `ballot` in `template`; the oldest pages make room.
    pub(crate) fn insert(
        &self,
        ballot: BallotId,
        template: &'static str,
        key: K,
        page: Arc<SplicedPage>,
    ) {
        self.insert_at(ballot, template, key, page, Instant::now());
    }

    fn insert_at(
        &self,
        ballot: BallotId,
        template: &'static str,
        key: K,
        page: Arc<SplicedPage>,
        now: Instant,
    ) {
        let mut pages = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        pages.remove(&(ballot, template));
        let bytes = page.bytes();
        if bytes > MAX_CACHED_PAGE_BYTES {
            return;
        }
        while !pages.entries.is_empty()
            && (pages.entries.len() >= MAX_CACHED_PAGES
                || pages.bytes.saturating_add(bytes) > MAX_CACHED_PAGE_BYTES)
        {
            let oldest = pages
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.rendered_at)
                .map(|(page_of, _)| *page_of);
            if let Some(oldest) = oldest {
                pages.remove(&oldest);
            }
        }
        pages.bytes = pages.bytes.saturating_add(bytes);
        pages.entries.insert(
            (ballot, template),
            Entry {
                key,
                page,
                rendered_at: now,
            },
        );
    }

    /// Drops every page of `ballot`: it was deleted.
    pub(crate) fn forget(&self, ballot: &BallotId) {
        self.pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _), _| id != ballot);
    }

    /// Drops the pages past their [`PAGE_LIFETIME`]: the reaper's pass.
    pub(crate) fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        self.pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, entry| now.saturating_duration_since(entry.rendered_at) < PAGE_LIFETIME);
    }

    /// How many pages are kept, and their bytes.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        let pages = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        (pages.entries.len(), pages.bytes)
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
            ] {
                for now in [0, 1_764_000_000_000, i64::MAX, -1] {
                    assert_eq!(page.splice(token, now), Some(render(title, token, now)));
                }
            }
        }
    }

    #[test]
    fn an_empty_token_or_one_beyond_base64_is_not_spliced() {
        let placeholders = Placeholders::generate();
        let page = SplicedPage::parse(
            &render("t", placeholders.token(), placeholders.now_ms()),
            &placeholders,
        );
        for token in ["", "a<b", "a\"b", "a'b", "a&b", "é", "a b"] {
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
        assert_eq!(cache.size(), (1, 8));
    }

    #[test]
    fn the_cache_keeps_at_most_its_count_dropping_the_oldest() {
        let cache = PageCache::<u32>::new();
        let page = Arc::new(SplicedPage::parse("", cache.placeholders()));
        let ballots: Vec<BallotId> = (0..=MAX_CACHED_PAGES)
            .map(|_| BallotId::generate())
            .collect();
        let start = Instant::now();
        let at = |n: usize| start + Duration::from_millis(u64::try_from(n).unwrap());
        for (n, ballot) in ballots[..MAX_CACHED_PAGES].iter().enumerate() {
            cache.insert_at(*ballot, "vote.html", 0, Arc::clone(&page), at(n));
        }
        assert_eq!(cache.size().0, MAX_CACHED_PAGES);
        // Replacing a kept page evicts nothing.
        cache.insert_at(ballots[1], "vote.html", 1, Arc::clone(&page), at(1));
        assert_eq!(cache.size().0, MAX_CACHED_PAGES);
        // One more ballot takes the oldest page's place.
        let newest = ballots[MAX_CACHED_PAGES];
        cache.insert_at(
            newest,
            "vote.html",
            0,
            Arc::clone(&page),
            at(MAX_CACHED_PAGES),
        );
        assert_eq!(cache.size().0, MAX_CACHED_PAGES);
        let now = at(MAX_CACHED_PAGES);
        assert!(cache.get_at(newest, "vote.html", &0, now).is_some());
        assert!(cache.get_at(ballots[0], "vote.html", &0, now).is_none());
        assert!(cache.get_at(ballots[1], "vote.html", &1, now).is_some());
    }

    #[test]
    fn the_cache_keeps_at_most_its_bytes() {
        let cache = PageCache::<u32>::new();
        let half = Arc::new(SplicedPage::parse(
            &"x".repeat(MAX_CACHED_PAGE_BYTES / 2),
            cache.placeholders(),
        ));
        let (a, b, c) = (
            BallotId::generate(),
            BallotId::generate(),
            BallotId::generate(),
        );
        let start = Instant::now();
        cache.insert_at(a, "vote.html", 0, Arc::clone(&half), start);
        cache.insert_at(
            b,
            "vote.html",
            0,
            Arc::clone(&half),
            start + Duration::from_millis(1),
        );
        assert_eq!(cache.size(), (2, MAX_CACHED_PAGE_BYTES));
        cache.insert_at(
            c,
            "vote.html",
            0,
            Arc::clone(&half),
            start + Duration::from_millis(2),
        );
        assert_eq!(
            cache.size(),
            (2, MAX_CACHED_PAGE_BYTES),
            "the oldest made room"
        );
        assert!(cache.get_at(a, "vote.html", &0, start).is_none());
        // A page over the whole budget is not kept.
        let huge = Arc::new(SplicedPage::parse(
            &"x".repeat(MAX_CACHED_PAGE_BYTES + 1),
            cache.placeholders(),
        ));
        cache.insert(a, "vote.html", 0, huge);
        assert!(cache.get(a, "vote.html", &0).is_none());
        assert_eq!(cache.size().1, MAX_CACHED_PAGE_BYTES);
    }

    #[test]
    fn a_page_lives_for_its_lifetime_and_goes_with_its_ballot() {
        let cache = PageCache::<u32>::new();
        let page = Arc::new(SplicedPage::parse("<p>x</p>", cache.placeholders()));
        let (kept, deleted) = (BallotId::generate(), BallotId::generate());
        let start = Instant::now();
        cache.insert_at(kept, "vote.html", 0, Arc::clone(&page), start);
        let last = start + PAGE_LIFETIME - Duration::from_millis(1);
        assert!(cache.get_at(kept, "vote.html", &0, last).is_some());
        assert!(
            cache
                .get_at(kept, "vote.html", &0, start + PAGE_LIFETIME)
                .is_none()
        );
        cache.prune_at(last);
        assert_eq!(cache.size().0, 1, "not yet expired");
        cache.prune_at(start + PAGE_LIFETIME + Duration::from_millis(1));
        assert_eq!(cache.size(), (0, 0), "expired pages leave memory");

        for template in ["vote.html", "partials/vote_form.html"] {
            cache.insert(deleted, template, 0, Arc::clone(&page));
        }
        cache.insert(kept, "vote.html", 0, Arc::clone(&page));
        cache.forget(&deleted);
        assert_eq!(cache.size().0, 1);
        assert!(cache.get(kept, "vote.html", &0).is_some());
    }
}
