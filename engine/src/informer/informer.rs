//! Informers: a watcher feeding a fifo feeding a store, with event handlers —
//! and the factory that shares one informer per (resource, namespace, selectors).
//!
//! # Guarantees
//! * One list+watch per [`InformerKey`], however many consumers ask the
//!   [`SharedInformerFactory`] for it — with one config: asking for a key with a
//!   config that differs in a comparable field is [`InformerError::ConfigMismatch`]
//!   (closures such as `on_error` are not compared), and a shut-down informer is
//!   never handed out again (the next request starts a new one).
//! * Handlers can be added and removed while the informer runs; a handler added
//!   late first receives every object already cached (`on_add` with
//!   `is_in_initial_list = true`) and then live events, and has its own synced
//!   flag, which turns true only once every initial add has been delivered to
//!   it (not merely applied to the store).
//! * [`Informer::has_synced`] turns true once the first complete list has been
//!   applied to the store.
//! * Resync ([`InformerConfig::resync`]) re-delivers the cached objects to the
//!   handlers from memory: it never calls the API server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::InformerError;
use crate::Obj;
use crate::arena::Arena;
use crate::compress::{Codec, Compression, CompressionStats};
use crate::fifo::{Delta, Fifo, Handler, HandlerId, Handlers};
use crate::reflector::{Event, EventSink, RelistScope, Source, Watcher, WatcherConfig, WatcherStats};
use crate::store::{CompactionConfig, Store, StoreConfig, store};
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
    /// Arena compaction, run by the shard threads between keys: live objects in
    /// sparse segments are copied to a fresh segment and the store's handles
    /// swapped, without notifying handlers ([`crate::store::ShardCompactor`]).
    pub compaction: CompactionConfig,
    /// Compression of stored object bodies (default off): with
    /// [`Compression::Zstd`], a dictionary is trained from a sample of the initial
    /// list and object bodies are kept as zstd frames, their metadata uncompressed
    /// beside them ([`crate::compress`]). Metadata reads, `get`, `list` and indexes
    /// cost the same; reading a body (`json`, `decode`, `pointer`) decompresses it.
    pub compression: Compression,
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
    arena: Mutex<Arena>,
    /// Time from spawn to the first complete list handed to the store.
    sync_duration: Arc<std::sync::OnceLock<Duration>>,
}

impl Drop for InformerInner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Objects of a first list handed to the fifo at once ([`Fifo::push_initial`]).
const FIRST_LIST_BATCH: usize = 1024;

/// Turns watcher events into fifo deltas: buffers a list, then replaces. The first
/// list, into an empty fifo and store, is handed on in batches as it arrives
/// instead (when no object limit can still fail it): the shard threads apply it
/// while it is read, and neither the sink nor the fifo holds the whole list.
///
/// The fifo sits behind a mutex only so the resync timer can reach it; the
/// watcher task is its one real producer, so the lock is uncontended.
struct FifoSink {
    fifo: Arc<Mutex<Fifo>>,
    started: std::time::Instant,
    sync_duration: Arc<std::sync::OnceLock<Duration>>,
    listing: Option<Vec<Obj>>,
    /// The scope of the list in progress when it is a scoped relist.
    scope: Option<Arc<RelistScope>>,
    codec: Option<Codec>,
    /// With compression: an arena (sharing the decoder's codec and accounting) to
    /// compress a list's objects stored before the dictionary existed.
    arena: Option<Arena>,
    /// A first list may be handed on as it arrives: no object limit can fail it
    /// after some of it reached the store.
    first_list_as_it_arrives: bool,
    /// The list in progress is handed on as it arrives.
    incremental: bool,
}

/// Compresses the objects of `objs` stored before the dictionary existed, when it
/// exists by now: the first objects of a list are the sample the dictionary is
/// trained on, and they are still in the sink's hands. Compressing them here (one
/// frame each, on the watch task) spares the store holding them uncompressed until
/// compaction gets to them, after the sync.
fn compress_waiting(arena: Option<&mut Arena>, objs: &mut [Obj]) {
    let Some(arena) = arena else { return };
    if !arena.codec().is_some_and(Codec::has_dictionary) {
        return;
    }
    for obj in objs.iter_mut().filter(|o| o.awaits_compression()) {
        *obj = arena.relocate(obj);
    }
}

