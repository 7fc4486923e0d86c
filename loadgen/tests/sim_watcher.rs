//! `kube::runtime::watcher` against the simulated API server: initial list, live
//! events, 410 recovery, bookmarks and streaming lists.
//!
//! These run on the current-thread runtime on purpose: between two synchronous
//! calls on the sim handle nothing else runs, so a test can restart the server
//! and expire history before the watcher reconnects.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kcache_loadgen::podgen::{self, PodGen};
use kcache_loadgen::sim::{SimHandle, SimServer};
use kube::Api;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

type Events = std::pin::Pin<Box<dyn Stream<Item = watcher::Result<Event<Pod>>> + Send>>;

fn watch(sim: &SimHandle, ns: &str, cfg: watcher::Config) -> Events {
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), ns);
    watcher::watcher(api, cfg).boxed()
}

/// A client-side view rebuilt from watcher events, as a reflector would.
#[derive(Default)]
struct View {
    objects: BTreeMap<String, String>,
    buffer: Option<BTreeMap<String, String>>,
    inits_done: usize,
    errors: Vec<String>,
    codes: Vec<u16>,
}

fn name_rv(p: &Pod) -> (String, String) {
    (
        p.metadata.name.clone().unwrap_or_default(),
        p.metadata.resource_version.clone().unwrap_or_default(),
    )
}

impl View {
    fn apply(&mut self, e: watcher::Result<Event<Pod>>) -> Option<Event<Pod>> {
        match e {
            Ok(ev) => {
                match &ev {
                    Event::Init => self.buffer = Some(BTreeMap::new()),
                    Event::InitApply(p) => {
                        let (n, rv) = name_rv(p);
                        self.buffer.get_or_insert_default().insert(n, rv);
                    }
                    Event::InitDone => {
                        self.objects = self.buffer.take().unwrap_or_default();
                        self.inits_done += 1;
                    }
                    Event::Apply(p) => {
                        let (n, rv) = name_rv(p);
                        self.objects.insert(n, rv);
                    }
                    Event::Delete(p) => {
                        self.objects.remove(&name_rv(p).0);
                    }
                }
                Some(ev)
            }
            Err(e) => {
                if let watcher::Error::WatchError(s) = &e {
                    self.codes.push(s.code);
                }
                self.errors.push(e.to_string());
                None
            }
        }
    }

    async fn until(
        &mut self,
        s: &mut Events,
        mut pred: impl FnMut(&View, Option<&Event<Pod>>) -> bool,
    ) {
        tokio::time::timeout(T, async {
            while let Some(e) = s.next().await {
                let ev = self.apply(e);
                if pred(self, ev.as_ref()) {
                    return;
                }
            }
            panic!("watcher stream ended");
        })
        .await
        .expect("condition reached within the timeout");
    }
}

