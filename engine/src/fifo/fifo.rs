//! The producer handle ([`Fifo`]), handler registration and counters.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::handler::Registration;
use super::queue::{Command, Entry, Item, QueueState, ShardQueue, Slot, Upsert};
use super::{Delta, FifoError, Handler, HandlerId};
use crate::Obj;
use crate::arena::Arena;
use crate::store::{Barrier, CompactionConfig, ResourceVersion, ShardCompactor, Store, Writer, shard_for_key, write_key};

/// State shared by the producer, the shard threads and [`Handlers`] handles.
pub(crate) struct Shared {
    pub(crate) queues: Box<[ShardQueue]>,
    pub(crate) handler_panics: AtomicU64,
    pushed: AtomicU64,
    coalesced: AtomicU64,
    registry: Mutex<HashMap<HandlerId, Arc<Registration>>>,
    next_id: AtomicU64,
    synced_lock: Mutex<()>,
    synced_cv: Condvar,
    pub(crate) store: Store,
    /// Per shard: its thread has applied a delta whose notifications it has
    /// not finished delivering (set under the queue lock before the apply,
    /// cleared after the delivery).
    pub(crate) delivering: Box<[AtomicBool]>,
    /// Per shard: every notification of the initial list on this shard has
    /// been delivered (set once the store has synced and the shard is seen
    /// not delivering; never cleared).
    pub(crate) initial_delivered: Box<[AtomicBool]>,
}

impl Shared {
    pub(crate) fn notify_handler_synced(&self) {
        drop(self.synced_lock.lock().unwrap_or_else(PoisonError::into_inner));
        self.synced_cv.notify_all();
    }

