//! The machine-readable report of a `loadgen run`, and its human table.

use serde::Serialize;

/// Percentiles of a latency distribution, in the unit named by the field holding it.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
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
            p99: h.value_at_quantile(0.99) as f64 / scale,
            max: h.max() as f64 / scale,
            samples: h.len(),
        }
    }
}

/// Everything one run measured. Field names are the report's JSON keys.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// `kcache` or `kube-rs`.
    pub engine: String,
    /// Handler style: `sync`, `channel` or `workqueue`.
    pub handler: String,
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
    /// Write operations acknowledged by the server during the write phase.
    pub events_expected: u64,
    /// Of those, events the handler saw.
    pub events_received: u64,
    /// `events_expected - events_received` (never negative).
    pub events_lost: u64,
    /// The cache held exactly the server's keys and resourceVersions at the end.
    pub cache_matches_server: bool,
    /// Write-acknowledged-to-handler latency, milliseconds.
    pub event_latency_ms: Percentiles,
    /// Cache get by key, nanoseconds.
    pub cache_get_ns: Percentiles,
    /// Cache list of a 1,000-pod namespace via the namespace index, nanoseconds.
    pub cache_list_1000_ns: Percentiles,
    /// GET of one pod from the API server, milliseconds.
    pub direct_get_ms: Percentiles,
    /// LIST of a 1,000-pod namespace from the API server, milliseconds.
    pub direct_list_1000_ms: Percentiles,
    /// Resident set size of this process right after sync, MiB.
    pub rss_mb_after_sync: f64,
    /// Peak resident set size of this process, MiB.
    pub rss_mb_peak: f64,
    /// Bytes of object JSON held by the store.
    pub store_bytes: u64,
    /// Bytes of those objects as the server sent them.
    pub wire_bytes: u64,
    /// CPU seconds (user + system) this process used.
    pub cpu_seconds: f64,
}

impl Report {
    /// A plain-text table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: String| {
            out.push_str(&format!("  {k:<28} {v}\n"));
        };
        row("engine / handler", format!("{} / {}", self.engine, self.handler));
        row("pods", self.pods.to_string());
        row("writes/s (target, achieved)", format!("{:.0}, {:.1}", self.write_qps_target, self.write_qps_achieved));
        row("sync", format!("{:.2} s", self.sync_seconds));
        row(
            "events (expected/recv/lost)",
            format!("{} / {} / {}", self.events_expected, self.events_received, self.events_lost),
        );
        row("cache matches server", self.cache_matches_server.to_string());
        let p = |x: &Percentiles, unit: &str| format!("p50 {:.3} {unit}  p99 {:.3} {unit}  max {:.3} {unit}", x.p50, x.p99, x.max);
        row("event latency", p(&self.event_latency_ms, "ms"));
        row("cache get", p(&self.cache_get_ns, "ns"));
        row("cache list 1000", p(&self.cache_list_1000_ns, "ns"));
        row("direct get", p(&self.direct_get_ms, "ms"));
        row("direct list 1000", p(&self.direct_list_1000_ms, "ms"));
        row("rss after sync / peak", format!("{:.1} MiB / {:.1} MiB", self.rss_mb_after_sync, self.rss_mb_peak));
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
            ("event_latency_ms", &["p50", "p90", "p99", "max"][..]),
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
    }
}
