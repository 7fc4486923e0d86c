//! The `docs/results.json` document: a comparison's headline figures in the
//! shape other tools and the README read, serialised from the structs below.
//!
//! # Guarantees
//! * Keys, nesting and value types stay those the file has always had (a test
//!   holds them to `testdata/results_json_paths.txt`); keys are sorted.
//! * A figure that could not be measured is `null`, never a guess.

use std::collections::BTreeMap;

use kcache_loadgen::report::Report;
use serde::Serialize;
use serde_json::Value;

use super::goals::{Goal, OVERLOAD_BOUND_WIRE};
use super::plan::OVERLOAD_HANDLER_COST_US;
use super::results::{Failure, Results};
use super::rows::{Engines, Lat, ReadLatencies, ReconcileRow, ResyncRow, SimRow, SimWrites, SyncRow, TypedGetRow, WriteRow, WriteSide};
use super::stats::ratio_of;

/// The whole document.
#[derive(Serialize)]
struct Document<'a> {
    quick: bool,
    date: &'a str,
    cores: usize,
    cpu_model: &'a str,
    build_profile: &'a str,
    /// Whole seconds, as a float.
    wall_seconds: f64,
    runs: usize,
    /// `memory_10k_bytes`, ...: one per sync-only size.
    #[serde(flatten)]
    memory: BTreeMap<String, Memory>,
    /// `sync_10k_seconds`, ...: one per sync-only size.
    #[serde(flatten)]
    sync: BTreeMap<String, SyncTime>,
    get_p99_ns: ReadP99,
    get_hit_rate: PerEngine,
    list1000_p99_ns: ReadP99,
    event_p99_ms_2000qps: SyncHandlerEvents,
    peak_rss_mb_2000qps: Compared,
    by_handler_2000qps: BTreeMap<&'a str, Handler>,
    resync: Vec<Resync<'a>>,
    overload: Overload<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scale: Option<Scale>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sim: Option<Sim>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replicas: Option<super::replicas::Json>,
    typed_get_p99_ns: TypedP99,
    /// Reconcile-all rate (reconciles/s); the ratio is kcache / kube-rs, higher is better.
    reconcile_per_s: Compared,
    /// The same rate with kcache's controller keeping every decoded object
    /// (`kcache`), beside kube-rs's from the same rounds.
    reconcile_per_s_every_decode_kept: Compared,
    /// Seconds until every pod was reconciled once, the initial LIST included.
    reconcile_initial_seconds: Compared,
    /// The compressed store's figures: `memory_10k_compressed_bytes`, `rss_1m_compressed_mb`, ...
    #[serde(flatten)]
    compressed: super::compressed::JsonFields,
    goals: Vec<GoalEntry<'a>>,
    failures: Vec<FailureEntry<'a>>,
}

/// One figure of each engine.
#[derive(Serialize)]
struct PerEngine {
    kcache: Option<f64>,
    kube_rs: Option<f64>,
}

impl PerEngine {
    /// Non-finite values become `None`.
    fn finite(e: Engines<Option<f64>>) -> PerEngine {
        let e = e.map(|v| v.filter(|v| v.is_finite()));
        PerEngine { kcache: e.kcache, kube_rs: e.kube_rs }
    }
}

/// One figure of each engine and kcache's over kube-rs's.
#[derive(Serialize)]
struct Compared {
    kcache: Option<f64>,
    kube_rs: Option<f64>,
    ratio: Option<f64>,
}

impl Compared {
    fn of(e: Engines<Option<f64>>) -> Compared {
        Compared { kcache: e.kcache, kube_rs: e.kube_rs, ratio: ratio_of(e.kcache, e.kube_rs) }
    }
}

/// A read's p99 (ns); the ratio is the goal's, the median of paired ratios.
#[derive(Serialize)]
struct ReadP99 {
    kcache: Option<f64>,
    kube_rs: Option<f64>,
    direct: Option<f64>,
    ratio: Option<f64>,
}

