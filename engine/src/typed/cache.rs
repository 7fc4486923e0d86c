//! The bounded cache of decoded objects behind a typed [`super::Store`].
//!
//! # Guarantees
//! * An entry is returned only for the version it was decoded from: a lookup passes
//!   the stored object's resourceVersion and JSON length, and an entry whose version
//!   differs is a miss. The store's object is always read first, so a hit is the
//!   decode of the object the store holds at that moment, never a stale one.
//! * It holds no `Obj` handle: a cached decode never keeps an old version's bytes (or
//!   its arena segment) alive.
//! * At most `capacity` entries (rounded up to a multiple of the shard count);
//!   eviction is CLOCK (second chance) per shard.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crossbeam::utils::CachePadded;
use hashbrown::{DefaultHashBuilder, HashTable};

/// Shards of the cache: each has its own lock, so that reader threads seldom meet.
const SHARDS: usize = 32;

/// Which version of an object a decode was made from.
///
/// resourceVersion changes with every write of an object, a recreated object
/// included (apiserver's storage stamps each write with the etcd revision), so it
/// names a version; the JSON length is compared too, for stores filled by hand with
/// reused resourceVersions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version<'a> {
    pub(crate) resource_version: &'a str,
    pub(crate) json_len: usize,
}

struct Slot<K> {
    hash: u64,
    key: Box<str>,
    resource_version: Box<str>,
    json_len: usize,
    value: Arc<K>,
    referenced: bool,
}

impl<K> Slot<K> {
    fn is(&self, v: Version<'_>) -> bool {
        self.json_len == v.json_len && *self.resource_version == *v.resource_version
    }
}

struct Shard<K> {
    /// Positions in `slots`, hashed by key.
    index: HashTable<usize>,
    slots: Vec<Slot<K>>,
    /// The CLOCK hand: the next slot eviction looks at.
    hand: usize,
    hits: u64,
    inserts: u64,
    evictions: u64,
}

impl<K> Shard<K> {
    fn find(&self, hash: u64, key: &str) -> Option<usize> {
        let slots = &self.slots;
        self.index.find(hash, |&i| slots[i].hash == hash && *slots[i].key == *key).copied()
    }

    /// Removes slot `i`, moving the last slot into its place.
    fn remove(&mut self, i: usize) {
        let hash = self.slots[i].hash;
        if let Ok(e) = self.index.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        let last = self.slots.len() - 1;
        if i != last {
            let moved = self.slots[last].hash;
            if let Some(pos) = self.index.find_mut(moved, |&j| j == last) {
                *pos = i;
            }
        }
        self.slots.swap_remove(i);
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }

    /// The slot CLOCK gives up: the first one not referenced since the hand last passed.
    fn victim(&mut self) -> usize {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            if !std::mem::take(&mut self.slots[i].referenced) {
                return i;
            }
        }
    }
}

/// What a cache did since it was built (see [`super::Store::cache_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Decoded objects held now.
    pub entries: usize,
    /// The bound on `entries` (0: nothing is kept, every read decodes).
    pub capacity: usize,
    /// Reads answered from the cache.
    pub hits: u64,
    /// Decodes kept in the cache (each followed a miss).
    pub inserts: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Stored objects that failed to decode as the view's type.
    pub decode_errors: u64,
}

/// Decoded objects by key, each with the version it was decoded from.
pub(crate) struct DecodedCache<K> {
    shards: Box<[CachePadded<Mutex<Shard<K>>>]>,
    per_shard: usize,
    hasher: DefaultHashBuilder,
    pub(crate) decode_errors: AtomicU64,
}

