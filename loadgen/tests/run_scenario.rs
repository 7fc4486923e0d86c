//! `loadgen run` end to end through the library, against the in-process
//! simulator: every handler style of both engines loses no event and ends with
//! the server's exact state; preload, resync, streaming list and profiling work.

use std::time::Duration;

use kcache_loadgen::run::{self, EngineKind, HandlerStyle, RunConfig, TargetKind, WriterKind};

fn small(engine: EngineKind, handler: HandlerStyle) -> RunConfig {
    RunConfig {
        pods: 300,
        write_qps: 100.0,
        duration: Duration::from_secs(2),
        namespaces: 3,
        engine,
        handler,
        target: TargetKind::SimInProcess,
        // The child writer is `loadgen write`, which a test binary is not;
        // `sim_cli.rs` runs the binary with its default child writer.
        writer: WriterKind::InProcess,
        progress: false,
        read_timings: false,
        ..RunConfig::default()
    }
}

async fn check(cfg: RunConfig) -> kcache_loadgen::report::Report {
    let report = tokio::time::timeout(Duration::from_secs(60), run::run(&cfg))
        .await
        .expect("the run finishes within 60 s")
        .expect("the run completes");
    assert_eq!(report.events_lost, 0, "{}", report.table());
    assert!(report.cache_matches_server, "{}", report.table());
    assert!(report.events_expected > 50, "writes were acknowledged: {}", report.table());
    // No other writer: every event is the run's own, and every own update's or
    // create's event is one latency sample.
    assert_eq!(report.events_from_others, 0, "{}", report.table());
    assert_eq!(report.event_latency_ms.samples, report.events_own_timed, "{}", report.table());
    assert!(report.verification.starts_with("exact LIST at "), "{}", report.table());
    assert!(report.sync_seconds > 0.0);
    // Only the engine's own requests are counted: one list (300 pods fit one page) and one watch.
    let calls = report.api_calls.expect("the simulator reports API calls");
    assert_eq!((calls.list, calls.watch), (1, 1), "{}", report.table());
    assert!(report.rss_mb_before_engine > 0.0 && report.rss_mb_peak_engine > 0.0);
    assert!(!report.rss_mb_timeline.is_empty());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcache_with_a_sync_handler_loses_no_event_and_matches_the_server() {
    let mut cfg = small(EngineKind::Kcache, HandlerStyle::Sync);
    cfg.read_timings = true;
    let r = check(cfg).await;
    // Two readers, each timing at least its minimum of 20,000 Gets.
    assert_eq!(r.readers, 2);
    assert!(r.cache_get_ns.samples >= 40_000 && r.cache_get_ns.p95 <= r.cache_get_ns.p99, "{}", r.table());
    assert!(r.cache_list_1000_ns.samples >= 500, "{}", r.table());
    // The keys are the cache's as the writes start: only the writes' deletes (5%
    // of them, a few of 300 pods) make misses.
    let hits = r.cache_get_hit_rate.expect("Gets were timed");
    assert!((0.8..=1.0).contains(&hits), "hit rate {hits}: {}", r.table());
    assert!(r.direct_get_ms.samples > 0 && r.direct_list_1000_ms.samples > 0);
    assert!(r.store_bytes > 0 && r.wire_bytes > 0);
    // The raw watch saw the same writes' events (the floor under the engine's latency).
    let wire = r.wire_event_latency_ms;
    assert!(wire.samples * 10 >= r.event_latency_ms.samples * 9, "{}", r.table());
    assert!(wire.p50 > 0.0 && wire.p50 <= wire.p99, "{}", r.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcache_with_a_channel_handler_loses_no_event_and_matches_the_server() {
    check(small(EngineKind::Kcache, HandlerStyle::Channel)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcache_with_a_workqueue_handler_loses_no_event_and_matches_the_server() {
    check(small(EngineKind::Kcache, HandlerStyle::Workqueue)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_with_a_sync_handler_loses_no_event_and_matches_the_server() {
    let mut cfg = small(EngineKind::KubeRs, HandlerStyle::Sync);
    cfg.read_timings = true;
    let r = check(cfg).await;
    assert!(r.cache_list_1000_ns.samples > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_with_a_channel_handler_loses_no_event_and_matches_the_server() {
    check(small(EngineKind::KubeRs, HandlerStyle::Channel)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_with_a_workqueue_handler_loses_no_event_and_matches_the_server() {
    check(small(EngineKind::KubeRs, HandlerStyle::Workqueue)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_redelivers_the_cache_without_any_api_call() {
    let mut cfg = small(EngineKind::Kcache, HandlerStyle::Sync);
    cfg.resync = Some(Duration::from_millis(500));
    let r = check(cfg).await;
    // At least two resyncs of ~300 pods within the 2 s write phase.
    assert!(r.resync_events >= 300, "{}", r.table());
    assert_eq!(r.resync_seconds, 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preloaded_streaming_list_run_syncs_the_simulators_pods() {
    let mut cfg = small(EngineKind::Kcache, HandlerStyle::Sync);
    cfg.preload = true;
    cfg.streaming_list = true;
    cfg.duration = Duration::from_secs(1);
    let report = run::run(&cfg).await.expect("the run completes");
    assert!(report.preload && report.streaming_list);
    assert_eq!(report.events_lost, 0, "{}", report.table());
    assert!(report.cache_matches_server, "{}", report.table());
    // A streaming list is a watch: no LIST request at all.
    let calls = report.api_calls.expect("the simulator reports API calls");
    assert_eq!(calls.list, 0, "{}", report.table());
    assert!(calls.watch >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_only_run_measures_the_cache_memory() {
    let mut cfg = small(EngineKind::Kcache, HandlerStyle::Sync);
    cfg.preload = true;
    cfg.pods = 2_000;
    cfg.duration = Duration::ZERO;
    let report = run::run(&cfg).await.expect("the run completes");
    assert_eq!(report.events_expected, 0);
    assert!(report.cache_matches_server, "{}", report.table());
    assert!(report.rss_mb_after_sync >= report.rss_mb_before_engine, "{}", report.table());
    assert!(report.rss_mb_timeline.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profiled_run_writes_a_flamegraph_and_a_pprof_profile() {
    let dir = std::env::temp_dir().join(format!("kcache-profile-test-{}", std::process::id()));
    let mut cfg = small(EngineKind::Kcache, HandlerStyle::Sync);
    cfg.profile = Some(dir.join("run"));
    cfg.profile_hz = 250;
    check(cfg).await;
    let svg = std::fs::read_to_string(dir.join("run.svg")).expect("flamegraph written");
    assert!(svg.contains("<svg"), "not an svg");
    let summary = kcache_loadgen::profile::summarize_file(&dir.join("run.pb")).expect("pprof profile readable");
    assert!(summary.total > 0, "no samples in {summary:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcache_with_a_handler_slower_than_the_writes_coalesces_and_still_loses_nothing() {
    // 2 shards x 1/20 ms = 100 events/s of handler capacity against 200 writes/s:
    // the backlog coalesces per key, so the handlers see fewer events than there
    // were writes, and the last state of every key still arrives.
    let mut cfg = small(EngineKind::Kcache, HandlerStyle::Sync);
    cfg.write_qps = 200.0;
    cfg.duration = Duration::from_secs(3);
    cfg.shards = 2;
    cfg.handler_cost = Duration::from_millis(20);
    let r = check(cfg).await;
    assert_eq!(r.handler_cost_us, 20_000);
    assert!(r.events_received < r.events_expected, "nothing was coalesced: {}", r.table());
}
