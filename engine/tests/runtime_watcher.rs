//! The watcher against the in-memory source: list, watch and every recovery path.

use std::time::Duration;

use kcache::reflector::Backoff;
use kcache::testing::MemorySource;
use kcache::reflector::{BodyStream, Source, SourceError};
use kcache::reflector::{Event, Watcher, WatcherConfig, WatcherError};
use kube::api::{ListParams, WatchParams};
use kcache::wire::{Decoder, DecoderConfig};
use serde_json::json;
use tokio::sync::{mpsc, watch};

fn pod(ns: &str, name: &str, phase: &str) -> serde_json::Value {
    json!({"metadata": {"namespace": ns, "name": name, "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}, "status": {"phase": phase}})
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
    stop: watch::Sender<bool>,
    stats: std::sync::Arc<kcache::reflector::WatcherStats>,
}

fn start(src: &MemorySource, config: WatcherConfig) -> Running {
    start_on(src.clone(), config)
}

fn start_on(src: impl Source, config: WatcherConfig) -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let watcher = Watcher::new(src, Decoder::new(DecoderConfig::default()), config);
    let stats = watcher.stats();
    tokio::spawn(async move {
        let mut sink = move |e: Event| {
            let _ = tx.send(e);
        };
        watcher.run(&mut sink, stop_rx).await;
    });
    Running { rx, stop, stats }
}

impl Running {
    async fn next(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv()).await.expect("event in time").expect("watcher alive")
    }

    /// Skips bookmarks.
    async fn next_object_event(&mut self) -> Event {
        loop {
            match self.next().await {
                Event::Bookmark(_) => continue,
                e => return e,
            }
        }
    }

    /// Collects one whole list: Init, InitApply…, InitDone; returns names and the RV.
    async fn list(&mut self) -> (Vec<String>, String) {
        assert!(matches!(self.next_object_event().await, Event::Init));
        let mut names = Vec::new();
        loop {
            match self.next().await {
                Event::InitApply(o) => names.push(o.name().to_owned()),
                Event::InitDone { resource_version } => return (names, resource_version),
                other => panic!("unexpected {other:?} during a list"),
            }
        }
    }
}

fn name_of(e: &Event) -> (&'static str, String) {
    match e {
        Event::Apply(o) => ("apply", o.name().to_owned()),
        Event::Delete(o) => ("delete", o.name().to_owned()),
        other => panic!("expected an object event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paginated_list_then_watch_delivers_every_event_in_order() {
    let src = MemorySource::new("Pod");
    for i in 0..25 {
        src.apply(pod("default", &format!("p{i:02}"), "Pending"));
    }
    let mut w = start(&src, fast_config());
    let (names, rv) = w.list().await;
    assert_eq!(names.len(), 25);
    assert_eq!(rv, "25");
    assert_eq!(src.list_calls(), 3, "25 objects in pages of 10");

    src.apply(pod("default", "new", "Pending"));
    src.apply(pod("default", "p03", "Running"));
    src.delete("default/p04");
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "new".into()));
    match w.next_object_event().await {
        Event::Apply(o) => {
            assert_eq!(o.name(), "p03");
            assert_eq!(o.resource_version(), "27");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(name_of(&w.next_object_event().await), ("delete", "p04".into()));
    w.stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_resumes_from_the_last_resource_version_without_relisting() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "Pending"));
    let mut w = start(&src, fast_config());
    w.list().await;
    src.apply(pod("a", "y", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "y".into()));
    src.disconnect_watches();
    // Written while no watch is open: the rewatch from RV 2 replays it from history.
    src.apply(pod("a", "z", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "z".into()));
    src.apply(pod("a", "w", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "w".into()));
    assert_eq!(src.list_calls(), 1, "a rewatch must not relist");
    assert!(src.watch_calls() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_resource_version_relists_and_the_list_shows_the_gap() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "Pending"));
    src.apply(pod("a", "y", "Pending"));
    let mut w = start(&src, fast_config());
    w.list().await;
    src.delete("a/x");
    src.apply(pod("a", "z", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("delete", "x".into()));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "z".into()));
    // Everything the watcher has seen is now too old: the rewatch gets 410.
    src.expire_next_watch();
    src.disconnect_watches();
    let (names, rv) = w.list().await;
    assert_eq!(names, vec!["y".to_owned(), "z".to_owned()]);
    assert_eq!(rv, src.resource_version().to_string());
    assert_eq!(src.list_calls(), 2);
    assert_eq!(w.stats.relists.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_drops_the_watch_and_loses_nothing() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "Pending"));
    let errors = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = errors.clone();
    let mut config = fast_config();
    config.on_error = Some(std::sync::Arc::new(move |_e| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    let mut w = start(&src, config);
    w.list().await;
    // A live event proves the watch is open before the bad frame is sent.
    src.apply(pod("a", "before", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "before".into()));
    src.inject_malformed_frame();
    src.apply(pod("a", "after", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "after".into()));
    assert_eq!(w.stats.decode_errors.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(errors.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(src.list_calls(), 1, "a bad frame costs a rewatch, not a relist");
    // Exactly once: no duplicate of "after" follows.
    src.apply(pod("a", "last", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "last".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_list_is_retried_after_backoff() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "Pending"));
    src.fail_next_list(503);
    let mut w = start(&src, fast_config());
    let (names, _) = w.list().await;
    assert_eq!(names, vec!["x".to_owned()]);
    assert_eq!(src.list_calls(), 2);
    assert_eq!(w.stats.errors.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_list_ends_at_the_initial_events_end_bookmark() {
    let src = MemorySource::new("Pod");
    for i in 0..5 {
        src.apply(pod("a", &format!("p{i}"), "Pending"));
    }
    let mut config = fast_config();
    config.streaming_list = true;
    let mut w = start(&src, config);
    let (names, rv) = w.list().await;
    assert_eq!(names.len(), 5);
    assert_eq!(rv, "5");
    assert_eq!(src.list_calls(), 0, "a streaming list issues no LIST");
    src.apply(pod("a", "live", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "live".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_are_passed_on_and_stop_ends_the_watcher() {
    let src = MemorySource::new("Pod");
    let mut w = start(&src, fast_config());
    w.list().await;
    // Written after the empty list (RV "0"), maybe before the watch opens: the
    // watch from "0" starts with the current state, so "x" arrives either way.
    src.apply(pod("a", "x", "Pending"));
    // The event proves the watch is open; a bookmark sent earlier could miss it.
    assert_eq!(name_of(&w.next().await), ("apply", "x".into()));
    src.bookmark();
    match w.next().await {
        Event::Bookmark(rv) => assert_eq!(rv, "1"),
        other => panic!("{other:?}"),
    }
    w.stop.send(true).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), w.rx.recv()).await.expect("watcher stops");
    assert!(end.is_none(), "the sink is dropped when the watcher returns");
}

/// A source that writes one object just before it opens each watch: the
/// window between a list and its watch, made deterministic.
struct WriteBeforeWatch {
    src: MemorySource,
}

impl Source for WriteBeforeWatch {
    async fn list(&self, params: &ListParams) -> Result<bytes::Bytes, SourceError> {
        self.src.list(params).await
    }

    async fn watch(&self, params: &WatchParams, resource_version: &str) -> Result<BodyStream, SourceError> {
        let n = self.src.watch_calls();
        self.src.apply(pod("a", &format!("raced{n}"), "Pending"));
        self.src.watch(params, resource_version).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_an_empty_list_and_its_watch_is_not_lost() {
    let src = MemorySource::new("Pod");
    let mut w = start_on(WriteBeforeWatch { src: src.clone() }, fast_config());
    let (names, rv) = w.list().await;
    assert!(names.is_empty());
    assert_eq!(rv, "0", "an empty collection lists at resourceVersion 0");
    // The watch from "0" starts with the state as of its opening, so the
    // object written just before it is delivered.
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "raced0".into()));
    w.stop.send(true).unwrap();
}

/// Every error reported: the decode key when there is one, and the message.
type ErrorLog = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, String)>>>;

fn collect_errors(config: &mut WatcherConfig) -> ErrorLog {
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = errors.clone();
    config.on_error = Some(std::sync::Arc::new(move |e: &WatcherError| {
        let key = match e {
            WatcherError::Decode { key, .. } => key.clone(),
            _ => None,
        };
        sink.lock().unwrap().push((key, e.to_string()));
    }));
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_object_is_reported_with_its_key_and_the_watcher_recovers_once_it_is_fixed() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "Pending"));
    let mut config = fast_config();
    let errors = collect_errors(&mut config);
    let mut w = start(&src, config);
    w.list().await;
    // Valid JSON whose metadata names the object, but generation is not an integer.
    src.apply(json!({"metadata": {"namespace": "a", "name": "bad", "generation": "two"}}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // The watch reports it; the rewatch replays it from history and reports it
    // again, so the watcher relists, and the list reports the same object.
    while errors.lock().unwrap().iter().filter(|(k, _)| k.is_some()).count() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "errors so far: {:?}", errors.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (key, text) in errors.lock().unwrap().iter().filter(|(k, _)| k.is_some()) {
        assert_eq!(key.as_deref(), Some("a/bad"));
        assert!(text.contains("key=a/bad"), "{text}");
    }
    assert!(w.stats.decode_errors.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert!(src.list_calls() >= 2, "a bad event in history ends in a relist");
    assert!(!errors.lock().unwrap().iter().any(|(_, text)| text.contains("without an event")));
    // Fixed at the source: the next list completes and includes it.
    src.apply(pod("a", "bad", "Running"));
    loop {
        match w.next().await {
            Event::InitDone { .. } => break,
            Event::Init | Event::InitApply(_) | Event::Bookmark(_) => {}
            other => panic!("unexpected {other:?} before the relist completed"),
        }
    }
    src.apply(pod("a", "after", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "after".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_that_names_no_object_is_reported_without_a_key() {
    let src = MemorySource::new("Pod");
    let mut config = fast_config();
    let errors = collect_errors(&mut config);
    let mut w = start(&src, config);
    w.list().await;
    src.apply(pod("a", "before", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "before".into()));
    src.inject_malformed_frame();
    src.apply(pod("a", "after", "Pending"));
    assert_eq!(name_of(&w.next_object_event().await), ("apply", "after".into()));
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, None);
    assert_eq!(errors[0].1, "could not decode a response");
}

/// Most LIST+WATCH pairs a relist storm can make in `window` when every delay
/// is as short as `backoff` allows (jitter at its low end): the bound the
/// backoff sets, independent of how fast the machine is.
fn most_cycles(backoff: &Backoff, window: Duration) -> u64 {
    let low = 1.0 - backoff.jitter / 2.0;
    let (mut t, mut delay, mut cycles) = (Duration::ZERO, backoff.initial, 1);
    loop {
        t += delay.mul_f64(low);
        if t > window {
            return cycles;
        }
        cycles += 1;
        delay = delay.mul_f64(backoff.factor).min(backoff.max);
    }
}

#[tokio::test(start_paused = true)]
async fn a_relist_storm_is_paced_by_the_backoff_not_by_the_cpu() {
    let src = MemorySource::new("Pod");
    for i in 0..20 {
        src.apply(pod("a", &format!("p{i}"), "Pending"));
    }
    src.expire_every_watch(true);
    let mut config = fast_config();
    config.backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200));
    let backoff = config.backoff.clone();
    let w = start(&src, config);
    let window = Duration::from_secs(2);
    // Paused time: the clock only moves while every task waits, so the count
    // below is what the backoff allows, whatever the machine's speed.
    tokio::time::sleep(window).await;
    let (lists, watches) = (src.list_calls(), src.watch_calls());
    let bound = most_cycles(&backoff, window);
    println!("relist storm over {window:?} of paused time: {lists} LIST requests (2 pages per list), {watches} watches; backoff bound {bound} lists+watches");
    assert!(watches <= bound && lists <= 2 * bound, "{lists} lists, {watches} watches, bound {bound}");
    // Jitter at its high end still allows this many: the storm keeps retrying.
    assert!(watches >= 8, "only {watches} watches in {window:?}");
    assert!(w.stats.relists.load(std::sync::atomic::Ordering::Relaxed) >= 7);
    // Recovery: with the fault gone, the next relist's watch stays open.
    src.expire_every_watch(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (lists, watches) = (src.list_calls(), src.watch_calls());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!((src.list_calls(), src.watch_calls()), (lists, watches), "a healthy watch makes no more requests");
    w.stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_whose_first_page_announces_too_many_objects_stops_there_and_hands_nothing_on() {
    let src = MemorySource::new("Pod");
    for i in 0..100 {
        src.apply(pod("a", &format!("p{i:03}"), "Pending"));
    }
    let mut config = fast_config();
    config.max_objects = Some(25);
    config.backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(30));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    config.on_error = Some(std::sync::Arc::new(move |e: &WatcherError| {
        if let WatcherError::TooManyObjects { limit, seen } = e {
            log.lock().unwrap().push((*limit, *seen));
        }
    }));
    let mut w = start(&src, config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no TooManyObjects reported");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // 10 items plus remainingItemCount 90: the total is known from page one.
    assert_eq!(seen.lock().unwrap()[0], (25, 100));
    assert_eq!(src.list_calls(), 1);
    assert!(w.rx.try_recv().is_err(), "no Init, no InitApply for a list that cannot complete");
    assert_eq!(w.stats.errors.load(std::sync::atomic::Ordering::Relaxed), 1);
    w.stop.send(true).unwrap();
}

/// A server that accepts every watch and closes it at once, without an event.
struct ClosesEveryWatch {
    src: MemorySource,
    watches: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Source for ClosesEveryWatch {
    async fn list(&self, params: &ListParams) -> Result<bytes::Bytes, SourceError> {
        self.src.list(params).await
    }

    async fn watch(&self, _params: &WatchParams, _resource_version: &str) -> Result<BodyStream, SourceError> {
        self.watches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Box::pin(futures::stream::empty()))
    }
}

#[tokio::test(start_paused = true)]
async fn watches_that_close_at_once_without_an_event_are_reopened_after_backoff() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a", "x", "Pending"));
    let watches = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut config = fast_config();
    config.backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200));
    let backoff = config.backoff.clone();
    let errors = collect_errors(&mut config);
    let w = start_on(ClosesEveryWatch { src: src.clone(), watches: watches.clone() }, config);
    let window = Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let opened = watches.load(std::sync::atomic::Ordering::Relaxed);
    assert!(opened <= most_cycles(&backoff, window), "{opened} watches in {window:?}");
    assert!(opened >= 8, "only {opened} watches");
    assert_eq!(src.list_calls(), 1, "the watch is reopened from its resourceVersion, not relisted");
    let errors = errors.lock().unwrap();
    assert!(errors.len() as u64 + 1 >= opened, "{} errors for {opened} watches", errors.len());
    assert!(errors.iter().all(|(_, text)| text.starts_with("watch closed after")), "{errors:?}");
    w.stop.send(true).unwrap();
}
