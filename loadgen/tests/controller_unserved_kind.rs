//! A controller that watches a kind the server does not serve: the informer of that
//! kind reports the server's 404, the controller starts without it (counted and
//! logged), and the controller's own kind is reconciled as usual.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kcache::controller::{Action, Controller};
use kcache::typed::ObjectRef;
use kcache::{Informer, InformerConfig, KubeSource};
use kcache_loadgen::sim::SimServer;
use kube::api::{Api, ApiResource, GroupVersionKind, PostParams};
use serde_json::json;

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(60);
const NS: &str = "unserved";

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_kind_the_server_does_not_serve_does_not_stop_the_controllers_own_kind() {
    let sim = SimServer::builder().start().await.expect("sim starts");
    let client = sim.client().expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("namespace created");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    for name in ["a", "b", "c"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "namespace": NS}})).expect("configmap");
        config_maps.create(&PostParams::default(), &cm).await.expect("configmap created");
    }

    let widget = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Widget"), "widgets");
    let widgets = Informer::spawn(KubeSource::new(client.clone(), &widget, Some(NS)), InformerConfig::default()).expect("informer");
    let own = Informer::spawn(KubeSource::for_type::<ConfigMap>(client.clone(), Some(NS)), InformerConfig::default()).expect("informer");
    eventually("the widget informer's LIST to fail with 404", || widgets.failed_list_status() == Some(404)).await;
    assert!(!widgets.has_synced());

    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::<ConfigMap>::new(&own)
        .watches_raw(&widgets, |o: &kcache::Obj| Some(ObjectRef::<ConfigMap>::new(o.name()).within(NS)))
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        });
    let stats = controller.stats();
    let run = tokio::spawn(controller.run(
        |cm: Arc<ConfigMap>, seen: Arc<Mutex<HashSet<String>>>| async move {
            seen.lock().unwrap().insert(cm.metadata.name.clone().unwrap_or_default());
            Ok::<_, Infallible>(Action::await_change())
        },
        |_: Arc<ConfigMap>, e: &Infallible, _: Arc<Mutex<HashSet<String>>>| match *e {},
        Arc::clone(&seen),
    ));

    eventually("every config map reconciled", || seen.lock().unwrap().len() == 3).await;
    assert_eq!(stats.unavailable_watches.load(Ordering::Relaxed), 1, "the unserved kind is counted once");
    assert_eq!(widgets.failed_list_status(), Some(404), "the informer keeps reporting why it has not synced");

    // The controller's own kind keeps flowing after the start.
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "d", "namespace": NS}})).expect("configmap");
    config_maps.create(&PostParams::default(), &cm).await.expect("configmap created");
    eventually("the new config map reconciled", || seen.lock().unwrap().contains("d")).await;
    assert_eq!(own.failed_list_status(), None, "a served kind reports no failed LIST");

    let _ = stop.send(());
    tokio::time::timeout(T, run).await.expect("controller stops").expect("controller task");
    widgets.shutdown();
    own.shutdown();
}
