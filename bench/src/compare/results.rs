//! From reports to results: the [`Results`] of a comparison, built from its
//! outcomes by [`build`]. A pure function of the outcomes, so it is tested on
//! synthetic reports.
//!
//! # Guarantees
//! * A ratio kcache/kube-rs is the median of per-repeat ratios of runs made next
//!   to each other in the same comparison ([`super::plan`]), never a ratio of
//!   medians from different times.
//! * A figure that could not be measured (its job failed) is `None` here and
//!   `null` in JSON; it is never replaced by a guess.

use kcache_loadgen::report::Report;

use super::compressed::CompressedRows;
use super::exec::Outcome;
use super::goals::{Goal, goals};
use super::machine::Machine;
use super::plan::Group;
use super::replicas::ReplicasRow;
use super::rows::{Engines, Reads, ReconcileRow, ResyncRow, SYNC_VARIANTS, SimRow, SyncRow, TypedGetRow, WriteRow, WriteSide};
use super::stats::Index;

/// A job that failed or whose checks failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failure {
    /// The job's id ([`super::plan::Job::id`]), or `sim`.
    pub job: String,
    /// Why.
    pub error: String,
}

/// Everything a comparison measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    /// Where it ran.
    pub machine: Machine,
    /// `--quick`.
    pub quick: bool,
    /// Wall time of the whole comparison, seconds.
    pub wall_seconds: f64,
    /// Reads.
    pub reads: Reads,
    /// Writes, per handler style.
    pub writes: Vec<WriteRow>,
    /// Sync-only runs, per size.
    pub sync: Vec<SyncRow>,
    /// Resync runs.
    pub resync: Vec<ResyncRow>,
    /// The overload scenario.
    pub overload: Engines<Option<WriteSide>>,
    /// The scale run (`loadgen run --pods 100000 --write-qps 2000`), if any.
    pub scale: Option<Report>,
    /// The simulator on its own; `None` when not measured.
    pub sim: Option<SimRow>,
    /// Typed Gets, kcache's typed view against kube-rs's `Store<Pod>`; `None` when
    /// not measured.
    pub typed_get: Option<TypedGetRow>,
    /// Reconcile throughput, kcache's `Controller<Pod>` against kube-rs's; `None`
    /// when not measured.
    pub reconcile: Option<ReconcileRow>,
    /// The compressed store beside the uncompressed one and kube-rs.
    pub compressed: CompressedRows,
    /// The replicas scenario; `None` when none of its runs produced a report.
    pub replicas: Option<ReplicasRow>,
    /// Goals.
    pub goals: Vec<Goal>,
    /// Jobs that failed or whose checks failed.
    pub failures: Vec<Failure>,
    /// Runs that produced a report.
    pub runs: usize,
}

/// Builds the results of a comparison.
pub fn build(outcomes: &[Outcome], machine: Machine, quick: bool, wall_seconds: f64) -> Results {
    let ix = Index::new(outcomes);
    let writes: Vec<WriteRow> = ["sync", "channel", "workqueue"].iter().filter_map(|h| WriteRow::build(&ix, h)).collect();
    let sizes_of = |variants: &[&str]| {
        let mut sizes: Vec<u64> = outcomes
            .iter()
            .filter(|o| o.job.group == Group::Sync && variants.contains(&o.job.variant.as_str()))
            .filter_map(|o| o.job.param.parse().ok())
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    };
    // The compressed store's run at scale has no row of its own in sections 3 and 4.
    let sync: Vec<SyncRow> = sizes_of(&SYNC_VARIANTS).iter().map(|&pods| SyncRow::build(&ix, pods)).collect();
    let mut resync: Vec<ResyncRow> = outcomes.iter().filter_map(ResyncRow::from).collect();
    resync.sort_by(|a, b| a.variant.cmp(&b.variant).then(a.period.cmp(&b.period)));
    let failures = outcomes
        .iter()
        .filter_map(|o| o.error.as_ref().map(|e| Failure { job: o.job.id(), error: e.clone() }))
        .collect();
    let mut results = Results {
        machine,
        quick,
        wall_seconds,
        reads: Reads::build(&ix),
        writes,
        sync,
        resync,
        overload: Engines::by_variant(|v| ix.first(Group::Overload, "sync", v).map(WriteSide::from)),
        scale: outcomes.iter().find(|o| o.job.group == Group::Scale).and_then(|o| o.report.clone()),
        sim: None,
        typed_get: None,
        reconcile: None,
        compressed: CompressedRows::build(&ix, &sizes_of(&[super::plan::COMPRESSED])),
        replicas: ReplicasRow::build(outcomes),
        goals: Vec::new(),
        failures,
        runs: outcomes.iter().filter(|o| o.report.is_some()).count(),
    };
    results.goals = goals(&results);
    results
}

