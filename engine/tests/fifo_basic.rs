//! Fifo semantics: order, notifications, relist, resync, compaction, handlers, barrier.

#[path = "store_support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kcache::Obj;
use kcache::fifo::{Delta, Fifo, FifoError, Handler};
use kcache::object::testing::pod;
use kcache::arena::Arena;
use kcache::store::{CompactionConfig, StoreConfig, StoreError, store};
use support::name_on_shard;

const T: Duration = Duration::from_secs(10);

/// Records every notification as a string; can block in a handler call until released.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
    gate: Mutex<bool>,
    cv: Condvar,
    /// Block only on this object name (empty = every object), while the gate is closed.
    block_on: Mutex<String>,
    blocked: AtomicBool,
}

impl Recorder {
    fn close_gate(&self, name: &str) {
        *self.block_on.lock().unwrap() = name.to_owned();
        *self.gate.lock().unwrap() = true;
    }
    fn open_gate(&self) {
        *self.gate.lock().unwrap() = false;
        self.cv.notify_all();
    }
    fn wait_gate(&self, name: &str) {
        let target = self.block_on.lock().unwrap().clone();
        if !target.is_empty() && target != name {
            return;
        }
        let mut g = self.gate.lock().unwrap();
        while *g {
            self.blocked.store(true, Ordering::SeqCst);
            g = self.cv.wait(g).unwrap();
        }
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn push(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

impl Handler for Recorder {
    fn on_add(&self, o: &Obj, initial: bool) {
        self.wait_gate(o.name());
        self.push(format!("add {}@{}{}", o.name(), o.resource_version(), if initial { " initial" } else { "" }));
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        self.wait_gate(new.name());
        self.push(format!("update {}@{}->{}", new.name(), old.resource_version(), new.resource_version()));
    }
    fn on_delete(&self, o: &Obj, unknown: bool) {
        self.wait_gate(o.name());
        self.push(format!("delete {}@{}{}", o.name(), o.resource_version(), if unknown { " unknown" } else { "" }));
    }
}

/// Opens the gate when dropped, so that a failing assertion cannot leave a shard
/// thread blocked while the fifo's drop joins it.
struct OpenOnDrop(Arc<Recorder>);
impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open_gate();
    }
}

fn fifo(shards: usize) -> (Fifo, Arc<Recorder>) {
    let (_r, w) = store(StoreConfig::default().shards(shards));
    let f = Fifo::spawn(w).unwrap();
    let rec = Arc::new(Recorder::default());
    f.add_handler(rec.clone()).unwrap();
    (f, rec)
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_keys_deltas_are_delivered_in_order_as_add_update_delete() {
    let (mut f, rec) = fifo(2);
    f.push(Delta::Added(pod("ns", "a", "1", &[]))).unwrap();
    f.store().wait_for_blocking("1", T).unwrap();
    f.push(Delta::Updated(pod("ns", "a", "2", &[]))).unwrap();
    f.store().wait_for_blocking("2", T).unwrap();
    f.push(Delta::Deleted(pod("ns", "a", "3", &[]))).unwrap();
    f.close();
    assert_eq!(rec.log(), ["add a@1", "update a@1->2", "delete a@3"]);
    assert!(f.store().is_empty());
}

#[test]
fn a_delete_of_an_unknown_key_is_applied_silently() {
    let (mut f, rec) = fifo(2);
    f.push(Delta::Deleted(pod("ns", "ghost", "3", &[]))).unwrap();
    f.close();
    assert!(rec.log().is_empty());
}

#[test]
fn the_first_replace_adds_with_initial_list_flag_and_marks_the_store_synced() {
    let (mut f, rec) = fifo(2);
    let store = f.store();
    assert!(!store.has_synced());
    f.replace(vec![pod("ns", "a", "1", &[]), pod("ns", "b", "2", &[])], "10").unwrap();
    assert!(store.wait_synced_blocking(T));
    assert_eq!(store.resource_version().as_deref(), Some("10"));
    f.push(Delta::Added(pod("ns", "c", "11", &[]))).unwrap();
    f.close();
    let mut log = rec.log();
    log.sort();
    assert_eq!(log, ["add a@1 initial", "add b@2 initial", "add c@11"]);
}

#[test]
fn a_first_list_queued_as_it_arrives_is_applied_before_it_ends_and_syncs_at_its_end() {
    let (mut f, rec) = fifo(2);
    let store = f.store();
    assert!(f.is_pristine());
    f.push_initial(vec![pod("ns", "a", "1", &[]), pod("ns", "b", "2", &[])]).unwrap();
    assert!(!f.is_pristine());
    // Applied and delivered while the rest of the list is still being read.
    wait_until("the first part is applied", || store.len() == 2 && rec.log().len() == 2);
    assert!(!store.has_synced(), "synced only at the list's end");
    // A resync before the end delivers nothing: the list's adds are still coming.
    f.resync().unwrap();
    f.push_initial(vec![pod("ns", "c", "3", &[])]).unwrap();
    f.finish_initial("10");
    assert!(store.wait_synced_blocking(T));
    assert_eq!(store.resource_version().as_deref(), Some("10"));
    assert_eq!(store.len(), 3);
    // A later relist is a replace: it deletes what it lacks.
    f.replace(vec![pod("ns", "a", "1", &[]), pod("ns", "c", "3", &[])], "11").unwrap();
    f.close();
    let mut log = rec.log();
    log.sort();
    assert_eq!(log, ["add a@1 initial", "add b@2 initial", "add c@3 initial", "delete b@2 unknown"]);
}

#[test]
fn a_relist_deletes_vanished_keys_once_updates_changed_ones_and_skips_unchanged_ones() {
    let (mut f, rec) = fifo(2);
    f.replace(vec![pod("ns", "same", "1", &[]), pod("ns", "changed", "2", &[]), pod("ns", "gone", "3", &[])], "3").unwrap();
    wait_until("the initial list is delivered", || rec.log().len() == 3);
    rec.log.lock().unwrap().clear();
    // A key only pending (never applied) and absent from the relist is deleted too,
    // but a key whose newest pending delta is already a delete is not deleted again.
    let _open = OpenOnDrop(rec.clone());
    rec.close_gate("blocker");
    f.push(Delta::Added(pod("ns", "blocker", "4", &[]))).unwrap();
    wait_until("the handler blocks", || rec.blocked.load(Ordering::SeqCst));
    // Everything below queues behind the blocked shard or runs on the other one.
    f.replace(vec![pod("ns", "same", "1", &[]), pod("ns", "changed", "5", &[]), pod("ns", "new", "5", &[])], "5").unwrap();
    f.replace(vec![pod("ns", "same", "1", &[]), pod("ns", "changed", "5", &[]), pod("ns", "new", "5", &[])], "6").unwrap();
    rec.open_gate();
    f.close();
    let mut log = rec.log();
    log.sort();
    assert_eq!(log, ["add blocker@4", "add new@5", "delete blocker@4 unknown", "delete gone@3 unknown", "update changed@2->5"]);
    assert_eq!(f.store().len(), 3);
}

#[test]
fn resync_redelivers_every_stored_object_as_an_update_to_itself() {
    let (mut f, rec) = fifo(2);
    f.replace(vec![pod("ns", "a", "1", &[]), pod("ns", "b", "2", &[])], "2").unwrap();
    // Resync skips keys with pending deltas: let the relist apply first.
    f.store().wait_for_blocking("2", T).unwrap();
    f.resync().unwrap();
    f.close();
    let mut log = rec.log();
    log.sort();
    assert_eq!(log, ["add a@1 initial", "add b@2 initial", "update a@1->1", "update b@2->2"]);
}

#[test]
fn a_compacting_fifo_moves_stored_objects_out_of_sparse_segments_without_notifying() {
    let (store, writer) = store(StoreConfig::default().shards(2));
    let mut arena = Arena::with_segment_bytes(16 << 10);
    let config = CompactionConfig { compact_below: 0.9, interval: Duration::from_millis(1) };
    let mut f = Fifo::spawn_compacting(writer, &arena, config).unwrap();
    let rec = Arc::new(Recorder::default());
    f.handlers().add(rec.clone()).unwrap();
    // 300 objects in 16 KiB segments, then two of every three deleted: every
    // sealed segment keeps a third of its bytes alive.
    let labels = [("app", "a-label-value-long-enough-to-fill-segments-quickly")];
    for i in 0..300 {
        f.push(Delta::Added(arena.relocate(&pod("ns", &format!("p-{i}"), "1", &labels)))).unwrap();
    }
    for i in (0..300).filter(|i| i % 3 != 0) {
        f.push(Delta::Deleted(pod("ns", &format!("p-{i}"), "2", &labels))).unwrap();
    }
    f.bookmark("2");
    store.wait_for_blocking("2", T).unwrap();
    // A move updates the object table, then the indexes: wait until both hold only
    // moved handles (indexes holding the moved handles too means nothing pins the
    // old segments). The shard threads may still be finishing a move when the
    // table alone looks done.
    let deadline = Instant::now() + T;
    loop {
        let in_table = store.list().iter().filter(|o| o.segment_is_sparse()).count();
        let in_index = store.index("namespace", "ns").unwrap().to_vec().iter().filter(|o| o.segment_is_sparse()).count();
        if in_table == 0 && in_index == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{in_table} stored and {in_index} indexed objects still in sparse segments");
        std::thread::sleep(Duration::from_millis(5));
    }
    f.close();
    assert_eq!(store.len(), 100);
    assert_eq!(store.index("namespace", "ns").unwrap().to_vec().len(), 100);
    let log = rec.log();
    assert_eq!(log.len(), 500, "300 adds and 200 deletes, and nothing for the moves: {log:?}");
}

struct Panicky {
    calls: AtomicUsize,
}
impl Handler for Panicky {
    fn on_add(&self, o: &Obj, _: bool) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(o.name() != "boom", "handler failure injected by the test");
    }
    fn on_update(&self, _: &Obj, _: &Obj) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
    fn on_delete(&self, _: &Obj, _: bool) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panicking_handler_is_counted_and_loses_no_later_event_for_itself_or_others() {
    let (mut f, rec) = fifo(1);
    let p = Arc::new(Panicky { calls: AtomicUsize::new(0) });
    let id = f.add_handler(p.clone()).unwrap();
    f.push(Delta::Added(pod("ns", "boom", "1", &[]))).unwrap();
    f.push(Delta::Added(pod("ns", "ok", "2", &[]))).unwrap();
    // Pushed while the add is pending, the update would replace it (one
    // `on_add(boom@3)`): wait for both adds to be delivered first.
    let deadline = std::time::Instant::now() + T;
    while p.calls.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    f.push(Delta::Updated(pod("ns", "boom", "3", &[]))).unwrap();
    f.close();
    assert_eq!(f.handlers().panics(id), Some(1));
    assert_eq!(f.stats().handler_panics, 1);
    assert_eq!(p.calls.load(Ordering::SeqCst), 3);
    let mut log = rec.log();
    log.sort();
    assert_eq!(log, ["add boom@1", "add ok@2", "update boom@1->3"]);
}

#[test]
fn a_handler_added_later_gets_the_store_replayed_then_live_events_and_syncs() {
    let (mut f, _rec) = fifo(2);
    f.replace((0..50).map(|i| pod("ns", &format!("p{i}"), "1", &[])).collect(), "1").unwrap();
    let late = Arc::new(Recorder::default());
    let id = f.add_handler(late.clone()).unwrap();
    assert!(f.handlers().wait_synced(id, T));
    f.push(Delta::Updated(pod("ns", "p0", "2", &[]))).unwrap();
    let h = f.handlers();
    f.close();
    let log = late.log();
    assert_eq!(log.iter().filter(|l| l.ends_with("@1 initial")).count(), 50);
    assert_eq!(log.last().map(String::as_str), Some("update p0@1->2"));
    assert!(h.has_synced(id));
}

#[test]
fn a_removed_handler_stops_receiving_events() {
    let (mut f, rec) = fifo(2);
    f.push(Delta::Added(pod("ns", "a", "1", &[]))).unwrap();
    f.store().wait_for_blocking("1", T).unwrap();
    let id = f.handlers().add(rec.clone()).unwrap();
    f.remove_handler(id).unwrap();
    assert!(matches!(f.remove_handler(id), Err(FifoError::UnknownHandler { .. })));
    f.push(Delta::Updated(pod("ns", "a", "2", &[]))).unwrap();
    f.close();
    // The first registration saw add + update; the second one only its replay.
    assert_eq!(rec.log(), ["add a@1", "add a@1 initial", "update a@1->2"]);
}

#[test]
fn a_closed_fifo_hands_the_delta_back() {
    let (mut f, _rec) = fifo(2);
    f.close();
    match f.push(Delta::Added(pod("ns", "a", "1", &[]))) {
        Err(FifoError::Closed { key, delta: Some(d) }) => {
            assert_eq!(key, "ns/a");
            assert_eq!(d.object().name(), "a");
        }
        other => panic!("expected Closed with the delta, got {other:?}"),
    }
}

#[test]
fn wait_for_resolves_only_after_every_shard_applied_up_to_the_version() {
    let (mut f, rec) = fifo(2);
    let store = f.store();
    let slow = name_on_shard("ns", 0, 2, 0);
    let behind = name_on_shard("ns", 0, 2, 1);
    let fast = name_on_shard("ns", 1, 2, 2);
    let _open = OpenOnDrop(rec.clone());
    rec.close_gate(&slow);
    f.push(Delta::Added(pod("ns", &slow, "10", &[]))).unwrap();
    wait_until("shard 0 blocks in its handler", || rec.blocked.load(Ordering::SeqCst));
    f.push(Delta::Added(pod("ns", &behind, "11", &[]))).unwrap();
    f.push(Delta::Added(pod("ns", &fast, "12", &[]))).unwrap();
    wait_until("shard 1 applied", || store.get_by_key(&format!("ns/{fast}")).is_some());
    f.bookmark("13");
    // Shard 1 is done, but shard 0 has not applied rv 11: the store is at 10.
    assert_eq!(store.resource_version().as_deref(), Some("10"));
    let err = store.wait_for_blocking("12", Duration::from_millis(50)).unwrap_err();
    assert!(matches!(err, StoreError::Timeout { .. }));
    assert!(store.wait_for_blocking("10", Duration::from_millis(1)).is_ok());
    rec.open_gate();
    store.wait_for_blocking("13", T).unwrap();
    assert_eq!(store.resource_version().as_deref(), Some("13"));
    f.close();
}

#[test]
fn a_million_updates_over_a_thousand_keys_with_blocked_handlers_stay_within_two_deltas_per_key() {
    const KEYS: usize = 1000;
    let (mut f, rec) = fifo(2);
    let _open = OpenOnDrop(rec.clone());
    rec.close_gate("");
    // Prebuilt versions keep the test about the fifo, not about building objects.
    let versions: Vec<Vec<Obj>> =
        (0..KEYS).map(|k| (0..4).map(|v| pod("ns", &format!("k{k}"), &(v + 1).to_string(), &[])).collect()).collect();
    let mut max_keys = 0;
    let mut max_deltas = 0;
    for i in 0..1_000_000usize {
        let k = i % KEYS;
        let v = (i / KEYS) % 4;
        let d = if i < KEYS { Delta::Added(versions[k][v].clone()) } else { Delta::Updated(versions[k][v].clone()) };
        f.push(d).unwrap();
        if i % 10_000 == 0 {
            let s = f.stats();
            max_keys = max_keys.max(s.backlog_keys.iter().sum::<usize>());
            max_deltas = max_deltas.max(s.backlog_deltas.iter().sum::<usize>());
        }
    }
    let s = f.stats();
    max_keys = max_keys.max(s.backlog_keys.iter().sum::<usize>());
    max_deltas = max_deltas.max(s.backlog_deltas.iter().sum::<usize>());
    assert!(max_keys <= KEYS, "pending keys {max_keys}");
    assert!(max_deltas <= 2 * KEYS, "pending deltas {max_deltas}");
    // pushed = applied + coalesced + pending; each blocked shard applied one entry.
    assert!(s.coalesced >= 1_000_000 - 2 * KEYS as u64 - 4, "coalesced {}", s.coalesced);
    rec.open_gate();
    f.close();
    let s = f.stats();
    assert_eq!(s.pushed, 1_000_000);
    assert_eq!(s.pushed, s.applied + s.coalesced);
    // The final state is the last pushed one: i = 999_000.. pushed version (999 % 4) = 3.
    let store = f.store();
    assert!(store.list().iter().all(|o| o.resource_version() == "4"));
    assert_eq!(store.len(), KEYS);
}

#[test]
fn a_scoped_replace_touches_only_the_keys_in_scope() {
    let (mut f, rec) = fifo(2);
    let initial = ["kept-a", "kept-b", "lost-a", "lost-b", "moved-a"].map(|n| pod("ns", n, "1", &[]));
    f.replace(initial.to_vec(), "3").unwrap();
    wait_until("the initial list is delivered", || rec.log().len() == 5);
    rec.log.lock().unwrap().clear();
    // A kept key changed on the watch (applied or still pending): out of scope, so
    // the replace neither deletes it nor takes it back to the listed state.
    f.push(Delta::Updated(pod("ns", "kept-b", "4", &[]))).unwrap();
    let in_scope = |o: &Obj| !o.name().starts_with("kept-");
    f.replace_scoped(vec![pod("ns", "gained", "6", &[]), pod("ns", "moved-a", "1", &[])], "6", in_scope).unwrap();
    f.close();
    let mut log = rec.log();
    log.sort();
    assert_eq!(log, ["add gained@6", "delete lost-a@1 unknown", "delete lost-b@1 unknown", "update kept-b@1->4"]);
    let mut names: Vec<String> = f.store().list().iter().map(|o| o.name().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["gained", "kept-a", "kept-b", "moved-a"]);
    assert_eq!(f.store().resource_version().as_deref(), Some("6"));
}
