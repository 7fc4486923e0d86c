//! The engines a run can measure, behind one interface: kcache's informer, and
//! kube-rs's watcher + reflector + `Store` as the baseline.
//!
//! Both get the same handler styles, so a comparison differs only in the engine:
//! * `sync`: the handler records the event inline, where the engine delivers it;
//! * `channel`: the handler pushes the object into an unbounded channel that a
//!   consumer thread drains (client-go's buffered listener);
//! * `workqueue`: the handler adds the key to a rate-limited kcache `WorkQueue`;
//!   two workers read the object back from the cache.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kcache::Handler;
use kcache::queue::WorkQueue;
use kcache::informer::{Informer, InformerConfig};
use kcache::reflector::KubeSource;
use kcache::store::NAMESPACE_INDEX;
use kcache::Obj;
use kube::runtime::{WatchStreamExt, reflector, watcher};

use super::recorder::{Recorder, SENT_AT, SENT_AT_POINTER};

/// How handlers consume events (the three styles the field compares).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HandlerStyle {
    /// Work done inline in the handler.
    Sync,
    /// Handler pushes into a channel; a consumer thread does the work.
    Channel,
    /// Handler enqueues the key; workqueue workers do the work.
    Workqueue,
}

impl HandlerStyle {
    /// The style's name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerStyle::Sync => "sync",
            HandlerStyle::Channel => "channel",
            HandlerStyle::Workqueue => "workqueue",
        }
    }
}

/// Which engine to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    /// kcache's informer.
    Kcache,
    /// kube-runtime's watcher + reflector + Store.
    #[value(name = "kube-rs")]
    KubeRs,
}

impl EngineKind {
    /// The engine's name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Kcache => "kcache",
            EngineKind::KubeRs => "kube-rs",
        }
    }
}

/// Settings shared by both engines.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Label selector restricting the informer to the run's pods.
    pub label_selector: String,
    /// Handler style.
    pub handler: HandlerStyle,
    /// kcache shards (fifo threads and store shards); 0 = cores.
    pub shards: usize,
    /// Strip managedFields at decode time (kcache only).
    pub strip_managed_fields: bool,
    /// Keep object bodies compressed (kcache only).
    pub compress: bool,
    /// List with a streaming list (`sendInitialEvents=true`).
    pub streaming_list: bool,
    /// Resync period (kcache only: kube-rs has no resync).
    pub resync: Option<Duration>,
}

/// An engine under test.
pub enum Engine {
    /// kcache.
    Kcache {
        /// The informer.
        informer: Informer,
        /// Workqueue (workqueue style) to shut down at the end.
        queue: Option<WorkQueue<String>>,
    },
    /// kube-rs.
    KubeRs {
        /// The reflector's store.
        store: reflector::Store<Pod>,
        /// The task driving the watcher stream.
        task: tokio::task::JoinHandle<()>,
        /// Workqueue (workqueue style) to shut down at the end.
        queue: Option<WorkQueue<String>>,
    },
}

fn stamp_of(pod: &Pod) -> Option<&str> {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(SENT_AT)).map(String::as_str)
}

fn pod_key(p: &Pod) -> String {
    format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or(""), p.metadata.name.as_deref().unwrap_or(""))
}

fn pod_rv(p: &Pod) -> &str {
    p.metadata.resource_version.as_deref().unwrap_or("")
}

/// Records an add or update of a kcache object.
fn observe_obj(recorder: &Recorder, obj: &Obj) {
    recorder.observe(obj.field(0), obj.resource_version(), || obj.key());
}

/// Records an add or update of a kube-rs pod.
fn observe_pod(recorder: &Recorder, pod: &Pod) {
    recorder.observe(stamp_of(pod), pod_rv(pod), || pod_key(pod));
}

struct RecordingHandler {
    recorder: Arc<Recorder>,
}

impl Handler for RecordingHandler {
    fn on_add(&self, obj: &Obj, _initial: bool) {
        observe_obj(&self.recorder, obj);
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        if is_resync(old, new) {
            self.recorder.observe_resync();
        } else {
            observe_obj(&self.recorder, new);
        }
    }
    fn on_delete(&self, obj: &Obj, _unknown: bool) {
        self.recorder.observe_delete(Some(obj.resource_version()), || obj.key());
    }
}

