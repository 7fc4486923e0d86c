//! The machine-readable report of a `loadgen run`, and its human table.
//!
//! # Guarantees
//! * JSON keys are stable: fields are only ever added. A report written by an
//!   older `loadgen` still parses (missing fields take their defaults), which is
//!   what the comparison runner relies on.

use serde::{Deserialize, Serialize};

const NANOS_PER_MS: f64 = 1e6;
const NANOS_PER_S: f64 = 1e9;

/// `nanos` nanoseconds for a person: three significant digits in ns, µs, ms or
/// s, whichever puts them in 1..1000 (`584 ns`, `12.3 µs`, `1.09 ms`). The
/// rounding comes first, so 999.5 µs reads `1.00 ms`, not `1000 µs`.
///
/// ```
/// use kcache_loadgen::report::human_duration;
/// assert_eq!(human_duration(1_087_487.0), "1.09 ms");
/// assert_eq!(human_duration(584.0), "584 ns");
/// ```
pub fn human_duration(nanos: f64) -> String {
    if nanos == 0.0 || !nanos.is_finite() {
        return format!("{nanos} ns");
    }
    // `{:.2e}` rounds the exact decimal value to three significant digits,
    // so a boundary such as 999.5 is not left to a float division.
    let rounded: f64 = format!("{:.2e}", nanos.abs()).parse().unwrap_or(nanos.abs());
    let (value, unit) = if rounded < 1e3 {
        (rounded, "ns")
    } else if rounded < 1e6 {
        (rounded / 1e3, "µs")
    } else if rounded < 1e9 {
        (rounded / 1e6, "ms")
    } else {
        (rounded / 1e9, "s")
    };
    let sign = if nanos < 0.0 { "-" } else { "" };
    if value >= 100.0 {
        format!("{sign}{value:.0} {unit}")
    } else if value >= 10.0 {
        format!("{sign}{value:.1} {unit}")
    } else {
        format!("{sign}{value:.2} {unit}")
    }
}

/// Percentiles of a latency distribution, in the unit named by the field holding it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples.
    pub samples: u64,
}

impl Percentiles {
    /// Percentiles of an hdrhistogram, each value divided by `scale`
    /// (e.g. 1000.0 to turn microseconds into milliseconds).
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>, scale: f64) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50) as f64 / scale,
            p90: h.value_at_quantile(0.90) as f64 / scale,
            p95: h.value_at_quantile(0.95) as f64 / scale,
            p99: h.value_at_quantile(0.99) as f64 / scale,
            max: h.max() as f64 / scale,
            samples: h.len(),
        }
    }
}

/// API requests the engine made while it ran, counted by the simulator
/// (`GET /_sim/stats` before the engine started and after the write phase, so
/// the run's own writes and verification reads are not included).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ApiCalls {
    /// LIST requests (paginated lists count one per page).
    pub list: u64,
    /// WATCH requests (streaming lists included).
    pub watch: u64,
    /// GET requests of single objects.
    pub get: u64,
}

impl ApiCalls {
    /// All three kinds together.
    pub fn total(&self) -> u64 {
        self.list + self.watch + self.get
    }
}