impl ReadP99 {
    fn of(l: &ReadLatencies, ratio: Option<f64>) -> ReadP99 {
        let p99 = |l: Option<Lat>| l.map(|l| l.p99);
        ReadP99 { kcache: p99(l.kcache), kube_rs: p99(l.kube_rs), direct: p99(l.direct), ratio }
    }
}

/// Typed Get p99 (ns): kcache's typed view reading kept objects, kube-rs's
/// `Store<Pod>::get` on the same keys, their ratio (the median of the rounds'), and
/// kcache reading objects it does not keep (a decode each).
#[derive(Serialize)]
struct TypedP99 {
    kcache: Option<f64>,
    kube_rs: Option<f64>,
    ratio: Option<f64>,
    kcache_decode: Option<f64>,
}

impl TypedP99 {
    fn of(row: Option<&TypedGetRow>) -> TypedP99 {
        TypedP99 {
            kcache: row.map(|r| r.kcache.p99),
            kube_rs: row.map(|r| r.kube_rs.p99),
            ratio: row.and_then(|r| r.p99_ratio),
            kcache_decode: row.map(|r| r.kcache_decode.p99),
        }
    }
}

impl Compared {
    /// A reconcile figure of each engine (medians over rounds) and the median of the
    /// rounds' ratios; all `null` when not measured.
    fn reconcile(row: Option<&ReconcileRow>, of: fn(&ReconcileRow) -> (Engines<f64>, Option<f64>)) -> Compared {
        let Some((e, ratio)) = row.map(of) else { return Compared { kcache: None, kube_rs: None, ratio: None } };
        let e = e.map(|v| Some(v).filter(|v| v.is_finite()));
        Compared { kcache: e.kcache, kube_rs: e.kube_rs, ratio }
    }
}

/// Memory to hold one size's pods, bytes.
#[derive(Serialize)]
struct Memory {
    kcache: Option<f64>,
    kube_rs: Option<f64>,
    wire: Option<f64>,
    kcache_strip_managed_fields: Option<f64>,
    kcache_store_json: Option<f64>,
    ratio: Option<f64>,
    runs: usize,
}

/// Initial sync of one size's pods, seconds.
#[derive(Serialize)]
struct SyncTime {
    kcache: Option<f64>,
    kube_rs: Option<f64>,
    kcache_streaming: Option<f64>,
    kube_rs_streaming: Option<f64>,
    ratio: Option<f64>,
    runs: usize,
}

/// The sync handler's event p99 (ms): the goal's ratio (median of paired
/// ratios), the floor under it, and the raw watch of kcache's median run.
#[derive(Serialize)]
struct SyncHandlerEvents {
    kcache: Option<f64>,
    kube_rs: Option<f64>,
    ratio: Option<f64>,
    wire: Option<f64>,
    floor: Option<f64>,
    runs: usize,
}

/// One handler style's event p99 (ms), its ratio and floor.
#[derive(Serialize)]
struct HandlerEvents {
    kcache: Option<f64>,
    kube_rs: Option<f64>,
    ratio: Option<f64>,
    floor: Option<f64>,
}

/// One handler style at 2,000 writes/s.
#[derive(Serialize)]
struct Handler {
    event_p99_ms: HandlerEvents,
    wire_event_p99_ms: Compared,
    peak_rss_mb: Compared,
    rss_growth: PerEngine,
    writes_per_second: Compared,
}

impl Handler {
    fn of(w: &WriteRow) -> Handler {
        let side = |f: fn(&WriteSide) -> Option<f64>| w.sides.as_ref().map(|s| s.as_ref().and_then(f));
        let p99 = side(|s| Some(s.p99_ms));
        Handler {
            event_p99_ms: HandlerEvents { kcache: p99.kcache, kube_rs: p99.kube_rs, ratio: w.p99_ratio, floor: w.floor_ratio },
            wire_event_p99_ms: Compared::of(side(|s| s.wire_p99_ms.filter(|v| v.is_finite()))),
            peak_rss_mb: Compared::of(side(|s| Some(s.peak_rss_mb))),
            rss_growth: PerEngine::finite(side(|s| s.growth)),
            writes_per_second: Compared::of(side(|s| Some(s.qps))),
        }
    }
}

