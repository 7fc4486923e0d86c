//! Informers: a watcher feeding a fifo feeding a store, with event handlers —
//! and the factory that shares one informer per (resource, namespace, selectors).
//!
//! # Guarantees
//! * One list+watch per [`InformerKey`], however many consumers ask the
//!   [`SharedInformerFactory`] for it.
//! * Handlers can be added and removed while the informer runs; a handler added
//!   late first receives every object already cached (`on_add` with
//!   `is_in_initial_list = true`) and then live events, and has its own synced flag.
//! * [`Informer::has_synced`] turns true once the first complete list has been
//!   applied to the store.
//! * Resync ([`InformerConfig::resync`]) re-delivers the cached objects to the
//!   handlers from memory: it never calls the API server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::core::{ApiResource, Resource};
use tokio::sync::watch;

use super::source::{KubeSource, Source};
use super::watcher::{Event, EventSink, Watcher, WatcherConfig, WatcherStats};
use crate::Obj;
use crate::fifo::{Delta, Fifo, FifoError, Handler, HandlerId, Handlers};
use crate::store::{Store, StoreConfig, store};
use crate::wire::{Decoder, DecoderConfig};

/// Everything an informer can be tuned with.
#[derive(Clone, Default)]
pub struct InformerConfig {
    /// List/watch behaviour: selectors, page size, streaming list, backoff.
    pub watcher: WatcherConfig,
    /// Decoding: index fields, managedFields stripping, transforms, size limits.
    pub decoder: DecoderConfig,
    /// Store shards (one fifo thread each) and indexers.
    pub store: StoreConfig,
    /// Re-deliver every cached object to the handlers this often (from memory).
    pub resync: Option<Duration>,
    /// Arena segment size in bytes (default 1 MiB); see [`crate::arena`].
    pub arena_segment_bytes: Option<usize>,
    /// Compact the arena when its live bytes fall under this share of its
    /// segment bytes (default 0.7): live objects in sparse segments are copied
    /// to a fresh segment and the store's handles swapped, without notifying handlers.
    pub compact_below: Option<f64>,
}

/// A running informer. Cheap to clone; the last clone dropped stops it.
#[derive(Clone)]
pub struct Informer {
    pub(crate) inner: Arc<InformerInner>,
}

pub(crate) struct InformerInner {
    store: Store,
    handlers: Handlers,
    stats: Arc<WatcherStats>,
    shutdown: watch::Sender<bool>,
    /// A clone of the decoder's arena: it holds no segment, only the shared accounting.
    arena: Mutex<crate::arena::Arena>,
    /// Time from spawn to the first complete list handed to the store.
    sync_duration: Arc<std::sync::OnceLock<Duration>>,
}

impl Drop for InformerInner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Turns watcher events into fifo deltas: buffers a list, then replaces.
///
/// The fifo sits behind a mutex only so the resync timer can reach it; the
/// watcher task is its one real producer, so the lock is uncontended.
struct FifoSink {
    fifo: Arc<Mutex<Fifo>>,
    started: std::time::Instant,
    sync_duration: Arc<std::sync::OnceLock<Duration>>,
    store: Store,
    listing: Option<Vec<Obj>>,
    compaction: Compaction,
}

/// Incremental arena compaction, run from [`EventSink::maintain`].
///
/// A pass that copied every live object out of every sparse segment at once
/// would stall the watch for as long as the copy takes (tens of milliseconds
/// for 10,000 pods), and every event behind it would wait. Instead a *scan*
/// (at most once per [`SCAN_INTERVAL`], and only when the arena's live share
/// is under `compact_below`) collects the candidates on a thread of its own
/// (it reads every stored object: milliseconds at 10k objects, tens at 100k,
/// which the watch must not wait for), and each maintenance call relocates
/// what [`step_budget`] allows of them. The fifo's queued objects are
/// moved too: when handlers fall behind, they are what keeps old segments
/// alive.
struct Compaction {
    compact_below: f64,
    /// Objects found in sparse segments by the last scan, not yet relocated.
    pending: Candidates,
    /// The fifo's queued objects still need a pass ([`Fifo::relocate_pending`]).
    queues_pending: bool,
    last_scan: Option<std::time::Instant>,
    /// When the sink was last asked to maintain, with work or without: a step's
    /// budget is earned by the time since, so the first step after an idle
    /// stretch is an interval's worth, not a burst.
    last_maintain: Option<std::time::Instant>,
    /// The running scan's result, when one runs.
    scanning: Option<std::sync::mpsc::Receiver<Candidates>>,
}

