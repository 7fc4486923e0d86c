//! `loadgen run --replicas N` end to end through the binary (the replicas are
//! `loadgen replica` children): three replicas share the pods through a ring of
//! Leases, one is SIGKILLed mid-run and the survivors take its keys over; no key
//! is reconciled by two replicas at once, none is left unreconciled, and the
//! union of the survivors' caches is the server's state. One replica is the
//! single-engine run, with the per-replica figures of its one engine.

use std::process::Command;

use kcache_loadgen::report::Report;

fn run(extra: &[&str]) -> (Option<i32>, Report, String) {
    let dir = std::env::temp_dir().join(format!("run-replicas-{}-{}", std::process::id(), extra.join("_").replace(['-', '.'], "")));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--quiet", "--pods", "200", "--namespaces", "12", "--write-qps", "100", "--no-read-timings"])
        .args(extra)
        .arg("--report")
        .arg(&path)
        .output()
        .expect("loadgen runs");
    let said = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report: Report = serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("no report ({e}): {said}")))
        .unwrap_or_else(|e| panic!("unreadable report ({e}): {said}"));
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code(), report, said)
}

#[test]
fn three_replicas_survive_a_kill_without_double_or_missed_reconciles() {
    let (code, r, said) = run(&["--duration", "8", "--replicas", "3", "--kill-replica-at", "3", "--lease-duration", "2"]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(r.replicas, 3, "{said}");
    assert_eq!(r.rss_mb_after_sync_per_replica.len(), 3, "{said}");
    assert_eq!(r.store_bytes_per_replica.len(), 3, "{said}");
    // Sharded by namespace: a replica may own none of the 12, but together they hold every pod.
    assert!(r.store_bytes_per_replica.iter().sum::<u64>() > 0, "{said}");
    assert!(r.rss_mb_after_sync_per_replica.iter().all(|&mb| mb > 0.0), "{said}");
    assert_eq!(r.killed_replica, Some(0), "{said}");
    let takeover = r.takeover_seconds.unwrap_or_else(|| panic!("the survivors took every key over: {said}"));
    // A 2 s lease expires within about 2 s of the kill; 60 s is for a loaded machine.
    assert!((0.0..60.0).contains(&takeover), "{takeover}: {said}");
    assert_eq!(r.double_reconciles, 0, "{said}");
    assert_eq!(r.keys_never_reconciled, 0, "{said}");
    assert_eq!(r.events_lost, 0, "{said}");
    assert!(r.cache_matches_server, "{said}");
    assert!(r.events_expected > 100, "writes were acknowledged: {said}");
    for row in ["replicas (lease)", "store per replica", "takeover (replica killed)", "double reconciles", "keys never reconciled"] {
        assert!(said.contains(row), "the table shows {row}: {said}");
    }
}

#[test]
fn one_replica_is_the_single_engine_run_with_its_figures_per_replica() {
    let (code, r, said) = run(&["--duration", "2", "--replicas", "1"]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(r.replicas, 1);
    assert_eq!(r.engine, "kcache");
    assert_eq!(r.store_bytes_per_replica, vec![r.store_bytes], "{said}");
    assert_eq!(r.rss_mb_after_sync_per_replica, vec![r.rss_mb_after_sync], "{said}");
    assert_eq!((r.double_reconciles, r.keys_never_reconciled, r.takeover_seconds), (0, 0, None));
    assert!(r.cache_matches_server && r.events_lost == 0, "{said}");
    assert!(!said.contains("store per replica"), "one engine shows no replica rows: {said}");
}

#[test]
fn replica_flags_are_checked_before_anything_starts() {
    for (args, says) in [
        (&["--kill-replica-at", "1"][..], "--kill-replica-at needs --replicas 2"),
        (&["--replicas", "2", "--kill-replica-at", "9", "--duration", "5"][..], "less than --duration"),
        (&["--replicas", "2", "--engine", "kube-rs"][..], "kcache replicas only"),
        (&["--replicas", "0"][..], "--replicas"),
        (&["--replicas", "2", "--lease-duration", "0"][..], "--lease-duration"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen")).args(["run", "--quiet"]).args(args).output().expect("loadgen runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