/// One resync run.
#[derive(Serialize)]
struct Resync<'a> {
    engine: &'a str,
    period_seconds: u64,
    write_seconds: f64,
    cpu_seconds: f64,
    resync_events: u64,
    list_calls: Option<u64>,
    watch_calls: Option<u64>,
    get_calls: Option<u64>,
}

impl Resync<'_> {
    fn of(x: &ResyncRow) -> Resync<'_> {
        Resync {
            engine: &x.variant,
            period_seconds: x.period,
            write_seconds: x.seconds,
            cpu_seconds: x.cpu_seconds,
            resync_events: x.resync_events,
            list_calls: x.api_calls.map(|c| c.list),
            watch_calls: x.api_calls.map(|c| c.watch),
            get_calls: x.api_calls.map(|c| c.get),
        }
    }
}

/// The overload scenario.
#[derive(Serialize)]
struct Overload<'a> {
    handler_cost_us: u64,
    bound_wire_multiple: f64,
    kcache: Option<OverloadSide<'a>>,
    kube_rs: Option<OverloadSide<'a>>,
}

/// One engine under overload.
#[derive(Serialize)]
struct OverloadSide<'a> {
    writes_per_second: f64,
    rss_mb_after_sync: f64,
    peak_rss_mb: f64,
    rss_growth: Option<f64>,
    events_expected: u64,
    events_received: u64,
    events_lost: u64,
    cache_matches_server: bool,
    event_p99_ms: f64,
    wire_bytes: u64,
    rss_mb_timeline: &'a [f64],
}

impl OverloadSide<'_> {
    fn of(s: &WriteSide) -> OverloadSide<'_> {
        OverloadSide {
            writes_per_second: s.qps,
            rss_mb_after_sync: s.rss_after_sync_mb,
            peak_rss_mb: s.peak_rss_mb,
            rss_growth: s.growth,
            events_expected: s.events_expected,
            events_received: s.events_received,
            events_lost: s.lost,
            cache_matches_server: s.matches,
            event_p99_ms: s.p99_ms,
            wire_bytes: s.wire_bytes,
            rss_mb_timeline: &s.timeline,
        }
    }
}

/// The scale run.
#[derive(Serialize)]
struct Scale {
    pods: u64,
    write_qps_target: f64,
    write_qps_achieved: f64,
    sync_seconds: f64,
    events_expected: u64,
    events_received: u64,
    events_lost: u64,
    cache_matches_server: bool,
    event_latency_ms: EventLatency,
    rss_mb_after_sync: f64,
    rss_mb_peak_engine: f64,
    store_bytes: u64,
    wire_bytes: u64,
    cpu_seconds: f64,
}

