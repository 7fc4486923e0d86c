//! kcache informers over `KubeSource` with KEP-5866 shard selectors against
//! the simulator with the `ShardedListAndWatch` gate: disjoint ranges that
//! cover the hash space give caches that are pairwise disjoint and together
//! equal the server, through writes and a dropped connection; support
//! detection answers true with the gate on and false with it off.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kcache::informer::{Informer, InformerConfig};
use kcache::reflector::{Backoff, HASH_SPACE_END, KubeSource, ShardField, ShardRange, ShardSelector, SourceError, WatcherError};
use kcache_loadgen::podgen;
use kcache_loadgen::sim::{SimHandle, SimServer};
use serde_json::json;

fn informer_config() -> InformerConfig {
    let mut c = InformerConfig::default();
    c.watcher.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
    c.watcher.min_watch_timeout = Duration::from_secs(5);
    c.watcher.page_size = Some(100);
    c
}

/// `n` selectors over equal, disjoint ranges of `field`'s hash that cover the space.
fn shards(field: ShardField, n: u128) -> Vec<ShardSelector> {
    (0..n)
        .map(|i| {
            let start = u64::try_from(HASH_SPACE_END * i / n).expect("below 2^64");
            ShardSelector::new(field, vec![ShardRange { start, end: HASH_SPACE_END * (i + 1) / n }]).expect("valid")
        })
        .collect()
}

/// The server's pods: key -> (resourceVersion, uid).
fn server(sim: &SimHandle) -> BTreeMap<String, (String, String)> {
    sim.objects("pods", None)
        .expect("objects")
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            (
                format!("{}/{}", m["namespace"].as_str().expect("ns"), m["name"].as_str().expect("name")),
                (m["resourceVersion"].as_str().expect("rv").to_owned(), m["uid"].as_str().expect("uid").to_owned()),
            )
        })
        .collect()
}

fn cache(i: &Informer) -> BTreeMap<String, String> {
    i.store().list().iter().map(|o| (o.key(), o.resource_version().to_owned())).collect()
}

