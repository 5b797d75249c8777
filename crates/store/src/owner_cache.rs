//! What an owner's training files look like to the API's hottest reads — a
//! page of the list, a download target — kept in memory for a short time:
//! one catalogue query costs more than the rest of such a request.
//!
//! Exact within a process: every change to an owner's files commits and then
//! drops that owner's entries, and a value read while a change was committing
//! is not kept (each owner has a generation, bumped by every change, and a
//! value is stored only under the generation it was read in). Across
//! processes sharing one catalogue, a value may be up to the TTL old.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::records::{Page, TrainingFile};

/// Live entries kept per owner; more are not stored until some expire or the owner's next change.
const ENTRIES_PER_OWNER: usize = 32;

struct OwnerEntries<K, V> {
    generation: u64,
    entries: HashMap<K, (Instant, V)>,
}

impl<K, V> Default for OwnerEntries<K, V> {
    fn default() -> Self {
        Self { generation: 0, entries: HashMap::new() }
    }
}

/// Every owner seen, and when expired values were last dropped. An owner's
/// generation is kept for good (a few bytes); its values only while live.
struct Owners<K, V> {
    by_owner: HashMap<String, OwnerEntries<K, V>>,
    swept: Instant,
}

pub(crate) struct OwnerCache<K, V> {
    ttl: Duration,
    owners: Arc<Mutex<Owners<K, V>>>,
    /// How far tests have moved this cache's clock past the real one, in
    /// milliseconds: expiry is tested without sleeps that race a busy machine.
    skew_ms: Arc<AtomicU64>,
}

impl<K, V> Clone for OwnerCache<K, V> {
    fn clone(&self) -> Self {
        Self { ttl: self.ttl, owners: Arc::clone(&self.owners), skew_ms: Arc::clone(&self.skew_ms) }
    }
}

impl<K: Eq + Hash, V: Clone> OwnerCache<K, V> {
    /// A zero `ttl` turns the cache off.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, owners: Arc::new(Mutex::new(Owners { by_owner: HashMap::new(), swept: Instant::now() })), skew_ms: Arc::default() }
    }

    fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Moves this cache's clock forward (tests).
    #[cfg(test)]
    fn advance(&self, by: Duration) {
        self.skew_ms.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }

    /// The cached value, or the generation a value read now must be stored under.
    pub fn get(&self, owner: &str, key: &K) -> Result<V, u64> {
        let owners = self.owners.lock().expect("no panics while holding the lock");
        let Some(owner) = owners.by_owner.get(owner) else { return Err(0) };
        match owner.entries.get(key) {
            Some((stored, value)) if self.now().duration_since(*stored) < self.ttl => Ok(value.clone()),
            _ => Err(owner.generation),
        }
    }

    /// Keeps `value` unless the owner's files changed since `generation` was read.
    /// Once per TTL, values that have expired are dropped, every owner's.
    pub fn put(&self, owner: &str, key: K, generation: u64, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut owners = self.owners.lock().expect("no panics while holding the lock");
        let now = self.now();
        let live = |entry: &(Instant, V)| now.duration_since(entry.0) < self.ttl;
        if now.duration_since(owners.swept) >= self.ttl {
            for entries in owners.by_owner.values_mut() {
                entries.entries.retain(|_, entry| live(entry));
            }
            owners.swept = now;
        }
        let owner = owners.by_owner.entry(owner.to_owned()).or_default();
        if owner.generation != generation {
            return;
        }
        if owner.entries.len() >= ENTRIES_PER_OWNER {
            owner.entries.retain(|_, entry| live(entry));
        }
        if owner.entries.len() < ENTRIES_PER_OWNER {
            owner.entries.insert(key, (now, value));
        }
    }

    /// Called after every committed change to `owner`'s files.
    pub fn invalidate(&self, owner: &str) {
        let mut owners = self.owners.lock().expect("no panics while holding the lock");
        let owner = owners.by_owner.entry(owner.to_owned()).or_default();
        owner.generation += 1;
        owner.entries.clear();
    }

    /// Values held, live or not yet swept (tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.owners.lock().expect("no panics while holding the lock").by_owner.values().map(|o| o.entries.len()).sum()
    }
}

