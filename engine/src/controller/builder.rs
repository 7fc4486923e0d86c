//! [`Controller<K>`]: kube-rs's `Controller` over kcache's informers — a main kind,
//! the kinds it owns and watches, predicates, and `run(reconcile, error_policy, ctx)`.

use crate::metrics::Metrics;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;

use super::Action;
use super::enqueue::{EnqueueHandler, Mapper, self_key};
use super::key::{Kind, ReconcileKey, Scope, kind_of};
use super::owner::owner_key;
use super::predicates::Predicate;
use super::runner::{ControllerStats, Outcome, Runner};
use super::sharding::{self, Sharding};
use crate::shard::{ShardBy, ShardMembership};
use crate::informer::{HandlerId, Informer};
use crate::lease::Leadership;
use crate::queue::WorkQueue;
use crate::{Obj, typed};

/// A controller of the main kind `K`: reconciles each object of `K` when it, an object
/// it owns, or a watched object that maps to it changes.
///
/// The shape of kube-rs's `kube::runtime::Controller`, over kcache informers instead of
/// `Api`s: [`Controller::new`] takes the main kind's informer, [`Controller::owns`] and
/// [`Controller::watches`] add related kinds, [`Controller::run`] takes
/// `reconcile(Arc<K>, Arc<Ctx>)`, `error_policy(Arc<K>, &E, Arc<Ctx>)` and the shared
/// context. The object handed to `reconcile` is read from a typed view of the main
/// informer's store ([`typed::Store`]) when its turn comes, so it is the latest
/// version; a key whose object is gone by then is skipped, as kube-rs does.
///
/// # Guarantees
/// * One object is reconciled by at most one worker at a time; a change during its
///   reconcile reconciles it again afterwards.
/// * No reconcile starts before every informer of the controller has listed and its
///   handler has received the list.
/// * `Ok(action)` and the error policy's action decide the next reconcile: [`Action::Done`]
///   waits for a change, [`Action::RequeueAfter`] comes back after the delay,
///   [`Action::Requeue`] comes back after the queue's per-key exponential backoff.
/// * A panicking reconcile or error policy is caught, counted and retried with backoff;
///   other keys go on.
/// * Once a shutdown trigger fires no reconcile starts and `run` returns when the
///   running ones finish (or, with [`Controller::shutdown_timeout`], aborts those still
///   running when it expires, logging their keys).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use k8s_openapi::api::apps::v1::ReplicaSet;
/// use k8s_openapi::api::core::v1::Pod;
/// use kcache::controller::{Action, Controller};
/// use kcache::testing::MemorySource;
/// use kcache::{Informer, InformerConfig};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("{0}")]
/// struct Error(String);
///
/// struct Ctx { reconciled: tokio::sync::mpsc::UnboundedSender<String> }
///
/// async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
///     ctx.reconciled.send(rs.metadata.name.clone().unwrap_or_default()).unwrap();
///     Ok(Action::await_change())
/// }
///
/// fn error_policy(_rs: Arc<ReplicaSet>, _error: &Error, _ctx: Arc<Ctx>) -> Action {
///     Action::requeue(Duration::from_secs(5))
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let replica_sets = MemorySource::new("ReplicaSet");
/// replica_sets.apply(serde_json::json!({"apiVersion": "apps/v1", "metadata": {"namespace": "default", "name": "web"}}));
/// let pods = MemorySource::new("Pod");
/// let rs_informer = Informer::spawn(replica_sets.clone(), InformerConfig::default()).unwrap();
/// let pod_informer = Informer::spawn(pods.clone(), InformerConfig::default()).unwrap();
///
/// let (tx, mut reconciled) = tokio::sync::mpsc::unbounded_channel();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let controller = Controller::<ReplicaSet>::new(&rs_informer)
///     .owns::<Pod>(&pod_informer)
///     .graceful_shutdown_on(async move { let _ = stopped.await; });
/// let run = tokio::spawn(controller.run(reconcile, error_policy, Arc::new(Ctx { reconciled: tx })));
/// assert_eq!(reconciled.recv().await.unwrap(), "web"); // the initial list
///
/// // A pod the ReplicaSet controls reconciles its owner.
/// pods.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "web-0", "ownerReferences": [
///     {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "", "controller": true}]}}));
/// assert_eq!(reconciled.recv().await.unwrap(), "web");
/// stop.send(()).unwrap();
/// run.await.unwrap();
/// # });
/// ```
pub struct Controller<K: Resource> {
    main: Informer,
    store: typed::Store<K>,
    kind: Kind,
    scope: Scope,
    queue: WorkQueue<ReconcileKey>,
    workers: usize,
    stats: Arc<ControllerStats>,
    predicates: Vec<Predicate>,
    related: Vec<(Informer, Mapper)>,
    reconcile_all: Vec<BoxStream<'static, ()>>,
    shutdown: Vec<BoxFuture<'static, ()>>,
    shutdown_timeout: Option<Duration>,
    metrics: Option<Metrics>,
    leadership: Option<Leadership>,
    shard: Option<Sharding>,
}

