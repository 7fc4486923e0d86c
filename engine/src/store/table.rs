//! The primary map of one shard: key -> object, changed by one writer at a time and
//! read lock-free from any thread.
//!
//! A `get` is a chain of dependent loads, and under writes, with the store larger than
//! the caches, most of them miss. A general concurrent map (papaya) walks five: the
//! metadata byte, the entry pointer, the boxed entry, the key string and the object
//! whose count the handle increments. This table keeps the key's hash and the object
//! pointer side by side in one 16-byte slot (four to a cache line) and checks the key
//! against the copy the object keeps behind its reference counts (`Obj::key_bytes`),
//! so a `get` walks two: the slot and the object's first cache line. The table stores
//! no key of its own.
//!
//! It is an open-addressing table with linear probing over [`Slot`]s; seize (papaya's
//! reclamation, with its own collector per table) keeps what readers may still hold
//! alive. crossbeam-epoch was measured first and set the tail: every 128th pin of a
//! reader scans all registered threads to advance the epoch, and that showed at the
//! p99 of `get` under writes.
//!
//! # Invariants
//! * In a published table a slot goes empty -> object, object <-> tombstone, and never
//!   back to empty; at most 3/4 of its slots are non-empty. So a probe that starts at
//!   any slot meets an empty one within one pass over the table, whatever the writer
//!   does meanwhile: that is how every lookup ends.
//! * One writer at a time: every change holds `writer` (uncontended in the store,
//!   where a shard's only [`super::ShardWriter`] makes the changes).
//! * A pointer a reader loaded stays valid for as long as the reader's guard: the
//!   writer never drops the table's reference to an object, nor a replaced table,
//!   itself; it retires both to the table's collector, which reclaims them once every
//!   guard active at that moment is gone.
//! * A table owns one reference to each object it points to; a rebuild moves the
//!   references to the new table without touching their counts, and the old table is
//!   freed without dropping them.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr;

use super::shard::key_eq;
use crate::Obj;
use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use crate::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};
use crate::sync::reclaim::{Collector, Guard, LocalGuard};
use crate::sync::{Mutex, PoisonError};

/// Slots of the smallest table; under loom, few enough that a model grows and
/// shrinks it within a handful of writes.
const MIN_SLOTS: usize = if cfg!(kcache_loom) { 4 } else { 16 };

/// Retired objects (and tables) the collector gathers before it starts reclaiming
/// them: the cost of a reclamation is shared by a batch.
const RETIRE_BATCH: usize = 32;

/// The pointer a removed object's slot holds: never a valid object pointer (those
/// are aligned to 8) and never null (null ends a probe).
fn tombstone() -> *mut () {
    ptr::without_provenance_mut(1)
}

/// One slot: the object's [`super::shard::mix`]ed key hash and its pointer (from
/// [`Obj::into_raw`]), null when empty, [`tombstone`] when removed.
///
/// The hash only filters: a reader may pair a pointer with a newer hash (the writer
/// reusing a tombstone), so a match is always confirmed against the object's key.
struct Slot {
    hash: AtomicU64,
    obj: AtomicPtr<()>,
}

struct Table {
    slots: Box<[Slot]>,
    mask: usize,
}

impl Table {
    fn new(slots: usize) -> Table {
        debug_assert!(slots.is_power_of_two());
        Table {
            slots: (0..slots).map(|_| Slot { hash: AtomicU64::new(0), obj: AtomicPtr::new(ptr::null_mut()) }).collect(),
            mask: slots - 1,
        }
    }

    /// Most non-empty slots (objects and tombstones) before a rebuild.
    fn max_used(&self) -> usize {
        self.slots.len() / 4 * 3
    }
}

/// An object borrowed from a table for the life of a guard.
pub(crate) struct Borrowed<'g> {
    obj: ManuallyDrop<Obj>,
    _guard: PhantomData<&'g LocalGuard<'g>>,
}

