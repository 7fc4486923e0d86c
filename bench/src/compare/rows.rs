//! The rows of a comparison, one type per scenario, each built from the indexed
//! reports of its runs: reads, writes per handler style, sync-only sizes,
//! resync runs, and the simulator on its own.
//!
//! # Guarantees
//! * A figure that could not be measured (its job failed) is `None`; it is
//!   never replaced by a guess.
//! * With several repeats, a percentile is the median over the repeats and a
//!   kcache / kube-rs ratio the median of the repeats' paired ratios
//!   ([`Index::ratio`]).

use std::collections::{BTreeMap, BTreeSet};

use kcache_loadgen::report::{ApiCalls, Percentiles, Report};

use super::exec::Outcome;
use super::plan::Group;
use super::stats::{Index, cache_bytes, median, ratio_of, rss_growth};

/// One value per engine compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Engines<T> {
    /// kcache's.
    pub kcache: T,
    /// kube-rs's.
    pub kube_rs: T,
}

impl<T> Engines<T> {
    /// Each engine's value from its variant name (`kcache`, `kube-rs`).
    pub fn by_variant(mut f: impl FnMut(&'static str) -> T) -> Engines<T> {
        Engines { kcache: f("kcache"), kube_rs: f("kube-rs") }
    }

    /// Applies `f` to each engine's value.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Engines<U> {
        Engines { kcache: f(self.kcache), kube_rs: f(self.kube_rs) }
    }

    /// References to the values.
    pub fn as_ref(&self) -> Engines<&T> {
        Engines { kcache: &self.kcache, kube_rs: &self.kube_rs }
    }

    /// The values, kcache first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        [&self.kcache, &self.kube_rs].into_iter()
    }

    /// The values with the engines' display names (`kcache`, `kube-rs`), kcache first.
    pub fn named(&self) -> [(&'static str, &T); 2] {
        [("kcache", &self.kcache), ("kube-rs", &self.kube_rs)]
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
    fn from(p: &Percentiles, to_ns: f64) -> Option<Lat> {
        (p.samples > 0).then_some(Lat { p50: p.p50 * to_ns, p95: p.p95 * to_ns, p99: p.p99 * to_ns, samples: p.samples })
    }

    /// Each percentile's median over `runs` (samples: their sum); `None` without a
    /// run that has samples.
    fn median_over<'r>(runs: impl Iterator<Item = &'r Report>, f: impl Fn(&Report) -> &Percentiles, to_ns: f64) -> Option<Lat> {
        let lats: Vec<Lat> = runs.filter_map(|r| Lat::from(f(r), to_ns)).collect();
        let of = |g: fn(&Lat) -> f64| median(lats.iter().map(g).collect());
        Some(Lat { p50: of(|l| l.p50)?, p95: of(|l| l.p95)?, p99: of(|l| l.p99)?, samples: lats.iter().map(|l| l.samples).sum() })
    }

    /// Percentiles of a histogram recorded in microseconds.
    fn from_us_histogram(h: &hdrhistogram::Histogram<u64>) -> Lat {
        Lat {
            p50: h.value_at_quantile(0.5) as f64 * 1e3,
            p95: h.value_at_quantile(0.95) as f64 * 1e3,
            p99: h.value_at_quantile(0.99) as f64 * 1e3,
            samples: h.len(),
        }
    }
}

/// One read's latency by the three ways of answering it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReadLatencies {
    /// A REST request to the API server (measured in the kcache runs).
    pub direct: Option<Lat>,
    /// kcache's cache.
    pub kcache: Option<Lat>,
    /// kube-rs's `Store`.
    pub kube_rs: Option<Lat>,
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
    /// Get one pod; each percentile the median over the repeats.
    pub get: ReadLatencies,
    /// List a 1,000-pod namespace; as `get`.
    pub list: ReadLatencies,
    /// Get p99 (ns) of each repeat.
    pub get_p99_by_repeat: Vec<Engines<Option<f64>>>,
    /// Get p99 kcache / kube-rs: the median of the repeats' ratios.
    pub get_p99_ratio: Option<f64>,
    /// Share of the timed Gets that found their pod; each the median over the repeats.
    pub get_hit_rate: Engines<Option<f64>>,
    /// List p99 kcache / kube-rs: the median of the repeats' ratios.
    pub list_p99_ratio: Option<f64>,
}

