//! Bounded, expiring per-ballot caches: unwrapped data keys, and opened
//! ballots.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use time::{Duration, OffsetDateTime};

use super::SymmetricKey;
use crate::domain::BallotId;

/// Unwrapped data keys held in process memory only.
///
/// Unwrapping may be a network call to a key-management service, so keys
/// are cached; but a key left in memory forever widens what a memory dump
/// reveals, so each entry expires after a time-to-live and the cache holds
/// at most `capacity` keys, evicting the least recently used.
pub type KeyCache = BallotCache<Arc<SymmetricKey>>;

/// A value per ballot, held for a time-to-live, at most `capacity` of them
/// (the least recently used go first). Values are cloned out, so `V` is
/// cheap to clone (an `Arc`).
pub struct BallotCache<V> {
    /// A plain mutex: every critical section is a map operation, never I/O.
    entries: Mutex<LruCache<BallotId, Cached<V>>>,
    ttl: Duration,
}

struct Cached<V> {
    value: V,
    expires_at: OffsetDateTime,
}

impl<V: Clone> BallotCache<V> {
    /// A cache of at most `capacity` values, each kept for `ttl`.
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
        }
    }

    /// The value of `ballot`, if cached and not expired at `now`.
    pub fn get(&self, ballot: &BallotId, now: OffsetDateTime) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(ballot) {
            Some(entry) if entry.expires_at > now => Some(entry.value.clone()),
            Some(_) => {
                entries.pop(ballot);
                None
            }
            None => None,
        }
    }

    /// Caches `value` for `ballot` from `now` on.
    pub fn insert(&self, ballot: BallotId, value: V, now: OffsetDateTime) {
        let entry = Cached {
            value,
            expires_at: now + self.ttl,
        };
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(ballot, entry);
    }

    /// Forgets the value of `ballot`, as when the ballot is deleted.
    pub fn remove(&self, ballot: &BallotId) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop(ballot);
    }

    /// Forgets every value, as when many ballots changed at once.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Drops every entry expired at `now`; returns how many were dropped.
    pub fn prune_expired(&self, now: OffsetDateTime) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let expired: Vec<BallotId> = entries
            .iter()
            .filter(|(_, entry)| entry.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            entries.pop(id);
        }
        expired.len()
    }

    /// How many values are cached, expired or not.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

    fn cache(capacity: usize) -> KeyCache {
        KeyCache::new(NonZeroUsize::new(capacity).unwrap(), Duration::minutes(5))
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = cache(4);
        let ballot = BallotId::generate();
        cache.insert(ballot, Arc::new(SymmetricKey::generate()), NOW);
        assert!(cache.get(&ballot, NOW + Duration::minutes(4)).is_some());
        assert!(cache.get(&ballot, NOW + Duration::minutes(5)).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
        let cache = cache(2);
        let ids: Vec<BallotId> = (0..3).map(|_| BallotId::generate()).collect();
        cache.insert(ids[0], Arc::new(SymmetricKey::generate()), NOW);
        cache.insert(ids[1], Arc::new(SymmetricKey::generate()), NOW);
        assert!(cache.get(&ids[0], NOW).is_some());
        cache.insert(ids[2], Arc::new(SymmetricKey::generate()), NOW);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&ids[1], NOW).is_none());
        assert!(cache.get(&ids[0], NOW).is_some());
    }

    #[test]
    fn pruning_drops_only_expired_entries() {
        let cache = cache(4);
        let (old, new) = (BallotId::generate(), BallotId::generate());
        cache.insert(old, Arc::new(SymmetricKey::generate()), NOW);
        cache.insert(
            new,
            Arc::new(SymmetricKey::generate()),
            NOW + Duration::minutes(3),
        );
        assert_eq!(cache.prune_expired(NOW + Duration::minutes(6)), 1);
        assert!(cache.get(&new, NOW + Duration::minutes(6)).is_some());
    }
}