/// A resync re-delivers the stored object as both old and new; a real update
/// always changes the resourceVersion. Resyncs must not count as write events
/// (their stamps are old, so they would skew the latency histogram).
fn is_resync(old: &Obj, new: &Obj) -> bool {
    old.resource_version() == new.resource_version()
}

enum Msg {
    Upsert(Obj),
    Resync,
    Delete(Obj),
}

struct ChannelHandler {
    tx: crossbeam::channel::Sender<Msg>,
}

impl Handler for ChannelHandler {
    fn on_add(&self, obj: &Obj, _initial: bool) {
        let _ = self.tx.send(Msg::Upsert(obj.clone()));
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        let _ = self.tx.send(if is_resync(old, new) { Msg::Resync } else { Msg::Upsert(new.clone()) });
    }
    fn on_delete(&self, obj: &Obj, _unknown: bool) {
        let _ = self.tx.send(Msg::Delete(obj.clone()));
    }
}

struct EnqueueHandler {
    queue: WorkQueue<String>,
    recorder: Arc<Recorder>,
}

impl Handler for EnqueueHandler {
    fn on_add(&self, obj: &Obj, _initial: bool) {
        self.queue.add(obj.key());
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        // A controller re-reconciles on resync, so the key is queued either way;
        // the resync is counted here because the workers cannot tell it apart.
        if is_resync(old, new) {
            self.recorder.observe_resync();
        }
        self.queue.add(new.key());
    }
    fn on_delete(&self, obj: &Obj, _unknown: bool) {
        self.queue.add(obj.key());
    }
}

/// What a workqueue worker reads back from the cache for a key.
struct Cached {
    stamp: Option<String>,
    rv: String,
}

/// Looks a key up in a cache: `None` when absent.
type Lookup = Arc<dyn Fn(&str) -> Option<Cached> + Send + Sync>;

/// Spawns `n` worker threads that take keys, look them up with `lookup`, and record.
fn spawn_workers(queue: &WorkQueue<String>, recorder: &Arc<Recorder>, lookup: Lookup) {
    for _ in 0..2 {
        let queue = queue.clone();
        let recorder = Arc::clone(recorder);
        let lookup = Arc::clone(&lookup);
        std::thread::spawn(move || {
            while let Some(key) = queue.get() {
                match lookup(&key) {
                    Some(c) => recorder.observe(c.stamp.as_deref(), &c.rv, || key.clone()),
                    None => recorder.observe_delete(None, || key.clone()),
                }
                queue.forget(&key);
                queue.done(&key);
            }
        });
    }
}

impl Engine {
    /// Starts `kind` against `client`, recording into `recorder`.
    ///
    /// # Errors
    /// When kcache's informer threads cannot be started.
    pub fn start(
        kind: EngineKind,
        client: kube::Client,
        settings: &EngineSettings,
        recorder: Arc<Recorder>,
    ) -> Result<Engine, kcache::InformerError> {
        match kind {
            EngineKind::Kcache => Self::start_kcache(client, settings, recorder),
            EngineKind::KubeRs => Ok(Self::start_kube_rs(client, settings, recorder)),
        }
    }

    fn start_kcache(
        client: kube::Client,
        s: &EngineSettings,
        recorder: Arc<Recorder>,
    ) -> Result<Engine, kcache::InformerError> {
        let source = KubeSource::for_type::<Pod>(client, None);
        let mut config = InformerConfig::default();
        config.watcher.label_selector = Some(s.label_selector.clone());
        config.decoder.index_fields = vec![SENT_AT_POINTER.to_owned()];
        config.decoder.strip_managed_fields = s.strip_managed_fields;
        if s.compress {
            config.compression = kcache::compress::Compression::zstd();
        }
        config.watcher.streaming_list = s.streaming_list;
        config.resync = s.resync;
        if s.shards > 0 {
            config.store = config.store.shards(s.shards);
        }
        let informer = Informer::spawn(source, config)?;
        let mut queue = None;
        let handler: Arc<dyn Handler> = match s.handler {
            HandlerStyle::Sync => Arc::new(RecordingHandler { recorder }),
            HandlerStyle::Channel => {
                let (tx, rx) = crossbeam::channel::unbounded();
                std::thread::spawn(move || {
                    for msg in rx {
                        match msg {
                            Msg::Upsert(obj) => observe_obj(&recorder, &obj),
                            Msg::Resync => recorder.observe_resync(),
                            Msg::Delete(obj) => recorder.observe_delete(Some(obj.resource_version()), || obj.key()),
                        }
                    }
                });
                Arc::new(ChannelHandler { tx })
            }
            HandlerStyle::Workqueue => {
                let q = WorkQueue::builder().name("loadgen").build();
                let store = informer.store();
                spawn_workers(
                    &q,
                    &recorder,
                    Arc::new(move |key: &str| {
                        store.get_by_key(key).map(|o| Cached {
                            stamp: o.field(0).map(str::to_owned),
                            rv: o.resource_version().to_owned(),
                        })
                    }),
                );
                queue = Some(q.clone());
                Arc::new(EnqueueHandler { queue: q, recorder })
            }
        };
        informer.add_handler(handler)?;
        Ok(Engine::Kcache { informer, queue })
    }