impl Borrowed<'_> {
    /// # Safety
    /// `p` is a live object pointer (not null, not a tombstone) loaded from a table
    /// under the guard `'g` stands for.
    unsafe fn new(p: *mut ()) -> Self {
        // SAFETY: the pointer came from `Obj::into_raw`, and the reference it stands
        // for is kept (by the table or by the collector) until the guard is gone;
        // `ManuallyDrop` keeps this view from giving that reference back.
        Borrowed { obj: ManuallyDrop::new(unsafe { Obj::from_raw(p) }), _guard: PhantomData }
    }
}

impl Deref for Borrowed<'_> {
    type Target = Obj;
    fn deref(&self) -> &Obj {
        &self.obj
    }
}

/// Whether `p` points to an object.
fn is_object(p: *mut ()) -> bool {
    !p.is_null() && p != tombstone()
}

/// Key -> object, for one shard. See the [module docs](self).
pub(crate) struct ObjectTable {
    /// Never null; a replaced table is retired to `collector`.
    table: AtomicPtr<Table>,
    len: AtomicUsize,
    /// Held by every change.
    writer: Mutex<WriterState>,
    collector: Collector,
}

#[derive(Default)]
struct WriterState {
    /// Non-empty slots (objects and tombstones) of the current table.
    used: usize,
    /// Objects retired since the collector was last asked to start on them.
    unflushed: usize,
}

/// Drops the table's reference to an object: the collector's reclaimer for objects.
///
/// # Safety
/// `p` came from `Obj::into_raw` and its reference belongs to the caller.
unsafe fn reclaim_obj(p: *mut (), _: &Collector) {
    // SAFETY: per the contract.
    drop(unsafe { Obj::from_raw(p) });
}

/// Frees a replaced table (not the objects its slots point to: their references
/// moved to the table that replaced it).
///
/// # Safety
/// `p` came from `Box::into_raw` and nothing reaches it any more.
unsafe fn reclaim_table(p: *mut Table, _: &Collector) {
    // SAFETY: per the contract.
    drop(unsafe { Box::from_raw(p) });
}

impl WriterState {
    /// Hands the table's reference behind `p` (an object pointer just unlinked from
    /// a slot) to the collector, and returns a new handle to the object.
    fn retire(&mut self, p: *mut (), guard: &LocalGuard<'_>) -> Obj {
        // SAFETY: `p` was in a slot, so it came from `Obj::into_raw` and the table
        // held a reference, which stays with the collector: this handle is a view
        // that must not give it back.
        let out = Obj::clone(&ManuallyDrop::new(unsafe { Obj::from_raw(p) }));
        // SAFETY: `p` is unlinked, so threads that enter from now on cannot reach it;
        // the collector drops the table's reference once the guards that might have
        // loaded it are gone.
        unsafe { guard.defer_retire(p, reclaim_obj) };
        self.unflushed += 1;
        out
    }
}

impl Default for ObjectTable {
    fn default() -> Self {
        ObjectTable {
            table: AtomicPtr::new(Box::into_raw(Box::new(Table::new(MIN_SLOTS)))),
            len: AtomicUsize::new(0),
            writer: Mutex::new(WriterState::default()),
            collector: Collector::new().batch_size(RETIRE_BATCH),
        }
    }
}

impl ObjectTable {
    fn current<'g>(&self, guard: &'g LocalGuard<'_>) -> &'g Table {
        // SAFETY: the table pointer is never null (set at construction, replaced only
        // by a new table), and a replaced table is retired to the collector, so it
        // outlives `guard`.
        unsafe { &*guard.protect(&self.table, Acquire) }
    }

    /// The object under `key`, whose mixed hash is `hash`.
    pub(crate) fn get(&self, hash: u64, key: &str) -> Option<Obj> {
        let guard = self.collector.enter();
        self.find(hash, key, &guard).map(|o| Obj::clone(&o))
    }

