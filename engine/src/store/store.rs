//! The reader handle ([`Store`]), the writer handle ([`Writer`]) and their constructor.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::config::{Indexer, StoreConfig};
use super::cow::{CowSet, Iter as CowIter};
use super::rv::{Barrier, BarrierState, ResourceVersion};
use super::shard::{Lookup, Shard, ShardWriter, key_hash, mix, shard_for_key};
use super::StoreError;
use crate::{Obj, ObjectRef};

pub(crate) struct Inner {
    pub(crate) shards: Box<[Shard]>,
    pub(crate) indexers: Box<[Indexer]>,
    pub(crate) barrier: BarrierState,
}

/// Creates a sharded store: a cloneable reader [`Store`] and its exclusive [`Writer`].
///
/// Like kube-rs's `reflector::store()`, but the store is split in
/// [`StoreConfig::shards`] shards, each with its own primary map and index maps, so
/// that one thread per shard can write without contending with the others.
///
/// ```
/// use kcache::object::testing::pod;
/// use kcache::store::{store, Indexer, StoreConfig};
/// use kcache::ObjectRef;
///
/// let (reader, mut writer) = store(StoreConfig::default().shards(2).indexer(Indexer::labels()));
/// writer.upsert(pod("default", "web-0", "10", &[("app", "web")]));
/// writer.upsert(pod("default", "web-1", "11", &[("app", "web")]));
/// writer.set_resource_version("11");
///
/// assert_eq!(reader.get(&ObjectRef::new_namespaced("default", "web-0")).map(|o| o.resource_version().to_owned()), Some("10".into()));
/// assert_eq!(reader.index("label", "app=web").unwrap().len(), 2);
/// assert_eq!(reader.resource_version().as_deref(), Some("11"));
/// ```
pub fn store(config: StoreConfig) -> (Store, Writer) {
    let n = config.shards.max(1);
    let inner = Arc::new(Inner {
        shards: (0..n).map(|_| Shard::new(config.indexers.len())).collect(),
        indexers: config.indexers.into_boxed_slice(),
        barrier: BarrierState::new(n),
    });
    let shards = (0..n).map(|i| ShardWriter::new(Arc::clone(&inner), i)).collect();
    (Store { inner: Arc::clone(&inner) }, Writer { barrier: Barrier { state: inner }, shards, seq: 0, key: String::new() })
}

/// A read handle to the cache. Cheap to clone; usable from any thread; every read is
/// lock-free.
///
/// See the [module docs](crate::store#consistency) for what a read may and may not see.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

