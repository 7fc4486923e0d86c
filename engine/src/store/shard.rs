//! One shard: its primary map, its index maps, and the single writer that mutates them.
//!
//! # Guarantees
//! * Only the [`ShardWriter`] of a shard mutates it, so index maps are updated with plain
//!   read-copy-publish steps and never contend.
//! * A key always maps to the same shard ([`shard_for_key`]), in every process.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam::utils::CachePadded;

use super::config::IndexKind;
use super::cow::CowSet;
use super::table::ObjectTable;
use super::store::Inner;
use super::StoreError;
use crate::Obj;

/// 64-bit hash of a key, eight bytes at a time: stable across processes and Rust
/// releases (unlike `DefaultHasher`), so a key's shard never depends on the build.
///
/// Keys are short (`namespace/name`, 10-60 bytes), so a word-at-a-time multiply
/// chain costs a few cycles per word where a byte-wise FNV-1a took one multiply per
/// byte. The high bits are not well mixed on their own: users apply [`mix`].
pub(crate) fn key_hash(key: &str) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes = key.as_bytes();
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K).rotate_left(29);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut a = [0u8; 8];
        a[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K).rotate_left(29);
    }
    h ^ (h >> 32)
}

/// MurmurHash3's 64-bit finalizer: spreads [`key_hash`]'s bits for the maps and the
/// index tries, and decorrelates them from the shard choice (`key_hash % shards`), so
/// that the keys of one shard still use every bucket of its map.
pub(crate) fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The shard that owns `key` (a client-go `namespace/name` key) among `shards` shards.
///
/// The fifo routes deltas with this same function, so a key's deltas always reach the
/// thread that owns its slot in the store.
///
/// ```
/// use kcache::store::shard_for_key;
/// let s = shard_for_key("default/web-0", 4);
/// assert!(s < 4);
/// assert_eq!(s, shard_for_key("default/web-0", 4));
/// assert_eq!(shard_for_key("anything", 1), 0);
/// ```
pub fn shard_for_key(key: &str, shards: usize) -> usize {
    (key_hash(key) % shards.max(1) as u64) as usize
}

/// Writes `obj`'s client-go key into `buf`.
pub(crate) fn write_key(buf: &mut String, obj: &Obj) {
    buf.clear();
    buf.push_str(obj.key_str());
}

/// Whether `obj`'s key is `key`: a comparison with the key the object keeps, so it
/// reads the object's first cache line and nothing else.
pub(crate) fn key_eq(obj: &Obj, key: &str) -> bool {
    obj.key_bytes() == key.as_bytes()
}

/// Counters one shard writer maintains (relaxed: they are statistics).
#[derive(Default)]
pub(crate) struct ShardStats {
    pub(crate) objects: AtomicU64,
    pub(crate) json_bytes: AtomicU64,
    pub(crate) uncompressed_bytes: AtomicU64,
    pub(crate) compressed_objects: AtomicU64,
    pub(crate) meta_bytes: AtomicU64,
    pub(crate) index_values: AtomicU64,
    pub(crate) index_value_bytes: AtomicU64,
    pub(crate) index_entries: AtomicU64,
}

fn add(a: &AtomicU64, d: i64) {
    if d >= 0 {
        a.fetch_add(d as u64, Relaxed);
    } else {
        a.fetch_sub(d.unsigned_abs(), Relaxed);
    }
}

/// A map key (an object key or an index value) with its [`mix`]ed hash, computed once.
///
/// The maps hash with [`PassHasher`], which hands the stored hash through, so a lookup
/// hashes the string once for both the shard choice and the map probe, and an insert
/// or a table resize never rehashes.
#[derive(Clone)]
pub(crate) struct Key {
    hash: u64,
    pub(crate) s: Arc<str>,
}

impl Key {
    pub(crate) fn new(s: &str, hash: u64) -> Self {
        Key { hash, s: Arc::from(s) }
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.s == other.s
    }
}
impl Eq for Key {}

/// A borrowed lookup key for [`Map`]: the string and its [`mix`]ed [`key_hash`].
pub(crate) struct Lookup<'a> {
    pub(crate) hash: u64,
    pub(crate) s: &'a str,
}

impl<'a> Lookup<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Lookup { hash: mix(key_hash(s)), s }
    }
}

impl std::hash::Hash for Lookup<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl papaya::Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        // The stored hash sits in the entry next to the key pointer: comparing it first
        // skips the string's cache line for every candidate but the match.
        self.hash == key.hash && *self.s == *key.s
    }
}