impl Reads {
    /// The reads row: percentiles are medians over the repeats, ratios medians
    /// of the repeats' ratios.
    pub fn build(ix: &Index<'_>) -> Reads {
        let reads = |v: &str| ix.get(Group::Reads, "", v);
        let (rk, rb) = (ix.first(Group::Reads, "", "kcache"), ix.first(Group::Reads, "", "kube-rs"));
        let runs = |v: &str| reads(v).into_iter().flat_map(|m| m.values().copied());
        // The direct requests run next to the kcache reads; kube-rs's stand in when kcache's failed.
        let direct = if rk.is_some() { "kcache" } else { "kube-rs" };
        let repeats: BTreeSet<usize> = ["kcache", "kube-rs"].iter().filter_map(|v| reads(v)).flat_map(|m| m.keys().copied()).collect();
        let p99_of = |v: &str, rep: usize| reads(v).and_then(|m| m.get(&rep)).map(|r| r.cache_get_ns.p99);
        let latencies = |direct_ms: fn(&Report) -> &Percentiles, cache_ns: fn(&Report) -> &Percentiles| ReadLatencies {
            direct: Lat::median_over(runs(direct), direct_ms, 1e6),
            kcache: Lat::median_over(runs("kcache"), cache_ns, 1.0),
            kube_rs: Lat::median_over(runs("kube-rs"), cache_ns, 1.0),
        };
        Reads {
            pods: rk.or(rb).map_or(0, |r| r.pods),
            readers: rk.or(rb).map_or(0, |r| r.readers),
            write_qps: ix.median(Group::Reads, "", direct, |r| r.write_qps_achieved).unwrap_or(0.0),
            get: latencies(|r| &r.direct_get_ms, |r| &r.cache_get_ns),
            list: latencies(|r| &r.direct_list_1000_ms, |r| &r.cache_list_1000_ns),
            get_p99_by_repeat: repeats.iter().map(|&rep| Engines::by_variant(|v| p99_of(v, rep))).collect(),
            get_p99_ratio: ix.ratio(Group::Reads, "", "kcache", "kube-rs", |r| r.cache_get_ns.p99),
            get_hit_rate: Engines::by_variant(|v| ix.median(Group::Reads, "", v, |r| r.cache_get_hit_rate.unwrap_or(f64::NAN))),
            list_p99_ratio: ix.ratio(Group::Reads, "", "kcache", "kube-rs", |r| r.cache_list_1000_ns.p99),
        }
    }
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
    /// The side of one run.
    pub fn from(r: &Report) -> WriteSide {
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
    /// With several repeats, each engine's run with the median event p99 (the
    /// lower middle one for an even count), so that every figure of a side
    /// comes from one run.
    pub sides: Engines<Option<WriteSide>>,
    /// Event p99 (ms) of each repeat.
    pub p99_by_repeat: Vec<Engines<Option<f64>>>,
    /// Wire p99 (ms) of each repeat's kcache run: the numerator of its floor.
    pub wire_p99_by_repeat: Vec<Option<f64>>,
    /// Event p99 kcache / kube-rs: the median of the repeats' ratios.
    pub p99_ratio: Option<f64>,
    /// The lowest event-p99 ratio any engine could show: the median over the
    /// repeats of the kcache run's wire p99 over the kube-rs run's event p99.
    pub floor_ratio: Option<f64>,
}

impl WriteRow {
    /// The row of `handler`; `None` when neither engine has a run.
    pub fn build(ix: &Index<'_>, handler: &str) -> Option<WriteRow> {
        let runs = Engines::by_variant(|v| ix.get(Group::Writes, handler, v));
        if runs.iter().all(Option::is_none) {
            return None;
        }
        let repeats: BTreeSet<usize> = runs.iter().flatten().flat_map(|m| m.keys().copied()).collect();
        let p99_by_repeat: Vec<Engines<Option<f64>>> =
            repeats.iter().map(|&rep| runs.map(|m| at(m, rep).map(|r| r.event_latency_ms.p99))).collect();
        let wire_p99_by_repeat: Vec<Option<f64>> = repeats.iter().map(|&rep| at(runs.kcache, rep).and_then(wire_p99)).collect();
        // The floor pairs two different figures, so it cannot go through `Index::ratio`.
        let floor_ratio =
            median(wire_p99_by_repeat.iter().zip(&p99_by_repeat).filter_map(|(wire, p99)| ratio_of(*wire, p99.kube_rs)).collect());
        Some(WriteRow {
            handler: handler.to_owned(),
            pods: runs.kcache.or(runs.kube_rs).and_then(|m| m.values().next()).map_or(0, |r| r.pods),
            sides: runs.map(|m| m.and_then(median_run).map(WriteSide::from)),
            p99_ratio: ix.ratio(Group::Writes, handler, "kcache", "kube-rs", |r| r.event_latency_ms.p99),
            floor_ratio,
            p99_by_repeat,
            wire_p99_by_repeat,
        })
    }
}

/// The report of repeat `rep` among `runs`.
fn at<'r>(runs: Option<&BTreeMap<usize, &'r Report>>, rep: usize) -> Option<&'r Report> {
    runs.and_then(|m| m.get(&rep).copied())
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

