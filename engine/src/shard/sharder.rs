//! [`Sharder`]: one leader-elected member of a ring labels every object of a collection
//! with the member the ring assigns it (`shard.kcache.io/<ring>=<identity>`), so that
//! each replica can cache only its slice by label ([`CacheMode::Label`](super::CacheMode::Label))
//! on a server without the shard selector.
//!
//! # How it works
//! Every replica runs a `Sharder`; they elect one leader on the Lease `<ring>-sharder`
//! ([`LeaderElector`], client-go's semantics). While leading, the sharder runs an
//! informer over the **whole** collection (metadata only by default: the leader's
//! replica holds every object's metadata, not only its slice) and, for every object
//! whose shard label is not the ring owner of the hash the controller admits it by
//! ([`ShardLabel::relabel`]), sends a JSON merge patch of that one label. It rescans
//! everything when its view of the ring changes (a join or a leave moves about `1/N`
//! of the hashes) or becomes fresh again, checks each added or updated object as it arrives (new objects get
//! labelled), and rescans every [`SharderConfig::rescan`] to retry failed patches.
//! Patches go through a token bucket ([`SharderConfig::qps`], [`SharderConfig::burst`])
//! and are counted in [`SharderMetrics`].
//!
//! # Why the label never decides who reconciles
//! The label decides only what a replica *caches*; the controller's
//! [`shard`](crate::controller::Controller::shard) filter ([`Assignment`](super::Assignment))
//! still decides what it reconciles, on its own view of the ring, with the move
//! protocol's holds (see the [module](super) argument, which does not depend on what
//! is cached). What the label adds is *when a replica sees an object*:
//! * **Drain (A loses an object to B).** The leader relabels it `B`: A's label watch
//!   sends a DELETED (the server's rule for an object that stops matching a selector,
//!   k8s.io/apiserver/pkg/storage/cacher/cache_watcher.go), so A's store drops it and
//!   A's controller skips the key (a reconcile of a key absent from the store does not
//!   run: [`Controller`](crate::controller::Controller) reads the object first). If the
//!   leader's view was ahead of A's, A may still *admit* the hash for up to its renew
//!   deadline; it just has nothing to reconcile: a delay, never a second reconciler.
//!   A reconcile of the key already running at A is aborted when A's own view drops
//!   the hash (the existing rule), not by the label.
//! * **B gains it.** B's label watch sends ADDED; B's controller enqueues it and
//!   reconciles it only when B's `Assignment` admits the hash. If the object arrives
//!   while B still holds the hash (gained from a live member), the key is dropped then
//!   and enqueued again from the store when the hold ends (the membership publishes
//!   a change at every deadline, and the controller enqueues every gained key it
//!   caches). If it arrives after, the add itself enqueues it.
//! * **Safety** therefore rests on `Assignment` alone: two replicas never reconcile one
//!   key at once whatever the labels say. A wrong or missing label (a leader that lost
//!   its lease mid-patch, a patch that failed) only hides an object from the replica
//!   that owns it until the next leader's scan fixes the label.
//!
//! # Guarantees
//! * Patches are sent only while [`Leadership::is_leading`], checked before each one;
//!   two sharders never both lead at one instant (see [`crate::lease`]).
//! * An object is patched only when its label differs from the ring owner in a view
//!   of the membership that is fresh ([`Assignment::is_fresh`](super::Assignment::is_fresh));
//!   a stale sharder waits.
//! * A patch writes only `metadata.labels["shard.kcache.io/<ring>"]` (merge patch);
//!   an object deleted meanwhile (404) is not an error.
//! * Requires `patch` on the collection's kind (and `list`, `watch`), and `get`,
//!   `create`, `update` on Leases for the election.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch};

use super::key::ShardBy;
use super::labeler::{LabelError, PatchPacer, ShardLabel};
use super::membership::ShardMembership;
use super::ring::Ring;
use crate::informer::{Handler, Informer, InformerConfig};
use crate::lease::{ConfigError, LeaderElectionConfig, LeaderElector, Leadership};
use crate::object::ObjectRef;
use crate::reflector::KubeSource;
use crate::Obj;