/// Which page of which list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ListKey {
    pub status: String,
    pub q: Option<String>,
    pub limit: i64,
    pub cursor: Option<String>,
}

/// A page of an owner's training files, shared by the requests that list it
/// while it is cached; the caller's serialisation of it is made once.
#[derive(Debug)]
pub struct ListedPage {
    page: Page<TrainingFile>,
    rendered: OnceLock<Bytes>,
}

impl ListedPage {
    pub(crate) fn new(page: Page<TrainingFile>) -> Self {
        Self { page, rendered: OnceLock::new() }
    }

    /// `render(page)`, computed by the first caller and shared with the rest.
    pub fn rendered(&self, render: impl FnOnce(&Page<TrainingFile>) -> Bytes) -> Bytes {
        self.rendered.get_or_init(|| render(&self.page)).clone()
    }
}

impl Deref for ListedPage {
    type Target = Page<TrainingFile>;

    fn deref(&self) -> &Self::Target {
        &self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ListKey {
        ListKey { status: "active".into(), q: None, limit: 20, cursor: None }
    }

    #[test]
    fn a_change_drops_entries_and_refuses_values_read_before_it() {
        let cache = OwnerCache::<ListKey, u32>::new(Duration::from_secs(60));
        let generation = cache.get("alice", &key()).unwrap_err();
        cache.put("alice", key(), generation, 1);
        assert_eq!(cache.get("alice", &key()), Ok(1));
        assert!(cache.get("bob", &key()).is_err(), "entries are per owner");

        let before_change = cache.get("alice", &ListKey { limit: 5, ..key() }).unwrap_err();
        cache.invalidate("alice");
        assert!(cache.get("alice", &key()).is_err());
        cache.put("alice", key(), before_change, 2);
        assert!(cache.get("alice", &key()).is_err(), "read before the change: not kept");
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_keeps_nothing() {
        let cache = OwnerCache::<ListKey, u32>::new(Duration::ZERO);
        cache.put("alice", key(), 0, 1);
        assert!(cache.get("alice", &key()).is_err());
        let cache = OwnerCache::<ListKey, u32>::new(Duration::from_secs(60));
        cache.put("alice", key(), 0, 1);
        assert_eq!(cache.get("alice", &key()), Ok(1));
        cache.advance(Duration::from_secs(61));
        assert!(cache.get("alice", &key()).is_err());
    }

    #[test]
    fn expired_values_are_dropped_and_make_room() {
        // An hour: the values surely live until the clock is moved, however busy the machine.
        let ttl = Duration::from_secs(3600);
        let cache = OwnerCache::<ListKey, u32>::new(ttl);
        let page = |limit| ListKey { limit, ..key() };
        for limit in 0..ENTRIES_PER_OWNER as i64 {
            cache.put("alice", page(limit), 0, 1);
        }
        cache.put("bob", key(), 0, 1);
        cache.put("alice", page(100), 0, 1);
        assert_eq!(cache.get("alice", &page(100)), Err(0), "a full owner keeps no more while its values live");
        assert_eq!(cache.held(), ENTRIES_PER_OWNER + 1);

        cache.advance(ttl * 2);
        cache.put("alice", page(100), 0, 2);
        assert_eq!(cache.get("alice", &page(100)), Ok(2), "expired values made room");
        assert_eq!(cache.held(), 1, "every owner's expired values are gone, bob's too");
    }

    #[test]
    fn a_page_is_rendered_once() {
        let page = ListedPage::new(Page { items: Vec::new(), next_cursor: None });
        assert_eq!(page.rendered(|_| Bytes::from_static(b"first")), "first");
        assert_eq!(page.rendered(|_| Bytes::from_static(b"second")), "first");
    }
}
