//! From reports to results: medians, pair-wise ratios, goals, and the
//! `docs/results.json` document. Pure functions of the outcomes, so they are
//! tested on synthetic reports.
//!
//! # Guarantees
//! * A ratio kcache/kube-rs is the median of per-repeat ratios of runs made next
//!   to each other in the same comparison ([`super::plan`]), never a ratio of
//!   medians from different times.
//! * A figure that could not be measured (its job failed) is `None` here and
//!   `null` in JSON; it is never replaced by a guess.

use std::collections::BTreeMap;

use kcache_loadgen::report::{ApiCalls, Report};
use serde_json::{Value, json};

use super::exec::Outcome;
use super::machine::Machine;
use super::plan::Group;

const MIB: f64 = 1_048_576.0;

/// Median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

/// Relative RSS growth over a write phase: mean of the last third of the
/// samples over the mean of the middle third, minus one. `None` under 3 samples.
///
/// The first third is left out: it holds the climb from the synced cache to
/// the write phase's working set (kcache's arena fills with replaced objects
/// until their share reaches the compaction threshold, about 4 s at 2,000
/// writes/s), which happens once. Growth between the middle and the last
/// third is what a leak or an unbounded backlog would show.
pub fn rss_growth(timeline: &[f64]) -> Option<f64> {
    if timeline.len() < 3 {
        return None;
    }
    let third = timeline.len() / 3;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let middle = mean(&timeline[third..2 * third]);
    let last = mean(&timeline[timeline.len() - third..]);
    (middle > 0.0).then(|| last / middle - 1.0)
}

/// Memory the synced cache added to its process, bytes.
pub fn cache_bytes(r: &Report) -> f64 {
    ((r.rss_mb_after_sync - r.rss_mb_before_engine) * MIB).max(0.0)
}

/// Outcomes indexed by (group, param, variant) -> rep -> report.
pub struct Index<'a> {
    map: BTreeMap<(String, String, String), BTreeMap<usize, &'a Report>>,
}

impl<'a> Index<'a> {
    /// Indexes the outcomes that have a report.
    pub fn new(outcomes: &'a [Outcome]) -> Self {
        let mut map: BTreeMap<_, BTreeMap<usize, &Report>> = BTreeMap::new();
        for o in outcomes {
            if let Some(r) = &o.report {
                let j = &o.job;
                map.entry((j.group.as_str().to_owned(), j.param.clone(), j.variant.clone())).or_default().insert(j.rep, r);
            }
        }
        Index { map }
    }

    /// Reports of one variant, by repeat.
    pub fn get(&self, group: Group, param: &str, variant: &str) -> Option<&BTreeMap<usize, &'a Report>> {
        self.map.get(&(group.as_str().to_owned(), param.to_owned(), variant.to_owned())).filter(|m| !m.is_empty())
    }

    /// Median of `f` over the repeats of one variant.
    pub fn median(&self, group: Group, param: &str, variant: &str, f: impl Fn(&Report) -> f64) -> Option<f64> {
        median(self.get(group, param, variant)?.values().map(|r| f(r)).collect())
    }

    /// Repeats of one variant.
    pub fn runs(&self, group: Group, param: &str, variant: &str) -> usize {
        self.get(group, param, variant).map_or(0, BTreeMap::len)
    }

    /// Median over repeats of `f(num) / f(den)`, pairing runs of the same repeat.
    pub fn ratio(&self, group: Group, param: &str, num: &str, den: &str, f: impl Fn(&Report) -> f64) -> Option<f64> {
        let a = self.get(group, param, num)?;
        let b = self.get(group, param, den)?;
        median(
            a.iter()
                .filter_map(|(rep, ra)| b.get(rep).map(|rb| (f(ra), f(rb))))
                .filter(|(_, d)| *d > 0.0)
                .map(|(n, d)| n / d)
                .collect(),
        )
    }
}

/// Latency percentiles in nanoseconds, with the number of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lat {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Samples.
    pub samples: u64,
}

impl Lat {
    fn from(p: &kcache_loadgen::report::Percentiles, to_ns: f64) -> Option<Lat> {
        (p.samples > 0).then_some(Lat { p50: p.p50 * to_ns, p95: p.p95 * to_ns, p99: p.p99 * to_ns, samples: p.samples })
    }

    /// Each percentile's median over `runs` (samples: their sum); `None` without a
    /// run that has samples.
    fn median_over<'r>(
        runs: impl Iterator<Item = &'r Report>,
        f: impl Fn(&Report) -> &kcache_loadgen::report::Percentiles,
        to_ns: f64,
    ) -> Option<Lat> {
        let lats: Vec<Lat> = runs.filter_map(|r| Lat::from(f(r), to_ns)).collect();
        let of = |g: fn(&Lat) -> f64| median(lats.iter().map(g).collect());
        Some(Lat { p50: of(|l| l.p50)?, p95: of(|l| l.p95)?, p99: of(|l| l.p99)?, samples: lats.iter().map(|l| l.samples).sum() })
    }
}

