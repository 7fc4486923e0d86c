//! Relists an owner asks for ([`RelistTrigger`]), whole or scoped to the part of the
//! collection that changed meaning ([`RelistScope`]).
//!
//! # Guarantees
//! * A whole relist ([`RelistTrigger::request`]) lists the collection again at
//!   once, without backoff, as the watcher's "Recovery" says.
//! * A scoped relist ([`RelistTrigger::request_scoped`]) LISTs only the scope's
//!   selector, hands the sink a replace of only the objects the scope covers
//!   ([`EventSink::begin_scoped_list`]), and watches on from the same
//!   resourceVersion. Objects outside the scope are not touched.
//! * Whenever the scoped path cannot be used, the request becomes a whole relist:
//!   it came while no watch was open (during a LIST, a backoff, a streaming list),
//!   before any resourceVersion was seen, while another request was still pending,
//!   with [`WatcherConfig::max_objects`](super::WatcherConfig::max_objects) set (the
//!   scoped list cannot count what it drops), to a sink or a source that does not
//!   do scoped lists, or the scoped LIST failed in any way (410 included).
//!
//! # Why the scoped LIST is an exact read at the watch's resourceVersion
//! The watch open at the request has delivered everything up to resourceVersion
//! `R` (its last event or bookmark): the objects the cache keeps are the
//! collection's state at `R`. The scoped LIST asks for `resourceVersion=R` with
//! `resourceVersionMatch=Exact` (the continuation pages carry no version, their
//! token does), so the objects it brings are the scope's state at that same `R`:
//! kept and listed objects together are one consistent state of the new
//! collection, as one whole LIST at `R` would have been. The watch then resumes
//! from `R` with the new selector and delivers every change after it, of kept and
//! listed objects alike; a `NotOlderThan` or `""` read would be newer than `R`
//! and the watch from `R` would replay changes older than the listed state. An
//! exact read at `R` is answered from the server's history or storage, so once
//! compaction has passed `R` it answers 410 Expired: the watcher then relists the
//! whole collection as after any relist request (at `R` with `NotOlderThan`, see
//! the watcher's "Protocol"), which replaces the whole cache and needs no common
//! version.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::api::{ListParams, VersionMatch};
use tokio::sync::watch;

use super::watcher::{Event, EventSink, Next, Watcher, WatcherStats};
use super::{ShardSelector, Source, SourceError, WatcherError};
use crate::Obj;

/// What a scoped relist replaces: the objects [`RelistScope::covers`] accepts are
/// replaced by a LIST of [`RelistScope::list_selector`] (nothing to list when
/// `None`: they are all dropped), every other cached object is kept as it is.
#[derive(Clone)]
pub struct RelistScope {
    list_selector: Option<ShardSelector>,
    covers: Arc<dyn Fn(&Obj) -> bool + Send + Sync>,
}

impl std::fmt::Debug for RelistScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelistScope").field("list_selector", &self.list_selector).finish_non_exhaustive()
    }
}

impl RelistScope {
    /// A scope that lists `list_selector` (the source's other selectors still
    /// apply) and replaces the cached objects `covers` accepts. Every object the
    /// selector returns must be covered.
    pub fn new(list_selector: Option<ShardSelector>, covers: impl Fn(&Obj) -> bool + Send + Sync + 'static) -> Self {
        RelistScope { list_selector, covers: Arc::new(covers) }
    }

    /// The shard selector the scoped LIST sends; `None` when nothing is listed.
    pub fn list_selector(&self) -> Option<&ShardSelector> {
        self.list_selector.as_ref()
    }

    /// Whether the scoped relist replaces `obj` (drops it unless listed again).
    pub fn covers(&self, obj: &Obj) -> bool {
        (self.covers)(obj)
    }
}

/// One state of a trigger: how many requests were made, and the scope of the last
/// one when it may be served scoped.
#[derive(Clone, Debug, Default)]
pub(super) struct Request {
    seq: u64,
    scope: Option<Arc<RelistScope>>,
}

/// Asks the watchers configured with it ([`WatcherConfig::relist_trigger`](super::WatcherConfig::relist_trigger)) to relist
/// at once: the owner of a source whose answers changed meaning (a new selector)
/// needs a fresh list, and a real failure's backoff is no reason to wait for it.
/// Cheap to clone; requests made before a watcher starts are not replayed to it (it
/// lists first anyway), and requests made while one is pending merge into it (a
/// whole relist).
#[derive(Clone, Debug)]
pub struct RelistTrigger {
    requests: Arc<watch::Sender<Request>>,
    /// The `seq` a watcher last took: a scoped request is relative to the state
    /// the watcher has, so one made while another is pending becomes whole.
    taken: Arc<AtomicU64>,
}