impl Results {
    /// The sync-only row for `pods`.
    pub fn sync_row(&self, pods: u64) -> Option<&SyncRow> {
        self.sync.iter().find(|r| r.pods == pods)
    }

    /// The writes row of `handler`.
    pub fn write_row(&self, handler: &str) -> Option<&WriteRow> {
        self.writes.iter().find(|r| r.handler == handler)
    }

    /// The smallest sync-only size (10k in both plans).
    pub fn small_sync(&self) -> Option<&SyncRow> {
        self.sync.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::json::to_json;
    use crate::compare::plan::Job;
    use crate::compare::stats::MIB;
    use crate::compare::synthetic::{machine, outcome, overload_report, pct, scale_report, sim_figures, synthetic};
    use serde_json::json;

    #[test]
    fn ratios_are_medians_of_pairwise_ratios_of_the_same_repeat() {
        let r = build(&synthetic(), machine(), false, 1.0);
        let s = r.sync_row(10_000).unwrap();
        // 30/200, 30/400, 30/210 -> median 30/210.
        assert!((s.memory_ratio.unwrap() - 30.0 / 210.0).abs() < 1e-6, "{:?}", s.memory_ratio);
        // Medians per variant: kube-rs 210 MiB.
        assert!((s.variants["kube-rs"].cache_bytes - 210.0 * MIB).abs() < 1.0);
        assert_eq!(s.variants["kcache"].runs, 3);
        assert!((s.sync_ratio.unwrap() - 0.25).abs() < 1e-9);
        assert!((s.sync_ratio_streaming.unwrap() - 0.8 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn reads_repeats_give_median_percentiles_and_the_median_of_paired_ratios() {
        let mut v = synthetic();
        v.retain(|o| o.job.group != Group::Reads);
        let reads = |get: f64| Report {
            cache_get_ns: pct(get),
            // 97%, 98% or 99% of the Gets found their pod.
            cache_get_hit_rate: Some(0.97 + (get / 100.0).floor() % 3.0 / 100.0),
            cache_list_1000_ns: pct(get * 10.0),
            direct_get_ms: pct(0.5),
            ..Report::default()
        };
        // Run 1 is slow for both engines (a noisy moment): the paired ratios are
        // 0.5, 0.8 and 0.4, while the medians alone would give 300 / 600.
        for (rep, k, b) in [(0, 300.0, 600.0), (1, 800.0, 1_000.0), (2, 200.0, 500.0)] {
            v.push(outcome(Group::Reads, "", "kcache", rep, reads(k)));
            v.push(outcome(Group::Reads, "", "kube-rs", rep, reads(b)));
        }
        let r = build(&v, machine(), false, 1.0);
        assert_eq!(r.reads.get.kcache.map(|l| (l.p99, l.p50, l.samples)), Some((300.0, 150.0, 300)));
        assert_eq!(r.reads.get.kube_rs.map(|l| l.p99), Some(600.0));
        assert_eq!(r.reads.get_p99_ratio, Some(0.5));
        assert_eq!(r.reads.get_p99_by_repeat.iter().map(|e| [e.kcache, e.kube_rs]).collect::<Vec<_>>(), vec![[Some(300.0), Some(600.0)], [Some(800.0), Some(1_000.0)], [Some(200.0), Some(500.0)]]);
        let md = crate::compare::markdown::results_md(&r, &[]);
        assert!(md.contains("Get p99 of each run, kcache / kube-rs (ratio): 300 ns / 600 ns (0.50x)"), "{md}");
        // Hit rates: kcache 97%, 99%, 99% (median 99%); kube-rs 97%, 98%, 99% (98%).
        let Engines { kcache: k, kube_rs: b } = r.reads.get_hit_rate.map(|v| (v.unwrap_or(0.0) * 100.0).round());
        assert_eq!((k, b), (99.0, 98.0));
        assert!(md.contains("writes' deletes make misses): kcache 99.00%, kube-rs 98.00%."), "{md}");
        assert_eq!(to_json(&r).unwrap()["get_hit_rate"]["kube_rs"].as_f64().map(|v| (v * 100.0).round()), Some(98.0));
    }

    #[test]
    fn a_failed_job_leaves_its_figures_unmeasured() {
        let mut outcomes = synthetic();
        outcomes.retain(|o| !(o.job.group == Group::Reads && o.job.variant == "kube-rs"));
        outcomes.push(Outcome {
            job: Job { group: Group::Reads, param: String::new(), variant: "kube-rs".into(), rep: 0, args: vec![] },
            report: None,
            error: Some("boom".into()),
            wall_seconds: 0.0,
        });
        let r = build(&outcomes, machine(), true, 1.0);
        let g = r.goals.iter().find(|g| g.name.starts_with("Get one pod")).unwrap();
        assert_eq!((g.measured, g.met(), g.verdict().as_str()), (None, None, "not measured"));
        assert_eq!(r.failures, vec![Failure { job: "reads-kube-rs-0".to_owned(), error: "boom".to_owned() }]);
        let j = to_json(&r).unwrap();
        assert!(j["get_p99_ns"]["kube_rs"].is_null());
        assert_eq!(j["get_p99_ns"]["kcache"], json!(100.0));
    }

    #[test]
    fn repeated_sync_writes_give_the_median_of_paired_ratios_and_median_runs() {
        // kcache p99 4, 3, 9 ms; kube-rs 10, 5, 8 ms; wire 3 ms under every kcache run.
        // Paired ratios 0.4, 0.6, 1.125 (median 0.6; the ratio of the medians would be
        // 0.5, the first pair alone 0.4); floors 0.3, 0.6, 0.375 (median 0.375).
        let mut outcomes: Vec<Outcome> = synthetic().into_iter().filter(|o| !(o.job.group == Group::Writes && o.job.param == "sync")).collect();
        let w = |p99: f64, cpu: f64| Report {
            pods: 10_000,
            event_latency_ms: pct(p99),
            wire_event_latency_ms: pct(3.0),
            cpu_seconds: cpu,
            write_qps_achieved: 2000.0,
            cache_matches_server: true,
            ..Report::default()
        };
        for (rep, (k, b)) in [(4.0, 10.0), (3.0, 5.0), (9.0, 8.0)].into_iter().enumerate() {
            outcomes.push(outcome(Group::Writes, "sync", "kcache", rep, w(k, rep as f64)));
            outcomes.push(outcome(Group::Writes, "sync", "kube-rs", rep, w(b, 10.0 + rep as f64)));
        }
        let r = build(&outcomes, machine(), false, 1.0);
        let row = r.write_row("sync").unwrap();
        assert_eq!(row.p99_by_repeat.iter().map(|e| [e.kcache, e.kube_rs]).collect::<Vec<_>>(), vec![[Some(4.0), Some(10.0)], [Some(3.0), Some(5.0)], [Some(9.0), Some(8.0)]]);
        assert_eq!(row.p99_ratio, Some(0.6));
        assert_eq!(row.floor_ratio, Some(0.375));
        // Each side is one whole run: the one with the median p99 (kcache rep 0, kube-rs rep 2).
        let Engines { kcache: k, kube_rs: b } = &row.sides;
        assert_eq!((k.as_ref().unwrap().p99_ms, k.as_ref().unwrap().cpu_seconds), (4.0, 0.0));
        assert_eq!((b.as_ref().unwrap().p99_ms, b.as_ref().unwrap().cpu_seconds), (8.0, 12.0));
        let goal = r.goals.iter().find(|g| g.name.starts_with("event p99 at 2,000")).unwrap();
        assert_eq!((goal.measured, goal.floor), (Some(0.6), Some(0.375)));
        let j = to_json(&r).unwrap();
        assert_eq!(j["event_p99_ms_2000qps"]["ratio"], json!(0.6));
        assert_eq!(j["event_p99_ms_2000qps"]["floor"], json!(0.375));
        assert_eq!(j["event_p99_ms_2000qps"]["runs"], json!(3));
        assert_eq!(j["by_handler_2000qps"]["sync"]["event_p99_ms"]["ratio"], json!(0.6));
        let md = crate::compare::markdown::results_md(&r, &[]);
        assert!(md.contains("| sync | 0.60x | 0.38x |"), "{md}");
        assert!(md.contains("Runs per engine, interleaved (kcache, kube-rs, kcache, ...): the sync handler 3 times, the other styles once."), "{md}");
        assert!(
            md.contains("Event p99 of each sync pair, kcache / kube-rs (ratio; floor): 4.00 ms / 10.00 ms (0.40x; floor 0.30x); 3.00 ms / 5.00 ms (0.60x; floor 0.60x); 9.00 ms / 8.00 ms (1.12x; floor 0.38x)."),
            "{md}"
        );
        // Styles run once keep their single pair.
        assert_eq!(r.write_row("channel").unwrap().p99_ratio, Some(0.4));
        assert!(!md.contains("Event p99 of each channel pair"), "{md}");
    }

    #[test]
    fn a_scale_run_and_the_simulator_appear_in_goals_json_and_markdown() {
        let mut outcomes = synthetic();
        outcomes.push(outcome(Group::Scale, "100000", "kcache", 0, scale_report()));
        outcomes.push(outcome(Group::Overload, "sync", "kcache", 0, overload_report(100.0, 150.0)));
        outcomes.push(outcome(Group::Overload, "sync", "kube-rs", 0, overload_report(400.0, 900.0)));
        let mut r = build(&outcomes, machine(), false, 1.0);
        let bound = r.goals.iter().find(|g| g.name.starts_with("peak RSS over RSS after sync")).unwrap();
        assert_eq!((bound.measured, bound.met()), (Some(1.0), Some(true)));
        let goal = r.goals.iter().find(|g| g.name.starts_with("events lost in the 100k")).unwrap();
        assert_eq!((goal.measured, goal.met()), (Some(0.0), Some(true)));
        r.sim = Some(SimRow::from(&sim_figures()));
        let row = r.sim.as_ref().unwrap();
        assert!((row.paced.rate - 2_000.0).abs() < 1e-6 && (row.paced.cores - 0.5).abs() < 1e-9);
        assert!((row.list.p50 - 50e6).abs() / 50e6 < 0.01, "{}", row.list.p50);
        let j = to_json(&r).unwrap();
        assert_eq!(j["scale"]["pods"], json!(100_000));
        assert_eq!(j["scale"]["events_lost"], json!(0));
        assert!((j["sim"]["paced_2000"]["writes_per_second"].as_f64().unwrap() - 2_000.0).abs() < 1e-6);
        let md = crate::compare::markdown::results_md(&r, &[]);
        assert!(md.contains("## 6. Overload: a handler 10x slower than the writes"), "{md}");
        // The absolute latency goal is shown in milliseconds, not as a ratio.
        assert!(md.contains("| kcache event p99 at 2,000 writes/s (sync handler), ms | < 10 ms | 4.00 ms | **met** |"), "{md}");
        assert_eq!(j["overload"]["kube_rs"]["peak_rss_mb"], json!(900.0));
        assert!(md.contains("## 7. Scale: 100000 pods at 2,000 writes/s"), "{md}");
        assert!(md.contains("## 8. The simulated API server on its own"), "{md}");
        assert!(md.contains("| 2,000/s target | 2000 |"), "{md}");
    }
}
