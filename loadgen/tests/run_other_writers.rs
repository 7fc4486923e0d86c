//! `loadgen run` on a simulator where other writers are busy with the run's
//! pods, as kubelets and controllers are on a real cluster: a status writer
//! (kubelets reporting pod status) and a collector deleting pods gracefully.
//! The run still verifies its cache, loses nothing, and times only the events
//! of its own writes; the others' events are counted apart.

use std::time::Duration;

use std::collections::HashSet;
use std::sync::Arc;

use kcache_loadgen::run::{
    self, Engine, EngineKind, EngineSettings, HandlerStyle, RUN_LABEL, Recorder, RunConfig, TargetKind, WriterKind, verify,
};
use kcache_loadgen::sim::{Collector, DeleteOptions, SimServer};
use serde_json::json;

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

/// The comparison the run used to make, the cache against a plain LIST, fails
/// while another writer is busy; the rule the run makes now holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_busy_writer_a_plain_list_disagrees_and_the_exact_read_rule_agrees() {
    let sim = SimServer::builder().status_writer("pods", RUN_LABEL, 1000.0).start().await.expect("sim");
    let pods = (0..200).map(|i| {
        json!({"metadata": {"name": format!("p-{i}"), "namespace": "ns", "labels": {RUN_LABEL: "r"}}, "spec": {"containers": []}})
    });
    sim.create_many("pods", pods).expect("pods");
    let client = sim.client().expect("client");
    let recorder = Arc::new(Recorder::default());
    let settings = EngineSettings {
        label_selector: RUN_LABEL.into(),
        handler: HandlerStyle::Sync,
        shards: 0,
        strip_managed_fields: false,
        compress: false,
        streaming_list: false,
        resync: None,
    };
    let engine = Engine::start(EngineKind::Kcache, client.clone(), &settings, Arc::clone(&recorder)).expect("engine");
    assert!(engine.wait_synced(Duration::from_secs(60)).await);

    // The simulator answers a LIST of 200 pods in well under a millisecond; a
    // real server takes tens to hundreds of milliseconds for thousands. The
    // cache is read that much later than the LIST's state, here 30 ms, in
    // which the status writer (ten updates every 10 ms) has written.
    let list_takes = Duration::from_millis(30);
    // The old check: the cache equal to a plain LIST.
    let mut old_failed = false;
    for _ in 0..50 {
        let plain = verify::server_snapshot(&client, RUN_LABEL, 0).await.expect("list");
        tokio::time::sleep(list_takes).await;
        if engine.snapshot() != plain.keys {
            old_failed = true;
            break;
        }
    }
    assert!(old_failed, "a plain LIST never differed from the cache under 1,000 writes/s");

    // The rule: at a version the cache has reached, newer keys allowed. A key
    // the cache is still applying may disagree for a moment; it is read again,
    // until a check has seen the status writer's newer versions and agreed.
    let mut verdict = None;
    for _ in 0..100 {
        let at = recorder.max_resource_version();
        let snapshot = verify::server_snapshot(&client, RUN_LABEL, at).await.expect("exact list");
        assert!(!snapshot.fell_back);
        tokio::time::sleep(list_takes).await;
        let cached = engine.snapshot();
        let now: HashSet<String> = verify::server_snapshot(&client, RUN_LABEL, 0).await.expect("list").keys.into_iter().map(|(k, _)| k).collect();
        let v = verify::compare(snapshot.at, &snapshot.keys, &cached, &|k| now.contains(k));
        if v.matches() && v.newer_in_cache > 0 {
            verdict = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let verdict = verdict.expect("the cache agreed with the server at a version it had reached, newer keys allowed");
    assert_eq!(verdict.same + verdict.newer_in_cache, 200, "{verdict:?}");
    engine.shutdown();
    sim.shutdown().await;
}
