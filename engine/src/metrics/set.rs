//! [`Metrics`]: every kcache metric family of one registry, registered once.

use prometheus_client::registry::Registry;

use super::controller::{ControllerFamilies, ControllerMetrics};
use crate::informer::{Informer, InformerMetrics};
use crate::queue::WorkQueueMetrics;

/// The metric families of informers, work queues and controllers, registered
/// once in one [`Registry`] and shared by everything that reports into it.
///
/// Each informer, queue and controller adds its own label values to the shared
/// families (`informer`, `name` and `controller`), so the exposition describes
/// every family once, however many of them report. Create one `Metrics` per
/// registry with [`Metrics::register`]; registering a second one in the same
/// registry would describe every family twice, which Prometheus rejects.
///
/// Informers, queues and controllers can be added at any time, also after the
/// registry was handed to `kcache::metrics::serve`: adding one changes the
/// shared families, not the registry.
///
/// ```
/// use prometheus_client::registry::Registry;
/// use kcache::metrics::{Metrics, render};
/// use kcache::queue::WorkQueue;
///
/// let mut registry = Registry::default();
/// let metrics = Metrics::register(&mut registry);
/// let a: WorkQueue<String> = WorkQueue::builder().name("queue-a").metrics(&metrics).build();
/// let b: WorkQueue<String> = WorkQueue::builder().name("queue-b").metrics(&metrics).build();
/// a.add("default/web".to_owned());
/// b.add("node-1".to_owned());
/// b.add("node-2".to_owned());
/// let text = render(&registry);
/// assert_eq!(text.matches("# TYPE workqueue_depth gauge").count(), 1);
/// assert!(text.contains(r#"workqueue_depth{name="queue-a"} 1"#));
/// assert!(text.contains(r#"workqueue_depth{name="queue-b"} 2"#));
/// ```
#[derive(Clone, Debug)]
pub struct Metrics {
    informers: InformerMetrics,
    queues: WorkQueueMetrics,
    controllers: ControllerFamilies,
}

impl Metrics {
    /// Registers every kcache family in `registry`: the informers'
    /// (`kcache_informer_*`), the work queues' (`workqueue_*`) and the
    /// controllers' (`controller_runtime_*`). Call it once per registry.
    pub fn register(registry: &mut Registry) -> Metrics {
        Metrics {
            informers: InformerMetrics::register(registry),
            queues: WorkQueueMetrics::register(registry),
            controllers: ControllerFamilies::register(registry),
        }
    }

    /// Reports `informer` under the label `informer = name` from the next scrape
    /// on, until the informer is dropped. Give each informer its own name:
    /// informers added under one name are reported as one (counters and sizes
    /// summed).
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    /// use kcache::informer::{Informer, InformerConfig};
    /// use kcache::metrics::{Metrics, render};
    /// use kcache::testing::MemorySource;
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let src = MemorySource::new("Pod");
    /// src.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "a"}}));
    /// let informer = Informer::spawn(src, InformerConfig::default()).unwrap();
    /// assert!(informer.wait_for_sync(std::time::Duration::from_secs(30)).await);
    /// let mut registry = Registry::default();
    /// let metrics = Metrics::register(&mut registry);
    /// metrics.informer("pods", &informer);
    /// let text = render(&registry);
    /// assert!(text.contains(r#"kcache_informer_store_objects{informer="pods"} 1"#), "{text}");
    /// # });
    /// ```
    pub fn informer(&self, name: &str, informer: &Informer) {
        self.informers.add(name, informer);
    }

    /// The work queue families, for [`WorkQueueBuilder::metrics`](crate::queue::WorkQueueBuilder::metrics)
    /// (which also takes `&Metrics` directly). Each queue is told apart by its
    /// name (the `name` label); queues with the same name share their series, as
    /// in client-go.
    pub fn queues(&self) -> &WorkQueueMetrics {
        &self.queues
    }

    /// The reconcile metrics of the controller `name` (the `controller` label).
    /// Its series appear at once, at zero. Asking twice for one name gives
    /// handles to the same series.
    pub fn controller(&self, name: &str) -> ControllerMetrics {
        self.controllers.for_controller(name)
    }
}

impl From<&Metrics> for WorkQueueMetrics {
    fn from(metrics: &Metrics) -> Self {
        metrics.queues.clone()
    }
}
