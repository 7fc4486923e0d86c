//! Prometheus metrics of work queues, with client-go's names and labels.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `workqueue_depth` | gauge | keys waiting (client-go counts a key re-added while processing too) |
//! | `workqueue_adds_total` | counter | adds that were not duplicates of a waiting key |
//! | `workqueue_queue_duration_seconds` | histogram | time from add to `get` |
//! | `workqueue_work_duration_seconds` | histogram | time from `get` to `done` |
//! | `workqueue_unfinished_work_seconds` | gauge | sum of the ages of the keys being processed |
//! | `workqueue_longest_running_processor_seconds` | gauge | age of the oldest key being processed |
//! | `workqueue_retries_total` | counter | calls to `add_after` / `add_rate_limited` |
//!
//! Every series carries the label `name` = the queue's name. Histogram buckets are
//! client-go's: 10 ns × 10^i for i in 0..10 (10 ns .. 10 s).
//!
//! # Differences from client-go
//! client-go refreshes the two "unfinished" gauges from a goroutine every 500 ms;
//! kcache computes them when the registry is encoded (a [`Collector`]), so they are
//! exact at scrape time and an idle queue runs no background thread for them.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The label set of every work queue series: the queue's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: String,
}

/// The queues whose unfinished work the collector reports, by label set.
type WatchedQueues = Arc<Mutex<Vec<(QueueLabels, Weak<dyn UnfinishedWork>)>>>;

type HistogramFamily = Family<QueueLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // client-go: prometheus.ExponentialBuckets(10e-9, 10, 10).
    Histogram::new(exponential_buckets(10e-9, 10.0, 10))
}

/// The metric families of work queues, registered once in a [`Registry`] and shared
/// by every queue that reports into it.
///
/// Register it once per registry and hand it to every queue (registering the
/// same names twice would describe each family twice, an exposition Prometheus
/// rejects). [`crate::metrics::Metrics`] holds one, with the informer and
/// controller families, and is accepted by
/// [`WorkQueueBuilder::metrics`](super::WorkQueueBuilder::metrics) too. The
/// builder also accepts `&mut Registry`, which registers a new set: only for a
/// registry with a single queue. Queues with the same name share their series,
/// as in client-go.
///
/// ```
/// use prometheus_client::registry::Registry;
/// use kcache::queue::{WorkQueue, WorkQueueMetrics, render};
///
/// let mut registry = Registry::default();
/// let metrics = WorkQueueMetrics::register(&mut registry);
/// let pods: WorkQueue<String> = WorkQueue::builder().name("pods").metrics(&metrics).build();
/// let nodes: WorkQueue<String> = WorkQueue::builder().name("nodes").metrics(&metrics).build();
/// pods.add("default/web".to_string());
/// nodes.add("node-1".to_string());
/// nodes.add("node-2".to_string());
/// let text = render(&registry);
/// assert!(text.contains(r#"workqueue_depth{name="pods"} 1"#));
/// assert!(text.contains(r#"workqueue_adds_total{name="nodes"} 2"#));
/// ```
#[derive(Clone, Debug)]
pub struct WorkQueueMetrics {
    depth: Family<QueueLabels, Gauge>,
    adds: Family<QueueLabels, Counter>,
    queue_duration: HistogramFamily,
    work_duration: HistogramFamily,
    retries: Family<QueueLabels, Counter>,
    queues: WatchedQueues,
}