    fn start_kube_rs(client: kube::Client, s: &EngineSettings, recorder: Arc<Recorder>) -> Engine {
        let api: kube::Api<Pod> = kube::Api::all(client);
        let (store, writer) = reflector::store();
        let mut config = watcher::Config::default().labels(&s.label_selector);
        if s.streaming_list {
            config = config.streaming_lists();
        }
        let stream = watcher(api, config).default_backoff().reflect(writer);
        let mut queue = None;
        enum Sink {
            Sync(Arc<Recorder>),
            Channel(tokio::sync::mpsc::UnboundedSender<(Arc<Pod>, bool)>),
            Queue(WorkQueue<String>),
        }
        let sink = match s.handler {
            HandlerStyle::Sync => Sink::Sync(recorder),
            HandlerStyle::Channel => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Arc<Pod>, bool)>();
                std::thread::spawn(move || {
                    while let Some((pod, deleted)) = rx.blocking_recv() {
                        if deleted {
                            recorder.observe_delete(Some(pod_rv(&pod)), || pod_key(&pod));
                        } else {
                            observe_pod(&recorder, &pod);
                        }
                    }
                });
                Sink::Channel(tx)
            }
            HandlerStyle::Workqueue => {
                let q = WorkQueue::builder().name("loadgen").build();
                let reader = store.clone();
                spawn_workers(
                    &q,
                    &recorder,
                    Arc::new(move |key: &str| {
                        let (ns, name) = key.split_once('/').unwrap_or(("", key));
                        let r = reflector::ObjectRef::<Pod>::new(name).within(ns);
                        reader.get(&r).map(|p| Cached {
                            stamp: stamp_of(&p).map(str::to_owned),
                            rv: pod_rv(&p).to_owned(),
                        })
                    }),
                );
                queue = Some(q.clone());
                Sink::Queue(q)
            }
        };
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                let (pod, deleted) = match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, false),
                    watcher::Event::Delete(p) => (p, true),
                    watcher::Event::Init | watcher::Event::InitDone => continue,
                };
                match &sink {
                    Sink::Sync(r) => {
                        let observe = || {
                            if deleted {
                                r.observe_delete(Some(pod_rv(&pod)), || pod_key(&pod));
                            } else {
                                observe_pod(r, &pod);
                            }
                        };
                        // A slow sync handler blocks the stream, as it would in a
                        // kube-rs controller; block_in_place keeps it from also
                        // blocking the other tasks of this runtime (the writer).
                        let blocking = !r.handler_cost().is_zero()
                            && tokio::runtime::Handle::current().runtime_flavor()
                                == tokio::runtime::RuntimeFlavor::MultiThread;
                        if blocking { tokio::task::block_in_place(observe) } else { observe() }
                    }
                    Sink::Channel(tx) => {
                        let _ = tx.send((Arc::new(pod), deleted));
                    }
                    Sink::Queue(q) => q.add(pod_key(&pod)),
                }
            }
        });
        Engine::KubeRs { store, task, queue }
    }

    /// Waits until the engine's initial list is in its cache.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        match self {
            Engine::Kcache { informer, .. } => informer.wait_for_sync(timeout).await,
            Engine::KubeRs { store, .. } => tokio::time::timeout(timeout, store.wait_until_ready()).await.is_ok_and(|r| r.is_ok()),
        }
    }

    /// A handle that reads the engine's cache from any thread.
    pub fn reader(&self) -> CacheReader {
        match self {
            Engine::Kcache { informer, .. } => CacheReader::Kcache(informer.store()),
            Engine::KubeRs { store, .. } => CacheReader::KubeRs(store.clone()),
        }
    }

    /// `(namespace/name, resourceVersion)` of every cached object, sorted.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = match self {
            Engine::Kcache { informer, .. } => {
                informer.store().list().iter().map(|o| (o.key(), o.resource_version().to_owned())).collect()
            }
            Engine::KubeRs { store, .. } => store
                .state()
                .iter()
                .map(|p| {
                    (
                        format!(
                            "{}/{}",
                            p.metadata.namespace.as_deref().unwrap_or(""),
                            p.metadata.name.as_deref().unwrap_or("")
                        ),
                        p.metadata.resource_version.clone().unwrap_or_default(),
                    )
                })
                .collect(),
        };
        out.sort();
        out
    }

    /// The highest resourceVersion among the cached objects (0: none); no
    /// copy of the keys is made.
    pub fn max_resource_version(&self) -> u64 {
        let rv = |s: &str| s.parse::<u64>().unwrap_or(0);
        match self {
            Engine::Kcache { informer, .. } => {
                informer.store().list().iter().map(|o| rv(o.resource_version())).max().unwrap_or(0)
            }
            Engine::KubeRs { store, .. } => store.state().iter().map(|p| rv(pod_rv(p))).max().unwrap_or(0),
        }
    }

    /// Bytes of objects the cache holds: zstd frames for compressed objects, JSON for
    /// the others (kcache only; 0 for kube-rs, whose
    /// typed objects have no byte form — compare RSS instead).
    pub fn store_bytes(&self) -> u64 {
        match self {
            Engine::Kcache { informer, .. } => informer.store().stats().json_bytes,
            Engine::KubeRs { .. } => 0,
        }
    }

    /// JSON bytes of the objects the cache holds, uncompressed: `store_bytes` when
    /// the store does not compress (kcache only; 0 for kube-rs).
    pub fn store_uncompressed_bytes(&self) -> u64 {
        match self {
            Engine::Kcache { informer, .. } => informer.store().stats().uncompressed_bytes,
            Engine::KubeRs { .. } => 0,
        }
    }

    /// Stops the engine's background work.
    pub fn shutdown(&self) {
        match self {
            Engine::Kcache { informer, queue } => {
                informer.shutdown();
                if let Some(q) = queue {
                    q.shutdown();
                }
            }
            Engine::KubeRs { task, queue, .. } => {
                task.abort();
                if let Some(q) = queue {
                    q.shutdown();
                }
            }
        }
    }
}

