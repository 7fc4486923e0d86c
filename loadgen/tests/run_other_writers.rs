//! `loadgen run` on a simulator where other writers are busy with the run's
//! pods, as kubelets and controllers are on a real cluster: a status writer
//! (kubelets reporting pod status) and a collector deleting pods gracefully.
//! The run still verifies its cache, loses nothing, and times only the events
//! of its own writes; the others' events are counted apart.

use std::time::Duration;

use kcache_loadgen::run::{self, EngineKind, HandlerStyle, RUN_LABEL, RunConfig, TargetKind, WriterKind};
use kcache_loadgen::sim::{Collector, DeleteOptions, SimServer};

fn config(url: String, engine: EngineKind, handler: HandlerStyle) -> RunConfig {
    RunConfig {
        pods: 300,
        write_qps: 100.0,
        duration: Duration::from_secs(3),
        namespaces: 3,
        engine,
        handler,
        target: TargetKind::Url(url),
        writer: WriterKind::InProcess,
        progress: false,
        read_timings: false,
        ..RunConfig::default()
    }
}

async fn run_under_other_writers(engine: EngineKind, handler: HandlerStyle) {
    // Ten times real time: the collector's graceful deletes (30 s) end within
    // the run, so the simulated kubelet's final deletes happen during it too.
    let sim = SimServer::builder()
        .clock_scale(10.0)
        .status_writer("pods", RUN_LABEL, 10.0)
        .collector(Collector {
            resource: "pods".into(),
            label_selector: RUN_LABEL.into(),
            per_second: 0.5,
            options: DeleteOptions::default(),
        })
        .start()
        .await
        .expect("sim");
    let cfg = config(sim.url(), engine, handler);
    let r = tokio::time::timeout(Duration::from_secs(120), run::run(&cfg))
        .await
        .expect("the run finishes within 120 s")
        .expect("the run completes");
    let table = r.table();
    println!("{table}");
    assert!(r.cache_matches_server, "{table}");
    assert!(r.verification.starts_with("exact LIST at "), "{table}");
    assert!(r.verified_at_resource_version > 0, "{table}");
    assert_eq!(r.events_lost, 0, "{table}");
    assert!(r.events_expected > 100, "{table}");
    assert!(r.events_received <= r.events_expected, "{table}");
    // Other writers' events were seen, and counted apart.
    assert!(r.events_from_others > 0, "{table}");
    // Every latency sample is one of the run's own updates or creates.
    assert!(r.events_own_timed > 0, "{table}");
    assert_eq!(r.event_latency_ms.samples, r.events_own_timed, "{table}");
    assert!(r.events_own >= r.events_own_timed, "{table}");
    // The raw watch also timed only the run's own writes' events (at most one each).
    assert!(r.wire_event_latency_ms.samples <= r.events_expected, "{table}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcache_under_other_writers_verifies_and_times_only_its_own_writes() {
    run_under_other_writers(EngineKind::Kcache, HandlerStyle::Sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcache_with_a_workqueue_under_other_writers_verifies_and_loses_nothing() {
    run_under_other_writers(EngineKind::Kcache, HandlerStyle::Workqueue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_under_other_writers_verifies_and_times_only_its_own_writes() {
    run_under_other_writers(EngineKind::KubeRs, HandlerStyle::Channel).await;
}

/// Without other writers, every handler event is the run's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_other_writers_no_event_is_counted_as_anothers() {
    let sim = SimServer::builder().start().await.expect("sim");
    let cfg = config(sim.url(), EngineKind::Kcache, HandlerStyle::Sync);
    let r = run::run(&cfg).await.expect("the run completes");
    let table = r.table();
    assert!(r.cache_matches_server && r.events_lost == 0, "{table}");
    assert_eq!(r.events_from_others, 0, "{table}");
    assert_eq!(r.events_received, r.events_expected, "{table}");
    assert_eq!(r.event_latency_ms.samples, r.events_own_timed, "{table}");
    sim.shutdown().await;
}
