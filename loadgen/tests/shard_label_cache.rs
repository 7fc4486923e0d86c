//! Caching by label against the simulator without the `ShardedListAndWatch` gate:
//! every replica runs a `Sharder` (one leads and labels each config map with its ring
//! owner, owned objects with their owner's) and a `ShardedInformer` in
//! `CacheMode::Label`. Every object carries exactly one shard label, each replica caches
//! exactly the objects labelled with it, and together they are the server, through
//! creates, a replica leaving (the leader among them or not), a join and objects
//! created later;
//! sharded controllers over these caches reconcile each key on its owner only, and a
//! killed replica's keys on the survivor they are relabelled to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kcache::controller::{Action, Controller};
use kcache::informer::InformerConfig;
use kcache::lease::LeaseClient;
use kcache::reflector::{Backoff, KubeSource};
use kcache::shard::{
    CacheMode, CacheModePreference, MembershipConfig, SHARD_LABEL_PREFIX, ShardBy, ShardMembership, ShardedInformer, Sharder, SharderConfig, SharderMetrics, Timing,
    fnv1a64,
};
use kube::api::ApiResource;
use kcache_loadgen::sim::{SimHandle, SimServer};
use serde_json::json;

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(90);
const NS: &str = "labels";
const RING: &str = "cm-labels";

fn timing() -> Timing {
    Timing { lease_duration: Duration::from_secs(2), renew_deadline: Duration::from_millis(1200), retry_period: Duration::from_millis(250) }
}

fn informer_config() -> InformerConfig {
    let mut c = InformerConfig::default();
    c.watcher.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
    c.watcher.min_watch_timeout = Duration::from_secs(5);
    c.watcher.page_size = Some(50);
    c
}

struct Replica {
    name: String,
    membership: ShardMembership,
    sharder: Sharder,
    metrics: SharderMetrics,
    cache: ShardedInformer,
}

async fn replica(sim: &SimHandle, name: &str) -> Replica {
    let client = sim.client().expect("client");
    let membership =
        ShardMembership::start(LeaseClient::new(client.clone(), NS), MembershipConfig::new(RING, name).timing(timing())).expect("valid timing");
    let mut config = SharderConfig::new(NS);
    config.qps = 2000.0;
    config.burst = 200;
    config.rescan = Duration::from_secs(2);
    config.informer = informer_config();
    let metrics = config.metrics.clone();
    let sharder = Sharder::start(client.clone(), &ApiResource::erase::<ConfigMap>(&()), Some(NS), membership.clone(), ShardBy::Uid, config).expect("sharder starts");
    let source = KubeSource::for_type::<ConfigMap>(client, Some(NS));
    let cache = tokio::time::timeout(T, ShardedInformer::start_with(membership.clone(), source, ShardBy::Uid, informer_config(), CacheModePreference::LabelWhenUnsupported))
        .await
        .expect("the probe answers")
        .expect("sharded informer starts");
    assert_eq!(cache.mode(), CacheMode::Label, "{name}: no shard selector, labels chosen");
    assert!(cache.selector().is_none());
    assert!(cache.informer().wait_for_sync(T).await, "{name} syncs");
    Replica { name: name.to_owned(), membership, sharder, metrics, cache }
}

/// Polls `probe` until true, failing after [`T`] with `what()`.
async fn eventually(mut what: impl FnMut() -> String, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < T, "never happened: {}", what());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn members_are(replicas: &[&Replica]) {
    let mut expected: Vec<String> = replicas.iter().map(|r| r.name.clone()).collect();
    expected.sort();
    eventually(|| format!("every replica sees members {expected:?}"), || replicas.iter().all(|r| r.membership.members() == expected)).await;
}

/// One config map as the server holds it.
struct Stored {
    rv: String,
    /// Where the controller places it: its controller owner's uid, else its own.
    hash: u64,
    /// Its `shard.kcache.io/*` labels.
    shard_labels: BTreeMap<String, String>,
}

