//! The reflector's resourceVersion rules (client-go's `tools/cache/reflector.go`
//! and `tools/pager/pager.go`) and its streaming-list fallbacks, against the
//! in-memory source.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kcache::reflector::{Backoff, Event, Source, Watcher, WatcherConfig, WatcherError};
use kcache::testing::MemorySource;
use kcache::wire::{Decoder, DecoderConfig};
use kube::api::{ListParams, VersionMatch};
use serde_json::json;
use tokio::sync::{mpsc, watch};

fn pod(name: &str, phase: &str) -> serde_json::Value {
    json!({"metadata": {"namespace": "a", "name": name}, "status": {"phase": phase}})
}

fn fast_config() -> WatcherConfig {
    WatcherConfig {
        page_size: Some(10),
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
        ..WatcherConfig::default()
    }
}

struct Running {
    rx: mpsc::UnboundedReceiver<Event>,
    _stop: watch::Sender<bool>,
    stats: Arc<kcache::reflector::WatcherStats>,
    errors: Arc<Mutex<Vec<String>>>,
}

fn start(src: &MemorySource, mut config: WatcherConfig) -> Running {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&errors);
    config.on_error = Some(Arc::new(move |e: &WatcherError| log.lock().unwrap().push(e.to_string())));
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let watcher = Watcher::new(src.clone(), Decoder::new(DecoderConfig::default()), config);
    let stats = watcher.stats();
    tokio::spawn(async move {
        let mut sink = move |e: Event| {
            let _ = tx.send(e);
        };
        watcher.run(&mut sink, stop_rx).await;
    });
    Running { rx, _stop: stop, stats, errors }
}

