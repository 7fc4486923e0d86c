//! The simulator's watch-cache mode (`SimServer::watch_cache_lag`) over HTTP: a
//! `resourceVersion=0` read goes back in time, a not-older-than read waits for
//! the cache or answers 504 "Too large resource version", a consistent read is
//! always current, paging a cached list is exact; and why kcache's reflector
//! relists at its last resourceVersion with `NotOlderThan`, never at `"0"`.
//!
//! The lag and the 3 s block timeout run on the simulator's clock: the tests
//! move it with `advance_clock`, and slow it down (`clock_scale(0.1)`) so that
//! real time on a loaded machine neither catches the cache up nor reaches a
//! deadline while a test looks; the informer test alone runs on real time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kcache::informer::{Informer, InformerConfig};
use kcache::reflector::{Backoff, KubeSource};
use kcache::{Handler, Obj};
use kcache_loadgen::sim::{Line, RawClient, RawResponse, SimHandle, SimServer, WATCH_CACHE_BLOCK_TIMEOUT};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);
const NS: &str = "wc";

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": NS, "labels": {"app": "wc"}}})
}

fn create(sim: &SimHandle, name: &str) -> u64 {
    rv_of(&sim.create("pods", pod(name)).expect("create"))
}

fn touch(sim: &SimHandle, name: &str, value: &str) -> u64 {
    let patch = json!({"metadata": {"annotations": {"touched": value}}});
    rv_of(&sim.merge_patch("pods", NS, name, &patch).expect("patch"))
}

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().expect("resourceVersion").parse().expect("numeric resourceVersion")
}

async fn get(sim: &SimHandle, query: &str) -> RawResponse {
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    c.get(&format!("/api/v1/namespaces/{NS}/pods?{query}")).await.expect("list")
}

/// A list answer: its resourceVersion and `name -> resourceVersion` of its items.
fn listed(r: &RawResponse) -> (u64, BTreeMap<String, u64>) {
    assert_eq!(r.status, 200, "list failed: {}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let rv = v["metadata"]["resourceVersion"].as_str().expect("list resourceVersion").parse().expect("numeric");
    let items = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| (o["metadata"]["name"].as_str().expect("name").to_owned(), rv_of(o)))
        .collect();
    (rv, items)
}

async fn list(sim: &SimHandle, query: &str) -> (u64, BTreeMap<String, u64>) {
    listed(&get(sim, query).await)
}

/// The server's objects (from the store, not through the cache).
fn server_state(sim: &SimHandle) -> BTreeMap<String, u64> {
    sim.objects("pods", Some(NS))
        .expect("objects")
        .iter()
        .map(|o| (o["metadata"]["name"].as_str().expect("name").to_owned(), rv_of(o)))
        .collect()
}