    /// Calls `f` with the object under `key`, whose mixed hash is `hash`, without
    /// taking a handle of it.
    pub(crate) fn get_with<R>(&self, hash: u64, key: &str, f: impl FnOnce(&Obj) -> R) -> Option<R> {
        let guard = self.collector.enter();
        self.find(hash, key, &guard).map(|o| f(&o))
    }

    fn find<'g>(&self, hash: u64, key: &str, guard: &'g LocalGuard<'_>) -> Option<Borrowed<'g>> {
        let t = self.current(guard);
        let mut i = hash as usize & t.mask;
        loop {
            let slot = &t.slots[i];
            let p = guard.protect(&slot.obj, Acquire);
            if p.is_null() {
                return None;
            }
            if p != tombstone() && slot.hash.load(Relaxed) == hash {
                // SAFETY: an object pointer loaded under `guard`.
                let o = unsafe { Borrowed::new(p) };
                if key_eq(&o, key) {
                    return Some(o);
                }
            }
            i = (i + 1) & t.mask;
        }
    }

    /// Calls `f` with every object: a weak snapshot, each object at some version it
    /// had during the call (exact when the writer is not running).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Obj)) {
        let guard = self.collector.enter();
        for slot in self.current(&guard).slots.iter() {
            let p = guard.protect(&slot.obj, Acquire);
            if is_object(p) {
                // SAFETY: an object pointer loaded under `guard`.
                f(&*unsafe { Borrowed::new(p) });
            }
        }
    }

    /// Number of objects.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Whether objects were retired since the last [`ObjectTable::release_retired`].
    pub(crate) fn has_retired(&self) -> bool {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner).unflushed > 0
    }

    /// Starts reclaiming retired objects now, rather than when [`RETIRE_BATCH`] have
    /// gathered: a writer about to go idle calls it, so that what it replaced (and the
    /// arena segments under it) is freed without more writes. Call it on the writing
    /// thread: the collector's batches are per thread.
    pub(crate) fn release_retired(&self) {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.collector.enter().flush();
        w.unflushed = 0;
    }

    /// Inserts `obj` under `key` (mixed hash `hash`); returns the object it replaced.
    pub(crate) fn upsert(&self, hash: u64, key: &str, obj: Obj) -> Option<Obj> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let guard = self.collector.enter();
        let t = self.current(&guard);
        let mut i = hash as usize & t.mask;
        let mut reusable = None;
        loop {
            let slot = &t.slots[i];
            let p = slot.obj.load(Relaxed);
            if p.is_null() {
                break;
            }
            if p == tombstone() {
                reusable.get_or_insert(i);
            } else if slot.hash.load(Relaxed) == hash {
                // SAFETY: an object pointer loaded under `guard`.
                if key_eq(&*unsafe { Borrowed::new(p) }, key) {
                    let old = slot.obj.swap(obj.into_raw(), Release);
                    return Some(w.retire(old, &guard));
                }
            }
            i = (i + 1) & t.mask;
        }
        let target = match reusable {
            Some(r) => r,
            None if w.used < t.max_used() => {
                w.used += 1;
                i
            }
            None => {
                let t = self.rebuild(t, self.len() + 1, &mut w, &guard);
                let mut i = hash as usize & t.mask;
                while !t.slots[i].obj.load(Relaxed).is_null() {
                    i = (i + 1) & t.mask;
                }
                w.used += 1;
                i
            }
        };
        let t = self.current(&guard);
        let slot = &t.slots[target];
        slot.hash.store(hash, Relaxed);
        // Release: a reader that loads the pointer sees the hash and the object's contents.
        slot.obj.store(obj.into_raw(), Release);
        self.len.fetch_add(1, Relaxed);
        None
    }

    /// Removes the object under `key` (mixed hash `hash`) and returns it.
    pub(crate) fn remove(&self, hash: u64, key: &str) -> Option<Obj> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let guard = self.collector.enter();
        let t = self.current(&guard);
        let mut i = hash as usize & t.mask;
        loop {
            let slot = &t.slots[i];
            let p = slot.obj.load(Relaxed);
            if p.is_null() {
                return None;
            }
            // SAFETY (in the condition): an object pointer loaded under `guard`.
            if p != tombstone() && slot.hash.load(Relaxed) == hash && key_eq(&*unsafe { Borrowed::new(p) }, key) {
                let old = slot.obj.swap(tombstone(), Release);
                let len = self.len.fetch_sub(1, Relaxed) - 1;
                let removed = w.retire(old, &guard);
                // Shrink once an eighth of the slots hold objects: misses probe
                // through tombstones, and a table emptied by deletes would keep its size.
                if t.slots.len() > MIN_SLOTS && len * 8 < t.slots.len() {
                    self.rebuild(t, len, &mut w, &guard);
                }
                return Some(removed);
            }
            i = (i + 1) & t.mask;
        }
    }

    /// Replaces `old` (the current table) by a table sized for `live` objects, holding
    /// every object of `old` and no tombstone; returns the new table.
    fn rebuild<'g>(&self, old: &Table, live: usize, w: &mut WriterState, guard: &'g LocalGuard<'_>) -> &'g Table {
        let slots = ((live + 1).next_power_of_two() * 2).max(MIN_SLOTS);
        let new = Table::new(slots);
        let mut moved = 0;
        for slot in old.slots.iter() {
            let p = slot.obj.load(Relaxed);
            if !is_object(p) {
                continue;
            }
            let hash = slot.hash.load(Relaxed);
            let mut i = hash as usize & new.mask;
            while !new.slots[i].obj.load(Relaxed).is_null() {
                i = (i + 1) & new.mask;
            }
            new.slots[i].hash.store(hash, Relaxed);
            new.slots[i].obj.store(p, Relaxed);
            moved += 1;
        }
        w.used = moved;
        // Release: readers that load the new table see its slots.
        let prev = self.table.swap(Box::into_raw(Box::new(new)), Release);
        // SAFETY: `prev` is no longer reachable from `self`, and guards that loaded it
        // hold off the reclaimer. `Table` has no drop glue for the objects: their
        // references now belong to the new table.
        unsafe { guard.defer_retire(prev, reclaim_table) };
        w.unflushed += 1;
        self.current(guard)
    }
}