/// A hasher that returns the one `u64` it is given ([`Key`] and [`Lookup`] hash as
/// their precomputed hash). Anything else is folded in FNV-style, so it stays a valid,
/// if slow, hasher.
#[derive(Default)]
pub(crate) struct PassHasher(u64);

impl std::hash::Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// Builds [`PassHasher`]s.
#[derive(Clone, Copy, Default)]
pub(crate) struct BuildPassHasher;

impl std::hash::BuildHasher for BuildPassHasher {
    type Hasher = PassHasher;
    fn build_hasher(&self) -> PassHasher {
        PassHasher(0)
    }
}

pub(crate) type Map<V> = papaya::HashMap<Key, V, BuildPassHasher>;

fn new_map<V>() -> Map<V> {
    papaya::HashMap::with_hasher(BuildPassHasher)
}

/// The data of one shard.
pub(crate) struct Shard {
    /// key -> object; the primary map.
    pub(crate) objects: ObjectTable,
    /// One map per configured indexer (same order as `Inner::indexers`): index value ->
    /// member set. A value is present iff its set is non-empty.
    pub(crate) indexes: Box<[Map<CowSet>]>,
    pub(crate) stats: CachePadded<ShardStats>,
}

impl Shard {
    pub(crate) fn new(indexes: usize) -> Self {
        Shard {
            objects: ObjectTable::default(),
            indexes: (0..indexes).map(|_| new_map()).collect(),
            stats: CachePadded::new(ShardStats::default()),
        }
    }
}

/// Index values of one object, packed in one reusable buffer so that computing them
/// allocates nothing in the steady state.
#[derive(Default)]
struct Values {
    buf: String,
    ends: Vec<usize>,
}

impl Values {
    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    fn push(&mut self, parts: &[&str]) {
        for p in parts {
            self.buf.push_str(p);
        }
        self.ends.push(self.buf.len());
    }

    fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let s = &self.buf[start..end];
            start = end;
            s
        })
    }

    fn contains(&self, v: &str) -> bool {
        self.iter().any(|x| x == v)
    }

    fn fill(&mut self, kind: &IndexKind, obj: &Obj) {
        self.clear();
        match kind {
            IndexKind::Namespace => self.push(&[obj.namespace().unwrap_or("")]),
            IndexKind::Label => {
                for (k, v) in obj.labels() {
                    self.push(&[k, "=", v]);
                }
            }
            IndexKind::Owner => {
                for o in obj.owner_references() {
                    if !o.uid.is_empty() {
                        self.push(&[o.uid]);
                    }
                }
            }
            IndexKind::Field(i) => {
                if let Some(v) = obj.field(*i) {
                    self.push(&[v]);
                }
            }
            IndexKind::Custom(f) => {
                for v in f(obj) {
                    self.push(&[&v]);
                }
            }
        }
    }
}

/// The only handle that mutates one shard of a store.
///
/// Exactly one exists per shard ([`crate::store::Writer::into_parts`]). It is `Send`, so
/// it can move onto the shard's owner thread, and deliberately not `Sync` nor `Clone`:
/// single-writer-per-shard is what lets index updates be plain copy-on-write swaps.
pub struct ShardWriter {
    pub(crate) inner: Arc<Inner>,
    pub(crate) shard: usize,
    key: String,
    old_vals: Values,
    new_vals: Values,
    /// `Cell` is `Send + !Sync`: a shared `&ShardWriter` on two threads could otherwise
    /// race two copy-on-write swaps of the same index value and lose one.
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for ShardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardWriter").field("shard", &self.shard).finish_non_exhaustive()
    }
}

impl ShardWriter {
    pub(crate) fn new(inner: Arc<Inner>, shard: usize) -> Self {
        ShardWriter {
            inner,
            shard,
            key: String::new(),
            old_vals: Values::default(),
            new_vals: Values::default(),
            _not_sync: PhantomData,
        }
    }

    /// This writer's shard number.
    pub fn shard(&self) -> usize {
        self.shard
    }

    fn data(&self) -> &Shard {
        &self.inner.shards[self.shard]
    }

    /// The stored object under `key`, if this shard holds it.
    pub fn get(&self, key: &str) -> Option<Obj> {
        self.data().objects.get(mix(key_hash(key)), key)
    }

