//! The watcher: LIST then WATCH one collection, recovering from every failure,
//! and turn the bytes into a stream of [`Event`]s.
//!
//! # Protocol
//! The resourceVersions follow client-go's reflector (`tools/cache/reflector.go`,
//! `relistResourceVersion`) and pager (`tools/pager/pager.go`):
//! * **Paginated list** (default): `LIST ?limit=500`, following `continue`
//!   tokens, emitted as [`Event::Init`], [`Event::InitApply`] per object and
//!   [`Event::InitDone`] with the list's resourceVersion. Its resourceVersion:
//!   - the first list: [`WatcherConfig::list_resource_version`] (`"0"`: any
//!     state, served from the API server's watch cache);
//!   - every later list: the *last synced* resourceVersion — that of the last
//!     list, event or bookmark delivered — with
//!     `resourceVersionMatch=NotOlderThan`, so the answer is at least as new as
//!     what the sink already holds and the cache never goes back in time (a
//!     `"0"` relist may be answered from a cache that lags what the watch
//!     delivered: deletes of objects that exist, updates back to old states).
//!     client-go sends the resourceVersion alone and drops `limit` to get
//!     these semantics (with a `limit` and no match the server applies
//!     `Exact`); kcache names the match instead and keeps paging (KEP-2523);
//!   - after the LIST itself was answered 410 Expired or 504 "Too large
//!     resource version": at once, `resourceVersion=""` (a consistent read
//!     of the latest state), until a list succeeds.
//!
//!   Continuation pages carry no resourceVersion nor match (the server forbids
//!   them with `continue`). A `continue` token that expired (410) is followed,
//!   once, by one full unpaginated list with the first page's resourceVersion
//!   and match (the pager's `FullListIfExpired`); if that fails too, the rule
//!   above applies.
//!   A 410 on a *watch* is no reason for a consistent read: as client-go, the
//!   relist uses the last synced resourceVersion under `NotOlderThan`, which
//!   the server can always serve.
//! * **Streaming list** ([`WatcherConfig::streaming_list`]): one
//!   `WATCH ?sendInitialEvents=true&resourceVersionMatch=NotOlderThan` from
//!   `""` (the latest state, so never older than what was delivered); the
//!   initial ADDED events are `InitApply`, and the BOOKMARK annotated
//!   `k8s.io/initial-events-end` is `InitDone`. The same stream then carries
//!   live events. A server that refuses it (a 4xx other than 410 on the WATCH
//!   request) gets a paginated list instead; so does one that ignores it (an
//!   older server sends the ADDED events but never the end bookmark): when no
//!   end bookmark came within [`WatcherConfig::initial_events_timeout`], the
//!   stream is dropped, [`WatcherError::InitialEventsTimeout`] reported, and the
//!   watcher lists with LIST at once. Either way it remembers: this watcher
//!   never asks for a streaming list again.
//! * **Watch** from the last seen resourceVersion with `allowWatchBookmarks=true`
//!   and a timeout drawn at random from `[min_watch_timeout, 2 * min_watch_timeout)`
//!   (client-go's reflector does the same so watches do not all expire together).
//!
//! # Recovery
//! * Watch closed by the server or timed out: rewatch from the last seen
//!   resourceVersion at once (bookmarks keep it fresh) — unless the watch
//!   delivered nothing and lasted under a second ([`WatcherError::ShortWatch`]):
//!   a server that closes every watch at once is retried after backoff, as
//!   client-go's reflector does with a "very short watch".
//! * 410 Expired on a watch (as the WATCH request's HTTP status or an ERROR
//!   event): relist (at the last synced resourceVersion, see above), after backoff.
//! * A malformed frame, an unknown event type, or any other ERROR event: the
//!   event is counted and reported (with the object's `namespace/name` when it
//!   can be read, see [`WatcherError::Decode`]), the watch is dropped and
//!   reopened from the last resourceVersion that decoded cleanly — nothing
//!   already delivered is lost or repeated out of order. If the reopened watch
//!   fails on a bad frame again before delivering anything (the bad event is in
//!   the server's history and replays first), the watcher relists instead.
//! * Transport and server errors: capped exponential backoff with jitter
//!   ([`Backoff`](super::Backoff)) before the next request, so a flapping API server is not hammered.
//! * Too many objects ([`WatcherConfig::max_objects`]): the list or watch is
//!   abandoned, [`WatcherError::TooManyObjects`] is reported, the cache keeps its
//!   last good state, and the watcher relists after backoff.
//!
//! * A relist requested through [`RelistTrigger`] (its owner changed what the
//!   collection is, e.g. a sharded informer's selector): the open watch, or the
//!   streaming list in progress, is dropped and the watcher lists again at once,
//!   with no backoff — it is no failure. A request that comes during a LIST lets
//!   that list finish and relists before the next watch. A request that comes
//!   during a backoff waits for it: a failing server is not hammered for it.
//!   A scoped request ([`RelistTrigger::request_scoped`]) that comes while a watch
//!   is open LISTs only its scope, at the watch's resourceVersion, and watches on
//!   from there ([`super::relist`] says why that version, and when it falls back
//!   to a whole relist).
//!
//! # Rate of requests under failure
//! Every failure — a failed LIST or WATCH request, a 410 (so a relist), an ERROR
//! event, a watch that ends before delivering anything, too many objects — waits
//! [`Backoff::next_delay`](super::Backoff::next_delay) before the next request. A successful LIST does not
//! reset the backoff: only [`Backoff::reset_after`](super::Backoff::reset_after) without failures does
//! (client-go's reflector runs `ListAndWatch` under the same kind of backoff
//! manager: 800 ms doubling to 30 s, reset after 2 min of quiet). So a server that
//! answers every watch with 410 sees LIST+WATCH pairs at the backoff's pace —
//! at most about one pair per 30 s once the cap is reached — not at the pace of
//! the CPU. docs/TESTING.md has the measured rates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{ListParams, VersionMatch, WatchParams};
use rand::Rng;
use tokio::sync::watch;