#[tokio::test]
async fn a_resource_version_0_list_goes_back_in_time_until_the_lag_has_passed() {
    let lag = Duration::from_secs(10);
    let sim = SimServer::builder().clock_scale(0.1).watch_cache_lag(lag).start().await.expect("sim");
    let kept = create(&sim, "kept");
    let old_touched = create(&sim, "touched");
    let old_deleted = create(&sim, "deleted");
    sim.advance_clock(lag);
    let before = sim.resource_version();
    assert_eq!(sim.watch_cache_resource_version(), before, "writes a lag old are in the cache");
    let (rv, old) = list(&sim, "resourceVersion=0").await;
    assert_eq!(rv, before);
    assert_eq!(old, server_state(&sim));

    let new_rv = create(&sim, "new");
    let new_touched = touch(&sim, "touched", "yes");
    sim.delete("pods", NS, "deleted").expect("delete");
    let after = sim.resource_version();
    sim.advance_clock(lag / 2);

    // The cache still holds the state before the three writes.
    let (rv, cached) = list(&sim, "resourceVersion=0").await;
    assert_eq!(rv, before, "a rv=0 list answers at the cache's resourceVersion");
    assert_eq!(sim.watch_cache_resource_version(), before);
    let expected: BTreeMap<String, u64> =
        [("deleted", old_deleted), ("kept", kept), ("touched", old_touched)].map(|(n, rv)| (n.to_owned(), rv)).into();
    assert_eq!(cached, expected, "missing the new object, the old value of the update, the deleted object still there");
    let (rv, cached_match) = list(&sim, "resourceVersion=0&resourceVersionMatch=NotOlderThan").await;
    assert_eq!((rv, &cached_match), (before, &expected), "NotOlderThan 0 is any state too");

    // A consistent read is current whatever the cache holds.
    let (rv, current) = list(&sim, "").await;
    assert_eq!(rv, after);
    let expected_now: BTreeMap<String, u64> =
        [("kept", kept), ("new", new_rv), ("touched", new_touched)].map(|(n, rv)| (n.to_owned(), rv)).into();
    assert_eq!(current, expected_now);
    assert_eq!(current, server_state(&sim));

    // Once the lag has passed since the last write, the cache has caught up.
    sim.advance_clock(lag / 2);
    let (rv, caught_up) = list(&sim, "resourceVersion=0").await;
    assert_eq!((rv, caught_up), (after, expected_now));

    // Switching the lag off makes every read current again.
    create(&sim, "later");
    sim.set_watch_cache_lag(None);
    let (rv, items) = list(&sim, "resourceVersion=0").await;
    assert_eq!((rv, items), (sim.resource_version(), server_state(&sim)));
    sim.shutdown().await;
}

