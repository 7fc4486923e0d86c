//! The finalizer helper (`kcache::controller::finalizer`) end to end: a kcache
//! informer over HTTP (kube-client) on the simulator feeds a small reconcile
//! loop that calls the helper, as a controller would.
//!
//! * The object gets the finalizer before `Apply` runs; a delete runs `Cleanup`
//!   once, then the object is gone (DELETED).
//! * A failing cleanup keeps the finalizer and the object; the retry succeeds.
//! * A restart between the delete and the cleanup still cleans up.
//! * A concurrent change of the finalizers makes the add and the remove patch
//!   fail instead of clobbering it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kcache::controller::Action;
use kcache::controller::finalizer::{Event, FinalizerError, finalizer};
use kcache::reflector::Backoff;
use kcache::{Handler, Informer, InformerConfig, KubeSource, Obj};
use kcache_loadgen::sim::{SimHandle, SimServer};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

mod real_support;
use real_support::real_client;

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(30);
const NS: &str = "fin";
const FIN: &str = "kcache.dev/cleanup";
const OTHER: &str = "other.dev/keep";

#[derive(Debug, thiserror::Error)]
#[error("cleanup of {0} failed on purpose")]
struct Refused(String);

/// What the reconcile saw: (object name, "apply"/"cleanup", whether the object
/// carried the finalizer, whether the step succeeded).
type Log = Arc<Mutex<Vec<(String, &'static str, bool, bool)>>>;

async fn start() -> (SimHandle, kube::Client, Api<ConfigMap>) {
    let sim = SimServer::builder().bookmark_interval(Duration::from_millis(200)).start().await.expect("sim starts");
    let client = sim.client().expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("namespace created");
    (sim, client.clone(), Api::namespaced(client, NS))
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": NS}, "data": {"k": "v"}})).expect("configmap")
}

/// Sends each key once until it was taken (a workqueue's dedup, enough here),
/// and records deletions.
struct Keys {
    tx: mpsc::UnboundedSender<String>,
    pending: Arc<Mutex<HashSet<String>>>,
    deleted: Arc<Mutex<Vec<String>>>,
}

impl Keys {
    fn send(&self, o: &Obj) {
        if self.pending.lock().unwrap().insert(o.name().to_owned()) {
            let _ = self.tx.send(o.name().to_owned());
        }
    }
}

impl Handler for Keys {
    fn on_add(&self, obj: &Obj, _initial: bool) {
        self.send(obj);
    }
    fn on_update(&self, _old: &Obj, new: &Obj) {
        self.send(new);
    }
    fn on_delete(&self, obj: &Obj, _unknown: bool) {
        self.deleted.lock().unwrap().push(obj.name().to_owned());
        self.send(obj);
    }
}

/// An informer and a reconcile loop calling the finalizer helper; dropping it
/// stops both (a controller restart).
struct Driver {
    informer: Informer,
    task: tokio::task::JoinHandle<()>,
    log: Log,
    deleted: Arc<Mutex<Vec<String>>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.task.abort();
        self.informer.shutdown();
    }
}