impl Default for RelistTrigger {
    fn default() -> Self {
        RelistTrigger::new()
    }
}

impl RelistTrigger {
    /// A trigger no watcher listens to yet.
    pub fn new() -> Self {
        RelistTrigger { requests: Arc::new(watch::channel(Request::default()).0), taken: Arc::new(AtomicU64::new(0)) }
    }

    /// Makes every watcher configured with this trigger relist at once (see the
    /// watcher's "Recovery").
    pub fn request(&self) {
        self.requests.send_modify(|r| {
            r.seq += 1;
            r.scope = None;
        });
    }

    /// Makes the watchers relist only `scope`, relative to the collection they
    /// hold now: a LIST of its selector at exactly the resourceVersion the open
    /// watch reached, a replace of what it covers, and a watch on from that
    /// version. A whole relist when that cannot be (no watch open, a request
    /// pending, a failed or expired LIST, a sink or source without scoped lists).
    pub fn request_scoped(&self, scope: RelistScope) {
        self.requests.send_modify(|r| {
            // Read under the channel's lock: a watcher takes a request under it too.
            let nothing_pending = r.seq == self.taken.load(Ordering::SeqCst);
            r.scope = nothing_pending.then(|| Arc::new(scope));
            r.seq += 1;
        });
    }

    pub(super) fn subscribe(&self) -> RelistRequests {
        let rx = self.requests.subscribe();
        self.taken.store(rx.borrow().seq, Ordering::SeqCst);
        RelistRequests { rx, taken: Arc::clone(&self.taken) }
    }
}

/// A watcher's end of a [`RelistTrigger`].
#[derive(Clone, Debug)]
pub(super) struct RelistRequests {
    pub(super) rx: watch::Receiver<Request>,
    taken: Arc<AtomicU64>,
}

impl RelistRequests {
    /// The request made since the last take, if any, with its scope (`None`: whole).
    pub(super) fn take(&mut self) -> Option<Option<Arc<RelistScope>>> {
        if !self.rx.has_changed().unwrap_or(false) {
            return None;
        }
        let request = self.rx.borrow_and_update();
        self.taken.store(request.seq, Ordering::SeqCst);
        Some(request.scope.clone())
    }
}

impl<S: Source> Watcher<S> {
    /// Lists `scope` at exactly `rv` and hands it to the sink as a scoped replace;
    /// then watches from `rv`. Any obstacle makes it a whole relist.
    pub(super) async fn scoped_relist(&mut self, scope: Arc<RelistScope>, rv: String, sink: &mut impl EventSink) -> Next {
        if self.config.max_objects.is_some() || !sink.begin_scoped_list(Arc::clone(&scope)) {
            return Next::RequestedRelist;
        }
        sink.event(Event::Init);
        self.listing = true;
        if let Some(selector) = scope.list_selector() {
            let mut lp = ListParams::default();
            lp.label_selector.clone_from(&self.config.label_selector);
            lp.field_selector.clone_from(&self.config.field_selector);
            lp.resource_version = Some(rv.clone());
            lp.version_match = Some(VersionMatch::Exact);
            lp.limit = self.config.page_size;
            loop {
                let body = match self.source.list_shard(&lp, selector).await {
                    Ok(body) => body,
                    Err(SourceError::ScopedListUnsupported) => return Next::RequestedRelist,
                    Err(e) => {
                        // The run loop abandons the sink's list (`init_aborted`).
                        self.report(&WatcherError::List(e));
                        return Next::RequestedRelist;
                    }
                };
                self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                let list = match self.decoder.decode_list(&body) {
                    Ok(list) => list,
                    Err(source) => {
                        self.report(&WatcherError::Decode { key: None, source });
                        return Next::RequestedRelist;
                    }
                };
                let n = list.items.len() as u64;
                self.stats.events.fetch_add(n, Ordering::Relaxed);
                self.stats.listed_objects.fetch_add(n, Ordering::Relaxed);
                for obj in list.items {
                    sink.event(Event::InitApply(obj));
                }
                match list.continue_token {
                    Some(token) if !token.is_empty() => {
                        lp.continue_token = Some(token);
                        lp.resource_version = None;
                        lp.version_match = None;
                    }
                    _ => break,
                }
            }
        }
        WatcherStats::inc(&self.stats.lists);
        WatcherStats::inc(&self.stats.scoped_relists);
        self.listing = false;
        sink.event(Event::InitDone { resource_version: rv.clone() });
        Next::Rewatch(rv)
    }
}
