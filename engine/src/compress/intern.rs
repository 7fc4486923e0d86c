//! Interning of the metadata compressed objects share ([`SharedMeta`]).
//!
//! Once a body is compressed, its metadata is what a stored object costs: the pods
//! of one ReplicaSet carry the same namespace, labels and owner references, about
//! half of that. An [`Interner`] keeps one [`SharedMeta`] per distinct set, handed
//! out as an `Arc` that every object with that set holds.
//!
//! # Guarantees
//! * Two objects get the same `Arc` exactly when their labels, owner references
//!   and namespace are equal, in the same document order.
//! * Sets no object holds any more are dropped by a sweep that runs when a shard of
//!   the interner has doubled since the last one: the interner holds at most about
//!   twice the live sets, and the sweep's cost is amortized over the inserts that
//!   caused it.
//! * Lookups of different sets contend only when they hash to the same of
//!   [`SHARDS`] locks.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use crate::object::SharedMeta;

/// Locks the interner is split over.
pub const SHARDS: usize = 16;

/// Sets a shard holds before its first sweep.
const FIRST_SWEEP: usize = 64;

/// Distinct [`SharedMeta`] sets of one informer, each kept once.
#[derive(Debug)]
pub struct Interner {
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
    bytes: AtomicUsize,
}

#[derive(Debug, Default)]
struct Shard {
    sets: HashSet<Arc<SharedMeta>>,
    /// Sets held after the last sweep.
    swept_at: usize,
    /// Heap bytes of `sets` (the sets' own, plus the `Arc` headers).
    bytes: usize,
}

/// What an [`Interner`] holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InternStats {
    /// Distinct sets held (some may be held by no object until the next sweep).
    pub sets: usize,
    /// Their heap bytes.
    pub bytes: usize,
}

impl Default for Interner {
    fn default() -> Self {
        Interner::new()
    }
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Interner { hasher: RandomState::new(), shards: std::array::from_fn(|_| Mutex::default()), bytes: AtomicUsize::new(0) }
    }

    /// The interned copy of `set`: the one already held when an equal set is, else
    /// `set` itself, now held.
    pub fn intern(&self, set: SharedMeta) -> Arc<SharedMeta> {
        let shard = &self.shards[(self.hasher.hash_one(&set) as usize) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = shard.sets.get(&set) {
            return Arc::clone(held);
        }
        if shard.sets.len() >= (2 * shard.swept_at).max(FIRST_SWEEP) {
            let before = shard.bytes;
            // Held only here: no object has this set any more.
            shard.sets.retain(|s| Arc::strong_count(s) > 1);
            shard.bytes = shard.sets.iter().map(|s| set_bytes(s)).sum();
            shard.swept_at = shard.sets.len();
            self.bytes.fetch_sub(before - shard.bytes, Relaxed);
        }
        let held = Arc::new(set);
        let bytes = set_bytes(&held);
        shard.bytes += bytes;
        self.bytes.fetch_add(bytes, Relaxed);
        shard.sets.insert(Arc::clone(&held));
        held
    }

    /// Sets held and their bytes.
    pub fn stats(&self) -> InternStats {
        let sets = self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).sets.len()).sum();
        InternStats { sets, bytes: self.bytes.load(Relaxed) }
    }
}

/// Heap bytes of one held set: its `Arc` (two counters and the struct) and its boxes.
fn set_bytes(set: &SharedMeta) -> usize {
    2 * std::mem::size_of::<usize>() + std::mem::size_of::<SharedMeta>() + set.heap_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{OwnerSpans, Span};

    fn set(labels: &[(&str, &str)], owner: &str) -> SharedMeta {
        let mut text = String::new();
        let mut put = |s: &str| {
            let at = text.len() as u32;
            text.push_str(s);
            Span::shared(at, s.len() as u32)
        };
        let labels: Box<[(Span, Span)]> = labels.iter().map(|(k, v)| (put(k), put(v))).collect();
        let owners = Box::new([OwnerSpans { name: put(owner), ..OwnerSpans::default() }]);
        SharedMeta { labels, owners, text: text.into_boxed_str() }
    }

    #[test]
    fn equal_sets_share_one_copy_and_different_ones_do_not() {
        let interner = Interner::new();
        let a = interner.intern(set(&[("app", "web")], "rs-1"));
        let b = interner.intern(set(&[("app", "web")], "rs-1"));
        assert!(Arc::ptr_eq(&a, &b));
        let other_owner = interner.intern(set(&[("app", "web")], "rs-2"));
        assert!(!Arc::ptr_eq(&a, &other_owner));
        // Same text, split differently: not the same set.
        let resplit = interner.intern(set(&[("ap", "pweb")], "rs-1"));
        assert!(!Arc::ptr_eq(&a, &resplit));
        assert_eq!(interner.stats().sets, 3);
    }

    #[test]
    fn sets_no_object_holds_are_swept_as_the_interner_grows() {
        let interner = Interner::new();
        let kept: Vec<_> = (0..10).map(|i| interner.intern(set(&[("app", "kept")], &format!("rs-{i}")))).collect();
        for i in 0..10_000 {
            drop(interner.intern(set(&[("app", "gone")], &format!("rs-{i}"))));
        }
        let stats = interner.stats();
        assert!(stats.sets < 2 * SHARDS * FIRST_SWEEP, "{stats:?}");
        for (i, k) in kept.iter().enumerate() {
            assert!(Arc::ptr_eq(k, &interner.intern(set(&[("app", "kept")], &format!("rs-{i}")))), "a held set survives sweeps");
        }
        let held: usize = interner.shards.iter().map(|s| s.lock().unwrap().bytes).sum();
        assert_eq!(stats.bytes, held);
    }
}