/// How a [`Sharder`] runs.
#[derive(Clone)]
pub struct SharderConfig {
    /// The namespace of the `<ring>-sharder` election Lease.
    pub lease_namespace: String,
    /// Patches per second on average (default 20; not positive: unlimited).
    pub qps: f64,
    /// Patches let through at once (default 50).
    pub burst: u32,
    /// Watch only metadata (`PartialObjectMetadata`, default): labels, owners and
    /// uids are all the sharder reads.
    pub metadata_only: bool,
    /// A full rescan this often while leading, which retries failed patches
    /// (default 60 s).
    pub rescan: Duration,
    /// The leader's informer over the whole collection (selectors, backoff, page size).
    pub informer: InformerConfig,
    /// Where the patches are counted (default: registered nowhere).
    pub metrics: SharderMetrics,
}

impl SharderConfig {
    /// The defaults, electing on a Lease in `lease_namespace`.
    pub fn new(lease_namespace: impl Into<String>) -> Self {
        SharderConfig {
            lease_namespace: lease_namespace.into(),
            qps: 20.0,
            burst: 50,
            metadata_only: true,
            rescan: Duration::from_secs(60),
            informer: InformerConfig::default(),
            metrics: SharderMetrics::default(),
        }
    }
}

/// The `ring` label of the sharder's families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RingLabels {
    ring: String,
}

/// The sharder's counters: `kcache_sharder_patches_total{ring}` (labels written),
/// `kcache_sharder_patch_errors_total{ring}` (patches refused or failed) and
/// `kcache_sharder_scans_total{ring}` (full passes over the collection).
///
/// ```
/// use prometheus_client::registry::Registry;
/// let mut registry = Registry::default();
/// let metrics = kcache::shard::SharderMetrics::register(&mut registry);
/// metrics.patches("cm").inc();
/// let text = kcache::metrics::render(&registry);
/// assert!(text.contains(r#"kcache_sharder_patches_total{ring="cm"} 1"#), "{text}");
/// ```
#[derive(Clone, Debug, Default)]
pub struct SharderMetrics {
    patches: Family<RingLabels, Counter>,
    errors: Family<RingLabels, Counter>,
    scans: Family<RingLabels, Counter>,
}

impl SharderMetrics {
    /// Registers the families in `registry` (once per registry).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = SharderMetrics::default();
        registry.register("kcache_sharder_patches", "Shard labels written by the sharder.", metrics.patches.clone());
        registry.register("kcache_sharder_patch_errors", "Shard label patches that failed.", metrics.errors.clone());
        registry.register("kcache_sharder_scans", "Full passes of the sharder over its collection.", metrics.scans.clone());
        metrics
    }

    /// Labels written for `ring`.
    pub fn patches(&self, ring: &str) -> Counter {
        self.patches.get_or_create(&RingLabels { ring: ring.to_owned() }).clone()
    }

    /// Failed patches for `ring`.
    pub fn patch_errors(&self, ring: &str) -> Counter {
        self.errors.get_or_create(&RingLabels { ring: ring.to_owned() }).clone()
    }

    /// Full scans for `ring`.
    pub fn scans(&self, ring: &str) -> Counter {
        self.scans.get_or_create(&RingLabels { ring: ring.to_owned() }).clone()
    }
}