impl EventSink for FifoSink {
    fn event(&mut self, event: Event) {
        let mut fifo = self.fifo.lock().unwrap_or_else(|p| p.into_inner());
        let result = match event {
            Event::Init => {
                self.incremental = self.first_list_as_it_arrives && self.scope.is_none() && fifo.is_pristine();
                self.listing = Some(Vec::new());
                Ok(())
            }
            Event::InitApply(obj) => match &mut self.listing {
                Some(buf) => {
                    buf.push(obj);
                    if self.incremental && buf.len() >= FIRST_LIST_BATCH {
                        let mut batch = std::mem::replace(buf, Vec::with_capacity(FIRST_LIST_BATCH));
                        compress_waiting(self.arena.as_mut(), &mut batch);
                        fifo.push_initial(batch)
                    } else {
                        Ok(())
                    }
                }
                None => fifo.push(Delta::Updated(obj)),
            },
            Event::InitDone { resource_version } => {
                let _ = self.sync_duration.set(self.started.elapsed());
                if let Some(codec) = &self.codec {
                    // A list shorter than the sample still trains a dictionary.
                    codec.list_done();
                }
                let mut objs = self.listing.take().unwrap_or_default();
                compress_waiting(self.arena.as_mut(), &mut objs);
                match self.scope.take() {
                    _ if std::mem::take(&mut self.incremental) => {
                        fifo.push_initial(objs).map(|()| fifo.finish_initial(&resource_version))
                    }
                    Some(scope) => fifo.replace_scoped(objs, &resource_version, |o| scope.covers(o)),
                    None => fifo.replace(objs, &resource_version),
                }
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
        // keeps the last complete state. (Of a first list handed on as it arrived,
        // what was handed on stays, unsynced, until the next list replaces it.)
        self.listing = None;
        self.scope = None;
        self.incremental = false;
    }

    fn begin_scoped_list(&mut self, scope: Arc<RelistScope>) -> bool {
        self.scope = Some(scope);
        true
    }
}

impl Informer {
    /// Starts an informer over `source` on the current Tokio runtime.
    ///
    /// # Errors
    /// [`InformerError::Spawn`] when the shard threads cannot be started.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn<S: Source>(source: S, config: InformerConfig) -> Result<Informer, InformerError> {
        let (store, writer) = store(config.store.clone());
        let mut arena = match config.arena_segment_bytes {
            Some(bytes) => Arena::with_segment_bytes(bytes),
            None => Arena::new(),
        };
        if let Compression::Zstd(zstd) = config.compression {
            arena = arena.with_codec(Codec::new(zstd));
        }
        let codec = arena.codec().cloned();
        let fifo = Fifo::spawn_compacting(writer, &arena, config.compaction)?;
        let handlers = fifo.handlers();
        let fifo = Arc::new(Mutex::new(fifo));
        let arena_stats = arena.clone();
        let watcher = Watcher::new(source, Decoder::with_arena(config.decoder.clone(), arena), config.watcher.clone());
        let stats = watcher.stats();
        let (shutdown, rx) = watch::channel(false);
        let sync_duration = Arc::new(std::sync::OnceLock::new());
        let mut sink = FifoSink {
            fifo: Arc::clone(&fifo),
            started: std::time::Instant::now(),
            sync_duration: Arc::clone(&sync_duration),
            listing: None,
            scope: None,
            arena: codec.as_ref().map(|_| arena_stats.clone()),
            codec,
            first_list_as_it_arrives: config.watcher.max_objects.is_none(),
            incremental: false,
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

    /// What compression did and the dictionaries' memory; `None` when the informer
    /// does not compress ([`InformerConfig::compression`]).
    pub fn compression_stats(&self) -> Option<CompressionStats> {
        self.inner.arena.lock().unwrap_or_else(|p| p.into_inner()).compression_stats()
    }

    /// Memory held by the informer's arena: live object bytes and segment bytes.
    pub fn arena_stats(&self) -> crate::arena::ArenaStats {
        self.inner.arena.lock().unwrap_or_else(|p| p.into_inner()).stats()
    }

    /// Registers a handler; it first gets every cached object, then live events.
    ///
    /// # Errors
    /// [`InformerError::ShutDown`] after shutdown.
    pub fn add_handler(&self, handler: Arc<dyn Handler>) -> Result<HandlerId, InformerError> {
        Ok(self.inner.handlers.add(handler)?)
    }

    /// Unregisters a handler; it gets no event after this returns.
    ///
    /// # Errors
    /// [`InformerError::UnknownHandler`] for an id that is not registered.
    pub fn remove_handler(&self, id: HandlerId) -> Result<(), InformerError> {
        Ok(self.inner.handlers.remove(id)?)
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

    /// The HTTP status of the informer's last LIST when it failed with an API error:
    /// `Some(404)` when the server does not serve the resource (a custom resource whose
    /// definition is not installed), `Some(403)` when the credentials may not list it.
    /// `None` before the first LIST and once one succeeds. The informer keeps retrying
    /// with backoff whatever the status.
    pub fn failed_list_status(&self) -> Option<u16> {
        let status = self.inner.stats.failed_list_status.load(std::sync::atomic::Ordering::Relaxed);
        u16::try_from(status).ok().filter(|&s| s != 0)
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

    /// Whether [`Informer::shutdown`] was called (on any clone).
    pub fn is_shut_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Stops the watch and the fifo threads. Cached objects stay readable.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }
}

