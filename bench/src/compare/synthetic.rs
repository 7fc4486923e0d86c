//! Synthetic comparisons for tests: outcomes with known figures, so medians,
//! ratios, goals and documents can be checked without running anything.

use std::collections::BTreeMap;

use kcache_loadgen::report::{ApiCalls, Percentiles, Report};
use serde_json::Value;

use super::exec::Outcome;
use super::machine::Machine;
use super::plan::{COMPRESSED, Group, Job};
use super::results::{Results, build};
use super::rows::{Engines, Lat, ReconcileRow, ReconcileRun, SimRow, TypedGetRound, TypedGetRow};

/// Percentiles around `p99`, 100 samples.
pub(crate) fn pct(p99: f64) -> Percentiles {
    Percentiles { p50: p99 / 2.0, p90: p99 * 0.8, p95: p99 * 0.9, p99, max: p99 * 2.0, samples: 100 }
}

/// A successful job's outcome.
pub(crate) fn outcome(group: Group, param: &str, variant: &str, rep: usize, r: Report) -> Outcome {
    Outcome {
        job: Job { group, param: param.into(), variant: variant.into(), rep, args: vec![] },
        report: Some(r),
        error: None,
        wall_seconds: 1.0,
    }
}

/// A sync-only run of `pods` pods whose cache added `mem_mb` MiB in `secs` seconds.
pub(crate) fn sync_report(pods: u64, mem_mb: f64, secs: f64) -> Report {
    Report {
        pods,
        rss_mb_before_engine: 10.0,
        rss_mb_after_sync: 10.0 + mem_mb,
        sync_seconds: secs,
        wire_bytes: 40 * 1_048_576,
        store_bytes: 38 * 1_048_576,
        cache_matches_server: true,
        ..Report::default()
    }
}

/// A complete synthetic comparison: kcache uses 30 MiB vs kube-rs 200 MiB, etc.
pub(crate) fn synthetic() -> Vec<Outcome> {
    let mut v = Vec::new();
    let reads = |get: f64, list: f64| Report {
        pods: 10_000,
        cache_get_ns: pct(get),
        cache_list_1000_ns: pct(list),
        direct_get_ms: pct(0.5),
        direct_list_1000_ms: pct(20.0),
        cache_matches_server: true,
        ..Report::default()
    };
    v.push(outcome(Group::Reads, "", "kcache", 0, reads(100.0, 1_000.0)));
    v.push(outcome(Group::Reads, "", "kube-rs", 0, reads(400.0, 500_000.0)));
    for (h, growth_k) in [("sync", 0.0), ("channel", 0.0), ("workqueue", 2.5)] {
        let w = |p99: f64, rss: f64, slope: f64| Report {
            pods: 10_000,
            event_latency_ms: pct(p99),
            wire_event_latency_ms: pct(3.0),
            rss_mb_peak_engine: rss,
            rss_mb_timeline: (0..9).map(|i| rss + slope * i as f64).collect(),
            write_qps_achieved: 1990.0,
            cache_matches_server: true,
            ..Report::default()
        };
        v.push(outcome(Group::Writes, h, "kcache", 0, w(4.0, 60.0, growth_k)));
        v.push(outcome(Group::Writes, h, "kube-rs", 0, w(10.0, 300.0, 5.0)));
    }
    // Three repeats; the middle kube-rs run is an outlier.
    for (rep, kr) in [(0, 200.0), (1, 400.0), (2, 210.0)] {
        v.push(outcome(Group::Sync, "10000", "kcache", rep, sync_report(10_000, 30.0, 1.0)));
        v.push(outcome(Group::Sync, "10000", "kcache-strip", rep, sync_report(10_000, 20.0, 0.9)));
        v.push(outcome(Group::Sync, "10000", "kcache-streaming", rep, sync_report(10_000, 31.0, 0.8)));
        v.push(outcome(Group::Sync, "10000", "kube-rs", rep, sync_report(10_000, kr, 4.0)));
        v.push(outcome(Group::Sync, "10000", "kube-rs-streaming", rep, sync_report(10_000, kr, 3.0)));
    }
    for (period, resyncs) in [(0, 0), (30, 10_000), (300, 0)] {
        let r = Report {
            cpu_seconds: 2.0 + resyncs as f64 / 10_000.0,
            api_calls: Some(ApiCalls { list: 20, watch: 1, get: 0 }),
            resync_events: resyncs,
            duration_seconds: 65.0,
            ..Report::default()
        };
        v.push(outcome(Group::Resync, &period.to_string(), "kcache", 0, r));
    }
    v
}

