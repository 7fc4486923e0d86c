//! An in-memory [`Source`]: a tiny API server for one resource collection,
//! speaking the same wire format, for tests and examples.
//!
//! It keeps objects as JSON, a bounded history of watch events, and a global
//! resourceVersion counter, and can inject the failures a reflector must survive:
//! expired resourceVersions (410, as an ERROR event or as the HTTP status),
//! expired continue tokens, dropped watches, malformed frames, a lagging watch
//! cache, and servers that refuse or ignore `sendInitialEvents`.
//!
//! # List semantics
//! As the API server's ("Semantics for get and list" in the API concepts;
//! KEP-2523 for `resourceVersionMatch`):
//! * `resourceVersion` unset or `""`: the latest state (a consistent read).
//! * `resourceVersion="0"` (match unset or `NotOlderThan`): any state — the
//!   watch cache's, which lags the latest by the writes set with
//!   [`MemorySource::watch_cache_lag`] (none by default).
//! * `resourceVersion=N` with `resourceVersionMatch=NotOlderThan`, or with the
//!   match unset and no `limit`: a state at least as new as `N` — the watch
//!   cache's when it has caught up to `N`, else the latest (the real cache
//!   waits until it catches up); `N` newer than the latest resourceVersion is
//!   answered `504 Timeout` "Too large resource version".
//! * `resourceVersion=N` with `resourceVersionMatch=Exact`, or with the match
//!   unset and a `limit`: exactly `N`; this source keeps no old states, so
//!   anything but the latest resourceVersion is `410 Expired`.
//! * A `continue` token with a `resourceVersion` other than `""`/`"0"` or with
//!   a `resourceVersionMatch` is `400 BadRequest`, as the server's validation
//!   says ("specifying resource version is not allowed when using continue").
//!
//! # Watch semantics
//! As the API server's ("Semantics for watch" in the API concepts): a watch
//! from resourceVersion `""` or `"0"` starts with a synthetic ADDED event per
//! object held, then live events; a watch from an explicit resourceVersion
//! replays the history after it, or gets one ERROR event with a 410 Expired
//! Status when that history is gone.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::StreamExt;
use kube::api::{ListParams, VersionMatch, WatchParams};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::reflector::{BodyStream, Source, SourceError};

/// A shared in-memory collection of objects of one kind. Clones share state.
///
/// ```
/// use kcache::testing::MemorySource;
/// let src = MemorySource::new("Pod");
/// let rv = src.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "a"}}));
/// assert_eq!(rv, 1);
/// assert_eq!(src.len(), 1);
/// ```
#[derive(Clone)]
pub struct MemorySource {
    state: Arc<Mutex<State>>,
    live: broadcast::Sender<Live>,
    lists: Arc<AtomicU64>,
    watches: Arc<AtomicU64>,
    list_log: Arc<Mutex<Vec<ListParams>>>,
}

/// How a watch with `sendInitialEvents=true` is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum InitialEvents {
    /// Streams the initial events and ends them with the
    /// `k8s.io/initial-events-end` bookmark (a server with WatchList).
    #[default]
    Supported,
    /// Answers the WATCH request with `422 Invalid` (the feature is off).
    Refused,
    /// Treats it as a plain watch from `""`: synthetic ADDED events, then live
    /// events, and never the end bookmark (a server older than WatchList).
    Ignored,
}

#[derive(Clone, Debug)]
enum Live {
    Event(u64, Bytes),
    /// Sent to every watch as is (malformed frames).
    Raw(Bytes),
    /// Sent to every watch that asked for bookmarks.
    Bookmark(Bytes),
    Disconnect,
}

