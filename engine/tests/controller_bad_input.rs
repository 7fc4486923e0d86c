//! Reconciles that panic, fail for ever or outlive shutdown, and malformed owner
//! references: each is reported and counted, and never stops other keys or kinds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kcache::controller::{Action, Controller, ReconcileKey};
use kcache::informer::{Informer, InformerConfig};
use kcache::queue::{ItemExponentialFailureRateLimiter, WorkQueue};
use kcache::reflector::Backoff;
use kcache::testing::MemorySource;
use kube::Resource;
use serde_json::json;

fn informer(src: &MemorySource) -> Informer {
    let mut c = InformerConfig::default();
    c.watcher.backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
    Informer::spawn(src.clone(), c).unwrap()
}

fn fast_queue(name: &str) -> WorkQueue<ReconcileKey> {
    WorkQueue::builder()
        .name(name)
        .rate_limiter(ItemExponentialFailureRateLimiter::new(Duration::from_millis(1), Duration::from_millis(10)))
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

/// Reconciles per object name.
#[derive(Default)]
struct Calls(Mutex<BTreeMap<String, usize>>);

impl Calls {
    /// Counts a call and returns how many came before it.
    fn hit<K: Resource>(&self, obj: &K) -> usize {
        let name = obj.meta().name.clone().unwrap_or_default();
        let mut calls = self.0.lock().unwrap();
        let n = calls.entry(name).or_default();
        *n += 1;
        *n - 1
    }
    fn of(&self, name: &str) -> usize {
        self.0.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

fn stop_signal() -> (tokio::sync::oneshot::Sender<()>, impl std::future::Future<Output = ()> + Send + 'static) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

fn cm(name: &str) -> serde_json::Value {
    json!({"metadata": {"namespace": "default", "name": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_reconcile_is_counted_and_retried_while_other_keys_go_on() {
    let cms = MemorySource::new("ConfigMap");
    cms.apply(cm("panics-once"));
    cms.apply(cm("fine"));
    let cm_informer = informer(&cms);
    let calls = Arc::new(Calls::default());
    let (stop, signal) = stop_signal();
    let controller = Controller::<ConfigMap>::new(&cm_informer).with_queue(fast_queue("panics")).workers(1).graceful_shutdown_on(signal);
    let stats = controller.stats();
    let run = tokio::spawn(controller.run(
        |cm: Arc<ConfigMap>, calls: Arc<Calls>| async move {
            let before = calls.hit(&*cm);
            if cm.metadata.name.as_deref() == Some("panics-once") && before == 0 {
                panic!("reconcile bug");
            }
            Ok::<_, String>(Action::await_change())
        },
        |_, _, _| Action::await_change(),
        Arc::clone(&calls),
    ));
    eventually("the panicking key to be retried and succeed", || stats.successes.load(Ordering::SeqCst) == 2).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap();
    assert_eq!(stats.panics.load(Ordering::SeqCst), 1);
    assert_eq!((calls.of("panics-once"), calls.of("fine")), (2, 1));
    assert_eq!(stats.errors.load(Ordering::SeqCst), 0, "a panic is counted as a panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_fails_for_ever_keeps_backing_off_without_stopping_other_keys_or_kinds() {
    let (cms, secrets) = (MemorySource::new("ConfigMap"), MemorySource::new("Secret"));
    cms.apply(cm("broken"));
    cms.apply(cm("healthy"));
    secrets.apply(cm("token"));
    let (cm_informer, secret_informer) = (informer(&cms), informer(&secrets));
    let calls = Arc::new(Calls::default());
    let (stop, signal) = stop_signal();
    let (stop_secrets, secrets_signal) = stop_signal();
    let cm_controller = Controller::<ConfigMap>::new(&cm_informer).with_queue(fast_queue("broken")).workers(1).graceful_shutdown_on(signal);
    let secret_controller = Controller::<Secret>::new(&secret_informer).graceful_shutdown_on(secrets_signal);
    let (cm_stats, secret_stats) = (cm_controller.stats(), secret_controller.stats());
    let policy_calls = Arc::new(AtomicUsize::new(0));
    let policy_count = Arc::clone(&policy_calls);
    let cm_run = tokio::spawn(cm_controller.run(
        |cm: Arc<ConfigMap>, calls: Arc<Calls>| async move {
            calls.hit(&*cm);
            match cm.metadata.name.as_deref() {
                Some("broken") => Err("the backend refuses this object".to_owned()),
                _ => Ok(Action::await_change()),
            }
        },
        move |_, _, _| {
            policy_count.fetch_add(1, Ordering::SeqCst);
            Action::Requeue
        },
        Arc::clone(&calls),
    ));
    let secret_run = tokio::spawn(secret_controller.run(
        |s: Arc<Secret>, calls: Arc<Calls>| async move {
            calls.hit(&*s);
            Ok::<_, String>(Action::await_change())
        },
        |_, _, _| Action::await_change(),
        Arc::clone(&calls),
    ));
    eventually("several failed attempts", || cm_stats.errors.load(Ordering::SeqCst) >= 5).await;
    cms.apply(json!({"metadata": {"namespace": "default", "name": "healthy", "labels": {"v": "2"}}}));
    secrets.apply(json!({"metadata": {"namespace": "default", "name": "token", "labels": {"v": "2"}}}));
    eventually("the healthy key and the other kind reconciled again", || calls.of("healthy") == 2 && calls.of("token") == 2).await;
    stop.send(()).unwrap();
    stop_secrets.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), cm_run).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(30), secret_run).await.unwrap().unwrap();
    assert_eq!(cm_stats.errors.load(Ordering::SeqCst), policy_calls.load(Ordering::SeqCst) as u64);
    assert_eq!(cm_stats.successes.load(Ordering::SeqCst), 2);
    assert_eq!(secret_stats.errors.load(Ordering::SeqCst), 0);
    assert_eq!((cm_stats.name(), secret_stats.name()), ("broken", "secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_that_outlives_the_shutdown_timeout_is_aborted_and_counted() {
    let cms = MemorySource::new("ConfigMap");
    cms.apply(cm("hangs"));
    let cm_informer = informer(&cms);
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (stop, signal) = stop_signal();
    let controller =
        Controller::<ConfigMap>::new(&cm_informer).shutdown_timeout(Duration::from_millis(50)).graceful_shutdown_on(signal);
    let stats = controller.stats();
    let run = tokio::spawn(controller.run(
        |_cm: Arc<ConfigMap>, started: Arc<tokio::sync::mpsc::UnboundedSender<()>>| async move {
            started.send(()).unwrap();
            std::future::pending::<()>().await;
            Ok::<_, String>(Action::await_change())
        },
        |_, _, _| Action::await_change(),
        Arc::new(started_tx),
    ));
    tokio::time::timeout(Duration::from_secs(30), started.recv()).await.unwrap().unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("run gives up on the stuck reconcile").unwrap();
    assert_eq!(stats.aborted_on_shutdown.load(Ordering::SeqCst), 1);
    assert_eq!(stats.active.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_owner_api_version_is_counted_and_the_other_owners_still_reconcile() {
    let (replica_sets, pods) = (MemorySource::new("ReplicaSet"), MemorySource::new("Pod"));
    replica_sets.apply(json!({"apiVersion": "apps/v1", "metadata": {"namespace": "default", "name": "web"}}));
    let (rs_informer, pod_informer) = (informer(&replica_sets), informer(&pods));
    let calls = Arc::new(Calls::default());
    let (stop, signal) = stop_signal();
    let controller = Controller::<ReplicaSet>::new(&rs_informer).owns::<Pod>(&pod_informer).graceful_shutdown_on(signal);
    let stats = controller.stats();
    let run = tokio::spawn(controller.run(
        |rs: Arc<ReplicaSet>, calls: Arc<Calls>| async move {
            calls.hit(&*rs);
            Ok::<_, String>(Action::await_change())
        },
        |_, _, _| Action::await_change(),
        Arc::clone(&calls),
    ));
    eventually("the initial reconcile", || calls.of("web") == 1).await;
    pods.apply(json!({"metadata": {"namespace": "default", "name": "web-0", "ownerReferences": [
        {"apiVersion": "apps/v1/extra", "kind": "ReplicaSet", "name": "web", "uid": ""},
        {"apiVersion": "", "kind": "ReplicaSet", "name": "web", "uid": ""},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "", "controller": true}]}}));
    eventually("the well-formed owner reconciled", || calls.of("web") == 2).await;
    eventually("both malformed references counted", || stats.malformed_owner_refs.load(Ordering::SeqCst) == 2).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap();
}
