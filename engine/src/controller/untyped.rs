//! [`KeyController`]: the untyped reconcile loop over [`ReconcileKey`]s, for
//! reconcilers that read [`crate::Obj`]s and may serve several kinds from one queue.

use crate::metrics::Metrics;
use std::future::Future;
use std::sync::Arc;

use super::enqueue::{EnqueueHandler, Mapper, self_key};
use super::key::{Kind, ReconcileKey};
use super::runner::{ControllerStats, Outcome, Runner};
use super::Action;
use crate::fifo::Handler;
use crate::queue::WorkQueue;

/// A controller without a main kind: a queue of [`ReconcileKey`]s fed by handlers,
/// and workers that call `reconcile(key)`. [`Controller`](super::Controller) is the
/// typed, kube-rs-shaped one built on the same loop.
///
/// Keys carry their group and kind, so one queue can serve several kinds without two
/// objects of the same namespace and name colliding.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::Pod;
/// use kcache::controller::{Action, KeyController, ReconcileKey};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let controller = KeyController::new().workers(2);
/// let queue = controller.queue();
/// queue.add(ReconcileKey::of::<Pod>(Some("default"), "web"));
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = seen.clone();
/// let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
/// let run = tokio::spawn(controller.run(
///     move |key: ReconcileKey| {
///         let counter = counter.clone();
///         async move {
///             assert_eq!((key.kind.kind.as_str(), key.name.as_str()), ("Pod", "web"));
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
/// ```
pub struct KeyController {
    queue: WorkQueue<ReconcileKey>,
    workers: usize,
    stats: Arc<ControllerStats>,
    metrics: Option<Metrics>,
    shutdown_timeout: Option<std::time::Duration>,
    leadership: Option<crate::lease::Leadership>,
    /// Set by [`KeyController::shard`] (`sharding.rs`).
    pub(super) shard: Option<super::sharding::Sharding>,
}

impl Default for KeyController {
    fn default() -> Self {
        KeyController::new()
    }
}

impl KeyController {
    /// A controller with a default queue named `controller` (client-go's default
    /// controller rate limiter) and one worker per core.
    pub fn new() -> Self {
        KeyController::with_queue(WorkQueue::builder().name("controller").build())
    }

    /// A controller over a queue you configured (name, metrics, rate limiter); its
    /// name names the controller's [`ControllerStats`].
    pub fn with_queue(queue: WorkQueue<ReconcileKey>) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stats = Arc::new(ControllerStats::named(queue.name()));
        KeyController { queue, workers, stats, shutdown_timeout: None, metrics: None, leadership: None, shard: None }
    }

    /// Number of concurrent reconciles.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// After the shutdown signal, waits at most `limit` for running reconciles, then
    /// aborts them, logging their keys and counting them (`aborted_on_shutdown`).
    #[must_use]
    pub fn shutdown_timeout(mut self, limit: std::time::Duration) -> Self {
        self.shutdown_timeout = Some(limit);
        self
    }

    /// Reconciles only while `leadership` leads, as
    /// [`Controller::leader_election`](super::Controller::leader_election).
    #[must_use]
    pub fn leader_election(mut self, leadership: crate::lease::Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// The queue, to add keys by hand.
    pub fn queue(&self) -> WorkQueue<ReconcileKey> {
        self.queue.clone()
    }

    /// Exports the controller's reconciles in `metrics` (controller-runtime's
    /// `controller_runtime_reconcile_*` series, labelled with the controller's name).
    #[must_use]
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// The controller's counters.
    pub fn stats(&self) -> Arc<ControllerStats> {
        Arc::clone(&self.stats)
    }

    /// A handler that enqueues each event's object itself, as an object of `kind`;
    /// register it on that kind's informer.
    pub fn handler_for(&self, kind: Kind) -> Arc<dyn Handler> {
        Arc::new(EnqueueHandler::new(self.queue.clone(), self_key(kind)))
    }

    /// A handler that enqueues the keys `map` returns; e.g.
    /// [`owner_mapper`](super::owner_mapper) for owned objects.
    pub fn handler_mapped(&self, map: Mapper) -> Arc<dyn Handler> {
        Arc::new(EnqueueHandler::new(self.queue.clone(), map))
    }

    /// Runs the workers until `shutdown` resolves; then no reconcile starts, the
    /// in-flight ones finish, and it returns. `Err` retries through the rate limiter.
    pub async fn run<F, Fut, E>(self, reconcile: F, shutdown: impl Future<Output = ()> + Send)
    where
        F: Fn(ReconcileKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let reconcile = Arc::new(move |key: ReconcileKey| {
            let fut = reconcile(key);
            async move {
                match fut.await {
                    Ok(action) => Outcome::Reconciled(action),
                    Err(e) => Outcome::Failed { retry: Action::Requeue, error: e.to_string() },
                }
            }
        });
        let reconcile = Arc::new(super::sharding::fence(self.shard.clone(), reconcile));
        let gained = self.shard.map(|shard| tokio::spawn(shard.enqueue_gained(self.queue.clone())));
        let metrics = self.metrics.map(|m| m.controller(self.stats.name()));
        let runner = Runner {
            queue: self.queue,
            workers: self.workers,
            stats: self.stats,
            shutdown_timeout: self.shutdown_timeout,
            metrics,
            leadership: self.leadership,
        };
        runner.run(reconcile, shutdown).await;
        if let Some(gained) = gained {
            gained.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::{Scope, owner_mapper};
    use kube::core::GroupVersionKind;

    #[test]
    fn the_mapped_handler_enqueues_owner_keys_once_while_queued() {
        let controller = KeyController::new();
        let rs = Arc::new(GroupVersionKind::gvk("apps", "v1", "ReplicaSet"));
        let handler = controller.handler_mapped(owner_mapper(rs.clone(), Scope::Namespaced));
        let pod = crate::wire::Decoder::new(Default::default())
            .decode_object(
                br#"{"metadata":{"namespace":"ns","name":"p","ownerReferences":[
                {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs-1","controller":true},
                {"apiVersion":"v1","kind":"Node","name":"n1"}]}}"#,
            )
            .unwrap();
        handler.on_add(&pod, true);
        handler.on_update(&pod, &pod);
        handler.on_delete(&pod, false);
        let queue = controller.queue();
        assert_eq!(queue.len(), 1, "the owner's key collapses in the queue");
        assert_eq!(queue.try_get(), Some(ReconcileKey::new(rs, Some("ns"), "rs-1")));
    }
}