struct State {
    kind: String,
    rv: u64,
    objects: BTreeMap<String, Value>,
    history: VecDeque<(u64, Bytes)>,
    history_cap: usize,
    /// Watches from a resourceVersion below this get 410 Expired.
    oldest_valid_rv: u64,
    next_list_error: Option<u16>,
    expire_next_watch: bool,
    /// Every non-streaming watch gets 410 Expired while set.
    expire_every_watch: bool,
    /// The next watch request is answered with an HTTP 410 status.
    expire_next_watch_status: bool,
    /// The next LIST with a continue token gets 410 Expired.
    expire_next_continue: bool,
    refuse_watches: bool,
    initial_events: InitialEvents,
    /// The watch cache: the state as of all writes but the last `cache_lag`.
    cache: WatchCache,
}

/// A watch cache that trails the live state by a fixed number of writes.
#[derive(Default)]
struct WatchCache {
    lag: usize,
    rv: u64,
    objects: BTreeMap<String, Value>,
    /// Writes the cache has not applied yet: `(rv, key, new state or None if deleted)`.
    behind: VecDeque<(u64, String, Option<Value>)>,
}

impl WatchCache {
    fn write(&mut self, rv: u64, key: String, obj: Option<Value>) {
        self.behind.push_back((rv, key, obj));
        while self.behind.len() > self.lag {
            let Some((rv, key, obj)) = self.behind.pop_front() else { break };
            self.rv = rv;
            match obj {
                Some(obj) => self.objects.insert(key, obj),
                None => self.objects.remove(&key),
            };
        }
    }
}

