//! Prometheus metrics of informers: watch traffic, recoveries, cache size, sync.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `kcache_informer_events_total` | counter | object events decoded (list items included) |
//! | `kcache_informer_relists_total` | counter | lists caused by an expired resourceVersion (410) |
//! | `kcache_informer_watch_restarts_total` | counter | watches reopened after a close, timeout or error |
//! | `kcache_informer_decode_errors_total` | counter | frames or bodies that failed to decode |
//! | `kcache_informer_errors_total` | counter | errors of any kind recovered from |
//! | `kcache_informer_received_bytes_total` | counter | response bytes received |
//! | `kcache_informer_handler_panics_total` | counter | handler panics caught |
//! | `kcache_informer_store_objects` | gauge | objects in the store |
//! | `kcache_informer_store_bytes` | gauge | bytes the store's objects hold (zstd frames for compressed ones) |
//! | `kcache_informer_store_uncompressed_bytes` | gauge | JSON bytes of the store's objects, uncompressed (this and the three below: only while an informer compresses) |
//! | `kcache_informer_compression_dictionary_bytes` | gauge | memory of the live zstd dictionaries |
//! | `kcache_informer_compression_refused_total` | counter | objects stored uncompressed because compressing them did not pay or they were too large |
//! | `kcache_informer_compression_corrupt_frames_total` | counter | compressed bodies that failed to decompress |
//! | `kcache_informer_arena_segment_bytes` | gauge | arena memory allocated for object bytes |
//! | `kcache_informer_fifo_backlog_keys` | gauge | keys with deltas waiting for their shard thread |
//! | `kcache_informer_synced` | gauge | 1 once the first list is in the store |
//! | `kcache_informer_sync_duration_seconds` | gauge | start to first complete list |
//!
//! Every series carries the label `informer` = the name given at registration.
//! Values are read from the informer's own counters when the registry is
//! encoded, so an informer pays nothing for being registered.
//!
//! # Guarantees
//! * One collector per [`InformerMetrics`], so each family is described once in
//!   the exposition however many informers report into it.
//! * A dropped informer's series disappear at the next scrape.
//! * Informers registered under the same name are reported as one: counters and
//!   sizes are summed, `synced` is 1 only when all of them synced, and the sync
//!   duration is the longest.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::informer::{Informer, InformerInner};

/// One gauge per informer, holding a float.
type GaugeFamily = Family<InformerLabels, Gauge<f64, AtomicU64>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InformerLabels {
    informer: String,
}

type Registered = Arc<Mutex<Vec<(InformerLabels, Weak<InformerInner>)>>>;

/// The informer side of a metrics set: one collector in one [`Registry`], to
/// which any number of informers are added, each under its own name.
///
/// Built by `kcache::metrics::Metrics::register`, which is the public way in.
#[derive(Clone, Default)]
pub(crate) struct InformerMetrics {
    informers: Registered,
}

impl std::fmt::Debug for InformerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.informers.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("InformerMetrics").field("informers", &n).finish()
    }
}

impl InformerMetrics {
    /// Registers the informer families in `registry` (one collector for all of them).
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = InformerMetrics::default();
        registry.register_collector(Box::new(InformerCollector { informers: Arc::clone(&metrics.informers) }));
        metrics
    }

    /// Reports `informer` under the label `informer = name` from the next scrape on.
    pub(crate) fn add(&self, name: &str, informer: &Informer) {
        let mut informers = self.informers.lock().unwrap_or_else(PoisonError::into_inner);
        informers.retain(|(_, i)| i.strong_count() > 0);
        informers.push((InformerLabels { informer: name.to_owned() }, Arc::downgrade(&informer.inner)));
    }
}

struct InformerCollector {
    informers: Registered,
}

impl std::fmt::Debug for InformerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InformerCollector").finish_non_exhaustive()
    }
}