/// Everything one run measured. Field names are the report's JSON keys.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Report {
    /// `kcache` or `kube-rs`.
    pub engine: String,
    /// Handler style: `sync`, `channel` or `workqueue`.
    pub handler: String,
    /// Work per event the handler was given (`--handler-cost-us`), microseconds.
    #[serde(default)]
    pub handler_cost_us: u64,
    /// Which process drove the writes: `child` (a `loadgen write` process, so
    /// this report's RSS and CPU are the engine's alone) or `in-process`.
    pub writer: String,
    /// Pods created before the write phase.
    pub pods: u64,
    /// Requested writes per second.
    pub write_qps_target: f64,
    /// Writes per second actually completed.
    pub write_qps_achieved: f64,
    /// Seconds of the write phase.
    pub duration_seconds: f64,
    /// Seconds from informer start to synced.
    pub sync_seconds: f64,
    /// The run's own writes acknowledged by the server during the write phase.
    pub events_expected: u64,
    /// Of those, writes at least one of whose events the handlers saw (an
    /// event is the run's when its resourceVersion is the one the write was
    /// answered with; coalescing may skip a write's event, not a key's last state).
    pub events_received: u64,
    /// Keys whose last write by the run never reached the handlers (a later
    /// change by another writer counts as reaching them).
    pub events_lost: u64,
    /// Handler events the run's own writes caused (a delete causes two: the
    /// MODIFIED marking it and DELETED).
    #[serde(default)]
    pub events_own: u64,
    /// Of those, the updates' and creates' events: the samples of `event_latency_ms`.
    #[serde(default)]
    pub events_own_timed: u64,
    /// Handler events other writers caused (kubelets, controllers, garbage
    /// collectors), during the write phase and verification; not timed.
    #[serde(default)]
    pub events_from_others: u64,
    /// The run's writes the server refused (e.g. a pod another writer deleted).
    #[serde(default)]
    pub write_errors: u64,
    /// The cache agreed with the server's state at `verified_at_resource_version`,
    /// keys changed after it excepted (docs/KIND.md, "How a run verifies").
    pub cache_matches_server: bool,
    /// What the verification read and found, in words.
    #[serde(default)]
    pub verification: String,
    /// The resourceVersion of the server state the cache was compared with.
    #[serde(default)]
    pub verified_at_resource_version: u64,
    /// The run's own update or create sent to the handler seeing its event,
    /// milliseconds (other writers' events are not timed).
    pub event_latency_ms: Percentiles,
    /// Write sent to its event read off a raw watch of the same pods by the
    /// writer's process (no decode, no store, no handler), milliseconds: the
    /// floor under `event_latency_ms` that the API server, the connections and
    /// the machine's scheduling set. Empty when the watch could not be opened.
    pub wire_event_latency_ms: Percentiles,
    /// Threads that timed the cache reads, during the write phase (0: reads not
    /// timed).
    pub readers: u64,
    /// Cache get by key, nanoseconds, timed by `readers` threads during the writes.
    pub cache_get_ns: Percentiles,
    /// Share of those Gets that found their object (`None`: no Gets timed). The
    /// keys are the cache's as the writes start, so the writes' deletes make misses.
    #[serde(default)]
    pub cache_get_hit_rate: Option<f64>,
    /// Cache list of a 1,000-pod namespace (kcache: via the namespace index),
    /// nanoseconds, timed by the same threads.
    pub cache_list_1000_ns: Percentiles,
    /// GET of one pod from the API server, milliseconds.
    pub direct_get_ms: Percentiles,
    /// LIST of a 1,000-pod namespace from the API server, milliseconds.
    pub direct_list_1000_ms: Percentiles,
    /// Resident set size of this process just before the engine started, MiB:
    /// `rss_mb_after_sync - rss_mb_before_engine` is the synced cache's own memory.
    pub rss_mb_before_engine: f64,
    /// Resident set size of this process right after sync, MiB.
    pub rss_mb_after_sync: f64,
    /// Peak resident set size of this process, MiB.
    pub rss_mb_peak: f64,
    /// Peak resident set size from engine start to the end of the write phase,
    /// MiB (the peak is reset before the engine starts, so pod creation does not
    /// count; equals `rss_mb_peak` where the kernel cannot reset it).
    pub rss_mb_peak_engine: f64,
    /// Resident set size once a second during the write phase, MiB.
    pub rss_mb_timeline: Vec<f64>,
    /// Bytes of objects the store really holds: zstd frames for compressed
    /// objects, JSON for the others (their uncompressed metadata is not included).
    pub store_bytes: u64,
    /// JSON bytes of the same objects, uncompressed (equal to `store_bytes` when
    /// the store does not compress).
    #[serde(default)]
    pub store_uncompressed_bytes: u64,
    /// kcache kept object bodies compressed (`loadgen run --compress`).
    #[serde(default)]
    pub compressed: bool,
    /// Bytes of those objects as the server sent them: the size of the final
    /// verification LIST body (its ~100-byte envelope included).
    pub wire_bytes: u64,
    /// CPU seconds (user + system) this process used.
    pub cpu_seconds: f64,
    /// API requests the engine made from its start to the end of the write
    /// phase; `None` when the target is not the simulator.
    pub api_calls: Option<ApiCalls>,
    /// Handler events of any kind (adds, updates, deletes, resyncs).
    pub handler_events: u64,
    /// Of those, resync deliveries (`on_update` with the same object twice).
    pub resync_events: u64,
    /// The engine listed with a streaming list (`sendInitialEvents=true`).
    pub streaming_list: bool,
    /// The informer's resync period, seconds (0: none).
    pub resync_seconds: f64,
    /// managedFields were stripped at decode time.
    pub strip_managed_fields: bool,
    /// The simulator bulk-loaded the pods itself (no HTTP creates).
    pub preload: bool,
    /// The run's id (its namespaces' names and its pods' run label).
    #[serde(default)]
    pub run_id: String,
    /// The run's namespaces.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Engine processes (`--replicas`); 1 for a run whose own process is the
    /// engine (older reports without the field read as 0).
    pub replicas: u64,
    /// Each replica's resident set size right after its sync, MiB.
    pub rss_mb_after_sync_per_replica: Vec<f64>,
    /// Bytes of object JSON each replica's store held once the ring settled
    /// (each pod in one replica's slice) before the writes; one engine: after sync.
    pub store_bytes_per_replica: Vec<u64>,
    /// The ring's lease duration, seconds (0: not sharded).
    pub lease_duration_seconds: f64,
    /// The replica `--kill-replica-at` SIGKILLed, if any.
    pub killed_replica: Option<u64>,
    /// From the kill until every key the killed replica owned had been
    /// reconciled by a survivor, seconds; `None` without a kill, or when some
    /// key never was (run/replicas.rs).
    pub takeover_seconds: Option<f64>,
    /// Keys two replicas reconciled in overlapping intervals (must be 0).
    pub double_reconciles: u64,
    /// Keys on the server at the end that no replica reconciled (must be 0;
    /// always 0 for one engine, whose handlers are checked by `events_lost`).
    pub keys_never_reconciled: u64,
    /// What each replica caches: `slice` (its own ranges, through the server-side
    /// shard selector), `everything` (the server ignores the selector; the
    /// controller filters), or empty for one engine.
    pub replica_cache: String,
    /// The replicas elected one leader on a Lease (`--leader-election`) instead
    /// of sharding: each cached every pod, only the leader reconciled.
    pub leader_election: bool,
    /// With `leader_election`: from the kill (or pause) of the leader until the
    /// first reconcile start by another replica, seconds; `None` without a
    /// kill or pause, or when no other replica reconciled after it.
    pub failover_seconds: Option<f64>,
    /// The replica `--pause-replica-at` SIGSTOPped (and later SIGCONTed), if any.
    pub paused_replica: Option<u64>,
}

