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
//! | `kcache_informer_store_objects` | gauge | objects in the store |
//! | `kcache_informer_store_bytes` | gauge | JSON bytes the store's objects hold |
//! | `kcache_informer_arena_segment_bytes` | gauge | arena memory allocated for object bytes |
//! | `kcache_informer_synced` | gauge | 1 once the first list is in the store |
//! | `kcache_informer_sync_duration_seconds` | gauge | start to first complete list |
//!
//! Every series carries the label `informer` = the name given at registration.
//! Values are read from the informer's own counters when the registry is
//! encoded, so an informer pays nothing for being registered.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::informer::{Informer, InformerInner};

/// One gauge per informer, holding a float.
type GaugeFamily = Family<InformerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InformerLabels {
    informer: String,
}

type Registered = Arc<Mutex<Vec<(InformerLabels, Weak<InformerInner>)>>>;

struct InformerCollector {
    informers: Registered,
}

impl std::fmt::Debug for InformerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InformerCollector").finish_non_exhaustive()
    }
}

/// Registers `informer`'s metrics in `registry` under the label `informer = name`.
///
/// ```
/// use prometheus_client::registry::Registry;
/// use kcache::informer::{Informer, InformerConfig};
/// use kcache::testing::MemorySource;
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let src = MemorySource::new("Pod");
/// src.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "a"}}));
/// let informer = Informer::spawn(src, InformerConfig::default()).unwrap();
/// assert!(informer.wait_for_sync(std::time::Duration::from_secs(10)).await);
/// let mut registry = Registry::default();
/// kcache::metrics::register_informer(&mut registry, "pods", &informer);
/// let text = kcache::metrics::render(&registry);
/// assert!(text.contains(r#"kcache_informer_store_objects{informer="pods"} 1"#), "{text}");
/// # });
/// ```
pub fn register_informer(registry: &mut Registry, name: &str, informer: &Informer) {
    let informers: Registered = Arc::new(Mutex::new(vec![(
        InformerLabels { informer: name.to_owned() },
        Arc::downgrade(&informer.inner),
    )]));
    registry.register_collector(Box::new(InformerCollector { informers }));
}

impl Collector for InformerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let counters: [(&str, &str, Family<InformerLabels, Counter>); 6] = [
            ("kcache_informer_events", "Object events decoded (list items included).", Family::default()),
            ("kcache_informer_relists", "Lists caused by an expired resourceVersion.", Family::default()),
            ("kcache_informer_watch_restarts", "Watches reopened after a close, timeout or error.", Family::default()),
            ("kcache_informer_decode_errors", "Frames or bodies that failed to decode.", Family::default()),
            ("kcache_informer_errors", "Errors of any kind recovered from.", Family::default()),
            ("kcache_informer_received_bytes", "Response bytes received.", Family::default()),
        ];
        let gauges: [(&str, &str, GaugeFamily); 5] = [
            ("kcache_informer_store_objects", "Objects in the store.", Family::default()),
            ("kcache_informer_store_bytes", "JSON bytes the store's objects hold.", Family::default()),
            ("kcache_informer_arena_segment_bytes", "Arena memory allocated for object bytes.", Family::default()),
            ("kcache_informer_synced", "1 once the first list is in the store.", Family::default()),
            ("kcache_informer_sync_duration_seconds", "Seconds from start to the first complete list.", Family::default()),
        ];
        {
            let mut informers = self.informers.lock().unwrap_or_else(PoisonError::into_inner);
            informers.retain(|(_, i)| i.strong_count() > 0);
            for (labels, inner) in informers.iter() {
                let Some(inner) = inner.upgrade() else { continue };
                let informer = Informer { inner };
                let w = informer.stats();
                let values = [
                    w.events.load(Relaxed),
                    w.relists.load(Relaxed),
                    w.watch_restarts.load(Relaxed),
                    w.decode_errors.load(Relaxed),
                    w.errors.load(Relaxed),
                    w.bytes.load(Relaxed),
                ];
                for ((_, _, family), v) in counters.iter().zip(values) {
                    let _ = family.get_or_create(labels).inc_by(v);
                }
                let store = informer.store().stats();
                let gauge_values = [
                    store.objects as f64,
                    store.json_bytes as f64,
                    informer.arena_stats().segment_bytes as f64,
                    if informer.has_synced() { 1.0 } else { 0.0 },
                    informer.sync_duration().map_or(0.0, |d| d.as_secs_f64()),
                ];
                for ((_, _, family), v) in gauges.iter().zip(gauge_values) {
                    family.get_or_create(labels).set(v);
                }
            }
        }
        for (name, help, family) in &counters {
            let e = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(e)?;
        }
        for (name, help, family) in &gauges {
            let e = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(e)?;
        }
        Ok(())
    }
}