    /// Inserts or replaces `obj` (by its key) and updates every index; returns the
    /// object it replaced.
    ///
    /// # Errors
    /// [`StoreError::WrongShard`] when `obj`'s key belongs to another shard; nothing is
    /// written.
    pub fn upsert(&mut self, obj: Obj) -> Result<Option<Obj>, StoreError> {
        let mut key = std::mem::take(&mut self.key);
        write_key(&mut key, &obj);
        let r = self.upsert_key(&key, obj);
        self.key = key;
        r
    }

    fn check_shard(&self, key: &str) -> Result<u64, StoreError> {
        let h = key_hash(key);
        let n = self.inner.shards.len();
        let s = (h % n as u64) as usize;
        if s != self.shard {
            return Err(StoreError::WrongShard { key: key.to_owned(), shard: self.shard, owner: s });
        }
        Ok(mix(h))
    }

    fn upsert_key(&mut self, key: &str, obj: Obj) -> Result<Option<Obj>, StoreError> {
        let hash = self.check_shard(key)?;
        let inner = Arc::clone(&self.inner);
        let shard = &inner.shards[self.shard];
        let old = shard.objects.upsert(hash, key, obj.clone());
        let st = &shard.stats;
        add(&st.json_bytes, obj.stored_bytes().len() as i64 - old.as_ref().map_or(0, |o| o.stored_bytes().len()) as i64);
        add(&st.uncompressed_bytes, obj.json_len() as i64 - old.as_ref().map_or(0, Obj::json_len) as i64);
        add(&st.compressed_objects, i64::from(obj.is_compressed()) - old.as_ref().map_or(0, |o| i64::from(o.is_compressed())));
        add(&st.meta_bytes, meta_bytes(&obj) as i64 - old.as_ref().map_or(0, meta_bytes) as i64);
        if old.is_none() {
            st.objects.fetch_add(1, Relaxed);
        }
        for (i, indexer) in inner.indexers.iter().enumerate() {
            self.update_index(shard, i, &indexer.kind, key, hash, old.as_ref(), Some(&obj));
        }
        Ok(old)
    }

    /// Removes the object under `key` and its index entries; returns it.
    ///
    /// # Errors
    /// [`StoreError::WrongShard`] when `key` belongs to another shard.
    pub fn delete(&mut self, key: &str) -> Result<Option<Obj>, StoreError> {
        let hash = self.check_shard(key)?;
        let inner = Arc::clone(&self.inner);
        let shard = &inner.shards[self.shard];
        let Some(old) = shard.objects.remove(hash, key) else {
            return Ok(None);
        };
        let st = &shard.stats;
        st.objects.fetch_sub(1, Relaxed);
        add(&st.json_bytes, -(old.stored_bytes().len() as i64));
        add(&st.uncompressed_bytes, -(old.json_len() as i64));
        add(&st.compressed_objects, -i64::from(old.is_compressed()));
        add(&st.meta_bytes, -(meta_bytes(&old) as i64));
        for (i, indexer) in inner.indexers.iter().enumerate() {
            self.update_index(shard, i, &indexer.kind, key, hash, Some(&old), None);
        }
        Ok(Some(old))
    }

    /// Calls `f` with every object of this shard (the replay used for a new handler).
    /// The writer is the shard's only mutator, so the view is exact.
    pub fn for_each(&self, f: impl FnMut(&Obj)) {
        self.data().objects.for_each(f);
    }

    /// Frees what this writer's writes replaced or removed as soon as no reader can
    /// hold it, instead of when the next batch is full.
    ///
    /// A replaced or removed object may still be in a reader's hands, so the store
    /// keeps its reference until every reader active at that moment has finished its
    /// read (epoch-based reclamation); it hands those references over in batches of
    /// 32. A writer about to go idle calls this so that the last few, and the arena
    /// segments their bytes keep alive, are freed without waiting for more writes.
    /// The fifo's shard threads do it whenever their queue runs empty.
    pub fn release_retired(&self) {
        self.data().objects.release_retired();
    }

    /// Whether replaced or removed objects wait for [`ShardWriter::release_retired`].
    pub(crate) fn has_retired(&self) -> bool {
        self.data().objects.has_retired()
    }

    /// Number of objects in this shard.
    pub fn len(&self) -> usize {
        self.data().objects.len()
    }

