//! One WATCH stream: its request parameters, then initial events, history
//! backlog, live events, bookmarks and injected faults, written as
//! newline-delimited JSON chunks.
//!
//! # Guarantees
//! * Events reach a watcher in resourceVersion order, each at most once.
//! * Selectors apply like the real watch cache (cacher.go `convertToWatchEvent`):
//!   an object that starts matching is sent as ADDED, one that stops matching as
//!   DELETED carrying its previous state stamped with the event's resourceVersion.
//! * A shard selector (KEP-5866, gate on) filters initial events, history and
//!   live events alike (cacher.go `filterWithAttrsAndPrefixFunction`); the
//!   fields it hashes never change, so an object never crosses it. Bookmarks
//!   are not filtered.
//! * Writers never wait for a watcher. Live events reach watchers through a
//!   bounded broadcast buffer; a watcher that falls more than that buffer behind
//!   is closed cleanly (counted in `watches_closed_lagging`), as the real
//!   apiserver closes unresponsive watchers; the client re-watches from its last
//!   resourceVersion.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, header};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::resource::ResourceDef;
use super::selector::{FieldSelector, LabelSelector, ShardSelector};
use super::server::{Query, Shared, SimBody, Target};
use super::status::ApiError;
use super::store::{Event, EventType, ResourceId, Stored, WatchSeed, WatchStart, frame};

/// Initial events are sent in chunks of about this size.
const INITIAL_CHUNK: usize = 256 * 1024;

/// What one watch serves.
pub(crate) struct WatchSpec {
    pub res: ResourceId,
    pub def: Arc<ResourceDef>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub shards: Option<ShardSelector>,
    pub bookmarks: bool,
    /// Send the `k8s.io/initial-events-end` bookmark after the initial events.
    pub initial_events_end: bool,
    pub timeout: Option<Duration>,
    pub metadata_only: bool,
}

impl WatchSpec {
    fn selective(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty() || self.shards.is_some()
    }

    fn passes(&self, o: &Stored) -> bool {
        o.matches(&self.labels, &self.fields) && self.shards.as_ref().is_none_or(|s| o.in_shard(s))
    }