/// The compressed store's runs beside [`synthetic`]'s: at 10k, 3 sync-only repeats
/// adding 16 MiB (40 MiB on the wire, 4 MiB of frames for 38 MiB of JSON) in 1.2 s;
/// Get p99 105 ns and List p99 1,500 ns (uncompressed 100 and 1,000); event p99
/// 4.4 ms (uncompressed 4); with `at_scale`, a 100k run (rep 0) and the
/// 1,000,000-pod run: RSS 800 MiB after sync, 150 s.
pub(crate) fn compressed_outcomes(at_scale: bool) -> Vec<Outcome> {
    let compressed = |pods: u64, mem_mb: f64, secs: f64| Report {
        store_bytes: 4 * 1_048_576 * pods / 10_000,
        store_uncompressed_bytes: 38 * 1_048_576 * pods / 10_000,
        wire_bytes: 40 * 1_048_576 * pods / 10_000,
        compressed: true,
        ..sync_report(pods, mem_mb, secs)
    };
    let mut v = Vec::new();
    for rep in 0..3 {
        v.push(outcome(Group::Sync, "10000", COMPRESSED, rep, compressed(10_000, 16.0, 1.2)));
    }
    let read = Report { pods: 10_000, cache_get_ns: pct(105.0), cache_list_1000_ns: pct(1_500.0), compressed: true, ..Report::default() };
    v.push(outcome(Group::Reads, "", COMPRESSED, 0, read));
    let write = Report { pods: 10_000, event_latency_ms: pct(4.4), compressed: true, ..Report::default() };
    v.push(outcome(Group::Writes, "sync", COMPRESSED, 0, write));
    if at_scale {
        v.push(outcome(Group::Sync, "100000", COMPRESSED, 0, compressed(100_000, 150.0, 12.0)));
        let mut big = compressed(1_000_000, 790.0, 150.0);
        big.rss_mb_after_sync = 800.0;
        v.push(outcome(Group::Sync, "1000000", COMPRESSED, 0, big));
    }
    v
}

/// The machine the synthetic comparisons ran on.
pub(crate) fn machine() -> Machine {
    Machine { cores: 2, cpu_model: "Test CPU".into(), build_profile: "release".into(), date: "2026-01-02".into(), ..Machine::default() }
}

/// The 100k-pod scale run: 60,000 events, none lost.
pub(crate) fn scale_report() -> Report {
    Report {
        pods: 100_000,
        events_expected: 60_000,
        events_received: 60_000,
        events_lost: 0,
        cache_matches_server: true,
        event_latency_ms: pct(8.0),
        ..Report::default()
    }
}

/// An overload run with a 50 MiB wire size.
pub(crate) fn overload_report(rss_after_sync: f64, peak: f64) -> Report {
    Report {
        rss_mb_after_sync: rss_after_sync,
        rss_mb_peak_engine: peak,
        wire_bytes: 50 * 1_048_576,
        cache_matches_server: true,
        ..Report::default()
    }
}

/// The simulator measured on its own: LIST 50 ms, metadata LIST 9 ms, writes
/// at 2,000/s and 4,000/s on half a core with 700 µs latency.
pub(crate) fn sim_figures() -> crate::simload::SimFigures {
    let h = |v: u64| {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        h.record(v).unwrap();
        h
    };
    let phase = |rate: u64| crate::simload::WritePhase {
        writes: rate * 10,
        wall: std::time::Duration::from_secs(10),
        cpu: std::time::Duration::from_secs(5),
        latency_us: h(700),
        events_expected: rate * 30,
        events_received: rate * 30,
        watches_closed_lagging: 0,
    };
    crate::simload::SimFigures {
        pods: 10_000,
        list: crate::simload::ListTiming { body_bytes: 50 << 20, latency_us: h(50_000) },
        list_metadata: crate::simload::ListTiming { body_bytes: 5 << 20, latency_us: h(9_000) },
        paced: phase(2_000),
        flat_out: phase(4_000),
    }
}