fn server_view(sim: &SimHandle, ns: &str) -> BTreeMap<String, String> {
    sim.objects("pods", Some(ns))
        .expect("pods")
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                p["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn watcher_lists_then_sees_create_update_and_delete() {
    let sim = SimServer::builder().start().await.expect("sim");
    podgen::load_pods(&sim, "w", 5, 1).expect("load");
    let mut s = watch(&sim, "w", watcher::Config::default());
    let mut v = View::default();
    v.until(&mut s, |v, _| v.inits_done == 1).await;
    assert_eq!(v.objects, server_view(&sim, "w"));

    sim.create(
        "pods",
        json!({"metadata": {"name": "new", "namespace": "w"}, "spec": {"containers": []}}),
    )
    .expect("create");
    v.until(
        &mut s,
        |_, e| matches!(e, Some(Event::Apply(p)) if p.metadata.name.as_deref() == Some("new")),
    )
    .await;
    sim.merge_patch(
        "pods",
        "w",
        "new",
        &json!({"metadata": {"labels": {"x": "1"}}}),
    )
    .expect("patch");
    v.until(&mut s, |_, e| {
        matches!(e, Some(Event::Apply(p)) if p.metadata.labels.as_ref().is_some_and(|l| l.contains_key("x")))
    })
    .await;
    sim.delete("pods", "w", &PodGen::name(0)).expect("delete");
    v.until(&mut s, |_, e| matches!(e, Some(Event::Delete(p)) if p.metadata.name.as_deref() == Some("pod-00000"))).await;
    assert_eq!(v.objects, server_view(&sim, "w"));
    assert!(v.errors.is_empty(), "{:?}", v.errors);
}

#[tokio::test]
async fn watcher_relists_after_a_forced_410_and_ends_consistent() {
    let sim = SimServer::builder().start().await.expect("sim");
    podgen::load_pods(&sim, "r", 20, 2).expect("load");
    let mut s = watch(&sim, "r", watcher::Config::default());
    let mut v = View::default();
    v.until(&mut s, |v, _| v.inits_done == 1).await;
    let lists_before = sim.stats().list;

    // Drop the watch, change the data and expire history before it reconnects.
    sim.restart();
    for i in 0..5 {
        sim.delete("pods", "r", &PodGen::name(i)).expect("delete");
    }
    sim.create(
        "pods",
        json!({"metadata": {"name": "after", "namespace": "r"}}),
    )
    .expect("create");
    sim.merge_patch(
        "pods",
        "r",
        &PodGen::name(10),
        &json!({"metadata": {"labels": {"changed": "yes"}}}),
    )
    .expect("patch");
    sim.expire_history();

    v.until(&mut s, |v, _| v.inits_done == 2).await;
    assert!(
        v.codes.contains(&410),
        "the rewatch got 410 Expired: {:?}",
        v.errors
    );
    assert!(sim.stats().list > lists_before, "the watcher relisted");
    assert_eq!(v.objects, server_view(&sim, "r"));
    assert_eq!(v.objects.len(), 16);
}

#[tokio::test]
async fn bookmarks_advance_the_watch_so_a_reconnect_needs_no_relist() {
    // A tiny history: without bookmarks the watcher's RV would fall out of it.
    let sim = SimServer::builder()
        .history(20)
        .bookmark_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("sim");
    podgen::load_pods(&sim, "quiet", 3, 3).expect("load");
    let mut s = watch(&sim, "quiet", watcher::Config::default());
    let mut v = View::default();
    v.until(&mut s, |v, _| v.inits_done == 1).await;

    // 100 writes elsewhere: the quiet namespace sees no event, only bookmarks.
    podgen::load_pods(&sim, "busy", 100, 4).expect("busy");
    let before = sim.stats().bookmarks_sent;
    // Poll the watcher (it swallows bookmarks) until a few bookmarks went out.
    let deadline = tokio::time::Instant::now() + T;
    while sim.stats().bookmarks_sent < before + 3 && tokio::time::Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(30), s.next()).await;
    }
    assert!(sim.stats().bookmarks_sent >= before + 3);
    let lists = sim.stats().list;

    sim.restart();
    sim.create(
        "pods",
        json!({"metadata": {"name": "late", "namespace": "quiet"}}),
    )
    .expect("create");
    v.until(
        &mut s,
        |_, e| matches!(e, Some(Event::Apply(p)) if p.metadata.name.as_deref() == Some("late")),
    )
    .await;
    assert_eq!(
        sim.stats().list,
        lists,
        "no relist: the bookmark RV was still in history"
    );
    assert!(!v.codes.contains(&410));
    assert_eq!(v.inits_done, 1);
    assert_eq!(v.objects, server_view(&sim, "quiet"));
}

#[tokio::test]
async fn streaming_list_mode_gets_init_done_after_the_initial_events_end_bookmark() {
    let sim = SimServer::builder().start().await.expect("sim");
    podgen::load_pods(&sim, "sl", 40, 5).expect("load");
    let mut s = watch(&sim, "sl", watcher::Config::default().streaming_lists());
    let mut v = View::default();
    let mut init_applies = 0;
    v.until(&mut s, |v, e| {
        if matches!(e, Some(Event::InitApply(_))) {
            init_applies += 1;
        }
        v.inits_done == 1
    })
    .await;
    assert_eq!(init_applies, 40);
    assert_eq!(v.objects, server_view(&sim, "sl"));
    assert_eq!(sim.stats().list, 0, "streaming lists use no LIST request");

    sim.create(
        "pods",
        json!({"metadata": {"name": "live", "namespace": "sl"}}),
    )
    .expect("create");
    v.until(
        &mut s,
        |_, e| matches!(e, Some(Event::Apply(p)) if p.metadata.name.as_deref() == Some("live")),
    )
    .await;
    assert_eq!(v.objects.len(), 41);
}
