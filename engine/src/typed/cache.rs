//! The bounded cache of decoded objects behind a typed [`super::Store`].
//!
//! # Guarantees
//! * An entry is returned only for the version it was decoded from: a lookup passes
//!   the stored object's resourceVersion and JSON length, and an entry whose version
//!   differs is a miss. The store's object is always read first, so a hit is the
//!   decode of the object the store holds at that moment, never a stale one.
//! * It holds no `Obj` handle: a cached decode never keeps an old version's bytes (or
//!   its arena segment) alive. A slot remembers which object it was decoded from (or
//!   last matched by resourceVersion) as an [`ObjIdentity`], which keeps only that
//!   object's header allocation, so that no later object can take its address: a
//!   read of the same object is a hit without reading its resourceVersion from its
//!   body (measured in the `typed_get` bench over 10,000 kept pods: 538 -> 214 ns a
//!   Get; unchanged with 512 hot keys, which all stay in the CPU's caches).
//! * [`Capacity::limit`] entries in the steady state, never more than twice that:
//!   once the cache holds `limit`, an insert into a shard holding at least its share
//!   (`limit / shards`) first evicts from that shard, and no shard grows past twice
//!   its share; a shard under its share still takes keys (so a shard's only entries,
//!   a hot key among them, are not evicted for a full cache). The bound is mostly
//!   the cache's, not each shard's: keys do not hash evenly, and a strict bound per
//!   shard made the fullest shards evict on every insert of a cyclic scan (a
//!   reconcile-all) while the cache as a whole had room, so a cache sized for every
//!   object still missed on a third of them. Eviction is CLOCK (second chance)
//!   within the inserting shard.
//! * A decode that is replaced or evicted is freed after the shard's lock is released:
//!   freeing a decoded pod (~38 KB in hundreds of allocations) takes microseconds.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crossbeam::utils::CachePadded;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::object::{Obj, ObjIdentity};

/// Shards of the cache: each has its own lock, so that reader threads seldom meet.
const SHARDS: usize = 32;

/// Which version of an object a decode was made from.
///
/// resourceVersion changes with every write of an object, a recreated object
/// included (apiserver's storage stamps each write with the etcd revision), so it
/// names a version; the JSON length is compared too, for stores filled by hand with
/// reused resourceVersions.
#[derive(Clone, Copy)]
pub(crate) enum Version<'a> {
    /// The version of a stored object. A slot made from (or last matched with) this
    /// very object is a hit without reading the object's resourceVersion, which lies
    /// in its body bytes: one cache line fewer on every hit.
    Of(&'a Obj),
    /// A version given by its parts (the cache's own tests, with no store).
    #[cfg(test)]
    Parts { resource_version: &'a [u8], json_len: usize },
}

impl<'a> Version<'a> {
    fn object(self) -> Option<&'a Obj> {
        match self {
            Version::Of(obj) => Some(obj),
            #[cfg(test)]
            Version::Parts { .. } => None,
        }
    }

    /// The resourceVersion's bytes (empty when the object has none) and the JSON
    /// length.
    pub(crate) fn parts(self) -> (&'a [u8], usize) {
        match self {
            // Bytes, not `&str`: the store checked them when the object was decoded.
            Version::Of(obj) => (obj.span_raw(obj.meta().resource_version), obj.json_len()),
            #[cfg(test)]
            Version::Parts { resource_version, json_len } => (resource_version, json_len),
        }
    }
}

struct Slot<K> {
    hash: u64,
    /// The key's bytes, then the resourceVersion's: one allocation, so that a hit
    /// reads one heap line for both comparisons.
    id: Box<[u8]>,
    key_len: usize,
    json_len: usize,
    value: Arc<K>,
    /// The stored object `value` was decoded from or last matched with.
    object: Option<ObjIdentity>,
    referenced: bool,
    /// The insert (the shard's `inserts` count) whose eviction sweep last cleared
    /// `referenced`: that insert may evict several slots, and must not come round
    /// to this one again.
    spared_by: u64,
}

impl<K> Slot<K> {
    fn id(key: &[u8], resource_version: &[u8]) -> Box<[u8]> {
        [key, resource_version].concat().into_boxed_slice()
    }

    fn key(&self) -> &[u8] {
        &self.id[..self.key_len]
    }