/// Stored objects to move out of sparse segments, with their keys.
type Candidates = Vec<(Arc<str>, Obj)>;

/// Every stored object whose bytes sit in a sparse segment, with its key.
fn sparse_objects(store: &Store) -> Candidates {
    let mut found = Vec::new();
    for shard in 0..store.shards() {
        store.for_each_in_shard(shard, |key, obj| {
            if obj.segment_is_sparse() {
                found.push((Arc::from(key), obj.clone()));
            }
        });
    }
    found
}

/// Least time between two scans of the store for objects in sparse segments.
const SCAN_INTERVAL: Duration = Duration::from_millis(500);
/// Object bytes compaction copies out of sparse segments per second of watch
/// time. A maintenance step copies what the time since the previous step
/// earned ([`step_budget`]), so the rate does not depend on how often the watch
/// calls it: at the default interval (2.5 ms) a step is 64 KiB, about a dozen
/// pods. The copy runs on the watch task, so events that arrive meanwhile wait
/// for it; 64 KiB every 2.5 ms moves as much per second as 512 KiB every 20 ms
/// did, with an eighth of the stall (ARCHITECTURE, "The arena is `BytesMut`
/// segments").
const RELOCATE_BYTES_PER_SECOND: usize = 25 << 20;
/// Least a step copies (when it is called more often than it earns a pod).
const MIN_STEP_BYTES: usize = 4 << 10;
/// Most a step copies, whatever time passed: the stall it may cause is bounded.
const MAX_STEP_BYTES: usize = 512 << 10;

/// Bytes a compaction step may copy, `since` the previous step.
fn step_budget(since: Duration) -> usize {
    let earned = since.as_secs_f64() * RELOCATE_BYTES_PER_SECOND as f64;
    (earned as usize).clamp(MIN_STEP_BYTES, MAX_STEP_BYTES)
}

/// Most relocated copies waiting for the shard threads before compaction of
/// store objects pauses (see [`Fifo::relocation_backlog`]).
const MAX_RELOCATION_BACKLOG: usize = 512;

impl Compaction {
    fn new(compact_below: f64) -> Self {
        Compaction { compact_below, pending: Vec::new(), queues_pending: false, last_scan: None, last_maintain: None, scanning: None }
    }