impl<K> DecodedCache<K> {
    /// A cache of at most `capacity` entries (0 keeps nothing).
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = if capacity == 0 { 0 } else { SHARDS };
        DecodedCache {
            shards: (0..shards)
                .map(|_| {
                    CachePadded::new(Mutex::new(Shard {
                        index: HashTable::new(),
                        slots: Vec::new(),
                        hand: 0,
                        hits: 0,
                        inserts: 0,
                        evictions: 0,
                    }))
                })
                .collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: DefaultHashBuilder::default(),
            decode_errors: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &str) -> Option<(u64, MutexGuard<'_, Shard<K>>)> {
        if self.shards.is_empty() {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        // Bits the shard's own table does not use: it takes its bucket from the low
        // bits and its tag from the top seven.
        let shard = &self.shards[(hash >> 32) as usize % self.shards.len()];
        Some((hash, shard.lock().unwrap_or_else(PoisonError::into_inner)))
    }

    /// The decode of `key` at version `v`, if kept.
    pub(crate) fn get(&self, key: &str, v: Version<'_>) -> Option<Arc<K>> {
        let (hash, mut shard) = self.shard(key)?;
        let i = shard.find(hash, key)?;
        if !shard.slots[i].is(v) {
            return None;
        }
        shard.hits += 1;
        let slot = &mut shard.slots[i];
        slot.referenced = true;
        Some(Arc::clone(&slot.value))
    }

    /// Keeps `value`, the decode of `key` at version `v`, replacing any other version.
    pub(crate) fn insert(&self, key: &str, v: Version<'_>, value: &Arc<K>) {
        let Some((hash, mut guard)) = self.shard(key) else { return };
        let shard = &mut *guard;
        shard.inserts += 1;
        if let Some(i) = shard.find(hash, key) {
            let slot = &mut shard.slots[i];
            slot.resource_version = v.resource_version.into();
            slot.json_len = v.json_len;
            slot.value = Arc::clone(value);
            return;
        }
        if shard.slots.len() >= self.per_shard {
            let victim = shard.victim();
            shard.remove(victim);
            shard.evictions += 1;
        }
        let i = shard.slots.len();
        shard.slots.push(Slot {
            hash,
            key: key.into(),
            resource_version: v.resource_version.into(),
            json_len: v.json_len,
            value: Arc::clone(value),
            referenced: false,
        });
        let slots = &shard.slots;
        shard.index.insert_unique(hash, i, |&j| slots[j].hash);
    }

    /// Drops what is kept for `key` (its object left the store).
    pub(crate) fn forget(&self, key: &str) {
        let Some((hash, mut shard)) = self.shard(key) else { return };
        if let Some(i) = shard.find(hash, key) {
            shard.remove(i);
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let mut s = CacheStats {
            capacity: self.per_shard * self.shards.len(),
            decode_errors: self.decode_errors.load(Relaxed),
            ..CacheStats::default()
        };
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            s.entries += shard.slots.len();
            s.hits += shard.hits;
            s.inserts += shard.inserts;
            s.evictions += shard.evictions;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(rv: &str) -> Version<'_> {
        Version { resource_version: rv, json_len: 10 }
    }

    #[test]
    fn a_hit_needs_the_same_version() {
        let c = DecodedCache::new(64);
        c.insert("ns/a", v("1"), &Arc::new(1));
        assert_eq!(c.get("ns/a", v("1")).as_deref(), Some(&1));
        assert_eq!(c.get("ns/a", v("2")), None);
        assert_eq!(c.get("ns/a", Version { resource_version: "1", json_len: 11 }), None);
        c.insert("ns/a", v("2"), &Arc::new(2));
        assert_eq!(c.get("ns/a", v("2")).as_deref(), Some(&2));
        assert_eq!(c.get("ns/a", v("1")), None);
        c.forget("ns/a");
        assert_eq!(c.get("ns/a", v("2")), None);
        let s = c.stats();
        assert_eq!((s.entries, s.hits, s.inserts), (0, 2, 2));
    }

    #[test]
    fn stays_within_its_capacity_and_keeps_referenced_entries() {
        let c = DecodedCache::new(SHARDS * 4);
        for i in 0..10_000 {
            let key = format!("ns/p-{i}");
            c.insert(&key, v("1"), &Arc::new(i));
            // Key 0 is read after every insert, so CLOCK keeps giving it a second chance.
            assert!(i == 0 || c.get("ns/p-0", v("1")).is_some(), "evicted the hot key at {i}");
            assert!(c.stats().entries <= SHARDS * 4);
        }
        let s = c.stats();
        assert_eq!(s.capacity, SHARDS * 4);
        assert_eq!(s.evictions, 10_000 - s.entries as u64);
        // Every kept entry is still found through the index after the swaps.
        let found = (0..10_000).filter(|i| c.get(&format!("ns/p-{i}"), v("1")).as_deref() == Some(i)).count();
        assert_eq!(found, s.entries);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let c = DecodedCache::new(0);
        c.insert("a", v("1"), &Arc::new(1));
        assert_eq!(c.get("a", v("1")), None);
        c.forget("a");
        assert_eq!(c.stats(), CacheStats::default());
    }
}