    /// Whether `value` is the decode of version `v`. A match by resourceVersion
    /// remembers `v`'s object, so that its next read is a match by identity.
    fn is(&mut self, v: Version<'_>) -> bool {
        if let (Some(id), Some(obj)) = (&self.object, v.object())
            && id.is(obj)
        {
            return true;
        }
        let (resource_version, json_len) = v.parts();
        let same = self.json_len == json_len && self.id[self.key_len..] == *resource_version;
        if same {
            self.object = v.object().map(Obj::identity);
        }
        same
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
    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        self.index.find(hash, |&i| slots[i].hash == hash && slots[i].key() == key).copied()
    }

    /// Removes slot `i`, moving the last slot into its place; returns its decode.
    fn remove(&mut self, i: usize) -> Arc<K> {
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
        let removed = self.slots.swap_remove(i);
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
        removed.value
    }

    /// The slot CLOCK gives up for insert `now`: the first one neither referenced
    /// since the hand last passed nor spared earlier in the same insert. `None` when
    /// every slot was (an insert that evicts several came round to them all).
    fn victim(&mut self, now: u64) -> Option<usize> {
        // Two rounds: the first may only clear bits.
        for _ in 0..2 * self.slots.len() {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[i];
            if std::mem::take(&mut slot.referenced) {
                slot.spared_by = now;
            } else if slot.spared_by != now {
                return Some(i);
            }
        }
        None
    }
}

/// How many decoded objects a view keeps.
///
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use kcache::store::{StoreConfig, store};
/// use kcache::typed::{Capacity, DEFAULT_CACHE_CAPACITY, ObjectRef, Store};
///
/// assert_eq!(DEFAULT_CACHE_CAPACITY.limit(10_000), 1_000);
/// assert_eq!(DEFAULT_CACHE_CAPACITY.limit(100), 64);
///
/// let (reader, mut writer) = store(StoreConfig::default());
/// writer.upsert(kcache::testing::pod("default", "web-0", "7", &[]));
/// let view = Store::<Pod>::new(reader).with_cache(Capacity::Fixed(0));
/// let r = ObjectRef::new("web-0").within("default");
/// let (a, b) = (view.get(&r).unwrap(), view.get(&r).unwrap());
/// assert!(!std::sync::Arc::ptr_eq(&a, &b), "nothing kept: each read decodes");
/// assert_eq!(view.cache_stats().entries, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    /// At most this many (0: none, every read decodes).
    Fixed(usize),
    /// One per `per` objects in the store, and at least `min`: the cache's memory
    /// then stays a fixed share of what kube-rs would hold for the same store.
    ShareOfStore {
        /// Stored objects per kept decode.
        per: usize,
        /// The bound for small stores.
        min: usize,
    },
}

impl Capacity {
    /// The bound on kept decodes for a store of `stored` objects.
    pub fn limit(self, stored: usize) -> usize {
        match self {
            Capacity::Fixed(n) => n,
            Capacity::ShareOfStore { per, min } => (stored / per.max(1)).max(min),
        }
    }
}

/// What a cache did since it was built (see [`super::Store::cache_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Decoded objects held now.
    pub entries: usize,
    /// The bound on `entries` for the store's size when the stats were taken (0:
    /// nothing is kept, every read decodes).
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
    capacity: Capacity,
    /// Entries over all shards: the bound is checked against it.
    entries: AtomicUsize,
    hasher: DefaultHashBuilder,
    pub(crate) decode_errors: AtomicU64,
}

