//! Moving between slices and members against the simulator: a `ShardedInformer`
//! relists at once when its ranges change (through the watcher's relist trigger, not
//! a 410 and its backoff), and lists only the ranges it gained (a whole relist when
//! that exact read is answered 410), a ring's dead Leases are deleted while live ones
//! are never, and `KeyController::shard` splits keys between replicas as
//! `Controller::shard` does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kcache::controller::{Action, KeyController, ReconcileKey, kind_of};
use kcache::fifo::Handler;
use kcache::informer::{Informer, InformerConfig};
use kcache::lease::{LeaseClient, LeaseError};
use kcache::reflector::{Backoff, KubeSource};
use kcache::shard::{MembershipConfig, RING_LABEL, ShardBy, ShardMembership, ShardedInformer, Timing, fnv1a64};
use kcache_loadgen::sim::{SimHandle, SimServer};
use kcache::{Obj, reflector::WatcherStats};
use serde_json::json;

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(90);
const NS: &str = "takeover";

fn timing() -> Timing {
    Timing { lease_duration: Duration::from_secs(2), renew_deadline: Duration::from_millis(1200), retry_period: Duration::from_millis(250) }
}

async fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < T, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn member(sim: &SimHandle, ring: &str, name: &str, gc_after: Option<u32>) -> ShardMembership {
    let client = sim.client().expect("client");
    let config = MembershipConfig::new(ring, name).timing(timing()).lease_gc_after(gc_after);
    ShardMembership::start(LeaseClient::new(client, NS), config).expect("valid config")
}

async fn members_are(members: &[&ShardMembership], expected: &[&str]) {
    eventually(&format!("every replica sees {expected:?}"), || members.iter().all(|m| m.members() == expected)).await;
}

/// name -> resourceVersion of the server's config maps whose uid hash `m` owns.
fn slice(sim: &SimHandle, m: &ShardMembership) -> BTreeMap<String, String> {
    let ranges = m.ranges();
    sim.objects("configmaps", Some(NS))
        .expect("objects")
        .iter()
        .filter(|o| ranges.iter().any(|r| r.contains(fnv1a64(o["metadata"]["uid"].as_str().expect("uid").as_bytes()))))
        .map(|o| (o["metadata"]["name"].as_str().expect("name").to_owned(), o["metadata"]["resourceVersion"].as_str().expect("rv").to_owned()))
        .collect()
}