use super::relist::{RelistRequests, RelistScope, RelistTrigger};
use super::{Source, SourceError, WatcherConfig, WatcherError};
use crate::Obj;
use crate::wire::{Decoder, DecoderConfig, Framer, WatchEvent};

/// A watch that ends (cleanly) sooner than this without delivering a single
/// event counts as a failure: client-go's reflector calls it a "very short watch".
const SHORT_WATCH: Duration = Duration::from_secs(1);

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

    /// Called when a list that began with [`Event::Init`] was abandoned before
    /// its [`Event::InitDone`] (a failed page, too many objects, a broken
    /// streaming list): the objects received since `Init` must be dropped and
    /// the cache left as it was. The watcher lists again later, starting with a
    /// new `Init`. The default does nothing, which is correct for a sink that
    /// restarts its buffer at every `Init`; it only holds memory longer.
    fn init_aborted(&mut self) {}

    /// Called before the [`Event::Init`] of a scoped relist: when it returns true
    /// the list that follows replaces only the objects `scope` covers
    /// ([`RelistScope::covers`]) at its [`Event::InitDone`], and every other object
    /// is kept. The default refuses (false), and the watcher relists the whole
    /// collection instead.
    fn begin_scoped_list(&mut self, scope: Arc<RelistScope>) -> bool {
        let _ = scope;
        false
    }
}

impl<F: FnMut(Event) + Send> EventSink for F {
    fn event(&mut self, event: Event) {
        self(event)
    }
}

/// Counters of one watcher; cheap to read from any thread.
#[derive(Debug, Default)]
pub struct WatcherStats {
    /// LISTs (or streaming lists) completed.
    pub lists: AtomicU64,
    /// Lists started because a resourceVersion expired (410).
    pub relists: AtomicU64,
    /// Lists started on a [`RelistTrigger`] request (a scoped one that falls back
    /// to a whole relist counts twice: the scoped attempt and the whole list).
    pub requested_relists: AtomicU64,
    /// Scoped relists completed ([`RelistTrigger::request_scoped`]); also counted in `lists`.
    pub scoped_relists: AtomicU64,
    /// Objects received in LIST responses (whole and scoped lists).
    pub listed_objects: AtomicU64,
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
    /// The HTTP status of the last LIST if it failed with an API error (404: the
    /// server does not serve the resource; 403: not allowed to list it); 0 before the
    /// first LIST and once one succeeds.
    pub failed_list_status: AtomicU64,
}