impl<K> DecodedCache<K> {
    /// A cache bounded by `capacity` (`Fixed(0)` keeps nothing).
    pub(crate) fn new(capacity: Capacity) -> Self {
        let shards = if capacity == Capacity::Fixed(0) { 0 } else { SHARDS };
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
            capacity,
            entries: AtomicUsize::new(0),
            hasher: DefaultHashBuilder::default(),
            decode_errors: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> Option<(u64, MutexGuard<'_, Shard<K>>)> {
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
    pub(crate) fn get(&self, key: &[u8], v: Version<'_>) -> Option<Arc<K>> {
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

    /// The counters, with the bound for a store of `stored` objects.
    pub(crate) fn stats(&self, stored: usize) -> CacheStats {
        let mut s = CacheStats {
            capacity: if self.shards.is_empty() { 0 } else { self.capacity.limit(stored) },
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

    /// Keeps `value`, the decode of `key` at version `v`, replacing any other version;
    /// `stored` is the store's object count (for [`Capacity::ShareOfStore`]).
    pub(crate) fn insert(&self, key: &[u8], v: Version<'_>, value: &Arc<K>, stored: usize) {
        let limit = self.capacity.limit(stored);
        let (resource_version, json_len) = v.parts();
        let Some((hash, mut guard)) = self.shard(key) else { return };
        let shard = &mut *guard;
        shard.inserts += 1;
        if let Some(i) = shard.find(hash, key) {
            let slot = &mut shard.slots[i];
            slot.id = Slot::<K>::id(key, resource_version);
            slot.json_len = json_len;
            slot.object = v.object().map(Obj::identity);
            let replaced = std::mem::replace(&mut slot.value, Arc::clone(value));
            drop(guard);
            drop(replaced);
            return;
        }
        // Freed once the lock is released. More than one when the bound fell since
        // the shard filled (a store that shrank under `ShareOfStore`).
        let mut evicted = Vec::new();
        let share = limit.div_ceil(SHARDS);
        while !shard.slots.is_empty()
            && (shard.slots.len() >= 2 * share || (shard.slots.len() >= share && self.entries.load(Relaxed) >= limit))
        {
            let victim = match shard.victim(shard.inserts) {
                Some(victim) => victim,
                // Every slot was read since the hand passed: the hard bound still holds.
                None if shard.slots.len() >= 2 * share => shard.hand,
                None => break,
            };
            shard.evictions += 1;
            evicted.push(shard.remove(victim));
            self.entries.fetch_sub(1, Relaxed);
        }
        if limit == 0 {
            drop(guard);
            drop(evicted);
            return;
        }
        self.entries.fetch_add(1, Relaxed);
        let i = shard.slots.len();
        shard.slots.push(Slot {
            hash,
            id: Slot::<K>::id(key, resource_version),
            key_len: key.len(),
            json_len,
            value: Arc::clone(value),
            object: v.object().map(Obj::identity),
            referenced: false,
            spared_by: 0,
        });
        let slots = &shard.slots;
        shard.index.insert_unique(hash, i, |&j| slots[j].hash);
        drop(guard);
        drop(evicted);
    }

    /// Drops what is kept for `key` (its object left the store).
    pub(crate) fn forget(&self, key: &[u8]) {
        let Some((hash, mut shard)) = self.shard(key) else { return };
        let removed = shard.find(hash, key).map(|i| shard.remove(i));
        if removed.is_some() {
            self.entries.fetch_sub(1, Relaxed);
        }
        drop(shard);
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(rv: &str) -> Version<'_> {
        Version::Parts { resource_version: rv.as_bytes(), json_len: 10 }
    }

    #[test]
    fn a_hit_needs_the_same_version() {
        let c = DecodedCache::new(Capacity::Fixed(64));
        c.insert(b"ns/a", v("1"), &Arc::new(1), 0);
        assert_eq!(c.get(b"ns/a", v("1")).as_deref(), Some(&1));
        assert_eq!(c.get(b"ns/a", v("2")), None);
        assert_eq!(c.get(b"ns/a", Version::Parts { resource_version: b"1", json_len: 11 }), None);
        c.insert(b"ns/a", v("2"), &Arc::new(2), 0);
        assert_eq!(c.get(b"ns/a", v("2")).as_deref(), Some(&2));
        assert_eq!(c.get(b"ns/a", v("1")), None);
        c.forget(b"ns/a");
        assert_eq!(c.get(b"ns/a", v("2")), None);
        let s = c.stats(0);
        assert_eq!((s.entries, s.hits, s.inserts), (0, 2, 2));
    }

    #[test]
    fn an_object_is_a_hit_by_identity_only_while_it_is_the_version_kept() {
        use crate::object::testing::object;
        let c = DecodedCache::new(Capacity::Fixed(64));
        let first = object("Pod", "ns", "a", "1", &[]);
        c.insert(b"ns/a", Version::Of(&first), &Arc::new(1), 0);
        assert_eq!(c.get(b"ns/a", Version::Of(&first)).as_deref(), Some(&1));
        // Another object of the same version (a compacted copy): a hit, remembered.
        let copy = object("Pod", "ns", "a", "1", &[]);
        assert_eq!(c.get(b"ns/a", Version::Of(&copy)).as_deref(), Some(&1));
        assert_eq!(c.get(b"ns/a", Version::Of(&first)).as_deref(), Some(&1));
        let s = c.stats(0);
        assert_eq!((s.entries, s.hits), (1, 3));
        // Once every handle of the kept object is gone, an object of another version
        // allocated next is never taken for the kept version: the identity keeps the
        // old object's header allocated, so no new object can have its address.
        drop((first, copy));
        for i in 0..256 {
            let kept = object("Pod", "ns", "a", &format!("{}", 2 * i + 2), &[]);
            c.insert(b"ns/a", Version::Of(&kept), &Arc::new(i), 0);
            drop(kept);
            let next = object("Pod", "ns", "a", &format!("{}", 2 * i + 3), &[]);
            assert_eq!(c.get(b"ns/a", Version::Of(&next)), None, "round {i}");
        }
    }

    #[test]
    fn stays_within_its_capacity_and_keeps_referenced_entries() {
        let c = DecodedCache::new(Capacity::Fixed(SHARDS * 4));
        for i in 0..10_000 {
            let key = format!("ns/p-{i}");
            c.insert(key.as_bytes(), v("1"), &Arc::new(i), 0);
            // Key 0 is read after every insert, so CLOCK keeps giving it a second chance.
            assert!(i == 0 || c.get(b"ns/p-0", v("1")).is_some(), "evicted the hot key at {i}");
            assert!(c.stats(0).entries <= 2 * SHARDS * 4);
        }
        let s = c.stats(0);
        assert_eq!(s.capacity, SHARDS * 4);
        // After 10,000 inserts over every shard, each shard is back within its share.
        assert!(s.entries <= SHARDS * 4, "{s:?}");
        assert_eq!(s.evictions, 10_000 - s.entries as u64);
        // Every kept entry is still found through the index after the swaps.
        let found = (0..10_000).filter(|i| c.get(format!("ns/p-{i}").as_bytes(), v("1")).as_deref() == Some(i)).count();
        assert_eq!(found, s.entries);
    }

    #[test]
    fn a_cache_with_room_for_every_key_keeps_every_key_however_they_hash() {
        // Keys never spread evenly over the shards: with a bound per shard the
        // fuller shards evicted on each pass of a cyclic scan and missed every time.
        let keys = 10_000;
        let c = DecodedCache::new(Capacity::ShareOfStore { per: 1, min: 0 });
        for pass in 0..3 {
            for i in 0..keys {
                let key = format!("ns/p-{i}");
                if c.get(key.as_bytes(), v("1")).is_none() {
                    c.insert(key.as_bytes(), v("1"), &Arc::new(i), keys);
                }
            }
            let s = c.stats(keys);
            assert_eq!((s.entries, s.inserts, s.evictions), (keys, keys as u64, 0), "after pass {pass}");
        }
        assert_eq!(c.stats(keys).hits, 2 * keys as u64);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let c = DecodedCache::new(Capacity::Fixed(0));
        c.insert(b"a", v("1"), &Arc::new(1), 0);
        assert_eq!(c.get(b"a", v("1")), None);
        c.forget(b"a");
        assert_eq!(c.stats(0), CacheStats::default());
    }

    #[test]
    fn a_share_of_the_store_grows_with_the_store_above_its_minimum() {
        let share = Capacity::ShareOfStore { per: 10, min: 64 };
        assert_eq!((share.limit(0), share.limit(640), share.limit(10_000)), (64, 64, 1_000));
        assert_eq!(Capacity::Fixed(usize::MAX).limit(3), usize::MAX);
        let c = DecodedCache::new(share);
        for i in 0..1_000 {
            c.insert(format!("k{i}").as_bytes(), v("1"), &Arc::new(i), 640);
        }
        assert_eq!(c.stats(640).entries, 64);
        for i in 0..1_000 {
            c.insert(format!("k{i}").as_bytes(), v("1"), &Arc::new(i), 100_000);
        }
        let s = c.stats(100_000);
        assert_eq!(s.capacity, 10_000);
        assert_eq!(s.entries, 1_000, "room for every one once the store is large");
        // The store shrinks back: the next decodes kept bring each shard under its bound.
        for i in 1_000..2_000 {
            c.insert(format!("k{i}").as_bytes(), v("1"), &Arc::new(i), 640);
        }
        assert_eq!(c.stats(640).entries, 64);
        assert_eq!(DecodedCache::<u8>::new(Capacity::Fixed(usize::MAX)).stats(0).capacity, usize::MAX);
    }
}
