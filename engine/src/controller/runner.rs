//! The worker loop every controller runs: take a key, reconcile it under a span,
//! act on the outcome, count it.
//!
//! # Guarantees
//! * One key is reconciled by at most one worker at a time (workqueue rules).
//! * A panic in a reconcile (or an error policy) is caught, counted and retried
//!   through the rate limiter; the worker goes on with the next key.
//! * After the shutdown signal no reconcile starts; in-flight ones finish. With a
//!   shutdown timeout, reconciles still running when it expires are aborted, logged
//!   with their keys and counted.
//! * With a leadership handle, reconciles run only while leading (`leading.rs`).

use crate::metrics::{ControllerMetrics, ReconcileResult};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::Instrument;

use super::key::ReconcileKey;
use super::leading;
use crate::lease::Leadership;
use crate::queue::WorkQueue;

/// What to do with a key after a reconcile.
///
/// kube-rs's `Action` is a struct with an optional delay; its constructors
/// [`Action::requeue`] and [`Action::await_change`] are here too.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more until the object changes again.
    Done,
    /// Reconcile again soon, through the rate limiter (per-key exponential backoff:
    /// the retry an error policy usually wants).
    Requeue,
    /// Reconcile again after this delay (and forget past failures).
    RequeueAfter(Duration),
}

impl Action {
    /// Reconcile again after `duration` (kube-rs's `Action::requeue`).
    pub const fn requeue(duration: Duration) -> Self {
        Action::RequeueAfter(duration)
    }

    /// Nothing more until the object changes (kube-rs's `Action::await_change`).
    pub const fn await_change() -> Self {
        Action::Done
    }
}

/// Counters of one running controller, for logs and metrics.
///
/// Every reconcile ends in exactly one of `successes`, `requeues_rate_limited`,
/// `requeues_after`, `errors`, `panics` or `skipped`: controller-runtime's
/// `controller_runtime_reconcile_total{controller=name, result=...}` is
/// `success` = `successes`, `requeue` = `requeues_rate_limited`, `requeue_after` =
/// `requeues_after`, `error` = `errors + panics`; its
/// `controller_runtime_reconcile_errors_total` is `errors + panics`,
/// `controller_runtime_reconcile_panics_total` is `panics`,
/// `controller_runtime_active_workers` is `active`, and
/// `controller_runtime_reconcile_time_seconds` has `reconcile_nanos` as its sum.
#[derive(Debug, Default)]
pub struct ControllerStats {
    name: String,
    /// Reconciles started.
    pub reconciles: AtomicU64,
    /// Reconciles that returned [`Action::Done`].
    pub successes: AtomicU64,
    /// Reconciles that returned `Err` (the error policy then decided the retry), or
    /// whose object did not decode as the controller's kind.
    pub errors: AtomicU64,
    /// Reconciles that panicked.
    pub panics: AtomicU64,
    /// Keys requeued for any reason (rate limited or delayed).
    pub requeues: AtomicU64,
    /// Reconciles that returned [`Action::Requeue`].
    pub requeues_rate_limited: AtomicU64,
    /// Reconciles that returned [`Action::RequeueAfter`].
    pub requeues_after: AtomicU64,
    /// Keys whose object was gone from the store when their turn came (not reconciled,
    /// as kube-rs skips them).
    pub skipped: AtomicU64,
    /// Owner references skipped because they were malformed.
    pub malformed_owner_refs: AtomicU64,
    /// Reconciles running now.
    pub active: AtomicU64,
    /// Related informers (`owns`, `watches`) the controller started without because
    /// the server refused their LIST for good (404: kind not served; 403: forbidden).
    pub unavailable_watches: AtomicU64,
    /// Reconciles still running when the shutdown timeout expired, and aborted.
    pub aborted_on_shutdown: AtomicU64,
    /// Reconciles aborted because this process stopped leading
    /// ([`Controller::leader_election`](super::Controller::leader_election)).
    pub aborted_on_leadership_loss: AtomicU64,
    /// Total time spent in finished reconciles, in nanoseconds.
    pub reconcile_nanos: AtomicU64,
}

impl ControllerStats {
    /// Empty counters of the controller `name`.
    pub fn named(name: impl Into<String>) -> Self {
        ControllerStats { name: name.into(), ..ControllerStats::default() }
    }