impl WatcherStats {
    pub(super) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Lists and watches one collection from a [`Source`] through a [`Decoder`].
pub struct Watcher<S> {
    pub(super) source: S,
    pub(super) decoder: Decoder,
    pub(super) config: WatcherConfig,
    pub(super) stats: Arc<WatcherStats>,
    /// Objects in the collection as of the last event: the last complete
    /// list's count, plus ADDED, minus DELETED since.
    objects: usize,
    /// An [`Event::Init`] was sent and its [`Event::InitDone`] not yet.
    pub(super) listing: bool,
    /// The last watch ended on a bad frame; if the next one does too before
    /// delivering anything, the bad event is in the server's history: relist.
    broke_on_bad_frame: bool,
    /// resourceVersion of the last list, event or bookmark handed to the sink
    /// (client-go's `lastSyncResourceVersion`); empty before the first list.
    last_sync_rv: String,
    /// The last LIST at `last_sync_rv` was answered 410 or "too large": list
    /// at `""` until a list succeeds (client-go's
    /// `isLastSyncResourceVersionUnavailable`).
    last_sync_rv_unavailable: bool,
    /// Requests of [`WatcherConfig::relist_trigger`]; `None` without one.
    relist_requests: Option<RelistRequests>,
}

pub(super) enum Next {
    /// List (again) from scratch.
    Relist,
    /// List again at once, as the [`RelistTrigger`] asked: no failure.
    RequestedRelist,
    /// Replace only this scope, listed at exactly this resourceVersion, then
    /// watch from it ([`RelistTrigger::request_scoped`]).
    ScopedRelist(Arc<RelistScope>, String),
    /// Watch from this resourceVersion.
    Rewatch(String),
    /// Wait for the backoff, then do this (a failure happened).
    Backoff(Box<Next>),
    /// Shutdown was requested.
    Stop,
}

impl Next {
    fn after_backoff(next: Next) -> Next {
        Next::Backoff(Box::new(next))
    }
}

/// How one watch body ended, for [`Watcher::after_watch`].
struct WatchEnd {
    opened: Instant,
    /// Events decoded from this watch (bookmarks included).
    events: u64,
    /// It ended on an error that was already reported.
    failed: bool,
}

impl<S: Source> Watcher<S> {
    /// A watcher over `source`, decoding with `decoder`.
    pub fn new(source: S, decoder: Decoder, config: WatcherConfig) -> Self {
        let relist_requests = config.relist_trigger.as_ref().map(RelistTrigger::subscribe);
        Watcher {
            source,
            decoder,
            config,
            relist_requests,
            stats: Arc::new(WatcherStats::default()),
            objects: 0,
            listing: false,
            broke_on_bad_frame: false,
            last_sync_rv: String::new(),
            last_sync_rv_unavailable: false,
        }
    }

    /// The resourceVersion the next LIST asks for, and whether it asks for a
    /// state not older than it (client-go's `relistResourceVersion`).
    fn relist_resource_version(&self) -> (String, Option<VersionMatch>) {
        if self.last_sync_rv_unavailable {
            (String::new(), None)
        } else if self.last_sync_rv.is_empty() {
            (self.config.list_resource_version.clone(), None)
        } else {
            (self.last_sync_rv.clone(), Some(VersionMatch::NotOlderThan))
        }
    }

