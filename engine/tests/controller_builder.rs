//! `Controller<K>`: kinds, owners, watches, predicates, requeues, triggers, sync
//! and shutdown, against in-memory sources.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kcache::controller::{Action, Controller, KeyController, ReconcileKey, Scope, kind_of, owner_keys, predicates};
use kcache::informer::{Informer, InformerConfig};
use kcache::queue::{ItemExponentialFailureRateLimiter, WorkQueue};
use kcache::reflector::{Backoff, BodyStream, Source, SourceError};
use kube::api::{ListParams, WatchParams};
use kcache::testing::MemorySource;
use kube::Resource;
use serde_json::json;

fn config() -> InformerConfig {
    let mut c = InformerConfig::default();
    c.watcher.backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
    c
}

fn informer(src: &MemorySource) -> Informer {
    Informer::spawn(src.clone(), config()).unwrap()
}

/// A queue that retries after 1 ms, doubling to 20 ms.
fn fast_queue(name: &str) -> WorkQueue<ReconcileKey> {
    WorkQueue::builder()
        .name(name)
        .rate_limiter(ItemExponentialFailureRateLimiter::new(Duration::from_millis(1), Duration::from_millis(20)))
        .build()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Reconciles seen, by `namespace/name` (or `name`).
#[derive(Default)]
struct Seen(Mutex<BTreeMap<String, usize>>);

impl Seen {
    fn record<K: Resource>(&self, obj: &K) {
        let m = obj.meta();
        let key = match &m.namespace {
            Some(ns) => format!("{ns}/{}", m.name.as_deref().unwrap_or_default()),
            None => m.name.clone().unwrap_or_default(),
        };
        *self.0.lock().unwrap().entry(key).or_default() += 1;
    }
    fn count(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

/// A reconcile that records each object and waits for changes.
async fn record<K: Resource>(obj: Arc<K>, seen: Arc<Seen>) -> Result<Action, String> {
    seen.record(&*obj);
    Ok(Action::await_change())
}

fn no_retry<K>(_: Arc<K>, _: &String, _: Arc<Seen>) -> Action {
    Action::await_change()
}

type Stop = tokio::sync::oneshot::Sender<()>;

fn stop_signal() -> (Stop, impl std::future::Future<Output = ()> + Send + 'static) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

async fn finish(stop: Stop, run: tokio::task::JoinHandle<()>) {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("run returns after shutdown").unwrap();
}

fn rs(name: &str) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "metadata": {"namespace": "default", "name": name, "uid": format!("uid-{name}")}})
}

fn pod_owned(name: &str, owners: serde_json::Value) -> serde_json::Value {
    json!({"metadata": {"namespace": "default", "name": name, "ownerReferences": owners}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kinds_with_the_same_namespace_and_name_do_not_collide() {
    let (cms, secrets) = (MemorySource::new("ConfigMap"), MemorySource::new("Secret"));
    cms.apply(json!({"metadata": {"namespace": "default", "name": "app"}}));
    secrets.apply(json!({"metadata": {"namespace": "default", "name": "app"}}));
    let (cm_informer, secret_informer) = (informer(&cms), informer(&secrets));
    let controller = KeyController::new().workers(2);
    cm_informer.add_handler(controller.handler_for(kind_of::<ConfigMap>(&()))).unwrap();
    secret_informer.add_handler(controller.handler_for(kind_of::<Secret>(&()))).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let (stop, signal) = stop_signal();
    let run = tokio::spawn(controller.run(
        move |key: ReconcileKey| {
            record.lock().unwrap().push(key);
            async { Ok::<_, String>(Action::Done) }
        },
        signal,
    ));
    eventually("both kinds reconciled", || seen.lock().unwrap().len() >= 2).await;
    finish(stop, run).await;
    let mut keys: Vec<String> = seen.lock().unwrap().iter().map(ToString::to_string).collect();
    keys.sort();
    assert_eq!(keys, vec!["ConfigMap.v1./app.default", "Secret.v1./app.default"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owns_maps_a_child_to_its_namespaced_owner_by_group_and_kind() {
    let (replica_sets, pods) = (MemorySource::new("ReplicaSet"), MemorySource::new("Pod"));
    replica_sets.apply(rs("web"));
    replica_sets.apply(rs("db"));
    let (rs_informer, pod_informer) = (informer(&replica_sets), informer(&pods));
    let seen = Arc::new(Seen::default());
    let (stop, signal) = stop_signal();
    let controller = Controller::<ReplicaSet>::new(&rs_informer).owns::<Pod>(&pod_informer).graceful_shutdown_on(signal);
    let run = tokio::spawn(controller.run(record, no_retry, Arc::clone(&seen)));
    eventually("the initial list reconciled", || seen.count("default/web") == 1 && seen.count("default/db") == 1).await;

    // Another group's ReplicaSet named "db" is not our "db"; the apps/v1 owner is.
    pods.apply(pod_owned(
        "web-0",
        json!([
            {"apiVersion": "example.com/v1", "kind": "ReplicaSet", "name": "db", "uid": "x", "controller": true},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "uid-web", "controller": true}
        ]),
    ));
    eventually("the owner reconciled for its child", || seen.count("default/web") == 2).await;
    // A reference with another uid names an earlier ReplicaSet "web": ignored. Then one
    // naming db by group, kind, name and uid reconciles db.
    pods.apply(pod_owned("web-1", json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "old-uid"}])));
    pods.apply(pod_owned("db-0", json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "db", "uid": "uid-db"}])));
    eventually("db reconciled for its child", || seen.count("default/db") == 2).await;
    finish(stop, run).await;
    assert_eq!(seen.count("default/web"), 2, "neither the other group's db nor the stale uid reached web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owns_maps_a_child_to_its_cluster_scoped_owner_without_the_childs_namespace() {
    let (namespaces, cms) = (MemorySource::new("Namespace"), MemorySource::new("ConfigMap"));
    namespaces.apply(json!({"metadata": {"name": "team-a", "uid": "uid-team-a"}}));
    let (ns_informer, cm_informer) = (informer(&namespaces), informer(&cms));
    let seen = Arc::new(Seen::default());
    let (stop, signal) = stop_signal();
    let controller = Controller::<Namespace>::new(&ns_informer).owns::<ConfigMap>(&cm_informer).graceful_shutdown_on(signal);
    let queue = controller.queue();
    let run = tokio::spawn(controller.run(record, no_retry, Arc::clone(&seen)));
    eventually("the namespace reconciled", || seen.count("team-a") == 1).await;
    let child = json!({"metadata": {"namespace": "default", "name": "settings",
        "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace", "name": "team-a", "uid": "uid-team-a"}]}});
    cms.apply(child.clone());
    eventually("the cluster-scoped owner reconciled for its child", || seen.count("team-a") == 2).await;
    finish(stop, run).await;
    assert!(queue.is_empty());

    // The key itself has no namespace: the owner kind's scope decides, not the child.
    let obj = kcache::wire::Decoder::new(Default::default()).decode_object(child.to_string().as_bytes()).unwrap();
    let ns_kind = kind_of::<Namespace>(&());
    let keys = owner_keys(&obj, &ns_kind, Scope::of::<Namespace>().unwrap(), false);
    assert_eq!(keys, vec![Ok(ReconcileKey::new(ns_kind, None, "team-a"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_reconciles_what_the_mapper_names() {
    let (cms, secrets) = (MemorySource::new("ConfigMap"), MemorySource::new("Secret"));
    cms.apply(json!({"metadata": {"namespace": "default", "name": "app-config"}}));
    let (cm_informer, secret_informer) = (informer(&cms), informer(&secrets));
    let seen = Arc::new(Seen::default());
    let (stop, signal) = stop_signal();
    let controller = Controller::<ConfigMap>::new(&cm_informer)
        .watches(&secret_informer, |secret: Secret| {
            let name = secret.metadata.name.unwrap_or_default();
            let ns = secret.metadata.namespace.unwrap_or_default();
            Some(kcache::typed::ObjectRef::new(&format!("{name}-config")).within(&ns))
        })
        .graceful_shutdown_on(signal);
    let run = tokio::spawn(controller.run(record, no_retry, Arc::clone(&seen)));
    eventually("the initial reconcile", || seen.count("default/app-config") == 1).await;
    secrets.apply(json!({"metadata": {"namespace": "default", "name": "app"}}));
    eventually("the mapped config map reconciled", || seen.count("default/app-config") == 2).await;
    // A secret mapping to a config map that does not exist reconciles nothing.
    secrets.apply(json!({"metadata": {"namespace": "default", "name": "orphan"}}));
    secrets.apply(json!({"metadata": {"namespace": "default", "name": "app", "labels": {"v": "2"}}}));
    eventually("the second change", || seen.count("default/app-config") == 3).await;
    finish(stop, run).await;
    assert_eq!(seen.count("default/orphan-config"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_policy_decides_the_retry_and_sees_the_error() {
    let cms = MemorySource::new("ConfigMap");
    cms.apply(json!({"metadata": {"namespace": "default", "name": "flaky"}}));
    let cm_informer = informer(&cms);
    let attempts = Arc::new(AtomicUsize::new(0));
    let policy_errors = Arc::new(Mutex::new(Vec::new()));
    let (stop, signal) = stop_signal();
    let controller = Controller::<ConfigMap>::new(&cm_informer).with_queue(fast_queue("flaky")).graceful_shutdown_on(signal);
    let stats = controller.stats();
    let errors = Arc::clone(&policy_errors);
    let run = tokio::spawn(controller.run(
        |_cm: Arc<ConfigMap>, attempts: Arc<AtomicUsize>| async move {
            match attempts.fetch_add(1, Ordering::SeqCst) {
                n @ 0..=2 => Err(format!("attempt {n} failed")),
                _ => Ok(Action::await_change()),
            }
        },
        move |cm: Arc<ConfigMap>, error: &String, _| {
            errors.lock().unwrap().push((cm.metadata.name.clone().unwrap_or_default(), error.clone()));
            Action::requeue(Duration::from_millis(5))
        },
        Arc::clone(&attempts),
    ));
    eventually("the fourth attempt to succeed", || stats.successes.load(Ordering::SeqCst) == 1).await;
    finish(stop, run).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
    assert_eq!(stats.errors.load(Ordering::SeqCst), 3);
    assert_eq!(stats.requeues_after.load(Ordering::SeqCst), 0, "the requeues came from the error policy, not from Ok");
    assert_eq!(stats.requeues.load(Ordering::SeqCst), 3);
    let errors = policy_errors.lock().unwrap().clone();
    assert_eq!(errors[0], ("flaky".to_owned(), "attempt 0 failed".to_owned()));
    assert_eq!(errors.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_and_requeue_after_reconcile_again_without_a_change() {
    let cms = MemorySource::new("ConfigMap");
    cms.apply(json!({"metadata": {"namespace": "default", "name": "periodic"}}));
    let cm_informer = informer(&cms);
    let (stop, signal) = stop_signal();
    let controller = Controller::<ConfigMap>::new(&cm_informer).with_queue(fast_queue("periodic")).graceful_shutdown_on(signal);
    let stats = controller.stats();
    let calls = Arc::new(AtomicUsize::new(0));
    let run = tokio::spawn(controller.run(
        |_cm: Arc<ConfigMap>, calls: Arc<AtomicUsize>| async move {
            Ok::<_, String>(match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Action::Requeue,
                1 => Action::requeue(Duration::from_millis(20)),
                _ => Action::await_change(),
            })
        },
        |_, _: &String, _| Action::await_change(),
        Arc::clone(&calls),
    ));
    eventually("three reconciles", || stats.successes.load(Ordering::SeqCst) == 1).await;
    finish(stop, run).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(stats.requeues_rate_limited.load(Ordering::SeqCst), 1);
    assert_eq!(stats.requeues_after.load(Ordering::SeqCst), 1);
    assert_eq!(stats.reconciles.load(Ordering::SeqCst), 3);
}

fn deployment(generation: i64, replicas: Option<i32>) -> serde_json::Value {
    let mut d = json!({"apiVersion": "apps/v1", "metadata": {"namespace": "default", "name": "web", "generation": generation}});
    if let Some(r) = replicas {
        d["status"] = json!({"replicas": r});
    }
    d
}

/// (generation, status.replicas) of each reconcile.
type Reconciled = Mutex<Vec<(i64, Option<i32>)>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generation_predicate_skips_status_only_changes_and_passes_spec_changes() {
    let deployments = MemorySource::new("Deployment");
    deployments.apply(deployment(1, None));
    let d_informer = informer(&deployments);
    let generations = Arc::new(Mutex::new(Vec::new()));
    let (stop, signal) = stop_signal();
    let controller = Controller::<Deployment>::new(&d_informer).predicate(predicates::generation()).graceful_shutdown_on(signal);
    let store = controller.store();
    let stats = controller.stats();
    let run = tokio::spawn(controller.run(
        |d: Arc<Deployment>, seen: Arc<Reconciled>| async move {
            let replicas = d.status.as_ref().and_then(|s| s.replicas);
            seen.lock().unwrap().push((d.metadata.generation.unwrap_or_default(), replicas));
            Ok::<_, String>(Action::await_change())
        },
        |_, _, _| Action::await_change(),
        Arc::clone(&generations),
    ));
    eventually("the first reconcile", || generations.lock().unwrap().len() == 1).await;
    deployments.apply(deployment(1, Some(3)));
    let status_seen = kcache::typed::ObjectRef::new("web").within("default");
    eventually("the status change in the store", || {
        store.get(&status_seen).is_some_and(|d| d.status.as_ref().and_then(|s| s.replicas) == Some(3))
    })
    .await;
    deployments.apply(deployment(2, Some(3)));
    eventually("the spec change reconciled", || generations.lock().unwrap().iter().any(|(g, _)| *g == 2)).await;
    finish(stop, run).await;
    assert_eq!(*generations.lock().unwrap(), vec![(1, None), (2, Some(3))], "the status-only update was not reconciled");
    assert_eq!(stats.reconciles.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_all_on_reconciles_every_object_each_time_it_fires() {
    let cms = MemorySource::new("ConfigMap");
    for name in ["a", "b", "c"] {
        cms.apply(json!({"metadata": {"namespace": "default", "name": name}}));
    }
    let cm_informer = informer(&cms);
    let seen = Arc::new(Seen::default());
    let (trigger, triggered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (stop, signal) = stop_signal();
    let controller = Controller::<ConfigMap>::new(&cm_informer)
        .reconcile_all_on(tokio_stream_of(triggered))
        .graceful_shutdown_on(signal);
    let run = tokio::spawn(controller.run(record, no_retry, Arc::clone(&seen)));
    eventually("the initial reconciles", || seen.total() == 3).await;
    trigger.send(()).unwrap();
    eventually("every object reconciled again", || ["a", "b", "c"].iter().all(|n| seen.count(&format!("default/{n}")) == 2)).await;
    finish(stop, run).await;
}

fn tokio_stream_of(mut rx: tokio::sync::mpsc::UnboundedReceiver<()>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A source whose list and watch wait until the gate opens.
#[derive(Clone)]
struct Gated {
    inner: MemorySource,
    open: tokio::sync::watch::Receiver<bool>,
}

impl Gated {
    async fn wait(&self) {
        let mut open = self.open.clone();
        let _ = open.wait_for(|o| *o).await;
    }
}

impl Source for Gated {
    async fn list(&self, params: &ListParams) -> Result<bytes::Bytes, SourceError> {
        self.wait().await;
        self.inner.list(params).await
    }
    async fn watch(&self, params: &WatchParams, rv: &str) -> Result<BodyStream, SourceError> {
        self.wait().await;
        self.inner.watch(params, rv).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reconcile_starts_before_every_informer_has_synced() {
    let (replica_sets, pods) = (MemorySource::new("ReplicaSet"), MemorySource::new("Pod"));
    replica_sets.apply(rs("web"));
    let (gate, open) = tokio::sync::watch::channel(false);
    let rs_informer = informer(&replica_sets);
    let pod_informer = Informer::spawn(Gated { inner: pods.clone(), open }, config()).unwrap();
    let seen = Arc::new(Seen::default());
    let (stop, signal) = stop_signal();
    let controller = Controller::<ReplicaSet>::new(&rs_informer).owns::<Pod>(&pod_informer).graceful_shutdown_on(signal);
    let stats = controller.stats();
    let run = tokio::spawn(controller.run(record, no_retry, Arc::clone(&seen)));
    assert!(rs_informer.wait_for_sync(Duration::from_secs(30)).await);
    // The main informer has synced and its handler is registered; give workers every
    // chance to (wrongly) start while the pod informer cannot list.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!pod_informer.has_synced());
        assert_eq!(stats.reconciles.load(Ordering::SeqCst), 0, "a reconcile started before the pod informer synced");
    }
    gate.send(true).unwrap();
    eventually("the reconcile once everything synced", || seen.count("default/web") == 1).await;
    finish(stop, run).await;
}

/// Tells the test a reconcile started; waits for its release; records it finished.
type SlowCtx = (tokio::sync::mpsc::UnboundedSender<()>, Arc<tokio::sync::Notify>, Arc<AtomicBool>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_running_reconcile_finish_then_stops() {
    let cms = MemorySource::new("ConfigMap");
    cms.apply(json!({"metadata": {"namespace": "default", "name": "slow"}}));
    let cm_informer = informer(&cms);
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(AtomicBool::new(false));
    let (stop, signal) = stop_signal();
    let controller = Controller::<ConfigMap>::new(&cm_informer).graceful_shutdown_on(signal);
    let stats = controller.stats();
    let ctx = Arc::new((started_tx, Arc::clone(&release), Arc::clone(&finished)));
    let run = tokio::spawn(controller.run(
        |_cm: Arc<ConfigMap>, ctx: Arc<SlowCtx>| async move {
            ctx.0.send(()).unwrap();
            ctx.1.notified().await;
            ctx.2.store(true, Ordering::SeqCst);
            Ok::<_, String>(Action::await_change())
        },
        |_, _, _| Action::await_change(),
        ctx,
    ));
    tokio::time::timeout(Duration::from_secs(30), started.recv()).await.unwrap().unwrap();
    stop.send(()).unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!run.is_finished(), "run returned while a reconcile was still running");
    }
    release.notify_one();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("run returns once the reconcile finished").unwrap();
    assert!(finished.load(Ordering::SeqCst));
    // Nothing is reconciled after the controller stopped.
    cms.apply(json!({"metadata": {"namespace": "default", "name": "late"}}));
    let store = cm_informer.store();
    eventually("the informer to cache the late object", || store.get(&kcache::ObjectRef::new_namespaced("default", "late")).is_some()).await;
    assert_eq!(stats.reconciles.load(Ordering::SeqCst), 1);
    assert_eq!(stats.successes.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_object_is_gone_is_skipped_and_counted() {
    let cms = MemorySource::new("ConfigMap");
    cms.apply(json!({"metadata": {"namespace": "default", "name": "short-lived"}}));
    let cm_informer = informer(&cms);
    let seen = Arc::new(Seen::default());
    let (stop, signal) = stop_signal();
    let controller = Controller::<ConfigMap>::new(&cm_informer).graceful_shutdown_on(signal);
    let stats = controller.stats();
    // A key added by hand for an object that never existed, and one of another kind.
    controller.queue().add(ReconcileKey::of::<ConfigMap>(Some("default"), "never-existed"));
    controller.queue().add(ReconcileKey::of::<Secret>(Some("default"), "short-lived"));
    let run = tokio::spawn(controller.run(record, no_retry, Arc::clone(&seen)));
    eventually("the object reconciled", || seen.count("default/short-lived") == 1).await;
    cms.delete("default/short-lived").unwrap();
    eventually("the delete's key skipped", || stats.skipped.load(Ordering::SeqCst) == 3).await;
    finish(stop, run).await;
    assert_eq!(seen.total(), 1, "no reconcile for a missing object");
    assert_eq!(stats.successes.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_before_the_informers_sync_returns_without_reconciling() {
    let cms = MemorySource::new("ConfigMap");
    cms.apply(json!({"metadata": {"namespace": "default", "name": "a"}}));
    let (_gate, open) = tokio::sync::watch::channel(false);
    let cm_informer = Informer::spawn(Gated { inner: cms.clone(), open }, config()).unwrap();
    let seen = Arc::new(Seen::default());
    let (stop, signal) = stop_signal();
    let controller = Controller::<ConfigMap>::new(&cm_informer).graceful_shutdown_on(signal);
    let stats = controller.stats();
    let run = tokio::spawn(controller.run(record, no_retry, Arc::clone(&seen)));
    finish(stop, run).await;
    assert!(!cm_informer.has_synced());
    assert_eq!(stats.reconciles.load(Ordering::SeqCst), 0);
}