    /// Starts a scan for objects in sparse segments when the arena's live share
    /// is low, or takes the result of the running one.
    fn scan(&mut self, store: &Store, stats: crate::arena::ArenaStats) {
        if let Some(rx) = &self.scanning {
            match rx.try_recv() {
                Ok(found) => {
                    self.scanning = None;
                    self.pending = found;
                    self.queues_pending = true;
                    tracing::debug!(
                        candidates = self.pending.len(),
                        live = stats.live_bytes,
                        segments = stats.segment_bytes,
                        "arena compaction started"
                    );
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.scanning = None,
            }
            return;
        }
        if stats.segment_bytes == 0 || (stats.live_bytes as f64) >= self.compact_below * stats.segment_bytes as f64 {
            return;
        }
        if self.last_scan.is_some_and(|t| t.elapsed() < SCAN_INTERVAL) {
            return;
        }
        self.last_scan = Some(std::time::Instant::now());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reader = store.clone();
        let spawned = std::thread::Builder::new().name("kcache-compact-scan".into()).spawn(move || {
            // The receiver is gone only when the informer stopped.
            let _ = tx.send(sparse_objects(&reader));
        });
        match spawned {
            Ok(_) => self.scanning = Some(rx),
            Err(e) => {
                tracing::debug!(error = %e, "cannot start a compaction scan thread; scanning on the watch task");
                self.pending = sparse_objects(store);
                self.queues_pending = true;
            }
        }
    }

    /// Relocates up to `budget` bytes of the candidates that the store still
    /// holds (the object that crosses it included), handing the copies to the
    /// fifo, then moves the fifo's queued objects out of sparse segments with
    /// what is left. Returns how many store objects moved.
    fn relocate_some(&mut self, store: &Store, decoder: &mut Decoder, fifo: &mut Fifo, mut budget: usize) -> usize {
        let mut moved = 0;
        // Copies wait in the shard queues until the shard threads swap them
        // in; behind a slow handler they would pile up faster than they are
        // applied, each one doubling its object's memory meanwhile.
        let room = MAX_RELOCATION_BACKLOG.saturating_sub(fifo.relocation_backlog());
        while budget > 0 && moved < room {
            let Some((key, obj)) = self.pending.pop() else { break };
            // Replaced or deleted since the scan: its segment frees itself once
            // this handle drops.
            let current = store.get_by_key(&key).is_some_and(|cur| std::ptr::eq(cur.json(), obj.json()));
            if !current {
                continue;
            }
            budget = budget.saturating_sub(obj.json().len());
            let relocated = decoder.arena_mut().relocate(&obj);
            if fifo.push(Delta::Relocate(relocated)).is_err() {
                self.pending.clear();
                self.queues_pending = false;
                break;
            }
            moved += 1;
        }
        if (self.pending.is_empty() || moved >= room) && self.queues_pending && budget > 0 {
            let (_, done) = fifo.relocate_pending(budget, |obj| decoder.arena_mut().relocate(obj));
            self.queues_pending = !done;
        }
        moved
    }
}

impl EventSink for FifoSink {
    fn event(&mut self, event: Event) {
        let mut fifo = self.fifo.lock().unwrap_or_else(|p| p.into_inner());
        let result = match event {
            Event::Init => {
                self.listing = Some(Vec::new());
                Ok(())
            }
            Event::InitApply(obj) => match &mut self.listing {
                Some(buf) => {
                    buf.push(obj);
                    Ok(())
                }
                None => fifo.push(Delta::Updated(obj)),
            },
            Event::InitDone { resource_version } => {
                let _ = self.sync_duration.set(self.started.elapsed());
                let objs = self.listing.take().unwrap_or_default();
                fifo.replace(objs, &resource_version)
            }
            Event::Apply(obj) => fifo.push(Delta::Updated(obj)),
            Event::Delete(obj) => fifo.push(Delta::Deleted(obj)),
            Event::Bookmark(rv) => {
                fifo.bookmark(&rv);
                Ok(())
            }
        };
        if let Err(e) = result {
            // Only a closed fifo refuses deltas, i.e. the informer is shutting down.
            tracing::debug!(error = %e, "fifo refused a delta during shutdown");
        }
    }

    fn init_aborted(&mut self) {
        // The list will not complete: its objects never reach the store, which
        // keeps the last complete state.
        self.listing = None;
    }