impl Driver {
    /// `fail_cleanups`: how many cleanups fail before they succeed.
    async fn start(client: &kube::Client, fail_cleanups: Arc<AtomicU32>) -> Driver {
        let mut config = InformerConfig::default();
        config.watcher.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
        let informer = Informer::spawn(KubeSource::for_type::<ConfigMap>(client.clone(), Some(NS)), config).expect("informer");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(HashSet::new()));
        let deleted = Arc::new(Mutex::new(Vec::new()));
        let keys = Keys { tx: tx.clone(), pending: pending.clone(), deleted: deleted.clone() };
        informer.add_handler(Arc::new(keys)).expect("handler");
        assert!(informer.wait_for_sync(T).await, "informer synced");
        let log: Log = Arc::default();
        let (store, api, record) = (informer.store(), Api::<ConfigMap>::namespaced(client.clone(), NS), log.clone());
        let task = tokio::spawn(async move {
            while let Some(name) = rx.recv().await {
                pending.lock().unwrap().remove(&name);
                let Some(obj) = store.get_by_key(&format!("{NS}/{name}")) else { continue };
                let cm: ConfigMap = obj.decode().expect("a configmap");
                let (record, fail) = (record.clone(), fail_cleanups.clone());
                let result = finalizer(&api, FIN, Arc::new(cm), |event| async move {
                    let (step, cm) = match &event {
                        Event::Apply(cm) => ("apply", cm),
                        Event::Cleanup(cm) => ("cleanup", cm),
                    };
                    let has = cm.finalizers().iter().any(|f| f == FIN);
                    let refuse = step == "cleanup" && fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                    record.lock().unwrap().push((cm.name_any(), step, has, !refuse));
                    if refuse { Err(Refused(cm.name_any())) } else { Ok(Action::Done) }
                })
                .await;
                if result.is_err() {
                    // Retry later, as a controller's error policy would.
                    let (tx, pending, name) = (tx.clone(), pending.clone(), name.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if pending.lock().unwrap().insert(name.clone()) {
                            let _ = tx.send(name);
                        }
                    });
                }
            }
        });
        Driver { informer, task, log, deleted }
    }

    fn steps(&self, name: &str) -> Vec<(&'static str, bool, bool)> {
        self.log.lock().unwrap().iter().filter(|s| s.0 == name).map(|s| (s.1, s.2, s.3)).collect()
    }

    async fn wait(&self, what: &str, done: impl Fn(&Driver) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < T, "never saw {what}; log {:?}", self.log.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_deleted(&self, name: &str) {
        self.wait(&format!("DELETED {name}"), |d| d.deleted.lock().unwrap().iter().any(|n| n == name)).await;
    }
}