impl MemorySource {
    /// An empty collection of `kind` objects with a 10,000-event history.
    pub fn new(kind: &str) -> Self {
        let (live, _) = broadcast::channel(65_536);
        MemorySource {
            state: Arc::new(Mutex::new(State {
                kind: kind.to_owned(),
                rv: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_cap: 10_000,
                oldest_valid_rv: 0,
                next_list_error: None,
                expire_next_watch: false,
                expire_every_watch: false,
                expire_next_watch_status: false,
                expire_next_continue: false,
                refuse_watches: false,
                initial_events: InitialEvents::Supported,
                cache: WatchCache::default(),
            })),
            live,
            lists: Arc::new(AtomicU64::new(0)),
            watches: Arc::new(AtomicU64::new(0)),
            list_log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates or replaces an object (keyed by metadata namespace/name), stamping a
    /// new resourceVersion; returns it.
    pub fn apply(&self, mut obj: Value) -> u64 {
        let mut st = self.lock();
        st.rv += 1;
        let rv = st.rv;
        let kind = st.kind.clone();
        if let Some(o) = obj.as_object_mut() {
            o.insert("kind".into(), Value::String(kind));
            o.entry("apiVersion").or_insert_with(|| Value::String("v1".into()));
        }
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let key = key_of(&obj);
        let kind = if st.objects.insert(key.clone(), obj.clone()).is_some() { "MODIFIED" } else { "ADDED" };
        st.cache.write(rv, key, Some(obj.clone()));
        self.record(&mut st, kind, &obj);
        rv
    }

    /// Deletes an object by key (`namespace/name`); returns the delete's resourceVersion.
    pub fn delete(&self, key: &str) -> Option<u64> {
        let mut st = self.lock();
        let mut obj = st.objects.remove(key)?;
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        st.cache.write(rv, key.to_owned(), None);
        self.record(&mut st, "DELETED", &obj);
        Some(rv)
    }

    fn record(&self, st: &mut State, kind: &str, obj: &Value) {
        let line = event_line(kind, obj);
        let rv = st.rv;
        st.history.push_back((rv, line.clone()));
        while st.history.len() > st.history_cap {
            if let Some((old, _)) = st.history.pop_front() {
                st.oldest_valid_rv = st.oldest_valid_rv.max(old);
            }
        }
        let _ = self.live.send(Live::Event(rv, line));
    }

    /// Sends a BOOKMARK at the current resourceVersion to every open watch.
    pub fn bookmark(&self) {
        let st = self.lock();
        let line = bookmark_line(&st.kind, st.rv, false);
        let _ = self.live.send(Live::Bookmark(line));
    }

    /// Sends one line that is not valid JSON to every open watch.
    pub fn inject_malformed_frame(&self) {
        let _ = self.live.send(Live::Raw(Bytes::from_static(b"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":\n")));
    }

    /// Makes every resourceVersion seen so far too old: the next watch from one gets 410.
    pub fn expire_history(&self) {
        let mut st = self.lock();
        st.oldest_valid_rv = st.rv;
        st.history.clear();
    }

    /// Answers the next non-streaming watch with 410 Expired, whatever its
    /// resourceVersion (as after an etcd compaction racing the watch).
    pub fn expire_next_watch(&self) {
        self.lock().expire_next_watch = true;
    }

    /// While `expire` is true, every non-streaming watch is answered with 410
    /// Expired at once (a server whose compaction outruns every watch): the
    /// reflector relists each time, so this is how tests provoke a relist storm.
    pub fn expire_every_watch(&self, expire: bool) {
        self.lock().expire_every_watch = expire;
    }

    /// Answers the next non-streaming watch with an HTTP 410 status (not an
    /// ERROR event in a 200 body), as a server does when the requested
    /// resourceVersion is already too old when the request arrives.
    pub fn expire_next_watch_with_status(&self) {
        self.lock().expire_next_watch_status = true;
    }

    /// Answers the next LIST that carries a continue token with 410 Expired (the
    /// token's resourceVersion was compacted while the list was paged).
    pub fn expire_next_continue(&self) {
        self.lock().expire_next_continue = true;
    }

    /// Makes the watch cache trail the live state by `writes` writes from now
    /// on: a LIST that may be served from the cache (see the module's "List
    /// semantics") misses the last `writes` writes, as a real watch cache that
    /// has not caught up with etcd does. `0` (the default) keeps it current.
    pub fn watch_cache_lag(&self, writes: usize) {
        let mut st = self.lock();
        let st = &mut *st;
        st.cache.lag = writes;
        // The cache starts from the current state, then trails the writes that follow.
        st.cache.rv = st.rv;
        st.cache.objects.clone_from(&st.objects);
        st.cache.behind.clear();
    }

    /// While `refuse` is true, a watch with `sendInitialEvents=true` is
    /// answered `422 Invalid`, as by a server with the WatchList feature off.
    pub fn refuse_initial_events(&self, refuse: bool) {
        self.lock().initial_events = if refuse { InitialEvents::Refused } else { InitialEvents::Supported };
    }

    /// While `ignore` is true, `sendInitialEvents=true` is ignored, as by a
    /// server older than WatchList: the watch starts from `""` with a synthetic
    /// ADDED event per object, then live events, and never sends the
    /// `k8s.io/initial-events-end` bookmark.
    pub fn ignore_initial_events(&self, ignore: bool) {
        self.lock().initial_events = if ignore { InitialEvents::Ignored } else { InitialEvents::Supported };
    }

    /// The parameters of every LIST request served so far, in order (to check
    /// the `resourceVersion`, `resourceVersionMatch`, `limit` and `continue`
    /// a client sent).
    pub fn list_requests(&self) -> Vec<ListParams> {
        self.list_log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// While `refuse` is true, every WATCH request fails with 503 (an API
    /// server that is down for watches); writes go on.
    pub fn refuse_watches(&self, refuse: bool) {
        self.lock().refuse_watches = refuse;
    }

    /// Closes every open watch (as a server restart or idle timeout would).
    pub fn disconnect_watches(&self) {
        let _ = self.live.send(Live::Disconnect);
    }

    /// Makes the next LIST fail with `code`.
    pub fn fail_next_list(&self, code: u16) {
        self.lock().next_list_error = Some(code);
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    /// Whether no objects are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// `(key, resourceVersion)` of every object, sorted by key.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        self.lock()
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// LIST requests served so far.
    pub fn list_calls(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    /// WATCH requests served so far.
    pub fn watch_calls(&self) -> u64 {
        self.watches.load(Ordering::Relaxed)
    }
}

fn key_of(obj: &Value) -> String {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

fn event_line(kind: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark_line(kind: &str, rv: u64, initial_events_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line("BOOKMARK", &json!({"kind": kind, "apiVersion": "v1", "metadata": meta}))
}

fn bad_request(message: &str) -> SourceError {
    SourceError::Api { code: 400, reason: "BadRequest".into(), message: message.to_owned() }
}

/// The API server's answer to a resourceVersion newer than it has: 504 with
/// reason `Timeout` and this message (its cause is `ResourceVersionTooLarge`).
fn too_large(requested: u64, current: u64) -> SourceError {
    SourceError::Api {
        code: 504,
        reason: "Timeout".into(),
        message: format!("Too large resource version: {requested}, current: {current}"),
    }
}

fn expired(rv: &str, oldest: u64) -> Bytes {
    event_line(
        "ERROR",
        &json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message": format!("too old resource version: {rv} ({oldest})"),"reason":"Expired","code":410}),
    )
}

impl Source for MemorySource {
    async fn list(&self, params: &ListParams) -> Result<Bytes, SourceError> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let requested = params.resource_version.as_deref().unwrap_or("");
        let matching = params.version_match.as_ref().map(|m| match m {
            VersionMatch::NotOlderThan => "NotOlderThan",
            VersionMatch::Exact => "Exact",
        });
        let continued = params.continue_token.as_deref().is_some_and(|c| !c.is_empty());
        self.list_log.lock().unwrap_or_else(|p| p.into_inner()).push(params.clone());
        let mut st = self.lock();
        if let Some(code) = st.next_list_error.take() {
            return Err(SourceError::Api { code, reason: "Injected".into(), message: "injected list failure".into() });
        }
        let st = &mut *st;
        let (objects, rv) = if continued {
            if !(requested.is_empty() || requested == "0") || matching.is_some() {
                return Err(bad_request("specifying resource version is not allowed when using continue"));
            }
            if std::mem::take(&mut st.expire_next_continue) {
                return Err(SourceError::Api {
                    code: 410,
                    reason: "Expired".into(),
                    message: "The provided continue parameter is too old to display a consistent list result.".into(),
                });
            }
            (&st.objects, st.rv)
        } else {
            match (requested, matching) {
                ("", None) => (&st.objects, st.rv),
                ("", Some(_)) => return Err(bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")),
                ("0", Some("Exact")) => return Err(bad_request("resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"")),
                ("0", _) => (&st.cache.objects, st.cache.rv),
                (n, m) => {
                    let Ok(n) = n.parse::<u64>() else {
                        return Err(bad_request(&format!("invalid resource version {n:?}")));
                    };
                    if n > st.rv {
                        return Err(too_large(n, st.rv));
                    }
                    let exact = m == Some("Exact") || (m.is_none() && params.limit.is_some());
                    if exact {
                        if n != st.rv {
                            return Err(SourceError::Api {
                                code: 410,
                                reason: "Expired".into(),
                                message: format!("too old resource version: {n} ({})", st.rv),
                            });
                        }
                        (&st.objects, st.rv)
                    } else if st.cache.rv >= n {
                        (&st.cache.objects, st.cache.rv)
                    } else {
                        // The real cache waits until it has caught up to `n`; the
                        // live state is what it would then serve.
                        (&st.objects, st.rv)
                    }
                }
            }
        };
        let start = params.continue_token.clone().unwrap_or_default();
        let limit = params.limit.map_or(usize::MAX, |l| l as usize);
        let mut items = Vec::new();
        let mut last = None;
        let range: Box<dyn Iterator<Item = (&String, &Value)>> = if start.is_empty() {
            Box::new(objects.iter())
        } else {
            Box::new(objects.range::<String, _>((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded)))
        };
        let mut iter = range.peekable();
        while let Some((k, v)) = iter.next() {
            let mut item = v.clone();
            if let Some(o) = item.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            items.push(item);
            if items.len() == limit {
                if iter.peek().is_some() {
                    last = Some(k.clone());
                }
                break;
            }
        }
        let remaining = iter.count();
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if let Some(k) = last {
            meta["continue"] = Value::String(k);
            // As the API server: only a list without selectors can say how many
            // items are left (this source does not filter by selector).
            if params.label_selector.is_none() && params.field_selector.is_none() {
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        let kind = format!("{}List", st.kind);
        let body = json!({"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items});
        Ok(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
    }

    async fn watch(&self, params: &WatchParams, resource_version: &str) -> Result<BodyStream, SourceError> {
        self.watches.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if st.refuse_watches {
            return Err(SourceError::Api { code: 503, reason: "ServiceUnavailable".into(), message: "watches refused".into() });
        }
        let streaming = params.send_initial_events && st.initial_events != InitialEvents::Ignored;
        if streaming && st.initial_events == InitialEvents::Refused {
            return Err(SourceError::Api {
                code: 422,
                reason: "Invalid".into(),
                message: "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled".into(),
            });
        }
        if !streaming && std::mem::take(&mut st.expire_next_watch_status) {
            return Err(SourceError::Api {
                code: 410,
                reason: "Expired".into(),
                message: format!("too old resource version: {resource_version} ({})", st.rv),
            });
        }
        let rx = self.live.subscribe();
        let mut backlog: Vec<Bytes> = Vec::new();
        let from: u64 = if streaming {
            for obj in st.objects.values() {
                backlog.push(event_line("ADDED", obj));
            }
            backlog.push(bookmark_line(&st.kind, st.rv, true));
            st.rv
        } else {
            // A server that ignores sendInitialEvents also ignores the
            // resourceVersionMatch that comes with it: a watch from "".
            let resource_version = if params.send_initial_events { "" } else { resource_version };
            let requested = match resource_version {
                "" | "0" => {
                    // Synthetic ADDED events for the current state, then live
                    // events after it: a write between an empty list (RV "0")
                    // and its watch is not lost.
                    backlog.extend(st.objects.values().map(|obj| event_line("ADDED", obj)));
                    st.rv
                }
                rv => match rv.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(SourceError::Api {
                            code: 400,
                            reason: "BadRequest".into(),
                            message: format!("invalid resource version {rv:?}"),
                        });
                    }
                },
            };
            if requested < st.oldest_valid_rv || std::mem::take(&mut st.expire_next_watch) || st.expire_every_watch {
                let line = expired(resource_version, st.oldest_valid_rv);
                return Ok(Box::pin(futures::stream::iter([Ok(line)])));
            }
            backlog.extend(st.history.iter().filter(|(rv, _)| *rv > requested).map(|(_, l)| l.clone()));
            requested.max(st.history.back().map_or(0, |(rv, _)| *rv))
        };
        let bookmarks = params.bookmarks;
        drop(st);
        let live = futures::stream::unfold((rx, from), move |(mut rx, seen)| async move {
            loop {
                match rx.recv().await {
                    Ok(Live::Event(rv, line)) => {
                        if rv <= seen {
                            continue;
                        }
                        return Some((Ok(line), (rx, rv)));
                    }
                    Ok(Live::Raw(line)) => return Some((Ok(line), (rx, seen))),
                    Ok(Live::Bookmark(line)) => {
                        if bookmarks {
                            return Some((Ok(line), (rx, seen)));
                        }
                    }
                    Ok(Live::Disconnect) | Err(broadcast::error::RecvError::Closed) => return None,
                    // A watcher that fell behind is closed, as the real server does.
                    Err(broadcast::error::RecvError::Lagged(_)) => return None,
                }
            }
        });
        Ok(Box::pin(futures::stream::iter(backlog.into_iter().map(Ok)).chain(live)))
    }
}