impl Drop for ObjectTable {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can reach this table any more, and the
        // current table was never retired, so this is its only owner. (The collector,
        // dropped after this, reclaims what was retired.) A load rather than
        // `get_mut`, which loom's atomics lack.
        let t = unsafe { Box::from_raw(self.table.load(Relaxed)) };
        for slot in t.slots.iter() {
            let p = slot.obj.load(Relaxed);
            if is_object(p) {
                // SAFETY: the table's own reference to a live object, given back once.
                drop(unsafe { Obj::from_raw(p) });
            }
        }
    }
}

#[cfg(all(test, not(kcache_loom)))]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;


    use proptest::prelude::*;

    use super::*;
    use crate::object::testing::pod;

    fn key(i: usize) -> String {
        format!("ns-{}/pod-{i}", i % 3)
    }

    fn obj(i: usize, rv: u64) -> Obj {
        pod(&format!("ns-{}", i % 3), &format!("pod-{i}"), &rv.to_string(), &[])
    }

    fn rv(o: &Obj) -> u64 {
        o.resource_version().parse().unwrap()
    }

    /// Fails unless every handle in `held` is the only one left.
    fn assert_released(held: &[Obj]) {
        assert!(held.iter().all(|o| o.ref_count() == 1), "objects still referenced: {:?}", held.iter().map(Obj::ref_count).collect::<Vec<_>>());
    }

    #[test]
    fn colliding_hashes_share_a_probe_chain_through_tombstones() {
        let t = ObjectTable::default();
        // One hash for every key: a single chain, resolved by the key check alone.
        for i in 0..40 {
            assert!(t.upsert(7, &key(i), obj(i, 1)).is_none());
        }
        assert_eq!(t.len(), 40);
        for i in (0..40).step_by(2) {
            assert_eq!(t.remove(7, &key(i)).map(|o| o.name().to_owned()), Some(format!("pod-{i}")));
        }
        assert_eq!(t.len(), 20);
        for i in 0..40 {
            assert_eq!(t.get(7, &key(i)).is_some(), i % 2 == 1, "{i}");
        }
        // A tombstone's slot is reused, and a replaced object comes back.
        assert!(t.upsert(7, &key(0), obj(0, 2)).is_none());
        assert_eq!(t.upsert(7, &key(0), obj(0, 3)).map(|o| rv(&o)), Some(2));
        assert_eq!(t.get(7, &key(0)).map(|o| rv(&o)), Some(3));
        assert!(t.get(8, &key(0)).is_none(), "the hash filters before the key");
        assert!(t.remove(7, "ns-0/absent").is_none());
    }

    #[test]
    fn grows_and_shrinks_and_releases_every_object() {
        // Miri runs this too, on fewer objects (it is ~1000x slower).
        let n = if cfg!(miri) { 300 } else { 5_000 };
        let h = |i: usize| (i as u64).wrapping_mul(0x9E37_79B9);
        let t = ObjectTable::default();
        let all: Vec<Obj> = (0..n).map(|i| obj(i, 1)).collect();
        for (i, o) in all.iter().enumerate() {
            t.upsert(h(i), &key(i), o.clone());
        }
        let slots = t.current(&t.collector.enter()).slots.len();
        assert!((n * 4 / 3..=(n + 1) * 4).contains(&slots), "{slots} slots for {n}");
        let mut seen = 0;
        t.for_each(|_| seen += 1);
        assert_eq!(seen, n);
        for i in 0..n - 10 {
            assert!(t.remove(h(i), &key(i)).is_some());
        }
        let guard = t.collector.enter();
        assert!(t.current(&guard).slots.len() <= 64, "{} slots for 10 objects", t.current(&guard).slots.len());
        drop(guard);
        for i in n - 10..n {
            assert_eq!(t.get(h(i), &key(i)).map(|o| o.name().to_owned()), Some(format!("pod-{i}")));
        }
        drop(t);
        assert_released(&all);
    }

    #[test]
    fn a_full_batch_of_retired_objects_is_released_without_asking() {
        let t = ObjectTable::default();
        let versions: Vec<Obj> = (0..=RETIRE_BATCH as u64).map(|v| obj(1, v)).collect();
        for v in &versions {
            t.upsert(1, &key(1), v.clone());
        }
        // Every version but the stored one was retired, a full batch, reclaimed once
        // the writer's own guard was gone.
        assert_released(&versions[..RETIRE_BATCH]);
        assert_eq!(versions[RETIRE_BATCH].ref_count(), 2);
    }

    #[test]
    fn replaced_and_removed_objects_are_released() {
        let t = ObjectTable::default();
        let v1 = obj(1, 1);
        let v2 = obj(1, 2);
        t.upsert(1, &key(1), v1.clone());
        drop(t.upsert(1, &key(1), v2.clone()));
        drop(t.remove(1, &key(1)));
        // Unlinked, but held for readers until released (or RETIRE_BATCH gather).
        assert!(t.has_retired());
        assert_eq!((v1.ref_count(), v2.ref_count()), (2, 2));
        t.release_retired();
        assert!(!t.has_retired());
        assert_released(&[v1, v2]);
        assert_eq!(t.len(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(usize, u64),
        Remove(usize),
        Get(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..64usize, 1..1_000u64).prop_map(|(k, v)| Op::Upsert(k, v)),
            2 => (0..64usize).prop_map(Op::Remove),
            2 => (0..64usize).prop_map(Op::Get),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]
        /// Against a `HashMap`, with hashes from a small range so chains collide.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..400), hash_bits in 1..6u32) {
            let t = ObjectTable::default();
            let mut model: HashMap<usize, u64> = HashMap::new();
            let h = |k: usize| (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - hash_bits);
            for op in ops {
                match op {
                    Op::Upsert(k, v) => prop_assert_eq!(t.upsert(h(k), &key(k), obj(k, v)).map(|o| rv(&o)), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(t.remove(h(k), &key(k)).map(|o| rv(&o)), model.remove(&k)),
                    Op::Get(k) => prop_assert_eq!(t.get(h(k), &key(k)).map(|o| rv(&o)), model.get(&k).copied()),
                }
                prop_assert_eq!(t.len(), model.len());
            }
            let mut all = Vec::new();
            t.for_each(|o| all.push((o.name().to_owned(), rv(o))));
            all.sort();
            let mut want: Vec<(String, u64)> = model.iter().map(|(k, v)| (format!("pod-{k}"), *v)).collect();
            want.sort();
            prop_assert_eq!(all, want);
        }
    }

    /// Readers race a writer that updates, removes and re-inserts keys (growing and
    /// shrinking the table as it goes): every read returns the key asked for, and
    /// each reader sees a key's versions in order.
    #[test]
    fn readers_racing_the_writer_see_each_key_move_forward() {
        const KEYS: usize = if cfg!(miri) { 40 } else { 2_000 };
        let t = Arc::new(ObjectTable::default());
        let hash = |k: usize| (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        let stop = Arc::new(AtomicBool::new(false));
        // The writer starts once both readers read: on a busy machine a reader
        // thread may otherwise first run after the writer is done.
        let reading = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (t, stop, reading) = (Arc::clone(&t), Arc::clone(&stop), Arc::clone(&reading));
                std::thread::spawn(move || {
                    let mut last = vec![0u64; KEYS];
                    let mut reads = 0u64;
                    let mut k = r;
                    while !stop.load(Relaxed) {
                        k = (k + 7) % KEYS;
                        if let Some(o) = t.get(hash(k), &key(k)) {
                            assert_eq!(o.name(), format!("pod-{k}"));
                            let v = rv(&o);
                            assert!(v >= last[k], "key {k}: version {v} after {}", last[k]);
                            last[k] = v;
                        }
                        reads += 1;
                        if reads == 1 {
                            reading.fetch_add(1, Relaxed);
                        }
                        if reads.is_multiple_of(4_096) {
                            t.for_each(|o| assert!(o.name().starts_with("pod-")));
                        }
                    }
                    reads
                })
            })
            .collect();
        while reading.load(Relaxed) < 2 {
            std::thread::yield_now();
        }
        let mut version = 0u64;
        // Ends on an even round: every key present.
        for round in 0..7 {
            for k in 0..KEYS {
                version += 1;
                t.upsert(hash(k), &key(k), obj(k, version));
            }
            // Remove most keys in odd rounds: the table shrinks, then grows again.
            if round % 2 == 1 {
                for k in 0..KEYS - 10 {
                    t.remove(hash(k), &key(k));
                }
            }
        }
        stop.store(true, Relaxed);
        for r in readers {
            assert!(r.join().expect("reader panicked") > 0);
        }
        assert_eq!(t.len(), KEYS);
    }
}

