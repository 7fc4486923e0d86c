//! The replicas scenario: `loadgen run --replicas N` with N = 1, 2, 3 sharded
//! replicas (each replica's store and RSS), a run where one of three is SIGKILLed
//! (takeover), and a leader-elected pair whose leader is SIGKILLed (failover):
//! its jobs, its row, built from the runs' reports, and its RESULTS.md section.
//!
//! # Guarantees
//! * A figure whose run failed is `None`, never a guess; a run whose caches did
//!   not match the server counts as losing events.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use kcache_loadgen::report::Report;
use kcache_loadgen::run::leader_timing;
use serde::Serialize;

use super::exec::Outcome;
use super::plan::{Group, Job};

/// Sharded replica counts measured for memory.
pub const SIZES: [u64; 3] = [1, 2, 3];
/// Lease duration of the kill and failover runs, seconds.
pub const LEASE_SECONDS: u64 = 5;
/// Seconds into the write phase at which the kill and failover runs kill a replica.
pub const KILL_AT_SECONDS: u64 = 5;
/// Replicas of the kill run.
pub const KILL_REPLICAS: u64 = 3;
/// Replicas of the leader failover run.
pub const LEADER_REPLICAS: u64 = 2;
/// Variant of the sharded memory runs.
pub const SHARDED: &str = "sharded";
/// Variant of the run that kills a sharded replica.
pub const KILL: &str = "kill";
/// Variant of the leader-elected run that kills the leader.
pub const LEADER: &str = "leader";

/// The scenario's jobs: `pods` pods preloaded, 2,000 writes/s for `seconds`.
pub fn jobs(pods: usize, seconds: f64) -> Vec<Job> {
    let base = |replicas: u64| -> Vec<String> {
        let mut a: Vec<String> = ["--engine", "kcache", "--preload", "--no-read-timings", "--write-qps", "2000"].map(String::from).to_vec();
        a.extend(["--pods".into(), pods.to_string(), "--duration".into(), seconds.to_string(), "--replicas".into(), replicas.to_string()]);
        a
    };
    let job = |param: u64, variant: &str, args: Vec<String>| Job { group: Group::Replicas, param: param.to_string(), variant: variant.into(), rep: 0, args };
    let mut jobs: Vec<Job> = SIZES.iter().map(|&n| job(n, SHARDED, base(n))).collect();
    let fault = |n: u64| {
        let mut a = base(n);
        a.extend(["--lease-duration".into(), LEASE_SECONDS.to_string(), "--kill-replica-at".into(), KILL_AT_SECONDS.to_string()]);
        a
    };
    jobs.push(job(KILL_REPLICAS, KILL, fault(KILL_REPLICAS)));
    let mut leader = fault(LEADER_REPLICAS);
    leader.push("--leader-election".into());
    jobs.push(job(LEADER_REPLICAS, LEADER, leader));
    jobs
}

/// One sharded run's memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizing {
    /// Replicas.
    pub replicas: u64,
    /// Bytes of object JSON each replica's store held once the ring settled.
    pub store_bytes: Vec<u64>,
    /// Each replica's RSS right after its sync, MiB.
    pub rss_mb: Vec<f64>,
    /// What each replica cached (`slice`, `everything`, or empty for one engine).
    pub cache: String,
}

/// A run with a kill: what the survivors did.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRun {
    /// Replicas.
    pub replicas: u64,
    /// Lease duration, seconds.
    pub lease_seconds: f64,
    /// From the kill until the survivors had reconciled every key of the victim.
    pub takeover_seconds: Option<f64>,
    /// Leader election: from the kill until a survivor's first reconcile.
    pub failover_seconds: Option<f64>,
    /// Keys two replicas reconciled in overlapping intervals.
    pub double_reconciles: u64,
    /// Keys no replica reconciled.
    pub keys_never_reconciled: u64,
    /// Writes no reconcile saw.
    pub events_lost: u64,
    /// The survivors' caches agreed with the server.
    pub cache_matches_server: bool,
}