/// Direct REST vs cache reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reads {
    /// Pods in the cache.
    pub pods: u64,
    /// Threads that timed the cache reads.
    pub readers: u64,
    /// Writes per second achieved while they did (kcache run).
    pub write_qps: f64,
    /// Get one pod: direct GET (from the kcache runs), kcache, kube-rs; each
    /// percentile the median over the repeats.
    pub get: [Option<Lat>; 3],
    /// List a 1,000-pod namespace: direct LIST, kcache, kube-rs; as `get`.
    pub list: [Option<Lat>; 3],
    /// Get p99 (ns) of each repeat: kcache, kube-rs.
    pub get_p99_by_repeat: Vec<[Option<f64>; 2]>,
    /// Get p99 kcache / kube-rs: the median of the repeats' ratios.
    pub get_p99_ratio: Option<f64>,
    /// Share of the timed Gets that found their pod: kcache, kube-rs; each the
    /// median over the repeats.
    pub get_hit_rate: [Option<f64>; 2],
    /// List p99 kcache / kube-rs: the median of the repeats' ratios.
    pub list_p99_ratio: Option<f64>,
}

/// One side of a 2,000 writes/s run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteSide {
    /// Event latency, ms.
    pub p50_ms: f64,
    /// Event latency, ms.
    pub p99_ms: f64,
    /// Event latency, ms.
    pub max_ms: f64,
    /// Latency samples.
    pub samples: u64,
    /// Writes/s achieved.
    pub qps: f64,
    /// Events lost.
    pub lost: u64,
    /// Cache equalled the server at the end.
    pub matches: bool,
    /// Peak RSS from engine start to the end of the writes, MiB.
    pub peak_rss_mb: f64,
    /// RSS right after sync, MiB.
    pub rss_after_sync_mb: f64,
    /// [`rss_growth`] of the write phase.
    pub growth: Option<f64>,
    /// RSS once a second, MiB.
    pub timeline: Vec<f64>,
    /// CPU seconds of the engine process.
    pub cpu_seconds: f64,
    /// Writes acknowledged (events owed to the handler, before coalescing).
    pub events_expected: u64,
    /// Events the handler saw.
    pub events_received: u64,
    /// Bytes of the pods on the wire.
    pub wire_bytes: u64,
    /// The same run's events on a raw watch in the writer's process (the floor
    /// under the event latency), ms; `None` when that watch reported nothing.
    pub wire_p50_ms: Option<f64>,
    /// As `wire_p50_ms`, the 99th percentile.
    pub wire_p99_ms: Option<f64>,
}

impl WriteSide {
    fn from(r: &Report) -> WriteSide {
        WriteSide {
            p50_ms: r.event_latency_ms.p50,
            p99_ms: r.event_latency_ms.p99,
            max_ms: r.event_latency_ms.max,
            samples: r.event_latency_ms.samples,
            qps: r.write_qps_achieved,
            lost: r.events_lost,
            matches: r.cache_matches_server,
            peak_rss_mb: r.rss_mb_peak_engine,
            rss_after_sync_mb: r.rss_mb_after_sync,
            growth: rss_growth(&r.rss_mb_timeline),
            timeline: r.rss_mb_timeline.clone(),
            cpu_seconds: r.cpu_seconds,
            events_expected: r.events_expected,
            events_received: r.events_received,
            wire_bytes: r.wire_bytes,
            wire_p50_ms: (r.wire_event_latency_ms.samples > 0).then_some(r.wire_event_latency_ms.p50),
            wire_p99_ms: wire_p99(r),
        }
    }
}

/// 2,000 writes/s with one handler style.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteRow {
    /// Handler style.
    pub handler: String,
    /// Pods.
    pub pods: u64,
    /// kcache, kube-rs: with several repeats, each engine's run with the median
    /// event p99 (the lower middle one for an even count), so that every figure
    /// of a side comes from one run.
    pub sides: [Option<WriteSide>; 2],
    /// Event p99 (ms) of each repeat: kcache, kube-rs.
    pub p99_by_repeat: Vec<[Option<f64>; 2]>,
    /// Wire p99 (ms) of each repeat's kcache run: the numerator of its floor.
    pub wire_p99_by_repeat: Vec<Option<f64>>,
    /// Event p99 kcache / kube-rs: the median of the repeats' ratios.
    pub p99_ratio: Option<f64>,
    /// The lowest event-p99 ratio any engine could show: the median over the
    /// repeats of the kcache run's wire p99 over the kube-rs run's event p99.
    pub floor_ratio: Option<f64>,
}

impl WriteRow {
    fn build(ix: &Index<'_>, handler: &str) -> Option<WriteRow> {
        let runs = |v: &str| ix.get(Group::Writes, handler, v);
        let (k, b) = (runs("kcache"), runs("kube-rs"));
        if k.is_none() && b.is_none() {
            return None;
        }
        let repeats: std::collections::BTreeSet<usize> = [k, b].into_iter().flatten().flat_map(|m| m.keys().copied()).collect();
        fn at<'r>(m: Option<&BTreeMap<usize, &'r Report>>, rep: usize) -> Option<&'r Report> {
            m.and_then(|m| m.get(&rep).copied())
        }
        let p99_by_repeat: Vec<[Option<f64>; 2]> =
            repeats.iter().map(|&rep| [k, b].map(|m| at(m, rep).map(|r| r.event_latency_ms.p99))).collect();
        let wire_p99_by_repeat: Vec<Option<f64>> = repeats.iter().map(|&rep| at(k, rep).and_then(wire_p99)).collect();
        // The floor pairs two different figures, so it cannot go through `Index::ratio`.
        let floor_ratio =
            median(wire_p99_by_repeat.iter().zip(&p99_by_repeat).filter_map(|(wire, [_, b])| ratio_of(*wire, *b)).collect());
        Some(WriteRow {
            handler: handler.to_owned(),
            pods: k.or(b).and_then(|m| m.values().next()).map_or(0, |r| r.pods),
            sides: [k, b].map(|m| m.and_then(median_run).map(WriteSide::from)),
            p99_ratio: ix.ratio(Group::Writes, handler, "kcache", "kube-rs", |r| r.event_latency_ms.p99),
            floor_ratio,
            p99_by_repeat,
            wire_p99_by_repeat,
        })
    }
}