/// `(type, name, resourceVersion)` of the events of a watch, until `n` arrived.
async fn events(sim: &SimHandle, query: &str, n: usize) -> Vec<(String, String, u64)> {
    let mut s = RawClient::stream(sim.addr(), &format!("/api/v1/namespaces/{NS}/pods?watch=true&{query}"), &[])
        .await
        .expect("watch");
    assert_eq!(s.status, 200);
    let mut out = Vec::new();
    while out.len() < n {
        match s.next_line(T).await {
            Line::Line(l) => {
                let v: Value = serde_json::from_slice(&l).expect("json event");
                let ty = v["type"].as_str().expect("type").to_owned();
                if ty == "BOOKMARK" {
                    continue;
                }
                let name = v["object"]["metadata"]["name"].as_str().expect("name").to_owned();
                out.push((ty, name, rv_of(&v["object"])));
            }
            other => panic!("watch ended after {out:?}: {other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn a_resource_version_0_watch_starts_from_the_cache_then_sends_what_it_missed() {
    let lag = Duration::from_secs(10);
    let sim = SimServer::builder().clock_scale(0.1).watch_cache_lag(lag).start().await.expect("sim");
    let a = create(&sim, "a");
    let b = create(&sim, "b");
    sim.advance_clock(lag);
    let c = create(&sim, "c");
    let a2 = touch(&sim, "a", "2");
    sim.delete("pods", NS, "b").expect("delete");
    let b_gone = sim.resource_version();
    sim.advance_clock(lag / 2);

    let expected: Vec<(String, String, u64)> = [
        ("ADDED", "a", a),
        ("ADDED", "b", b),
        ("ADDED", "c", c),
        ("MODIFIED", "a", a2),
        ("DELETED", "b", b_gone),
    ]
    .map(|(t, n, rv)| (t.to_owned(), n.to_owned(), rv))
    .into();
    for query in ["resourceVersion=0", "resourceVersion="] {
        assert_eq!(events(&sim, query, 5).await, expected, "watch with {query}: the cache's state, then every later event");
    }
    // From "0" without initial events: every event after the cache's resourceVersion.
    assert_eq!(events(&sim, "resourceVersion=0&sendInitialEvents=false", 3).await, expected[2..]);
    // A watch-list (sendInitialEvents=true from "") is a consistent read.
    let streamed = events(&sim, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", 2).await;
    assert_eq!(streamed, [("ADDED".to_owned(), "a".to_owned(), a2), ("ADDED".to_owned(), "c".to_owned(), c)]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_not_older_than_read_waits_for_the_cache_to_reach_it() {
    // One real second is 0.1 s of the simulator's clock: the 3 s block timeout
    // is 30 s of real time, so only the clock moves below decide the answers.
    let lag = Duration::from_secs(10);
    let sim = SimServer::builder().clock_scale(0.1).watch_cache_lag(lag).start().await.expect("sim");
    for legacy in [false, true] {
        let x = create(&sim, &format!("x-{legacy}"));
        assert!(sim.watch_cache_resource_version() < x);
        // A legacy resourceVersion without a match and without a limit is not-older-than too.
        let query = if legacy {
            format!("resourceVersion={x}")
        } else {
            format!("resourceVersion={x}&resourceVersionMatch=NotOlderThan")
        };
        let addr = sim.addr();
        let path = format!("/api/v1/namespaces/{NS}/pods?{query}");
        let waiting = tokio::spawn(async move { RawClient::connect(addr).await.expect("connect").get(&path).await.expect("list") });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "{query}: answered before the cache reached {x}");
        // A rv=0 read meanwhile answers at once, from the old state.
        let (rv, items) = list(&sim, "resourceVersion=0").await;
        assert!(rv < x && !items.contains_key(&format!("x-{legacy}")), "rv=0 while waiting: {rv} {items:?}");
        // A consistent read does not wait either.
        let (rv, items) = list(&sim, "").await;
        assert_eq!((rv, items), (sim.resource_version(), server_state(&sim)));

        sim.advance_clock(lag);
        let r = tokio::time::timeout(T, waiting).await.expect("answered once the cache caught up").expect("task");
        let (rv, items) = listed(&r);
        assert!(rv >= x, "{query}: answered at {rv}, older than {x}");
        assert_eq!(items, server_state(&sim));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_not_older_than_read_the_cache_never_reaches_answers_504_after_the_block_timeout() {
    let sim = SimServer::builder().clock_scale(0.1).watch_cache_lag(Duration::from_secs(3600)).start().await.expect("sim");
    create(&sim, "x");
    let wanted = sim.resource_version();
    let cache_rv = sim.watch_cache_resource_version();
    assert!(cache_rv < wanted);

    let addr = sim.addr();
    let path = format!("/api/v1/namespaces/{NS}/pods?resourceVersion={wanted}&resourceVersionMatch=NotOlderThan&limit=100");
    let started = Instant::now();
    let waiting = tokio::spawn(async move { RawClient::connect(addr).await.expect("connect").get(&path).await.expect("list") });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "answered before the block timeout");
    sim.advance_clock(WATCH_CACHE_BLOCK_TIMEOUT);
    let r = tokio::time::timeout(T, waiting).await.expect("answered after the block timeout").expect("task");
    eprintln!("504 after {:?} of real time", started.elapsed());

    // storage/errors.go NewTooLargeResourceVersionError, as the real server sends it.
    assert_eq!(r.status, 504);
    let status = r.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "Timeout");
    assert_eq!(status["code"], 504);
    assert_eq!(status["message"], format!("Timeout: Too large resource version: {wanted}, current: {cache_rv}"));
    assert_eq!(status["details"]["causes"], json!([{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]));
    assert_eq!(status["details"]["retryAfterSeconds"], 1);

    // writers.go `ErrorNegotiated` copies retryAfterSeconds into Retry-After.
    assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));

    // kube-client reads it as an API error, the one kcache's reflector answers
    // with a consistent read. (Its default retry layer, RetryPolicy::server_retry,
    // would retry a 504 up to 15 times first: off here.)
    let mut config = kube::Config::new(sim.url().parse().expect("url"));
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("client");
    let api: kube::Api<Pod> = kube::Api::namespaced(client, NS);
    let lp = kube::api::ListParams::default().at(&wanted.to_string()).matching(kube::api::VersionMatch::NotOlderThan);
    let kube_list = tokio::spawn(async move { api.list(&lp).await });
    // The request reaches the server at some point: keep the clock moving
    // until it has waited out its block timeout.
    let asked = Instant::now();
    while !kube_list.is_finished() {
        assert!(asked.elapsed() < T, "kube-client's list was not answered");
        sim.advance_clock(Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match kube_list.await.expect("task") {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 504);
            assert_eq!(s.reason, "Timeout");
        }
        other => panic!("expected 504, got {other:?}"),
    }

    // "" is always current.
    let (rv, items) = list(&sim, "").await;
    assert_eq!((rv, items), (wanted, server_state(&sim)));
    sim.shutdown().await;
}

/// Pages a list with `limit`, writing and moving the clock between pages;
/// returns each page's resourceVersion and the names in order.
async fn page_through(sim: &SimHandle, first: &str, limit: usize) -> (Vec<u64>, Vec<String>) {
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    let mut query = format!("{first}&limit={limit}");
    let (mut rvs, mut names) = (Vec::new(), Vec::new());
    for page in 0.. {
        let r = c.get(&format!("/api/v1/namespaces/{NS}/pods?{query}")).await.expect("page");
        assert_eq!(r.status, 200, "page {page}: {}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        rvs.push(v["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("numeric"));
        let items = v["items"].as_array().expect("items");
        assert!(items.len() <= limit);
        names.extend(items.iter().map(|o| o["metadata"]["name"].as_str().expect("name").to_owned()));
        // The state moves on and the cache catches up between pages.
        create(sim, &format!("during-{first}-{page}"));
        sim.delete("pods", NS, &names[names.len() - 1]).expect("delete a listed object");
        sim.advance_clock(Duration::from_secs(11));
        match v["metadata"]["continue"].as_str() {
            Some(token) if !token.is_empty() => query = format!("continue={token}&limit={limit}"),
            _ => break,
        }
    }
    (rvs, names)
}

#[tokio::test]
async fn paging_a_cached_list_returns_every_object_once() {
    let lag = Duration::from_secs(10);
    let sim = SimServer::builder().history(100_000).clock_scale(0.1).watch_cache_lag(lag).start().await.expect("sim");
    for i in 0..40 {
        create(&sim, &format!("p{i:02}"));
    }
    sim.advance_clock(lag);
    for i in 40..50 {
        create(&sim, &format!("p{i:02}"));
    }
    for i in 0..5 {
        sim.delete("pods", NS, &format!("p{i:02}")).expect("delete");
        touch(&sim, &format!("p{:02}", i + 10), "late");
    }
    let newest = sim.resource_version();
    let cache_rv = sim.watch_cache_resource_version();
    assert!(cache_rv < newest);

    let (rv, whole) = list(&sim, "resourceVersion=0").await;
    assert_eq!(rv, cache_rv);
    assert_eq!(whole.len(), 40, "the cache's state: p00..p39");
    let (_, exact) = list(&sim, &format!("resourceVersion={cache_rv}&resourceVersionMatch=Exact")).await;
    assert_eq!(whole, exact, "the cache's state is the exact state at its resourceVersion");

    let (rvs, names) = page_through(&sim, "resourceVersion=0", 7).await;
    assert!(rvs.len() > 1, "paged");
    assert!(rvs.iter().all(|&r| r == cache_rv), "every page at the first page's resourceVersion: {rvs:?}");
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "an object listed twice: {names:?}");
    assert_eq!(names, whole.keys().cloned().collect::<Vec<_>>(), "every object once, in key order");

    // kcache's relist: NotOlderThan its last resourceVersion, paged.
    let target = sim.resource_version();
    sim.advance_clock(lag);
    let snapshot = sim.watch_cache_resource_version();
    assert!(snapshot >= target);
    let (_, expected) = list(&sim, &format!("resourceVersion={snapshot}&resourceVersionMatch=Exact")).await;
    let (rvs, names) = page_through(&sim, &format!("resourceVersion={target}&resourceVersionMatch=NotOlderThan"), 6).await;
    assert!(rvs.len() > 1, "paged");
    assert!(rvs.iter().all(|&r| r == snapshot), "every page at the first page's resourceVersion: {rvs:?}");
    assert_eq!(names, expected.keys().cloned().collect::<Vec<_>>(), "every object once, in key order");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_naive_reflector_relisting_at_resource_version_0_goes_back_in_time() {
    let lag = Duration::from_secs(10);
    let sim = SimServer::builder().clock_scale(0.1).watch_cache_lag(lag).start().await.expect("sim");
    for name in ["a", "b", "c"] {
        create(&sim, name);
    }
    sim.advance_clock(lag);

    // What a reflector holds after its watch delivered three more writes.
    let mut seen: BTreeMap<String, u64> = list(&sim, "").await.1;
    let from = sim.resource_version();
    let added = create(&sim, "added");
    let updated = touch(&sim, "a", "new");
    sim.delete("pods", NS, "b").expect("delete");
    let delivered = events(&sim, &format!("resourceVersion={from}"), 3).await;
    let last_seen = delivered.last().expect("events").2;
    for (ty, name, rv) in delivered {
        if ty == "DELETED" {
            seen.remove(&name);
        } else {
            seen.insert(name, rv);
        }
    }
    assert_eq!(seen, server_state(&sim));
    sim.advance_clock(lag / 2);

    // The watch breaks; a reflector that relists at "0" replaces its state
    // with an answer older than what it already delivered.
    let (rv, relisted) = list(&sim, "resourceVersion=0").await;
    assert!(rv < last_seen, "a rv=0 relist answered at {rv}, not older than {last_seen}: the cache does not lag");
    let went_back: Vec<&String> = relisted.iter().filter(|(k, rv)| seen.get(*k).is_some_and(|s| *rv < s)).map(|(k, _)| k).collect();
    let falsely_deleted: Vec<&String> = seen.keys().filter(|k| !relisted.contains_key(*k)).collect();
    let resurrected: Vec<&String> = relisted.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert_eq!(went_back, ["a"], "a's update {updated} undone");
    assert_eq!(falsely_deleted, ["added"], "added at {added}, exists on the server");
    assert_eq!(resurrected, ["b"], "deleted on the server, back in the relist");

    // kcache's rule: NotOlderThan the last resourceVersion seen waits for the
    // cache and never answers older than what was delivered.
    let addr = sim.addr();
    let path = format!("/api/v1/namespaces/{NS}/pods?resourceVersion={last_seen}&resourceVersionMatch=NotOlderThan&limit=500");
    let relist = tokio::spawn(async move { RawClient::connect(addr).await.expect("connect").get(&path).await.expect("list") });
    sim.advance_clock(lag / 2);
    let (rv, relisted) = listed(&tokio::time::timeout(T, relist).await.expect("answered").expect("task"));
    assert!(rv >= last_seen);
    assert_eq!(relisted, seen);
    sim.shutdown().await;
}

/// Records, per key, what handlers saw: `(kind, resourceVersion)`.
#[derive(Default)]
struct Recorder {
    per_key: Mutex<HashMap<String, Vec<(char, u64)>>>,
}

impl Recorder {
    fn push(&self, obj: &Obj, kind: char) {
        let rv = obj.resource_version().parse().expect("numeric resourceVersion");
        self.per_key.lock().expect("lock").entry(obj.name().to_owned()).or_default().push((kind, rv));
    }
}

impl Handler for Recorder {
    fn on_add(&self, obj: &Obj, _initial: bool) {
        self.push(obj, 'A');
    }
    fn on_update(&self, _old: &Obj, new: &Obj) {
        self.push(new, 'U');
    }
    fn on_delete(&self, obj: &Obj, _unknown: bool) {
        self.push(obj, 'D');
    }
}

fn cache_state(i: &Informer) -> BTreeMap<String, u64> {
    i.store()
        .list()
        .iter()
        .map(|o| (o.name().to_owned(), o.resource_version().parse().expect("numeric")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kcache_informer_on_a_lagging_watch_cache_never_goes_back_in_time() {
    // The cache trails the writes by 300 ms of real time; every relist the
    // faults force asks it for a state it may not have reached yet.
    let lag = Duration::from_millis(300);
    let sim = SimServer::builder()
        .history(5_000)
        .bookmark_interval(Duration::from_millis(100))
        .watch_cache_lag(lag)
        .start()
        .await
        .expect("sim");
    // Objects the test never deletes: none may ever reach a handler as deleted.
    let stable: Vec<String> = (0..30).map(|i| format!("stable-{i:02}")).collect();
    for name in &stable {
        create(&sim, name);
    }
    let mut config = InformerConfig::default();
    config.watcher.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
    config.watcher.min_watch_timeout = Duration::from_secs(5);
    config.watcher.page_size = Some(7);
    let informer = Informer::spawn(KubeSource::for_type::<Pod>(sim.client().expect("client"), Some(NS)), config).expect("informer");
    let recorder = Arc::new(Recorder::default());
    informer.add_handler(recorder.clone()).expect("handler");
    assert!(informer.wait_for_sync(Duration::from_secs(30)).await, "sync");

    let mut lagged = 0;
    let mut next = 0;
    let mut doomed: Vec<String> = Vec::new();
    for step in 0..240 {
        let name = &stable[step % stable.len()];
        touch(&sim, name, &step.to_string());
        if step % 3 == 0 {
            let name = format!("doomed-{next:03}");
            next += 1;
            create(&sim, &name);
            doomed.push(name);
        }
        if step % 5 == 0 && doomed.len() > 2 {
            let name = doomed.remove(0);
            sim.delete("pods", NS, &name).expect("delete");
        }
        match step % 80 {
            // Every new watch answers 410 and the open one is dropped: each
            // reconnect is a relist at the last resourceVersion, NotOlderThan,
            // from the lagging cache.
            10 => {
                sim.expire_every_watch(true);
                sim.restart();
            }
            30 => sim.expire_every_watch(false),
            40 => sim.close_watches_every(5),
            60 => {
                sim.close_watches_every(0);
                sim.restart();
            }
            70 => {
                sim.expire_history();
                sim.restart();
            }
            _ => {}
        }
        if sim.watch_cache_resource_version() < sim.resource_version() {
            lagged += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.expire_every_watch(false);
    sim.close_watches_every(0);
    assert!(lagged > 0, "the cache never lagged the writes");

    let started = Instant::now();
    while cache_state(&informer) != server_state(&sim) {
        assert!(started.elapsed() < Duration::from_secs(60), "the informer's cache did not converge to the server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = informer.stats();
    let relists = stats.relists.load(Relaxed);
    eprintln!(
        "relists {relists}, watch restarts {}, lagging checks {lagged}/240, converged {:?} after the last write",
        stats.watch_restarts.load(Relaxed),
        started.elapsed()
    );
    assert!(relists > 0, "the faults forced no relist");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = server_state(&sim);
    {
        let per_key = recorder.per_key.lock().expect("lock");
        for (key, seq) in per_key.iter() {
            let mut last_rv = 0;
            let mut present = false;
            for &(kind, rv) in seq {
                assert!(rv >= last_rv, "{key}: resourceVersion went back: {seq:?}");
                last_rv = rv;
                match kind {
                    'A' => {
                        assert!(!present, "{key}: added while present: {seq:?}");
                        present = true;
                    }
                    'U' => assert!(present, "{key}: updated while absent: {seq:?}"),
                    _ => {
                        assert!(present, "{key}: deleted while absent: {seq:?}");
                        assert!(!key.starts_with("stable-"), "{key} exists on the server but was delivered as deleted: {seq:?}");
                        present = false;
                    }
                }
            }
            // Names are never reused: an add after a delete is a false delete.
            let deletes = seq.iter().filter(|(k, _)| *k == 'D').count();
            assert!(deletes <= 1 && (deletes == 0 || seq.last().is_some_and(|(k, _)| *k == 'D')), "{key}: {seq:?}");
            assert_eq!(present, server.contains_key(key), "{key}: handlers' last view is not the server's: {seq:?}");
            if let Some(rv) = server.get(key) {
                assert_eq!(last_rv, *rv, "{key}: handlers' last state is not the server's");
            }
        }
        for key in server.keys() {
            assert!(per_key.contains_key(key), "{key} never reached a handler");
        }
    }
    informer.shutdown();
    sim.shutdown().await;
}