    fn maintain(&mut self, decoder: &mut Decoder) {
        let now = std::time::Instant::now();
        let since = self.compaction.last_maintain.replace(now).map_or(Duration::ZERO, |t| now - t);
        if self.compaction.pending.is_empty() && !self.compaction.queues_pending {
            // Starts a scan, or takes a finished scan's candidates.
            self.compaction.scan(&self.store, decoder.arena().stats());
            if self.compaction.pending.is_empty() && !self.compaction.queues_pending {
                return;
            }
        }
        let mut fifo = self.fifo.lock().unwrap_or_else(|p| p.into_inner());
        let moved = self.compaction.relocate_some(&self.store, decoder, &mut fifo, step_budget(since));
        if self.compaction.pending.is_empty() && !self.compaction.queues_pending {
            let stats = decoder.arena().stats();
            tracing::debug!(moved, live = stats.live_bytes, segments = stats.segment_bytes, "arena compaction pass done");
        }
    }
}

impl Informer {
    /// Starts an informer over `source` on the current Tokio runtime.
    ///
    /// # Errors
    /// [`FifoError::Spawn`] when the shard threads cannot be started.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn<S: Source>(source: S, config: InformerConfig) -> Result<Informer, FifoError> {
        let (store, writer) = store(config.store.clone());
        let fifo = Fifo::spawn(writer)?;
        let handlers = fifo.handlers();
        let fifo = Arc::new(Mutex::new(fifo));
        let arena = match config.arena_segment_bytes {
            Some(bytes) => crate::arena::Arena::with_segment_bytes(bytes),
            None => crate::arena::Arena::new(),
        };
        let arena_stats = arena.clone();
        let watcher = Watcher::new(source, Decoder::with_arena(config.decoder.clone(), arena), config.watcher.clone());
        let stats = watcher.stats();
        let (shutdown, rx) = watch::channel(false);
        let sync_duration = Arc::new(std::sync::OnceLock::new());
        let mut sink = FifoSink {
            fifo: Arc::clone(&fifo),
            started: std::time::Instant::now(),
            sync_duration: Arc::clone(&sync_duration),
            store: store.clone(),
            listing: None,
            compaction: Compaction::new(config.compact_below.unwrap_or(0.7).clamp(0.0, 1.0)),
        };
        let task_fifo = Arc::clone(&fifo);
        tokio::spawn(async move {
            watcher.run(&mut sink, rx).await;
            task_fifo.lock().unwrap_or_else(|p| p.into_inner()).close();
        });
        if let Some(period) = config.resync.filter(|p| !p.is_zero()) {
            let fifo = Arc::downgrade(&fifo);
            let mut rx = shutdown.subscribe();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = tick.tick() => match fifo.upgrade() {
                            Some(f) => {
                                if f.lock().unwrap_or_else(|p| p.into_inner()).resync().is_err() {
                                    return;
                                }
                            }
                            None => return,
                        },
                        _ = rx.changed() => return,
                    }
                }
            });
        }
        Ok(Informer { inner: Arc::new(InformerInner {
            store,
            handlers,
            stats,
            shutdown,
            arena: Mutex::new(arena_stats),
            sync_duration,
        }) })
    }

    /// The informer's cache.
    pub fn store(&self) -> Store {
        self.inner.store.clone()
    }

    /// The watcher's counters (lists, relists, watch restarts, events, bytes, decode errors).
    pub fn stats(&self) -> Arc<WatcherStats> {
        Arc::clone(&self.inner.stats)
    }

    /// Time from start until the first complete list was handed to the store.
    pub fn sync_duration(&self) -> Option<Duration> {
        self.inner.sync_duration.get().copied()
    }

    /// The fifo's counters: deltas pushed, applied and coalesced, and the backlog
    /// (pending keys and deltas) of each shard.
    pub fn fifo_stats(&self) -> crate::fifo::FifoStats {
        self.inner.handlers.stats()
    }

    /// Memory held by the informer's arena: live object bytes and segment bytes.
    pub fn arena_stats(&self) -> crate::arena::ArenaStats {
        self.inner.arena.lock().unwrap_or_else(|p| p.into_inner()).stats()
    }

    /// Registers a handler; it first gets every cached object, then live events.
    ///
    /// # Errors
    /// [`FifoError::Closed`] after shutdown.
    pub fn add_handler(&self, handler: Arc<dyn Handler>) -> Result<HandlerId, FifoError> {
        self.inner.handlers.add(handler)
    }

    /// Unregisters a handler; it gets no event after this returns.
    ///
    /// # Errors
    /// [`FifoError::UnknownHandler`] for an id that is not registered.
    pub fn remove_handler(&self, id: HandlerId) -> Result<(), FifoError> {
        self.inner.handlers.remove(id)
    }

    /// Whether `id` has received every object that was cached when it was added.
    pub fn handler_synced(&self, id: HandlerId) -> bool {
        self.inner.handlers.has_synced(id)
    }

    /// Panics caught in handler `id` so far.
    pub fn handler_panics(&self, id: HandlerId) -> Option<u64> {
        self.inner.handlers.panics(id)
    }

    /// Whether the first complete list has been applied to the store.
    pub fn has_synced(&self) -> bool {
        self.inner.store.has_synced()
    }

    /// Waits until [`has_synced`](Self::has_synced) or `timeout`; returns whether it synced.
    pub async fn wait_for_sync(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut delay = Duration::from_millis(1);
        while !self.has_synced() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(50));
        }
        true
    }

    /// Stops the watch and the fifo threads. Cached objects stay readable.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }
}

