//! One shard's pending deltas: a FIFO of keys, each with at most two coalesced deltas.
//!
//! # Guarantees
//! * A key is in `order` iff it is in `pending` (client-go's `queue`/`items` invariant).
//! * An [`Entry`] holds at most two deltas: the oldest undelivered one and the newest
//!   (one, the newest, when watch events replace each other; see
//!   [`Entry::push_with`]), so a shard's memory is O(pending keys) whatever the backlog.
//! * Entries appear in `order` by ascending `first_seq`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crossbeam::utils::CachePadded;

use super::handler::Registration;
use super::HandlerId;
use crate::Obj;
use crate::store::ResourceVersion;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// How an upsert came about; decides the notification together with the store state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// A watch event (added or modified: both become add-or-update by store state).
    Watch,
    /// A relist member; `initial` for the first relist.
    Replaced { initial: bool },
    /// A resync.
    Sync,
}

/// One pending delta.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    Upsert(Obj, Upsert),
    Delete(Obj, /* final_state_unknown */ bool),
}

impl Item {
    fn is_delete(&self) -> bool {
        matches!(self, Item::Delete(..))
    }

    fn is_watch_upsert(&self) -> bool {
        matches!(self, Item::Upsert(_, Upsert::Watch))
    }
}

/// client-go `isDeletionDup`: of two consecutive deletions keep the later one, unless
/// it is final-state-unknown, which carries less information.
fn dedup_delete(a: Item, b: Item) -> Item {
    match b {
        Item::Delete(_, true) => a,
        b => b,
    }
}

/// The pending deltas of one key.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) first: Item,
    pub(crate) last: Option<Item>,
    /// Sequence number of `first` (the oldest unapplied delta of this key).
    pub(crate) first_seq: u64,
    /// The stream's resource version just before `first_seq`.
    pub(crate) prev_rv: Option<ResourceVersion>,
}

impl Entry {
    pub(crate) fn new(item: Item, seq: u64, prev_rv: Option<ResourceVersion>) -> Self {
        Entry { first: item, last: None, first_seq: seq, prev_rv }
    }

    /// Number of deltas held (1 or 2).
    pub(crate) fn count(&self) -> usize {
        1 + usize::from(self.last.is_some())
    }

    /// The newest delta.
    pub(crate) fn newest(&self) -> &Item {
        self.last.as_ref().unwrap_or(&self.first)
    }

    /// Adds `d` to an entry with a store that does not hold the key; see [`Entry::push_with`].
    #[cfg(test)]
    pub(crate) fn push(&mut self, d: Item) -> usize {
        self.push_with(d, || false)
    }

