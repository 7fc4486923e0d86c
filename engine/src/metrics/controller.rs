//! Reconcile metrics of controllers, with controller-runtime's names and labels.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: &'static str,
}

type HistogramFamily = Family<ControllerLabels, Histogram, fn() -> Histogram>;

/// controller-runtime's `ReconcileTime` buckets (pkg/internal/controller/metrics/metrics.go).
const RECONCILE_TIME_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
    1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0,
];

fn reconcile_time_histogram() -> Histogram {
    Histogram::new(RECONCILE_TIME_BUCKETS)
}

/// The controller families of one metrics set, registered once in a [`Registry`].
#[derive(Clone, Debug)]
pub(crate) struct ControllerFamilies {
    total: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabels, Counter>,
    panics: Family<ControllerLabels, Counter>,
    time: HistogramFamily,
    max_concurrent: Family<ControllerLabels, Gauge>,
    active: Family<ControllerLabels, Gauge>,
}

impl ControllerFamilies {
    /// Registers the controller families in `registry`, with controller-runtime's
    /// help texts.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let f = ControllerFamilies {
            total: Family::default(),
            errors: Family::default(),
            panics: Family::default(),
            time: Family::new_with_constructor(reconcile_time_histogram),
            max_concurrent: Family::default(),
            active: Family::default(),
        };
        // prometheus-client appends `_total` to counters.
        registry.register("controller_runtime_reconcile", "Total number of reconciliations per controller", f.total.clone());
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            f.errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_panics",
            "Total number of reconciliation panics per controller",
            f.panics.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            f.time.clone(),
        );
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            f.max_concurrent.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            f.active.clone(),
        );
        f
    }

    /// The handle of the controller `name`; every series it owns appears at once,
    /// at zero, as controller-runtime's `initMetrics` does.
    pub(crate) fn for_controller(&self, name: &str) -> ControllerMetrics {
        let labels = ControllerLabels { controller: name.to_owned() };
        let total = |result: ReconcileResult| {
            self.total.get_or_create_owned(&ResultLabels { controller: name.to_owned(), result: result.label() })
        };
        ControllerMetrics {
            inner: Arc::new(Handles {
                success: total(ReconcileResult::Success),
                error: total(ReconcileResult::Error),
                requeue: total(ReconcileResult::Requeue),
                requeue_after: total(ReconcileResult::RequeueAfter),
                errors: self.errors.get_or_create_owned(&labels),
                panics: self.panics.get_or_create_owned(&labels),
                time: self.time.get_or_create_owned(&labels),
                max_concurrent: self.max_concurrent.get_or_create_owned(&labels),
                active: self.active.get_or_create_owned(&labels),
                name: labels.controller,
            }),
        }
    }
}

/// How a reconcile ended, as the `result` label of `controller_runtime_reconcile_total`
/// counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// Done: nothing more until the object changes (`result="success"`).
    Success,
    /// The reconcile returned an error (`result="error"`, and
    /// `controller_runtime_reconcile_errors_total`).
    Error,
    /// The reconcile panicked and the panic was caught. Counted as an error
    /// (`result="error"` and `controller_runtime_reconcile_errors_total`), as
    /// controller-runtime turns a recovered panic into an error, and in
    /// `controller_runtime_reconcile_panics_total`.
    Panic,
    /// Reconcile again through the rate limiter (`result="requeue"`).
    Requeue,
    /// Reconcile again after a delay (`result="requeue_after"`).
    RequeueAfter,
}

impl ReconcileResult {
    /// The `result` label value (controller-runtime's `labelSuccess`, `labelError`,
    /// `labelRequeue`, `labelRequeueAfter` in pkg/internal/controller/controller.go).
    pub fn label(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Error | ReconcileResult::Panic => "error",
            ReconcileResult::Requeue => "requeue",
            ReconcileResult::RequeueAfter => "requeue_after",
        }
    }
}

#[derive(Debug)]
struct Handles {
    name: String,
    success: Counter,
    error: Counter,
    requeue: Counter,
    requeue_after: Counter,
    errors: Counter,
    panics: Counter,
    time: Histogram,
    max_concurrent: Gauge,
    active: Gauge,
}