/// Variants of the sync-only scenario, in table order.
pub const SYNC_VARIANTS: [&str; 5] = ["kcache", "kcache-strip", "kcache-streaming", "kube-rs", "kube-rs-streaming"];

/// One variant's sync-only runs at one size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SyncVariant {
    /// Median memory the synced cache added ([`cache_bytes`]), bytes.
    pub cache_bytes: f64,
    /// Median seconds from engine start to synced.
    pub sync_seconds: f64,
    /// Runs with a report.
    pub runs: usize,
}

/// Sync-only runs at one size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncRow {
    /// Pods.
    pub pods: u64,
    /// By variant name ([`SYNC_VARIANTS`]); a variant without a run is absent.
    pub variants: BTreeMap<String, SyncVariant>,
    /// Median wire bytes of the objects (from the kcache runs).
    pub wire_bytes: Option<f64>,
    /// Median bytes of JSON kcache's store holds.
    pub store_bytes: Option<f64>,
    /// As `store_bytes`, with managedFields stripped (kcache-strip).
    pub store_bytes_strip: Option<f64>,
    /// Pair-wise memory ratio kcache / kube-rs.
    pub memory_ratio: Option<f64>,
    /// Pair-wise memory ratio kcache-strip / kube-rs.
    pub memory_ratio_strip: Option<f64>,
    /// Pair-wise sync-time ratio kcache / kube-rs (both paginated).
    pub sync_ratio: Option<f64>,
    /// Pair-wise sync-time ratio kcache-streaming / kube-rs-streaming.
    pub sync_ratio_streaming: Option<f64>,
}

impl SyncRow {
    /// The row of the sync-only runs of `pods` pods.
    pub fn build(ix: &Index<'_>, pods: u64) -> SyncRow {
        let p = pods.to_string();
        let median = |v: &str, f: fn(&Report) -> f64| ix.median(Group::Sync, &p, v, f);
        let variants = SYNC_VARIANTS
            .iter()
            .filter_map(|&v| {
                let cache_bytes = median(v, cache_bytes)?;
                let sync_seconds = median(v, |r| r.sync_seconds)?;
                Some((v.to_owned(), SyncVariant { cache_bytes, sync_seconds, runs: ix.runs(Group::Sync, &p, v) }))
            })
            .collect();
        SyncRow {
            pods,
            variants,
            wire_bytes: median("kcache", |r| r.wire_bytes as f64),
            store_bytes: median("kcache", |r| r.store_bytes as f64),
            store_bytes_strip: median("kcache-strip", |r| r.store_bytes as f64),
            memory_ratio: ix.ratio(Group::Sync, &p, "kcache", "kube-rs", cache_bytes),
            memory_ratio_strip: ix.ratio(Group::Sync, &p, "kcache-strip", "kube-rs", cache_bytes),
            sync_ratio: ix.ratio(Group::Sync, &p, "kcache", "kube-rs", |r| r.sync_seconds),
            sync_ratio_streaming: ix.ratio(Group::Sync, &p, "kcache-streaming", "kube-rs-streaming", |r| r.sync_seconds),
        }
    }