/// What makes two informer requests the same informer.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct InformerKey {
    /// API group (empty for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name, e.g. `pods`.
    pub plural: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Metadata-only (`PartialObjectMetadata`) objects.
    pub metadata_only: bool,
}

impl InformerKey {
    /// The key for every object of `resource`, all namespaces.
    pub fn new(resource: &ApiResource) -> Self {
        InformerKey {
            group: resource.group.clone(),
            version: resource.version.clone(),
            plural: resource.plural.clone(),
            kind: resource.kind.clone(),
            namespace: None,
            label_selector: None,
            field_selector: None,
            metadata_only: false,
        }
    }

    /// The key for a k8s-openapi type.
    pub fn of<K: Resource<DynamicType = ()>>() -> Self {
        InformerKey::new(&ApiResource::erase::<K>(&()))
    }

    /// The resource as kube-client describes it.
    pub fn api_resource(&self) -> ApiResource {
        let api_version =
            if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) };
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version,
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Restricts to one namespace.
    #[must_use]
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// Sets the label selector.
    #[must_use]
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// Sets the field selector.
    #[must_use]
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }

    /// Asks for metadata-only objects.
    #[must_use]
    pub fn metadata_only(mut self) -> Self {
        self.metadata_only = true;
        self
    }
}

type MakeSource<S> = Box<dyn Fn(&InformerKey) -> S + Send + Sync>;

/// Hands out one shared [`Informer`] per [`InformerKey`].
///
/// ```
/// use kcache::runtime::informer::{InformerConfig, InformerKey, SharedInformerFactory};
/// use kcache::runtime::memory::MemorySource;
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let pods = MemorySource::new("Pod");
/// pods.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "web"}}));
/// let src = pods.clone();
/// let factory = SharedInformerFactory::new(move |_key: &InformerKey| src.clone());
/// let key = InformerKey::of::<k8s_openapi::api::core::v1::Pod>();
/// let a = factory.informer(&key, InformerConfig::default).unwrap();
/// let b = factory.informer(&key, InformerConfig::default).unwrap();
/// assert!(a.wait_for_sync(std::time::Duration::from_secs(10)).await);
/// assert_eq!(b.store().len(), 1);
/// assert_eq!(pods.list_calls(), 1); // one list for both consumers
/// # });
/// ```
pub struct SharedInformerFactory<S> {
    make_source: MakeSource<S>,
    informers: Mutex<HashMap<InformerKey, Informer>>,
}

impl SharedInformerFactory<KubeSource> {
    /// A factory whose informers talk to the API server behind `client`.
    pub fn from_client(client: kube::Client) -> Self {
        SharedInformerFactory::new(move |key: &InformerKey| {
            KubeSource::new(client.clone(), &key.api_resource(), key.namespace.as_deref()).metadata_only(key.metadata_only)
        })
    }
}

impl<S: Source> SharedInformerFactory<S> {
    /// A factory that builds each informer's source with `make_source`.
    pub fn new(make_source: impl Fn(&InformerKey) -> S + Send + Sync + 'static) -> Self {
        SharedInformerFactory { make_source: Box::new(make_source), informers: Mutex::new(HashMap::new()) }
    }