/// Why a [`Sharder`] cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharderError {
    /// The ring name or identity cannot make the shard label.
    #[error(transparent)]
    Label(#[from] LabelError),
    /// The election's configuration is invalid.
    #[error(transparent)]
    Election(#[from] ConfigError),
}

/// A running sharder: while its replica leads the `<ring>-sharder` election, it labels
/// every object of the collection with its ring owner (see [`crate::shard`] and
/// docs/SCALING.md, "Caching by label"). Stops with [`Sharder::stop`] or when its
/// runtime shuts down.
///
/// ```no_run
/// # async fn demo(client: kube::Client, membership: kcache::shard::ShardMembership) -> Result<(), Box<dyn std::error::Error>> {
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kube::api::ApiResource;
/// use kcache::shard::{ShardBy, Sharder, SharderConfig};
/// let sharder = Sharder::start(client, &ApiResource::erase::<ConfigMap>(&()), None, membership.clone(), ShardBy::Uid, SharderConfig::new("default"))?;
/// // ... on shutdown: the sharder first (another replica takes over the labelling at
/// // once), then the membership.
/// sharder.stop().await;
/// membership.leave().await;
/// # Ok(()) }
/// ```
pub struct Sharder {
    leadership: Leadership,
    label: ShardLabel,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the leading loop needs.
struct Job {
    client: kube::Client,
    resource: ApiResource,
    namespace: Option<String>,
    membership: ShardMembership,
    by: ShardBy,
    label: ShardLabel,
    config: SharderConfig,
    ring: String,
}

/// Collects the keys of objects that arrived or changed, for the leading loop.
#[derive(Default)]
struct Arrivals {
    keys: Mutex<HashSet<ObjectRef>>,
    notify: Notify,
}

impl Arrivals {
    fn push(&self, obj: &Obj) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).insert(obj.to_ref());
        self.notify.notify_one();
    }

    fn take(&self) -> HashSet<ObjectRef> {
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Handler for Arrivals {
    fn on_add(&self, obj: &Obj, _is_in_initial_list: bool) {
        self.push(obj);
    }

    fn on_update(&self, _old: &Obj, new: &Obj) {
        self.push(new);
    }

    fn on_delete(&self, _obj: &Obj, _final_state_unknown: bool) {}
}

impl Sharder {
    /// Starts campaigning for `<ring>-sharder` on the current tokio runtime, with the
    /// membership's identity and durations; while leading, labels the collection
    /// `resource` (all namespaces with `namespace = None`).
    ///
    /// # Errors
    /// [`SharderError::Label`] when the ring or identity cannot make a label,
    /// [`SharderError::Election`] when the membership's durations cannot elect.
    pub fn start(client: kube::Client, resource: &ApiResource, namespace: Option<&str>, membership: ShardMembership, by: ShardBy, config: SharderConfig) -> Result<Sharder, SharderError> {
        let ring = membership.ring_name().to_owned();
        let label = ShardLabel::new(&ring)?;
        label.selector(membership.identity())?;
        let timing = membership.timing();
        let election = LeaderElectionConfig::new(config.lease_namespace.clone(), format!("{ring}-sharder"), membership.identity())
            .lease_duration(timing.lease_duration)
            .renew_deadline(timing.renew_deadline)
            .retry_period(timing.retry_period)
            .release_on_cancel(true);
        let elector = LeaderElector::new(client.clone(), election)?;
        let leadership = elector.leadership();
        let (stop, stopped) = watch::channel(false);
        let job = Job { client, resource: resource.clone(), namespace: namespace.map(str::to_owned), membership, by, label: label.clone(), config, ring };
        let task = tokio::spawn(run(job, elector, stopped));
        Ok(Sharder { leadership, label, stop, task: Mutex::new(Some(task)) })
    }

    /// Whether this replica's sharder leads now.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// The label this sharder writes.
    pub fn label(&self) -> &ShardLabel {
        &self.label
    }

    /// Stops labelling, releases the election Lease (so another replica takes over at
    /// once) and waits for the task to end. Call it before
    /// [`ShardMembership::leave`] or [`ShardMembership::stop`]: a sharder whose
    /// membership no longer renews has no fresh view and labels nothing, but its
    /// election keeps it leading.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Sharder {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn run(job: Job, elector: LeaderElector, stop: watch::Receiver<bool>) {
    let leadership = elector.leadership();
    let mut election_stop = stop.clone();
    let election = tokio::spawn(elector.run(async move { stopped(&mut election_stop).await }));
    let mut stop = stop;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = leadership.leading() => {}
        }
        tracing::info!(ring = job.ring, identity = job.membership.identity(), "leading the sharder: labelling the collection by the ring");
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = lead(&job, &leadership) => {}
        }
        tracing::info!(ring = job.ring, "no longer leading the sharder");
    }
    let _ = election.await;
}