/// The run's raw-watch p99 (ms), `None` when that watch reported nothing.
fn wire_p99(r: &Report) -> Option<f64> {
    (r.wire_event_latency_ms.samples > 0).then_some(r.wire_event_latency_ms.p99)
}

/// The run with the median event p99 (the lower middle one for an even count).
fn median_run<'r>(runs: &BTreeMap<usize, &'r Report>) -> Option<&'r Report> {
    let mut v: Vec<&Report> = runs.values().copied().collect();
    v.sort_by(|a, b| a.event_latency_ms.p99.total_cmp(&b.event_latency_ms.p99));
    v.get(v.len().saturating_sub(1) / 2).copied()
}

/// Sync-only runs at one size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncRow {
    /// Pods.
    pub pods: u64,
    /// Variant -> (median cache bytes, median sync seconds, runs).
    pub variants: BTreeMap<String, (f64, f64, usize)>,
    /// Median wire bytes of the objects (from the kcache runs).
    pub wire_bytes: Option<f64>,
    /// Median bytes of JSON kcache's store holds (kcache, kcache-strip).
    pub store_bytes: [Option<f64>; 2],
    /// Pair-wise memory ratio kcache / kube-rs.
    pub memory_ratio: Option<f64>,
    /// Pair-wise memory ratio kcache-strip / kube-rs.
    pub memory_ratio_strip: Option<f64>,
    /// Pair-wise sync-time ratio kcache / kube-rs (both paginated).
    pub sync_ratio: Option<f64>,
    /// Pair-wise sync-time ratio kcache-streaming / kube-rs-streaming.
    pub sync_ratio_streaming: Option<f64>,
}

/// One resync run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResyncRow {
    /// Resync period, seconds (0: none).
    pub period: u64,
    /// Engine variant.
    pub variant: String,
    /// Write phase length, seconds.
    pub seconds: f64,
    /// CPU seconds of the engine process from engine start to convergence.
    pub cpu_seconds: f64,
    /// API calls of the engine.
    pub api_calls: Option<ApiCalls>,
    /// Resync deliveries to the handler.
    pub resync_events: u64,
    /// All handler events.
    pub handler_events: u64,
    /// Writes acknowledged.
    pub writes: u64,
}

/// The simulated API server measured on its own ([`crate::simload`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimRow {
    /// Pods loaded.
    pub pods: usize,
    /// Body bytes of a full LIST of every pod.
    pub list_bytes: u64,
    /// Full LIST latency.
    pub list: Lat,
    /// Body bytes of a metadata-only LIST.
    pub list_metadata_bytes: u64,
    /// Metadata-only LIST latency.
    pub list_metadata: Lat,
    /// 2,000 writes/s with 3 watches.
    pub paced: SimWrites,
    /// Flat-out writes with 3 watches.
    pub flat_out: SimWrites,
}

/// One write phase against the simulator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimWrites {
    /// Writes per second acknowledged.
    pub rate: f64,
    /// Write latency.
    pub latency: Lat,
    /// Cores the process used (simulator, writers and watch readers).
    pub cores: f64,
    /// Watch events owed to the watchers.
    pub events_expected: u64,
    /// Watch events they received.
    pub events_received: u64,
}

impl SimRow {
    /// The row of a simulator measurement.
    pub fn from(f: &crate::simload::SimFigures) -> SimRow {
        fn lat(h: &hdrhistogram::Histogram<u64>) -> Lat {
            // Histograms are in microseconds; Lat is in nanoseconds.
            Lat {
                p50: h.value_at_quantile(0.5) as f64 * 1e3,
                p95: h.value_at_quantile(0.95) as f64 * 1e3,
                p99: h.value_at_quantile(0.99) as f64 * 1e3,
                samples: h.len(),
            }
        }
        let writes = |w: &crate::simload::WritePhase| SimWrites {
            rate: w.rate(),
            latency: lat(&w.latency_us),
            cores: w.cores(),
            events_expected: w.events_expected,
            events_received: w.events_received,
        };
        SimRow {
            pods: f.pods,
            list_bytes: f.list.body_bytes,
            list: lat(&f.list.latency_us),
            list_metadata_bytes: f.list_metadata.body_bytes,
            list_metadata: lat(&f.list_metadata.latency_us),
            paced: writes(&f.paced),
            flat_out: writes(&f.flat_out),
        }
    }
}

/// A goal and whether it was met.
#[derive(Clone, Debug, PartialEq)]
pub struct Goal {
    /// What is compared.
    pub name: String,
    /// The goal as text (`<= 0.2x`).
    pub target: String,
    /// The measured value (a ratio, or a growth fraction).
    pub measured: Option<f64>,
    /// The limit `measured` must not exceed.
    pub limit: f64,
    /// The best value reachable in the same runs, where a floor was measured
    /// (the event-latency ratio cannot go below the wire's).
    pub floor: Option<f64>,
}

impl Goal {
    /// `Some(true)` when met, `None` when not measured.
    pub fn met(&self) -> Option<bool> {
        self.measured.map(|m| m <= self.limit)
    }

