//! The watcher: LIST then WATCH one collection, recovering from every failure,
//! and turn the bytes into a stream of [`Event`]s.
//!
//! # Protocol
//! * **Paginated list** (default): `LIST ?limit=500&resourceVersion=0`, following
//!   `continue` tokens, emitted as [`Event::Init`], [`Event::InitApply`] per object
//!   and [`Event::InitDone`] with the list's resourceVersion. A `continue` token
//!   that expired (410) restarts the list from the latest state
//!   (`resourceVersion=""`), as client-go's pager does.
//! * **Streaming list** ([`WatcherConfig::streaming_list`]): one
//!   `WATCH ?sendInitialEvents=true&resourceVersionMatch=NotOlderThan`; the
//!   initial ADDED events are `InitApply`, and the BOOKMARK annotated
//!   `k8s.io/initial-events-end` is `InitDone`. The same stream then carries live
//!   events. A server that refuses it gets a paginated list instead.
//! * **Watch** from the last seen resourceVersion with `allowWatchBookmarks=true`
//!   and a timeout drawn at random from `[min_watch_timeout, 2 * min_watch_timeout)`
//!   (client-go's reflector does the same so watches do not all expire together).
//!
//! # Recovery
//! * Watch closed by the server or timed out: rewatch from the last seen
//!   resourceVersion at once (bookmarks keep it fresh).
//! * 410 Expired (as an HTTP status or an ERROR event): relist.
//! * A malformed frame, an unknown event type, or any other ERROR event: the
//!   event is counted and reported, the watch is dropped and reopened from the
//!   last resourceVersion that decoded cleanly — nothing already delivered is
//!   lost or repeated out of order.
//! * Transport and server errors: capped exponential backoff with jitter
//!   ([`Backoff`]) before the next request, so a flapping API server is not hammered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ListParams, WatchParams};
use rand::Rng;
use tokio::sync::watch;

use super::backoff::Backoff;
use super::source::{Source, SourceError};
use crate::Obj;
use crate::wire::{DecodeError, Decoder, FrameError, Framer, WatchEvent};

/// What the watcher saw, in kube-rs's vocabulary.
#[derive(Clone, Debug)]
pub enum Event {
    /// A (re)list started; the objects that follow replace the whole collection.
    Init,
    /// One object of the list in progress.
    InitApply(Obj),
    /// The list is complete, as of `resource_version`: objects not seen since
    /// [`Event::Init`] are gone.
    InitDone {
        /// The list's resourceVersion.
        resource_version: String,
    },
    /// An object was added or modified.
    Apply(Obj),
    /// An object was deleted; this is its last state.
    Delete(Obj),
    /// The server confirmed the collection is current as of this resourceVersion.
    Bookmark(String),
}

/// Receives a watcher's events, in order, on the watcher's task.
pub trait EventSink: Send {
    /// Called once per event. Must not block for long: it delays the watch.
    fn event(&mut self, event: Event);

    /// Called on the watcher's task between events, at most once per
    /// [`WatcherConfig::maintenance_interval`], with the decoder whose arena
    /// holds the objects' bytes: a sink that owns a store moves live objects
    /// out of sparse arena segments here (see [`crate::arena`]).
    fn maintain(&mut self, decoder: &mut Decoder) {
        let _ = decoder;
    }
}

impl<F: FnMut(Event) + Send> EventSink for F {
    fn event(&mut self, event: Event) {
        self(event)
    }
}