/// Three rounds of typed Gets: kcache's hit p99 100, 300 and 120 ns against kube-rs's
/// 100, 200 and 200 ns (paired ratios 1.0, 1.5 and 0.6), decodes at 20 µs.
pub(crate) fn typed_get_row() -> TypedGetRow {
    let lat = |p99: f64| Lat { p50: p99 / 2.0, p95: p99 * 0.9, p99, samples: 1_000 };
    let rounds: Vec<TypedGetRound> = [(100.0, 100.0), (300.0, 200.0), (120.0, 200.0)]
        .into_iter()
        .map(|(k, b)| TypedGetRound { kcache: lat(k), kube_rs: lat(b), kcache_decode: lat(20_000.0) })
        .collect();
    TypedGetRow::from_rounds(10_000, 512, &rounds).expect("three rounds")
}

/// Three rounds of reconciles over 10,000 pods with 2 workers: kcache's reconcile-all
/// rates 100k, 60k and 90k/s against kube-rs's 20k, 30k and 30k/s (paired ratios 5, 2
/// and 3), initial phases 0.5 s against 1 s each.
pub(crate) fn reconcile_row() -> ReconcileRow {
    let run = |initial_seconds: f64, reconcile_all_per_s: f64| ReconcileRun { initial_seconds, reconcile_all_per_s };
    let rounds: Vec<Engines<ReconcileRun>> = [(100_000.0, 20_000.0), (60_000.0, 30_000.0), (90_000.0, 30_000.0)]
        .into_iter()
        .map(|(k, b)| Engines { kcache: run(0.5, k), kube_rs: run(1.0, b) })
        .collect();
    let kept = [run(0.5, 200_000.0), run(0.5, 150_000.0), run(0.5, 180_000.0)];
    ReconcileRow::from_rounds(10_000, 2, &rounds, &kept).expect("three rounds")
}

/// The replicas scenario's runs: 10,000 pods; one replica's store 30 MiB, three
/// replicas' 12/10/8 MiB; the kill run took over in 6.5 s, the leader run failed
/// over in 4 s with one event lost.
pub(crate) fn replicas_outcomes() -> Vec<Outcome> {
    use super::replicas::{KILL, LEADER, SHARDED};
    const M: u64 = 1_048_576;
    let sized = |store: &[u64], cache: &str| Report {
        pods: 10_000,
        replicas: store.len() as u64,
        store_bytes_per_replica: store.iter().map(|mb| mb * M).collect(),
        rss_mb_after_sync_per_replica: (0..store.len()).map(|i| 50.0 - 2.0 * i as f64).collect(),
        replica_cache: cache.into(),
        cache_matches_server: true,
        ..Report::default()
    };
    let fault = |replicas: u64, takeover: f64, failover: Option<f64>, lost: u64| Report {
        lease_duration_seconds: 5.0,
        takeover_seconds: Some(takeover),
        failover_seconds: failover,
        leader_election: failover.is_some(),
        events_lost: lost,
        ..sized(&vec![10; replicas as usize], "slice")
    };
    vec![
        outcome(Group::Replicas, "1", SHARDED, 0, sized(&[30], "")),
        outcome(Group::Replicas, "2", SHARDED, 0, sized(&[16, 14], "slice")),
        outcome(Group::Replicas, "3", SHARDED, 0, sized(&[12, 10, 8], "slice")),
        outcome(Group::Replicas, "3", KILL, 0, fault(3, 6.5, None, 0)),
        outcome(Group::Replicas, "2", LEADER, 0, fault(2, 5.0, Some(4.0), 1)),
    ]
}