    fn in_scope(&self, o: &Stored) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == o.namespace)
    }

    fn body_of(&self, o: &Stored) -> Bytes {
        if self.metadata_only {
            let mut out = Vec::with_capacity(o.metadata_json().len() + 80);
            o.write_partial(&mut out);
            Bytes::from(out)
        } else {
            o.body.clone()
        }
    }

    fn frame_of(&self, ty: EventType, o: &Stored) -> Bytes {
        frame(ty.as_str(), &self.body_of(o))
    }

    /// The frame (if any) this watcher sends for a committed event.
    fn convert(&self, ev: &Event) -> Option<Bytes> {
        if ev.resource != self.res || !self.in_scope(&ev.obj) {
            return None;
        }
        if !self.selective() {
            return Some(if self.metadata_only {
                self.frame_of(ev.ty, &ev.obj)
            } else {
                ev.frame.clone()
            });
        }
        let cur = ev.ty != EventType::Deleted && self.passes(&ev.obj);
        let old = match ev.ty {
            EventType::Deleted => ev
                .prev
                .as_deref()
                .map_or_else(|| self.passes(&ev.obj), |p| self.passes(p)),
            _ => ev.prev.as_deref().is_some_and(|p| self.passes(p)),
        };
        match (cur, old) {
            (true, true) => Some(self.frame_of(EventType::Modified, &ev.obj)),
            (true, false) => Some(self.frame_of(EventType::Added, &ev.obj)),
            (false, true) if ev.ty == EventType::Deleted => {
                Some(self.frame_of(EventType::Deleted, &ev.obj))
            }
            (false, true) => {
                // The previous state, stamped with this event's resourceVersion.
                let prev = ev.prev.as_deref()?;
                let mut v = prev.to_value();
                if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("resourceVersion".into(), Value::String(ev.rv.to_string()));
                }
                let mut body = serde_json::to_vec(&v).ok()?;
                if self.metadata_only {
                    let meta = v.get("metadata").cloned().unwrap_or(Value::Null);
                    body = serde_json::to_vec(&serde_json::json!({
                        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta
                    }))
                    .ok()?;
                }
                Some(frame("DELETED", &body))
            }
            (false, false) => None,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(br#"{"type":"BOOKMARK","object":{"kind":""#);
        if self.metadata_only {
            out.extend_from_slice(br#"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1"#);
        } else {
            out.extend_from_slice(self.def.kind.as_bytes());
            out.extend_from_slice(br#"","apiVersion":""#);
            out.extend_from_slice(self.def.api_version().as_bytes());
        }
        out.extend_from_slice(br#"","metadata":{"resourceVersion":""#);
        out.extend_from_slice(rv.to_string().as_bytes());
        out.push(b'"');
        if initial_end {
            out.extend_from_slice(br#","annotations":{"k8s.io/initial-events-end":"true"}"#);
        }
        out.push(b'}');
        if !self.metadata_only {
            out.extend_from_slice(self.def.bookmark_tail.as_bytes());
        }
        out.extend_from_slice(b"}}\n");
        Bytes::from(out)
    }
}

/// Answers a WATCH request: validates its parameters, seeds the stream from the
/// store and spawns [`run`]; a watch that cannot start (410, forced expiry) is
/// answered the real server's way, 200 with one ERROR event.
pub(crate) fn start(
    shared: &Arc<Shared>,
    target: &Target,
    query: &Query,
    metadata_only: bool,
    cancel: CancellationToken,
) -> Result<Response<SimBody>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?;
    let bookmarks = query.flag("allowWatchBookmarks").unwrap_or(false);
    let send_initial = query.flag("sendInitialEvents");
    let rv = query.get("resourceVersion").unwrap_or("");
    let rv_match = query.get("resourceVersionMatch").unwrap_or("");
    let timeout = match query.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}"))
        })?)),
        None => None,
    };
    if send_initial == Some(true) && rv_match != "NotOlderThan" {
        return Err(ApiError::invalid_list_options(
            "resourceVersionMatch",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::invalid_list_options(
            "allowWatchBookmarks",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents requires allowWatchBookmarks=true",
        ));
    }
    // The registry parses the shard selector after the handler validated the options.
    let shards = ShardSelector::from_param(shared.sharded_list_and_watch.load(Relaxed), query.get("shardSelector"))?;
    // Kubernetes API concepts, "Semantics for watch": unset and "0" start with
    // synthetic ADDED events for the current state unless sendInitialEvents=false;
    // an explicit RV replays every later event (410 when compacted).
    let start = match (rv, send_initial) {
        (_, Some(true)) => WatchStart::InitialState,
        ("" | "0", Some(false)) => WatchStart::Now,
        ("" | "0", None) => WatchStart::InitialState,
        (rv, _) => WatchStart::From(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let namespace = (!target.namespace.is_empty()).then(|| target.namespace.clone());
    let (tx, rx) = mpsc::channel(64);
    let started = if shared.faults.expire_every_watch.load(Relaxed) {
        let requested = match start {
            WatchStart::From(rv) => rv,
            WatchStart::Now | WatchStart::InitialState => shared.store.resource_version(),
        };
        Err(ApiError::too_old_resource_version(
            requested,
            shared.store.resource_version() + 1,
        ))
    } else if ((rv == "0" && send_initial != Some(true)) || (rv.is_empty() && send_initial.is_none()))
        && shared.store.watch_cache_lags()
    {
        // cacher.go `getWatchCacheResourceVersion`: a watch from "0", or unset
        // without sendInitialEvents (the legacy case), starts from the watch
        // cache, however far it lags; unset with sendInitialEvents starts from
        // etcd's current revision.
        Ok(shared.store.seed_watch_from_cache(
            target.res,
            namespace.as_deref(),
            start == WatchStart::InitialState,
        ))
    } else {
        shared
            .store
            .seed_watch(target.res, namespace.as_deref(), start)
    };
    match started {
        Ok(seed) => {
            let spec = WatchSpec {
                res: target.res,
                def: target.def.clone(),
                namespace,
                labels,
                fields,
                shards,
                bookmarks,
                initial_events_end: send_initial == Some(true),
                timeout,
                metadata_only,
            };
            let mut malformed = shared.faults.malformed.subscribe();
            malformed.mark_unchanged();
            tokio::spawn(run(
                shared.clone(),
                spec,
                seed,
                malformed,
                tx,
                cancel,
            ));
        }
        Err(e) => {
            // The real server answers 200 and sends one ERROR event, then closes.
            let mut f = Vec::from(&br#"{"type":"ERROR","object":"#[..]);
            f.extend_from_slice(&e.to_json());
            f.extend_from_slice(b"}\n");
            shared.counters.events_sent.fetch_add(1, Relaxed);
            let _ = tx.try_send(Bytes::from(f));
        }
    }
    let mut r = Response::new(SimBody::Stream(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// A malformed frame: the start of an event, cut off, then a newline.
const MALFORMED: &[u8] = b"{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\n";

/// Why a watch stopped sending.
enum Stop {
    /// The client went away or the connection was dropped.
    Gone,
    /// Close the stream cleanly.
    Clean,
}

struct Sink<'a> {
    tx: mpsc::Sender<Bytes>,
    shared: &'a Shared,
    sent: u64,
    cancel: CancellationToken,
}

impl Sink<'_> {
    async fn send(&self, b: Bytes) -> Result<(), Stop> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Stop::Gone),
            r = self.tx.send(b) => r.map_err(|_| Stop::Gone),
        }
    }

    /// Sends `n` events in one chunk and applies `close_watches_every`.
    async fn events(&mut self, b: Bytes, n: u64) -> Result<(), Stop> {
        if n == 0 {
            return Ok(());
        }
        self.send(b).await?;
        self.sent += n;
        self.shared.counters.events_sent.fetch_add(n, Relaxed);
        let every = self.shared.faults.close_every.load(Relaxed);
        if every > 0 && self.sent >= every {
            self.shared
                .counters
                .watches_closed_by_fault
                .fetch_add(1, Relaxed);
            return Err(Stop::Clean);
        }
        Ok(())
    }

    async fn bookmark(&self, b: Bytes) -> Result<(), Stop> {
        self.send(b).await?;
        self.shared.counters.bookmarks_sent.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// Runs one watch until the client leaves, the timeout passes, a fault closes it,
/// or it lags behind. Dropping `tx` ends the HTTP body cleanly.
///
/// `malformed` must be subscribed when the watch is accepted, so a fault injected
/// right after the response headers still reaches it.
pub(crate) async fn run(
    shared: Arc<Shared>,
    spec: WatchSpec,
    seed: WatchSeed,
    malformed: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Bytes>,
    cancel: CancellationToken,
) {
    shared.counters.watches_active.fetch_add(1, Relaxed);
    let _ = serve(&shared, &spec, seed, malformed, tx, cancel).await;
    shared.counters.watches_active.fetch_sub(1, Relaxed);
}

async fn serve(
    shared: &Shared,
    spec: &WatchSpec,
    seed: WatchSeed,
    mut malformed: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Bytes>,
    cancel: CancellationToken,
) -> Result<(), Stop> {
    let WatchSeed {
        initial,
        backlog,
        mut rx,
        rv: seed_rv,
    } = seed;
    let mut sink = Sink {
        tx,
        shared,
        sent: 0,
        cancel,
    };
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);

    // Initial state, batched into large chunks.
    let mut chunk = Vec::with_capacity(INITIAL_CHUNK + 8192);
    let mut in_chunk = 0u64;
    for o in initial.iter().filter(|o| spec.passes(o)) {
        chunk.extend_from_slice(br#"{"type":"ADDED","object":"#);
        if spec.metadata_only {
            o.write_partial(&mut chunk)
        } else {
            chunk.extend_from_slice(&o.body)
        }
        chunk.extend_from_slice(b"}\n");
        in_chunk += 1;
        let every = shared.faults.close_every.load(Relaxed);
        if chunk.len() >= INITIAL_CHUNK || (every > 0 && sink.sent + in_chunk >= every) {
            sink.events(Bytes::from(std::mem::take(&mut chunk)), in_chunk)
                .await?;
            in_chunk = 0;
        }
    }
    sink.events(Bytes::from(chunk), in_chunk).await?;
    if spec.initial_events_end {
        sink.bookmark(spec.bookmark(seed_rv, true)).await?;
    }
    let mut last_rv = seed_rv;
    for ev in &backlog {
        if let Some(f) = spec.convert(ev) {
            sink.events(f, 1).await?;
        }
    }

    let interval = shared.config.bookmark_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sleep_until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until);
    loop {
        tokio::select! {
            biased;
            () = sink.cancel.cancelled() => return Err(Stop::Gone),
            () = sink.tx.closed() => return Err(Stop::Gone),
            () = &mut sleep_until => return Ok(()),
            r = malformed.changed() => {
                if r.is_ok() {
                    sink.send(Bytes::from_static(MALFORMED)).await?;
                }
            }
            _ = ticker.tick(), if spec.bookmarks => {
                sink.bookmark(spec.bookmark(last_rv, false)).await?;
            }
            r = rx.recv() => match r {
                Ok(ev) => {
                    if ev.rv <= last_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if let Some(f) = spec.convert(&ev) {
                        sink.events(f, 1).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    shared.counters.watches_closed_lagging.fetch_add(1, Relaxed);
                    return Err(Stop::Clean);
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Stop::Clean),
            },
        }
    }
}