impl FaultRun {
    fn of(r: &Report) -> FaultRun {
        FaultRun {
            replicas: r.replicas,
            lease_seconds: r.lease_duration_seconds,
            takeover_seconds: r.takeover_seconds,
            failover_seconds: r.failover_seconds,
            double_reconciles: r.double_reconciles,
            keys_never_reconciled: r.keys_never_reconciled,
            events_lost: r.events_lost,
            cache_matches_server: r.cache_matches_server,
        }
    }

    /// The failover bound: a lease duration (the followers wait it out after the
    /// leader's last renew) plus a retry period (their next attempt).
    pub fn failover_bound_seconds(&self) -> f64 {
        let (_, retry) = leader_timing(Duration::from_secs_f64(self.lease_seconds));
        self.lease_seconds + retry.as_secs_f64()
    }
}

/// Everything the replicas scenario measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicasRow {
    /// Pods of the runs.
    pub pods: u64,
    /// The sharded runs that produced a report, by replica count.
    pub sizing: Vec<Sizing>,
    /// The largest store of the 3-replica run over the one replica's store.
    pub store_ratio: Option<f64>,
    /// The run that kills one of three sharded replicas.
    pub kill: Option<FaultRun>,
    /// The leader-elected run that kills the leader.
    pub leader: Option<FaultRun>,
}

impl ReplicasRow {
    /// The row from the outcomes; `None` when no replicas job produced a report.
    pub fn build(outcomes: &[Outcome]) -> Option<ReplicasRow> {
        let report = |param: u64, variant: &str| {
            outcomes
                .iter()
                .find(|o| o.job.group == Group::Replicas && o.job.param == param.to_string() && o.job.variant == variant)
                .and_then(|o| o.report.as_ref())
        };
        let sizing: Vec<Sizing> = SIZES
            .iter()
            .filter_map(|&n| report(n, SHARDED))
            .map(|r| Sizing {
                replicas: r.replicas,
                store_bytes: r.store_bytes_per_replica.clone(),
                rss_mb: r.rss_mb_after_sync_per_replica.clone(),
                cache: r.replica_cache.clone(),
            })
            .collect();
        let kill = report(KILL_REPLICAS, KILL).map(FaultRun::of);
        let leader = report(LEADER_REPLICAS, LEADER).map(FaultRun::of);
        let pods = outcomes.iter().filter(|o| o.job.group == Group::Replicas).find_map(|o| o.report.as_ref()).map(|r| r.pods)?;
        let max_store = |n: u64| sizing.iter().find(|s| s.replicas == n).and_then(|s| s.store_bytes.iter().copied().max());
        let store_ratio = match (max_store(3), max_store(1)) {
            (Some(three), Some(one)) if one > 0 => Some(three as f64 / one as f64),
            _ => None,
        };
        Some(ReplicasRow { pods, sizing, store_ratio, kill, leader })
    }

    /// The fault runs that produced a report.
    pub fn faults(&self) -> impl Iterator<Item = &FaultRun> {
        self.kill.iter().chain(self.leader.iter())
    }

    /// A figure summed over the fault runs; `None` when neither was measured.
    pub fn fault_total(&self, f: impl Fn(&FaultRun) -> f64) -> Option<f64> {
        self.faults().map(f).reduce(|a, b| a + b)
    }
}

/// The `replicas` object of docs/results.json.
#[derive(Serialize)]
pub(crate) struct Json {
    pods: u64,
    /// Per sharded replica count (`"1"`, `"2"`, `"3"`).
    sharded: BTreeMap<String, SizingJson>,
    /// The largest store of 3 replicas over one replica's store.
    store_ratio_3_over_1: Option<f64>,
    kill: Option<FaultJson>,
    leader: Option<FaultJson>,
}

#[derive(Serialize)]
struct SizingJson {
    store_bytes_max: u64,
    store_bytes_total: u64,
    rss_mb_max: f64,
}

#[derive(Serialize)]
struct FaultJson {
    replicas: u64,
    lease_seconds: f64,
    takeover_seconds: Option<f64>,
    failover_seconds: Option<f64>,
    failover_bound_seconds: f64,
    double_reconciles: u64,
    keys_never_reconciled: u64,
    events_lost: u64,
    cache_matches_server: bool,
}