    /// Whether this shard holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    fn update_index(&mut self, shard: &Shard, i: usize, kind: &IndexKind, key: &str, hash: u64, old: Option<&Obj>, new: Option<&Obj>) {
        self.old_vals.clear();
        self.new_vals.clear();
        if let Some(o) = old {
            self.old_vals.fill(kind, o);
        }
        if let Some(n) = new {
            self.new_vals.fill(kind, n);
        }
        let map = shard.indexes[i].pin();
        let st = &shard.stats;
        let same = |o: &Obj| key_eq(o, key);
        if let Some(n) = new {
            for v in self.new_vals.iter() {
                let look = Lookup::new(v);
                match map.get_key_value(&look) {
                    Some((k, set)) => {
                        let (set, replaced) = set.insert(hash, n.clone(), same);
                        map.insert(k.clone(), set);
                        if !replaced {
                            st.index_entries.fetch_add(1, Relaxed);
                        }
                    }
                    None => {
                        let (set, _) = CowSet::default().insert(hash, n.clone(), same);
                        map.insert(Key::new(v, look.hash), set);
                        st.index_entries.fetch_add(1, Relaxed);
                        st.index_values.fetch_add(1, Relaxed);
                        st.index_value_bytes.fetch_add(v.len() as u64, Relaxed);
                    }
                }
            }
        }
        for v in self.old_vals.iter() {
            if self.new_vals.contains(v) {
                continue;
            }
            let look = Lookup::new(v);
            let Some((k, set)) = map.get_key_value(&look) else { continue };
            let Some(set) = set.remove(hash, same) else { continue };
            st.index_entries.fetch_sub(1, Relaxed);
            if set.is_empty() {
                map.remove(&look);
                st.index_values.fetch_sub(1, Relaxed);
                st.index_value_bytes.fetch_sub(v.len() as u64, Relaxed);
            } else {
                map.insert(k.clone(), set);
            }
        }
    }
}

/// Heap bytes of an object's decoded metadata (not its JSON).
fn meta_bytes(o: &Obj) -> usize {
    let m = o.meta();
    size_of_val(m)
        + m.labels.len() * size_of::<(crate::object::Span, crate::object::Span)>()
        + m.owners.len() * size_of::<crate::object::OwnerSpans>()
        + m.fields.len() * size_of::<Option<crate::object::Span>>()
        + m.spill.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    #[test]
    fn key_eq_matches_write_key_even_for_a_name_that_is_not_utf8() {
        use crate::object::{Meta, Span};
        let p = crate::object::testing::pod("ns", "web-0", "1", &[]);
        assert!(key_eq(&p, "ns/web-0"));
        assert!(!key_eq(&p, "ns/web-1") && !key_eq(&p, "ns/web-") && !key_eq(&p, "nsx/web-0") && !key_eq(&p, "web-0"));
        let node = Obj::from_parts(bytes::Bytes::from_static(b"node-1"), Meta { name: Span::new(0, 6), ..Meta::default() });
        assert!(key_eq(&node, "node-1") && !key_eq(&node, "/node-1"));
        // Built by hand with a name that is not UTF-8: `name()` reads it as "", and the
        // key the object keeps is built from `name()`.
        let bad = Obj::from_parts(bytes::Bytes::from_static(b"ns\xff"), Meta { namespace: Span::new(0, 2), name: Span::new(2, 1), ..Meta::default() });
        let mut k = String::new();
        write_key(&mut k, &bad);
        assert_eq!(k, "ns/");
        assert!(key_eq(&bad, &k));
    }

    #[test]
    fn keys_that_differ_only_in_trailing_zero_bytes_hash_apart() {
        assert_ne!(key_hash("ns/a"), key_hash("ns/a\0"));
        assert_ne!(key_hash(""), key_hash("\0\0\0\0\0\0\0\0"));
        assert_ne!(key_hash("12345678"), key_hash("1234567"));
    }

    #[test]
    fn ten_thousand_keys_spread_evenly_over_four_shards() {
        let mut counts = [0usize; 4];
        for i in 0..10_000 {
            counts[shard_for_key(&format!("ns-{}/pod-{i}", i % 10), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| (2_300..=2_700).contains(&c)), "{counts:?}");
    }

    #[test]
    fn a_lookup_hashes_and_compares_like_the_stored_key() {
        let b = BuildPassHasher;
        let look = Lookup::new("default/web-0");
        let key = Key::new("default/web-0", mix(key_hash("default/web-0")));
        assert_eq!(b.hash_one(&look), b.hash_one(&key));
        assert!(papaya::Equivalent::equivalent(&look, &key));
        assert!(!papaya::Equivalent::equivalent(&Lookup::new("default/web-1"), &key));
        let mut h = b.build_hasher();
        "x".hash(&mut h);
        assert_ne!(std::hash::Hasher::finish(&h), 0);
    }
}