    /// Adds `d`, coalescing so that at most two deltas remain. `stored` says
    /// whether the store holds the key (asked only when a rule depends on it;
    /// stable while the caller holds the shard's queue lock, under which the
    /// store is written). Returns how many deltas were merged away (pushed +
    /// held before - held after).
    ///
    /// Rules, with `U` an upsert and `D` a delete (state relative to the store, which
    /// only this key's entry changes):
    /// * `[U] + U' -> [U']` for watch upserts: handlers get `on_update(stored, U')`,
    ///   or `on_add(U')` when the store lacks the key, and skip the intermediate
    ///   state, as a relist would. Under a backlog this halves what each queued key
    ///   holds and what the handlers are called for.
    /// * `[U] + D -> [D]` for a watch upsert of a key the store holds and a delete
    ///   with a known final state (newer than `U`): handlers get `on_delete(D)` and
    ///   skip the last update of an object that is gone. A final-state-unknown
    ///   delete carries the store's (older) object, so `U` is kept before it; an
    ///   upsert of a key the store lacks is kept so handlers see the add.
    /// * `[a] + d -> [a, d]` otherwise, except `[D] + D -> [D']` (deletion dedup).
    /// * `[a, U] + U' -> [a, U']`: keep the oldest undelivered state and the newest.
    /// * `[U, U] + D -> [U, D]`; `[D, U] + D -> [D']`: an object created and deleted
    ///   while pending was never seen by handlers, so only the first delete remains.
    /// * `[U, D] + U' -> [D, U']`: the key was deleted and re-created; handlers see the
    ///   delete, then the new object.
    /// * `[a, D] + D' -> [a, D'']`: deletion dedup.
    pub(crate) fn push_with(&mut self, d: Item, stored: impl FnOnce() -> bool) -> usize {
        let before = self.count() + 1;
        match self.last.take() {
            None => {
                if self.first.is_delete() && d.is_delete() {
                    let first = std::mem::replace(&mut self.first, d.clone());
                    self.first = dedup_delete(first, d);
                } else if self.first.is_watch_upsert()
                    && (d.is_watch_upsert() || (matches!(d, Item::Delete(_, false)) && stored()))
                {
                    self.first = d;
                } else {
                    self.last = Some(d);
                }
            }
            Some(last) => match (last, d) {
                // A resync of a key with pending deltas is redundant (client-go skips it).
                (last @ Item::Upsert(..), Item::Upsert(_, Upsert::Sync)) => self.last = Some(last),
                (Item::Upsert(_, old), Item::Upsert(obj, new)) => {
                    let kind = match (old, new) {
                        // A relist after a watch update keeps the relist's flags.
                        (_, Upsert::Replaced { .. }) => new,
                        (Upsert::Replaced { .. }, _) => old,
                        _ => new,
                    };
                    self.last = Some(Item::Upsert(obj, kind));
                }
                (Item::Upsert(..), d @ Item::Delete(..)) => {
                    if self.first.is_delete() {
                        let first = std::mem::replace(&mut self.first, d.clone());
                        self.first = dedup_delete(first, d);
                    } else {
                        self.last = Some(d);
                    }
                }
                (last @ Item::Delete(..), d @ Item::Delete(..)) => self.last = Some(dedup_delete(last, d)),
                (last @ Item::Delete(..), d @ Item::Upsert(..)) => {
                    // `first` is an upsert here ([D, D] cannot exist): drop it.
                    self.first = last;
                    self.last = Some(d);
                }
            },
        }
        before - self.count()
    }
}

/// Keys a drained queue may keep room for ([`QueueState::shrink_drained`]).
const KEEP_RESERVED: usize = 1024;

/// A control message processed in order with the shard's deltas.
pub(crate) enum Command {
    /// Register a handler on this shard and replay the shard's objects to it.
    AddHandler(Arc<Registration>),
    /// Unregister a handler.
    RemoveHandler(HandlerId),
}

pub(crate) enum Slot {
    Key(Arc<str>),
    Command(Command),
}

#[derive(Default)]
pub(crate) struct QueueState {
    /// Keys (and commands) in arrival order. Invariant: a key is here iff in `pending`.
    pub(crate) order: VecDeque<Slot>,
    /// key -> its pending deltas.
    pub(crate) pending: HashMap<Arc<str>, Entry>,
    /// Deltas held over all entries (`pending` counts keys).
    pub(crate) items: usize,
    /// No more pushes; the shard thread drains and exits.
    pub(crate) closed: bool,
}

impl QueueState {
    /// The low mark of this shard: just before its oldest unapplied delta.
    pub(crate) fn low(&self) -> Option<(u64, Option<ResourceVersion>)> {
        self.order.iter().find_map(|s| match s {
            Slot::Key(k) => self.pending.get(k).map(|e| (e.first_seq - 1, e.prev_rv.clone())),
            Slot::Command(_) => None,
        })
    }

    /// Gives back what a drained backlog reserved. An initial list of N keys leaves
    /// `pending` and `order` sized for N (about 140 bytes a key), which would
    /// otherwise stay reserved for the informer's life; a queue that never held more
    /// than [`KEEP_RESERVED`] keys keeps its tables, so steady traffic reallocates
    /// nothing.
    pub(crate) fn shrink_drained(&mut self) {
        if !self.order.is_empty() {
            return;
        }
        if self.pending.capacity() > KEEP_RESERVED {
            self.pending.shrink_to(0);
        }
        if self.order.capacity() > KEEP_RESERVED {
            self.order.shrink_to(0);
        }
    }