/// Event latency percentiles, ms.
#[derive(Serialize)]
struct EventLatency {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Scale {
    fn of(x: &Report) -> Scale {
        Scale {
            pods: x.pods,
            write_qps_target: x.write_qps_target,
            write_qps_achieved: x.write_qps_achieved,
            sync_seconds: x.sync_seconds,
            events_expected: x.events_expected,
            events_received: x.events_received,
            events_lost: x.events_lost,
            cache_matches_server: x.cache_matches_server,
            event_latency_ms: EventLatency { p50: x.event_latency_ms.p50, p99: x.event_latency_ms.p99, max: x.event_latency_ms.max },
            rss_mb_after_sync: x.rss_mb_after_sync,
            rss_mb_peak_engine: x.rss_mb_peak_engine,
            store_bytes: x.store_bytes,
            wire_bytes: x.wire_bytes,
            cpu_seconds: x.cpu_seconds,
        }
    }
}

/// The simulator on its own; latencies in ms.
#[derive(Serialize)]
struct Sim {
    pods: usize,
    list_bytes: u64,
    list_p50_ms: f64,
    list_p99_ms: f64,
    list_metadata_bytes: u64,
    list_metadata_p50_ms: f64,
    list_metadata_p99_ms: f64,
    paced_2000: SimWritePhase,
    flat_out: SimWritePhase,
}

/// One write phase against the simulator; latencies in ms.
#[derive(Serialize)]
struct SimWritePhase {
    writes_per_second: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    cores: f64,
    events_expected: u64,
    events_received: u64,
}

impl SimWritePhase {
    fn of(w: &SimWrites) -> SimWritePhase {
        SimWritePhase {
            writes_per_second: w.rate,
            latency_p50_ms: w.latency.p50 / 1e6,
            latency_p99_ms: w.latency.p99 / 1e6,
            cores: w.cores,
            events_expected: w.events_expected,
            events_received: w.events_received,
        }
    }
}

impl Sim {
    fn of(x: &SimRow) -> Sim {
        Sim {
            pods: x.pods,
            list_bytes: x.list_bytes,
            list_p50_ms: x.list.p50 / 1e6,
            list_p99_ms: x.list.p99 / 1e6,
            list_metadata_bytes: x.list_metadata_bytes,
            list_metadata_p50_ms: x.list_metadata.p50 / 1e6,
            list_metadata_p99_ms: x.list_metadata.p99 / 1e6,
            paced_2000: SimWritePhase::of(&x.paced),
            flat_out: SimWritePhase::of(&x.flat_out),
        }
    }
}

/// One goal.
#[derive(Serialize)]
struct GoalEntry<'a> {
    name: &'a str,
    goal: &'a str,
    limit: f64,
    measured: Option<f64>,
    met: Option<bool>,
}

impl GoalEntry<'_> {
    fn of(g: &Goal) -> GoalEntry<'_> {
        GoalEntry { name: &g.name, goal: &g.target, limit: g.limit, measured: g.measured, met: g.met() }
    }
}

/// One failed job.
#[derive(Serialize)]
struct FailureEntry<'a> {
    job: &'a str,
    error: &'a str,
}

impl FailureEntry<'_> {
    fn of(f: &Failure) -> FailureEntry<'_> {
        FailureEntry { job: &f.job, error: &f.error }
    }
}

/// The `memory_*` and `sync_*` entries of one sync-only size, keyed by their names.
fn sync_entries(row: &SyncRow) -> ((String, Memory), (String, SyncTime)) {
    let tag = format!("{}k", row.pods / 1000);
    let bytes = |v: &str| row.variants.get(v).map(|x| x.cache_bytes);
    let seconds = |v: &str| row.variants.get(v).map(|x| x.sync_seconds);
    let memory = Memory {
        kcache: bytes("kcache"),
        kube_rs: bytes("kube-rs"),
        wire: row.wire_bytes,
        kcache_strip_managed_fields: bytes("kcache-strip"),
        kcache_store_json: row.store_bytes,
        ratio: row.memory_ratio,
        runs: row.kcache_runs(),
    };
    let sync = SyncTime {
        kcache: seconds("kcache"),
        kube_rs: seconds("kube-rs"),
        kcache_streaming: seconds("kcache-streaming"),
        kube_rs_streaming: seconds("kube-rs-streaming"),
        ratio: row.sync_ratio,
        runs: row.kcache_runs(),
    };
    ((format!("memory_{tag}_bytes"), memory), (format!("sync_{tag}_seconds"), sync))
}