    /// The informer for `key`, started on first request with `config()`
    /// (selectors from the key override the config's).
    ///
    /// # Errors
    /// [`FifoError::Spawn`] when a new informer's threads cannot be started.
    pub fn informer(&self, key: &InformerKey, config: impl FnOnce() -> InformerConfig) -> Result<Informer, FifoError> {
        let mut informers = self.informers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = informers.get(key) {
            return Ok(i.clone());
        }
        let mut config = config();
        config.watcher.label_selector.clone_from(&key.label_selector);
        config.watcher.field_selector.clone_from(&key.field_selector);
        let informer = Informer::spawn((self.make_source)(key), config)?;
        informers.insert(key.clone(), informer.clone());
        Ok(informer)
    }

    /// Number of distinct informers started.
    pub fn len(&self) -> usize {
        self.informers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no informer was started.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every informer.
    pub fn shutdown(&self) {
        for i in self.informers.lock().unwrap_or_else(|p| p.into_inner()).values() {
            i.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::testing::pod;

    /// A compaction step runs on the watch task: it copies no more than its
    /// budget (the object that crosses it included), and the steps that follow
    /// move the rest.
    #[test]
    fn a_compaction_step_copies_at_most_its_budget() {
        let (store, writer) = store(StoreConfig::default().shards(1));
        let mut fifo = Fifo::spawn(writer).unwrap();
        let labels: Vec<(String, String)> = (0..8).map(|i| (format!("label-{i}"), "x".repeat(40))).collect();
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let n = 1_000;
        for i in 0..n {
            fifo.push(Delta::Updated(pod("ns", &format!("pod-{i}"), "1", &labels))).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.len() < n {
            assert!(std::time::Instant::now() < deadline, "the fifo applied {} of {n} objects", store.len());
            std::thread::sleep(Duration::from_millis(1));
        }
        let candidates = all_objects(&store);
        let total: usize = candidates.iter().map(|(_, o)| o.json().len()).sum();
        let largest = candidates.iter().map(|(_, o)| o.json().len()).max().unwrap();
        let budget = 64 << 10;
        assert!(total > 2 * budget, "{total} bytes are too few to need several steps");

        let mut decoder = Decoder::new(DecoderConfig::default());
        let mut compaction = Compaction::new(1.0);
        compaction.pending = candidates.clone();
        let moved = compaction.relocate_some(&store, &mut decoder, &mut fifo, budget);
        let copied: usize = candidates[candidates.len() - moved..].iter().map(|(_, o)| o.json().len()).sum();
        assert!(moved > 0 && copied <= budget + largest, "{moved} objects, {copied} bytes");
        assert!(copied >= budget, "a step stopped at {copied} bytes with work left");

        let mut steps = 1;
        while !compaction.pending.is_empty() {
            // The shard thread drains the relocation backlog meanwhile.
            std::thread::sleep(Duration::from_millis(1));
            compaction.relocate_some(&store, &mut decoder, &mut fifo, budget);
            steps += 1;
            assert!(steps < 10_000, "compaction did not finish");
        }
        assert!(steps >= total / (budget + largest), "{steps} steps for {total} bytes");
        fifo.close();
    }

    #[test]
    fn a_step_copies_what_the_time_since_the_last_one_earned_within_bounds() {
        let ms = |m: f64| Duration::from_secs_f64(m / 1e3);
        // The default interval earns 64 KiB; a longer one proportionally more.
        assert_eq!(step_budget(ms(2.5)), 65_536);
        assert_eq!(step_budget(ms(5.0)), 131_072);
        assert_eq!(step_budget(ms(20.0)), MAX_STEP_BYTES);
        // A step after a long pause is capped; one right after another still moves something.
        assert_eq!(step_budget(Duration::from_secs(60)), MAX_STEP_BYTES);
        assert_eq!(step_budget(Duration::ZERO), MIN_STEP_BYTES);
        assert!(step_budget(ms(0.1)) >= MIN_STEP_BYTES && step_budget(ms(1.0)) > step_budget(ms(0.5)));
    }

    fn all_objects(store: &Store) -> Candidates {
        let mut all = Vec::new();
        store.for_each_in_shard(0, |key, obj| all.push((Arc::from(key), obj.clone())));
        all
    }
}
