//! `loadgen run --replicas N --leader-election` end to end through the binary:
//! the replicas elect one leader on a Lease, each caches every pod, only the
//! leader reconciles; the leader is SIGKILLed mid-run and a follower takes over
//! with no key reconciled by two replicas at once, none left unreconciled, and
//! its cache the server's state.

use std::process::Command;

use kcache_loadgen::report::Report;

fn run(extra: &[&str]) -> (Option<i32>, Report, String) {
    let dir = std::env::temp_dir().join(format!("run-replicas-leader-{}-{}", std::process::id(), extra.join("_").replace(['-', '.'], "")));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--quiet", "--pods", "200", "--namespaces", "4", "--write-qps", "100", "--no-read-timings"])
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
fn a_follower_takes_over_from_a_killed_leader_without_double_or_missed_reconciles() {
    let (code, r, said) = run(&["--duration", "8", "--replicas", "2", "--leader-election", "--kill-replica-at", "3", "--lease-duration", "2"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(r.leader_election, "{said}");
    assert_eq!(r.replicas, 2, "{said}");
    assert_eq!(r.replica_cache, "everything", "each replica caches every pod: {said}");
    // Unsharded: both stores hold every pod.
    assert!(r.store_bytes_per_replica.iter().all(|&b| b > 0), "{said}");
    let killed = r.killed_replica.unwrap_or_else(|| panic!("the leader was killed: {said}"));
    assert!(killed < 2, "{said}");
    assert!(r.failover_seconds.is_some(), "the survivor reconciled after the kill: {said}");
    assert!(r.takeover_seconds.is_some(), "the survivor reconciled every key the leader had: {said}");
    assert_eq!(r.double_reconciles, 0, "{said}");
    assert_eq!(r.keys_never_reconciled, 0, "{said}");
    assert_eq!(r.events_lost, 0, "{said}");
    assert!(r.cache_matches_server, "{said}");
    assert!(r.events_expected > 100, "writes were acknowledged: {said}");
    assert!(said.contains("failover (leader lost)"), "the table shows the failover: {said}");
    assert!(said.contains("leader election"), "{said}");
}

#[test]
fn leader_and_pause_flags_are_checked_before_anything_starts() {
    for (args, says) in [
        (&["--leader-election"][..], "--leader-election needs --replicas 2"),
        (&["--pause-replica-at", "1", "--pause-seconds", "3"][..], "--pause-replica-at needs --replicas 2"),
        (&["--replicas", "2", "--pause-replica-at", "9", "--pause-seconds", "3", "--duration", "5"][..], "less than --duration"),
        (&["--replicas", "2", "--pause-replica-at", "1", "--pause-seconds", "0"][..], "--pause-seconds"),
        (&["--replicas", "2", "--pause-replica-at", "1"][..], "--pause-seconds"),
        (&["--replicas", "2", "--pause-replica-at", "1", "--pause-seconds", "3", "--kill-replica-at", "1"][..], "--kill-replica-at"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen")).args(["run", "--quiet"]).args(args).output().expect("loadgen runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