fn server(sim: &SimHandle) -> BTreeMap<String, Stored> {
    sim.objects("configmaps", Some(NS))
        .expect("objects")
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            let uid = m["uid"].as_str().expect("uid");
            let owner = m["ownerReferences"].as_array().and_then(|refs| refs.iter().find(|r| r["controller"] == json!(true))).and_then(|r| r["uid"].as_str());
            let shard_labels = m["labels"]
                .as_object()
                .map(|l| l.iter().filter(|(k, _)| k.starts_with(SHARD_LABEL_PREFIX)).map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned())).collect())
                .unwrap_or_default();
            let stored = Stored { rv: m["resourceVersion"].as_str().expect("rv").to_owned(), hash: fnv1a64(owner.unwrap_or(uid).as_bytes()), shard_labels };
            (m["name"].as_str().expect("name").to_owned(), stored)
        })
        .collect()
}

/// A cache: name -> resourceVersion.
fn cache(r: &Replica) -> BTreeMap<String, String> {
    r.cache.informer().store().list().iter().map(|o| (o.name().to_owned(), o.resource_version().to_owned())).collect()
}

/// Waits until every object carries exactly one shard label, naming its ring owner,
/// and every replica caches exactly the objects labelled with it; then checks the
/// caches are disjoint, cover the server, and that at most one sharder leads.
async fn converge(sim: &SimHandle, replicas: &[&Replica]) {
    let key = format!("{SHARD_LABEL_PREFIX}{RING}");
    let start = Instant::now();
    loop {
        let srv = server(sim);
        let ring = replicas[0].membership.snapshot().ring().clone();
        let mut wrong_labels = 0;
        for stored in srv.values() {
            let want = ring.owner(stored.hash).map(|o| BTreeMap::from([(key.clone(), o.to_owned())]));
            if Some(&stored.shard_labels) != want.as_ref() {
                wrong_labels += 1;
            }
        }
        let mut sizes = Vec::new();
        let mut caches_ok = true;
        for r in replicas {
            let want: BTreeMap<String, String> =
                srv.iter().filter(|(_, s)| s.shard_labels.get(&key) == Some(&r.name)).map(|(k, s)| (k.clone(), s.rv.clone())).collect();
            let got = cache(r);
            sizes.push((r.name.clone(), got.len(), want.len()));
            caches_ok &= got == want;
        }
        if wrong_labels == 0 && caches_ok && ring.members().len() == replicas.len() {
            let mut union = BTreeSet::new();
            for r in replicas {
                for k in cache(r).into_keys() {
                    assert!(union.insert(k.clone()), "{k} is cached by two replicas");
                }
            }
            assert_eq!(union, srv.keys().cloned().collect::<BTreeSet<_>>(), "the caches together are the server");
            for r in replicas {
                assert!(!cache(r).is_empty(), "{} holds part of {} objects", r.name, srv.len());
                assert!(cache(r).len() < srv.len(), "{} holds only a slice", r.name);
            }
            let leaders = replicas.iter().filter(|r| r.sharder.leadership().is_leading()).count();
            assert!(leaders <= 1, "{leaders} sharders lead at once");
            return;
        }
        assert!(start.elapsed() < T, "labels and caches did not converge: {wrong_labels} objects mislabelled; {sizes:?} (name, cached, labelled)");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn create(sim: &SimHandle, prefix: &str, n: usize) {
    for i in 0..n {
        sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": format!("{prefix}-{i:03}")}, "data": {"v": "0"}})).expect("create");
    }
}

/// `n` config maps controlled by `owner`: they must land with it.
fn create_owned(sim: &SimHandle, owner: &str, n: usize) {
    let owner_uid = sim.get("configmaps", NS, owner).expect("get").expect("owner exists")["metadata"]["uid"].as_str().expect("uid").to_owned();
    for i in 0..n {
        let owner_ref = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": owner_uid, "controller": true});
        sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": format!("{owner}-owned-{i:02}"), "ownerReferences": [owner_ref]}})).expect("create");
    }
}

/// The index of the replica whose sharder leads, waiting (bounded) for one to lead.
async fn leader(replicas: &[Replica]) -> usize {
    let start = Instant::now();
    loop {
        if let Some(i) = replicas.iter().position(|r| r.sharder.leadership().is_leading()) {
            return i;
        }
        assert!(start.elapsed() < T, "no sharder leads");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn patches(replicas: &[&Replica]) -> u64 {
    replicas.iter().map(|r| r.metrics.patches(RING).get()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharder_labels_every_object_and_each_replica_caches_exactly_its_label() {
    let sim = SimServer::builder().bookmark_interval(Duration::from_millis(200)).start().await.expect("sim");
    create(&sim, "cm", 200);
    create_owned(&sim, "cm-000", 10);
    let a = replica(&sim, "replica-a").await;
    let b = replica(&sim, "replica-b").await;
    let c = replica(&sim, "replica-c").await;
    members_are(&[&a, &b, &c]).await;
    converge(&sim, &[&a, &b, &c]).await;
    assert!(patches(&[&a, &b, &c]) >= 210, "every object was labelled at least once: {}", patches(&[&a, &b, &c]));
    let owner_label = &server(&sim)["cm-000"].shard_labels;
    for i in 0..10 {
        assert_eq!(&server(&sim)[&format!("cm-000-owned-{i:02}")].shard_labels, owner_label, "owned objects follow their owner");
    }

    // Objects created later are labelled and cached by their replica.
    create(&sim, "late", 60);
    for i in 0..30 {
        sim.delete("configmaps", NS, &format!("cm-{:03}", 100 + i)).expect("delete");
        sim.merge_patch("configmaps", NS, &format!("cm-{:03}", 150 + i), &json!({"data": {"v": "1"}})).expect("patch");
    }
    converge(&sim, &[&a, &b, &c]).await;

    // The leader leaves: its election lease is released, another replica leads, and
    // the leaver's objects are relabelled to the survivors, which cache them.
    let all = [a, b, c];
    let leading = leader(&all).await;
    let [x, y, z] = all;
    let (leaving, rest) = match leading {
        0 => (x, [y, z]),
        1 => (y, [x, z]),
        _ => (z, [x, y]),
    };
    let before = patches(&[&rest[0], &rest[1]]);
    let had: BTreeSet<String> = cache(&leaving).into_keys().collect();
    assert!(!had.is_empty());
    leaving.sharder.stop().await;
    leaving.membership.leave().await;
    leaving.cache.informer().shutdown();
    members_are(&[&rest[0], &rest[1]]).await;
    create(&sim, "after", 30);
    converge(&sim, &[&rest[0], &rest[1]]).await;
    let srv = server(&sim);
    let key = format!("{SHARD_LABEL_PREFIX}{RING}");
    assert!(srv.values().all(|s| s.shard_labels.get(&key) != Some(&leaving.name)), "no object is left with the leaver's label");
    let moved = had.iter().filter(|k| srv.contains_key(*k)).count() as u64;
    assert!(patches(&[&rest[0], &rest[1]]) >= before + moved, "the new leader relabelled the {moved} objects of {}", leaving.name);

    for r in rest {
        r.sharder.stop().await;
        r.cache.informer().shutdown();
        r.membership.stop().await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_killed_moves_only_its_objects_and_a_join_takes_only_from_the_others() {
    let sim = SimServer::builder().bookmark_interval(Duration::from_millis(200)).start().await.expect("sim");
    create(&sim, "cm", 150);
    let a = replica(&sim, "replica-a").await;
    let b = replica(&sim, "replica-b").await;
    let c = replica(&sim, "replica-c").await;
    members_are(&[&a, &b, &c]).await;
    converge(&sim, &[&a, &b, &c]).await;
    let all = [a, b, c];
    let follower = (leader(&all).await + 1) % 3;
    let [x, y, z] = all;
    let (leaving, rest) = match follower {
        0 => (x, [y, z]),
        1 => (y, [x, z]),
        _ => (z, [x, y]),
    };
    let key = format!("{SHARD_LABEL_PREFIX}{RING}");
    let labels_before: BTreeMap<String, String> = server(&sim).into_iter().map(|(k, s)| (k, s.shard_labels[&key].clone())).collect();
    // A kill, not a leave: the follower's lease expires.
    leaving.sharder.stop().await;
    leaving.membership.stop().await;
    leaving.cache.informer().shutdown();
    members_are(&[&rest[0], &rest[1]]).await;
    converge(&sim, &[&rest[0], &rest[1]]).await;
    for (name, stored) in server(&sim) {
        let before = &labels_before[&name];
        if *before != leaving.name {
            assert_eq!(&stored.shard_labels[&key], before, "{name} did not belong to the leaver and stays");
        }
    }
    create(&sim, "late", 40);
    converge(&sim, &[&rest[0], &rest[1]]).await;

    // A join: the newcomer gets about a third, relabelled from the others only.
    let labels_before: BTreeMap<String, String> = server(&sim).into_iter().map(|(k, s)| (k, s.shard_labels[&key].clone())).collect();
    let d = replica(&sim, "replica-d").await;
    members_are(&[&rest[0], &rest[1], &d]).await;
    converge(&sim, &[&rest[0], &rest[1], &d]).await;
    for (name, stored) in server(&sim) {
        let now = &stored.shard_labels[&key];
        assert!(now == &labels_before[&name] || now == "replica-d", "{name} moved from {} to {now}, not to the newcomer", labels_before[&name]);
    }
    d.sharder.stop().await;
    d.cache.informer().shutdown();
    d.membership.stop().await;
    for r in rest {
        r.sharder.stop().await;
        r.cache.informer().shutdown();
        r.membership.stop().await;
    }
    sim.shutdown().await;
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

/// Who reconciled what, in order.
#[derive(Default)]
struct Record(Mutex<BTreeMap<String, Vec<String>>>);

impl Record {
    fn by(&self) -> BTreeMap<String, Vec<String>> {
        self.0.lock().unwrap().clone()
    }
}

struct Ctx {
    replica: String,
    record: Arc<Record>,
}

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, Never> {
    let key = cm.metadata.name.clone().unwrap_or_default();
    ctx.record.0.lock().unwrap().entry(key).or_default().push(ctx.replica.clone());
    Ok(Action::await_change())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_controllers_over_label_caches_reconcile_each_key_on_its_owner_and_a_killed_replicas_keys_move() {
    let sim = SimServer::builder().bookmark_interval(Duration::from_millis(200)).start().await.expect("sim");
    create(&sim, "cm", 120);
    let a = replica(&sim, "replica-a").await;
    let b = replica(&sim, "replica-b").await;
    let c = replica(&sim, "replica-c").await;
    members_are(&[&a, &b, &c]).await;
    converge(&sim, &[&a, &b, &c]).await;
    let key = format!("{SHARD_LABEL_PREFIX}{RING}");
    let labels: BTreeMap<String, String> = server(&sim).into_iter().map(|(k, s)| (k, s.shard_labels[&key].clone())).collect();

    let record = Arc::new(Record::default());
    let mut runs = BTreeMap::new();
    for r in [&a, &b, &c] {
        let ctx = Arc::new(Ctx { replica: r.name.clone(), record: Arc::clone(&record) });
        let controller = Controller::<ConfigMap>::new(r.cache.informer()).workers(4).shard(r.membership.clone(), ShardBy::Uid);
        runs.insert(r.name.clone(), tokio::spawn(controller.run(reconcile, |_, _, _| Action::requeue(Duration::from_millis(100)), ctx)));
    }
    eventually(|| format!("every key reconciled: {} of {}", record.by().len(), labels.len()), || record.by().len() == labels.len()).await;
    // A replica that misses its renew deadline on a loaded machine reconciles its keys
    // again when it is fresh again: count who reconciled, not how often.
    let who = |by: &[String]| by.iter().cloned().collect::<BTreeSet<String>>();
    for (name, by) in record.by() {
        assert_eq!(who(&by), BTreeSet::from([labels[&name].clone()]), "{name} reconciled only by the replica its label names");
    }

    // Kill b (lease expires, no release): its objects are relabelled to a and c, which
    // cache them and reconcile each on the one that owns it now.
    runs.remove("replica-b").expect("b runs").abort();
    b.sharder.stop().await;
    b.membership.stop().await;
    b.cache.informer().shutdown();
    members_are(&[&a, &c]).await;
    converge(&sim, &[&a, &c]).await;
    let moved: Vec<&String> = labels.iter().filter(|(_, l)| *l == "replica-b").map(|(k, _)| k).collect();
    assert!(!moved.is_empty(), "b owned some keys");
    eventually(|| "b's keys reconciled again".to_owned(), || {
        let by = record.by();
        moved.iter().all(|k| by[*k].iter().any(|r| r != "replica-b"))
    })
    .await;
    let now: BTreeMap<String, String> = server(&sim).into_iter().map(|(k, s)| (k, s.shard_labels[&key].clone())).collect();
    for (name, by) in record.by() {
        if labels[&name] == "replica-b" {
            let first_elsewhere = by.iter().position(|r| r != "replica-b").expect("reconciled after the move");
            assert!(by[..first_elsewhere].iter().all(|r| r == "replica-b"), "{name}: {by:?}");
            assert_eq!(who(&by[first_elsewhere..]), BTreeSet::from([now[&name].clone()]), "{name} moved to the survivor its new label names only");
        } else {
            assert_eq!(who(&by), BTreeSet::from([labels[&name].clone()]), "{name} did not move: only its owner reconciled it");
        }
    }
    for run in runs.into_values() {
        run.abort();
    }
    for r in [&a, &c] {
        r.sharder.stop().await;
        r.cache.informer().shutdown();
        r.membership.stop().await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sharder_paces_its_patches_and_counts_them() {
    let sim = SimServer::builder().bookmark_interval(Duration::from_millis(200)).start().await.expect("sim");
    create(&sim, "cm", 100);
    let client = sim.client().expect("client");
    let membership =
        ShardMembership::start(LeaseClient::new(client.clone(), NS), MembershipConfig::new(RING, "solo").timing(timing())).expect("valid timing");
    let mut config = SharderConfig::new(NS);
    config.qps = 50.0;
    config.burst = 10;
    config.informer = informer_config();
    let metrics = config.metrics.clone();
    let started = Instant::now();
    let sharder = Sharder::start(client, &ApiResource::erase::<ConfigMap>(&()), Some(NS), membership.clone(), ShardBy::Uid, config).expect("sharder starts");
    let key = format!("{SHARD_LABEL_PREFIX}{RING}");
    eventually(
        || format!("all labelled solo: {} patches", metrics.patches(RING).get()),
        || server(&sim).values().all(|s| s.shard_labels.get(&key).map(String::as_str) == Some("solo")),
    )
    .await;
    let took = started.elapsed();
    // A lower bound only: 10 at once, then 90 at 50 per second cannot take less.
    assert!(took >= Duration::from_millis(1800), "100 patches at 50/s (burst 10) took only {took:?}");
    assert_eq!(metrics.patches(RING).get(), 100, "one patch per object");
    assert_eq!(metrics.patch_errors(RING).get(), 0);
    sharder.stop().await;
    membership.stop().await;
    sim.shutdown().await;
}