    /// Whether a relist was requested since the last list started; consumes it.
    fn take_relist_request(&mut self) -> bool {
        self.relist_requests.as_mut().and_then(RelistRequests::take).is_some()
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
                Next::Backoff(then) => {
                    if self.sleep_backoff(&mut shutdown).await {
                        *then
                    } else {
                        Next::Stop
                    }
                }
                Next::Relist | Next::RequestedRelist => {
                    if matches!(next, Next::RequestedRelist) {
                        WatcherStats::inc(&self.stats.requested_relists);
                    } else if !first {
                        WatcherStats::inc(&self.stats.relists);
                    }
                    first = false;
                    // This list answers every request made so far.
                    self.take_relist_request();
                    let attempt = if self.config.streaming_list {
                        self.streaming_list(sink, &mut shutdown).await
                    } else {
                        self.paginated_list(sink).await
                    };
                    let status = match &attempt {
                        Err(WatcherError::List(SourceError::Api { code, .. }) | WatcherError::Watch(SourceError::Api { code, .. })) => u64::from(*code),
                        _ => 0,
                    };
                    self.stats.failed_list_status.store(status, Ordering::Relaxed);
                    match attempt {
                        // No backoff reset here: a list that succeeds only to be
                        // followed by a 410 again is part of a failure streak.
                        Ok(next) => next,
                        Err(e) => {
                            let fell_back = self.config.streaming_list && matches!(&e, WatcherError::Watch(SourceError::Api { code, .. }) if *code != 410 && *code < 500);
                            self.report(&e);
                            if fell_back {
                                tracing::warn!("streaming list refused by the server; falling back to paginated LIST");
                                self.config.streaming_list = false;
                            }
                            Next::after_backoff(Next::Relist)
                        }
                    }
                }
                Next::ScopedRelist(scope, rv) => {
                    WatcherStats::inc(&self.stats.requested_relists);
                    self.scoped_relist(scope, rv, sink).await
                }
                Next::Rewatch(_) if self.take_relist_request() => Next::RequestedRelist,
                Next::Rewatch(rv) => {
                    WatcherStats::inc(&self.stats.watch_restarts);
                    let params = self.watch_params(false);
                    match self.source.watch(&params, &rv).await {
                        Ok(body) => {
                            WatcherStats::inc(&self.stats.watches);
                            self.consume(body, rv, false, sink, &mut shutdown).await
                        }
                        Err(e) if e.is_expired() => {
                            self.report(&WatcherError::Watch(e));
                            Next::after_backoff(Next::Relist)
                        }
                        Err(e) => {
                            self.report(&WatcherError::Watch(e));
                            Next::after_backoff(Next::Rewatch(rv))
                        }
                    }
                }
            };
            if self.listing {
                // Every list attempt returns either after its InitDone or abandoned.
                self.listing = false;
                sink.init_aborted();
            }
        }
    }

    pub(super) fn report(&self, e: &WatcherError) {
        WatcherStats::inc(&self.stats.errors);
        let source = std::error::Error::source(e).map(ToString::to_string);
        match e {
            WatcherError::Decode { key, .. } => {
                WatcherStats::inc(&self.stats.decode_errors);
                tracing::warn!(error = %e, key = key.as_deref().unwrap_or(""), source = ?source, "watcher recovering");
            }
            WatcherError::Frame(_) => {
                WatcherStats::inc(&self.stats.decode_errors);
                tracing::warn!(error = %e, source = ?source, "watcher recovering");
            }
            WatcherError::TooManyObjects { limit, seen } => {
                tracing::error!(error = %e, limit, seen, "collection over max_objects; cache kept, relisting after backoff");
            }
            _ => tracing::warn!(error = %e, source = ?source, "watcher recovering"),
        }
        if let Some(cb) = &self.config.on_error {
            cb(e);
        }
    }

    /// Sleeps for the next backoff delay; false when shutdown came first.
    async fn sleep_backoff(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let delay = self.config.backoff.next_delay();
        tracing::debug!(?delay, "backing off before the next request");
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

    fn too_many(&self, seen: usize) -> Option<WatcherError> {
        self.config.max_objects.filter(|&limit| seen > limit).map(|limit| WatcherError::TooManyObjects { limit, seen })
    }

    async fn paginated_list(&mut self, sink: &mut impl EventSink) -> Result<Next, WatcherError> {
        let (rv, matching) = self.relist_resource_version();
        match self.list_at(sink, &rv, matching).await {
            Err(WatcherError::List(e)) if !rv.is_empty() && (e.is_expired() || e.is_too_large_resource_version()) => {
                // The resourceVersion is gone (or not there yet): a consistent
                // read of the latest state, at once, as client-go's reflector
                // does (`tools/cache/reflector.go`, `list`).
                self.report(&WatcherError::List(e));
                self.last_sync_rv_unavailable = true;
                if self.listing {
                    self.listing = false;
                    sink.init_aborted();
                }
                self.list_at(sink, "", None).await
            }
            other => other,
        }
    }

    /// One list at `rv` (and `matching`), paged; see the module's "Protocol".
    async fn list_at(
        &mut self,
        sink: &mut impl EventSink,
        rv: &str,
        matching: Option<VersionMatch>,
    ) -> Result<Next, WatcherError> {
        let mut lp = ListParams::default();
        lp.label_selector.clone_from(&self.config.label_selector);
        lp.field_selector.clone_from(&self.config.field_selector);
        let first_page = |lp: &mut ListParams| {
            lp.continue_token = None;
            lp.resource_version = (!rv.is_empty()).then(|| rv.to_owned());
            lp.version_match.clone_from(&matching);
        };
        first_page(&mut lp);
        let mut seen = 0usize;
        // After a continue token expired: one unpaginated list.
        let mut full_list = false;
        loop {
            // With a limit, never ask for more than one object past it: that one
            // is enough to know the collection is too big.
            let left = self.config.max_objects.map(|max| u32::try_from(max.saturating_sub(seen).saturating_add(1)).unwrap_or(u32::MAX));
            lp.limit = match (left, self.config.page_size) {
                _ if full_list => left,
                (Some(left), page) => Some(page.map_or(left, |p| p.min(left))),
                (None, page) => page,
            };
            let body = match self.source.list(&lp).await {
                Ok(body) => body,
                Err(e) if e.is_expired() && lp.continue_token.is_some() && !full_list => {
                    // The continue token outlived the server's compaction window:
                    // one full list at the first page's resourceVersion, as
                    // client-go's pager does with `FullListIfExpired`
                    // (`tools/pager/pager.go`). If that fails too, the caller
                    // lists at "" — a server that expires every token is not
                    // looped on.
                    self.report(&WatcherError::List(e));
                    full_list = true;
                    first_page(&mut lp);
                    seen = 0;
                    if self.listing {
                        sink.event(Event::Init);
                    }
                    continue;
                }
                Err(e) => return Err(WatcherError::List(e)),
            };
            self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            let list = match self.decoder.decode_list(&body) {
                Ok(list) => list,
                Err(source) => {
                    let key = failing_list_item(self.decoder.config(), &body);
                    return Err(WatcherError::Decode { key, source });
                }
            };
            seen += list.items.len();
            let announced = list
                .continue_token
                .as_ref()
                .and(list.remaining_item_count)
                .map_or(0, |r| usize::try_from(r).unwrap_or(0));
            if let Some(e) = self.too_many(seen.saturating_add(announced)) {
                // Checked before the page is handed on: the sink buffers no
                // object of a list that cannot complete.
                return Err(e);
            }
            if !self.listing {
                sink.event(Event::Init);
                self.listing = true;
            }
            self.stats.events.fetch_add(list.items.len() as u64, Ordering::Relaxed);
            self.stats.listed_objects.fetch_add(list.items.len() as u64, Ordering::Relaxed);
            for obj in list.items {
                sink.event(Event::InitApply(obj));
            }
            match list.continue_token {
                Some(token) if !token.is_empty() => {
                    // The server forbids a resourceVersion(Match) with `continue`;
                    // the token carries the list's resourceVersion.
                    lp.continue_token = Some(token);
                    lp.resource_version = None;
                    lp.version_match = None;
                }
                _ => {
                    WatcherStats::inc(&self.stats.lists);
                    self.objects = seen;
                    self.listing = false;
                    self.last_sync_rv.clone_from(&list.resource_version);
                    self.last_sync_rv_unavailable = false;
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
        self.listing = true;
        self.objects = 0;
        Ok(self.consume(body, String::new(), true, sink, shutdown).await)
    }

    /// Reads one watch body to its end. `initial` is true while a streaming
    /// list's initial events are still arriving.
    async fn consume(
        &mut self,
        mut body: super::source::BodyStream,
        mut rv: String,
        mut initial: bool,
        sink: &mut impl EventSink,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Next {
        let mut framer = Framer::watch_with_limit(self.config.max_frame_bytes);
        let mut end = WatchEnd { opened: Instant::now(), events: 0, failed: false };
        let timeout = self.config.initial_events_timeout;
        let mut initial_deadline = initial.then(|| Box::pin(tokio::time::sleep(timeout)));
        let mut relist_requests = self.relist_requests.clone();
        loop {
            let relist_requested = async {
                match relist_requests.as_mut() {
                    Some(requests) => {
                        if requests.rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let no_end_bookmark = async {
                match initial_deadline.as_mut() {
                    Some(deadline) => deadline.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            let chunk = tokio::select! {
                chunk = body.next() => chunk,
                _ = shutdown.changed() => if *shutdown.borrow() { return Next::Stop } else { continue },
                () = relist_requested => {
                    // Only a watch past its initial events holds a state at `rv` a
                    // scoped list can complete; otherwise the request is consumed by
                    // the whole list that follows (`take_relist_request`).
                    if !initial
                        && !rv.is_empty()
                        && let Some(Some(scope)) = self.relist_requests.as_mut().and_then(RelistRequests::take)
                    {
                        return Next::ScopedRelist(scope, rv);
                    }
                    return Next::RequestedRelist;
                }
                () = no_end_bookmark => {
                    // An older server took sendInitialEvents for a plain watch:
                    // the end bookmark will never come. client-go has no such
                    // bound (its servers all know the parameter or refuse it).
                    self.report(&WatcherError::InitialEventsTimeout { after: timeout });
                    self.config.streaming_list = false;
                    return Next::Relist;
                }
            };
            let chunk = match chunk {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    self.report(&WatcherError::Stream(e));
                    end.failed = true;
                    break;
                }
            };
            self.stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            framer.push(chunk);
            loop {
                let frame = match framer.next_document() {
                    None => {
                                    break;
                    }
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        self.report(&WatcherError::Frame(e));
                        return self.after_bad_frame(rv, initial, &end);
                    }
                };
                let event = match self.decoder.decode_event(&frame) {
                    Ok(event) => event,
                    Err(source) => {
                        self.report(&WatcherError::Decode { key: event_key(&frame), source });
                        return self.after_bad_frame(rv, initial, &end);
                    }
                };
                end.events += 1;
                self.broke_on_bad_frame = false;
                match event {
                    WatchEvent::Added(obj) => {
                        if let Err(e) = self.grow() {
                            self.report(&e);
                            return Next::after_backoff(Next::Relist);
                        }
                        self.apply(obj, initial, &mut rv, sink);
                    }
                    WatchEvent::Modified(obj) => {
                        // A streaming list's initial events are all new objects.
                        if initial && let Err(e) = self.grow() {
                            self.report(&e);
                            return Next::after_backoff(Next::Relist);
                        }
                        self.apply(obj, initial, &mut rv, sink);
                    }
                    WatchEvent::Deleted(obj) => {
                        WatcherStats::inc(&self.stats.events);
                        self.objects = self.objects.saturating_sub(1);
                        rv.clear();
                        rv.push_str(obj.resource_version());
                        if !initial {
                            self.last_sync_rv.clone_from(&rv);
                        }
                        sink.event(Event::Delete(obj));
                    }
                    WatchEvent::Bookmark { resource_version, initial_events_end } => {
                        rv.clone_from(&resource_version);
                        if initial && initial_events_end {
                            initial = false;
                            initial_deadline = None;
                            self.listing = false;
                            self.last_sync_rv.clone_from(&resource_version);
                            WatcherStats::inc(&self.stats.lists);
                            sink.event(Event::InitDone { resource_version });
                        } else if !initial {
                            self.last_sync_rv.clone_from(&resource_version);
                            sink.event(Event::Bookmark(resource_version));
                        }
                    }
                    WatchEvent::Error(status) => {
                                    let code = status.code;
                        self.report(&WatcherError::ErrorEvent {
                            code,
                            reason: status.reason.clone(),
                            message: status.message.clone(),
                        });
                        if code == 410 || initial || rv.is_empty() {
                            return Next::after_backoff(Next::Relist);
                        }
                        return Next::after_backoff(Next::Rewatch(rv));
                    }
                }
            }
        }
        self.after_watch(rv, initial, &end)
    }

    /// Counts one more object, or says the collection is now too big.
    fn grow(&mut self) -> Result<(), WatcherError> {
        let seen = self.objects.saturating_add(1);
        if let Some(e) = self.too_many(seen) {
            return Err(e);
        }
        self.objects = seen;
        Ok(())
    }

    fn apply(&mut self, obj: Obj, initial: bool, rv: &mut String, sink: &mut impl EventSink) {
        WatcherStats::inc(&self.stats.events);
        rv.clear();
        rv.push_str(obj.resource_version());
        if !initial {
            // A streaming list's initial events come in no resourceVersion
            // order: only its end bookmark syncs.
            self.last_sync_rv.clone_from(rv);
        }
        sink.event(if initial { Event::InitApply(obj) } else { Event::Apply(obj) });
    }

    /// What to do after a watch body ended, cleanly or on a transport error
    /// (already reported).
    fn after_watch(&self, rv: String, in_initial_list: bool, end: &WatchEnd) -> Next {
        let lasted = end.opened.elapsed();
        let short = end.events == 0 && lasted < SHORT_WATCH;
        if short && !end.failed {
            self.report(&WatcherError::ShortWatch { lasted });
        }
        // A streaming list that broke before its end bookmark never completed:
        // only a fresh list can say which objects exist.
        let retry = if in_initial_list || rv.is_empty() { Next::Relist } else { Next::Rewatch(rv) };
        if in_initial_list || short || (end.failed && end.events == 0) {
            Next::after_backoff(retry)
        } else {
            // It made progress: a routine close (timeout, load balancer) or a
            // break after good events. Resume at once.
            retry
        }
    }

    /// What to do after a frame that could not be framed or decoded (already reported).
    fn after_bad_frame(&mut self, rv: String, in_initial_list: bool, end: &WatchEnd) -> Next {
        // Rewatching replays history from the last good resourceVersion; when the
        // previous watch broke on a bad frame too and this one delivered nothing
        // before breaking, the bad event is in that history and would come first
        // every time. A list skips history.
        let replayed = self.broke_on_bad_frame && end.events == 0;
        self.broke_on_bad_frame = !replayed;
        if in_initial_list || rv.is_empty() || replayed {
            Next::after_backoff(Next::Relist)
        } else if end.events == 0 {
            Next::after_backoff(Next::Rewatch(rv))
        } else {
            Next::Rewatch(rv)
        }
    }
}

/// `namespace/name` (or `name`) of an object, read leniently.
fn key_of(obj: &serde_json::Value) -> Option<String> {
    let meta = obj.get("metadata")?;
    let name = meta.get("name")?.as_str().filter(|n| !n.is_empty())?;
    match meta.get("namespace").and_then(serde_json::Value::as_str) {
        Some(ns) if !ns.is_empty() => Some(format!("{ns}/{name}")),
        _ => Some(name.to_owned()),
    }
}

/// The key of the object in a watch event that failed to decode, when the
/// document is still JSON and names one. Runs on the error path only.
fn event_key(frame: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(frame).ok()?;
    key_of(doc.get("object")?)
}

/// The key of the first item of a LIST body that does not decode on its own,
/// when the body is still JSON. Runs on the error path only, with a throwaway
/// decoder so that the watcher's arena holds nothing of it.
fn failing_list_item(config: &DecoderConfig, body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut probe = Decoder::new(config.clone());
    for item in doc.get("items")?.as_array()? {
        let bytes = serde_json::to_vec(item).ok()?;
        if probe.decode_object(&bytes).is_err() {
            return key_of(item);
        }
    }
    None
}
