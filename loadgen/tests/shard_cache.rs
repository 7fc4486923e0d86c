//! Each replica caches only its shard: `ShardedInformer`s over a ring of replicas
//! against the simulator. With the `ShardedListAndWatch` gate the caches are pairwise
//! disjoint and together the server, through writes, a join and a kill, and every
//! change of ranges relists the replica's slice; without the gate each replica caches
//! everything and its sharded controller still reconciles only its own keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kcache::controller::{Action, Controller};
use kcache::informer::InformerConfig;
use kcache::lease::LeaseClient;
use kcache::reflector::{Backoff, KubeSource};
use kcache::shard::{CacheMode, MembershipConfig, ShardBy, ShardMembership, ShardedInformer, Timing, fnv1a64};
use kcache_loadgen::sim::{SimHandle, SimServer};
use serde_json::json;

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(90);
const NS: &str = "cache";
const RING: &str = "cm-cache";

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
    cache: ShardedInformer,
}

async fn replica(sim: &SimHandle, name: &str) -> Replica {
    let client = sim.client().expect("client");
    let membership =
        ShardMembership::start(LeaseClient::new(client.clone(), NS), MembershipConfig::new(RING, name).timing(timing())).expect("valid timing");
    let source = KubeSource::for_type::<ConfigMap>(client, Some(NS));
    let cache = tokio::time::timeout(T, ShardedInformer::start(membership.clone(), source, ShardBy::Uid, informer_config()))
        .await
        .expect("the replica gets a range")
        .expect("sharded informer starts");
    assert!(cache.informer().wait_for_sync(T).await, "{name} syncs");
    Replica { name: name.to_owned(), membership, cache }
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
    let expected: Vec<String> = {
        let mut names: Vec<String> = replicas.iter().map(|r| r.name.clone()).collect();
        names.sort();
        names
    };
    eventually(|| format!("every replica sees members {expected:?}"), || replicas.iter().all(|r| r.membership.members() == expected)).await;
}

/// The server's config maps: name -> (resourceVersion, uid).
fn server(sim: &SimHandle) -> BTreeMap<String, (String, String)> {
    sim.objects("configmaps", Some(NS))
        .expect("objects")
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            (m["name"].as_str().expect("name").to_owned(), (m["resourceVersion"].as_str().expect("rv").to_owned(), m["uid"].as_str().expect("uid").to_owned()))
        })
        .collect()
}

/// A cache: name -> resourceVersion.
fn cache(r: &Replica) -> BTreeMap<String, String> {
    r.cache.informer().store().list().iter().map(|o| (o.name().to_owned(), o.resource_version().to_owned())).collect()
}