    /// Arena compaction of this queue: replaces each pending object that
    /// `relocate` copies (those in sparse segments) with the copy, in place,
    /// until `budget` bytes were copied. Returns the bytes copied and whether
    /// every pending object was visited.
    ///
    /// While handlers fall behind, the queue holds the oldest undelivered and the
    /// newest object of each pending key; without this, each of them can pin a
    /// whole arena segment of otherwise dead objects for as long as it waits.
    /// The copy has the same bytes and metadata, so handlers cannot tell.
    pub(crate) fn relocate_pending(&mut self, budget: usize, mut relocate: impl FnMut(&Obj) -> Option<Obj>) -> (usize, bool) {
        let mut copied = 0;
        for entry in self.pending.values_mut() {
            for item in std::iter::once(&mut entry.first).chain(entry.last.as_mut()) {
                let (Item::Upsert(obj, _) | Item::Delete(obj, _)) = item;
                if copied >= budget {
                    return (copied, false);
                }
                if let Some(copy) = relocate(obj) {
                    copied += obj.stored_bytes().len();
                    *obj = copy;
                }
            }
        }
        (copied, true)
    }
}

/// Counters of one shard, on their own cache line.
#[derive(Default)]
pub(crate) struct ShardCounters {
    pub(crate) applied: AtomicU64,
    pub(crate) backlog_keys: AtomicUsize,
    pub(crate) backlog_deltas: AtomicUsize,
}

pub(crate) struct ShardQueue {
    pub(crate) state: Mutex<QueueState>,
    pub(crate) ready: Condvar,
    pub(crate) counters: CachePadded<ShardCounters>,
}

