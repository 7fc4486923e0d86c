//! The controller loop: informers feed a [`WorkQueue`] of object references;
//! workers run `reconcile(key)` and act on its [`Action`].
//!
//! # Guarantees
//! * One key is reconciled by at most one worker at a time, and a change that
//!   arrives during a reconcile is reconciled again afterwards (workqueue rules).
//! * `Err` and [`Action::Requeue`] retry through the queue's rate limiter
//!   (per-key exponential backoff, overall token bucket); [`Action::Done`] and
//!   [`Action::RequeueAfter`] forget the key's failures.
//! * A panicking reconcile is caught, counted and retried like an error: the
//!   worker survives.
//! * Shutdown stops new work, lets in-flight reconciles finish, then returns.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;

use super::enqueue::{EnqueueHandler, Mapper, self_ref};
use crate::ObjectRef;
use crate::fifo::Handler;
use crate::queue::WorkQueue;

/// What to do with a key after a successful reconcile.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more until the object changes again.
    Done,
    /// Reconcile again soon, through the rate limiter.
    Requeue,
    /// Reconcile again after this delay (and forget past failures).
    RequeueAfter(Duration),
}

/// Counters of a running controller.
#[derive(Debug, Default)]
pub struct ControllerStats {
    /// Reconciles started.
    pub reconciles: AtomicU64,
    /// Reconciles that returned `Err`.
    pub errors: AtomicU64,
    /// Reconciles that panicked.
    pub panics: AtomicU64,
    /// Keys requeued (rate limited or delayed).
    pub requeues: AtomicU64,
}

/// A controller: a queue of [`ObjectRef`]s fed by handlers, and workers.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use kcache::controller::{Action, Controller};
/// use kcache::ObjectRef;
///
/// # tokio_test_block_on(async {
/// let controller = Controller::new().workers(2);
/// let queue = controller.queue();
/// queue.add(ObjectRef::new_namespaced("default", "web"));
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = seen.clone();
/// let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
/// let run = tokio::spawn(controller.run(
///     move |key: ObjectRef| {
///         let counter = counter.clone();
///         async move {
///             assert_eq!(key.name, "web");
///             counter.fetch_add(1, Ordering::SeqCst);
///             Ok::<_, std::io::Error>(Action::Done)
///         }
///     },
///     async move { let _ = stop_rx.await; },
/// ));
/// while seen.load(Ordering::SeqCst) == 0 { tokio::task::yield_now().await; }
/// stop_tx.send(()).unwrap();
/// run.await.unwrap();
/// assert_eq!(seen.load(Ordering::SeqCst), 1);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub struct Controller {
    queue: WorkQueue<ObjectRef>,
    workers: usize,
    stats: Arc<ControllerStats>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller::new()
    }
}

impl Controller {
    /// A controller with a default queue (client-go's default controller rate
    /// limiter) and one worker per core.
    pub fn new() -> Self {
        Controller::with_queue(WorkQueue::builder().name("controller").build())
    }

    /// A controller over a queue you configured (name, metrics, rate limiter).
    pub fn with_queue(queue: WorkQueue<ObjectRef>) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Controller { queue, workers, stats: Arc::new(ControllerStats::default()) }
    }

    /// Number of concurrent reconciles.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// The queue, to add keys by hand.
    pub fn queue(&self) -> WorkQueue<ObjectRef> {
        self.queue.clone()
    }

    /// The controller's counters.
    pub fn stats(&self) -> Arc<ControllerStats> {
        Arc::clone(&self.stats)
    }

    /// A handler that enqueues each event's object itself; register it on the
    /// primary resource's informer.
    pub fn handler_for_self(&self) -> Arc<dyn Handler> {
        Arc::new(EnqueueHandler { queue: self.queue.clone(), map: Arc::new(self_ref) })
    }

    /// A handler that enqueues the keys `map` returns; e.g. [`owner_ref`](super::owner_ref) for
    /// owned objects.
    pub fn handler_mapped(&self, map: Mapper) -> Arc<dyn Handler> {
        Arc::new(EnqueueHandler { queue: self.queue.clone(), map })
    }

    /// Runs the workers until `shutdown` resolves, then shuts the queue down
    /// with drain: keys already queued are still reconciled, in-flight
    /// reconciles finish, and new adds are ignored; then it returns.
    pub async fn run<F, Fut, E>(self, reconcile: F, shutdown: impl Future<Output = ()> + Send)
    where
        F: Fn(ObjectRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let reconcile = Arc::new(reconcile);
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.workers {
            let queue = self.queue.clone();
            let reconcile = Arc::clone(&reconcile);
            let stats = Arc::clone(&self.stats);
            workers.spawn(async move {
                while let Some(key) = queue.get_async().await {
                    stats.reconciles.fetch_add(1, Ordering::Relaxed);
                    let outcome = AssertUnwindSafe(reconcile(key.clone())).catch_unwind().await;
                    match outcome {
                        Ok(Ok(Action::Done)) => queue.forget(&key),
                        Ok(Ok(Action::RequeueAfter(d))) => {
                            queue.forget(&key);
                            stats.requeues.fetch_add(1, Ordering::Relaxed);
                            queue.add_after(key.clone(), d);
                        }
                        Ok(Ok(Action::Requeue)) => {
                            stats.requeues.fetch_add(1, Ordering::Relaxed);
                            queue.add_rate_limited(key.clone());
                        }
                        Ok(Err(e)) => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                            stats.requeues.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(key = %key, error = %e, "reconcile failed; retrying with backoff");
                            queue.add_rate_limited(key.clone());
                        }
                        Err(_) => {
                            stats.panics.fetch_add(1, Ordering::Relaxed);
                            stats.requeues.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(key = %key, "reconcile panicked; retrying with backoff");
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            });
        }
        shutdown.await;
        self.queue.shutdown_with_drain_async().await;
        while workers.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::enqueue::tests::owned_pod;
    use crate::controller::owner_ref;

    #[test]
    fn the_mapped_handler_enqueues_owner_keys_once_while_queued() {
        let controller = Controller::new();
        let handler = controller.handler_mapped(owner_ref("ReplicaSet"));
        let pod = owned_pod();
        handler.on_add(&pod, true);
        handler.on_update(&pod, &pod);
        handler.on_delete(&pod, false);
        let queue = controller.queue();
        assert_eq!(queue.len(), 1, "the owner's key collapses in the queue");
        assert_eq!(queue.try_get(), Some(ObjectRef::new_namespaced("ns", "rs-1")));
    }
}
