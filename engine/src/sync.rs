//! The synchronisation primitives of the engine's lock-free and blocking hot structures: std's, or loom's under `--cfg kcache_loom`.
//!
//! (Not the customary `--cfg loom`: RUSTFLAGS reach every dependency, and tokio and
//! event-listener have loom variants of their own that do not build in this graph.)
//!
//! loom checks concurrent code by running a test's threads under every interleaving
//! (up to a preemption bound) and every outcome the memory model allows for each
//! load, but it sees only the operations made through its own types. The object
//! table ([`crate::store`]'s primary map, the engine's only `unsafe`), the fifo's
//! shard queue and the workqueue therefore take their atomics, `Mutex` and `Condvar`
//! from this module (loom tests spawn loom's threads and share through loom's `Arc`
//! themselves). A normal build gets
//! std's types under their own names: this module adds no code and no indirection
//! to it. `docs/TESTING.md` has the loom command.
//!
//! # Kept on std in every build
//! loom has no counterpart for these, so the files that need them import them from
//! std directly, and loom cannot see those items:
//! * `Arc`: loom's has no `Weak`, cannot become a `Waker` and is not the `Arc` the
//!   rest of the engine passes in (the fifo's `Arc<str>` keys and handler
//!   registrations), so the queues keep std's.
//! * `OnceLock` (the workqueue's timer).
//! * An atomic in a `static`: loom's constructors are not `const`. The workqueue's
//!   `AtomicUsize` (its home-shard counter is a `static`) stays std's for the whole
//!   file, since a file imports one `AtomicUsize`; a loom model of the workqueue
//!   would first move that counter out of the file.
//! * The `Mutex`es of `queue::rate_limiter` and `queue::metrics`: loom's `Mutex` has
//!   no `Debug`, which the types holding them derive (and the rate limiters' lock
//!   helper names std's guard). Neither is a hot structure.
//! * `PoisonError`: loom's locks return std's `LockResult`, so std's type serves both
//!   builds and is re-exported here unchanged.
//!
//! # Reclamation
//! The object table frees what readers may still hold through seize, whose
//! collector is std atomics and thread-locals that loom cannot see (and whose
//! `protect` takes a std `AtomicPtr`). [`reclaim`] is seize's `Collector`, `Guard`
//! and `LocalGuard` in a normal build and, under loom, a model with the same calls
//! that reclaims as early as the guards allow and fails the test when a reader
//! loads a pointer it already reclaimed.

#[cfg(not(kcache_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

#[cfg(kcache_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(kcache_loom)]
pub(crate) use std::sync::PoisonError;

/// Atomic integers, pointers and orderings.
pub(crate) mod atomic {
    #[cfg(not(kcache_loom))]
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

    #[cfg(kcache_loom)]
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
}

/// Deferred reclamation for lock-free readers: seize, or under loom a model of it.
#[cfg(not(kcache_loom))]
pub(crate) mod reclaim {
    pub(crate) use seize::{Collector, Guard, LocalGuard};
}

/// Deferred reclamation for lock-free readers: seize, or under loom a model of it.
///
/// The model keeps seize's contract (something retired is reclaimed only once every
/// guard that was active when it was retired is gone) and is stricter than seize in
/// when it reclaims: at once, where seize waits for a batch to fill or a flush. So a
/// pointer retired while still reachable is found by the first reader to load it
/// after the guards at its retirement end. Guards enter, leave and retire under a
/// loom `Mutex`, which gives what seize's fences give: a reader that enters after a
/// retirement sees the unlink that preceded it. It gives more too (everything the
/// writer did before its last retirement or guard exit), so the table's own orderings
/// are checked only for readers whose guards overlap the writer's change.
///
/// What the model reclaims is only marked reclaimed (the check in [`Guard::protect`]
/// reads the marks); the reclaimers run when the collector drops, so that no address
/// is reused during a model run and a mark cannot match a new allocation.
#[cfg(kcache_loom)]
pub(crate) mod reclaim {
    use std::collections::HashSet;

    use super::atomic::{AtomicPtr, Ordering};

    /// A retired pointer and the guards it waits for.
    struct Retired {
        addr: usize,
        /// Ids of the guards active when it was retired that are still active.
        waiting_for: Vec<u64>,
        reclaim: Box<dyn FnOnce(&Collector) + Send>,
    }