/// Loom models of the table: one writer inserting, replacing, removing, growing and
/// shrinking against a concurrent reader, under every interleaving up to a
/// preemption bound and every value each load may return under the memory model.
///
/// The properties are the module's invariants as a reader sees them: a `get` returns
/// the object of the key asked for, the old or the new one while a key changes and
/// never an older one after a newer; a key present throughout (including one whose
/// probe chain runs through a removal's tombstone, or one a rebuild moves) is always
/// found; a removed key is not found once the removal is observed; and, with the
/// table dropped, every reference it held was given back exactly once.
///
/// loom sees the table's own atomics (the table pointer, each slot's hash and
/// pointer, the length) and its writer lock. seize is replaced by the model in
/// [`crate::sync::reclaim`], which reclaims as early as the guards allow and fails a
/// load of anything it reclaimed: that is how a pointer retired while still
/// reachable, or a table or object freed under a reader, would show. loom does not
/// see: inside an object (its bytes and reference counts are std's, so a reader's key
/// check reads memory loom does not track), seize's own fences and batches (the
/// model's lock synchronises more than they do, so orderings are checked only for a
/// reader whose guard overlaps the writer's change), the same object inserted twice
/// (the model tells pointers apart by address, so each model inserts fresh objects),
/// and interleavings past the bound.
#[cfg(all(test, kcache_loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;
    use loom::thread;

    use super::*;
    use crate::object::testing::pod;

    /// Runs `model` under every interleaving with at most two preemptions: enough for
    /// a reader to be preempted inside a lookup and again inside the next, and small
    /// enough that every model here finishes in seconds in release mode.
    fn check(model: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(model);
    }

    fn obj(name: &str, rv: u64) -> Obj {
        pod("ns", name, &rv.to_string(), &[])
    }

    /// The version `t` holds under `name` (hash `hash`), checking it is that key's object.
    fn version(t: &ObjectTable, hash: u64, name: &str) -> Option<u64> {
        let o = t.get(hash, &format!("ns/{name}"))?;
        assert_eq!(o.name(), name, "a get of {name} returned another key's object");
        Some(o.resource_version().parse().expect("numeric resourceVersion"))
    }

    /// Drops the table and fails unless each of `held` is referenced only by the test.
    fn assert_released(t: Arc<ObjectTable>, held: &[Obj]) {
        drop(t);
        for o in held {
            assert_eq!(o.ref_count(), 1, "{} version {} still referenced (or released twice)", o.name(), o.resource_version());
        }
    }

    #[test]
    fn a_reader_sees_the_old_or_the_new_object_of_a_replaced_key() {
        check(|| {
            let t = Arc::new(ObjectTable::default());
            let (a1, a2, b1) = (obj("a", 1), obj("a", 2), obj("b", 1));
            t.upsert(0, "ns/a", a1.clone());
            t.upsert(1, "ns/b", b1.clone());
            let writer = {
                let (t, a2) = (Arc::clone(&t), a2.clone());
                thread::spawn(move || {
                    let old = t.upsert(0, "ns/a", a2).expect("a was present");
                    assert_eq!(old.resource_version(), "1");
                })
            };
            let first = version(&t, 0, "a").expect("a is present throughout");
            let second = version(&t, 0, "a").expect("a is present throughout");
            assert!(second >= first, "a went back from version {first} to {second}");
            assert_eq!(version(&t, 1, "b"), Some(1));
            writer.join().expect("writer");
            assert_eq!(version(&t, 0, "a"), Some(2));
            assert_released(t, &[a1, a2, b1]);
        });
    }

    #[test]
    fn a_removed_key_is_not_found_once_the_remove_is_observed() {
        check(|| {
            let t = Arc::new(ObjectTable::default());
            let removed = Arc::new(AtomicBool::new(false));
            let (a1, b1) = (obj("a", 1), obj("b", 1));
            // One hash: b's probe chain runs through a's slot, a tombstone once removed.
            t.upsert(0, "ns/a", a1.clone());
            t.upsert(0, "ns/b", b1.clone());
            let writer = {
                let (t, removed) = (Arc::clone(&t), Arc::clone(&removed));
                thread::spawn(move || {
                    assert!(t.remove(0, "ns/a").is_some());
                    removed.store(true, Release);
                })
            };
            let observed = removed.load(Acquire);
            let first = version(&t, 0, "a");
            if observed {
                assert_eq!(first, None, "a found after its removal was observed");
            }
            assert_eq!(version(&t, 0, "b"), Some(1), "b lost behind a's tombstone");
            let second = version(&t, 0, "a");
            if first.is_none() {
                assert_eq!(second, None, "a came back after it was seen removed");
            }
            writer.join().expect("writer");
            assert_eq!((version(&t, 0, "a"), t.len()), (None, 1));
            assert_released(t, &[a1, b1]);
        });
    }

    #[test]
    fn a_reused_tombstone_never_answers_for_another_key() {
        check(|| {
            let t = Arc::new(ObjectTable::default());
            let (a1, b1) = (obj("a", 1), obj("b", 1));
            t.upsert(0, "ns/a", a1.clone());
            let writer = {
                let (t, b1) = (Arc::clone(&t), b1.clone());
                thread::spawn(move || {
                    t.remove(0, "ns/a");
                    // Hash 4 starts at a's slot (4 slots): b reuses its tombstone, so
                    // a reader may pair a's pointer with b's hash.
                    t.upsert(4, "ns/b", b1);
                    t.release_retired();
                })
            };
            assert!(matches!(version(&t, 4, "b"), None | Some(1)));
            assert!(matches!(version(&t, 0, "a"), None | Some(1)));
            writer.join().expect("writer");
            assert_eq!((version(&t, 0, "a"), version(&t, 4, "b")), (None, Some(1)));
            assert_eq!(t.current(&t.collector.enter()).slots.len(), MIN_SLOTS, "b reused a's slot");
            assert_released(t, &[a1, b1]);
        });
    }

    #[test]
    fn growing_keeps_every_entry_for_readers() {
        check(|| {
            let t = Arc::new(ObjectTable::default());
            let held: Vec<Obj> = ["a", "b", "c", "d"].iter().map(|n| obj(n, 1)).collect();
            // Three objects fill the smallest table (3/4 of 4 slots): the fourth grows it.
            for (h, o) in held[..3].iter().enumerate() {
                t.upsert(h as u64, &format!("ns/{}", o.name()), o.clone());
            }
            let writer = {
                let (t, d) = (Arc::clone(&t), held[3].clone());
                thread::spawn(move || assert!(t.upsert(3, "ns/d", d).is_none()))
            };
            assert_eq!(version(&t, 0, "a"), Some(1), "a lost while the table grew");
            assert_eq!(version(&t, 2, "c"), Some(1), "c lost while the table grew");
            let mut names = Vec::new();
            t.for_each(|o| names.push(o.name().to_owned()));
            names.sort();
            assert!(names == ["a", "b", "c"] || names == ["a", "b", "c", "d"], "for_each saw {names:?}");
            writer.join().expect("writer");
            for (h, o) in held.iter().enumerate() {
                assert_eq!(version(&t, h as u64, o.name()), Some(1));
            }
            assert!(t.current(&t.collector.enter()).slots.len() > MIN_SLOTS, "the table grew");
            assert_released(t, &held);
        });
    }

    #[test]
    fn shrinking_keeps_every_entry_for_readers() {
        check(|| {
            let t = Arc::new(ObjectTable::default());
            let held: Vec<Obj> = ["a", "b", "c", "d"].iter().map(|n| obj(n, 1)).collect();
            for (h, o) in held.iter().enumerate() {
                t.upsert(h as u64, &format!("ns/{}", o.name()), o.clone());
            }
            // Two objects left in 16 slots; the next remove leaves one in eight and
            // shrinks the table.
            t.remove(1, "ns/b");
            t.remove(2, "ns/c");
            let writer = {
                let t = Arc::clone(&t);
                thread::spawn(move || assert!(t.remove(0, "ns/a").is_some()))
            };
            let first = version(&t, 0, "a");
            assert_eq!(version(&t, 3, "d"), Some(1), "d lost while the table shrank");
            if first.is_none() {
                assert_eq!(version(&t, 0, "a"), None, "a came back after it was seen removed");
            }
            writer.join().expect("writer");
            assert_eq!((version(&t, 0, "a"), version(&t, 3, "d")), (None, Some(1)));
            assert_eq!(t.current(&t.collector.enter()).slots.len(), MIN_SLOTS, "the table shrank");
            assert_released(t, &held);
        });
    }
}