/// One controller's reconcile metrics, labelled `controller = name`: what a
/// reconcile loop reports, with controller-runtime's names.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `controller_runtime_reconcile_total` | counter | `controller`, `result` = `success`, `error`, `requeue`, `requeue_after` |
/// | `controller_runtime_reconcile_errors_total` | counter | `controller` |
/// | `controller_runtime_reconcile_panics_total` | counter | `controller` |
/// | `controller_runtime_reconcile_time_seconds` | histogram | `controller` |
/// | `controller_runtime_max_concurrent_reconciles` | gauge | `controller` |
/// | `controller_runtime_active_workers` | gauge | `controller` |
///
/// Get one from [`Metrics::controller`](super::Metrics::controller); cloning is
/// cheap (one `Arc`), and clones update the same series.
///
/// # How a controller calls it
/// 1. When it starts its workers: [`set_max_concurrent_reconciles`](Self::set_max_concurrent_reconciles)`(workers)`.
/// 2. In each worker, right after the queue hands it a key:
///    `let reconciling = metrics.reconcile_started();` — this raises
///    `controller_runtime_active_workers` and starts the clock.
/// 3. When the reconcile returns (or its panic is caught):
///    `reconciling.finish(result)` with the [`ReconcileResult`] that matches what
///    the controller does with the key: `Success` when it forgets it, `Requeue`
///    when it re-adds it rate limited, `RequeueAfter` when it adds it after a
///    delay, `Error` on an error (an error wins over a requested requeue, as in
///    controller-runtime), `Panic` on a caught panic. With
///    [`Action`](crate::controller::Action): `Ok(Action::Done)` is `Success`,
///    `Ok(Action::Requeue)` is `Requeue`, `Ok(Action::RequeueAfter(_))` is
///    `RequeueAfter`, `Err(_)` is `Error`. `finish` records the duration in
///    `controller_runtime_reconcile_time_seconds`, counts the result, and lowers
///    the active-worker gauge.
/// 4. A [`Reconciling`] dropped without `finish` (the reconcile future was
///    cancelled at shutdown) only lowers the active-worker gauge: the reconcile
///    did not end, so nothing is counted.
///
/// ```
/// use prometheus_client::registry::Registry;
/// use kcache::metrics::{Metrics, ReconcileResult, render};
///
/// let mut registry = Registry::default();
/// let metrics = Metrics::register(&mut registry);
/// let pods = metrics.controller("pods");
/// pods.set_max_concurrent_reconciles(2);
///
/// // In a worker, for each key the queue hands out:
/// let reconciling = pods.reconcile_started();
/// let outcome: Result<(), &str> = Err("conflict"); // reconcile(key)
/// reconciling.finish(match outcome {
///     Ok(()) => ReconcileResult::Success,
///     Err(_) => ReconcileResult::Error,
/// });
///
/// let text = render(&registry);
/// assert!(text.contains(r#"controller_runtime_reconcile_total{controller="pods",result="error"} 1"#));
/// assert!(text.contains(r#"controller_runtime_reconcile_total{controller="pods",result="success"} 0"#));
/// assert!(text.contains(r#"controller_runtime_reconcile_errors_total{controller="pods"} 1"#));
/// assert!(text.contains(r#"controller_runtime_max_concurrent_reconciles{controller="pods"} 2"#));
/// assert!(text.contains(r#"controller_runtime_active_workers{controller="pods"} 0"#));
/// assert!(text.contains(r#"controller_runtime_reconcile_time_seconds_count{controller="pods"} 1"#));
/// ```
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    inner: Arc<Handles>,
}

impl ControllerMetrics {
    /// The controller's name (the `controller` label).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Sets `controller_runtime_max_concurrent_reconciles`: the number of workers
    /// the controller runs.
    pub fn set_max_concurrent_reconciles(&self, workers: usize) {
        self.inner.max_concurrent.set(i64::try_from(workers).unwrap_or(i64::MAX));
    }

    /// A worker starts reconciling a key: raises `controller_runtime_active_workers`
    /// until the returned guard is finished or dropped, and times the reconcile.
    #[must_use = "the reconcile is counted by `Reconciling::finish`"]
    pub fn reconcile_started(&self) -> Reconciling {
        self.inner.active.inc();
        Reconciling { inner: Arc::clone(&self.inner), started: Instant::now() }
    }

    /// Counts one reconcile that ended with `result` after `duration`, for a
    /// controller that times reconciles itself; it leaves the active-worker
    /// gauge alone ([`reconcile_started`](Self::reconcile_started) and
    /// [`Reconciling::finish`] do both).
    pub fn reconcile_finished(&self, result: ReconcileResult, duration: Duration) {
        self.inner.record(result, duration);
    }
}

impl Handles {
    fn record(&self, result: ReconcileResult, duration: Duration) {
        self.time.observe(duration.as_secs_f64());
        let counter = match result {
            ReconcileResult::Success => &self.success,
            ReconcileResult::Error | ReconcileResult::Panic => &self.error,
            ReconcileResult::Requeue => &self.requeue,
            ReconcileResult::RequeueAfter => &self.requeue_after,
        };
        counter.inc();
        if matches!(result, ReconcileResult::Error | ReconcileResult::Panic) {
            self.errors.inc();
        }
        if result == ReconcileResult::Panic {
            self.panics.inc();
        }
    }
}

/// A reconcile in progress, from [`ControllerMetrics::reconcile_started`].
///
/// [`finish`](Self::finish) counts it; dropping it without `finish` only lowers
/// the active-worker gauge.
#[derive(Debug)]
#[must_use = "the reconcile is counted by `finish`"]
pub struct Reconciling {
    inner: Arc<Handles>,
    started: Instant,
}

impl Reconciling {
    /// The reconcile ended with `result`: records its duration and counts it.
    /// Returns the duration, for logging.
    pub fn finish(self, result: ReconcileResult) -> Duration {
        let took = self.started.elapsed();
        self.inner.record(result, took);
        took
    }
}

impl Drop for Reconciling {
    fn drop(&mut self) {
        self.inner.active.dec();
    }
}