thread_local! {
    /// Scratch buffer for building keys from an `ObjectRef` without allocating.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Store {
    /// The object named by `r`.
    pub fn get(&self, r: &ObjectRef) -> Option<Obj> {
        KEY.with(|k| {
            let mut k = k.borrow_mut();
            k.clear();
            if let Some(ns) = &r.namespace {
                k.push_str(ns);
                k.push('/');
            }
            k.push_str(&r.name);
            self.get_by_key(&k)
        })
    }

    /// The object under the client-go key `namespace/name` (or `name`).
    ///
    /// Costs one hash of `key` (it picks both the shard and the table slot), one
    /// lock-free probe (the slot and the object's first cache line: see `table`) and
    /// one `Arc` increment for the returned handle. (A closure-based read without the
    /// increment measured no faster in the `store` bench, so there is no public one;
    /// the typed view, whose read goes on to a second lookup, uses `with_by_key`.)
    pub fn get_by_key(&self, key: &str) -> Option<Obj> {
        let (shard, look) = self.locate(key);
        shard.objects.get(look.hash, key)
    }

    /// Calls `f` with the object under `key` without taking a handle of it (no
    /// reference count touched): for a reader whose read goes on to another lookup,
    /// such as the typed view's decoded cache, where the handle is one more shared
    /// counter written per read.
    pub(crate) fn with_by_key<R>(&self, key: &str, f: impl FnOnce(&Obj) -> R) -> Option<R> {
        let (shard, look) = self.locate(key);
        shard.objects.get_with(look.hash, key, f)
    }

    /// The shard owning `key` and its map lookup key, from one hash of `key` (the same
    /// hash [`shard_for_key`] uses).
    fn locate<'k>(&self, key: &'k str) -> (&Shard, Lookup<'k>) {
        let h = key_hash(key);
        let shard = &self.inner.shards[(h % self.inner.shards.len() as u64) as usize];
        (shard, Lookup { hash: mix(h), s: key })
    }

    /// Every object, in no particular order. A weak snapshot: each shard is read as it
    /// is while the iteration passes it.
    pub fn list(&self) -> Vec<Obj> {
        let mut out = Vec::with_capacity(self.len());
        for s in &self.inner.shards {
            s.objects.for_each(|o| out.push(o.clone()));
        }
        out
    }

    /// Calls `f` with every (key, object) of shard `shard`: for the fifo's relist and
    /// resync, which run under that shard's queue lock, and for the informer's
    /// compaction scan, which needs no more than a weak snapshot.
    pub(crate) fn for_each_in_shard(&self, shard: usize, mut f: impl FnMut(&str, &Obj)) {
        if let Some(s) = self.inner.shards.get(shard) {
            s.objects.for_each(|o| f(o.key_str(), o));
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.objects.len()).sum()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    fn index_pos(&self, index: &str) -> Result<usize, StoreError> {
        self.inner.indexers.iter().position(|i| &*i.name == index).ok_or_else(|| StoreError::UnknownIndex { index: index.to_owned() })
    }

    /// The members of `index` under `value`: an O(shards) snapshot that never changes
    /// afterwards (client-go `ByIndex`).
    ///
    /// Built-in indexes are [`super::NAMESPACE_INDEX`] (value: the namespace),
    /// [`super::LABEL_INDEX`] (value: `key=value`) and [`super::OWNER_INDEX`] (value: an
    /// owner's uid); the last two only when added ([`super::Indexer::labels`],
    /// [`super::Indexer::owners`]).
    ///
    /// # Errors
    /// [`StoreError::UnknownIndex`] when no indexer has that name.
    pub fn index(&self, index: &str, value: &str) -> Result<Snapshot, StoreError> {
        let i = self.index_pos(index)?;
        let look = Lookup::new(value);
        let mut parts = Vec::new();
        let mut len = 0;
        for s in &self.inner.shards {
            if let Some(set) = s.indexes[i].pin().get(&look) {
                len += set.len();
                parts.push(set.clone());
            }
        }
        Ok(Snapshot { parts, len })
    }

    /// Every value `index` currently has members under (client-go `ListIndexFuncValues`).
    ///
    /// # Errors
    /// [`StoreError::UnknownIndex`] when no indexer has that name.
    pub fn index_values(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let i = self.index_pos(index)?;
        let mut out: Vec<String> = Vec::new();
        for s in &self.inner.shards {
            out.extend(s.indexes[i].pin().keys().map(|k| k.s.to_string()));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Names of the configured indexes.
    pub fn index_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner.indexers.iter().map(|i| &*i.name)
    }

    /// The resource version every shard has applied up to, or `None` before the first
    /// event (see the [module docs](crate::store#resource-versions)).
    pub fn resource_version(&self) -> Option<String> {
        self.inner.barrier.current().map(|r| r.to_string())
    }

    /// Waits until the store has applied every event up to `rv` (read-your-writes:
    /// pass the resourceVersion the API server returned for your write).
    ///
    /// Integer versions resolve at `store_rv >= rv`; opaque ones only when the store
    /// version equals `rv` at a moment this waiter observes, so bound the wait with a
    /// timeout.
    ///
    /// # Errors
    /// [`StoreError::Closed`] when the writer side shut down first.
    pub async fn wait_for(&self, rv: &str) -> Result<(), StoreError> {
        self.inner.barrier.wait_for(&ResourceVersion::new(rv)).await
    }

    /// Blocking [`Store::wait_for`] with a timeout.
    ///
    /// # Errors
    /// [`StoreError::Timeout`] after `timeout`; [`StoreError::Closed`] as for `wait_for`.
    pub fn wait_for_blocking(&self, rv: &str, timeout: Duration) -> Result<(), StoreError> {
        self.inner.barrier.wait_for_blocking(&ResourceVersion::new(rv), timeout)
    }

    /// Whether the writer side declared the initial list applied on every shard.
    pub fn has_synced(&self) -> bool {
        self.inner.barrier.has_synced()
    }

    /// Whether the writer side shut down (the fifo closed): no write will be applied
    /// any more, and a store that has not synced by now never will.
    pub fn is_closed(&self) -> bool {
        self.inner.barrier.is_closed()
    }

    /// Blocks until [`Store::has_synced`] or `timeout`; returns whether synced.
    pub fn wait_synced_blocking(&self, timeout: Duration) -> bool {
        Barrier { state: Arc::clone(&self.inner) }.wait_synced_blocking(timeout)
    }

    /// Memory accounting (see [`StoreStats`]).
    pub fn stats(&self) -> StoreStats {
        let mut s = StoreStats::default();
        for sh in &self.inner.shards {
            let st = &sh.stats;
            s.objects += st.objects.load(Relaxed);
            s.json_bytes += st.json_bytes.load(Relaxed);
            s.uncompressed_bytes += st.uncompressed_bytes.load(Relaxed);
            s.compressed_objects += st.compressed_objects.load(Relaxed);
            s.meta_bytes += st.meta_bytes.load(Relaxed);
            s.index_values += st.index_values.load(Relaxed);
            s.index_value_bytes += st.index_value_bytes.load(Relaxed);
            s.index_entries += st.index_entries.load(Relaxed);
        }
        // Estimates, per unit:
        // * primary entry: table slots of 16 bytes, 4/3 to 8/3 of them per object
        //   between rebuilds, ~32 bytes (the object's own header and `Inner` are in
        //   `meta_bytes`; the table stores no key);
        // * index value: a papaya entry (~64) plus its key bytes;
        // * index entry: 16 bytes in a leaf plus ~8 bytes of node overhead amortized
        //   over leaves holding 8-16 entries and 16-way branches.
        s.overhead_bytes =
            s.objects * 32 + s.meta_bytes + s.index_values * 64 + s.index_value_bytes + s.index_entries * 24;
        s
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("shards", &self.shards()).field("len", &self.len()).finish()
    }
}

/// Memory held by a store, from counters each shard writer keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Objects stored.
    pub objects: u64,
    /// Sum of `obj.stored_bytes().len()`: the object bytes the store keeps alive
    /// (zstd frames for compressed objects, JSON for the others).
    pub json_bytes: u64,
    /// Sum of `obj.json_len()`: what `json_bytes` would be uncompressed.
    pub uncompressed_bytes: u64,
    /// Stored objects whose body is a zstd frame (their metadata, uncompressed, is in
    /// `meta_bytes`).
    pub compressed_objects: u64,
    /// Heap bytes of the decoded metadata of stored objects.
    pub meta_bytes: u64,
    /// (index, value) pairs with at least one member, counted per shard (a value with
    /// members in two shards has a set in each).
    pub index_values: u64,
    /// Bytes of the index value strings.
    pub index_value_bytes: u64,
    /// (object, index value) memberships.
    pub index_entries: u64,
    /// Estimated bytes beyond `json_bytes`: map entries, keys, metadata, index values
    /// and index entries (an estimate from the layout, not an allocator measurement).
    pub overhead_bytes: u64,
}