impl ShardQueue {
    pub(crate) fn new() -> Self {
        ShardQueue { state: Mutex::new(QueueState::default()), ready: Condvar::new(), counters: CachePadded::default() }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueState> {
        // The state is only mutated in short sections with no user code, so a poisoned
        // lock still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn publish_backlog(&self, q: &QueueState) {
        self.counters.backlog_keys.store(q.pending.len(), Relaxed);
        self.counters.backlog_deltas.store(q.items, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::testing::pod;

    fn up(rv: &str) -> Item {
        Item::Upsert(pod("ns", "a", rv, &[]), Upsert::Watch)
    }
    fn del(rv: &str, unknown: bool) -> Item {
        Item::Delete(pod("ns", "a", rv, &[]), unknown)
    }
    fn shape(e: &Entry) -> Vec<String> {
        std::iter::once(&e.first)
            .chain(e.last.as_ref())
            .map(|i| match i {
                Item::Upsert(o, _) => format!("U{}", o.resource_version()),
                Item::Delete(o, u) => format!("D{}{}", o.resource_version(), if *u { "?" } else { "" }),
            })
            .collect()
    }

    #[test]
    fn a_drained_backlog_gives_back_its_tables_and_a_small_one_keeps_them() {
        let mut q = QueueState::default();
        for i in 0..10_000 {
            let key: Arc<str> = Arc::from(format!("ns/p{i}"));
            q.order.push_back(Slot::Key(Arc::clone(&key)));
            q.pending.insert(key, Entry::new(up("1"), i + 1, None));
        }
        q.shrink_drained();
        assert!(q.pending.capacity() >= 10_000, "a queue with keys keeps its tables");
        q.order.clear();
        q.pending.clear();
        q.shrink_drained();
        assert!(q.pending.capacity() <= KEEP_RESERVED && q.order.capacity() <= KEEP_RESERVED);

        for i in 0..100 {
            let key: Arc<str> = Arc::from(format!("ns/p{i}"));
            q.order.push_back(Slot::Key(Arc::clone(&key)));
            q.pending.insert(key, Entry::new(up("1"), i + 1, None));
        }
        let (pending, order) = (q.pending.capacity(), q.order.capacity());
        q.order.clear();
        q.pending.clear();
        q.shrink_drained();
        assert_eq!((q.pending.capacity(), q.order.capacity()), (pending, order));
    }

    #[test]
    fn watch_updates_of_a_key_the_store_lacks_coalesce_into_the_newest() {
        let mut e = Entry::new(up("1"), 1, None);
        for i in 2..1000 {
            assert_eq!(e.push(up(&i.to_string())), 1);
        }
        assert_eq!(shape(&e), ["U999"], "delivered as on_add(U999)");
        assert_eq!(e.first_seq, 1, "the key keeps its place in the queue");
    }

    #[test]
    fn updates_after_a_relist_upsert_keep_the_oldest_undelivered_and_the_newest_state() {
        let mut e = Entry::new(Item::Upsert(pod("ns", "a", "1", &[]), Upsert::Replaced { initial: false }), 1, None);
        assert_eq!(e.push(up("2")), 0);
        for i in 3..1000 {
            assert_eq!(e.push(up(&i.to_string())), 1);
        }
        assert_eq!(shape(&e), ["U1", "U999"]);
    }

    #[test]
    fn updates_of_a_stored_key_coalesce_into_the_newest() {
        let mut e = Entry::new(up("1"), 1, None);
        for i in 2..1000 {
            assert_eq!(e.push_with(up(&i.to_string()), || true), 1);
        }
        assert_eq!(shape(&e), ["U999"]);
        assert_eq!(e.first_seq, 1, "the key keeps its place in the queue");
        // A delete with its final state replaces the pending update of a stored key...
        assert_eq!(e.push_with(del("1000", false), || true), 1);
        assert_eq!(shape(&e), ["D1000"]);
        assert_eq!(e.first_seq, 1);
        // ...a final-state-unknown one (the store's older object) follows it.
        let mut e = Entry::new(up("1"), 1, None);
        e.push_with(del("0", true), || true);
        assert_eq!(shape(&e), ["U1", "D0?"]);
        // Relist and resync upserts are not watch updates: they do not replace.
        let mut e = Entry::new(up("1"), 1, None);
        e.push_with(Item::Upsert(pod("ns", "a", "2", &[]), Upsert::Replaced { initial: false }), || true);
        assert_eq!(shape(&e), ["U1", "U2"]);
    }

    #[test]
    fn a_delete_replaces_pending_updates_but_not_the_add_of_a_key_the_store_lacks() {
        let mut e = Entry::new(up("1"), 1, None);
        e.push(up("2"));
        e.push(del("3", false));
        assert_eq!(shape(&e), ["U2", "D3"], "on_add(U2), then on_delete(D3)");
        let mut e = Entry::new(Item::Upsert(pod("ns", "a", "1", &[]), Upsert::Replaced { initial: false }), 1, None);
        e.push(up("2"));
        e.push(del("3", false));
        assert_eq!(shape(&e), ["U1", "D3"]);
    }

    #[test]
    fn consecutive_deletes_keep_the_informative_one() {
        let mut e = Entry::new(del("1", false), 1, None);
        assert_eq!(e.push(del("2", true)), 1);
        assert_eq!(shape(&e), ["D1"]);
        assert_eq!(e.push(del("3", false)), 1);
        assert_eq!(shape(&e), ["D3"]);
    }

    #[test]
    fn recreate_after_delete_keeps_the_delete_then_the_new_object() {
        let mut e = Entry::new(up("1"), 1, None);
        e.push(del("2", false));
        e.push(up("3"));
        assert_eq!(shape(&e), ["D2", "U3"]);
        e.push(up("4"));
        assert_eq!(shape(&e), ["D2", "U4"]);
    }

    #[test]
    fn an_object_created_and_deleted_while_pending_after_a_delete_leaves_one_delete() {
        let mut e = Entry::new(del("1", false), 1, None);
        e.push(up("2"));
        assert_eq!(e.push(del("3", true)), 2);
        assert_eq!(shape(&e), ["D1"]);
    }
}
