//! A relist storm end to end: the simulator answers every watch with 410
//! Expired, and a kcache informer over HTTP must pace its LIST+WATCH requests
//! by its backoff, not by how fast it can loop.
//!
//! The figures these tests print are quoted in docs/TESTING.md ("Relist storm").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kcache::reflector::Backoff;
use kcache::informer::{Informer, InformerConfig};
use kcache::reflector::KubeSource;
use kcache::reflector::WatcherError;
use kcache_loadgen::podgen;
use kcache_loadgen::sim::{FaultRequest, Line, RawClient, SimHandle, SimServer, Stats};

/// 1,000 pods of about 4 KiB: two LIST pages of 500 each (the default page size).
const PODS: usize = 1_000;
const PAGES_PER_LIST: u64 = 2;

async fn synced_informer(config: InformerConfig) -> (SimHandle, Informer) {
    let sim = SimServer::builder().start().await.expect("sim starts");
    podgen::load_pods(&sim, "default", PODS, 7).expect("pods load");
    let source = KubeSource::for_type::<Pod>(sim.client().expect("client"), None);
    let informer = Informer::spawn(source, config).expect("informer starts");
    assert!(informer.wait_for_sync(Duration::from_secs(20)).await, "informer syncs");
    (sim, informer)
}

/// Turns on "every watch gets 410", drops the open watch, and counts the
/// LIST and WATCH requests the informer makes in `window`.
async fn storm(sim: &SimHandle, window: Duration) -> (u64, u64, Duration) {
    sim.expire_every_watch(true);
    let before: Stats = sim.stats();
    let start = Instant::now();
    sim.restart();
    tokio::time::sleep(window).await;
    let after = sim.stats();
    let took = start.elapsed();
    sim.expire_every_watch(false);
    (after.list - before.list, after.watch - before.watch, took)
}

/// Most relists a storm can make in `window` when every delay is as short as
/// `backoff` allows (jitter at its low end), counting the immediate first one.
fn most_relists(backoff: &Backoff, window: Duration) -> u64 {
    let low = 1.0 - backoff.jitter / 2.0;
    let (mut t, mut delay, mut relists) = (Duration::ZERO, backoff.initial, 0);
    loop {
        t += delay.min(backoff.max).mul_f64(low);
        if t > window {
            return relists;
        }
        relists += 1;
        delay = delay.mul_f64(backoff.factor).min(backoff.max);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watch_expiring_costs_requests_at_the_default_backoff_pace() {
    let mut config = InformerConfig::default();
    let backoff = config.watcher.backoff.clone();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let log = errors.clone();
    let t0 = Instant::now();
    config.watcher.on_error = Some(Arc::new(move |e: &WatcherError| {
        log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(format!("{:.2?} {e}", t0.elapsed()));
    }));
    assert_eq!((backoff.initial, backoff.max, backoff.factor), (Duration::from_millis(800), Duration::from_secs(30), 2.0));
    let (sim, informer) = synced_informer(config).await;
    let window = Duration::from_secs(10);
    let storm_start = t0.elapsed();
    let (lists, watches, took) = storm(&sim, window).await;
    let rate = (lists + watches) as f64 / took.as_secs_f64();
    println!("storm began at {storm_start:.2?}; errors reported (time since informer start):");
    for e in errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
        println!("  {e}");
    }
    let relists = most_relists(&backoff, window);
    println!(
        "relist storm, default backoff: {lists} LIST + {watches} WATCH requests in {took:.1?} = {rate:.2} requests/s \
         ({PODS} pods, {PAGES_PER_LIST} pages per list); backoff allows at most {relists} relists"
    );
    // One immediate rewatch after the restart (it gets the 410), then per relist
    // one list (its pages) and one watch.
    assert!(lists <= relists * PAGES_PER_LIST, "{lists} LIST requests, at most {relists} relists allowed");
    assert!(watches <= relists + 1, "{watches} WATCH requests, at most {relists} relists allowed");
    assert!(lists >= PAGES_PER_LIST && watches >= 2, "the informer keeps retrying: {lists} lists, {watches} watches");
    assert!(rate < 2.5, "{rate:.2} requests/s");
    assert!(informer.has_synced());
    assert_eq!(informer.store().len(), PODS, "the cache keeps its objects through the storm");

    // The fault cleared, the next relist's watch holds.
    let quiet = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut last = sim.stats();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = sim.stats();
        if now.watches_active > 0 && now.list == last.list && now.watch == last.watch {
            break;
        }
        last = now;
        assert!(tokio::time::Instant::now() < quiet, "requests did not stop after the fault was cleared");
    }
    informer.shutdown();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_backoff_the_same_storm_is_paced_only_by_the_cpu() {
    // What the watcher did before relists after 410 went through the backoff:
    // a successful list reset it and a 410 relisted at once.
    let mut config = InformerConfig::default();
    config.watcher.backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
    let (sim, informer) = synced_informer(config).await;
    let (lists, watches, took) = storm(&sim, Duration::from_secs(2)).await;
    let rate = (lists + watches) as f64 / took.as_secs_f64();
    println!(
        "relist storm, no backoff: {lists} LIST + {watches} WATCH requests in {took:.1?} = {rate:.0} requests/s ({PODS} pods)"
    );
    // The default backoff allows 3 relists (9 requests) in 10 s; without it the
    // loop runs as fast as lists of 1,000 pods decode on this machine.
    assert!(rate > 20.0, "{rate:.1} requests/s");
    informer.shutdown();
    sim.shutdown().await;
}

#[tokio::test]
async fn the_expire_every_watch_fault_is_switched_by_the_admin_endpoint() {
    let sim = SimServer::builder().start().await.expect("sim starts");
    podgen::load_pods(&sim, "default", 3, 1).expect("pods load");
    let mut admin = RawClient::connect(sim.addr()).await.expect("connect");
    let set = |on: bool| serde_json::to_vec(&FaultRequest { expire_every_watch: Some(on), ..FaultRequest::default() }).expect("json");
    let r = admin.request("POST", "/_sim/faults", &[("content-type", "application/json")], set(true)).await.expect("admin");
    assert_eq!(r.status, 200);
    let t = Duration::from_secs(10);
    let rv = sim.resource_version();
    // Every watch, from a current resourceVersion or from "0", gets one 410 ERROR event and ends.
    for from in [rv.to_string(), "0".to_owned()] {
        let path = format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={from}");
        let mut w = RawClient::stream(sim.addr(), &path, &[]).await.expect("watch");
        let e = w.until(t, |_| true).await.expect("one event");
        assert_eq!((e["type"].as_str(), e["object"]["code"].as_u64()), (Some("ERROR"), Some(410)), "{e}");
        assert_eq!(w.next_line(t).await, Line::End);
    }
    let r = admin.request("POST", "/_sim/faults", &[("content-type", "application/json")], set(false)).await.expect("admin");
    assert_eq!(r.status, 200);
    let path = format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}");
    let mut w = RawClient::stream(sim.addr(), &path, &[]).await.expect("watch");
    assert_eq!(w.next_line(Duration::from_millis(300)).await, Line::Timeout, "a healthy watch stays open");
    sim.shutdown().await;
}