impl WorkQueueMetrics {
    /// Registers the work queue metric families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = WorkQueueMetrics {
            depth: Family::default(),
            adds: Family::default(),
            queue_duration: Family::new_with_constructor(duration_histogram),
            work_duration: Family::new_with_constructor(duration_histogram),
            retries: Family::default(),
            queues: Arc::default(),
        };
        registry.register("workqueue_depth", "Current depth of workqueue", m.depth.clone());
        registry.register("workqueue_adds", "Total number of adds handled by workqueue", m.adds.clone());
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            m.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            m.work_duration.clone(),
        );
        registry.register("workqueue_retries", "Total number of retries handled by workqueue", m.retries.clone());
        registry.register_collector(Box::new(UnfinishedCollector { queues: Arc::clone(&m.queues) }));
        m
    }

    /// The handles one queue updates, bound to its name.
    pub(crate) fn for_queue(&self, name: &str) -> QueueMetrics {
        let labels = QueueLabels { name: name.to_owned() };
        QueueMetrics {
            depth: self.depth.get_or_create_owned(&labels),
            adds: self.adds.get_or_create_owned(&labels),
            queue_duration: self.queue_duration.get_or_create_owned(&labels),
            work_duration: self.work_duration.get_or_create_owned(&labels),
            retries: self.retries.get_or_create_owned(&labels),
            labels,
        }
    }

    /// Makes the collector ask `queue` for its unfinished work on every scrape.
    pub(crate) fn watch_unfinished(&self, queue_metrics: &QueueMetrics, queue: Weak<dyn UnfinishedWork>) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.retain(|(_, q)| q.strong_count() > 0);
        queues.push((queue_metrics.labels.clone(), queue));
    }
}

impl From<&mut Registry> for WorkQueueMetrics {
    fn from(registry: &mut Registry) -> Self {
        WorkQueueMetrics::register(registry)
    }
}

impl From<&WorkQueueMetrics> for WorkQueueMetrics {
    fn from(metrics: &WorkQueueMetrics) -> Self {
        metrics.clone()
    }
}

/// One queue's metric handles (each an `Arc` into the shared family).
#[derive(Debug)]
pub(crate) struct QueueMetrics {
    pub(crate) depth: Gauge,
    pub(crate) adds: Counter,
    pub(crate) queue_duration: Histogram,
    pub(crate) work_duration: Histogram,
    pub(crate) retries: Counter,
    labels: QueueLabels,
}

/// What a queue reports about the keys it is processing, at scrape time.
pub(crate) trait UnfinishedWork: Send + Sync {
    /// `(sum of ages, oldest age)` of the keys being processed, in seconds.
    fn unfinished_work(&self) -> (f64, f64);
}

#[derive(Debug)]
struct UnfinishedCollector {
    queues: WatchedQueues,
}

impl std::fmt::Debug for dyn UnfinishedWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnfinishedWork")
    }
}

impl Collector for UnfinishedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let unfinished = Family::<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let longest = Family::<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            queues.retain(|(_, q)| q.strong_count() > 0);
            for (labels, queue) in queues.iter() {
                if let Some(queue) = queue.upgrade() {
                    let (total, oldest) = queue.unfinished_work();
                    unfinished.get_or_create(labels).set(total);
                    longest.get_or_create(labels).set(oldest);
                }
            }
        }
        let e = encoder.encode_descriptor(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has done that is in progress and hasn't been observed by work_duration. \
             Large values indicate stuck threads. One can deduce the number of stuck threads by observing \
             the rate at which this increases.",
            None,
            unfinished.metric_type(),
        )?;
        unfinished.encode(e)?;
        let e = encoder.encode_descriptor(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            None,
            longest.metric_type(),
        )?;
        longest.encode(e)
    }
}

/// Encodes `registry` in the Prometheus text exposition format (OpenMetrics text,
/// as `prometheus_client` writes it).
///
/// ```
/// use prometheus_client::registry::Registry;
/// use kcache::queue::{WorkQueue, render};
///
/// let mut registry = Registry::default();
/// let q: WorkQueue<u32> = WorkQueue::builder().name("jobs").metrics(&mut registry).build();
/// q.add(7);
/// assert!(render(&registry).contains(r#"workqueue_adds_total{name="jobs"} 1"#));
/// ```
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an error could only come from a
    // collector, and then the partial text is still the most useful answer.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
