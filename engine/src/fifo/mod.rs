//! The thread-per-core DeltaFIFO: per-key ordered, coalescing delivery of deltas to the store and handlers.
//!
//! A [`Fifo`] owns one thread per store shard. The producer (the reflector) pushes
//! [`Delta`]s; each goes to the shard that owns its key ([`crate::store::shard_for_key`]),
//! whose thread applies it to the store through that shard's
//! [`ShardWriter`](crate::store::ShardWriter) and then calls every [`Handler`].
//!
//! # Guarantees
//! * **Per-key order.** A key's deltas are applied and delivered in push order, on
//!   one thread. Different keys are unordered with respect to each other (client-go's
//!   DeltaFIFO is FIFO across keys on one thread; here shards run in parallel).
//! * **Newest state per key.** Like client-go's DeltaFIFO, pending deltas are kept
//!   per key (a key is queued iff it has pending deltas), but a key holds at most two,
//!   and watch events replace each other: 1,000 `Updated`s of an object the store
//!   holds, pushed while the shard is busy, are delivered as one
//!   `on_update(stored, v1000)`; `Added` then 1,000 `Updated`s as one `on_add(v1000)`;
//!   updates then `Deleted` of a stored object as one `on_delete(final)`. Handlers
//!   skip intermediate states, as they would across a relist, and always end on the
//!   newest; what stays a pair is a delete followed by a re-create, and an add (or
//!   relist upsert) followed by its delete. Memory is O(pending keys) under any
//!   backlog, never O(events).
//! * **Deletions coalesce** as client-go's `dedupDeltas` does: two consecutive
//!   deletions keep the later one unless it is final-state-unknown; an object created
//!   and deleted while pending behind an earlier deletion collapses into that deletion.
//!   A handler never sees an update of a key after its delete without an add between.
//! * **One synthetic delete per relist.** [`Fifo::replace`] queues exactly one
//!   [`Delta::DeletedFinalStateUnknown`] for each key in the store or pending that the
//!   new list lacks (none if its newest pending delta already deletes it).
//! * **A first list may be queued as it arrives.** Into a fifo that never held
//!   anything ([`Fifo::is_pristine`]), [`Fifo::push_initial`] queues a list's objects
//!   as `replace` would, batch by batch, and [`Fifo::finish_initial`] ends it: such a
//!   list lacks no key, so the shard threads apply it while it is read, and the
//!   store is synced at its end, as after `replace`.
//! * **Notifications follow the store.** An upsert is delivered as `on_add` when the
//!   store did not hold the key and as `on_update(old, new)` when it did (as client-go's
//!   `HandleDeltas` decides); a deletion of a key the store does not hold is applied
//!   silently.
//!
//! # Relist choice
//! client-go queues a `Replaced` delta for every listed object and handlers get an
//! update for each, changed or not; kube-rs's watcher emits `Init`/`InitApply`/`InitDone`
//! and its store swaps wholesale. kcache applies a relist per key: unchanged
//! resourceVersion -> no notification (and the stored handle is kept), changed -> `on_update`,
//! new -> `on_add`, vanished -> `on_delete(obj, final_state_unknown = true)`. A relist
//! after a watch gap then costs handlers only what actually changed.
//!
//! # Threads and blocking
//! Handlers run on the shard threads and must be cheap (the intended pattern is
//! `workqueue.add(key)`). A slow handler delays only its own shard's keys; meanwhile
//! pushes keep coalescing, so memory stays bounded and `push` never blocks on a handler.
//! A panicking handler is caught (`catch_unwind`), counted per handler
//! ([`Handlers::panics`]) and in [`FifoStats::handler_panics`], logged with `tracing`,
//! and only skips that one call: the shard thread, other handlers and later events go
//! on. The store is written under the shard's queue lock (a few microseconds per
//! delta) so that [`Fifo::replace`] sees each key in the store or pending, never in
//! between; handlers are called outside it.
//!
//! # Resource versions
//! Every delta gets a global sequence number; the fifo drives the store's
//! [`Barrier`](crate::store::Barrier) so that `store.resource_version()` and
//! `store.wait_for(rv)` only move once every shard has applied everything up to it.
//! `Added`/`Updated`/`Deleted` advance the stream version to the object's
//! resourceVersion; [`Fifo::bookmark`] and the end of [`Fifo::replace`] advance it to
//! the given version.
//!
//! # Compaction
//! A fifo started with [`Fifo::spawn_compacting`] gives each shard thread a
//! [`ShardCompactor`](crate::store::ShardCompactor): between two keys, when a step
//! is due, the thread moves its shard's stored objects out of sparse arena segments
//! (it is the shard's only writer, so a move never races an update) and then the
//! objects waiting in its own queue, so a handler that falls behind cannot keep old
//! segments alive. Handlers are not told: the copies have the same bytes.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use kcache::fifo::{Delta, Fifo, Handler};
//! use kcache::object::testing::pod;
//! use kcache::store::{store, StoreConfig};
//! use kcache::Obj;
//!
//! #[derive(Default)]
//! struct Log(Mutex<Vec<String>>);
//! impl Handler for Log {
//!     fn on_add(&self, o: &Obj, _: bool) { self.0.lock().unwrap().push(format!("add {}", o.name())) }
//!     fn on_update(&self, _: &Obj, n: &Obj) { self.0.lock().unwrap().push(format!("update {}", n.resource_version())) }
//!     fn on_delete(&self, o: &Obj, _: bool) { self.0.lock().unwrap().push(format!("delete {}", o.name())) }
//! }
//!
//! let (reader, writer) = store(StoreConfig::default().shards(2));
//! let mut fifo = Fifo::spawn(writer).unwrap();
//! let log = Arc::new(Log::default());
//! fifo.add_handler(log.clone()).unwrap();
//! fifo.replace(vec![pod("ns", "a", "1", &[])], "1").unwrap();
//! fifo.push(Delta::Updated(pod("ns", "a", "2", &[]))).unwrap();
//! reader.wait_for_blocking("2", std::time::Duration::from_secs(5)).unwrap();
//! fifo.close();
//! assert_eq!(*log.0.lock().unwrap(), ["add a", "update 2"]);
//! ```

mod delta;
mod error;
#[allow(clippy::module_inception)] // the file holds the `Fifo` type
mod fifo;
mod handler;
mod queue;
mod worker;

pub use delta::Delta;
pub use error::FifoError;
pub use fifo::{Fifo, FifoStats, Handlers};
pub use handler::{Handler, HandlerId};