fn server_finalizers(sim: &SimHandle, name: &str) -> Option<Vec<String>> {
    sim.get("configmaps", NS, name)
        .expect("served")
        .map(|o| serde_json::from_value(o["metadata"]["finalizers"].clone()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalizer_comes_before_apply_and_a_delete_cleans_up_once() {
    let (sim, client, api) = start().await;
    let driver = Driver::start(&client, Arc::default()).await;
    api.create(&PostParams::default(), &config_map("a")).await.expect("created");
    driver.wait("apply", |d| d.steps("a").contains(&("apply", true, true))).await;
    assert!(driver.steps("a").iter().all(|s| s.1), "every step saw the finalizer: {:?}", driver.steps("a"));
    assert_eq!(server_finalizers(&sim, "a"), Some(vec![FIN.to_owned()]));

    api.delete("a", &DeleteParams::default()).await.expect("delete accepted");
    driver.wait_deleted("a").await;
    let cleanups = driver.steps("a").into_iter().filter(|s| s.0 == "cleanup").count();
    assert_eq!(cleanups, 1, "{:?}", driver.steps("a"));
    assert_eq!(server_finalizers(&sim, "a"), None, "gone from the server");
    drop(driver);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cleanup_keeps_the_object_and_the_retry_removes_it() {
    let (sim, client, api) = start().await;
    let fail = Arc::new(AtomicU32::new(1));
    let driver = Driver::start(&client, fail.clone()).await;
    api.create(&PostParams::default(), &config_map("b")).await.expect("created");
    driver.wait("apply", |d| d.steps("b").iter().any(|s| s.0 == "apply")).await;

    api.delete("b", &DeleteParams::default()).await.expect("delete accepted");
    driver.wait("a failed cleanup", |d| d.steps("b").contains(&("cleanup", true, false))).await;
    driver.wait_deleted("b").await;
    let cleanups: Vec<bool> = driver.steps("b").into_iter().filter(|s| s.0 == "cleanup").map(|s| s.2).collect();
    assert_eq!(cleanups, [false, true], "one failure, then one success");
    assert_eq!(fail.load(Ordering::SeqCst), 0);
    assert_eq!(server_finalizers(&sim, "b"), None);
    drop(driver);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cleanup_leaves_the_finalizer_on_the_server() {
    let (sim, client, api) = start().await;
    // Every cleanup fails while this test looks.
    let driver = Driver::start(&client, Arc::new(AtomicU32::new(u32::MAX))).await;
    api.create(&PostParams::default(), &config_map("c")).await.expect("created");
    driver.wait("apply", |d| d.steps("c").iter().any(|s| s.0 == "apply")).await;
    api.delete("c", &DeleteParams::default()).await.expect("delete accepted");
    driver.wait("two failed cleanups", |d| d.steps("c").iter().filter(|s| s.0 == "cleanup").count() >= 2).await;
    let obj = sim.get("configmaps", NS, "c").expect("served").expect("the object stays");
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(obj["metadata"]["finalizers"], json!([FIN]));
    drop(driver);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_delete_and_cleanup_still_cleans_up() {
    let (sim, client, api) = start().await;
    let first = Driver::start(&client, Arc::default()).await;
    api.create(&PostParams::default(), &config_map("d")).await.expect("created");
    first.wait("apply", |d| d.steps("d").iter().any(|s| s.0 == "apply")).await;
    drop(first);

    api.delete("d", &DeleteParams::default()).await.expect("delete accepted");
    let waiting = sim.get("configmaps", NS, "d").expect("served").expect("kept by the finalizer");
    assert!(waiting["metadata"]["deletionTimestamp"].is_string());

    let second = Driver::start(&client, Arc::default()).await;
    second.wait_deleted("d").await;
    assert_eq!(second.steps("d"), [("cleanup", true, true)], "the new process cleans up, once");
    assert_eq!(server_finalizers(&sim, "d"), None);
    drop(second);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finalizer_changes_conflict_instead_of_clobbering() {
    let (sim, _client, api) = start().await;
    conflicts_do_not_clobber(&api).await;
    sim.shutdown().await;
}

/// The same on a real kube-apiserver, in a namespace of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: KCACHE_REAL_KUBECONFIG, see docs/TESTING.md"]
async fn the_real_apiserver_refuses_stale_finalizer_patches_too() {
    let client = real_client().await;
    let name = format!("kcache-finalizer-e2e-{:x}", rand::random::<u32>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("namespace created");
    conflicts_do_not_clobber(&Api::namespaced(client, &name)).await;
    namespaces.delete(&name, &DeleteParams::default()).await.expect("namespace deleted");
}

async fn finalizers_of(api: &Api<ConfigMap>, name: &str) -> Option<Vec<String>> {
    api.get_opt(name).await.expect("get").map(|cm| cm.finalizers().to_vec())
}

async fn conflicts_do_not_clobber(api: &Api<ConfigMap>) {
    let ns = api.namespace().expect("namespaced").to_owned();
    let mut cm = config_map("e");
    cm.metadata.namespace = Some(ns);
    let stale = Arc::new(api.create(&PostParams::default(), &cm).await.expect("created"));
    let other: Patch<()> = Patch::Json(serde_json::from_value(json!([{"op": "add", "path": "/metadata/finalizers", "value": [OTHER]}])).unwrap());
    api.patch("e", &PatchParams::default(), &other).await.expect("another writer adds its finalizer");

    let never = |_: Event<ConfigMap>| async { Ok::<_, Refused>(Action::Done) };
    let err = finalizer(api, FIN, stale, never).await.expect_err("the add's test fails");
    assert!(matches!(err, FinalizerError::AddFailed { .. }) && err.is_conflict(), "{err:?}");
    assert_eq!(finalizers_of(api, "e").await, Some(vec![OTHER.to_owned()]), "the other finalizer is kept, ours not added");

    let fresh = Arc::new(api.get("e").await.expect("get"));
    let _ = finalizer(api, FIN, fresh, never).await.expect("added on the fresh object");
    assert_eq!(finalizers_of(api, "e").await, Some(vec![OTHER.to_owned(), FIN.to_owned()]));

    api.delete("e", &DeleteParams::default()).await.expect("delete accepted");
    let stale = Arc::new(api.get("e").await.expect("get"));
    let drop_other: Patch<()> = Patch::Json(serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": OTHER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ])).unwrap());
    api.patch("e", &PatchParams::default(), &drop_other).await.expect("the other writer is done");

    let cleaned = Arc::new(AtomicU32::new(0));
    let count = cleaned.clone();
    let err = finalizer(api, FIN, stale, |e| async move {
        assert!(matches!(e, Event::Cleanup(_)));
        count.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Refused>(Action::Done)
    })
    .await
    .expect_err("the removal's test of index 1 fails: the list moved");
    assert!(matches!(err, FinalizerError::RemoveFailed { .. }) && err.is_conflict(), "{err:?}");
    assert_eq!(cleaned.load(Ordering::SeqCst), 1);
    assert_eq!(finalizers_of(api, "e").await, Some(vec![FIN.to_owned()]), "nothing removed by the stale patch");

    let fresh = Arc::new(api.get("e").await.expect("get"));
    let _ = finalizer(api, FIN, fresh, never).await.expect("removed on the fresh object");
    assert_eq!(finalizers_of(api, "e").await, None, "the last finalizer gone, the object is deleted");
}