/// [`synthetic`] with every section the documents can hold: a second sync
/// size (100k), a kube-rs resync reference, an overload pair, the scale run,
/// the simulator, typed Gets, reconcile throughput, the compressed store, the
/// replicas scenario and a failed job.
pub(crate) fn complete() -> Results {
    let mut outcomes = synthetic();
    outcomes.extend(compressed_outcomes(true));
    outcomes.extend(replicas_outcomes());
    for (rep, kr) in [(0, 2_000.0), (1, 2_100.0), (2, 1_900.0)] {
        outcomes.push(outcome(Group::Sync, "100000", "kcache", rep, sync_report(100_000, 300.0, 10.0)));
        outcomes.push(outcome(Group::Sync, "100000", "kcache-strip", rep, sync_report(100_000, 200.0, 9.0)));
        outcomes.push(outcome(Group::Sync, "100000", "kcache-streaming", rep, sync_report(100_000, 310.0, 8.0)));
        outcomes.push(outcome(Group::Sync, "100000", "kube-rs", rep, sync_report(100_000, kr, 40.0)));
        outcomes.push(outcome(Group::Sync, "100000", "kube-rs-streaming", rep, sync_report(100_000, kr, 30.0)));
    }
    let reference = Report { cpu_seconds: 3.0, api_calls: Some(ApiCalls { list: 20, watch: 1, get: 0 }), duration_seconds: 65.0, ..Report::default() };
    outcomes.push(outcome(Group::Resync, "0", "kube-rs", 0, reference));
    outcomes.push(outcome(Group::Scale, "100000", "kcache", 0, scale_report()));
    let overload = |after: f64, peak: f64| Report {
        rss_mb_timeline: vec![after, peak, peak],
        events_expected: 20_000,
        events_received: 1_500,
        event_latency_ms: pct(900.0),
        ..overload_report(after, peak)
    };
    outcomes.push(outcome(Group::Overload, "sync", "kcache", 0, overload(100.0, 150.0)));
    outcomes.push(outcome(Group::Overload, "sync", "kube-rs", 0, overload(400.0, 900.0)));
    outcomes.push(Outcome {
        job: Job { group: Group::Reads, param: String::new(), variant: "kube-rs".into(), rep: 1, args: vec![] },
        report: None,
        error: Some("boom".into()),
        wall_seconds: 0.0,
    });
    let mut r = build(&outcomes, machine(), false, 1234.4);
    r.sim = Some(SimRow::from(&sim_figures()));
    r.typed_get = Some(typed_get_row());
    r.reconcile = Some(reconcile_row());
    r.compressed.typed_decode = Some(typed_decode_row());
    r.goals = super::goals::goals(&r);
    r
}

/// Three rounds of body reads: compressed p99 26, 30 and 22 µs against uncompressed
/// 20, 20 and 20 µs (paired ratios 1.3, 1.5 and 1.1).
pub(crate) fn typed_decode_row() -> super::compressed::TypedDecodeRow {
    let lat = |p99: f64| Lat { p50: p99 / 2.0, p95: p99 * 0.9, p99, samples: 20_000 };
    let rounds: Vec<(Lat, Lat)> = [26_000.0, 30_000.0, 22_000.0].into_iter().map(|c| (lat(c), lat(20_000.0))).collect();
    super::compressed::TypedDecodeRow::from_rounds(10_000, &rounds).expect("three rounds")
}

/// Every leaf of a JSON document with its type (`null`, `bool`, `integer`,
/// `float`, `string`), by path: `a.b[].c` (an array's elements share one path).
pub(crate) fn key_paths(v: &Value) -> BTreeMap<String, &'static str> {
    fn walk(v: &Value, path: String, out: &mut BTreeMap<String, &'static str>) {
        let kind = match v {
            Value::Object(m) => {
                for (k, x) in m {
                    walk(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
                }
                return;
            }
            Value::Array(a) => {
                for x in a {
                    walk(x, format!("{path}[]"), out);
                }
                if a.is_empty() {
                    out.insert(format!("{path}[]"), "empty");
                }
                return;
            }
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_f64() => "float",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
        };
        // Elements of one array may differ (a null next to a number): keep the non-null type.
        let slot = out.entry(path).or_insert(kind);
        if *slot == "null" {
            *slot = kind;
        }
    }
    let mut out = BTreeMap::new();
    walk(v, String::new(), &mut out);
    out
}
