//! The changes a producer pushes into the fifo.

use crate::Obj;

/// One change to one object, client-go `Delta` style.
///
/// The notification a handler receives is decided when the delta is applied, from what
/// the store holds then (as client-go's `sharedIndexInformer.HandleDeltas` does): an
/// upsert of a key the store lacks is an `on_add`, of a key it holds an `on_update`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delta {
    /// A watch `ADDED` event.
    Added(Obj),
    /// A watch `MODIFIED` event.
    Updated(Obj),
    /// A watch `DELETED` event, carrying the object's final state.
    Deleted(Obj),
    /// A deletion the watch missed (found by a relist): the object is the last state
    /// this cache knew, which may be stale (client-go `DeletedFinalStateUnknown`).
    DeletedFinalStateUnknown(Obj),
    /// An object of a relist ([`crate::fifo::Fifo::replace`] emits these). Applied
    /// without notification when the stored object has the same resourceVersion.
    Replaced(Obj),
    /// A resync of the stored object: handlers get `on_update(cur, cur)` with the
    /// store's current object (the carried object only names the key).
    Sync(Obj),
}

impl Delta {
    /// The object the delta carries.
    pub fn object(&self) -> &Obj {
        match self {
            Delta::Added(o)
            | Delta::Updated(o)
            | Delta::Deleted(o)
            | Delta::DeletedFinalStateUnknown(o)
            | Delta::Replaced(o)
            | Delta::Sync(o) => o,
        }
    }
}
