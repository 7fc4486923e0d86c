//! Sync edges: the shared factory's one-config-per-key rule, shut-down
//! informers, and a handler's synced flag against its initial adds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kcache::Obj;
use kcache::fifo::{Fifo, Handler};
use kcache::informer::{InformerConfig, InformerError, InformerKey, SharedInformerFactory};
use kcache::object::testing::pod;
use kcache::store::{StoreConfig, store};
use kcache::testing::MemorySource;

const T: Duration = Duration::from_secs(10);

fn pods() -> MemorySource {
    let src = MemorySource::new("Pod");
    for name in ["a", "b", "c"] {
        src.apply(serde_json::json!({"metadata": {"namespace": "default", "name": name}}));
    }
    src
}

fn factory(src: &MemorySource) -> SharedInformerFactory<MemorySource> {
    let src = src.clone();
    SharedInformerFactory::new(move |_key: &InformerKey| src.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_config_is_an_error_naming_the_key_and_the_field() {
    let src = pods();
    let f = factory(&src);
    let key = InformerKey::of::<k8s_openapi::api::core::v1::Pod>().namespace("default");
    let first = f.informer(&key, InformerConfig::default).unwrap();
    assert!(first.wait_for_sync(T).await);
    let err = f
        .informer(&key, || {
            let mut c = InformerConfig::default();
            c.watcher.page_size = Some(100);
            c.resync = Some(Duration::from_secs(60));
            c
        })
        .err()
        .expect("a different config must not be silently ignored");
    match &err {
        InformerError::ConfigMismatch { key: named, differs } => {
            assert_eq!(named, "core/v1/pods namespace=default");
            assert_eq!(differs.len(), 2, "{differs:?}");
            assert!(differs[0].starts_with("watcher.page_size (Some(500) != Some(100))"), "{differs:?}");
            assert!(differs[1].starts_with("resync"), "{differs:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("core/v1/pods namespace=default"), "{err}");
    // The same config (closures aside) is the same informer: one list.
    let mut with_callback = InformerConfig::default();
    with_callback.watcher.on_error = Some(Arc::new(|_e| {}));
    let again = f.informer(&key, move || with_callback).unwrap();
    assert_eq!(again.store().len(), 3);
    assert_eq!(src.list_calls(), 1);
    assert_eq!(f.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shut_down_informer_is_not_handed_out_again() {
    let src = pods();
    let f = factory(&src);
    let key = InformerKey::of::<k8s_openapi::api::core::v1::Pod>();
    let first = f.informer(&key, InformerConfig::default).unwrap();
    assert!(first.wait_for_sync(T).await);
    first.shutdown();
    assert!(first.is_shut_down());
    // A new config is fine too: the old informer is gone.
    let second = f
        .informer(&key, || {
            let mut c = InformerConfig::default();
            c.watcher.page_size = Some(2);
            c
        })
        .unwrap();
    assert!(!second.is_shut_down());
    assert!(second.wait_for_sync(T).await);
    src.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "d"}}));
    let deadline = Instant::now() + T;
    while second.store().len() < 4 {
        assert!(Instant::now() < deadline, "the new informer does not watch");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(src.list_calls(), 1 + 2, "the new informer lists again, in pages of 2");
    assert_eq!(f.len(), 1);
}

/// Counts adds; blocks in `on_add` of one object until opened.
struct Gate {
    block_on: &'static str,
    closed: Mutex<bool>,
    cv: Condvar,
    blocked: AtomicBool,
    adds: AtomicUsize,
}

impl Gate {
    fn new(block_on: &'static str) -> Arc<Self> {
        Arc::new(Gate { block_on, closed: Mutex::new(true), cv: Condvar::new(), blocked: AtomicBool::new(false), adds: AtomicUsize::new(0) })
    }
    fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.cv.notify_all();
    }
}

impl Handler for Gate {
    fn on_add(&self, obj: &Obj, _initial: bool) {
        if obj.name() == self.block_on {
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                self.blocked.store(true, Ordering::SeqCst);
                closed = self.cv.wait(closed).unwrap();
            }
        }
        self.adds.fetch_add(1, Ordering::SeqCst);
    }
    fn on_update(&self, _old: &Obj, _new: &Obj) {}
    fn on_delete(&self, _obj: &Obj, _unknown: bool) {}
}

/// Opens the gate when dropped, so a failing assertion cannot leave the shard
/// thread blocked while the fifo's drop joins it.
struct OpenOnDrop(Arc<Gate>);
impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[test]
fn a_handler_is_not_synced_before_its_last_initial_add_was_delivered() {
    let (reader, writer) = store(StoreConfig::default().shards(1));
    let mut f = Fifo::spawn(writer).unwrap();
    let gate = Gate::new("p9");
    let _open = OpenOnDrop(Arc::clone(&gate));
    // Registered before the list: its replay is empty, and the initial adds
    // come through the queue.
    let id = f.add_handler(gate.clone()).unwrap();
    f.replace((0..10).map(|i| pod("ns", &format!("p{i}"), "1", &[])).collect(), "1").unwrap();
    let deadline = Instant::now() + T;
    while !gate.blocked.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the last initial add never reached the handler");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The store has applied the whole list; its last add is still on its way.
    assert!(reader.wait_synced_blocking(T));
    assert!(!f.handlers().has_synced(id), "synced while the last initial add is undelivered");
    assert_eq!(gate.adds.load(Ordering::SeqCst), 9);
    gate.open();
    assert!(f.handlers().wait_synced(id, T));
    assert_eq!(gate.adds.load(Ordering::SeqCst), 10);
    f.close();
    assert!(f.handlers().has_synced(id), "synced stays true");
}

/// Every notification, as text.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Handler for Log {
    fn on_add(&self, o: &Obj, _initial: bool) {
        self.0.lock().unwrap().push(format!("add {}@{}", o.name(), o.resource_version()));
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        self.0.lock().unwrap().push(format!("update {}@{}->{}", new.name(), old.resource_version(), new.resource_version()));
    }
    fn on_delete(&self, o: &Obj, unknown: bool) {
        self.0.lock().unwrap().push(format!("delete {}@{}{}", o.name(), o.resource_version(), if unknown { " unknown" } else { "" }));
    }
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_against_a_lagging_watch_cache_sends_handlers_no_false_delete_nor_stale_update() {
    let src = MemorySource::new("Pod");
    let obj = |name: &str, phase: &str| serde_json::json!({"metadata": {"namespace": "default", "name": name}, "status": {"phase": phase}});
    src.apply(obj("x", "Pending"));
    src.apply(obj("y", "Pending"));
    src.watch_cache_lag(3);
    // One shard: notifications arrive in the order of the writes.
    let mut config = InformerConfig { store: StoreConfig::default().shards(1), ..InformerConfig::default() };
    config.watcher.backoff = kcache::reflector::Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
    let informer = kcache::informer::Informer::spawn(src.clone(), config).unwrap();
    let log = Arc::new(Log::default());
    informer.add_handler(log.clone()).unwrap();
    assert!(informer.wait_for_sync(T).await);
    // Three writes the watch delivers and the watch cache does not have yet.
    src.apply(obj("z", "Pending"));
    src.delete("default/x");
    let newest = src.apply(obj("y", "Running"));
    eventually("the watch delivered the writes", || log.lines().iter().any(|l| l.starts_with("update y@2->"))).await;
    src.expire_next_watch();
    src.disconnect_watches();
    let stats = informer.stats();
    eventually("the relist", || stats.lists.load(Ordering::SeqCst) >= 2).await;
    src.apply(obj("w", "Pending"));
    eventually("the write after the relist", || log.lines().iter().any(|l| l.starts_with("add w@"))).await;
    let lines = log.lines();
    let after_watch: Vec<&String> = lines.iter().skip_while(|l| !l.starts_with("update y@2->")).skip(1).collect();
    assert_eq!(after_watch, [&format!("add w@{}", newest + 1)], "the relist changed nothing a handler can see");
    let mut cached: Vec<String> = informer.store().list().iter().map(|o| format!("{}@{}", o.name(), o.resource_version())).collect();
    cached.sort();
    assert_eq!(cached, [format!("w@{}", newest + 1), format!("y@{newest}"), "z@3".to_owned()]);
}