fn cached(c: &ShardedInformer) -> BTreeMap<String, String> {
    c.informer().store().list().iter().map(|o| (o.name().to_owned(), o.resource_version().to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_change_relists_the_new_slice_without_a_410_or_backoff() {
    let sim = SimServer::builder().sharded_list_and_watch(true).bookmark_interval(Duration::from_millis(200)).start().await.expect("sim");
    for i in 0..200 {
        sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": format!("cm-{i:03}")}})).expect("create");
    }
    let a = member(&sim, "trigger", "a", None);
    let mut config = InformerConfig::default();
    // A failure's backoff no wait below outlives: a relist that waited for one (the
    // old fake-410 path) would never come.
    config.watcher.backoff = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
    let source = KubeSource::for_type::<ConfigMap>(sim.client().expect("client"), Some(NS));
    let cache = tokio::time::timeout(T, ShardedInformer::start(a.clone(), source, ShardBy::ObjectUid, config)).await.expect("a gets a range").expect("starts");
    assert!(cache.informer().wait_for_sync(T).await);
    eventually("a caches everything while alone", || cached(&cache).len() == 200).await;

    let b = member(&sim, "trigger", "b", None);
    members_are(&[&a, &b], &["a", "b"]).await;
    eventually("a's cache is its new slice", || cache.reshards() >= 1 && cached(&cache) == slice(&sim, &a)).await;
    let stats = cache.informer().stats();
    assert!(stats.requested_relists.load(Relaxed) >= 1, "the change was a requested relist");
    assert_eq!(stats.relists.load(Relaxed), 0, "no 410 was needed");
    assert_eq!(stats.errors.load(Relaxed), 0, "no failure was reported");
    assert!(cached(&cache).len() < 200, "a holds only its part now");

    // And it watches the new slice from there: a write in a's part arrives.
    let name = slice(&sim, &a).into_keys().next().expect("a owns some config map");
    sim.merge_patch("configmaps", NS, &name, &json!({"data": {"v": "1"}})).expect("patch");
    eventually("the write reaches a's cache", || cached(&cache) == slice(&sim, &a)).await;
    b.stop().await;
    a.stop().await;
    sim.shutdown().await;
}

fn lease(ring: &str, identity: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(format!("{ring}-{identity}")),
            labels: Some([(RING_LABEL.to_owned(), ring.to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec { holder_identity: Some(identity.to_owned()), lease_duration_seconds: Some(2), ..LeaseSpec::default() }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_a_lease_delete_whose_precondition_is_stale() {
    let sim = SimServer::builder().start().await.expect("sim");
    let client = LeaseClient::new(sim.client().expect("client"), NS);
    let created = client.create(&lease("pre", "x")).await.expect("create");
    let old_rv = created.metadata.resource_version.clone().expect("rv");
    let renewed = client.replace(&created).await.expect("renew");
    let new_rv = renewed.metadata.resource_version.clone().expect("rv");
    assert_ne!(old_rv, new_rv);
    match client.delete_unchanged("pre-x", &old_rv).await {
        Err(LeaseError::Conflict { .. }) => {}
        other => panic!("a DELETE at a stale resourceVersion must be a 409 Conflict, got {other:?}"),
    }
    assert!(client.get("pre-x").await.expect("get").is_some(), "the renewed lease is kept");
    assert!(client.delete_unchanged("pre-x", &new_rv).await.expect("delete"), "deleted at its current version");
    assert!(client.get("pre-x").await.expect("get").is_none());
    assert!(!client.delete_unchanged("pre-x", &new_rv).await.expect("gone"), "a missing lease is no error");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_members_leases_are_deleted_and_live_ones_kept() {
    let sim = SimServer::builder().start().await.expect("sim");
    let client = LeaseClient::new(sim.client().expect("client"), NS);
    // A replica that crashed for good: its lease is never renewed again.
    client.create(&lease("gc", "dead")).await.expect("create");
    let a = member(&sim, "gc", "a", Some(3));
    // b collects nothing itself, and is live: a must never delete its lease.
    let b = member(&sim, "gc", "b", None);
    members_are(&[&a, &b], &["a", "b"]).await;
    let start = Instant::now();
    loop {
        let names: BTreeSet<String> = client.list(&format!("{RING_LABEL}=gc")).await.expect("list").into_iter().filter_map(|l| l.metadata.name).collect();
        assert!(names.contains("gc-a") && names.contains("gc-b"), "live members' leases are kept: {names:?}");
        if !names.contains("gc-dead") {
            break;
        }
        assert!(start.elapsed() < T, "the dead lease was never deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Kept for good: several more collection periods (3 x 2 s) pass.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let names: BTreeSet<String> = client.list(&format!("{RING_LABEL}=gc")).await.expect("list").into_iter().filter_map(|l| l.metadata.name).collect();
    assert_eq!(names, ["gc-a".to_owned(), "gc-b".to_owned()].into(), "live leases survive every collection");
    members_are(&[&a, &b], &["a", "b"]).await;
    a.stop().await;
    b.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_controllers_split_the_keys_between_replicas() {
    let sim = SimServer::builder().start().await.expect("sim");
    // FNV-1a spreads a change in an early byte over the whole hash, one in the last
    // bytes hardly: names that differ only at their end could all land on one side.
    let namespaces: Vec<String> = (0..40u8).map(|i| format!("{}{i}-ns", char::from(b'a' + i % 26))).collect();
    let a = member(&sim, "keys", "a", None);
    let b = member(&sim, "keys", "b", None);
    members_are(&[&a, &b], &["a", "b"]).await;
    // Holds end: every namespace is admitted by exactly one replica.
    let hashes: Vec<u64> = namespaces.iter().map(|ns| ShardBy::namespace_hash(Some(ns))).collect();
    eventually("every key has exactly one admitting replica", || hashes.iter().all(|&h| a.admits(h) != b.admits(h))).await;
    let informer = Informer::spawn(KubeSource::for_type::<ConfigMap>(sim.client().expect("client"), None), InformerConfig::default()).expect("informer");
    assert!(informer.wait_for_sync(T).await);
    let kind = kind_of::<ConfigMap>(&());
    let seen: Arc<Mutex<Vec<(String, ReconcileKey)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut stops = Vec::new();
    let mut runs = Vec::new();
    for (name, m) in [("a", &a), ("b", &b)] {
        let controller = KeyController::new().workers(2).shard(m.clone(), ShardBy::Namespace, informer.store(), kind.clone());
        let queue = controller.queue();
        for ns in &namespaces {
            queue.add(ReconcileKey::new(kind.clone(), Some(ns), "cm"));
        }
        let seen = Arc::clone(&seen);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        runs.push(tokio::spawn(controller.run(
            move |key: ReconcileKey| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.lock().unwrap().push((name.to_owned(), key));
                    Ok::<_, std::io::Error>(Action::Done)
                }
            },
            async move {
                let _ = stopped.await;
            },
        )));
    }
    eventually("every key is reconciled", || seen.lock().unwrap().len() >= namespaces.len()).await;
    // Both queues were drained: what one skipped, the other reconciled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for stop in stops {
        let _ = stop.send(());
    }
    for run in runs {
        tokio::time::timeout(T, run).await.expect("controller stops").expect("no panic");
    }
    let seen = seen.lock().unwrap().clone();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (replica, key) in &seen {
        by_key.entry(key.namespace.clone().expect("namespaced")).or_default().push(replica.clone());
    }
    assert_eq!(by_key.len(), namespaces.len(), "every key was reconciled");
    for (ns, replicas) in &by_key {
        assert_eq!(replicas.len(), 1, "{ns} reconciled once, by one replica: {replicas:?}");
        let owner = if a.admits(ShardBy::namespace_hash(Some(ns))) { "a" } else { "b" };
        assert_eq!(replicas[0], owner, "{ns} reconciled by its owner");
    }
    assert!(by_key.values().any(|r| r[0] == "a") && by_key.values().any(|r| r[0] == "b"), "both replicas own keys: {by_key:?}");
    a.stop().await;
    b.stop().await;
    sim.shutdown().await;
}

/// What a handler of a sharded cache was told, in order: (what, name).
#[derive(Default)]
struct Told(Mutex<Vec<(&'static str, String)>>);

impl Handler for Told {
    fn on_add(&self, obj: &Obj, _: bool) {
        self.0.lock().unwrap().push(("add", obj.name().to_owned()));
    }
    fn on_update(&self, _: &Obj, new: &Obj) {
        self.0.lock().unwrap().push(("update", new.name().to_owned()));
    }
    fn on_delete(&self, obj: &Obj, final_state_unknown: bool) {
        let what = if final_state_unknown { "delete-unknown" } else { "delete" };
        self.0.lock().unwrap().push((what, obj.name().to_owned()));
    }
}

impl Told {
    fn take(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The events about `name`, in order.
    fn about(events: &[(&'static str, String)], name: &str) -> Vec<&'static str> {
        events.iter().filter(|(_, n)| n == name).map(|(what, _)| *what).collect()
    }
}

/// (lists, scoped relists, listed objects, requested relists, relists on 410, errors)
fn counters(stats: &WatcherStats) -> [u64; 6] {
    [&stats.lists, &stats.scoped_relists, &stats.listed_objects, &stats.requested_relists, &stats.relists, &stats.errors].map(|c| c.load(Relaxed))
}

fn names(slice: &BTreeMap<String, String>) -> BTreeSet<String> {
    slice.keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_lists_only_the_gained_ranges_and_leaves_kept_objects_alone() {
    let sim = SimServer::builder().sharded_list_and_watch(true).bookmark_interval(Duration::from_millis(200)).start().await.expect("sim");
    for i in 0..200 {
        sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": format!("cm-{i:03}")}})).expect("create");
    }
    let a = member(&sim, "moved", "a", None);
    let mut config = InformerConfig::default();
    config.watcher.backoff = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
    // Pages smaller than a slice: the exact read is paged like the normal list.
    config.watcher.page_size = Some(20);
    let source = KubeSource::for_type::<ConfigMap>(sim.client().expect("client"), Some(NS));
    let cache = tokio::time::timeout(T, ShardedInformer::start(a.clone(), source, ShardBy::ObjectUid, config)).await.expect("a gets a range").expect("starts");
    assert!(cache.informer().wait_for_sync(T).await);
    eventually("a caches everything while alone", || cached(&cache).len() == 200).await;
    let told = Arc::new(Told::default());
    let id = cache.informer().add_handler(told.clone()).expect("handler");
    eventually("the handler has the cache", || cache.informer().handler_synced(id)).await;
    eventually("the replay is delivered", || told.0.lock().unwrap().len() == 200).await;
    told.take();
    let stats = cache.informer().stats();

    // b joins: a only loses ranges, so it lists nothing.
    let whole = names(&cached(&cache));
    let before = counters(&stats);
    let b = member(&sim, "moved", "b", None);
    members_are(&[&a, &b], &["a", "b"]).await;
    eventually("a's cache is its new slice", || cache.reshards() >= 1 && cached(&cache) == slice(&sim, &a)).await;
    let kept = names(&slice(&sim, &a));
    let lost: BTreeSet<String> = whole.difference(&kept).cloned().collect();
    assert!(!lost.is_empty() && !kept.is_empty(), "the join moved part of the space");
    eventually("every lost object was deleted", || told.0.lock().unwrap().len() >= lost.len()).await;
    let events = told.take();
    for name in &lost {
        assert_eq!(Told::about(&events, name), ["delete-unknown"], "{name} was lost: one delete, final state unknown");
    }
    for name in &kept {
        assert!(Told::about(&events, name).is_empty(), "{name} was kept: no event");
    }
    let after = counters(&stats);
    assert!(after[1] > before[1], "the change was a scoped relist");
    assert_eq!(after[2], before[2], "nothing was gained, so nothing was listed");
    assert_eq!(after[0] - before[0], after[1] - before[1], "no whole list");
    assert_eq!((after[4], after[5]), (0, 0), "no 410, no error");

    // b leaves while config maps are written: a gains b's ranges and lists only them.
    let before = counters(&stats);
    let writes = async {
        for i in 0..30 {
            sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": format!("new-{i:03}")}})).expect("create");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let leave = async {
        b.stop().await;
        members_are(&[&a], &["a"]).await;
    };
    tokio::join!(writes, leave);
    eventually("a's cache is the whole collection again", || cached(&cache) == slice(&sim, &a) && cached(&cache).len() == 230).await;
    let after = counters(&stats);
    let gained: BTreeSet<String> = lost.clone();
    assert!(after[1] > before[1], "the change was a scoped relist");
    assert_eq!(after[0] - before[0], after[1] - before[1], "no whole list");
    let listed = after[2] - before[2];
    // The gained objects that were not written came only from the scoped list; at
    // most the config maps created meanwhile in the gained ranges came with them.
    assert!(listed >= gained.len() as u64 && listed <= gained.len() as u64 + 30, "listed {listed} for {} gained objects", gained.len());
    assert!(listed < 200, "not the whole new slice");
    assert_eq!((after[4], after[5]), (0, 0), "no 410, no error");
    eventually("every gained object was added", || told.0.lock().unwrap().len() >= gained.len() + 30).await;
    let events = told.take();
    for name in &gained {
        assert_eq!(Told::about(&events, name), ["add"], "{name} was gained: one add");
    }
    for name in &kept {
        assert!(Told::about(&events, name).is_empty(), "{name} was kept: no event");
    }
    for i in 0..30 {
        let name = format!("new-{i:03}");
        let about = Told::about(&events, &name);
        assert_eq!(about.first(), Some(&"add"), "{name} was created: {about:?}");
        assert!(!about.iter().any(|w| w.starts_with("delete")), "{name} exists: {about:?}");
    }

    // And the watch goes on with the whole new selector.
    let kept_one = kept.iter().next().expect("a kept one").clone();
    let gained_one = gained.iter().next().expect("a gained one").clone();
    sim.merge_patch("configmaps", NS, &kept_one, &json!({"data": {"v": "1"}})).expect("patch");
    sim.merge_patch("configmaps", NS, &gained_one, &json!({"data": {"v": "1"}})).expect("patch");
    sim.delete("configmaps", NS, "new-000").expect("delete");
    sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": "late"}})).expect("create");
    eventually("writes after the change reach the cache", || cached(&cache) == slice(&sim, &a) && cached(&cache).contains_key("late")).await;
    a.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_on_the_exact_list_of_gained_ranges_relists_the_whole_slice() {
    // No bookmarks: the watch's resourceVersion stays at its last config map event,
    // behind the lease renewals, so expiring history makes the exact read a 410.
    let sim = SimServer::builder().sharded_list_and_watch(true).bookmark_interval(Duration::from_secs(3600)).start().await.expect("sim");
    for i in 0..100 {
        sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": format!("cm-{i:03}")}})).expect("create");
    }
    let a = member(&sim, "expired", "a", None);
    let b = member(&sim, "expired", "b", None);
    members_are(&[&a, &b], &["a", "b"]).await;
    let mut config = InformerConfig::default();
    // Long enough that the relists counted below are the requested ones, short
    // enough that a request the loaded machine lets time out is retried within T.
    config.watcher.backoff = Backoff::new(Duration::from_secs(15), Duration::from_secs(15));
    let source = KubeSource::for_type::<ConfigMap>(sim.client().expect("client"), Some(NS));
    let cache = tokio::time::timeout(T, ShardedInformer::start(a.clone(), source, ShardBy::ObjectUid, config)).await.expect("a gets a range").expect("starts");
    assert!(cache.informer().wait_for_sync(T).await);
    eventually("a caches its slice", || cached(&cache) == slice(&sim, &a)).await;
    let held = cached(&cache).len();
    assert!(held < 100, "a holds only its part");
    let stats = cache.informer().stats();
    let before = counters(&stats);
    let reshards = cache.reshards();
    // Moves the server past the watch's version, then forgets everything before now.
    sim.create("configmaps", json!({"metadata": {"namespace": "elsewhere", "name": "bump"}})).expect("create");
    sim.expire_history();
    b.stop().await;
    members_are(&[&a], &["a"]).await;
    eventually("a's cache is the whole collection", || cache.reshards() > reshards && cached(&cache) == slice(&sim, &a) && cached(&cache).len() == 100).await;
    let after = counters(&stats);
    assert_eq!(after[1], before[1], "the scoped relist did not complete");
    assert!(after[5] > before[5], "the 410 was reported");
    assert_eq!(after[2] - before[2], 100, "the whole new slice was listed");
    assert!(after[3] >= before[3] + 2, "the scoped attempt, then the whole relist, both on request");
    sim.merge_patch("configmaps", NS, "cm-000", &json!({"data": {"v": "1"}})).expect("patch");
    eventually("a write after the change reaches the cache", || cached(&cache) == slice(&sim, &a)).await;
    a.stop().await;
    sim.shutdown().await;
}
