//! `loadgen run --replicas N --pause-replica-at S --pause-seconds P` end to end
//! through the binary: one replica is SIGSTOPped past its lease and SIGCONTed;
//! the others take its keys meanwhile, and the woken replica reconciles none of
//! the keys it lost while they are someone else's: no key is reconciled by two
//! replicas at once, none is left unreconciled, and the caches are the server's state.

use std::process::Command;

use kcache_loadgen::report::Report;

fn run(extra: &[&str]) -> (Option<i32>, Report, String) {
    let dir = std::env::temp_dir().join(format!("run-replicas-pause-{}-{}", std::process::id(), extra.join("_").replace(['-', '.'], "")));
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

fn assert_no_double_missed_or_lost(r: &Report, said: &str) {
    assert_eq!(r.double_reconciles, 0, "{said}");
    assert_eq!(r.keys_never_reconciled, 0, "{said}");
    assert_eq!(r.events_lost, 0, "{said}");
    assert!(r.cache_matches_server, "{said}");
    assert!(r.events_expected > 100, "writes were acknowledged: {said}");
    assert!(said.contains("replica paused"), "the table shows the pause: {said}");
}

#[test]
fn a_sharded_replica_woken_past_its_lease_reconciles_no_key_it_lost() {
    // A 5 s pause of a 2 s lease: the ring gives its ranges away before it wakes.
    let args = ["--duration", "9", "--replicas", "3", "--pause-replica-at", "2", "--pause-seconds", "5", "--lease-duration", "2"];
    let (code, r, said) = run(&args);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(r.replicas, 3, "{said}");
    assert!(!r.leader_election, "{said}");
    assert_eq!(r.paused_replica, Some(0), "{said}");
    assert_eq!(r.killed_replica, None, "{said}");
    assert_no_double_missed_or_lost(&r, &said);
}

#[test]
fn a_leader_woken_past_its_lease_reconciles_nothing_while_another_leads() {
    let args = ["--duration", "9", "--replicas", "2", "--leader-election", "--pause-replica-at", "2", "--pause-seconds", "5", "--lease-duration", "2"];
    let (code, r, said) = run(&args);
    assert_eq!(code, Some(0), "{said}");
    assert!(r.leader_election, "{said}");
    assert!(r.paused_replica.is_some_and(|p| p < 2), "{said}");
    // Paused past its lease, the leader lost the Lease to the other replica.
    assert!(r.failover_seconds.is_some(), "{said}");
    assert_no_double_missed_or_lost(&r, &said);
}