/// Why one watch or list attempt failed (the watcher recovers from all of them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatcherError {
    /// The LIST request failed.
    #[error("list failed")]
    List(#[source] SourceError),
    /// The WATCH request failed.
    #[error("watch failed")]
    Watch(#[source] SourceError),
    /// The watch stream broke mid-body.
    #[error("watch stream broke")]
    Stream(#[source] SourceError),
    /// A frame or a list body could not be decoded.
    #[error("could not decode a response")]
    Decode(#[source] DecodeError),
    /// A watch frame was over the size limit.
    #[error("watch frame rejected")]
    Frame(#[source] FrameError),
    /// The server sent an ERROR event.
    #[error("watch error event {code} {reason}: {message}")]
    ErrorEvent {
        /// HTTP-style status code from the Status object.
        code: u16,
        /// Status reason.
        reason: String,
        /// Status message.
        message: String,
    },
}

/// Settings of a [`Watcher`].
#[derive(Clone)]
pub struct WatcherConfig {
    /// `labelSelector` for list and watch.
    pub label_selector: Option<String>,
    /// `fieldSelector` for list and watch.
    pub field_selector: Option<String>,
    /// LIST page size (`limit`); `None` lists in one request. Default 500, as client-go.
    pub page_size: Option<u32>,
    /// resourceVersion of the initial LIST: `"0"` (default) lets the server answer
    /// from its watch cache; `""` asks for a quorum read.
    pub list_resource_version: String,
    /// Use a streaming list (`sendInitialEvents=true`) instead of LIST.
    pub streaming_list: bool,
    /// Watch timeouts are drawn from `[min_watch_timeout, 2 * min_watch_timeout)`. Default 5 min.
    pub min_watch_timeout: Duration,
    /// Backoff between failed requests.
    pub backoff: Backoff,
    /// Called with every recovered error (they are also logged and counted).
    pub on_error: Option<Arc<dyn Fn(&WatcherError) + Send + Sync>>,
    /// Largest watch frame accepted, in bytes. Default 16 MiB.
    pub max_frame_bytes: usize,
    /// Least time between two [`EventSink::maintain`] calls (incremental arena
    /// compaction). Default 50 ms: each call does a bounded amount of work, so
    /// frequent calls keep both the stall per call and the arena's dead bytes small.
    pub maintenance_interval: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            label_selector: None,
            field_selector: None,
            page_size: Some(500),
            list_resource_version: "0".to_owned(),
            streaming_list: false,
            min_watch_timeout: Duration::from_secs(300),
            backoff: Backoff::default(),
            on_error: None,
            max_frame_bytes: 16 << 20,
            maintenance_interval: Duration::from_millis(50),
        }
    }
}

impl std::fmt::Debug for WatcherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatcherConfig")
            .field("label_selector", &self.label_selector)
            .field("field_selector", &self.field_selector)
            .field("page_size", &self.page_size)
            .field("streaming_list", &self.streaming_list)
            .field("min_watch_timeout", &self.min_watch_timeout)
            .finish_non_exhaustive()
    }
}

/// Counters of one watcher; cheap to read from any thread.
#[derive(Debug, Default)]
pub struct WatcherStats {
    /// LISTs (or streaming lists) completed.
    pub lists: AtomicU64,
    /// Lists started because a resourceVersion expired (410).
    pub relists: AtomicU64,
    /// WATCH requests opened.
    pub watches: AtomicU64,
    /// Watches reopened after a close, timeout or error.
    pub watch_restarts: AtomicU64,
    /// Object events decoded (list items included).
    pub events: AtomicU64,
    /// Response bytes received.
    pub bytes: AtomicU64,
    /// Frames or bodies that failed to decode.
    pub decode_errors: AtomicU64,
    /// Errors of any kind recovered from.
    pub errors: AtomicU64,
}

impl WatcherStats {
    fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Lists and watches one collection from a [`Source`] through a [`Decoder`].
pub struct Watcher<S> {
    source: S,
    decoder: Decoder,
    config: WatcherConfig,
    stats: Arc<WatcherStats>,
    last_maintenance: std::time::Instant,
}

enum Next {
    /// List (again) from scratch.
    Relist,
    /// Watch from this resourceVersion.
    Rewatch(String),
    /// Shutdown was requested.
    Stop,
}

impl<S: Source> Watcher<S> {
    /// A watcher over `source`, decoding with `decoder`.
    pub fn new(source: S, decoder: Decoder, config: WatcherConfig) -> Self {
        Watcher { source, decoder, config, stats: Arc::new(WatcherStats::default()), last_maintenance: std::time::Instant::now() }
    }