/// Labels the collection while this replica leads; returns when it stops leading.
async fn lead(job: &Job, leadership: &Leadership) {
    let source = KubeSource::new(job.client.clone(), &job.resource, job.namespace.as_deref()).metadata_only(job.config.metadata_only);
    let informer = match Informer::spawn(source, job.config.informer.clone()) {
        Ok(informer) => informer,
        Err(e) => {
            tracing::error!(error = %e, "the sharder's informer did not start");
            leadership.lost().await;
            return;
        }
    };
    // Dropping the informer at any return stops it: the whole collection is held
    // only while leading.
    let _shutdown = ShutdownOnDrop(informer.clone());
    let arrivals = Arc::new(Arrivals::default());
    if let Err(e) = informer.add_handler(Arc::clone(&arrivals) as Arc<dyn Handler>) {
        tracing::error!(error = %e, "the sharder's handler was refused");
        leadership.lost().await;
        return;
    }
    tokio::select! {
        () = leadership.lost() => return,
        () = wait_synced(&informer) => {}
    }
    let mut changes = job.membership.subscribe();
    let mut pacer = PatchPacer::new(job.config.qps, job.config.burst, Instant::now());
    // Labels written whose event has not come back yet: key -> (resourceVersion the
    // patch was based on, label written). Spares a second patch of the same object.
    let mut written: HashMap<ObjectRef, (String, String)> = HashMap::new();
    let (patches, errors, scans) = (job.config.metrics.patches(&job.ring), job.config.metrics.patch_errors(&job.ring), job.config.metrics.scans(&job.ring));
    let mut full = true;
    // The ring the last full scan labelled by: the membership publishes at every
    // protocol deadline too, and only a new ring (or a view fresh again) moves labels.
    let mut scanned: Option<Arc<Ring>> = None;
    let mut last_full = Instant::now();
    loop {
        let view = job.membership.snapshot();
        let fresh = view.is_fresh(Instant::now());
        if !fresh {
            scanned = None;
        } else if scanned.as_ref() != Some(view.ring()) {
            full = true;
            scanned = Some(Arc::clone(view.ring()));
        }
        let mut failed = false;
        let mut restart = false;
        if fresh {
            let store = informer.store();
            let objects: Vec<Obj> = if full {
                arrivals.take();
                scans.inc();
                last_full = Instant::now();
                written.retain(|key, (rv, _)| store.get(key).is_some_and(|o| o.resource_version() == rv));
                store.list()
            } else {
                arrivals.take().iter().filter_map(|key| store.get(key)).collect()
            };
            full = false;
            for obj in objects {
                let Some(relabel) = job.label.relabel(view.ring(), job.by, &obj) else { continue };
                let key = obj.to_ref();
                if written.get(&key).is_some_and(|(rv, to)| rv == obj.resource_version() && *to == relabel.to) {
                    continue;
                }
                let wait = pacer.take(Instant::now());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if !leadership.is_leading() {
                    return;
                }
                // A paced scan of a big collection takes minutes: a ring that moved
                // meanwhile, or a view gone stale, restarts it rather than label by
                // the old ring.
                if changes.has_changed().unwrap_or(false) {
                    changes.borrow_and_update();
                    let now = job.membership.snapshot();
                    if !now.is_fresh(Instant::now()) || now.ring() != view.ring() {
                        restart = true;
                        break;
                    }
                }
                match patch(job, &obj, &relabel.to).await {
                    Ok(()) => {
                        patches.inc();
                        tracing::debug!(object = %key, from = ?relabel.from, to = relabel.to, "shard label written");
                        written.insert(key, (obj.resource_version().to_owned(), relabel.to));
                    }
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(e) => {
                        errors.inc();
                        failed = true;
                        tracing::warn!(object = %key, error = %e, "shard label patch failed: retried at the next scan");
                    }
                }
            }
        }
        if restart {
            continue;
        }
        // A stale view, or failed patches, retry by a full scan after one retry period;
        // else the periodic rescan, timed from the last full scan.
        let retry_at = if !fresh || failed { Instant::now() + job.membership.timing().retry_period } else { last_full + job.config.rescan };
        tokio::select! {
            () = leadership.lost() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    // The membership is gone: nothing to follow any more.
                    leadership.lost().await;
                    return;
                }
            }
            () = arrivals.notify.notified(), if fresh => {}
            () = tokio::time::sleep_until(retry_at.into()) => full = true,
        }
    }
}

async fn wait_synced(informer: &Informer) {
    while !informer.wait_for_sync(Duration::from_secs(60)).await {}
}

async fn patch(job: &Job, obj: &Obj, member: &str) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = match obj.namespace() {
        Some(ns) => Api::namespaced_with(job.client.clone(), ns, &job.resource),
        None => Api::all_with(job.client.clone(), &job.resource),
    };
    api.patch(obj.name(), &PatchParams::default(), &Patch::Merge(job.label.patch(member))).await.map(drop)
}

/// Shuts an informer down when dropped.
struct ShutdownOnDrop(Informer);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}