/// Reads one engine's cache the way a controller's workers do; cheap to clone and
/// `Send`, so timing threads can each hold one.
#[derive(Clone)]
pub enum CacheReader {
    /// kcache's store (lock-free maps, namespace index).
    Kcache(kcache::store::Store),
    /// kube-rs's reflector `Store` (one `RwLock`ed map, no index).
    KubeRs(reflector::Store<Pod>),
}

impl CacheReader {
    /// Looks one object up by `namespace/name`; whether it was found.
    pub fn get(&self, key: &str) -> bool {
        match self {
            CacheReader::Kcache(store) => store.get_by_key(key).is_some(),
            CacheReader::KubeRs(store) => {
                let (ns, name) = key.split_once('/').unwrap_or(("", key));
                store.get(&reflector::ObjectRef::new(name).within(ns)).is_some()
            }
        }
    }

    /// Lists one namespace from the cache; the number of objects.
    pub fn list_namespace(&self, namespace: &str) -> usize {
        match self {
            CacheReader::Kcache(store) => store.index(NAMESPACE_INDEX, namespace).map_or(0, |s| s.iter().count()),
            // kube-rs's Store has no index: a namespace list filters the whole state.
            CacheReader::KubeRs(store) => {
                store.state().into_iter().filter(|p| p.metadata.namespace.as_deref() == Some(namespace)).count()
            }
        }
    }
}