    /// Runs of the kcache variant (0 without one).
    pub fn kcache_runs(&self) -> usize {
        self.variants.get("kcache").map_or(0, |v| v.runs)
    }
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

impl ResyncRow {
    /// The row of a resync run; `None` for another scenario or without a report.
    pub fn from(o: &Outcome) -> Option<ResyncRow> {
        let r = o.report.as_ref().filter(|_| o.job.group == Group::Resync)?;
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
    }
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
        let writes = |w: &crate::simload::WritePhase| SimWrites {
            rate: w.rate(),
            latency: Lat::from_us_histogram(&w.latency_us),
            cores: w.cores(),
            events_expected: w.events_expected,
            events_received: w.events_received,
        };
        SimRow {
            pods: f.pods,
            list_bytes: f.list.body_bytes,
            list: Lat::from_us_histogram(&f.list.latency_us),
            list_metadata_bytes: f.list_metadata.body_bytes,
            list_metadata: Lat::from_us_histogram(&f.list_metadata.latency_us),
            paced: writes(&f.paced),
            flat_out: writes(&f.flat_out),
        }
    }
}

/// One round of typed Gets: each engine timed next to the other.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TypedGetRound {
    /// kcache's typed view, default cache bound, reads of kept objects.
    pub kcache: Lat,
    /// kube-rs's `Store<Pod>::get` on the same keys.
    pub kube_rs: Lat,
    /// kcache's typed view reading objects it does not keep: one decode each.
    pub kcache_decode: Lat,
}

/// Typed Get: `kcache::typed::Store<Pod>::get` against kube-rs's
/// `reflector::Store<Pod>::get`, measured in the `compare` process
/// ([`super::typed`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypedGetRow {
    /// Pods in each cache.
    pub pods: usize,
    /// Keys the hit-path Gets cycle through (within kcache's default cache bound).
    pub hot_keys: usize,
    /// kcache, reads of kept objects: each percentile the median over the rounds.
    pub kcache: Lat,
    /// kube-rs, as `kcache`.
    pub kube_rs: Lat,
    /// kcache, reads of objects not kept (a decode each), as `kcache`.
    pub kcache_decode: Lat,
    /// p99 (ns) of each round.
    pub p99_by_round: Vec<Engines<f64>>,
    /// p99 kcache / kube-rs: the median of the rounds' ratios.
    pub p99_ratio: Option<f64>,
}

impl TypedGetRow {
    /// The row of `rounds` (`None` without one).
    pub fn from_rounds(pods: usize, hot_keys: usize, rounds: &[TypedGetRound]) -> Option<TypedGetRow> {
        if rounds.is_empty() {
            return None;
        }
        let med = |f: fn(&TypedGetRound) -> Lat| {
            let lats: Vec<Lat> = rounds.iter().map(f).collect();
            let of = |g: fn(&Lat) -> f64| median(lats.iter().map(g).collect()).unwrap_or(f64::NAN);
            Lat { p50: of(|l| l.p50), p95: of(|l| l.p95), p99: of(|l| l.p99), samples: lats.iter().map(|l| l.samples).sum() }
        };
        Some(TypedGetRow {
            pods,
            hot_keys,
            kcache: med(|r| r.kcache),
            kube_rs: med(|r| r.kube_rs),
            kcache_decode: med(|r| r.kcache_decode),
            p99_by_round: rounds.iter().map(|r| Engines { kcache: r.kcache.p99, kube_rs: r.kube_rs.p99 }).collect(),
            p99_ratio: median(rounds.iter().filter_map(|r| ratio_of(Some(r.kcache.p99), Some(r.kube_rs.p99))).collect()),
        })
    }
}