    /// The watcher's counters.
    pub fn stats(&self) -> Arc<WatcherStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` turns true (or its sender is dropped), delivering events to `sink`.
    pub async fn run(mut self, sink: &mut impl EventSink, mut shutdown: watch::Receiver<bool>) {
        let mut next = Next::Relist;
        let mut first = true;
        loop {
            if *shutdown.borrow() {
                return;
            }
            next = match next {
                Next::Stop => return,
                Next::Relist => {
                    if !first {
                        WatcherStats::inc(&self.stats.relists);
                    }
                    first = false;
                    let attempt = if self.config.streaming_list {
                        self.streaming_list(sink, &mut shutdown).await
                    } else {
                        self.paginated_list(sink).await
                    };
                    match attempt {
                        Ok(next) => {
                            self.config.backoff.reset();
                            next
                        }
                        Err(e) => {
                            let fell_back = self.config.streaming_list && matches!(&e, WatcherError::Watch(SourceError::Api { code, .. }) if *code != 410 && *code < 500);
                            self.report(&e);
                            if fell_back {
                                tracing::warn!("streaming list refused by the server; falling back to paginated LIST");
                                self.config.streaming_list = false;
                            }
                            if self.sleep_backoff(&mut shutdown).await { Next::Relist } else { Next::Stop }
                        }
                    }
                }
                Next::Rewatch(rv) => {
                    WatcherStats::inc(&self.stats.watch_restarts);
                    let params = self.watch_params(false);
                    match self.source.watch(&params, &rv).await {
                        Ok(body) => {
                            WatcherStats::inc(&self.stats.watches);
                            self.consume(body, rv, None, sink, &mut shutdown).await
                        }
                        Err(e) if e.is_expired() => {
                            self.report(&WatcherError::Watch(e));
                            Next::Relist
                        }
                        Err(e) => {
                            self.report(&WatcherError::Watch(e));
                            if self.sleep_backoff(&mut shutdown).await { Next::Rewatch(rv) } else { Next::Stop }
                        }
                    }
                }
            };
        }
    }

    fn maybe_maintain(&mut self, sink: &mut impl EventSink) {
        if self.last_maintenance.elapsed() >= self.config.maintenance_interval {
            self.last_maintenance = std::time::Instant::now();
            sink.maintain(&mut self.decoder);
        }
    }

    fn report(&self, e: &WatcherError) {
        WatcherStats::inc(&self.stats.errors);
        if matches!(e, WatcherError::Decode(_) | WatcherError::Frame(_)) {
            WatcherStats::inc(&self.stats.decode_errors);
        }
        tracing::warn!(error = %e, source = ?std::error::Error::source(e).map(ToString::to_string), "watcher recovering");
        if let Some(cb) = &self.config.on_error {
            cb(e);
        }
    }

    /// Sleeps for the next backoff delay; false when shutdown came first.
    async fn sleep_backoff(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let delay = self.config.backoff.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = shutdown.changed() => !*shutdown.borrow(),
        }
    }

    fn watch_params(&self, initial_events: bool) -> WatchParams {
        let min = self.config.min_watch_timeout.as_secs().max(1);
        let timeout = rand::rng().random_range(min..2 * min);
        let mut wp = WatchParams::default().timeout(u32::try_from(timeout).unwrap_or(u32::MAX));
        wp.label_selector.clone_from(&self.config.label_selector);
        wp.field_selector.clone_from(&self.config.field_selector);
        if initial_events {
            wp = wp.initial_events();
        }
        wp
    }

    async fn paginated_list(&mut self, sink: &mut impl EventSink) -> Result<Next, WatcherError> {
        let mut lp = ListParams::default();
        lp.label_selector.clone_from(&self.config.label_selector);
        lp.field_selector.clone_from(&self.config.field_selector);
        lp.limit = self.config.page_size;
        lp.resource_version = Some(self.config.list_resource_version.clone());
        let mut started = false;
        loop {
            let body = match self.source.list(&lp).await {
                Ok(body) => body,
                Err(e) if e.is_expired() && lp.continue_token.is_some() => {
                    // The continue token outlived the server's compaction window:
                    // restart the list from the latest state, as client-go does.
                    self.report(&WatcherError::List(e));
                    lp.continue_token = None;
                    lp.resource_version = Some(String::new());
                    sink.event(Event::Init);
                    continue;
                }
                Err(e) => return Err(WatcherError::List(e)),
            };
            self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            let list = self.decoder.decode_list(&body).map_err(WatcherError::Decode)?;
            if !started {
                sink.event(Event::Init);
                started = true;
            }
            self.stats.events.fetch_add(list.items.len() as u64, Ordering::Relaxed);
            for obj in list.items {
                sink.event(Event::InitApply(obj));
            }
            self.maybe_maintain(sink);
            match list.continue_token {
                Some(token) if !token.is_empty() => {
                    lp.continue_token = Some(token);
                }
                _ => {
                    WatcherStats::inc(&self.stats.lists);
                    sink.event(Event::InitDone { resource_version: list.resource_version.clone() });
                    return Ok(Next::Rewatch(list.resource_version));
                }
            }
        }
    }

    async fn streaming_list(
        &mut self,
        sink: &mut impl EventSink,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Next, WatcherError> {
        let params = self.watch_params(true);
        let body = self.source.watch(&params, "").await.map_err(WatcherError::Watch)?;
        WatcherStats::inc(&self.stats.watches);
        sink.event(Event::Init);
        Ok(self.consume(body, String::new(), Some(()), sink, shutdown).await)
    }

    /// Reads one watch body to its end. `initial` is `Some` while a streaming
    /// list's initial events are still arriving.
    async fn consume(
        &mut self,
        mut body: super::source::BodyStream,
        mut rv: String,
        mut initial: Option<()>,
        sink: &mut impl EventSink,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Next {
        let mut framer = Framer::watch_with_limit(self.config.max_frame_bytes);
        loop {
            let chunk = tokio::select! {
                chunk = body.next() => chunk,
                _ = shutdown.changed() => if *shutdown.borrow() { return Next::Stop } else { continue },
            };
            let chunk = match chunk {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    self.report(&WatcherError::Stream(e));
                    break;
                }
            };
            self.stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            framer.push(chunk);
            loop {
                let frame = match framer.next_document() {
                    None => break,
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        self.report(&WatcherError::Frame(e));
                        return self.after_broken_watch(rv, initial.is_some());
                    }
                };
                self.maybe_maintain(sink);
                let event = match self.decoder.decode_event(&frame) {
                    Ok(event) => event,
                    Err(e) => {
                        self.report(&WatcherError::Decode(e));
                        return self.after_broken_watch(rv, initial.is_some());
                    }
                };
                match event {
                    WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                        WatcherStats::inc(&self.stats.events);
                        rv.clear();
                        rv.push_str(obj.resource_version());
                        sink.event(if initial.is_some() { Event::InitApply(obj) } else { Event::Apply(obj) });
                    }
                    WatchEvent::Deleted(obj) => {
                        WatcherStats::inc(&self.stats.events);
                        rv.clear();
                        rv.push_str(obj.resource_version());
                        sink.event(Event::Delete(obj));
                    }
                    WatchEvent::Bookmark { resource_version, initial_events_end } => {
                        rv.clone_from(&resource_version);
                        if initial.is_some() && initial_events_end {
                            initial = None;
                            WatcherStats::inc(&self.stats.lists);
                            self.config.backoff.reset();
                            sink.event(Event::InitDone { resource_version });
                        } else if initial.is_none() {
                            sink.event(Event::Bookmark(resource_version));
                        }
                    }
                    WatchEvent::Error(status) => {
                        self.maybe_maintain(sink);
                        let code = status.code;
                        self.report(&WatcherError::ErrorEvent {
                            code,
                            reason: status.reason.clone(),
                            message: status.message.clone(),
                        });
                        if code == 410 {
                            return Next::Relist;
                        }
                        return self.after_broken_watch(rv, initial.is_some());
                    }
                }
            }
        }
        self.after_broken_watch(rv, initial.is_some())
    }

    fn after_broken_watch(&self, rv: String, in_initial_list: bool) -> Next {
        // A streaming list that broke before its end bookmark never completed:
        // only a fresh list can say which objects exist.
        if in_initial_list || rv.is_empty() { Next::Relist } else { Next::Rewatch(rv) }
    }
}