    /// "met", or "missed by 1.7x", or "not measured".
    pub fn verdict(&self) -> String {
        match (self.measured, self.met()) {
            (Some(_), Some(true)) => "met".into(),
            (Some(m), _) if self.limit > 0.0 => format!("missed: {:.2}x the limit", m / self.limit),
            (Some(m), _) => format!("missed: {m:.3} over a limit of 0"),
            _ => "not measured".into(),
        }
    }
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
    /// The overload scenario: kcache, kube-rs.
    pub overload: [Option<WriteSide>; 2],
    /// The scale run (`loadgen run --pods 100000 --write-qps 2000`), if any.
    pub scale: Option<Report>,
    /// The simulator on its own; `None` when not measured.
    pub sim: Option<SimRow>,
    /// Goals.
    pub goals: Vec<Goal>,
    /// Jobs that failed or whose checks failed: (id, reason).
    pub failures: Vec<(String, String)>,
    /// Runs that produced a report.
    pub runs: usize,
}

/// Variants of the sync-only scenario, in table order.
pub const SYNC_VARIANTS: [&str; 5] = ["kcache", "kcache-strip", "kcache-streaming", "kube-rs", "kube-rs-streaming"];

/// Builds the results of a comparison.
pub fn build(outcomes: &[Outcome], machine: Machine, quick: bool, wall_seconds: f64) -> Results {
    let ix = Index::new(outcomes);
    let first = |g: Group, p: &str, v: &str| ix.get(g, p, v).and_then(|m| m.values().next().copied());

    // Reads: percentiles are medians over the repeats, ratios medians of the
    // repeats' ratios.
    let rk = first(Group::Reads, "", "kcache");
    let rb = first(Group::Reads, "", "kube-rs");
    let runs = |v: &str| ix.get(Group::Reads, "", v).into_iter().flat_map(|m| m.values().copied());
    let direct = if rk.is_some() { "kcache" } else { "kube-rs" };
    let repeats: std::collections::BTreeSet<usize> =
        ["kcache", "kube-rs"].iter().filter_map(|v| ix.get(Group::Reads, "", v)).flat_map(|m| m.keys().copied()).collect();
    let p99_of = |v: &str, rep: usize| ix.get(Group::Reads, "", v).and_then(|m| m.get(&rep)).map(|r| r.cache_get_ns.p99);
    let reads = Reads {
        pods: rk.or(rb).map_or(0, |r| r.pods),
        readers: rk.or(rb).map_or(0, |r| r.readers),
        write_qps: ix.median(Group::Reads, "", direct, |r| r.write_qps_achieved).unwrap_or(0.0),
        get: [
            Lat::median_over(runs(direct), |r| &r.direct_get_ms, 1e6),
            Lat::median_over(runs("kcache"), |r| &r.cache_get_ns, 1.0),
            Lat::median_over(runs("kube-rs"), |r| &r.cache_get_ns, 1.0),
        ],
        list: [
            Lat::median_over(runs(direct), |r| &r.direct_list_1000_ms, 1e6),
            Lat::median_over(runs("kcache"), |r| &r.cache_list_1000_ns, 1.0),
            Lat::median_over(runs("kube-rs"), |r| &r.cache_list_1000_ns, 1.0),
        ],
        get_p99_by_repeat: repeats.iter().map(|&rep| [p99_of("kcache", rep), p99_of("kube-rs", rep)]).collect(),
        get_p99_ratio: ix.ratio(Group::Reads, "", "kcache", "kube-rs", |r| r.cache_get_ns.p99),
        get_hit_rate: ["kcache", "kube-rs"].map(|v| ix.median(Group::Reads, "", v, |r| r.cache_get_hit_rate.unwrap_or(f64::NAN))),
        list_p99_ratio: ix.ratio(Group::Reads, "", "kcache", "kube-rs", |r| r.cache_list_1000_ns.p99),
    };

    // Writes.
    let writes: Vec<WriteRow> = ["sync", "channel", "workqueue"].iter().filter_map(|h| WriteRow::build(&ix, h)).collect();

    // Sync-only.
    let mut sizes: Vec<u64> = outcomes
        .iter()
        .filter(|o| o.job.group == Group::Sync)
        .filter_map(|o| o.job.param.parse().ok())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let sync: Vec<SyncRow> = sizes
        .iter()
        .map(|&pods| {
            let p = pods.to_string();
            let mut variants = BTreeMap::new();
            for v in SYNC_VARIANTS {
                if let (Some(mem), Some(secs)) =
                    (ix.median(Group::Sync, &p, v, cache_bytes), ix.median(Group::Sync, &p, v, |r| r.sync_seconds))
                {
                    variants.insert(v.to_owned(), (mem, secs, ix.runs(Group::Sync, &p, v)));
                }
            }
            SyncRow {
                pods,
                variants,
                wire_bytes: ix.median(Group::Sync, &p, "kcache", |r| r.wire_bytes as f64),
                store_bytes: [
                    ix.median(Group::Sync, &p, "kcache", |r| r.store_bytes as f64),
                    ix.median(Group::Sync, &p, "kcache-strip", |r| r.store_bytes as f64),
                ],
                memory_ratio: ix.ratio(Group::Sync, &p, "kcache", "kube-rs", cache_bytes),
                memory_ratio_strip: ix.ratio(Group::Sync, &p, "kcache-strip", "kube-rs", cache_bytes),
                sync_ratio: ix.ratio(Group::Sync, &p, "kcache", "kube-rs", |r| r.sync_seconds),
                sync_ratio_streaming: ix.ratio(Group::Sync, &p, "kcache-streaming", "kube-rs-streaming", |r| r.sync_seconds),
            }
        })
        .collect();

    // Resync.
    let mut resync: Vec<ResyncRow> = outcomes
        .iter()
        .filter(|o| o.job.group == Group::Resync)
        .filter_map(|o| {
            let r = o.report.as_ref()?;
            Some(ResyncRow {
                period: o.job.param.parse().unwrap_or(0),
                variant: o.job.variant.clone(),
                seconds: r.duration_seconds,
                cpu_seconds: r.cpu_seconds,
                api_calls: r.api_calls,
                resync_events: r.resync_events,
                handler_events: r.handler_events,
                writes: r.events_expected,
            })
        })
        .collect();
    resync.sort_by(|a, b| a.variant.cmp(&b.variant).then(a.period.cmp(&b.period)));

    let scale = outcomes.iter().find(|o| o.job.group == Group::Scale).and_then(|o| o.report.clone());
    let overload = [
        first(Group::Overload, "sync", "kcache").map(WriteSide::from),
        first(Group::Overload, "sync", "kube-rs").map(WriteSide::from),
    ];

    let failures = outcomes.iter().filter_map(|o| o.error.as_ref().map(|e| (o.job.id(), e.clone()))).collect();
    let mut results = Results {
        machine,
        quick,
        wall_seconds,
        reads,
        writes,
        sync,
        resync,
        overload,
        scale,
        sim: None,
        goals: Vec::new(),
        failures,
        runs: outcomes.iter().filter(|o| o.report.is_some()).count(),
    };
    results.goals = goals(&results);
    results
}