    /// The controller's name: its queue's name, the `controller` label of its metrics.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How one reconcile ended, before the runner acts on it.
pub(crate) enum Outcome {
    /// The reconcile ran and returned this action.
    Reconciled(Action),
    /// The reconcile failed: `retry` is what the error policy decided.
    Failed { retry: Action, error: String },
    /// The object was gone: nothing ran.
    Skipped,
}

/// A queue, its workers and their counters.
pub(crate) struct Runner {
    pub(crate) queue: WorkQueue<ReconcileKey>,
    pub(crate) workers: usize,
    pub(crate) stats: Arc<ControllerStats>,
    pub(crate) shutdown_timeout: Option<Duration>,
    /// The controller's prometheus series, when it was given a metrics set.
    pub(crate) metrics: Option<ControllerMetrics>,
    /// Reconcile only while this says so (see `leading.rs`).
    pub(crate) leadership: Option<Leadership>,
}

impl Runner {
    /// Runs the workers until `shutdown` resolves and the in-flight reconciles have
    /// finished (or the shutdown timeout expired).
    pub(crate) async fn run<F, Fut>(self, reconcile: Arc<F>, shutdown: impl Future<Output = ()> + Send)
    where
        F: Fn(ReconcileKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        if let Some(m) = &self.metrics {
            m.set_max_concurrent_reconciles(self.workers);
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let in_flight: Arc<Mutex<Vec<Option<ReconcileKey>>>> = Arc::new(Mutex::new(vec![None; self.workers]));
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..self.workers {
            let queue = self.queue.clone();
            let reconcile = Arc::clone(&reconcile);
            let stats = Arc::clone(&self.stats);
            let metrics = self.metrics.clone();
            let stopping = Arc::clone(&stopping);
            let in_flight = Arc::clone(&in_flight);
            let leadership = self.leadership.clone();
            workers.spawn(async move {
                while let Some(key) = queue.get_async().await {
                    // After shutdown the queue still hands out what it holds; none of
                    // it starts (kube-rs: no new reconciles once shutdown began).
                    if !stopping.load(Ordering::SeqCst) && leading::admit(leadership.as_ref(), &queue, &key).await {
                        set_slot(&in_flight, worker, Some(key.clone()));
                        let run = reconcile_one(&queue, &stats, metrics.as_ref(), &*reconcile, &key);
                        leading::while_leading(leadership.as_ref(), &stats, &queue, &key, run).await;
                        set_slot(&in_flight, worker, None);
                    }
                    queue.done(&key);
                }
            });
        }
        shutdown.await;
        stopping.store(true, Ordering::SeqCst);
        self.queue.shutdown();
        let drained = async { while workers.join_next().await.is_some() {} };
        match self.shutdown_timeout {
            None => drained.await,
            Some(limit) => {
                if tokio::time::timeout(limit, drained).await.is_err() {
                    let stuck: Vec<String> = lock(&in_flight).iter().flatten().map(ToString::to_string).collect();
                    self.stats.aborted_on_shutdown.fetch_add(stuck.len() as u64, Ordering::Relaxed);
                    self.stats.active.fetch_sub(stuck.len() as u64, Ordering::Relaxed);
                    tracing::error!(controller = self.stats.name(), keys = ?stuck, timeout = ?limit,
                        "reconciles outlived the shutdown timeout; aborting them");
                    workers.abort_all();
                    while workers.join_next().await.is_some() {}
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn set_slot(slots: &Mutex<Vec<Option<ReconcileKey>>>, worker: usize, key: Option<ReconcileKey>) {
    lock(slots)[worker] = key;
}

async fn reconcile_one<F, Fut>(
    queue: &WorkQueue<ReconcileKey>,
    stats: &ControllerStats,
    metrics: Option<&ControllerMetrics>,
    reconcile: &F,
    key: &ReconcileKey,
)
where
    F: Fn(ReconcileKey) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let span = tracing::info_span!("reconcile", controller = stats.name(), kind = %key.kind.kind, object = %key);
    stats.reconciles.fetch_add(1, Ordering::Relaxed);
    stats.active.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let timing = metrics.map(ControllerMetrics::reconcile_started);
    let outcome = AssertUnwindSafe(async { reconcile(key.clone()).await }).catch_unwind().instrument(span.clone()).await;
    stats.active.fetch_sub(1, Ordering::Relaxed);
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    stats.reconcile_nanos.fetch_add(nanos, Ordering::Relaxed);
    let _entered = span.enter();
    let (action, result) = match outcome {
        Ok(Outcome::Skipped) => {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("object gone before its reconcile; skipped");
            // Not a reconcile: the series count none (the guard's drop frees the worker).
            drop(timing);
            queue.forget(key);
            return;
        }
        Ok(Outcome::Reconciled(action)) => {
            let counter = match action {
                Action::Done => &stats.successes,
                Action::Requeue => &stats.requeues_rate_limited,
                Action::RequeueAfter(_) => &stats.requeues_after,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let result = match action {
                Action::Done => ReconcileResult::Success,
                Action::Requeue => ReconcileResult::Requeue,
                Action::RequeueAfter(_) => ReconcileResult::RequeueAfter,
            };
            (action, result)
        }
        Ok(Outcome::Failed { retry, error }) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %error, retry = ?retry, failures = queue.num_requeues(key), "reconcile failed");
            (retry, ReconcileResult::Error)
        }
        Err(panic) => {
            stats.panics.fetch_add(1, Ordering::Relaxed);
            let message = panic_message(panic.as_ref());
            tracing::error!(panic = %message, failures = queue.num_requeues(key), "reconcile panicked; retrying with backoff");
            (Action::Requeue, ReconcileResult::Panic)
        }
    };
    if let Some(t) = timing {
        t.finish(result);
    }
    match action {
        Action::Done => queue.forget(key),
        Action::RequeueAfter(delay) => {
            queue.forget(key);
            stats.requeues.fetch_add(1, Ordering::Relaxed);
            queue.add_after(key.clone(), delay);
        }
        Action::Requeue => {
            stats.requeues.fetch_add(1, Ordering::Relaxed);
            queue.add_rate_limited(key.clone());
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
