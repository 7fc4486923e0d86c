//! The watcher's relist trigger: a requested relist drops the open watch and lists
//! at once, with no backoff, while real failures still wait for theirs.

use std::sync::Arc;
use std::time::Duration;

use kcache::reflector::{Backoff, Event, RelistTrigger, Watcher, WatcherConfig, WatcherStats};
use kcache::testing::MemorySource;
use kcache::wire::{Decoder, DecoderConfig};
use serde_json::json;
use tokio::sync::{mpsc, watch};

fn pod(name: &str) -> serde_json::Value {
    json!({"metadata": {"namespace": "ns", "name": name}, "spec": {}, "status": {}})
}

/// A backoff no test outlives: any request that waited for it would time out.
fn never_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600))
}

struct Running {
    rx: mpsc::UnboundedReceiver<Event>,
    _stop: watch::Sender<bool>,
    stats: Arc<WatcherStats>,
}

fn start(src: &MemorySource, trigger: &RelistTrigger) -> Running {
    let config = WatcherConfig { backoff: never_backoff(), relist_trigger: Some(trigger.clone()), ..WatcherConfig::default() };
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
    Running { rx, _stop: stop, stats }
}

impl Running {
    async fn next(&mut self) -> Event {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), self.rx.recv()).await.expect("event in time").expect("watcher alive") {
                Event::Bookmark(_) => continue,
                e => return e,
            }
        }
    }

    async fn list(&mut self) -> Vec<String> {
        assert!(matches!(self.next().await, Event::Init), "a list starts with Init");
        let mut names = Vec::new();
        loop {
            match self.next().await {
                Event::InitApply(o) => names.push(o.name().to_owned()),
                Event::InitDone { .. } => return names,
                other => panic!("unexpected {other:?} during a list"),
            }
        }
    }

    async fn wait_watching(&self, src: &MemorySource, watches: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while src.watch_calls() < watches {
            assert!(tokio::time::Instant::now() < deadline, "the watcher never opened watch #{watches}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn a_requested_relist_drops_the_watch_and_lists_without_backoff() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a"));
    let trigger = RelistTrigger::new();
    let mut w = start(&src, &trigger);
    assert_eq!(w.list().await, ["a"]);
    w.wait_watching(&src, 1).await;
    src.apply(pod("b"));
    assert!(matches!(w.next().await, Event::Apply(o) if o.name() == "b"), "the watch delivers live events");

    trigger.request();
    // A second list, with no backoff (the hour-long one would time the test out),
    // and no error reported: the request is not a failure.
    let mut names = w.list().await;
    names.sort();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(w.stats.requested_relists.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(w.stats.relists.load(std::sync::atomic::Ordering::Relaxed), 0, "no 410 relist");
    assert_eq!(w.stats.errors.load(std::sync::atomic::Ordering::Relaxed), 0, "no failure reported");
    assert_eq!(src.list_calls(), 2);

    // Then it watches again from the new list and delivers what follows, in order.
    w.wait_watching(&src, 2).await;
    src.apply(pod("c"));
    assert!(matches!(w.next().await, Event::Apply(o) if o.name() == "c"));
}

#[tokio::test]
async fn requests_merge_and_real_410s_still_wait_for_the_backoff() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a"));
    let trigger = RelistTrigger::new();
    let mut w = start(&src, &trigger);
    assert_eq!(w.list().await, ["a"]);
    w.wait_watching(&src, 1).await;
    // Several requests before the watcher reacts make one relist.
    trigger.request();
    trigger.request();
    trigger.request();
    assert_eq!(w.list().await, ["a"]);
    w.wait_watching(&src, 2).await;
    src.apply(pod("b"));
    assert!(matches!(w.next().await, Event::Apply(o) if o.name() == "b"), "back to watching after one relist");
    assert_eq!(src.list_calls(), 2, "merged requests list once");

    // A real 410 is a failure: the watcher relists only after its backoff (an hour here).
    src.expire_next_watch();
    src.disconnect_watches();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while w.stats.errors.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the rewatch was never answered 410");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(src.list_calls(), 2, "a 410 relist waits for the backoff");
    // A request during that backoff does not cut it short either.
    trigger.request();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(src.list_calls(), 2, "a request waits for a real failure's backoff");
}