impl<K> Controller<K>
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Clone + PartialEq + Send + Sync,
    K::Scope: 'static,
{
    /// A controller of `K` fed by `informer` (an informer of `K` objects), its scope
    /// read from `K`'s `k8s_openapi::ResourceScope`.
    pub fn new(informer: &Informer) -> Self {
        Self::new_with(informer, K::DynamicType::default(), Scope::of::<K>().unwrap_or(Scope::Namespaced))
    }
}

impl<K> Controller<K>
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + PartialEq + Send + Sync,
{
    /// A controller of the kind `dyntype` describes (an `ApiResource` for
    /// `kube::api::DynamicObject`), of the given scope.
    pub fn new_with(informer: &Informer, dyntype: K::DynamicType, scope: Scope) -> Self {
        let kind = kind_of::<K>(&dyntype);
        let queue = WorkQueue::builder().name(kind.kind.to_lowercase()).build();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Controller {
            main: informer.clone(),
            store: typed::Store::new_with(informer.store(), dyntype.clone()),
            stats: Arc::new(ControllerStats::named(queue.name())),
            kind,
            scope,
            queue,
            workers,
            predicates: Vec::new(),
            related: Vec::new(),
            reconcile_all: Vec::new(),
            shutdown: Vec::new(),
            shutdown_timeout: None,
            metrics: None,
            leadership: None,
            shard: None,
        }
    }

    /// Reconciles only the keys `membership` admits: this replica's share of the ring,
    /// each object placed by `by` ([`ShardBy`]). A key taken from the queue that is not
    /// admitted is dropped without a reconcile (its owner reconciles it); a running
    /// reconcile whose key is lost, or whose replica stops (renew deadline passed,
    /// paused, leaving), is aborted at its next `.await`; keys gained when the ring
    /// changes are enqueued from the main informer's store. See [`crate::shard`] for
    /// the protocol and why no key is reconciled by two replicas at once.
    #[must_use]
    pub fn shard(mut self, membership: ShardMembership, by: ShardBy) -> Self {
        self.shard = Some(Sharding { membership, by, store: self.main.store(), kind: self.kind.clone() });
        self
    }

    /// Uses `queue` (its name, metrics and rate limiter); its name becomes the
    /// controller's name. By default the queue is named after the kind in lower case,
    /// as controller-runtime names controllers.
    #[must_use]
    pub fn with_queue(mut self, queue: WorkQueue<ReconcileKey>) -> Self {
        self.stats = Arc::new(ControllerStats::named(queue.name()));
        self.queue = queue;
        self
    }

    /// How many decoded objects of `K` the controller keeps between reconciles
    /// (its [`typed::Store`]'s cache; [`typed::DEFAULT_CACHE_CAPACITY`] by default: one
    /// per ten stored objects).
    ///
    /// Each reconcile is handed the latest stored object decoded as `K`: a kept decode
    /// of that same version is an `Arc` clone, anything else is a full decode
    /// (~20 µs for a realistic pod). Keeping every object
    /// (`Capacity::ShareOfStore { per: 1, min: 0 }`) makes a reconcile that follows
    /// another of the same version as cheap as kube-rs's, at kube-rs's memory for the
    /// decoded copies; the default keeps kcache's memory and pays a decode per
    /// reconcile of an object that was not read recently (docs/ARCHITECTURE.md,
    /// "Typed views", has both figures).
    #[must_use]
    pub fn decoded_cache(mut self, capacity: typed::Capacity) -> Self {
        self.store = self.store.with_cache(capacity);
        self
    }

    /// Number of concurrent reconciles (kube-rs's `Config::concurrency`); one per core
    /// by default.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Reconciles `K`'s owners when an object of `C` that names one of them in its
    /// `ownerReferences` changes, as kube-rs's `owns`: every reference whose apiVersion
    /// group and kind are `K`'s counts, controller or not ([`Controller::owns_controlled`]
    /// takes only the controller). A reference whose uid differs from the stored
    /// owner's names an earlier object of that name and is ignored. Malformed
    /// references are logged and counted (`malformed_owner_refs`).
    #[must_use]
    pub fn owns<C: Resource>(self, informer: &Informer) -> Self {
        self.owns_impl(informer, false)
    }

    /// [`Controller::owns`] for the owner reference with `controller: true` only
    /// (controller-runtime's `Owns`, client-go's `GetControllerOf`).
    #[must_use]
    pub fn owns_controlled<C: Resource>(self, informer: &Informer) -> Self {
        self.owns_impl(informer, true)
    }

    fn owns_impl(mut self, informer: &Informer, controller_only: bool) -> Self {
        let (kind, scope, stats, owners) = (self.kind.clone(), self.scope, Arc::clone(&self.stats), self.main.store());
        let map: Mapper = Arc::new(move |child: &Obj| {
            let mut keys = Vec::new();
            for r in child.owner_references() {
                match owner_key(child, &r, &kind, scope, controller_only) {
                    Ok(Some(key)) => {
                        let stale = !r.uid.is_empty()
                            && owners.get(&key.object_ref()).is_some_and(|o| !o.uid().is_empty() && o.uid() != r.uid);
                        if stale {
                            tracing::debug!(owner = %key, child = %child.key(), "owner reference names an earlier object; ignored");
                        } else {
                            keys.push(key);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        stats.malformed_owner_refs.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(controller = stats.name(), error = %e, "owner reference skipped");
                    }
                }
            }
            keys
        });
        self.related.push((informer.clone(), map));
        self
    }

    /// Reconciles the objects of `K` that `mapper` names when an object of `W` changes
    /// (kube-rs's `watches`). The object is decoded as `W` for the mapper; one that does
    /// not decode is logged and maps to nothing. [`Controller::watches_raw`] maps the
    /// undecoded object.
    #[must_use]
    pub fn watches<W, I>(self, informer: &Informer, mapper: impl Fn(W) -> I + Send + Sync + 'static) -> Self
    where
        W: DeserializeOwned + 'static,
        I: IntoIterator<Item = typed::ObjectRef<K>>,
    {
        self.watches_raw(informer, move |obj: &Obj| match obj.decode::<W>() {
            Ok(w) => mapper(w).into_iter().collect(),
            Err(e) => {
                tracing::warn!(object = %obj.key(), error = %e, "watched object does not decode; not mapped");
                Vec::new()
            }
        })
    }

    /// [`Controller::watches`] with a mapper that reads the cached [`Obj`] (its metadata
    /// without a parse, or [`Obj::pointer`]).
    #[must_use]
    pub fn watches_raw<I>(mut self, informer: &Informer, mapper: impl Fn(&Obj) -> I + Send + Sync + 'static) -> Self
    where
        I: IntoIterator<Item = typed::ObjectRef<K>>,
    {
        let kind = self.kind.clone();
        let map: Mapper = Arc::new(move |obj: &Obj| {
            mapper(obj)
                .into_iter()
                .map(|r| ReconcileKey { kind: kind.clone(), namespace: r.namespace, name: r.name })
                .collect()
        });
        self.related.push((informer.clone(), map));
        self
    }

    /// Reconciles an update of the main kind only when `predicate` sees a change
    /// (kube-rs's `predicate_filter`); with several predicates, when any does. Adds,
    /// deletes, owner changes and events of owned or watched kinds always pass. See
    /// [`predicates`](super::predicates).
    #[must_use]
    pub fn predicate(mut self, predicate: Predicate) -> Self {
        self.predicates.push(predicate);
        self
    }

    /// Reconciles every object of the main kind each time `trigger` yields (kube-rs's
    /// `reconcile_all_on`): e.g. when a configuration reloads. A trigger that ends
    /// stops being polled; the controller runs on.
    #[must_use]
    pub fn reconcile_all_on(mut self, trigger: impl Stream<Item = ()> + Send + 'static) -> Self {
        self.reconcile_all.push(trigger.boxed());
        self
    }

    /// Starts a graceful shutdown when `trigger` resolves (kube-rs's
    /// `graceful_shutdown_on`); with several triggers, when the first does.
    #[must_use]
    pub fn graceful_shutdown_on(mut self, trigger: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown.push(trigger.boxed());
        self
    }

    /// Starts a graceful shutdown on Ctrl+C or, on Unix, SIGTERM (kube-rs's
    /// `shutdown_on_signal`).
    #[must_use]
    pub fn shutdown_on_signal(self) -> Self {
        self.graceful_shutdown_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        })
    }

    /// After a shutdown trigger, waits at most `limit` for running reconciles, then
    /// aborts them (at their next `.await`), logging their keys at `error` and counting
    /// them (`aborted_on_shutdown`). Without it, `run` waits as long as they take.
    #[must_use]
    pub fn shutdown_timeout(mut self, limit: Duration) -> Self {
        self.shutdown_timeout = Some(limit);
        self
    }

    /// Reconciles only while `leadership` leads (a [`LeaderElector`](crate::lease::LeaderElector)'s
    /// handle): keys stay queued while another replica leads, and reconciles in flight
    /// when leadership ends are aborted at their next `.await`, logged and counted
    /// (`aborted_on_leadership_loss`), so none outlives the renew deadline. The
    /// informers keep the cache warm meanwhile, so a new leader starts at once.
    #[must_use]
    pub fn leader_election(mut self, leadership: Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// The typed view of the main kind's store the reconciles read from.
    pub fn store(&self) -> typed::Store<K> {
        self.store.clone()
    }

    /// The queue, to add keys by hand (keys of other kinds are skipped).
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

    /// The controller's counters; they stay readable after `run` returns.
    pub fn stats(&self) -> Arc<ControllerStats> {
        Arc::clone(&self.stats)
    }

    /// Runs the controller until a shutdown trigger fires and the running reconciles
    /// finish (without a trigger, for ever).
    ///
    /// `reconcile` gets the latest stored object and the context; on `Err`,
    /// `error_policy` gets the object, the error and the context and decides the retry.
    pub async fn run<Ctx, F, Fut, E, P>(self, reconcile: F, error_policy: P, ctx: Arc<Ctx>)
    where
        Ctx: Send + Sync + 'static,
        F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
    {
        let Controller { main, store, kind, queue, workers, stats, predicates, related, reconcile_all, shutdown, shutdown_timeout, metrics, leadership, shard, .. } = self;
        let shutdown: Shared<BoxFuture<'static, ()>> = if shutdown.is_empty() {
            futures::future::pending().boxed().shared()
        } else {
            futures::future::select_all(shutdown).map(|_| ()).boxed().shared()
        };

        let main_handler = EnqueueHandler { queue: queue.clone(), map: self_key(kind.clone()), predicates };
        let mut registered: Vec<(Informer, HandlerId)> = Vec::new();
        let mut main_registered = false;
        for (is_main, (informer, handler)) in std::iter::once((true, (main.clone(), main_handler)))
            .chain(related.into_iter().map(|(i, map)| (false, (i, EnqueueHandler::new(queue.clone(), map)))))
        {
            match informer.add_handler(Arc::new(handler)) {
                Ok(id) => {
                    main_registered |= is_main;
                    registered.push((informer, id));
                }
                Err(e) => tracing::error!(controller = stats.name(), error = %e, "informer shut down; its events will not reach the controller"),
            }
        }

        let synced = wait_synced(&registered, usize::from(main_registered), &stats);
        tokio::select! {
            () = synced => {}
            () = shutdown.clone() => {
                unregister(&registered);
                return;
            }
        }
        tracing::info!(controller = stats.name(), "informers synced; starting workers");

        let mut triggers = tokio::task::JoinSet::new();
        for mut trigger in reconcile_all {
            let (queue, main, kind) = (queue.clone(), main.store(), kind.clone());
            triggers.spawn(async move {
                while trigger.next().await.is_some() {
                    for obj in main.list() {
                        queue.add(ReconcileKey::new(kind.clone(), obj.namespace(), obj.name()));
                    }
                }
            });
        }

        let reconcile = Arc::new(reconcile);
        let error_policy = Arc::new(error_policy);
        let reconcile_key = Arc::new(move |key: ReconcileKey| {
            let read = if key.is_kind(&kind) { store.try_get_named(key.namespace.as_deref(), &key.name) } else { Ok(None) };
            let (ctx, reconcile, error_policy) = (Arc::clone(&ctx), Arc::clone(&reconcile), Arc::clone(&error_policy));
            async move {
                let obj = match read {
                    Ok(Some(obj)) => obj,
                    Ok(None) => return Outcome::Skipped,
                    // A stored object that is not a `K` stays broken until it changes, which
                    // enqueues it again: no retry.
                    Err(e) => return Outcome::Failed { retry: Action::Done, error: e.to_string() },
                };
                match reconcile(Arc::clone(&obj), Arc::clone(&ctx)).await {
                    Ok(action) => Outcome::Reconciled(action),
                    Err(e) => {
                        let retry = error_policy(obj, &e, ctx);
                        Outcome::Failed { retry, error: e.to_string() }
                    }
                }
            }
        });
        let reconcile_key = Arc::new(sharding::fence(shard.clone(), reconcile_key));
        if let Some(shard) = shard {
            triggers.spawn(shard.enqueue_gained(queue.clone()));
        }
        let metrics = metrics.map(|m| m.controller(stats.name()));
        Runner { queue, workers, stats, shutdown_timeout, metrics, leadership }.run(reconcile_key, shutdown).await;
        triggers.abort_all();
        unregister(&registered);
    }
}

/// Waits until every informer has listed and each handler has received its list.
/// Waits until every informer has listed and each handler has received its list,
/// except the related informers (from `related_from` on) whose LIST the server
/// refuses for good (404: kind not served; 403: not allowed): those are reported once
/// and counted in `unavailable_watches`, and the controller starts without them, so
/// that one missing kind does not stop the reconciles of the others (their handlers
/// stay registered: once the kind is served, its events reach the queue). The main
/// informer is always waited for.
async fn wait_synced(registered: &[(Informer, HandlerId)], related_from: usize, stats: &ControllerStats) {
    let mut delay = Duration::from_millis(1);
    let mut reported = vec![false; registered.len()];
    loop {
        let mut waiting = false;
        for (n, (informer, id)) in registered.iter().enumerate() {
            if informer.has_synced() && informer.handler_synced(*id) {
                continue;
            }
            match informer.failed_list_status() {
                Some(status @ (403 | 404)) if !reported[n] => {
                    reported[n] = true;
                    let what = if status == 404 { "the server does not serve this kind" } else { "listing this kind is forbidden" };
                    if n >= related_from {
                        stats.unavailable_watches.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(controller = stats.name(), status, "{what}: starting without its events; check the kind is installed and RBAC allows list and watch");
                    } else {
                        tracing::error!(controller = stats.name(), status, "{what}: the controller's own kind; waiting for it to be served");
                    }
                }
                _ => {}
            }
            if n < related_from || !reported[n] {
                waiting = true;
            }
        }
        if !waiting {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

fn unregister(registered: &[(Informer, HandlerId)]) {
    for (informer, id) in registered {
        let _ = informer.remove_handler(*id);
    }
}