impl Running {
    async fn next(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv()).await.expect("event in time").expect("watcher alive")
    }

    async fn next_object_event(&mut self) -> Event {
        loop {
            match self.next().await {
                Event::Bookmark(_) => continue,
                e => return e,
            }
        }
    }

    /// Collects one complete list, skipping lists restarted by a new `Init`:
    /// `(name, resourceVersion)` of its objects and its resourceVersion.
    async fn list(&mut self) -> (Vec<(String, String)>, String) {
        assert!(matches!(self.next_object_event().await, Event::Init));
        let mut objects = Vec::new();
        loop {
            match self.next().await {
                Event::Init => objects.clear(),
                Event::InitApply(o) => objects.push((o.name().to_owned(), o.resource_version().to_owned())),
                Event::InitDone { resource_version } => return (objects, resource_version),
                other => panic!("unexpected {other:?} during a list"),
            }
        }
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

fn names(list: &[(String, String)]) -> Vec<&str> {
    list.iter().map(|(n, _)| n.as_str()).collect()
}

/// `(resourceVersion, resourceVersionMatch, limit, continued)` of a LIST request.
fn rv_params(lp: &ListParams) -> (Option<&str>, Option<&'static str>, Option<u32>, bool) {
    let matching = lp.version_match.as_ref().map(|m| match m {
        VersionMatch::NotOlderThan => "NotOlderThan",
        VersionMatch::Exact => "Exact",
    });
    (lp.resource_version.as_deref(), matching, lp.limit, lp.continue_token.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_list_is_at_0_and_a_relist_after_a_watch_410_is_not_older_than_the_last_event() {
    let src = MemorySource::new("Pod");
    src.apply(pod("x", "Pending"));
    let mut w = start(&src, fast_config());
    w.list().await;
    let last = src.apply(pod("y", "Pending"));
    assert!(matches!(w.next_object_event().await, Event::Apply(_)));
    src.expire_next_watch();
    src.disconnect_watches();
    let (list, rv) = w.list().await;
    assert_eq!(names(&list), ["x", "y"]);
    assert!(rv.parse::<u64>().unwrap() >= last);
    let requests = src.list_requests();
    assert_eq!(rv_params(&requests[0]), (Some("0"), None, Some(10), false));
    assert_eq!(rv_params(&requests[1]), (Some(last.to_string().as_str()), Some("NotOlderThan"), Some(10), false));
    assert_eq!(requests.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_never_takes_the_cache_back_to_a_lagging_watch_cache() {
    let src = MemorySource::new("Pod");
    src.apply(pod("x", "Pending"));
    src.apply(pod("y", "Pending"));
    src.watch_cache_lag(3);
    let mut w = start(&src, fast_config());
    w.list().await;
    // Three writes the watch delivers and the watch cache has not caught up with.
    src.apply(pod("z", "Pending"));
    src.delete("a/x");
    let newest = src.apply(pod("y", "Running"));
    for _ in 0..3 {
        w.next_object_event().await;
    }
    // What a relist at "0" would get: x back, z gone, y old.
    let stale = src.list(&ListParams::default().at("0")).await.unwrap();
    let stale: serde_json::Value = serde_json::from_slice(&stale).unwrap();
    let stale_names: Vec<&str> = stale["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(stale_names, ["x", "y"], "the watch cache lags: a relist at 0 would go back in time");

    src.expire_next_watch();
    src.disconnect_watches();
    let (list, rv) = w.list().await;
    assert_eq!(names(&list), ["y", "z"], "no false delete of z, no resurrected x");
    assert_eq!(list[0].1, newest.to_string(), "y is not taken back to an older state");
    assert!(rv.parse::<u64>().unwrap() >= newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_answered_410_is_retried_at_once_as_a_consistent_read() {
    let src = MemorySource::new("Pod");
    src.apply(pod("x", "Pending"));
    let mut w = start(&src, fast_config());
    w.list().await;
    let last = src.apply(pod("y", "Pending"));
    w.next_object_event().await;
    src.expire_next_watch();
    src.fail_next_list(410);
    src.disconnect_watches();
    let (list, _) = w.list().await;
    assert_eq!(names(&list), ["x", "y"]);
    let requests = src.list_requests();
    assert_eq!(rv_params(&requests[1]), (Some(last.to_string().as_str()), Some("NotOlderThan"), Some(10), false));
    assert_eq!(rv_params(&requests[2]), (None, None, Some(10), false), "resourceVersion=\"\" after a 410 on the LIST");
    assert_eq!(requests.len(), 3);
    // Once a list succeeded, the next relist is at the last synced resourceVersion again.
    let last = src.apply(pod("z", "Pending"));
    w.next_object_event().await;
    src.expire_next_watch();
    src.disconnect_watches();
    w.list().await;
    assert_eq!(rv_params(&src.list_requests()[3]), (Some(last.to_string().as_str()), Some("NotOlderThan"), Some(10), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_continue_token_falls_back_to_one_full_list_at_the_same_resource_version() {
    let src = MemorySource::new("Pod");
    for i in 0..25 {
        src.apply(pod(&format!("p{i:02}"), "Pending"));
    }
    let mut w = start(&src, fast_config());
    w.list().await;
    let last = src.apply(pod("p25", "Pending"));
    w.next_object_event().await;
    src.expire_next_continue();
    src.expire_next_watch();
    src.disconnect_watches();
    let (list, _) = w.list().await;
    assert_eq!(list.len(), 26);
    let all = src.list_requests();
    let requests: Vec<_> = all.iter().skip(3).map(rv_params).map(|(rv, m, l, c)| (rv.map(str::to_owned), m, l, c)).collect();
    let at = Some(last.to_string());
    assert_eq!(
        requests,
        [
            (at.clone(), Some("NotOlderThan"), Some(10), false),
            // Continuation pages carry neither: the server forbids them with `continue`.
            (None, None, Some(10), true),
            // The pager's FullListIfExpired: unpaginated, same resourceVersion and match.
            (at, Some("NotOlderThan"), None, false),
        ]
    );
    assert!(w.errors().iter().any(|e| e.contains("list failed")), "{:?}", w.errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_as_the_watch_requests_status_relists() {
    let src = MemorySource::new("Pod");
    src.apply(pod("x", "Pending"));
    let mut w = start(&src, fast_config());
    w.list().await;
    src.apply(pod("y", "Pending"));
    w.next_object_event().await;
    src.expire_next_watch_with_status();
    src.disconnect_watches();
    let (list, _) = w.list().await;
    assert_eq!(names(&list), ["x", "y"]);
    assert_eq!(w.stats.relists.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(w.errors().iter().any(|e| e == "watch failed"), "{:?}", w.errors());
    src.apply(pod("z", "Pending"));
    assert!(matches!(w.next_object_event().await, Event::Apply(o) if o.name() == "z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_send_initial_events_gets_a_paginated_list() {
    let src = MemorySource::new("Pod");
    src.apply(pod("x", "Pending"));
    src.apply(pod("y", "Pending"));
    src.refuse_initial_events(true);
    let mut w = start(&src, WatcherConfig { streaming_list: true, ..fast_config() });
    let (list, _) = w.list().await;
    assert_eq!(names(&list), ["x", "y"]);
    assert_eq!(src.list_calls(), 1);
    src.apply(pod("z", "Pending"));
    assert!(matches!(w.next_object_event().await, Event::Apply(o) if o.name() == "z"));
    // Remembered: a relist does not try the streaming list again.
    let watches = src.watch_calls();
    src.expire_next_watch();
    src.disconnect_watches();
    w.list().await;
    assert_eq!(src.list_calls(), 2);
    assert!(src.watch_calls() <= watches + 2);
    assert_eq!(w.errors().iter().filter(|e| *e == "watch failed").count(), 1, "{:?}", w.errors());
}

#[tokio::test(start_paused = true)]
async fn a_server_that_ignores_send_initial_events_gets_a_paginated_list_after_the_timeout() {
    let src = MemorySource::new("Pod");
    src.apply(pod("x", "Pending"));
    src.apply(pod("y", "Pending"));
    src.ignore_initial_events(true);
    let timeout = Duration::from_secs(2);
    let started = tokio::time::Instant::now();
    let mut w = start(&src, WatcherConfig { streaming_list: true, initial_events_timeout: timeout, ..fast_config() });
    let (list, _) = w.list().await;
    let waited = started.elapsed();
    assert_eq!(names(&list), ["x", "y"]);
    assert!(waited >= timeout && waited < timeout + Duration::from_millis(500), "synced after {waited:?}");
    assert_eq!(src.list_calls(), 1);
    assert!(w.errors().iter().any(|e| e.starts_with("no initial-events-end bookmark within 2s")), "{:?}", w.errors());
    src.apply(pod("z", "Pending"));
    assert!(matches!(w.next_object_event().await, Event::Apply(o) if o.name() == "z"));
}

#[tokio::test]
async fn the_memory_source_answers_list_resource_versions_as_the_api_server() {
    let src = MemorySource::new("Pod");
    src.apply(pod("x", "Pending"));
    let current = src.apply(pod("y", "Pending"));
    let too_new = ListParams::default().at(&(current + 5).to_string()).matching(VersionMatch::NotOlderThan);
    let err = src.list(&too_new).await.unwrap_err();
    assert!(err.is_too_large_resource_version(), "{err}");
    let exact_old = ListParams::default().at("1").matching(VersionMatch::Exact);
    assert!(src.list(&exact_old).await.unwrap_err().is_expired());
    // With a limit and no match, a resourceVersion other than 0 means Exact.
    assert!(src.list(&ListParams::default().at("1").limit(1)).await.unwrap_err().is_expired());
    assert!(src.list(&ListParams::default().at("1")).await.is_ok(), "no limit, no match: not older than");
    let mut continued = ListParams::default().at("1").matching(VersionMatch::NotOlderThan);
    continued.continue_token = Some("a/x".into());
    assert!(matches!(src.list(&continued).await.unwrap_err(), kcache::reflector::SourceError::Api { code: 400, .. }));
}

/// A source whose cache has not caught up: the first not-older-than LIST is
/// answered 504 "Too large resource version".
struct CacheBehind {
    inner: MemorySource,
    answered: std::sync::atomic::AtomicBool,
}

impl Source for CacheBehind {
    async fn list(&self, params: &ListParams) -> Result<bytes::Bytes, kcache::reflector::SourceError> {
        if params.version_match.is_some() && !self.answered.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let rv = params.resource_version.clone().unwrap_or_default();
            return Err(kcache::reflector::SourceError::Api {
                code: 504,
                reason: "Timeout".into(),
                message: format!("Too large resource version: {rv}, current: 1"),
            });
        }
        self.inner.list(params).await
    }

    async fn watch(
        &self,
        params: &kube::api::WatchParams,
        resource_version: &str,
    ) -> Result<kcache::reflector::BodyStream, kcache::reflector::SourceError> {
        self.inner.watch(params, resource_version).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_large_resource_version_on_the_list_is_retried_at_once_as_a_consistent_read() {
    let src = MemorySource::new("Pod");
    src.apply(pod("x", "Pending"));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop, stop_rx) = watch::channel(false);
    let watcher = Watcher::new(
        CacheBehind { inner: src.clone(), answered: std::sync::atomic::AtomicBool::new(false) },
        Decoder::new(DecoderConfig::default()),
        fast_config(),
    );
    tokio::spawn(async move {
        let mut sink = move |e: Event| {
            let _ = tx.send(e);
        };
        watcher.run(&mut sink, stop_rx).await;
    });
    // The initial list is at "0": no match, so the 504 is not sent yet.
    while !matches!(tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap(), Event::InitDone { .. }) {}
    src.apply(pod("y", "Pending"));
    src.expire_next_watch();
    src.disconnect_watches();
    let last = loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap() {
            Event::InitDone { resource_version } => break resource_version,
            _ => continue,
        }
    };
    assert_eq!(last, src.resource_version().to_string());
    let requests = src.list_requests();
    // The 504 never reached the inner source: the first page it saw after the
    // initial list is the consistent read.
    assert_eq!(requests.len(), 2);
    assert_eq!(rv_params(&requests[1]), (None, None, Some(10), false));
}
