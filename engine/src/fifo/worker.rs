//! The shard thread: applies a shard's deltas to the store and delivers notifications.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::handler::Registration;
use super::queue::{Command, Entry, Item, Slot, Upsert};
use super::fifo::Shared;
use crate::Obj;
use crate::store::{Barrier, ShardCompactor, ShardWriter};

/// A notification for the handlers, computed while the store is updated.
pub(crate) enum Note {
    Add(Obj, bool),
    Update(Obj, Obj),
    Delete(Obj, bool),
}

/// Applies one item to the store and returns the notification it causes.
fn apply(writer: &mut ShardWriter, key: &str, item: Item) -> Option<Note> {
    match item {
        Item::Upsert(_, Upsert::Sync) => writer.get(key).map(|cur| Note::Update(cur.clone(), cur)),
        Item::Upsert(obj, kind) => {
            if let Upsert::Replaced { .. } = kind {
                // A relist of an unchanged object: keep the stored handle, tell nobody.
                if writer.get(key).is_some_and(|cur| cur.resource_version() == obj.resource_version()) {
                    return None;
                }
            }
            let initial = matches!(kind, Upsert::Replaced { initial: true });
            match log_wrong_shard(writer.upsert(obj.clone())).flatten() {
                Some(old) => Some(Note::Update(old, obj)),
                None => Some(Note::Add(obj, initial)),
            }
        }
        Item::Delete(obj, unknown) => {
            // Handlers only hear of deletions of objects they were told about.
            log_wrong_shard(writer.delete(key)).flatten().map(|_| Note::Delete(obj, unknown))
        }
    }
}

fn log_wrong_shard<T>(r: Result<T, crate::store::StoreError>) -> Option<T> {
    r.map_err(|e| tracing::error!(error = %e, "fifo routed a delta to the wrong shard")).ok()
}

fn call(reg: &Registration, shared: &Shared, f: impl FnOnce(&dyn super::Handler)) {
    if catch_unwind(AssertUnwindSafe(|| f(&*reg.handler))).is_err() {
        reg.panics.fetch_add(1, Relaxed);
        shared.handler_panics.fetch_add(1, Relaxed);
        tracing::error!(handler = %reg.id, "handler panicked; event skipped for this handler only");
    }
}

fn deliver(note: &Note, handlers: &[Arc<Registration>], shared: &Shared) {
    for reg in handlers {
        match note {
            Note::Add(o, initial) => call(reg, shared, |h| h.on_add(o, *initial)),
            Note::Update(old, new) => call(reg, shared, |h| h.on_update(old, new)),
            Note::Delete(o, unknown) => call(reg, shared, |h| h.on_delete(o, *unknown)),
        }
    }
}

/// The shard thread's loop: runs until the fifo is closed and the queue drained.
///
/// With a compactor, a compaction step runs between two keys whenever one is
/// due (busy or idle: a queue that never empties must not stop compaction),
/// and an idle thread sleeps no longer than until the next step is due.
pub(crate) fn run(
    shard: usize,
    mut writer: ShardWriter,
    barrier: Barrier,
    shared: Arc<Shared>,
    mut compactor: Option<ShardCompactor>,
) {
    let queue = &shared.queues[shard];
    let mut handlers: Vec<Arc<Registration>> = Vec::new();
    let mut notes: Vec<Note> = Vec::with_capacity(2);
    loop {
        if let Some(c) = compactor.as_mut() {
            let now = Instant::now();
            if c.due().is_some_and(|at| at <= now) {
                // The step writes the shard without the queue lock, as the
                // relist invariant allows: a move changes no key and no
                // resourceVersion. Only the pass over the queue's own objects
                // takes the lock.
                c.step(&mut writer, now, |c, budget| queue.lock().relocate_pending(budget, |o| c.relocate(o)));
            }
        }
        let mut q = queue.lock();
        let slot = loop {
            if let Some(s) = q.order.pop_front() {
                break Some(s);
            }
            if q.closed {
                barrier.set_shard_low(shard, None);
                return;
            }
            q.shrink_drained();
            if writer.has_retired() {
                // Idle next: free what this thread's writes replaced now (outside the
                // queue lock: it may run deferred drops), then look again.
                drop(q);
                writer.release_retired();
                q = queue.lock();
                continue;
            }
            match compactor.as_ref().and_then(ShardCompactor::due) {
                None => q = queue.ready.wait(q).unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    let now = Instant::now();
                    if at <= now {
                        break None;
                    }
                    q = queue.ready.wait_timeout(q, at - now).unwrap_or_else(PoisonError::into_inner).0;
                }
            }
        };
        let Some(slot) = slot else { continue };
        match slot {
            Slot::Key(key) => {
                let Some(entry) = q.pending.remove(&key) else {
                    tracing::error!(%key, "fifo key without pending deltas");
                    continue;
                };
                let Entry { first, last, .. } = entry;
                let n = 1 + u64::from(last.is_some());
                // Before the apply, under the lock: a reader that sees the store
                // synced and this flag clear knows the notifications of every
                // delta applied so far were delivered (see `Handlers::has_synced`).
                // Once this shard's initial list is known delivered, nobody
                // reads the flag again: the hot path skips it.
                let tracking = !shared.initial_delivered[shard].load(SeqCst);
                if tracking {
                    shared.delivering[shard].store(true, SeqCst);
                }
                q.items -= n as usize;
                // The store is written under the queue lock so that a relist computing
                // "keys in the store or pending" sees every key in exactly one of them.
                notes.extend(apply(&mut writer, &key, first));
                if let Some(last) = last {
                    notes.extend(apply(&mut writer, &key, last));
                }
                barrier.set_shard_low(shard, q.low());
                queue.publish_backlog(&q);
                drop(q);
                queue.counters.applied.fetch_add(n, Relaxed);
                for note in notes.drain(..) {
                    deliver(&note, &handlers, &shared);
                }
                if tracking {
                    if shared.store.has_synced() {
                        // A busy shard may never be seen idle by a reader: mark it here.
                        shared.initial_delivered[shard].store(true, SeqCst);
                        shared.delivering[shard].store(false, SeqCst);
                        shared.notify_handler_synced();
                    } else {
                        shared.delivering[shard].store(false, SeqCst);
                    }
                }
            }
            Slot::Command(Command::AddHandler(reg)) => {
                drop(q);
                handlers.push(Arc::clone(&reg));
                // Replay without the queue lock: this thread is the shard's only writer,
                // so the shard cannot change meanwhile, and the producer keeps pushing.
                writer.for_each(|o| call(&reg, &shared, |h| h.on_add(o, true)));
                if reg.replay_left.fetch_sub(1, SeqCst) == 1 {
                    shared.notify_handler_synced();
                }
            }
            Slot::Command(Command::RemoveHandler(id)) => {
                drop(q);
                handlers.retain(|r| r.id != id);
            }
        }
    }
}