impl<'a> Document<'a> {
    fn of(r: &'a Results) -> Document<'a> {
        let (memory, sync) = r.sync.iter().map(sync_entries).unzip();
        let sync_w = r.write_row("sync");
        let sync_side = |f: fn(&WriteSide) -> f64| {
            sync_w.map_or_else(Engines::default, |w| w.sides.as_ref().map(|s| s.as_ref().map(f)))
        };
        let event = sync_side(|s| s.p99_ms);
        Document {
            quick: r.quick,
            date: &r.machine.date,
            cores: r.machine.cores,
            cpu_model: &r.machine.cpu_model,
            build_profile: &r.machine.build_profile,
            wall_seconds: r.wall_seconds.round(),
            runs: r.runs,
            memory,
            sync,
            get_p99_ns: ReadP99::of(&r.reads.get, r.reads.get_p99_ratio),
            get_hit_rate: PerEngine { kcache: r.reads.get_hit_rate.kcache, kube_rs: r.reads.get_hit_rate.kube_rs },
            list1000_p99_ns: ReadP99::of(&r.reads.list, r.reads.list_p99_ratio),
            event_p99_ms_2000qps: SyncHandlerEvents {
                kcache: event.kcache,
                kube_rs: event.kube_rs,
                ratio: sync_w.and_then(|w| w.p99_ratio),
                wire: sync_w.and_then(|w| w.sides.kcache.as_ref()).and_then(|s| s.wire_p99_ms),
                floor: sync_w.and_then(|w| w.floor_ratio),
                runs: sync_w.map_or(0, |w| w.p99_by_repeat.len()),
            },
            peak_rss_mb_2000qps: Compared::of(sync_side(|s| s.peak_rss_mb)),
            by_handler_2000qps: r.writes.iter().map(|w| (w.handler.as_str(), Handler::of(w))).collect(),
            resync: r.resync.iter().map(Resync::of).collect(),
            overload: Overload {
                handler_cost_us: OVERLOAD_HANDLER_COST_US,
                bound_wire_multiple: OVERLOAD_BOUND_WIRE,
                kcache: r.overload.kcache.as_ref().map(OverloadSide::of),
                kube_rs: r.overload.kube_rs.as_ref().map(OverloadSide::of),
            },
            scale: r.scale.as_ref().map(Scale::of),
            sim: r.sim.as_ref().map(Sim::of),
            replicas: r.replicas.as_ref().map(super::replicas::Json::of),
            typed_get_p99_ns: TypedP99::of(r.typed_get.as_ref()),
            reconcile_per_s: Compared::reconcile(r.reconcile.as_ref(), |x| (x.per_s, x.ratio)),
            reconcile_per_s_every_decode_kept: Compared::reconcile(r.reconcile.as_ref(), |x| {
                (Engines { kcache: x.kept_per_s.unwrap_or(f64::NAN), kube_rs: x.per_s.kube_rs }, x.kept_ratio)
            }),
            reconcile_initial_seconds: Compared::reconcile(r.reconcile.as_ref(), |x| (x.initial_seconds, x.initial_ratio)),
            compressed: super::compressed::JsonFields::of(&r.compressed),
            goals: r.goals.iter().map(GoalEntry::of).collect(),
            failures: r.failures.iter().map(FailureEntry::of).collect(),
        }
    }
}

/// The `docs/results.json` document, keys sorted.
///
/// # Errors
/// Only if serialisation fails, which string-keyed structs of numbers do not.
pub fn to_json(r: &Results) -> serde_json::Result<Value> {
    serde_json::to_value(Document::of(r))
}

/// [`to_json`] as the file's text: pretty-printed, with a final newline.
///
/// # Errors
/// As [`to_json`].
pub fn to_text(r: &Results) -> serde_json::Result<String> {
    Ok(serde_json::to_string_pretty(&to_json(r)?)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::plan::Group;
    use crate::compare::results::build;
    use crate::compare::stats::MIB;
    use crate::compare::synthetic::{complete, key_paths, machine, outcome, pct, reconcile_row, synthetic, typed_get_row};
    use serde_json::json;

    #[test]
    fn the_json_read_ratios_are_the_goals_paired_ratios() {
        let mut v = synthetic();
        v.retain(|o| o.job.group != Group::Reads);
        let reads = |get: f64| Report { cache_get_ns: pct(get), cache_list_1000_ns: pct(get * 10.0), ..Report::default() };
        // Paired ratios 0.5, 0.889, 0.25 (median 0.5); medians 300 / 900 would say 0.333.
        for (rep, k, b) in [(0, 300.0, 600.0), (1, 800.0, 900.0), (2, 250.0, 1_000.0)] {
            v.push(outcome(Group::Reads, "", "kcache", rep, reads(k)));
            v.push(outcome(Group::Reads, "", "kube-rs", rep, reads(b)));
        }
        let r = build(&v, machine(), false, 1.0);
        let j = to_json(&r).unwrap();
        assert_eq!((j["get_p99_ns"]["kcache"].as_f64(), j["get_p99_ns"]["kube_rs"].as_f64()), (Some(300.0), Some(900.0)));
        assert_eq!(j["get_p99_ns"]["ratio"], json!(0.5));
        assert_eq!(j["list1000_p99_ns"]["ratio"], json!(0.5));
        let goal = r.goals.iter().find(|g| g.name.starts_with("Get one pod")).unwrap();
        assert_eq!(goal.measured, Some(0.5));
    }

    #[test]
    fn the_json_has_the_documented_keys() {
        let r = build(&synthetic(), machine(), false, 1.0);
        let j = to_json(&r).unwrap();
        assert_eq!(j["quick"], json!(false));
        assert_eq!(j["date"], json!("2026-01-02"));
        assert_eq!(j["cores"], json!(2));
        for key in ["memory_10k_bytes", "sync_10k_seconds", "get_p99_ns", "list1000_p99_ns", "event_p99_ms_2000qps", "peak_rss_mb_2000qps"] {
            assert!(j[key]["kcache"].is_number(), "{key}.kcache: {}", j[key]);
            assert!(j[key]["kube_rs"].is_number(), "{key}.kube_rs: {}", j[key]);
        }
        assert!(j["get_p99_ns"]["direct"].is_number());
        assert!(j["list1000_p99_ns"]["direct"].is_number());
        assert!(j["memory_10k_bytes"]["wire"].is_number());
        assert_eq!(j["memory_10k_bytes"]["kcache"], json!(30.0 * MIB));
        assert_eq!(j["get_p99_ns"]["direct"], json!(0.5e6));
        assert_eq!(j["event_p99_ms_2000qps"]["ratio"], json!(0.4));
        assert_eq!(j["event_p99_ms_2000qps"]["wire"], json!(3.0));
        assert_eq!(j["by_handler_2000qps"]["workqueue"]["wire_event_p99_ms"]["kube_rs"], json!(3.0));
        // The floor under the event ratio: kcache's run's wire p99 over kube-rs's event p99.
        let event = r.goals.iter().find(|g| g.name.starts_with("event p99 at 2,000")).unwrap();
        assert_eq!(event.floor, Some(0.3));
        assert!(r.goals.iter().filter(|g| !g.name.starts_with("event p99 at 2,000")).all(|g| g.floor.is_none()));
        assert_eq!(j["resync"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn typed_gets_reach_the_json_and_the_markdown_as_medians_of_rounds() {
        let mut r = build(&synthetic(), machine(), false, 1.0);
        let j = to_json(&r).unwrap();
        for key in ["kcache", "kube_rs", "ratio", "kcache_decode"] {
            assert!(j["typed_get_p99_ns"][key].is_null(), "not measured: {key} is null");
        }
        assert!(!crate::compare::markdown::results_md(&r, &[]).contains("## 9. Typed reads"));
        r.typed_get = Some(typed_get_row());
        let j = to_json(&r).unwrap();
        // Medians of 100/300/120 and 100/200/200; paired ratios 1.0, 1.5, 0.6.
        assert_eq!(j["typed_get_p99_ns"]["kcache"], json!(120.0));
        assert_eq!(j["typed_get_p99_ns"]["kube_rs"], json!(200.0));
        assert_eq!(j["typed_get_p99_ns"]["ratio"], json!(1.0));
        assert_eq!(j["typed_get_p99_ns"]["kcache_decode"], json!(20_000.0));
        let md = crate::compare::markdown::results_md(&r, &[]);
        assert!(md.contains("## 9. Typed reads"), "{md}");
        assert!(md.contains("| kcache, kept | 60 ns | 108 ns | 120 ns | 3000 |"), "{md}");
        assert!(md.contains("| kcache, not kept (a decode) | 10.0 µs | 18.0 µs | 20.0 µs | 3000 |"), "{md}");
        assert!(
            md.contains("Typed Get p99 kcache / kube-rs (median of the rounds' ratios): 1.00x; each round: 100 ns / 100 ns; 300 ns / 200 ns; 120 ns / 200 ns."),
            "{md}"
        );
    }

    #[test]
    fn reconcile_throughput_reaches_the_json_and_the_markdown_as_medians_of_rounds() {
        let mut r = build(&synthetic(), machine(), false, 1.0);
        let j = to_json(&r).unwrap();
        for key in ["kcache", "kube_rs", "ratio"] {
            assert!(j["reconcile_per_s"][key].is_null(), "not measured: {key} is null");
            assert!(j["reconcile_initial_seconds"][key].is_null(), "not measured: {key} is null");
        }
        assert!(!crate::compare::markdown::results_md(&r, &[]).contains("## 10. Reconcile throughput"));
        r.reconcile = Some(reconcile_row());
        let j = to_json(&r).unwrap();
        for key in ["kcache", "kube_rs", "ratio"] {
            assert!(j["reconcile_per_s"][key].is_number(), "{key}: {}", j["reconcile_per_s"]);
        }
        // Medians of 100k/60k/90k and 20k/30k/30k; paired ratios 5, 2 and 3.
        assert_eq!(j["reconcile_per_s"]["kcache"], json!(90_000.0));
        assert_eq!(j["reconcile_per_s"]["kube_rs"], json!(30_000.0));
        assert_eq!(j["reconcile_per_s"]["ratio"], json!(3.0));
        assert_eq!(j["reconcile_initial_seconds"]["kcache"], json!(0.5));
        assert_eq!(j["reconcile_initial_seconds"]["ratio"], json!(0.5));
        let md = crate::compare::markdown::results_md(&r, &[]);
        assert!(md.contains("## 10. Reconcile throughput"), "{md}");
        assert!(md.contains("| kcache | 0.500 s | 90000 |"), "{md}");
        assert!(md.contains("| kube-rs | 1.000 s | 30000 |"), "{md}");
        assert!(
            md.contains("Reconcile-all rate kcache / kube-rs (median of the rounds' ratios): 3.00x; each round (reconciles/s): 100000 / 20000; 60000 / 30000; 90000 / 30000."),
            "{md}"
        );
    }

    /// The key paths and value types of docs/results.json for [`complete`], as
    /// the document writer first produced them; readers of the file rely on them.
    const JSON_PATHS: &str = include_str!("testdata/results_json_paths.txt");

    fn paths_text(j: &Value) -> String {
        key_paths(j).iter().map(|(path, kind)| format!("{path}: {kind}\n")).collect()
    }

    #[test]
    fn the_json_keeps_its_key_paths_and_types() {
        let j = to_json(&complete()).unwrap();
        assert_eq!(paths_text(&j), JSON_PATHS);
    }

    #[test]
    fn docs_results_json_has_no_key_the_writer_lacks() {
        // docs/results.json comes from a real comparison: every figure it holds
        // is a key path of the writer's document, with the same type where both
        // are measured.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/results.json");
        let docs: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ours = to_json(&complete()).unwrap();
        let ours = key_paths(&ours);
        for (p, kind) in key_paths(&docs) {
            let Some(&mine) = ours.get(&p) else {
                assert!(kind == "empty", "docs/results.json has {p} ({kind}); the writer does not");
                continue;
            };
            assert!(kind == mine || kind == "null" || mine == "null", "{p}: docs {kind}, writer {mine}");
        }
    }
}
