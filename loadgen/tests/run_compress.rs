//! `loadgen run --compress`: kcache keeps its pods as zstd frames, loses no event,
//! ends with the server's state, and the report says what the store really holds.

use std::time::Duration;

use kcache_loadgen::run::{self, EngineKind, HandlerStyle, RunConfig, TargetKind, WriterKind};

fn config(compress: bool) -> RunConfig {
    RunConfig {
        pods: 400,
        write_qps: 100.0,
        duration: Duration::from_secs(3),
        namespaces: 2,
        engine: EngineKind::Kcache,
        handler: HandlerStyle::Sync,
        target: TargetKind::SimInProcess,
        writer: WriterKind::InProcess,
        progress: false,
        read_timings: false,
        compress,
        ..RunConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_run_loses_nothing_and_reports_both_sizes() {
    let report = tokio::time::timeout(Duration::from_secs(120), run::run(&config(true)))
        .await
        .expect("the run finishes within 120 s")
        .expect("the run completes");
    assert!(report.compressed, "{}", report.table());
    assert_eq!(report.events_lost, 0, "{}", report.table());
    assert!(report.cache_matches_server, "{}", report.table());
    assert!(report.events_expected > 50, "{}", report.table());
    // Trained on the 400 listed pods, the frames are a fraction of the JSON.
    assert!(report.store_uncompressed_bytes > 3 * report.store_bytes, "{} vs {}", report.store_uncompressed_bytes, report.store_bytes);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["compressed"], true);
    assert!(json["store_uncompressed_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncompressed_run_reports_equal_sizes() {
    let mut cfg = config(false);
    cfg.duration = Duration::from_secs(1);
    let report = run::run(&cfg).await.expect("the run completes");
    assert!(!report.compressed);
    assert_eq!(report.store_uncompressed_bytes, report.store_bytes, "{}", report.table());
}