fn ratio_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
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

/// The documented bound on kcache's memory growth under overload (docs/TUNING.md):
/// at most this many times the pods' wire bytes above the RSS after sync. Live
/// objects are the store's (1x), one queued version per pending key (1x) and
/// the final states of deleted keys awaiting delivery (up to ~1x); the arena
/// compacts segments under half live, so it holds up to 2x its live bytes:
/// 3 x 2 = 6x.
pub const OVERLOAD_BOUND_WIRE: f64 = 6.0;

/// The goals, measured.
pub fn goals(r: &Results) -> Vec<Goal> {
    let small = r.small_sync();
    let label = small.map_or_else(|| "10k".to_owned(), |s| format!("{}k", s.pods / 1000));
    let sync_w = r.write_row("sync");
    let wq = r.write_row("workqueue");
    fn side(row: Option<&WriteRow>, i: usize) -> Option<&WriteSide> {
        row.and_then(|w| w.sides[i].as_ref())
    }
    // The resync API-call check: every kcache resync run made as many LIST and
    // WATCH calls as the run without resync.
    let base = r.resync.iter().find(|x| x.variant == "kcache" && x.period == 0).and_then(|x| x.api_calls);
    let extra_calls = base.map(|b| {
        r.resync
            .iter()
            .filter(|x| x.variant == "kcache" && x.period > 0)
            .filter_map(|x| x.api_calls)
            .map(|c| c.total().saturating_sub(b.total()) as f64)
            .fold(0.0, f64::max)
    });
    vec![
        Goal {
            name: format!("memory to hold {label} pods, kcache / kube-rs"),
            target: "<= 0.2x".into(),
            measured: small.and_then(|s| s.memory_ratio),
            limit: 0.2,
            floor: None,
        },
        Goal {
            name: format!("initial sync of {label} pods, kcache / kube-rs"),
            target: "<= 0.5x".into(),
            measured: small.and_then(|s| s.sync_ratio),
            limit: 0.5,
            floor: None,
        },
        Goal {
            name: "Get one pod p99 (2 readers, 2,000 writes/s), kcache / kube-rs".into(),
            target: "<= 0.5x".into(),
            measured: r.reads.get_p99_ratio,
            limit: 0.5,
            floor: None,
        },
        Goal {
            name: "List 1,000 pods p99, kcache / kube-rs".into(),
            target: "<= 0.1x".into(),
            measured: r.reads.list_p99_ratio,
            limit: 0.1,
            floor: None,
        },
        Goal {
            name: "event p99 at 2,000 writes/s (sync handler), kcache / kube-rs".into(),
            target: "<= 0.5x".into(),
            measured: sync_w.and_then(|w| w.p99_ratio),
            limit: 0.5,
            floor: sync_w.and_then(|w| w.floor_ratio),
        },
        Goal {
            name: "kcache event p99 at 2,000 writes/s (sync handler), ms".into(),
            target: "< 10 ms".into(),
            measured: side(sync_w, 0).map(|s| s.p99_ms),
            limit: 10.0,
            floor: None,
        },
        Goal {
            name: "workqueue style RSS growth over the write phase, kcache (last third vs middle third)".into(),
            target: "<= 5% (flat)".into(),
            measured: side(wq, 0).and_then(|s| s.growth),
            limit: 0.05,
            floor: None,
        },
        Goal {
            name: "extra API calls caused by resync, kcache".into(),
            target: "0".into(),
            measured: extra_calls,
            limit: 0.0,
            floor: None,
        },
        Goal {
            name: format!(
                "peak RSS over RSS after sync with a 10x-slow handler, kcache, in units of the pods' wire bytes (bound {OVERLOAD_BOUND_WIRE})"
            ),
            target: format!("<= {OVERLOAD_BOUND_WIRE}x wire"),
            measured: r.overload[0].as_ref().filter(|s| s.wire_bytes > 0).map(|s| {
                (s.peak_rss_mb - s.rss_after_sync_mb).max(0.0) * 1_048_576.0 / s.wire_bytes as f64
            }),
            limit: OVERLOAD_BOUND_WIRE,
            floor: None,
        },
        Goal {
            name: "events lost in the 100k-pod scale run at 2,000 writes/s, kcache".into(),
            target: "0".into(),
            measured: r.scale.as_ref().map(|s| if s.cache_matches_server { s.events_lost as f64 } else { f64::INFINITY }),
            limit: 0.0,
            floor: None,
        },
    ]
}