impl Collector for InformerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [(&str, &str, Family<InformerLabels, Counter>); 7] = [
            ("kcache_informer_events", "Object events decoded (list items included).", Family::default()),
            ("kcache_informer_relists", "Lists caused by an expired resourceVersion.", Family::default()),
            ("kcache_informer_watch_restarts", "Watches reopened after a close, timeout or error.", Family::default()),
            ("kcache_informer_decode_errors", "Frames or bodies that failed to decode.", Family::default()),
            ("kcache_informer_errors", "Errors of any kind recovered from.", Family::default()),
            ("kcache_informer_received_bytes", "Response bytes received.", Family::default()),
            ("kcache_informer_handler_panics", "Handler panics caught.", Family::default()),
        ];
        // Described only when an informer compresses.
        let z_counters: [(&str, &str, Family<InformerLabels, Counter>); 2] = [
            (
                "kcache_informer_compression_refused",
                "Objects stored uncompressed because compressing them did not pay or they were too large.",
                Family::default(),
            ),
            ("kcache_informer_compression_corrupt_frames", "Compressed bodies that failed to decompress.", Family::default()),
        ];
        let z_sizes: [(&str, &str, GaugeFamily); 2] = [
            ("kcache_informer_store_uncompressed_bytes", "JSON bytes of the store's objects, uncompressed.", Family::default()),
            ("kcache_informer_compression_dictionary_bytes", "Memory of the live zstd dictionaries.", Family::default()),
        ];
        let mut any_compressing = false;
        let sizes: [(&str, &str, GaugeFamily); 4] = [
            ("kcache_informer_store_objects", "Objects in the store.", Family::default()),
            ("kcache_informer_store_bytes", "Bytes the store's objects hold (zstd frames for compressed ones).", Family::default()),
            ("kcache_informer_arena_segment_bytes", "Arena memory allocated for object bytes.", Family::default()),
            ("kcache_informer_fifo_backlog_keys", "Keys with deltas waiting for their shard thread.", Family::default()),
        ];
        let synced: GaugeFamily = Family::default();
        let sync_duration: GaugeFamily = Family::default();
        {
            let mut informers = self.informers.lock().unwrap_or_else(PoisonError::into_inner);
            informers.retain(|(_, i)| i.strong_count() > 0);
            for (labels, inner) in informers.iter() {
                let Some(inner) = inner.upgrade() else { continue };
                let informer = Informer { inner };
                let w = informer.stats();
                let fifo = informer.fifo_stats();
                let values = [
                    w.events.load(Relaxed),
                    w.relists.load(Relaxed),
                    w.watch_restarts.load(Relaxed),
                    w.decode_errors.load(Relaxed),
                    w.errors.load(Relaxed),
                    w.bytes.load(Relaxed),
                    fifo.handler_panics,
                ];
                for ((_, _, family), v) in counters.iter().zip(values) {
                    let _ = family.get_or_create(labels).inc_by(v);
                }
                let store = informer.store().stats();
                let size_values = [
                    store.objects as f64,
                    store.json_bytes as f64,
                    informer.arena_stats().segment_bytes as f64,
                    fifo.backlog_keys.iter().sum::<usize>() as f64,
                ];
                for ((_, _, family), v) in sizes.iter().zip(size_values) {
                    family.get_or_create(labels).inc_by(v);
                }
                if let Some(z) = informer.compression_stats() {
                    any_compressing = true;
                    for ((_, _, family), v) in z_counters.iter().zip([z.incompressible_objects + z.too_large_objects, z.corrupt_frames]) {
                        let _ = family.get_or_create(labels).inc_by(v);
                    }
                    for ((_, _, family), v) in z_sizes.iter().zip([store.uncompressed_bytes as f64, z.dictionary_bytes as f64]) {
                        family.get_or_create(labels).inc_by(v);
                    }
                }
                // Same-name informers: synced only when all are, the slowest sync.
                let first = synced.get(labels).is_none();
                let is_synced = if informer.has_synced() { 1.0 } else { 0.0 };
                let gauge = synced.get_or_create(labels);
                gauge.set(if first { is_synced } else { gauge.get().min(is_synced) });
                let took = informer.sync_duration().map_or(0.0, |d| d.as_secs_f64());
                let gauge = sync_duration.get_or_create(labels);
                gauge.set(gauge.get().max(took));
            }
        }
        for (name, help, family) in &counters {
            let e = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(e)?;
        }
        for (name, help, family) in &sizes {
            let e = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(e)?;
        }
        if any_compressing {
            for (name, help, family) in &z_counters {
                let e = encoder.encode_descriptor(name, help, None, family.metric_type())?;
                family.encode(e)?;
            }
            for (name, help, family) in &z_sizes {
                let e = encoder.encode_descriptor(name, help, None, family.metric_type())?;
                family.encode(e)?;
            }
        }
        let e = encoder.encode_descriptor(
            "kcache_informer_synced",
            "1 once the first list is in the store.",
            None,
            synced.metric_type(),
        )?;
        synced.encode(e)?;
        let e = encoder.encode_descriptor(
            "kcache_informer_sync_duration_seconds",
            "Seconds from start to the first complete list.",
            None,
            sync_duration.metric_type(),
        )?;
        sync_duration.encode(e)
    }
}
