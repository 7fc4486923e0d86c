//! A run's namespaces are its own: a previous run's namespaces that are still
//! terminating (as a real cluster keeps them until its namespace controller
//! has emptied them) neither stop a run nor leak into it, and an API error
//! about them reads as one line that says what to do.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kcache_loadgen::cleanup::OWNED_LABEL;
use kcache_loadgen::run::{self, EngineKind, HandlerStyle, RUN_LABEL, RunConfig, RunError, TargetKind, WriterKind};
use kcache_loadgen::sim::{DeleteOptions, SimHandle, SimServer};
use kube::api::{Api, PostParams};
use serde_json::json;

fn config(url: String) -> RunConfig {
    RunConfig {
        pods: 200,
        write_qps: 100.0,
        duration: Duration::from_secs(2),
        namespaces: 2,
        engine: EngineKind::Kcache,
        handler: HandlerStyle::Sync,
        target: TargetKind::Url(url),
        writer: WriterKind::InProcess,
        progress: false,
        read_timings: false,
        ..RunConfig::default()
    }
}

fn pod(namespace: &str, name: &str, run_id: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {RUN_LABEL: run_id}},
        "spec": {"nodeName": "node-001", "containers": [{"name": "app", "image": "app:1"}]}
    })
}

fn phase(sim: &SimHandle, ns: &str) -> Option<String> {
    sim.get("namespaces", "", ns).expect("namespaces").map(|n| n["status"]["phase"].as_str().unwrap_or("").to_owned())
}

/// A previous run's namespace, deleted and terminating: its pod is bound to a
/// node, so the namespace controller's graceful delete keeps it 30 s.
fn leave_a_terminating_namespace(sim: &SimHandle, ns: &str, run_id: &str) {
    sim.create("namespaces", json!({"metadata": {"name": ns, "labels": {OWNED_LABEL: "true"}}})).expect("namespace");
    sim.create("pods", pod(ns, "left-over", run_id)).expect("pod");
    sim.delete_with("namespaces", "", ns, &DeleteOptions::default()).expect("delete namespace");
    sim.reconcile();
    assert_eq!(phase(sim, ns).as_deref(), Some("Terminating"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_starts_while_a_previous_runs_namespace_is_terminating() {
    let sim = SimServer::builder().start().await.expect("sim");
    let previous = run::namespace_name("0ld0ld00", 0);
    leave_a_terminating_namespace(&sim, &previous, "0ld0ld00");

    let first = run::run(&config(sim.url())).await.expect("a run beside a terminating namespace completes");
    assert!(first.cache_matches_server && first.events_lost == 0, "{}", first.table());
    assert!(!first.namespaces.contains(&previous), "{:?}", first.namespaces);
    assert!(first.namespaces.iter().all(|ns| ns.contains(&first.run_id)), "{:?}", first.namespaces);
    // The previous run's pod is not this run's: not selected, not written.
    assert_eq!(first.events_from_others, 0, "{}", first.table());
    assert_eq!(phase(&sim, &previous).as_deref(), Some("Terminating"), "the run really ran beside it");

    // A second run right after the first: the first's namespaces may still be
    // terminating; the second does not care.
    let second = run::run(&config(sim.url())).await.expect("a second run completes");
    assert!(second.cache_matches_server && second.events_lost == 0, "{}", second.table());
    assert_ne!(first.run_id, second.run_id);
    assert!(second.namespaces.iter().all(|ns| !first.namespaces.contains(ns)));

    // The namespace controller finishes once the grace period has passed.
    sim.advance_clock(Duration::from_secs(31));
    let deadline = Instant::now() + Duration::from_secs(10);
    while phase(&sim, &previous).is_some() && Instant::now() < deadline {
        sim.reconcile();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(phase(&sim, &previous), None);
    sim.shutdown().await;
}

#[tokio::test]
async fn writing_into_a_terminating_namespace_fails_with_one_line_saying_what_to_do() {
    let sim = SimServer::builder().start().await.expect("sim");
    let ns = run::namespace_name("0ld0ld00", 3);
    leave_a_terminating_namespace(&sim, &ns, "0ld0ld00");
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), &ns);
    let body: Pod = serde_json::from_value(pod(&ns, "late", "0ld0ld00")).expect("pod");
    let err = api.create(&PostParams::default(), &body).await.expect_err("refused");
    let line = RunError::api(format!("creating pod {ns}/late"), err).to_string();
    assert_eq!(
        line,
        format!(
            "creating pod {ns}/late: 403 Forbidden (NamespaceTerminating): namespace {ns} is being terminated; \
             wait for the namespace to go (`kubectl get ns`) or run 'loadgen cleanup'"
        )
    );
    sim.shutdown().await;
}