/// Waits until each cache holds exactly its shard of the server, then checks
/// the caches are pairwise disjoint and together the whole server.
async fn converge(sim: &SimHandle, informers: &[(ShardSelector, Informer)]) {
    let start = Instant::now();
    loop {
        let srv = server(sim);
        let want: Vec<BTreeMap<String, String>> = informers
            .iter()
            .map(|(sel, _)| srv.iter().filter(|(_, (_, uid))| sel.matches_value(uid)).map(|(k, (rv, _))| (k.clone(), rv.clone())).collect())
            .collect();
        let got: Vec<BTreeMap<String, String>> = informers.iter().map(|(_, i)| cache(i)).collect();
        if got == want {
            let mut union = BTreeSet::new();
            for part in &got {
                assert!(part.keys().all(|k| !union.contains(k)), "two caches hold the same object");
                union.extend(part.keys().cloned());
            }
            assert_eq!(union, srv.keys().cloned().collect::<BTreeSet<_>>(), "the caches together are the server");
            assert!(got.iter().all(|part| !part.is_empty()), "every shard holds some of 1,000+ pods");
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "caches did not converge: sizes {:?} want {:?}", got.iter().map(BTreeMap::len).collect::<Vec<_>>(), want.iter().map(BTreeMap::len).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_informers_partition_the_collection_through_writes_and_a_restart() {
    let sim = SimServer::builder().sharded_list_and_watch(true).bookmark_interval(Duration::from_millis(200)).start().await.expect("sim");
    podgen::load_pods(&sim, "a", 600, 1).expect("pods");
    podgen::load_pods(&sim, "b", 600, 2).expect("pods");
    let client = sim.client().expect("client");
    let informers: Vec<(ShardSelector, Informer)> = shards(ShardField::Uid, 3)
        .into_iter()
        .map(|sel| {
            let source = KubeSource::for_type::<Pod>(client.clone(), None).shard_selector(&sel);
            (sel, Informer::spawn(source, informer_config()).expect("informer"))
        })
        .collect();
    for (_, i) in &informers {
        assert!(i.wait_for_sync(Duration::from_secs(60)).await, "sync");
    }
    converge(&sim, &informers).await;

    for i in 0..150 {
        sim.create("pods", json!({"metadata": {"name": format!("new-{i:03}"), "namespace": "a"}})).expect("create");
    }
    for i in 0..100 {
        let name = format!("pod-{i:05}");
        sim.merge_patch("pods", "b", &name, &json!({"metadata": {"labels": {"touched": "yes"}}})).expect("patch");
        sim.delete("pods", "a", &name).expect("delete");
    }
    converge(&sim, &informers).await;

    // Every watch is dropped; the informers rewatch from their resourceVersion
    // with the selector and see what was written meanwhile.
    sim.restart();
    for i in 0..100 {
        sim.create("pods", json!({"metadata": {"name": format!("late-{i:03}"), "namespace": "b"}})).expect("create");
    }
    converge(&sim, &informers).await;
    // And relists: every watch answered 410 Expired, so each informer lists
    // again, with its selector, and replaces its cache.
    let lists_before: Vec<u64> = informers.iter().map(|(_, i)| i.stats().lists.load(Relaxed)).collect();
    sim.expire_every_watch(true);
    sim.restart();
    for i in 0..50 {
        sim.delete("pods", "b", &format!("late-{i:03}")).expect("delete");
    }
    let start = Instant::now();
    while informers.iter().zip(&lists_before).any(|((_, i), before)| i.stats().lists.load(Relaxed) <= *before) {
        assert!(start.elapsed() < Duration::from_secs(60), "every informer relists after the 410");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.expire_every_watch(false);
    converge(&sim, &informers).await;
    for (_, i) in &informers {
        i.shutdown();
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_shards_keep_each_namespace_whole() {
    let sim = SimServer::builder().sharded_list_and_watch(true).start().await.expect("sim");
    for ns in ["n0", "n1", "n2", "n3", "n4", "n5"] {
        podgen::load_pods(&sim, ns, 50, 3).expect("pods");
    }
    let client = sim.client().expect("client");
    let mut seen = BTreeMap::new();
    for (idx, sel) in shards(ShardField::Namespace, 2).iter().enumerate() {
        let informer = Informer::spawn(KubeSource::for_type::<Pod>(client.clone(), None).shard_selector(sel), informer_config()).expect("informer");
        assert!(informer.wait_for_sync(Duration::from_secs(60)).await, "sync");
        for o in informer.store().list() {
            let ns = o.key().split('/').next().expect("namespaced").to_owned();
            assert!(sel.matches_value(&ns));
            assert!(*seen.entry(ns).or_insert(idx) == idx, "a namespace is split between shards");
        }
        informer.shutdown();
    }
    assert_eq!(seen.len(), 6, "every namespace is in some shard");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_is_detected_from_the_servers_answer() {
    let sim = SimServer::builder().start().await.expect("sim");
    podgen::load_pods(&sim, "a", 10, 1).expect("pods");
    let client = sim.client().expect("client");
    let half = ShardSelector::new(ShardField::Uid, vec![ShardRange { start: 0, end: 1 << 63 }]).expect("valid");
    let plain = KubeSource::for_type::<Pod>(client.clone(), None);
    let sharded = KubeSource::for_type::<Pod>(client.clone(), None).shard_selector(&half);
    // The gate is off by default, as on kube-apiserver v1.36: the parameter is ignored.
    assert!(!plain.supports_shard_selector().await.expect("probe"));
    assert!(!sharded.supports_shard_selector().await.expect("probe"));
    sim.set_sharded_list_and_watch(true);
    assert!(plain.supports_shard_selector().await.expect("probe"));
    assert!(sharded.supports_shard_selector().await.expect("probe"));
    // A server with the gate refuses what it cannot parse, and the probe says so.
    let bad = KubeSource::for_type::<Pod>(client, None).shard_selector_expression("shardRange(object.metadata.uid, '0x0', '0x8')");
    match bad.supports_shard_selector().await {
        Err(SourceError::Api { code: 500, message, .. }) => assert!(message.starts_with("invalid shard selector: hexStart"), "{message}"),
        other => panic!("expected the server's 500, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_the_server_did_not_shard_is_refused_until_it_does() {
    let sim = SimServer::builder().start().await.expect("sim");
    podgen::load_pods(&sim, "a", 200, 1).expect("pods");
    let half = ShardSelector::new(ShardField::Uid, vec![ShardRange { start: 1 << 63, end: HASH_SPACE_END }]).expect("valid");
    let ignored = Arc::new(AtomicU64::new(0));
    let mut config = informer_config();
    let seen = ignored.clone();
    config.watcher.on_error = Some(Arc::new(move |e: &WatcherError| {
        if matches!(e, WatcherError::List(SourceError::ShardSelectorIgnored { .. })) {
            seen.fetch_add(1, Relaxed);
        }
    }));
    let source = KubeSource::for_type::<Pod>(sim.client().expect("client"), None).shard_selector(&half);
    let informer = Informer::spawn(source, config).expect("informer");
    let start = Instant::now();
    while ignored.load(Relaxed) < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "the ignored selector is reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!informer.has_synced(), "the whole collection is never taken for the shard");
    assert_eq!(informer.store().len(), 0);
    sim.set_sharded_list_and_watch(true);
    assert!(informer.wait_for_sync(Duration::from_secs(30)).await, "syncs once the server shards");
    let want: BTreeSet<String> =
        server(&sim).into_iter().filter(|(_, (_, uid))| half.matches_value(uid)).map(|(k, _)| k).collect();
    assert_eq!(cache(&informer).into_keys().collect::<BTreeSet<_>>(), want);
    informer.shutdown();
    sim.shutdown().await;
}