/// Waits until every replica's selector is its ring share and its cache exactly the
/// server's objects in it, then checks the caches are disjoint and cover the server.
async fn converge(sim: &SimHandle, replicas: &[&Replica]) {
    let start = Instant::now();
    loop {
        let srv = server(sim);
        let mut ok = true;
        let mut sizes = Vec::new();
        for r in replicas {
            let ranges = r.membership.ranges();
            let selector = r.cache.selector().expect("server-side mode");
            let want: BTreeMap<String, String> = srv
                .iter()
                .filter(|(_, (_, uid))| ranges.iter().any(|range| range.contains(fnv1a64(uid.as_bytes()))))
                .map(|(k, (rv, _))| (k.clone(), rv.clone()))
                .collect();
            let got = cache(r);
            sizes.push((r.name.clone(), got.len(), want.len()));
            ok &= selector.ranges() == ranges.as_slice() && got == want;
        }
        if ok {
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
            return;
        }
        assert!(start.elapsed() < T, "caches did not converge: {sizes:?} (name, cached, wanted)");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn create(sim: &SimHandle, prefix: &str, n: usize) {
    for i in 0..n {
        sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": format!("{prefix}-{i:03}")}, "data": {"v": "0"}})).expect("create");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_cache_disjoint_slices_that_cover_the_server_through_writes_a_join_and_a_kill() {
    let sim = SimServer::builder().sharded_list_and_watch(true).bookmark_interval(Duration::from_millis(200)).start().await.expect("sim");
    create(&sim, "cm", 300);
    let a = replica(&sim, "replica-a").await;
    let b = replica(&sim, "replica-b").await;
    let c = replica(&sim, "replica-c").await;
    members_are(&[&a, &b, &c]).await;
    for r in [&a, &b, &c] {
        assert_eq!(r.cache.mode(), CacheMode::ServerSide);
    }
    converge(&sim, &[&a, &b, &c]).await;

    create(&sim, "late", 60);
    for i in 0..40 {
        sim.delete("configmaps", NS, &format!("cm-{i:03}")).expect("delete");
        sim.merge_patch("configmaps", NS, &format!("cm-{:03}", 100 + i), &json!({"data": {"v": "1"}})).expect("patch");
    }
    converge(&sim, &[&a, &b, &c]).await;

    // A join takes a slice from each of the others: each moves to its new, smaller
    // selector and relists it, and the newcomer caches the moved objects.
    let lists_before: Vec<u64> = [&a, &b, &c].iter().map(|r| r.cache.informer().stats().lists.load(Relaxed)).collect();
    let reshards_before: Vec<u64> = [&a, &b, &c].iter().map(|r| r.cache.reshards()).collect();
    let d = replica(&sim, "replica-d").await;
    members_are(&[&a, &b, &c, &d]).await;
    create(&sim, "joined", 30);
    converge(&sim, &[&a, &b, &c, &d]).await;
    for (i, r) in [&a, &b, &c].iter().enumerate() {
        assert!(r.cache.reshards() > reshards_before[i], "{} moved to a new selector", r.name);
        assert!(r.cache.informer().stats().lists.load(Relaxed) > lists_before[i], "{} relisted its new slice", r.name);
    }

    // A kill: b's lease expires, its ranges go to the others, which relist and
    // cache b's objects.
    b.membership.stop().await;
    b.cache.informer().shutdown();
    members_are(&[&a, &c, &d]).await;
    for i in 0..20 {
        sim.delete("configmaps", NS, &format!("late-{i:03}")).expect("delete");
    }
    converge(&sim, &[&a, &c, &d]).await;

    for r in [&a, &c, &d] {
        r.cache.informer().shutdown();
        r.membership.stop().await;
    }
    sim.shutdown().await;
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

/// Who reconciled what.
#[derive(Default)]
struct Record(Mutex<BTreeMap<String, BTreeSet<String>>>);

struct Ctx {
    replica: String,
    record: Arc<Record>,
}

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, Never> {
    let key = cm.metadata.name.clone().unwrap_or_default();
    ctx.record.0.lock().unwrap().entry(key).or_default().insert(ctx.replica.clone());
    Ok(Action::await_change())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_gate_each_replica_caches_everything_and_reconciles_only_its_keys() {
    let sim = SimServer::builder().start().await.expect("sim");
    create(&sim, "cm", 120);
    let a = replica(&sim, "replica-a").await;
    let b = replica(&sim, "replica-b").await;
    members_are(&[&a, &b]).await;
    let everything: BTreeSet<String> = server(&sim).into_keys().collect();
    for r in [&a, &b] {
        assert_eq!(r.cache.mode(), CacheMode::Everything, "{} found no support", r.name);
        assert!(r.cache.selector().is_none());
        eventually(|| format!("{} caches everything", r.name), || cache(r).into_keys().collect::<BTreeSet<_>>() == everything).await;
    }
    // The controllers start once both see the same two members, so every key has
    // one owner for the whole test.
    let record = Arc::new(Record::default());
    let mut runs = Vec::new();
    for r in [&a, &b] {
        let ctx = Arc::new(Ctx { replica: r.name.clone(), record: Arc::clone(&record) });
        let controller = Controller::<ConfigMap>::new(r.cache.informer()).workers(4).shard(r.membership.clone(), ShardBy::Uid);
        runs.push(tokio::spawn(controller.run(reconcile, |_, _, _| Action::requeue(Duration::from_millis(100)), ctx)));
    }
    eventually(|| format!("every key reconciled: {} of {}", record.0.lock().unwrap().len(), everything.len()), || record.0.lock().unwrap().len() == everything.len()).await;
    let uids: BTreeMap<String, String> = server(&sim).into_iter().map(|(k, (_, uid))| (k, uid)).collect();
    let ranges: BTreeMap<String, _> = [&a, &b].iter().map(|r| (r.name.clone(), r.membership.ranges())).collect();
    let mut per_replica: BTreeMap<String, usize> = BTreeMap::new();
    for (key, by) in record.0.lock().unwrap().iter() {
        assert_eq!(by.len(), 1, "{key} reconciled by {by:?}");
        let replica = by.iter().next().expect("one");
        let hash = fnv1a64(uids[key].as_bytes());
        assert!(ranges[replica].iter().any(|r| r.contains(hash)), "{key} reconciled by {replica}, which does not own it");
        *per_replica.entry(replica.clone()).or_default() += 1;
    }
    assert_eq!(per_replica.len(), 2, "both replicas reconciled some keys: {per_replica:?}");
    for run in runs {
        run.abort();
    }
    for r in [&a, &b] {
        r.cache.informer().shutdown();
        r.membership.stop().await;
    }
    sim.shutdown().await;
}