fn pair(k: Option<f64>, b: Option<f64>) -> Value {
    json!({ "kcache": k, "kube_rs": b, "ratio": ratio_of(k, b) })
}

/// The `docs/results.json` document.
pub fn to_json(r: &Results) -> Value {
    let mut doc = serde_json::Map::new();
    doc.insert("quick".into(), json!(r.quick));
    doc.insert("date".into(), json!(r.machine.date));
    doc.insert("cores".into(), json!(r.machine.cores));
    doc.insert("cpu_model".into(), json!(r.machine.cpu_model));
    doc.insert("build_profile".into(), json!(r.machine.build_profile));
    doc.insert("wall_seconds".into(), json!(r.wall_seconds.round()));
    doc.insert("runs".into(), json!(r.runs));
    for row in &r.sync {
        let tag = format!("{}k", row.pods / 1000);
        let get = |v: &str, i: usize| row.variants.get(v).map(|t| if i == 0 { t.0 } else { t.1 });
        doc.insert(
            format!("memory_{tag}_bytes"),
            json!({
                "kcache": get("kcache", 0),
                "kube_rs": get("kube-rs", 0),
                "wire": row.wire_bytes,
                "kcache_strip_managed_fields": get("kcache-strip", 0),
                "kcache_store_json": row.store_bytes[0],
                "ratio": row.memory_ratio,
                "runs": row.variants.get("kcache").map_or(0, |t| t.2),
            }),
        );
        doc.insert(
            format!("sync_{tag}_seconds"),
            json!({
                "kcache": get("kcache", 1),
                "kube_rs": get("kube-rs", 1),
                "kcache_streaming": get("kcache-streaming", 1),
                "kube_rs_streaming": get("kube-rs-streaming", 1),
                "ratio": row.sync_ratio,
                "runs": row.variants.get("kcache").map_or(0, |t| t.2),
            }),
        );
    }
    let p99 = |l: &Option<Lat>| l.map(|l| l.p99);
    // The ratios are the goals' (median of paired ratios), not the ratio of the medians.
    let mut get = pair(p99(&r.reads.get[1]), p99(&r.reads.get[2]));
    get["direct"] = json!(p99(&r.reads.get[0]));
    get["ratio"] = json!(r.reads.get_p99_ratio);
    doc.insert("get_p99_ns".into(), get);
    doc.insert("get_hit_rate".into(), json!({ "kcache": r.reads.get_hit_rate[0], "kube_rs": r.reads.get_hit_rate[1] }));
    let mut list = pair(p99(&r.reads.list[1]), p99(&r.reads.list[2]));
    list["direct"] = json!(p99(&r.reads.list[0]));
    list["ratio"] = json!(r.reads.list_p99_ratio);
    doc.insert("list1000_p99_ns".into(), list);
    let side = |h: &str, i: usize, f: fn(&WriteSide) -> f64| r.write_row(h).and_then(|w| w.sides[i].as_ref()).map(f);
    let mut event = pair(side("sync", 0, |s| s.p99_ms), side("sync", 1, |s| s.p99_ms));
    // The goal's ratio (median of paired ratios), the floor under it, and the
    // raw watch of kcache's median run.
    let sync_w = r.write_row("sync");
    event["wire"] = json!(sync_w.and_then(|w| w.sides[0].as_ref()).and_then(|s| s.wire_p99_ms));
    event["ratio"] = json!(sync_w.and_then(|w| w.p99_ratio));
    event["floor"] = json!(sync_w.and_then(|w| w.floor_ratio));
    event["runs"] = json!(sync_w.map_or(0, |w| w.p99_by_repeat.len()));
    doc.insert("event_p99_ms_2000qps".into(), event);
    doc.insert(
        "peak_rss_mb_2000qps".into(),
        pair(side("sync", 0, |s| s.peak_rss_mb), side("sync", 1, |s| s.peak_rss_mb)),
    );
    let mut by_handler = serde_json::Map::new();
    for w in &r.writes {
        let h = w.handler.as_str();
        let mut event = pair(side(h, 0, |s| s.p99_ms), side(h, 1, |s| s.p99_ms));
        event["ratio"] = json!(w.p99_ratio);
        event["floor"] = json!(w.floor_ratio);
        by_handler.insert(
            h.to_owned(),
            json!({
                "event_p99_ms": event,
                "wire_event_p99_ms": pair(
                    side(h, 0, |s| s.wire_p99_ms.unwrap_or(f64::NAN)).filter(|v| v.is_finite()),
                    side(h, 1, |s| s.wire_p99_ms.unwrap_or(f64::NAN)).filter(|v| v.is_finite()),
                ),
                "peak_rss_mb": pair(side(h, 0, |s| s.peak_rss_mb), side(h, 1, |s| s.peak_rss_mb)),
                "rss_growth": { "kcache": side(h, 0, |s| s.growth.unwrap_or(f64::NAN)).filter(|g| g.is_finite()),
                                "kube_rs": side(h, 1, |s| s.growth.unwrap_or(f64::NAN)).filter(|g| g.is_finite()) },
                "writes_per_second": pair(side(h, 0, |s| s.qps), side(h, 1, |s| s.qps)),
            }),
        );
    }
    doc.insert("by_handler_2000qps".into(), Value::Object(by_handler));
    doc.insert(
        "resync".into(),
        Value::Array(
            r.resync
                .iter()
                .map(|x| {
                    json!({
                        "engine": x.variant, "period_seconds": x.period, "write_seconds": x.seconds,
                        "cpu_seconds": x.cpu_seconds, "resync_events": x.resync_events,
                        "list_calls": x.api_calls.map(|c| c.list), "watch_calls": x.api_calls.map(|c| c.watch),
                        "get_calls": x.api_calls.map(|c| c.get),
                    })
                })
                .collect(),
        ),
    );
    let overload = |x: &Option<WriteSide>| {
        x.as_ref().map(|s| {
            json!({
                "writes_per_second": s.qps, "rss_mb_after_sync": s.rss_after_sync_mb, "peak_rss_mb": s.peak_rss_mb,
                "rss_growth": s.growth, "events_expected": s.events_expected, "events_received": s.events_received,
                "events_lost": s.lost, "cache_matches_server": s.matches, "event_p99_ms": s.p99_ms,
                "wire_bytes": s.wire_bytes, "rss_mb_timeline": s.timeline,
            })
        })
    };
    doc.insert(
        "overload".into(),
        json!({
            "handler_cost_us": crate::compare::plan::OVERLOAD_HANDLER_COST_US,
            "bound_wire_multiple": OVERLOAD_BOUND_WIRE,
            "kcache": overload(&r.overload[0]),
            "kube_rs": overload(&r.overload[1]),
        }),
    );
    if let Some(x) = &r.scale {
        doc.insert(
            "scale".into(),
            json!({
                "pods": x.pods, "write_qps_target": x.write_qps_target, "write_qps_achieved": x.write_qps_achieved,
                "sync_seconds": x.sync_seconds, "events_expected": x.events_expected, "events_received": x.events_received,
                "events_lost": x.events_lost, "cache_matches_server": x.cache_matches_server,
                "event_latency_ms": {"p50": x.event_latency_ms.p50, "p99": x.event_latency_ms.p99, "max": x.event_latency_ms.max},
                "rss_mb_after_sync": x.rss_mb_after_sync, "rss_mb_peak_engine": x.rss_mb_peak_engine,
                "store_bytes": x.store_bytes, "wire_bytes": x.wire_bytes, "cpu_seconds": x.cpu_seconds,
            }),
        );
    }
    if let Some(x) = &r.sim {
        let writes = |w: &SimWrites| {
            json!({
                "writes_per_second": w.rate, "latency_p50_ms": w.latency.p50 / 1e6, "latency_p99_ms": w.latency.p99 / 1e6,
                "cores": w.cores, "events_expected": w.events_expected, "events_received": w.events_received,
            })
        };
        doc.insert(
            "sim".into(),
            json!({
                "pods": x.pods,
                "list_bytes": x.list_bytes, "list_p50_ms": x.list.p50 / 1e6, "list_p99_ms": x.list.p99 / 1e6,
                "list_metadata_bytes": x.list_metadata_bytes, "list_metadata_p50_ms": x.list_metadata.p50 / 1e6,
                "list_metadata_p99_ms": x.list_metadata.p99 / 1e6,
                "paced_2000": writes(&x.paced), "flat_out": writes(&x.flat_out),
            }),
        );
    }
    doc.insert(
        "goals".into(),
        Value::Array(
            r.goals
                .iter()
                .map(|g| json!({"name": g.name, "goal": g.target, "limit": g.limit, "measured": g.measured, "met": g.met()}))
                .collect(),
        ),
    );
    doc.insert(
        "failures".into(),
        Value::Array(r.failures.iter().map(|(id, e)| json!({"job": id, "error": e})).collect()),
    );
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::plan::Job;
    use crate::compare::synthetic::{complete, key_paths, machine, outcome, overload_report, pct, scale_report, sim_figures, synthetic};

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![f64::NAN]), None);
    }

    #[test]
    fn rss_growth_compares_the_last_third_with_the_middle_one() {
        assert_eq!(rss_growth(&[100.0, 100.0, 100.0]), Some(0.0));
        let g = rss_growth(&[100.0, 100.0, 150.0, 150.0, 300.0, 300.0]).unwrap();
        assert!((g - 1.0).abs() < 1e-9, "{g}");
        // A climb confined to the first third is not growth.
        assert_eq!(rss_growth(&[50.0, 80.0, 100.0, 100.0, 100.0, 100.0]), Some(0.0));
        assert_eq!(rss_growth(&[1.0, 2.0]), None);
    }

    #[test]
    fn ratios_are_medians_of_pairwise_ratios_of_the_same_repeat() {
        let r = build(&synthetic(), machine(), false, 1.0);
        let s = r.sync_row(10_000).unwrap();
        // 30/200, 30/400, 30/210 -> median 30/210.
        assert!((s.memory_ratio.unwrap() - 30.0 / 210.0).abs() < 1e-6, "{:?}", s.memory_ratio);
        // Medians per variant: kube-rs 210 MiB.
        assert!((s.variants["kube-rs"].0 - 210.0 * MIB).abs() < 1.0);
        assert_eq!(s.variants["kcache"].2, 3);
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
        assert_eq!(r.reads.get[1].map(|l| (l.p99, l.p50, l.samples)), Some((300.0, 150.0, 300)));
        assert_eq!(r.reads.get[2].map(|l| l.p99), Some(600.0));
        assert_eq!(r.reads.get_p99_ratio, Some(0.5));
        assert_eq!(r.reads.get_p99_by_repeat, vec![[Some(300.0), Some(600.0)], [Some(800.0), Some(1_000.0)], [Some(200.0), Some(500.0)]]);
        let md = crate::compare::markdown::results_md(&r, &[]);
        assert!(md.contains("Get p99 of each run, kcache / kube-rs (ratio): 300 ns / 600 ns (0.50x)"), "{md}");
        // Hit rates: kcache 97%, 99%, 99% (median 99%); kube-rs 97%, 98%, 99% (98%).
        let [k, b] = r.reads.get_hit_rate.map(|v| (v.unwrap_or(0.0) * 100.0).round());
        assert_eq!((k, b), (99.0, 98.0));
        assert!(md.contains("writes' deletes make misses): kcache 99.00%, kube-rs 98.00%."), "{md}");
        assert_eq!(to_json(&r)["get_hit_rate"]["kube_rs"].as_f64().map(|v| (v * 100.0).round()), Some(98.0));
    }

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
        let j = to_json(&r);
        assert_eq!((j["get_p99_ns"]["kcache"].as_f64(), j["get_p99_ns"]["kube_rs"].as_f64()), (Some(300.0), Some(900.0)));
        assert_eq!(j["get_p99_ns"]["ratio"], json!(0.5));
        assert_eq!(j["list1000_p99_ns"]["ratio"], json!(0.5));
        let goal = r.goals.iter().find(|g| g.name.starts_with("Get one pod")).unwrap();
        assert_eq!(goal.measured, Some(0.5));
    }

    #[test]
    fn goals_report_met_and_missed_with_the_factor() {
        let r = build(&synthetic(), machine(), false, 1.0);
        let by_name = |p: &str| r.goals.iter().find(|g| g.name.starts_with(p)).unwrap();
        assert_eq!(by_name("memory").met(), Some(true));
        assert_eq!(by_name("Get one pod").measured, Some(0.25));
        // List: 1,000 / 500,000 = 0.002 -> met.
        assert_eq!(by_name("List").met(), Some(true));
        // Event p99 4 / 10 = 0.4 -> met.
        assert_eq!(by_name("event p99").met(), Some(true));
        // Workqueue kcache RSS grows 60 -> 80 MiB: the last third is ~11% above the middle one.
        let wq = by_name("workqueue");
        assert_eq!(wq.met(), Some(false));
        assert!(wq.verdict().starts_with("missed: "), "{}", wq.verdict());
        // Same API calls with and without resync.
        assert_eq!(by_name("extra API calls").measured, Some(0.0));
        assert_eq!(by_name("extra API calls").met(), Some(true));
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
        assert_eq!(r.failures, vec![("reads-kube-rs-0".to_owned(), "boom".to_owned())]);
        let j = to_json(&r);
        assert!(j["get_p99_ns"]["kube_rs"].is_null());
        assert_eq!(j["get_p99_ns"]["kcache"], json!(100.0));
    }

    #[test]
    fn the_json_has_the_documented_keys() {
        let r = build(&synthetic(), machine(), false, 1.0);
        let j = to_json(&r);
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
        assert_eq!(row.p99_by_repeat, vec![[Some(4.0), Some(10.0)], [Some(3.0), Some(5.0)], [Some(9.0), Some(8.0)]]);
        assert_eq!(row.p99_ratio, Some(0.6));
        assert_eq!(row.floor_ratio, Some(0.375));
        // Each side is one whole run: the one with the median p99 (kcache rep 0, kube-rs rep 2).
        let [k, b] = &row.sides;
        assert_eq!((k.as_ref().unwrap().p99_ms, k.as_ref().unwrap().cpu_seconds), (4.0, 0.0));
        assert_eq!((b.as_ref().unwrap().p99_ms, b.as_ref().unwrap().cpu_seconds), (8.0, 12.0));
        let goal = r.goals.iter().find(|g| g.name.starts_with("event p99 at 2,000")).unwrap();
        assert_eq!((goal.measured, goal.floor), (Some(0.6), Some(0.375)));
        let j = to_json(&r);
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
        let j = to_json(&r);
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

    /// The key paths and value types of docs/results.json for [`complete`], as
    /// the document writer first produced them; readers of the file rely on them.
    const JSON_PATHS: &str = include_str!("testdata/results_json_paths.txt");

    fn paths_text(j: &Value) -> String {
        key_paths(j).iter().map(|(path, kind)| format!("{path}: {kind}\n")).collect()
    }

    #[test]
    fn the_json_keeps_its_key_paths_and_types() {
        let j = to_json(&complete());
        assert_eq!(paths_text(&j), JSON_PATHS);
    }

    #[test]
    fn docs_results_json_has_no_key_the_writer_lacks() {
        // docs/results.json comes from a real comparison: every figure it holds
        // is a key path of the writer's document, with the same type where both
        // are measured.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/results.json");
        let docs: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ours = to_json(&complete());
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