impl Lat {
    /// Percentiles of a histogram recorded in nanoseconds.
    pub fn from_ns_histogram(h: &hdrhistogram::Histogram<u64>) -> Lat {
        Lat {
            p50: h.value_at_quantile(0.5) as f64,
            p95: h.value_at_quantile(0.95) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            samples: h.len(),
        }
    }
}

/// One engine's figures in one round of the reconcile measurement ([`super::reconcile`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReconcileRun {
    /// Seconds from the controller's start until every pod was reconciled once: the
    /// initial LIST, decode and cache fill included.
    pub initial_seconds: f64,
    /// Pods / the seconds from a reconcile-all trigger until every pod was
    /// reconciled again: the steady-state rate.
    pub reconcile_all_per_s: f64,
}

/// Reconcile throughput of a no-op controller over the same pods: kcache's
/// `Controller<Pod>` against kube-rs's `Controller<Pod>`, measured in the
/// `compare` process ([`super::reconcile`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReconcileRow {
    /// Pods reconciled in each phase.
    pub pods: usize,
    /// Concurrent reconciles of each controller (one per core).
    pub workers: usize,
    /// Median over the rounds of each engine's initial-phase seconds.
    pub initial_seconds: Engines<f64>,
    /// Median over the rounds of each engine's reconcile-all rate (reconciles/s).
    pub per_s: Engines<f64>,
    /// Each round's figures.
    pub by_round: Vec<Engines<ReconcileRun>>,
    /// Reconcile-all rate kcache / kube-rs: the median of the rounds' ratios (above 1
    /// is kcache faster).
    pub ratio: Option<f64>,
    /// Initial-phase seconds kcache / kube-rs: the median of the rounds' ratios
    /// (below 1 is kcache faster).
    pub initial_ratio: Option<f64>,
    /// Each round's figures of kcache's controller keeping every decoded object
    /// (`Controller::decoded_cache`), run in the same rounds; empty when not measured.
    pub kept_by_round: Vec<ReconcileRun>,
    /// Median over the rounds of that controller's reconcile-all rate.
    pub kept_per_s: Option<f64>,
    /// Its reconcile-all rate / kube-rs's: the median of the rounds' ratios.
    pub kept_ratio: Option<f64>,
}

impl ReconcileRow {
    /// The row of `rounds` (`None` without one); `kept` holds the same rounds' runs of
    /// kcache keeping every decode (empty, or one per round).
    pub fn from_rounds(pods: usize, workers: usize, rounds: &[Engines<ReconcileRun>], kept: &[ReconcileRun]) -> Option<ReconcileRow> {
        if rounds.is_empty() {
            return None;
        }
        let med = |f: fn(&ReconcileRun) -> f64| {
            Engines {
                kcache: median(rounds.iter().map(|r| f(&r.kcache)).collect()).unwrap_or(f64::NAN),
                kube_rs: median(rounds.iter().map(|r| f(&r.kube_rs)).collect()).unwrap_or(f64::NAN),
            }
        };
        let ratio = |f: fn(&ReconcileRun) -> f64| {
            median(rounds.iter().filter_map(|r| ratio_of(Some(f(&r.kcache)), Some(f(&r.kube_rs)))).collect())
        };
        Some(ReconcileRow {
            pods,
            workers,
            initial_seconds: med(|r| r.initial_seconds),
            per_s: med(|r| r.reconcile_all_per_s),
            by_round: rounds.to_vec(),
            ratio: ratio(|r| r.reconcile_all_per_s),
            initial_ratio: ratio(|r| r.initial_seconds),
            kept_by_round: kept.to_vec(),
            kept_per_s: median(kept.iter().map(|k| k.reconcile_all_per_s).collect()),
            kept_ratio: median(
                kept.iter().zip(rounds).filter_map(|(k, r)| ratio_of(Some(k.reconcile_all_per_s), Some(r.kube_rs.reconcile_all_per_s))).collect(),
            ),
        })
    }
}