    /// Whether every shard has delivered its share of the initial list to the
    /// handlers registered then (client-go counts a listener's undelivered
    /// initial notifications; here the store's sync says every initial delta
    /// was applied, and a shard not delivering has handed on all it applied).
    fn initial_list_delivered(&self) -> bool {
        // The store's sync is read first: every initial delta was applied
        // before it, so a shard that is not delivering afterwards has handed on
        // the notifications of all of them.
        if !self.store.has_synced() {
            return false;
        }
        self.initial_delivered.iter().zip(self.delivering.iter()).all(|(done, busy)| {
            if done.load(SeqCst) {
                return true;
            }
            let idle = !busy.load(SeqCst);
            if idle {
                done.store(true, SeqCst);
            }
            idle
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<HandlerId, Arc<Registration>>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counters of a fifo (see [`Fifo::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FifoStats {
    /// Deltas accepted (pushed, plus those `replace` and `resync` generated).
    pub pushed: u64,
    /// Deltas applied to the store by the shard threads.
    pub applied: u64,
    /// Deltas merged away by coalescing. Once drained, `pushed == applied + coalesced`.
    pub coalesced: u64,
    /// Handler panics caught, over all handlers.
    pub handler_panics: u64,
    /// Per shard: keys with pending deltas.
    pub backlog_keys: Vec<usize>,
    /// Per shard: pending deltas (at most 2 per key).
    pub backlog_deltas: Vec<usize>,
}

/// The thread-per-core DeltaFIFO. See the [module docs](crate::fifo) for its semantics.
///
/// `Fifo` is the producer handle (the reflector owns it): `Send`, not `Clone`, and its
/// methods that push take `&mut self`, because sequence numbering for the store's
/// resource-version barrier needs one producer. Register handlers from any thread
/// through [`Fifo::handlers`].
pub struct Fifo {
    shared: Arc<Shared>,
    barrier: Barrier,
    threads: Vec<JoinHandle<()>>,
    seq: u64,
    last_rv: Option<ResourceVersion>,
    synced_marked: bool,
    key: String,
}

impl fmt::Debug for Fifo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fifo").field("shards", &self.shared.queues.len()).field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl Fifo {
    /// Starts one thread per store shard, each owning that shard's [`crate::store::ShardWriter`].
    ///
    /// # Errors
    /// [`FifoError::Spawn`] when a thread cannot be started (threads already started
    /// are stopped).
    pub fn spawn(writer: Writer) -> Result<Fifo, FifoError> {
        Fifo::start(writer, None)
    }

    /// Like [`Fifo::spawn`], and each shard thread also compacts its shard's
    /// share of `arena` (the arena the objects are decoded into) as `config`
    /// says; see the [module docs](crate::fifo#compaction).
    ///
    /// # Errors
    /// [`FifoError::Spawn`] when a thread cannot be started.
    pub fn spawn_compacting(writer: Writer, arena: &Arena, config: CompactionConfig) -> Result<Fifo, FifoError> {
        Fifo::start(writer, Some((arena, config)))
    }

    fn start(writer: Writer, compaction: Option<(&Arena, CompactionConfig)>) -> Result<Fifo, FifoError> {
        let store = writer.as_reader();
        let (barrier, writers) = writer.into_parts();
        let n = writers.len();
        let shared = Arc::new(Shared {
            queues: (0..n).map(|_| ShardQueue::new()).collect(),
            handler_panics: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            registry: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            synced_lock: Mutex::new(()),
            synced_cv: Condvar::new(),
            store,
            delivering: (0..n).map(|_| AtomicBool::new(false)).collect(),
            initial_delivered: (0..n).map(|_| AtomicBool::new(false)).collect(),
        });
        let mut fifo =
            Fifo { shared, barrier, threads: Vec::with_capacity(n), seq: 0, last_rv: None, synced_marked: false, key: String::new() };
        for (i, w) in writers.into_iter().enumerate() {
            let (shared, barrier) = (Arc::clone(&fifo.shared), fifo.barrier.clone());
            let compactor = compaction.map(|(arena, config)| ShardCompactor::new(config, arena.clone(), fifo.shared.store.clone(), i));
            let t = std::thread::Builder::new()
                .name(format!("kcache-fifo-{i}"))
                .spawn(move || super::worker::run(i, w, barrier, shared, compactor))
                .map_err(|source| FifoError::Spawn { shard: i, source })?;
            fifo.threads.push(t);
        }
        Ok(fifo)
    }

    /// A reader of the store this fifo writes.
    pub fn store(&self) -> Store {
        self.shared.store.clone()
    }

    /// A handle to register and query handlers from any thread.
    pub fn handlers(&self) -> Handlers {
        Handlers { shared: Arc::clone(&self.shared) }
    }

    /// Number of shards (and threads).
    pub fn shards(&self) -> usize {
        self.shared.queues.len()
    }

    /// Adds `item` for `key` to shard `shard`'s queue, coalescing with pending deltas.
    /// Sets the shard's low mark first when the shard was idle (see the store's
    /// barrier protocol).
    fn enqueue(&mut self, q: &mut QueueState, shard: usize, key: Option<Arc<str>>, key_str: &str, item: Item) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = q.pending.get_mut(key_str) {
            let store = &self.shared.store;
            let merged = e.push_with(item, || store.get_by_key(key_str).is_some());
            q.items = q.items + 1 - merged;
            if merged > 0 {
                self.shared.coalesced.fetch_add(merged as u64, Relaxed);
            }
            return;
        }
        if q.pending.is_empty() {
            self.barrier.set_shard_low(shard, Some((seq - 1, self.last_rv.clone())));
        }
        let key = key.unwrap_or_else(|| Arc::from(key_str));
        q.pending.insert(Arc::clone(&key), Entry::new(item, seq, self.last_rv.clone()));
        q.order.push_back(Slot::Key(key));
        q.items += 1;
    }

    fn closed_error(key: &str, delta: Option<Delta>) -> FifoError {
        FifoError::Closed { key: key.to_owned(), delta: delta.map(Box::new) }
    }

    /// Queues one delta on its key's shard.
    ///
    /// `Added`, `Updated` and `Deleted` advance the stream's resource version to the
    /// object's; the other kinds leave it unchanged.
    ///
    /// # Errors
    /// [`FifoError::Closed`] (with the delta handed back) after [`Fifo::close`].
    pub fn push(&mut self, delta: Delta) -> Result<(), FifoError> {
        let mut key = std::mem::take(&mut self.key);
        write_key(&mut key, delta.object());
        let r = self.push_keyed(&key, delta);
        self.key = key;
        r
    }

    fn push_keyed(&mut self, key: &str, delta: Delta) -> Result<(), FifoError> {
        let shard = shard_for_key(key, self.shards());
        let shared = Arc::clone(&self.shared);
        let queue = &shared.queues[shard];
        let mut q = queue.lock();
        if q.closed {
            return Err(Self::closed_error(key, Some(delta)));
        }
        let (item, moves_rv) = match delta {
            Delta::Added(o) | Delta::Updated(o) => (Item::Upsert(o, Upsert::Watch), true),
            Delta::Deleted(o) => (Item::Delete(o, false), true),
            Delta::DeletedFinalStateUnknown(o) => (Item::Delete(o, true), false),
            Delta::Replaced(o) => (Item::Upsert(o, Upsert::Replaced { initial: !self.synced_marked }), false),
            Delta::Sync(o) => (Item::Upsert(o, Upsert::Sync), false),
        };
        let rv = match &item {
            Item::Upsert(o, _) | Item::Delete(o, _) if moves_rv && !o.resource_version().is_empty() => {
                Some(ResourceVersion::new(o.resource_version()))
            }
            _ => None,
        };
        self.enqueue(&mut q, shard, None, key, item);
        queue.publish_backlog(&q);
        drop(q);
        queue.ready.notify_one();
        if rv.is_some() {
            self.last_rv = rv;
        }
        self.shared.pushed.fetch_add(1, Relaxed);
        self.barrier.advance(self.seq, self.last_rv.clone());
        Ok(())
    }

    /// Advances the stream's resource version without a change (a watch `BOOKMARK`):
    /// once every shard has applied what was pushed before, the store reports `rv`.
    pub fn bookmark(&mut self, rv: &str) {
        self.seq += 1;
        self.last_rv = Some(ResourceVersion::new(rv));
        self.barrier.advance(self.seq, self.last_rv.clone());
    }

    /// Replaces the whole content with a relist result taken at `resource_version`.
    ///
    /// Every listed object is queued as a [`Delta::Replaced`] (an `on_add` if new, an
    /// `on_update` if its resourceVersion changed, nothing if unchanged). Every key in
    /// the store or pending that the list lacks gets exactly one
    /// [`Delta::DeletedFinalStateUnknown`] carrying its last known state, unless its
    /// newest pending delta is already a deletion. The first `replace` marks the store
    /// synced once every shard has applied it, and its adds carry
    /// `is_in_initial_list = true`.
    ///
    /// # Errors
    /// [`FifoError::Closed`] after [`Fifo::close`].
    pub fn replace(&mut self, list: Vec<Obj>, resource_version: &str) -> Result<(), FifoError> {
        self.replace_scoped(list, resource_version, |_| true)
    }

    /// As [`Fifo::replace`], for only the part of the content `in_scope` accepts: a
    /// relist of one slice of the collection (a scoped relist, see
    /// [`RelistScope`](crate::reflector::RelistScope)). Every listed object is queued
    /// as a [`Delta::Replaced`]; every key in the store or pending whose last known
    /// state `in_scope` accepts and that the list lacks gets one
    /// [`Delta::DeletedFinalStateUnknown`]; every other key gets nothing. The listed
    /// objects should all be in scope.
    ///
    /// # Errors
    /// [`FifoError::Closed`] after [`Fifo::close`].
    pub fn replace_scoped(&mut self, list: Vec<Obj>, resource_version: &str, in_scope: impl Fn(&Obj) -> bool) -> Result<(), FifoError> {
        let initial = !self.synced_marked;
        let mut per_shard = self.by_shard(list);
        self.enqueue_per_shard(resource_version, |shared, shard, q| {
            let listed = std::mem::take(&mut per_shard[shard]);
            let present: HashSet<Arc<str>> = listed.iter().map(|(k, _)| Arc::clone(k)).collect();
            // Under the queue lock the shard thread is not applying, so every key is
            // either in the store or pending (or both): none is missed or doubled.
            let mut gone: Vec<(Arc<str>, Item)> = Vec::new();
            shared.store.for_each_in_shard(shard, |k, o| {
                if !present.contains(k) && !q.pending.contains_key(k) && in_scope(o) {
                    gone.push((Arc::from(k), Item::Delete(o.clone(), true)));
                }
            });
            for (k, e) in &q.pending {
                if present.contains(k) {
                    continue;
                }
                if let Item::Upsert(o, _) = e.newest()
                    && in_scope(o)
                {
                    gone.push((Arc::clone(k), Item::Delete(o.clone(), true)));
                }
            }
            let upserts = listed.into_iter().map(move |(k, obj)| (k, Item::Upsert(obj, Upsert::Replaced { initial })));
            upserts.chain(gone)
        })?;
        self.bookmark(resource_version);
        if initial {
            self.barrier.mark_synced_at(self.seq);
            self.synced_marked = true;
        }
        Ok(())
    }

    /// Queues, shard by shard, the items `items_of(shared, shard, queue)` returns for
    /// that shard, in order. `items_of` runs under the shard's queue lock, while the
    /// shard thread cannot apply, so what it reads of the store and the pending
    /// deltas stays true until its items are queued. Then the shard's backlog is
    /// published and its thread woken.
    ///
    /// # Errors
    /// [`FifoError::Closed`] naming `closed_key` after [`Fifo::close`]; the shards
    /// before the closed one keep what was queued on them.
    fn enqueue_per_shard<I: IntoIterator<Item = (Arc<str>, Item)>>(
        &mut self,
        closed_key: &str,
        mut items_of: impl FnMut(&Shared, usize, &QueueState) -> I,
    ) -> Result<(), FifoError> {
        let shared = Arc::clone(&self.shared);
        let mut pushed = 0u64;
        let mut closed = false;
        for shard in 0..self.shards() {
            let queue = &shared.queues[shard];
            let mut q = queue.lock();
            if q.closed {
                closed = true;
                break;
            }
            for (k, item) in items_of(&shared, shard, &q) {
                self.enqueue(&mut q, shard, Some(Arc::clone(&k)), &k, item);
                pushed += 1;
            }
            queue.publish_backlog(&q);
            drop(q);
            queue.ready.notify_one();
        }
        shared.pushed.fetch_add(pushed, Relaxed);
        if closed {
            return Err(Self::closed_error(closed_key, None));
        }
        Ok(())
    }

    /// Whether nothing was ever replaced, stored or queued: an informer's first list
    /// may then be queued as it arrives ([`Fifo::push_initial`]).
    pub fn is_pristine(&self) -> bool {
        // Every delta and bookmark takes a sequence number, so none was ever queued
        // while it is 0. (Looking at the queues instead raced with the shard threads:
        // a delta taken off its queue and not yet in the store is in neither.)
        !self.synced_marked && self.seq == 0 && self.shared.store.is_empty()
    }

    /// Queues part of the first list while the rest is read: each object as
    /// [`Fifo::replace`] would queue it (a [`Delta::Replaced`] of the initial list),
    /// so the shard threads apply the list while it is decoded, and the fifo holds
    /// only what they have not caught up with rather than the whole list.
    ///
    /// Only while [`Fifo::is_pristine`] was true when the list started: a list into
    /// an empty store lacks no key, so its end has nothing to delete.
    /// [`Fifo::finish_initial`] ends it. If the list does not complete, what was
    /// queued stays; the next list replaces it (deleting what that list lacks).
    ///
    /// # Errors
    /// [`FifoError::Closed`] after [`Fifo::close`].
    pub fn push_initial(&mut self, objs: Vec<Obj>) -> Result<(), FifoError> {
        let mut per_shard = self.by_shard(objs);
        self.enqueue_per_shard("", |_, shard, _| {
            let listed = std::mem::take(&mut per_shard[shard]);
            listed.into_iter().map(|(k, obj)| (k, Item::Upsert(obj, Upsert::Replaced { initial: true })))
        })?;
        self.barrier.advance(self.seq, self.last_rv.clone());
        Ok(())
    }

    /// `objs` with their keys, grouped by the shard each key belongs to.
    fn by_shard(&mut self, objs: Vec<Obj>) -> Vec<Vec<(Arc<str>, Obj)>> {
        let n = self.shards();
        let mut per_shard: Vec<Vec<(Arc<str>, Obj)>> = (0..n).map(|_| Vec::new()).collect();
        let mut key = std::mem::take(&mut self.key);
        for obj in objs {
            write_key(&mut key, &obj);
            per_shard[shard_for_key(&key, n)].push((Arc::from(key.as_str()), obj));
        }
        self.key = key;
        per_shard
    }

    /// Ends a first list queued with [`Fifo::push_initial`], taken at
    /// `resource_version`: the store is synced once every shard has applied it, as
    /// after [`Fifo::replace`].
    pub fn finish_initial(&mut self, resource_version: &str) {
        self.bookmark(resource_version);
        self.barrier.mark_synced_at(self.seq);
        self.synced_marked = true;
    }

    /// Re-delivers every stored object to the handlers as `on_update(obj, obj)`,
    /// in memory (no API call). Keys with pending deltas are skipped: they will be
    /// delivered anyway (client-go `Resync`). Nothing before the first list
    /// completed: its objects are still being delivered as adds.
    ///
    /// # Errors
    /// [`FifoError::Closed`] after [`Fifo::close`].
    pub fn resync(&mut self) -> Result<(), FifoError> {
        if !self.synced_marked {
            return Ok(());
        }
        self.enqueue_per_shard("", |shared, shard, q| {
            let mut stored: Vec<(Arc<str>, Item)> = Vec::new();
            shared.store.for_each_in_shard(shard, |k, o| {
                if !q.pending.contains_key(k) {
                    stored.push((Arc::from(k), Item::Upsert(o.clone(), Upsert::Sync)));
                }
            });
            stored
        })?;
        self.barrier.advance(self.seq, self.last_rv.clone());
        Ok(())
    }

    /// Counters (see [`FifoStats`]).
    pub fn stats(&self) -> FifoStats {
        self.handlers().stats()
    }

    /// Registers a handler; see [`Handlers::add`].
    pub fn add_handler(&self, handler: Arc<dyn Handler>) -> Result<HandlerId, FifoError> {
        self.handlers().add(handler)
    }

    /// Unregisters a handler; see [`Handlers::remove`].
    pub fn remove_handler(&self, id: HandlerId) -> Result<(), FifoError> {
        self.handlers().remove(id)
    }

    /// Whether handler `id` has synced; see [`Handlers::has_synced`].
    pub fn has_synced(&self, id: HandlerId) -> bool {
        self.handlers().has_synced(id)
    }

    /// Stops accepting deltas, lets every shard thread apply and deliver what is
    /// pending, and joins them. Waiters of `wait_for` that the final state does not
    /// satisfy then get [`crate::store::StoreError::Closed`]. Idempotent.
    pub fn close(&mut self) {
        for queue in &self.shared.queues {
            queue.lock().closed = true;
            queue.ready.notify_all();
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("fifo shard thread panicked outside a handler");
            }
        }
        self.barrier.close();
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        self.close();
    }
}

/// Registers, removes and inspects handlers; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Handlers {
    shared: Arc<Shared>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers").field("registered", &self.shared.registry().len()).finish()
    }
}

impl Handlers {
    /// Registers `handler`. Each shard thread, in order with its deltas, replays its
    /// stored objects to the new handler as `on_add(obj, true)` and then delivers it
    /// every later change, so the handler sees each object exactly once before its
    /// updates. The handler is synced ([`Handlers::has_synced`]) once every shard has
    /// replayed, the store itself has synced, and every notification of the
    /// initial list has been delivered to it.
    ///
    /// # Errors
    /// [`FifoError::Closed`] after the fifo was closed.
    pub fn add(&self, handler: Arc<dyn Handler>) -> Result<HandlerId, FifoError> {
        let id = HandlerId(self.shared.next_id.fetch_add(1, Relaxed));
        let reg = Arc::new(Registration::new(id, handler, self.shared.queues.len()));
        self.shared.registry().insert(id, Arc::clone(&reg));
        for queue in &self.shared.queues {
            let mut q = queue.lock();
            if q.closed {
                drop(q);
                self.shared.registry().remove(&id);
                return Err(FifoError::Closed { key: String::new(), delta: None });
            }
            q.order.push_back(Slot::Command(Command::AddHandler(Arc::clone(&reg))));
            drop(q);
            queue.ready.notify_one();
        }
        Ok(id)
    }

    /// Unregisters handler `id`. Each shard stops delivering to it when it reaches the
    /// removal in its queue, so events already queued may still reach it.
    ///
    /// # Errors
    /// [`FifoError::UnknownHandler`] when `id` is not registered.
    pub fn remove(&self, id: HandlerId) -> Result<(), FifoError> {
        if self.shared.registry().remove(&id).is_none() {
            return Err(FifoError::UnknownHandler { id: id.0 });
        }
        for queue in &self.shared.queues {
            let mut q = queue.lock();
            q.order.push_back(Slot::Command(Command::RemoveHandler(id)));
            drop(q);
            queue.ready.notify_one();
        }
        Ok(())
    }

    /// Whether handler `id` has received the replay on every shard and every
    /// `on_add` of the initial list has returned (client-go
    /// `ResourceEventHandlerRegistration.HasSynced`, which counts a listener's
    /// delivered initial adds). The store syncs when the initial list was
    /// *applied*, before its last notifications reach the handlers: a handler
    /// can be behind its store, never ahead of it. Once true, stays true.
    pub fn has_synced(&self, id: HandlerId) -> bool {
        let replayed = self.shared.registry().get(&id).is_some_and(|r| r.replayed());
        replayed && self.shared.initial_list_delivered()
    }

    /// Blocks until [`Handlers::has_synced`] or `timeout`; returns whether synced.
    pub fn wait_synced(&self, id: HandlerId, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.synced_lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.has_synced(id) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // The store's sync does not signal this condvar: poll it every 5 ms.
            let wait = (deadline - now).min(Duration::from_millis(5));
            g = self.shared.synced_cv.wait_timeout(g, wait).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Panics caught in handler `id`.
    pub fn panics(&self, id: HandlerId) -> Option<u64> {
        self.shared.registry().get(&id).map(|r| r.panics.load(Relaxed))
    }

    /// Counters (see [`FifoStats`]).
    pub fn stats(&self) -> FifoStats {
        let s = &self.shared;
        FifoStats {
            pushed: s.pushed.load(Relaxed),
            applied: s.queues.iter().map(|q| q.counters.applied.load(Relaxed)).sum(),
            coalesced: s.coalesced.load(Relaxed),
            handler_panics: s.handler_panics.load(Relaxed),
            backlog_keys: s.queues.iter().map(|q| q.counters.backlog_keys.load(Relaxed)).collect(),
            backlog_deltas: s.queues.iter().map(|q| q.counters.backlog_deltas.load(Relaxed)).collect(),
        }
    }
}
