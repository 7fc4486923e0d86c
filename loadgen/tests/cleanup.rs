//! `loadgen cleanup` (the library function the CLI calls) against the
//! simulator: loadgen's namespaces and their pods go, nothing else does, and
//! running it again, or while a namespace is still terminating, is fine.

use std::time::Duration;

use kcache_loadgen::cleanup::{self, Cleaned, OWNED_LABEL};
use kcache_loadgen::run::{self, EngineKind, HandlerStyle, RunConfig, TargetKind, WriterKind};
use kcache_loadgen::sim::{SimHandle, SimServer};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn pod(namespace: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "x"}},
        // Bound to a node: the namespace controller's own delete would wait 30 s.
        "spec": {"nodeName": "node-001", "containers": [{"name": "app", "image": "app:1"}]}
    })
}

fn namespace(sim: &SimHandle, name: &str, owned: bool) {
    let labels = if owned { json!({OWNED_LABEL: "true"}) } else { json!({}) };
    sim.create("namespaces", json!({"metadata": {"name": name, "labels": labels}})).expect("namespace");
}

fn names(sim: &SimHandle) -> Vec<String> {
    sim.objects("namespaces", None)
        .expect("namespaces")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn cleanup_deletes_loadgens_namespaces_and_pods_and_nothing_else() {
    let sim = SimServer::builder().start().await.expect("sim");
    let client = sim.client().expect("client");
    for ns in ["loadgen-a-0", "loadgen-a-1"] {
        namespace(&sim, ns, true);
        for i in 0..5 {
            sim.create("pods", pod(ns, &format!("p-{i}"))).expect("pod");
        }
    }
    namespace(&sim, "someone-elses", false);
    sim.create("pods", pod("someone-elses", "keep")).expect("pod");
    // A namespace whose content a finalizer holds stays terminating.
    namespace(&sim, "loadgen-held-0", true);
    sim.create("configmaps", json!({"metadata": {"name": "held", "namespace": "loadgen-held-0", "finalizers": ["example.com/hold"]}}))
        .expect("configmap");

    let mut cleaned = cleanup::cleanup_owned(&client).await.expect("cleanup");
    cleaned.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        cleaned,
        vec![
            ("loadgen-a-0".to_owned(), Cleaned::Deleted),
            ("loadgen-a-1".to_owned(), Cleaned::Deleted),
            ("loadgen-held-0".to_owned(), Cleaned::Deleted),
        ]
    );
    // The pods were deleted at once, so the namespaces go without waiting for
    // a grace period: the simulator's clock is not advanced.
    let gone = ["loadgen-a-0".to_owned(), "loadgen-a-1".to_owned()];
    let left = cleanup::wait_gone(&client, &gone, WAIT, false).await.expect("wait");
    assert!(left.is_empty(), "{left:?}");
    assert!(sim.objects("pods", Some("loadgen-a-0")).expect("pods").is_empty());
    assert!(sim.objects("pods", Some("loadgen-a-1")).expect("pods").is_empty());
    // Someone else's namespace and pod are untouched.
    assert!(names(&sim).contains(&"someone-elses".to_owned()));
    assert_eq!(sim.objects("pods", Some("someone-elses")).expect("pods").len(), 1);

    // Again, while the held namespace is still terminating: not an error.
    let held = vec!["loadgen-held-0".to_owned()];
    assert_eq!(cleanup::wait_gone(&client, &held, Duration::from_millis(300), false).await.expect("wait"), held);
    let again = cleanup::cleanup_owned(&client).await.expect("cleanup again");
    assert_eq!(again, vec![("loadgen-held-0".to_owned(), Cleaned::AlreadyTerminating)]);
    sim.merge_patch("configmaps", "loadgen-held-0", "held", &json!({"metadata": {"finalizers": null}})).expect("release");
    assert!(cleanup::wait_gone(&client, &held, WAIT, false).await.expect("wait").is_empty());
    assert_eq!(cleanup::cleanup_owned(&client).await.expect("nothing left"), vec![]);
    sim.shutdown().await;
}

/// A run against a shared server deletes its namespaces when it ends, the
/// same way, so they go without waiting for the pods' grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_a_shared_server_leaves_nothing_behind() {
    let sim = SimServer::builder().start().await.expect("sim");
    let cfg = RunConfig {
        pods: 100,
        write_qps: 50.0,
        duration: Duration::from_secs(1),
        namespaces: 2,
        engine: EngineKind::Kcache,
        handler: HandlerStyle::Sync,
        target: TargetKind::Url(sim.url()),
        writer: WriterKind::InProcess,
        progress: false,
        read_timings: false,
        ..RunConfig::default()
    };
    let report = run::run(&cfg).await.expect("the run completes");
    assert!(report.cache_matches_server && report.events_lost == 0, "{}", report.table());
    let client = sim.client().expect("client");
    let left = cleanup::wait_gone(&client, &report.namespaces, WAIT, false).await.expect("wait");
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(sim.object_count("pods").expect("pods"), 0);
    assert!(cleanup::owned_namespaces(&client).await.expect("list").is_empty());
    sim.shutdown().await;
}
