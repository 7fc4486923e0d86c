//! The watcher's relist trigger: a requested relist drops the open watch and lists
//! at once, with no backoff, while real failures still wait for theirs; a scoped
//! request relists only its scope when the sink and source can, else everything.

use std::sync::Arc;
use std::time::Duration;

use kcache::reflector::{Backoff, Event, EventSink, RelistScope, RelistTrigger, ShardField, ShardRange, ShardSelector, Watcher, WatcherConfig, WatcherStats};
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
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = move |e: Event| {
        let _ = tx.send(e);
    };
    start_with(src, trigger, sink, rx)
}

fn start_with(src: &MemorySource, trigger: &RelistTrigger, mut sink: impl EventSink + 'static, rx: mpsc::UnboundedReceiver<Event>) -> Running {
    let config = WatcherConfig { backoff: never_backoff(), relist_trigger: Some(trigger.clone()), ..WatcherConfig::default() };
    let (stop, stop_rx) = watch::channel(false);
    let watcher = Watcher::new(src.clone(), Decoder::new(DecoderConfig::default()), config);
    let stats = watcher.stats();
    tokio::spawn(async move {
        watcher.run(&mut sink, stop_rx).await;
    });
    Running { rx, _stop: stop, stats }
}

/// A sink that takes scoped lists; an abandoned list shows as a `Bookmark("aborted")`.
struct ScopedSink(mpsc::UnboundedSender<Event>);

impl EventSink for ScopedSink {
    fn event(&mut self, event: Event) {
        let _ = self.0.send(event);
    }
    fn init_aborted(&mut self) {
        let _ = self.0.send(Event::Bookmark("aborted".to_owned()));
    }
    fn begin_scoped_list(&mut self, _: Arc<RelistScope>) -> bool {
        true
    }
}

fn scoped_start(src: &MemorySource, trigger: &RelistTrigger) -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    start_with(src, trigger, ScopedSink(tx), rx)
}

fn half() -> ShardSelector {
    ShardSelector::new(ShardField::Uid, vec![ShardRange { start: 0, end: 1 << 63 }]).expect("valid")
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

fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_scoped_request_relists_everything_for_a_sink_without_scoped_lists() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a"));
    let trigger = RelistTrigger::new();
    let mut w = start(&src, &trigger);
    assert_eq!(w.list().await, ["a"]);
    w.wait_watching(&src, 1).await;
    trigger.request_scoped(RelistScope::new(Some(half()), |_| true));
    assert_eq!(w.list().await, ["a"], "a whole list");
    // Counted as the scoped attempt and the whole list that replaced it.
    assert_eq!((count(&w.stats.requested_relists), count(&w.stats.scoped_relists), count(&w.stats.errors)), (2, 0, 0));
    assert_eq!(src.list_calls(), 2);
}

#[tokio::test]
async fn a_scoped_request_that_lists_nothing_replaces_at_the_watchs_version_without_a_list() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a"));
    let trigger = RelistTrigger::new();
    let mut w = scoped_start(&src, &trigger);
    assert_eq!(w.list().await, ["a"]);
    w.wait_watching(&src, 1).await;
    src.apply(pod("b"));
    let seen = match w.next().await {
        Event::Apply(o) if o.name() == "b" => o.resource_version().to_owned(),
        other => panic!("unexpected {other:?}"),
    };
    // Only objects are dropped: an empty scoped list at the version the watch reached.
    trigger.request_scoped(RelistScope::new(None, |o| o.name() == "a"));
    assert!(matches!(w.next().await, Event::Init));
    match w.next().await {
        Event::InitDone { resource_version } => assert_eq!(resource_version, seen, "the scope is replaced at the watch's version"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(src.list_calls(), 1, "nothing was listed");
    assert_eq!((count(&w.stats.requested_relists), count(&w.stats.scoped_relists), count(&w.stats.errors)), (1, 1, 0));
    // It watches on from that version: the next change arrives, nothing is replayed.
    w.wait_watching(&src, 2).await;
    src.apply(pod("c"));
    assert!(matches!(w.next().await, Event::Apply(o) if o.name() == "c"));
}

#[tokio::test]
async fn a_scoped_request_falls_back_to_a_whole_relist_when_the_source_cannot_list_a_slice() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a"));
    let trigger = RelistTrigger::new();
    let mut w = scoped_start(&src, &trigger);
    assert_eq!(w.list().await, ["a"]);
    w.wait_watching(&src, 1).await;
    trigger.request_scoped(RelistScope::new(Some(half()), |_| true));
    // The scoped list is abandoned before any object, then the whole list follows at once.
    assert!(matches!(w.rx.recv().await, Some(Event::Init)));
    assert!(matches!(w.rx.recv().await, Some(Event::Bookmark(b)) if b == "aborted"));
    assert_eq!(w.list().await, ["a"]);
    assert_eq!((count(&w.stats.scoped_relists), count(&w.stats.errors)), (0, 0));
    assert_eq!(src.list_calls(), 2);
}

#[tokio::test]
async fn a_scoped_request_made_while_another_is_pending_is_a_whole_relist() {
    let src = MemorySource::new("Pod");
    src.apply(pod("a"));
    let trigger = RelistTrigger::new();
    let mut w = scoped_start(&src, &trigger);
    assert_eq!(w.list().await, ["a"]);
    // Neither is taken before the watch opens: both are served by one whole list.
    trigger.request_scoped(RelistScope::new(None, |_| true));
    trigger.request_scoped(RelistScope::new(None, |_| true));
    let names = w.list().await;
    assert_eq!(names, ["a"], "a whole list, not an empty scoped one");
    assert_eq!(count(&w.stats.scoped_relists), 0);
}