    #[derive(Default)]
    struct State {
        next_guard: u64,
        active: Vec<u64>,
        retired: Vec<Retired>,
    }

    /// The model's collector: see the [module docs](self).
    pub(crate) struct Collector {
        state: loom::sync::Mutex<State>,
        /// Addresses reclaimed so far. A std lock: bookkeeping of the check, not part
        /// of the synchronisation modelled (loom runs one thread at a time and
        /// switches only at its own operations, so this lock is never contended).
        reclaimed: std::sync::Mutex<HashSet<usize>>,
    }

    impl Collector {
        /// An empty collector.
        pub(crate) fn new() -> Self {
            Collector { state: loom::sync::Mutex::new(State::default()), reclaimed: std::sync::Mutex::default() }
        }

        /// Accepted for seize's signature: the model has no batches.
        pub(crate) fn batch_size(self, _: usize) -> Self {
            self
        }

        /// Marks the calling thread active until the guard drops.
        pub(crate) fn enter(&self) -> LocalGuard<'_> {
            let mut state = self.state.lock().expect("collector state");
            let id = state.next_guard;
            state.next_guard += 1;
            state.active.push(id);
            LocalGuard { collector: self, id }
        }
    }

    impl Drop for Collector {
        fn drop(&mut self) {
            let retired = std::mem::take(&mut self.state.get_mut().expect("collector state").retired);
            for r in retired {
                (r.reclaim)(self);
            }
        }
    }

    /// An active guard of the model's collector.
    pub(crate) struct LocalGuard<'a> {
        collector: &'a Collector,
        id: u64,
    }

    /// seize's guard calls that the table makes.
    pub(crate) trait Guard {
        /// Loads `ptr` for use until the guard drops; panics if what it loads was
        /// already reclaimed.
        fn protect<T>(&self, ptr: &AtomicPtr<T>, order: Ordering) -> *mut T;

        /// Reclaims `ptr` with `reclaim` once every guard active now is gone.
        ///
        /// # Safety
        /// `ptr` is unreachable for guards that enter from now on, and `reclaim` may
        /// be called with it once.
        unsafe fn defer_retire<T: 'static>(&self, ptr: *mut T, reclaim: unsafe fn(*mut T, &Collector));

        /// Nothing to hurry: the model reclaims as soon as the guards allow.
        fn flush(&self);
    }

    impl Guard for LocalGuard<'_> {
        fn protect<T>(&self, ptr: &AtomicPtr<T>, _order: Ordering) -> *mut T {
            // seize strengthens every protecting load to SeqCst.
            let p = ptr.load(Ordering::SeqCst);
            let reclaimed = self.collector.reclaimed.lock().expect("reclaimed marks").contains(&p.addr());
            assert!(!reclaimed, "a guard loaded {p:p}, which the collector had already reclaimed");
            p
        }

        unsafe fn defer_retire<T: 'static>(&self, ptr: *mut T, reclaim: unsafe fn(*mut T, &Collector)) {
            let addr = ptr.expose_provenance();
            let mut state = self.collector.state.lock().expect("collector state");
            assert!(state.retired.iter().all(|r| r.addr != addr), "{ptr:p} retired twice");
            assert!(!self.collector.reclaimed.lock().expect("reclaimed marks").contains(&addr), "{ptr:p} retired after it was reclaimed");
            let waiting_for = state.active.clone();
            state.retired.push(Retired {
                addr,
                waiting_for,
                reclaim: Box::new(move |collector| {
                    // SAFETY: the caller's contract: called once, when the collector
                    // drops, after every guard is gone.
                    unsafe { reclaim(std::ptr::with_exposed_provenance_mut(addr), collector) }
                }),
            });
        }

        fn flush(&self) {}
    }

    impl Drop for LocalGuard<'_> {
        fn drop(&mut self) {
            let mut state = self.collector.state.lock().expect("collector state");
            state.active.retain(|&g| g != self.id);
            let mut reclaimed = self.collector.reclaimed.lock().expect("reclaimed marks");
            for r in &mut state.retired {
                r.waiting_for.retain(|&g| g != self.id);
                if r.waiting_for.is_empty() {
                    reclaimed.insert(r.addr);
                }
            }
        }
    }
}