/// A point-in-time set of the objects under one index value.
///
/// Taking it costs one map lookup and one `Arc` increment per shard; it never changes
/// afterwards, whatever the writers do. It holds the `Obj` handles themselves, not keys
/// (see the [module docs](crate::store#index-snapshots) for why).
#[derive(Clone, Default)]
pub struct Snapshot {
    parts: Vec<CowSet>,
    len: usize,
}

impl Snapshot {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates the members (no particular order).
    pub fn iter(&self) -> SnapshotIter<'_> {
        SnapshotIter { parts: self.parts.iter(), cur: None }
    }

    /// The members as owned handles.
    pub fn to_vec(&self) -> Vec<Obj> {
        let mut v = Vec::with_capacity(self.len);
        v.extend(self.iter().cloned());
        v
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot").field("len", &self.len).finish()
    }
}

impl<'a> IntoIterator for &'a Snapshot {
    type Item = &'a Obj;
    type IntoIter = SnapshotIter<'a>;
    fn into_iter(self) -> SnapshotIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Snapshot`].
pub struct SnapshotIter<'a> {
    parts: std::slice::Iter<'a, CowSet>,
    cur: Option<CowIter<'a>>,
}

impl<'a> Iterator for SnapshotIter<'a> {
    type Item = &'a Obj;
    fn next(&mut self) -> Option<&'a Obj> {
        loop {
            if let Some(o) = self.cur.as_mut().and_then(Iterator::next) {
                return Some(o);
            }
            self.cur = Some(self.parts.next()?.iter());
        }
    }
}

impl fmt::Debug for SnapshotIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotIter")
    }
}

/// The exclusive write side of a store.
///
/// Not `Clone`: each shard must have exactly one mutator. Use it directly from one
/// thread (it routes each write to its shard), or split it with [`Writer::into_parts`]
/// into one [`ShardWriter`] per shard thread plus the shared [`Barrier`], as the fifo does.
pub struct Writer {
    barrier: Barrier,
    shards: Vec<ShardWriter>,
    seq: u64,
    /// Scratch buffer for routing keys.
    key: String,
}

impl Writer {
    /// A reader for this writer's store.
    pub fn as_reader(&self) -> Store {
        Store { inner: Arc::clone(&self.barrier.state) }
    }

    /// Inserts or replaces `obj`; returns the object it replaced.
    pub fn upsert(&mut self, obj: Obj) -> Option<Obj> {
        let n = self.shards.len();
        super::shard::write_key(&mut self.key, &obj);
        let shard = shard_for_key(&self.key, n);
        // Routing picked the owning shard, so `WrongShard` cannot happen.
        self.shards[shard].upsert(obj).ok().flatten()
    }

    /// Removes the object under `key`; returns it.
    pub fn delete(&mut self, key: &str) -> Option<Obj> {
        let shard = shard_for_key(key, self.shards.len());
        self.shards[shard].delete(key).ok().flatten()
    }

    /// Frees what the writes so far replaced or removed as soon as no reader can hold
    /// it, instead of when the next batch is full: see [`ShardWriter::release_retired`].
    pub fn release_retired(&self) {
        for s in &self.shards {
            s.release_retired();
        }
    }

    /// Declares every write made so far applied at resource version `rv` (all writes
    /// go through this one thread, so there is nothing to wait for).
    pub fn set_resource_version(&mut self, rv: &str) {
        self.seq += 1;
        self.barrier.advance(self.seq, Some(ResourceVersion::new(rv)));
    }

    /// Marks the store synced (the initial list is in).
    pub fn mark_synced(&mut self) {
        self.barrier.mark_synced_at(self.seq);
    }

    /// Splits into the barrier handle and one writer per shard (index = shard number),
    /// for thread-per-core writing.
    pub fn into_parts(self) -> (Barrier, Vec<ShardWriter>) {
        (self.barrier, self.shards)
    }
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("shards", &self.shards.len()).finish()
    }
}