impl FaultJson {
    fn of(f: &FaultRun) -> FaultJson {
        FaultJson {
            replicas: f.replicas,
            lease_seconds: f.lease_seconds,
            takeover_seconds: f.takeover_seconds,
            failover_seconds: f.failover_seconds,
            failover_bound_seconds: f.failover_bound_seconds(),
            double_reconciles: f.double_reconciles,
            keys_never_reconciled: f.keys_never_reconciled,
            events_lost: f.events_lost,
            cache_matches_server: f.cache_matches_server,
        }
    }
}

impl Json {
    /// The object for `x`.
    pub(crate) fn of(x: &ReplicasRow) -> Json {
        let sharded = x
            .sizing
            .iter()
            .map(|s| {
                let sizing = SizingJson {
                    store_bytes_max: s.store_bytes.iter().copied().max().unwrap_or(0),
                    store_bytes_total: s.store_bytes.iter().sum(),
                    rss_mb_max: s.rss_mb.iter().copied().fold(0.0, f64::max),
                };
                (s.replicas.to_string(), sizing)
            })
            .collect();
        Json {
            pods: x.pods,
            sharded,
            store_ratio_3_over_1: x.store_ratio,
            kill: x.kill.as_ref().map(FaultJson::of),
            leader: x.leader.as_ref().map(FaultJson::of),
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "not complete".to_owned(), |s| format!("{s:.2} s"))
}

/// The RESULTS.md section.
pub fn section(o: &mut String, x: &ReplicasRow) {
    let _ = writeln!(o, "## 12. Replicas: sharded caches, takeover and leader failover\n");
    let _ = writeln!(
        o,
        "`loadgen run --replicas N`: N `loadgen replica` processes, each a kcache informer and a no-op \
         `Controller<Pod>`, over {} preloaded pods and 2,000 writes/s. Sharded, they share the pods through \
         a ring of Leases (`kcache::shard`), each caching only its slice through the server-side shard \
         selector; store bytes are taken once the ring settled, RSS right after each replica's sync. The kill \
         run SIGKILLs one of {KILL_REPLICAS} sharded replicas {KILL_AT_SECONDS} s into the writes with a \
         {LEASE_SECONDS} s lease; the leader run elects one leader among {LEADER_REPLICAS} replicas on a Lease \
         (each caches every pod) and SIGKILLs the leader. Takeover: until the survivors reconciled every key \
         the victim owned; failover: until the first reconcile by a survivor.\n",
        x.pods
    );
    let _ = writeln!(o, "| replicas | store per replica | RSS after sync per replica | cache |\n|---|---|---|---|");
    for s in &x.sizing {
        let store: Vec<String> = s.store_bytes.iter().map(|&b| mib(b)).collect();
        let rss: Vec<String> = s.rss_mb.iter().map(|mb| format!("{mb:.1} MiB")).collect();
        let cache = if s.cache.is_empty() { "everything (one engine)" } else { &s.cache };
        let _ = writeln!(o, "| {} | {} | {} | {cache} |", s.replicas, store.join(" / "), rss.join(" / "));
    }
    let ratio = x.store_ratio.map_or_else(|| "not measured".to_owned(), |r| format!("{r:.2}x"));
    let _ = writeln!(o, "\nLargest store of 3 sharded replicas over one replica's store: {ratio}.\n");
    let _ = writeln!(o, "| run | takeover | failover (bound) | double reconciles | keys never reconciled | events lost | caches match server |\n|---|---|---|---|---|---|---|");
    for (name, run, elected) in [("kill 1 of 3 sharded", &x.kill, false), ("kill the leader of 2", &x.leader, true)] {
        match run {
            Some(f) => {
                let failover = if elected {
                    format!("{} ({:.2} s)", seconds(f.failover_seconds), f.failover_bound_seconds())
                } else {
                    "—".to_owned()
                };
                let _ = writeln!(
                    o,
                    "| {name} | {} | {failover} | {} | {} | {} | {} |",
                    seconds(f.takeover_seconds),
                    f.double_reconciles,
                    f.keys_never_reconciled,
                    f.events_lost,
                    f.cache_matches_server
                );
            }
            None => {
                let _ = writeln!(o, "| {name} | failed | — | — | — | — | — |");
            }
        }
    }
    let _ = writeln!(o);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::synthetic::replicas_outcomes;

    #[test]
    fn the_row_takes_each_runs_figures_and_the_three_over_one_store_ratio() {
        let row = ReplicasRow::build(&replicas_outcomes()).expect("a row");
        assert_eq!(row.pods, 10_000);
        assert_eq!(row.sizing.iter().map(|s| s.replicas).collect::<Vec<_>>(), [1, 2, 3]);
        // Largest of 3 replicas 12 MiB over one's 30 MiB.
        assert_eq!(row.store_ratio, Some(0.4));
        let kill = row.kill.as_ref().unwrap();
        assert_eq!((kill.takeover_seconds, kill.double_reconciles, kill.cache_matches_server), (Some(6.5), 0, true));
        let leader = row.leader.as_ref().unwrap();
        assert_eq!(leader.failover_seconds, Some(4.0));
        // A 5 s lease, retry period 2/15 of it.
        assert!((leader.failover_bound_seconds() - (5.0 + 2.0 / 3.0)).abs() < 1e-6, "{}", leader.failover_bound_seconds());
        assert_eq!(row.fault_total(|f| f.events_lost as f64), Some(1.0));
        let mut md = String::new();
        section(&mut md, &row);
        assert!(md.contains("| 3 | 12.0 MiB / 10.0 MiB / 8.0 MiB | 50.0 MiB / 48.0 MiB / 46.0 MiB | slice |"), "{md}");
        assert!(md.contains("Largest store of 3 sharded replicas over one replica's store: 0.40x."), "{md}");
        assert!(md.contains("| kill the leader of 2 | 5.00 s | 4.00 s (5.67 s) | 0 | 0 | 1 | true |"), "{md}");
        let j = serde_json::to_value(Json::of(&row)).unwrap();
        assert_eq!(j["sharded"]["3"]["store_bytes_max"], serde_json::json!(12 * 1_048_576));
        assert_eq!(j["sharded"]["1"]["store_bytes_total"], serde_json::json!(30 * 1_048_576));
        assert_eq!(j["store_ratio_3_over_1"], serde_json::json!(0.4));
        assert_eq!(j["kill"]["takeover_seconds"], serde_json::json!(6.5));
        assert_eq!(j["leader"]["failover_seconds"], serde_json::json!(4.0));
        assert_eq!(j["leader"]["events_lost"], serde_json::json!(1));
    }

    #[test]
    fn no_report_no_row_and_a_failed_run_is_unmeasured() {
        assert_eq!(ReplicasRow::build(&[]), None);
        let mut v = replicas_outcomes();
        v.retain(|o| o.job.variant != KILL && o.job.param != "1");
        let row = ReplicasRow::build(&v).unwrap();
        assert_eq!((row.kill.as_ref(), row.store_ratio), (None, None));
        let mut md = String::new();
        section(&mut md, &row);
        assert!(md.contains("| kill 1 of 3 sharded | failed |"), "{md}");
    }

    #[test]
    fn jobs_kill_at_five_seconds_with_a_five_second_lease_and_elect_a_leader_once() {
        let jobs = jobs(2_000, 8.0);
        let ids: Vec<String> = jobs.iter().map(Job::id).collect();
        assert_eq!(ids, ["replicas-1-sharded-0", "replicas-2-sharded-0", "replicas-3-sharded-0", "replicas-3-kill-0", "replicas-2-leader-0"]);
        let has = |j: &Job, a: &str, b: &str| j.args.windows(2).any(|p| p[0] == a && p[1] == b);
        assert!(jobs.iter().all(|j| has(j, "--pods", "2000") && has(j, "--write-qps", "2000") && j.args.contains(&"--preload".to_owned())));
        assert!(has(&jobs[3], "--kill-replica-at", "5") && has(&jobs[3], "--lease-duration", "5"));
        assert!(jobs[4].args.contains(&"--leader-election".to_owned()) && has(&jobs[4], "--replicas", "2"));
        assert!(jobs.iter().filter(|j| j.args.contains(&"--leader-election".to_owned())).count() == 1);
    }
}