impl Report {
    /// A plain-text table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: String| {
            out.push_str(&format!("  {k:<28} {v}\n"));
        };
        row("run", format!("{} ({} namespaces)", self.run_id, self.namespaces.len()));
        row("engine / handler", format!("{} / {}", self.engine, self.handler));
        row("writer", self.writer.clone());
        row("pods", self.pods.to_string());
        row("writes/s (target, achieved)", format!("{:.0}, {:.1}", self.write_qps_target, self.write_qps_achieved));
        row("sync", human_duration(self.sync_seconds * NANOS_PER_S));
        row(
            "events (expected/recv/lost)",
            format!("{} / {} / {}", self.events_expected, self.events_received, self.events_lost),
        );
        row("events from other writers", self.events_from_others.to_string());
        if self.write_errors > 0 {
            row("writes refused", self.write_errors.to_string());
        }
        row("cache matches server", self.cache_matches_server.to_string());
        if !self.verification.is_empty() {
            row("verified against", self.verification.clone());
        }
        // A measurement the run skipped (`--no-read-timings`, `--duration 0`) has no
        // samples: say so rather than print zeros that read as very fast (a report
        // from before `samples` was recorded has percentiles and no count).
        // `nanos`: how many nanoseconds one unit of the field's figures is.
        let p = |x: &Percentiles, nanos: f64| {
            if x.samples == 0 && x.max == 0.0 {
                return "not measured in this run".to_owned();
            }
            let t = |v: f64| human_duration(v * nanos);
            format!("p50 {}  p95 {}  p99 {}  max {}", t(x.p50), t(x.p95), t(x.p99), t(x.max))
        };
        row("event latency", p(&self.event_latency_ms, NANOS_PER_MS));
        row("wire event latency", p(&self.wire_event_latency_ms, NANOS_PER_MS));
        row("cache get", p(&self.cache_get_ns, 1.0));
        if let Some(rate) = self.cache_get_hit_rate {
            row("cache get hit rate", format!("{:.2}%", rate * 100.0));
        }
        row("cache list 1000", p(&self.cache_list_1000_ns, 1.0));
        row("direct get", p(&self.direct_get_ms, NANOS_PER_MS));
        row("direct list 1000", p(&self.direct_list_1000_ms, NANOS_PER_MS));
        row(
            "rss before / after sync",
            format!(
                "{:.1} MiB / {:.1} MiB (cache {:.1} MiB)",
                self.rss_mb_before_engine,
                self.rss_mb_after_sync,
                self.rss_mb_after_sync - self.rss_mb_before_engine
            ),
        );
        row("rss peak (engine / process)", format!("{:.1} MiB / {:.1} MiB", self.rss_mb_peak_engine, self.rss_mb_peak));
        row(
            "store / wire bytes",
            format!(
                "{:.1} MiB / {:.1} MiB ({:.2}x)",
                self.store_bytes as f64 / 1048576.0,
                self.wire_bytes as f64 / 1048576.0,
                if self.wire_bytes > 0 { self.store_bytes as f64 / self.wire_bytes as f64 } else { 0.0 }
            ),
        );
        row("cpu", format!("{:.2} s", self.cpu_seconds));
        if let Some(calls) = &self.api_calls {
            row("engine api calls", format!("{} list, {} watch, {} get", calls.list, calls.watch, calls.get));
        }
        row("handler events (resyncs)", format!("{} ({})", self.handler_events, self.resync_events));
        if self.replicas > 1 {
            let election = if self.leader_election { ", leader election" } else { "" };
            row("replicas (lease)", format!("{} ({:.0} s{election})", self.replicas, self.lease_duration_seconds));
            let rss: Vec<String> = self.rss_mb_after_sync_per_replica.iter().map(|mb| format!("{mb:.1}")).collect();
            row("rss after sync per replica", format!("{} MiB", rss.join(" / ")));
            let store: Vec<String> = self.store_bytes_per_replica.iter().map(|b| format!("{:.1}", *b as f64 / 1048576.0)).collect();
            row("store per replica", format!("{} MiB (cache: {})", store.join(" / "), self.replica_cache));
            if let Some(killed) = self.killed_replica {
                let takeover = self.takeover_seconds.map_or("not complete".to_owned(), |s| format!("{s:.2} s"));
                row("takeover (replica killed)", format!("{takeover} (replica {killed})"));
            }
            if let Some(paused) = self.paused_replica {
                row("replica paused", format!("replica {paused}"));
            }
            if self.leader_election && (self.killed_replica.is_some() || self.paused_replica.is_some()) {
                let failover = self.failover_seconds.map_or("no other replica reconciled".to_owned(), |s| format!("{s:.2} s"));
                row("failover (leader lost)", failover);
            }
            row("double reconciles", self.double_reconciles.to_string());
            row("keys never reconciled", self.keys_never_reconciled.to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_has_the_documented_numeric_keys() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for v in 1..=100 {
            h.record(v * 1000).unwrap();
        }
        let r = Report { pods: 10, event_latency_ms: Percentiles::from_histogram(&h, 1000.0), ..Report::default() };
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "pods", "write_qps_target", "write_qps_achieved", "sync_seconds", "events_expected", "events_received",
            "events_lost", "rss_mb_after_sync", "rss_mb_peak", "store_bytes", "wire_bytes", "cpu_seconds",
        ] {
            assert!(v[key].is_number(), "{key} should be a number: {}", v[key]);
        }
        assert!(v["cache_matches_server"].is_boolean());
        for (key, subs) in [
            ("event_latency_ms", &["p50", "p90", "p95", "p99", "max"][..]),
            ("cache_get_ns", &["p50", "p99"][..]),
            ("cache_list_1000_ns", &["p50", "p99"][..]),
            ("direct_get_ms", &["p50", "p99"][..]),
            ("direct_list_1000_ms", &["p50", "p99"][..]),
        ] {
            for s in subs {
                assert!(v[key][s].is_number(), "{key}.{s}");
            }
        }
        let p99 = v["event_latency_ms"]["p99"].as_f64().unwrap();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        let p95 = v["event_latency_ms"]["p95"].as_f64().unwrap();
        assert!((94.0..=96.5).contains(&p95), "{p95}");
    }

    #[test]
    fn the_table_says_which_timings_were_not_taken() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        h.record(1500).unwrap();
        let r = Report { event_latency_ms: Percentiles::from_histogram(&h, 1000.0), ..Report::default() };
        let table = r.table();
        let line = |name: &str| table.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_default().to_owned();
        assert!(line("event latency").contains("p50 1.50 ms"), "{table}");
        for skipped in ["cache get ", "cache list 1000", "direct get", "direct list 1000", "wire event latency"] {
            assert!(line(skipped).ends_with("not measured in this run"), "{skipped}: {table}");
        }
    }

    #[test]
    fn durations_read_in_the_unit_that_keeps_three_digits() {
        for (nanos, shown) in [
            (0.0, "0 ns"),
            (1.0, "1.00 ns"),
            (12.34, "12.3 ns"),
            (584.0, "584 ns"),
            (999.0, "999 ns"),
            (999.4, "999 ns"),
            (999.5, "1.00 µs"),
            (1_000.0, "1.00 µs"),
            (12_345.0, "12.3 µs"),
            (999_000.0, "999 µs"),
            (999_499.0, "999 µs"),
            (999_500.0, "1.00 ms"),
            (1_000_000.0, "1.00 ms"),
            (1_087_487.0, "1.09 ms"),
            (999_500_000.0, "1.00 s"),
            (1_000_000_000.0, "1.00 s"),
            (61_234_000_000.0, "61.2 s"),
            (1_234_000_000_000.0, "1230 s"),
        ] {
            assert_eq!(human_duration(nanos), shown, "{nanos} ns");
        }
    }

    #[test]
    fn the_table_prints_each_latency_in_its_own_unit() {
        let r = Report {
            event_latency_ms: Percentiles { p50: 1.087487, p95: 0.5842, p99: 12.3, max: 1500.0, samples: 9, ..Percentiles::default() },
            cache_get_ns: Percentiles { p50: 584.0, p95: 999.0, p99: 12_345.0, max: 999_500.0, samples: 9, ..Percentiles::default() },
            sync_seconds: 0.25,
            ..Report::default()
        };
        let table = r.table();
        let line = |name: &str| table.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_default().to_owned();
        assert!(line("event latency").ends_with("p50 1.09 ms  p95 584 µs  p99 12.3 ms  max 1.50 s"), "{table}");
        assert!(line("cache get ").ends_with("p50 584 ns  p95 999 ns  p99 12.3 µs  max 1.00 ms"), "{table}");
        assert!(line("sync").ends_with(" 250 ms"), "{table}");
    }

    #[test]
    fn a_report_round_trips_and_an_older_report_still_parses() {
        let r = Report {
            engine: "kcache".into(),
            rss_mb_timeline: vec![1.0, 2.0],
            api_calls: Some(ApiCalls { list: 1, watch: 2, get: 0 }),
            ..Report::default()
        };
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.rss_mb_timeline, vec![1.0, 2.0]);
        assert_eq!(back.api_calls.map(|c| c.total()), Some(3));
        let old: Report = serde_json::from_str(r#"{"engine":"kube-rs","pods":5,"event_latency_ms":{"p50":1,"p99":2}}"#).unwrap();
        assert_eq!((old.pods, old.event_latency_ms.p99, old.event_latency_ms.p95), (5, 2.0, 0.0));
        assert!(old.api_calls.is_none());
    }
}
