//! Informers, the shared factory and the controller, against the in-memory source.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kcache::Obj;
use kcache::Handler;
use kcache::reflector::Backoff;
use kcache::controller::{Action, KeyController, ReconcileKey};
use kcache::informer::{Informer, InformerConfig, InformerKey, SharedInformerFactory};
use kcache::store::CompactionConfig;
use kcache::testing::MemorySource;
use kcache::reflector::WatcherError;
use serde_json::json;

fn pod(ns: &str, name: &str, node: &str) -> serde_json::Value {
    json!({"metadata": {"namespace": ns, "name": name, "labels": {"app": "web"}}, "spec": {"nodeName": node}})
}

fn config() -> InformerConfig {
    let mut c = InformerConfig::default();
    c.watcher.backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
    c.watcher.page_size = Some(7);
    c
}

#[derive(Default)]
struct Log {
    events: Mutex<Vec<String>>,
}

impl Log {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
    fn push(&self, s: String) {
        self.events.lock().unwrap().push(s);
    }
}

impl Handler for Log {
    fn on_add(&self, obj: &Obj, initial: bool) {
        self.push(format!("add {} {}", obj.key(), if initial { "initial" } else { "live" }));
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        self.push(format!("update {} {}->{}", new.key(), old.resource_version(), new.resource_version()));
    }
    fn on_delete(&self, obj: &Obj, unknown: bool) {
        self.push(format!("delete {}{}", obj.key(), if unknown { " unknown" } else { "" }));
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn cache_of(i: &Informer) -> BTreeMap<String, String> {
    i.store().list().iter().map(|o| (o.key(), o.resource_version().to_owned())).collect()
}

fn server_of(src: &MemorySource) -> BTreeMap<String, String> {
    src.snapshot().into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informer_syncs_and_follows_creates_updates_and_deletes() {
    let src = MemorySource::new("Pod");
    for i in 0..20 {
        src.apply(pod("default", &format!("p{i:02}"), "n1"));
    }
    let informer = Informer::spawn(src.clone(), config()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(10)).await);
    assert_eq!(cache_of(&informer), server_of(&src));

    let log = Arc::new(Log::default());
    let id = informer.add_handler(log.clone()).unwrap();
    eventually("replay to the new handler", || informer.handler_synced(id)).await;
    let replay = log.take();
    assert_eq!(replay.len(), 20);
    assert!(replay.iter().all(|e| e.ends_with("initial")), "{replay:?}");

    src.apply(pod("default", "p00", "n2"));
    src.apply(pod("default", "fresh", "n1"));
    src.delete("default/p01");
    let rv = src.resource_version().to_string();
    informer.store().wait_for(&rv).await.unwrap();
    eventually("three live events", || log.events.lock().unwrap().len() == 3).await;
    let mut live = log.take();
    live.sort();
    assert_eq!(live, vec!["add default/fresh live", "delete default/p01", "update default/p00 1->21"]);
    assert_eq!(cache_of(&informer), server_of(&src));

    informer.remove_handler(id).unwrap();
    src.apply(pod("default", "ignored", "n1"));
    informer.store().wait_for(&src.resource_version().to_string()).await.unwrap();
    assert!(log.take().is_empty(), "a removed handler gets nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_after_410_reports_deletions_it_missed_exactly_once() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "keep", "n1"));
    src.apply(pod("a", "gone", "n1"));
    let informer = Informer::spawn(src.clone(), config()).unwrap();
    let log = Arc::new(Log::default());
    informer.add_handler(log.clone()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(10)).await);
    eventually("initial adds", || log.events.lock().unwrap().len() == 2).await;
    log.take();

    // Delete while the watch is down and the history is compacted: only a relist can tell.
    src.refuse_watches(true);
    src.disconnect_watches();
    src.delete("a/gone");
    src.expire_history();
    src.refuse_watches(false);
    eventually("the relist", || src.list_calls() >= 2 && cache_of(&informer) == server_of(&src)).await;
    eventually("the synthetic delete", || !log.events.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = log.take();
    let deletes: Vec<_> = events.iter().filter(|e| e.starts_with("delete")).collect();
    assert_eq!(deletes, vec!["delete a/gone unknown"], "one final-state-unknown delete: {events:?}");
    assert_eq!(informer.stats().relists.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_redelivers_from_memory_without_api_calls() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "n1"));
    let mut c = config();
    c.resync = Some(Duration::from_millis(50));
    let informer = Informer::spawn(src.clone(), c).unwrap();
    let log = Arc::new(Log::default());
    informer.add_handler(log.clone()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(10)).await);
    // The watch opens just after the sync: count from then on, or its own call
    // would read as the resync's.
    eventually("the watch", || src.watch_calls() >= 1).await;
    let (lists, watches) = (src.list_calls(), src.watch_calls());
    eventually("two resyncs", || log.events.lock().unwrap().iter().filter(|e| e.starts_with("update a/x 1->1")).count() >= 2)
        .await;
    assert_eq!((src.list_calls(), src.watch_calls()), (lists, watches), "resync must not call the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_factory_shares_one_watch_per_key_and_separates_selectors() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "n1"));
    let s = src.clone();
    let factory = SharedInformerFactory::new(move |_k: &InformerKey| s.clone());
    let key = InformerKey::of::<k8s_openapi::api::core::v1::Pod>();
    let a = factory.informer(&key, config).unwrap();
    let b = factory.informer(&key, config).unwrap();
    let c = factory.informer(&key.clone().labels("app=web"), config).unwrap();
    for i in [&a, &b, &c] {
        assert!(i.wait_for_sync(Duration::from_secs(10)).await);
    }
    assert_eq!(factory.len(), 2);
    assert_eq!(src.list_calls(), 2, "one list per distinct key");
    factory.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_retries_errors_and_panics_and_reconciles_changes() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "n1"));
    let informer = Informer::spawn(src.clone(), config()).unwrap();
    let queue = kcache::queue::WorkQueue::builder()
        .name("test")
        .rate_limiter(kcache::queue::ItemExponentialFailureRateLimiter::new(Duration::from_millis(1), Duration::from_millis(20)))
        .build();
    let controller = KeyController::with_queue(queue).workers(2);
    informer.add_handler(controller.handler_for(kcache::controller::kind_of::<k8s_openapi::api::core::v1::Pod>(&()))).unwrap();
    let stats = controller.stats();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let store = informer.store();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller.run(
        move |key: ReconcileKey| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let store = store.clone();
            async move {
                match n {
                    0 => Err("first attempt fails".to_owned()),
                    1 => panic!("second attempt panics"),
                    _ => {
                        assert!(store.get(&key.object_ref()).is_some() || key.name == "y");
                        Ok(Action::Done)
                    }
                }
            }
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    eventually("retries to succeed", || calls.load(Ordering::SeqCst) >= 3).await;
    assert_eq!(stats.errors.load(Ordering::SeqCst), 1);
    assert_eq!(stats.panics.load(Ordering::SeqCst), 1);
    src.apply(pod("a", "y", "n1"));
    eventually("the new object to be reconciled", || calls.load(Ordering::SeqCst) >= 4).await;
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("graceful shutdown").unwrap();
}

/// A pod padded to ~1 KB, so that a few fill a 16 KiB arena segment.
fn padded(name: &str, generation: usize) -> serde_json::Value {
    json!({"metadata": {"namespace": "a", "name": name, "annotations": {"pad": "x".repeat(900), "gen": generation.to_string()}}})
}

/// Two synced informers over `src` with 16 KiB segments and maintenance every
/// millisecond: one compacting below `compact_below`, one never compacting.
async fn compacting_and_control(src: &MemorySource, compact_below: f64) -> (Informer, Informer) {
    let start = |compact_below: f64| {
        let mut c = config();
        c.arena_segment_bytes = Some(16 * 1024);
        c.compaction = CompactionConfig { compact_below, interval: Duration::from_millis(1) };
        Informer::spawn(src.clone(), c).unwrap()
    };
    let (compacting, control) = (start(compact_below), start(0.0));
    assert!(compacting.wait_for_sync(Duration::from_secs(10)).await);
    assert!(control.wait_for_sync(Duration::from_secs(10)).await);
    (compacting, control)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_arena_segments_are_compacted_without_notifying_handlers() {
    let src = MemorySource::new("Pod");
    for i in 0..300 {
        src.apply(padded(&format!("p{i:03}"), 0));
    }
    let (compacting, control) = compacting_and_control(&src, 0.9).await;
    let log = Arc::new(Log::default());
    let id = compacting.add_handler(log.clone()).unwrap();
    eventually("replay", || compacting.handler_synced(id)).await;
    log.take();

    // Rewrite 7 of every 8 objects: every old segment is left holding a few live objects.
    let mut rewritten = 0;
    for i in (0..300).filter(|i| i % 8 != 0) {
        src.apply(padded(&format!("p{i:03}"), 1));
        rewritten += 1;
    }
    let rv = src.resource_version().to_string();
    compacting.store().wait_for(&rv).await.unwrap();
    control.store().wait_for(&rv).await.unwrap();
    // Replaced handles are freed when the store's map reclaims them (papaya
    // retires removed values and frees them on later operations), so keep
    // the informers busy while waiting.
    let mut tick = 0usize;
    eventually("compaction to free the sparse segments", || {
        tick += 1;
        src.apply(padded(&format!("tick{}", tick % 8), tick));
        let (with, without) = (compacting.arena_stats(), control.arena_stats());
        // Live bytes also count old handles that papaya has retired but not yet
        // freed (it frees them in batches), so wait for those to go too.
        compacting.store().list().iter().all(|o| !o.segment_is_sparse())
            && with.segment_bytes < without.segment_bytes
            && with.live_bytes.abs_diff(without.live_bytes) * 20 < without.live_bytes
    })
    .await;
    let rv = src.resource_version().to_string();
    compacting.store().wait_for(&rv).await.unwrap();
    control.store().wait_for(&rv).await.unwrap();
    let (with, without) = (compacting.arena_stats(), control.arena_stats());
    eprintln!("arena with compaction {with:?}, without {without:?}");
    // Both hold the same objects; a few handles may still await reclamation in either.
    assert!(with.live_bytes.abs_diff(without.live_bytes) * 10 < without.live_bytes, "{with:?} vs {without:?}");
    assert!(without.live_bytes * 10 < without.segment_bytes * 8, "the control is left sparse: {without:?}");
    assert_eq!(cache_of(&compacting), cache_of(&control), "compaction changes no key or resourceVersion");
    let kept = compacting.store().get_by_key("a/p008").unwrap();
    assert_eq!(kept.pointer("/metadata/annotations/gen").unwrap(), "0");
    let updates: Vec<String> = log.take().into_iter().filter(|e| !e.contains("/tick")).collect();
    assert_eq!(updates.len(), rewritten, "relocations are invisible to handlers");
}

/// A handler whose `on_update` takes 20 ms until the gate opens: handlers that
/// fall far behind. (Compaction runs on the shard thread between two keys, so a
/// handler that never returns stops its shard's compaction with its delivery.)
#[derive(Default)]
struct Gate {
    open: std::sync::atomic::AtomicBool,
    updates: AtomicUsize,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Handler for Gate {
    fn on_add(&self, _: &Obj, _: bool) {}
    fn on_update(&self, _: &Obj, _: &Obj) {
        if !self.open.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.updates.fetch_add(1, Ordering::SeqCst);
    }
    fn on_delete(&self, _: &Obj, _: bool) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_queued_behind_a_slow_handler_do_not_pin_arena_segments() {
    const KEYS: usize = 400;
    const WRITES: usize = 6_000;
    let src = MemorySource::new("Pod");
    let name = |i: usize| format!("p{i:03}");
    for i in 0..KEYS {
        src.apply(padded(&name(i), 0));
    }
    let (compacting, control) = compacting_and_control(&src, 0.8).await;
    let gates = [Arc::new(Gate::default()), Arc::new(Gate::default())];
    compacting.add_handler(gates[0].clone()).unwrap();
    control.add_handler(gates[1].clone()).unwrap();

    // Random keys, as in a busy cluster: the oldest undelivered version of each
    // key is scattered over many segments, each otherwise dead.
    let mut x: u64 = 12345;
    for w in 0..WRITES {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        src.apply(padded(&name((x >> 33) as usize % KEYS), w + 1));
        if w % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let last_rv = src.resource_version();
    // Both watchers have decoded every write (the fifo queues them while the handlers wait).
    eventually("both watchers to decode every write", || {
        compacting.stats().events.load(Ordering::Relaxed) >= WRITES as u64
            && control.stats().events.load(Ordering::Relaxed) >= WRITES as u64
    })
    .await;
    // Give compaction scan intervals to walk the queues until it has caught up
    // with both measures the test asserts: on a loaded machine a scan can leave
    // segments that are only just below the threshold for the next one.
    let mut with = compacting.arena_stats();
    for i in 0..300 {
        with = compacting.arena_stats();
        let without = control.arena_stats();
        if with.live_bytes as f64 >= 0.7 * with.segment_bytes as f64
            && (with.segment_bytes as f64) < 0.6 * without.segment_bytes as f64
        {
            break;
        }
        src.apply(padded(&name(KEYS + (i % 4)), i));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let without = control.arena_stats();
    let fifo = compacting.fifo_stats();
    // Open the gates before asserting: a failed assertion must not leave the
    // shard threads slowed down for the rest of the test.
    for g in &gates {
        g.open();
    }
    eprintln!("blocked handlers: arena with compaction {with:?}, without {without:?}");
    // Queued updates of stored keys coalesce into one object per key, so the
    // queues pin about one dead object per key; compaction frees most of it
    // (measured: 0.97 MB of segments against 1.92 MB).
    assert!(
        (with.segment_bytes as f64) < 0.6 * without.segment_bytes as f64,
        "compaction should free the segments pinned by queued objects: {with:?} vs {without:?}"
    );
    assert!(with.live_bytes as f64 >= 0.6 * with.segment_bytes as f64, "{with:?}");
    // The backlog is per key, one watch update each, however many writes queued.
    let (keys, deltas) = (fifo.backlog_keys.iter().sum::<usize>(), fifo.backlog_deltas.iter().sum::<usize>());
    assert!(keys > 0 && keys <= KEYS + 4 && deltas == keys, "{fifo:?}");
    assert!(fifo.coalesced as usize >= WRITES - 2 * (KEYS + 4), "{fifo:?}");

    // Nothing is lost: once the handlers run again, both caches reach the source.
    let rv = src.resource_version().to_string();
    assert!(src.resource_version() >= last_rv);
    compacting.store().wait_for(&rv).await.unwrap();
    control.store().wait_for(&rv).await.unwrap();
    assert_eq!(cache_of(&compacting), server_of(&src));
    assert_eq!(cache_of(&compacting), cache_of(&control));
    assert!(gates[0].updates.load(Ordering::SeqCst) >= KEYS, "every key's last version reached the handler");
}

/// Collects every `TooManyObjects` error the informer reports, as `(limit, seen)`.
fn too_many_log(c: &mut InformerConfig) -> Arc<Mutex<Vec<(usize, usize, String)>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    c.watcher.on_error = Some(Arc::new(move |e: &WatcherError| {
        if let WatcherError::TooManyObjects { limit, seen } = e {
            sink.lock().unwrap().push((*limit, *seen, e.to_string()));
        }
    }));
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_over_max_objects_never_syncs_reports_the_error_and_syncs_once_the_collection_shrinks() {
    let src = MemorySource::new("Pod");
    for i in 0..100 {
        src.apply(pod("a", &format!("p{i:03}"), "n1"));
    }
    let mut c = config();
    c.watcher.page_size = Some(10);
    c.watcher.max_objects = Some(25);
    // With a selector the server sends no remainingItemCount: the watcher has
    // to count, and asks for no more than the limit plus one.
    c.watcher.label_selector = Some("app=web".to_owned());
    // Slow enough that the request count below is read before the retry.
    c.watcher.backoff = Backoff::new(Duration::from_millis(300), Duration::from_millis(300));
    let errors = too_many_log(&mut c);
    let informer = Informer::spawn(src.clone(), c).unwrap();
    eventually("the first TooManyObjects", || !errors.lock().unwrap().is_empty()).await;
    // Pages of 10, 10, then only the 6 that tell 25 from 26: the other 74
    // objects are never requested.
    assert_eq!(src.list_calls(), 3, "reading stops once the count passes the limit");
    {
        let errors = errors.lock().unwrap();
        let (limit, seen, text) = &errors[0];
        assert_eq!((*limit, *seen), (25, 26));
        assert!(text.contains("raise WatcherConfig::max_objects or narrow the label/field selector"), "{text}");
    }
    eventually("a retry after backoff", || errors.lock().unwrap().len() >= 2).await;
    assert!(!informer.has_synced(), "a list over the limit never syncs");
    assert_eq!(informer.store().len(), 0, "nothing of it reaches the store");
    assert!(informer.stats().errors.load(Ordering::Relaxed) >= 2);

    // Under the limit again at the source: the next relist syncs.
    for i in 25..100 {
        src.delete(&format!("a/p{i:03}"));
    }
    assert!(informer.wait_for_sync(Duration::from_secs(10)).await);
    eventually("the whole collection", || cache_of(&informer) == server_of(&src)).await;
    assert_eq!(informer.store().len(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_grows_past_max_objects_reports_it_and_keeps_the_cache_until_it_shrinks() {
    let src = MemorySource::new("Pod");
    for i in 0..5 {
        src.apply(pod("a", &format!("p{i}"), "n1"));
    }
    let mut c = config();
    c.watcher.max_objects = Some(6);
    let errors = too_many_log(&mut c);
    let informer = Informer::spawn(src.clone(), c).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(10)).await);
    src.apply(pod("a", "sixth", "n1"));
    tokio::time::timeout(Duration::from_secs(10), informer.store().wait_for(&src.resource_version().to_string()))
        .await
        .expect("the sixth object in time")
        .unwrap();
    let before = cache_of(&informer);
    assert_eq!(before.len(), 6);

    src.apply(pod("a", "seventh", "n1"));
    eventually("TooManyObjects from the watch", || !errors.lock().unwrap().is_empty()).await;
    let first = errors.lock().unwrap()[0].clone();
    assert_eq!((first.0, first.1), (6, 7));
    // Relists fail the same way while the collection is too big (the list reads 7 of 7).
    eventually("a failed relist", || errors.lock().unwrap().len() >= 2 && src.list_calls() >= 2).await;
    assert_eq!(cache_of(&informer), before, "the cache keeps its last good state");
    assert!(informer.store().get_by_key("a/seventh").is_none());

    src.delete("a/p0");
    src.delete("a/p1");
    eventually("the relist after the shrink", || cache_of(&informer) == server_of(&src)).await;
    assert_eq!(informer.store().len(), 5);
    assert!(informer.store().get_by_key("a/seventh").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_list_restarted_after_part_of_it_was_applied_adds_each_object_once() {
    let src = MemorySource::new("Pod");
    for i in 0..2_500 {
        src.apply(pod("default", &format!("p{i:04}"), "n1"));
    }
    let mut c = config();
    // The first page (1,500) is handed to the fifo as it arrives (in batches of
    // 1,024); the second page's continue token has expired, so the watcher lists
    // again, whole, into a fifo that is no longer empty: that list is a replace.
    c.watcher.page_size = Some(1_500);
    src.expire_next_continue();
    let informer = Informer::spawn(src.clone(), c).unwrap();
    let log = Arc::new(Log::default());
    informer.add_handler(log.clone()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(30)).await);
    assert!(src.list_calls() >= 3, "the first page, the expired continue, the whole list");
    assert_eq!(cache_of(&informer), server_of(&src));
    eventually("every add", || log.events.lock().unwrap().len() >= 2_500).await;
    let events = log.take();
    let adds: std::collections::BTreeSet<&String> = events.iter().filter(|e| e.starts_with("add ")).collect();
    assert_eq!((adds.len(), events.len()), (2_500, 2_500), "one add per object, nothing else: {:?}", &events[..5]);
}
