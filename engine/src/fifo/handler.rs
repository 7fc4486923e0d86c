//! Event handlers and their registrations.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use crate::Obj;

/// Receives the changes the fifo applied to the store (client-go
/// `ResourceEventHandler`).
///
/// Methods run on the shard thread that owns the object's key, in that key's order,
/// after the store was updated: a handler that reads the store sees at least `new`.
/// They must be cheap (the intended pattern is `workqueue.add(key)`): a slow handler
/// delays every key of its shard, though never other shards, and backlog coalescing
/// bounds the memory the delay costs. A panic is caught and counted, see
/// [`crate::fifo::Fifo::add_handler`].
pub trait Handler: Send + Sync {
    /// `obj` appeared. `is_in_initial_list` is true for the objects of the initial list
    /// (the first relist) and for the replay a handler gets when it is added.
    fn on_add(&self, obj: &Obj, is_in_initial_list: bool);
    /// `old` was replaced by `new`. On a resync `old` and `new` are the same object.
    fn on_update(&self, old: &Obj, new: &Obj);
    /// `obj` was deleted. `final_state_unknown` when a relist found it gone and `obj` is
    /// the last state this cache knew (client-go `DeletedFinalStateUnknown`).
    fn on_delete(&self, obj: &Obj, final_state_unknown: bool);
}

/// Names a registered handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(pub(crate) u64);

impl HandlerId {
    /// The numeric id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for HandlerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler-{}", self.0)
    }
}

/// A registered handler plus its counters; shared by every shard thread.
pub(crate) struct Registration {
    pub(crate) id: HandlerId,
    pub(crate) handler: Arc<dyn Handler>,
    /// Panics caught in this handler.
    pub(crate) panics: AtomicU64,
    /// Shards that have not finished replaying the store to this handler yet.
    /// Zero is not synced yet: deltas of the initial list queued after the
    /// replay reach the handler later (see `Handlers::has_synced`).
    pub(crate) replay_left: AtomicUsize,
}

impl Registration {
    pub(crate) fn new(id: HandlerId, handler: Arc<dyn Handler>, shards: usize) -> Self {
        Registration { id, handler, panics: AtomicU64::new(0), replay_left: AtomicUsize::new(shards) }
    }

    pub(crate) fn replayed(&self) -> bool {
        self.replay_left.load(SeqCst) == 0
    }
}
