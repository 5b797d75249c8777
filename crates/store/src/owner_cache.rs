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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::records::{Page, TrainingFile};

/// Entries kept per owner; more are not stored until the owner's next change.
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

pub(crate) struct OwnerCache<K, V> {
    ttl: Duration,
    owners: Arc<Mutex<HashMap<String, OwnerEntries<K, V>>>>,
}

impl<K, V> Clone for OwnerCache<K, V> {
    fn clone(&self) -> Self {
        Self { ttl: self.ttl, owners: Arc::clone(&self.owners) }
    }
}

impl<K: Eq + Hash, V: Clone> OwnerCache<K, V> {
    /// A zero `ttl` turns the cache off.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, owners: Arc::default() }
    }

    /// The cached value, or the generation a value read now must be stored under.
    pub fn get(&self, owner: &str, key: &K) -> Result<V, u64> {
        let owners = self.owners.lock().expect("no panics while holding the lock");
        let Some(owner) = owners.get(owner) else { return Err(0) };
        match owner.entries.get(key) {
            Some((stored, value)) if stored.elapsed() < self.ttl => Ok(value.clone()),
            _ => Err(owner.generation),
        }
    }

    /// Keeps `value` unless the owner's files changed since `generation` was read.
    pub fn put(&self, owner: &str, key: K, generation: u64, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut owners = self.owners.lock().expect("no panics while holding the lock");
        let owner = owners.entry(owner.to_owned()).or_default();
        if owner.generation == generation && owner.entries.len() < ENTRIES_PER_OWNER {
            owner.entries.insert(key, (Instant::now(), value));
        }
    }

    /// Called after every committed change to `owner`'s files.
    pub fn invalidate(&self, owner: &str) {
        let mut owners = self.owners.lock().expect("no panics while holding the lock");
        let owner = owners.entry(owner.to_owned()).or_default();
        owner.generation += 1;
        owner.entries.clear();
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
        let cache = OwnerCache::<ListKey, u32>::new(Duration::from_millis(1));
        cache.put("alice", key(), 0, 1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get("alice", &key()).is_err());
    }

    #[test]
    fn a_page_is_rendered_once() {
        let page = ListedPage::new(Page { items: Vec::new(), next_cursor: None });
        assert_eq!(page.rendered(|_| Bytes::from_static(b"first")), "first");
        assert_eq!(page.rendered(|_| Bytes::from_static(b"second")), "first");
    }
}
