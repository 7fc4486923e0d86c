//! End to end: kcache informers over HTTP (kube-client) against the simulator,
//! at scale and under every fault the simulator can inject.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kcache::Obj;
use kcache::client::{CachedClient, ListOptions};
use kcache::Handler;
use kcache::reflector::Backoff;
use kcache::informer::{Informer, InformerConfig};
use kcache::reflector::KubeSource;
use kcache_loadgen::podgen::{self, PodGen};
use kcache_loadgen::sim::{DeleteOptions, SimHandle, SimServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

async fn sim() -> SimHandle {
    SimServer::builder().history(2_000).bookmark_interval(Duration::from_millis(200)).start().await.expect("sim starts")
}

fn informer_config() -> InformerConfig {
    let mut c = InformerConfig::default();
    c.watcher.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
    c.watcher.min_watch_timeout = Duration::from_secs(5);
    c
}

fn server_state(sim: &SimHandle) -> BTreeMap<String, String> {
    sim.objects("pods", None)
        .unwrap()
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            (
                format!("{}/{}", m["namespace"].as_str().unwrap(), m["name"].as_str().unwrap()),
                m["resourceVersion"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn cache_state(i: &Informer) -> BTreeMap<String, String> {
    i.store().list().iter().map(|o| (o.key(), o.resource_version().to_owned())).collect()
}

async fn converge(sim: &SimHandle, informer: &Informer, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if cache_state(informer) == server_state(sim) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "cache did not converge within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pods_sync_over_http_and_match_the_server() {
    let sim = sim().await;
    podgen::load_pods(&sim, "bulk", 10_000, 7).unwrap();
    let source = KubeSource::for_type::<Pod>(sim.client().unwrap(), None);
    let started = Instant::now();
    let informer = Informer::spawn(source, informer_config()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(120)).await, "sync");
    let took = started.elapsed();
    assert_eq!(informer.store().len(), 10_000);
    assert_eq!(cache_state(&informer), server_state(&sim));
    let stats = informer.store().stats();
    eprintln!("synced 10,000 pods in {took:?}; store {stats:?}");
    // The decoded bytes are the server's bytes (no transform configured).
    let one = informer.store().get_by_key("bulk/pod-00042").unwrap();
    let typed: Pod = one.decode().unwrap();
    assert_eq!(typed.metadata.name.as_deref(), Some("pod-00042"));
    sim.shutdown().await;
}

/// What a handler was handed: `A`dd, `U`pdate or `D`elete, the resourceVersion,
/// and whether the object carried `metadata.deletionTimestamp`.
type Call = (char, String, bool);

/// Records, per key, the sequence of what handlers saw.
#[derive(Default)]
struct History {
    per_key: Mutex<HashMap<String, Vec<Call>>>,
}

impl History {
    fn push(&self, kind: char, obj: &Obj) {
        let call = (kind, obj.resource_version().to_owned(), obj.deletion_timestamp().is_some());
        self.per_key.lock().unwrap().entry(obj.key()).or_default().push(call);
    }

    /// Asserts what must hold of every prefix of a key's calls: no update or
    /// delete while absent, no add while present, resourceVersions never going
    /// back, and a deletionTimestamp never going away while the object lives
    /// (names are not reused, so a key is one object).
    fn assert_consistent(&self) {
        for (key, seq) in self.per_key.lock().unwrap().iter() {
            let mut present = false;
            let mut terminating = false;
            let mut last_rv = 0u64;
            for (kind, rv, marked) in seq {
                let rv: u64 = rv.parse().unwrap();
                match kind {
                    'A' => {
                        assert!(!present, "{key}: add while present: {seq:?}");
                        present = true;
                    }
                    'U' => {
                        assert!(present, "{key}: update while absent: {seq:?}");
                        assert!(*marked || !terminating, "{key}: deletionTimestamp went away: {seq:?}");
                    }
                    _ => {
                        assert!(present, "{key}: delete while absent: {seq:?}");
                        present = false;
                    }
                }
                terminating = present && *marked;
                if *kind != 'D' {
                    assert!(rv >= last_rv, "{key}: resourceVersion went back: {seq:?}");
                    last_rv = rv;
                }
            }
        }
    }

    /// Whether each key's last handler state is the server's: present with the
    /// server's resourceVersion, or deleted; `Err` names the first key that is not.
    fn matches(&self, server: &BTreeMap<String, String>) -> Result<(), String> {
        let per_key = self.per_key.lock().unwrap();
        for (key, seq) in per_key.iter() {
            let (kind, rv, _) = seq.last().unwrap();
            match server.get(key) {
                Some(want) if *kind == 'D' => return Err(format!("{key} exists on the server ({want}) but handlers last saw a delete")),
                Some(want) if rv != want => return Err(format!("{key}: handlers last saw {rv}, the server has {want}")),
                None if *kind != 'D' => return Err(format!("{key} was deleted on the server but handlers never saw it go")),
                _ => {}
            }
        }
        match server.keys().find(|k| !per_key.contains_key(*k)) {
            Some(key) => Err(format!("{key} never reached a handler")),
            None => Ok(()),
        }
    }
}

impl Handler for History {
    fn on_add(&self, obj: &Obj, _initial: bool) {
        self.push('A', obj);
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        assert_eq!(old.key(), new.key());
        self.push('U', new);
    }
    fn on_delete(&self, obj: &Obj, _unknown: bool) {
        self.push('D', obj);
    }
}

/// The finalizer some chaos pods are created with; the run's own writes
/// remove it, as the finalizer's controller would.
const CHAOS_FINALIZER: &str = "chaos.kcache.dev/hold";

/// Keys of the pods that carry `metadata.deletionTimestamp`.
fn terminating(objects: impl IntoIterator<Item = (String, bool)>) -> BTreeSet<String> {
    objects.into_iter().filter(|(_, marked)| *marked).map(|(k, _)| k).collect()
}

fn terminating_on_server(sim: &SimHandle) -> BTreeSet<String> {
    terminating(sim.objects("pods", None).unwrap().iter().map(|o| {
        let m = &o["metadata"];
        (format!("{}/{}", m["namespace"].as_str().unwrap(), m["name"].as_str().unwrap()), m["deletionTimestamp"].is_string())
    }))
}

fn terminating_in_cache(i: &Informer) -> BTreeSet<String> {
    terminating(i.store().list().iter().map(|o| (o.key(), o.deletion_timestamp().is_some())))
}

/// Polls `check` until it passes; panics with its last complaint after `within`.
async fn eventually(within: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(e) => assert!(start.elapsed() < within, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_writes_under_every_fault_end_with_the_cache_equal_to_the_server() {
    let sim = sim().await;
    let pods_gen = PodGen::new(3, "chaos");
    let key = |name: &str| format!("chaos/{name}");
    // Pods not being deleted (and which of them carry the chaos finalizer);
    // pods deleted and held by that finalizer; pods deleted gracefully, which
    // the simulated kubelet removes once the clock passes their grace period.
    let mut live: Vec<String> = Vec::new();
    let mut finalized: HashSet<String> = HashSet::new();
    let mut held: Vec<String> = Vec::new();
    let mut graceful: HashSet<String> = HashSet::new();
    for i in 0..200 {
        sim.create("pods", pods_gen.pod(i)).unwrap();
        live.push(PodGen::name(i));
    }
    let informer = Informer::spawn(KubeSource::for_type::<Pod>(sim.client().unwrap(), None), informer_config()).unwrap();
    let history = Arc::new(History::default());
    informer.add_handler(history.clone()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(30)).await);

    // KCACHE_CHAOS_STEPS / KCACHE_CHAOS_SEED make a longer or different run (docs/TESTING.md).
    let steps: usize = std::env::var("KCACHE_CHAOS_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_500);
    let seed: u64 = std::env::var("KCACHE_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(42);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next = 200;
    let mut faults = 0;
    let (mut graceful_deletes, mut finalizer_releases, mut clock_advances) = (0, 0, 0);
    // A pod created with the finalizer, or a bound, running one (deleted
    // gracefully when its grace period is not 0).
    let create = |i: usize, with_finalizer: bool| {
        let mut pod = pods_gen.pod(i);
        if with_finalizer {
            pod["metadata"]["finalizers"] = json!([CHAOS_FINALIZER]);
        }
        sim.create("pods", pod).unwrap();
        PodGen::name(i)
    };
    let chaos_started = Instant::now();
    for step in 0..steps {
        match rng.random_range(0..100) {
            // The finalizer's controller is done: the last finalizer goes, and
            // with it the pod (or, within its grace period, it turns graceful).
            63..=69 if !held.is_empty() => {
                let name = held.swap_remove(rng.random_range(0..held.len()));
                sim.merge_patch("pods", "chaos", &name, &json!({"metadata": {"finalizers": null}})).unwrap();
                if sim.get("pods", "chaos", &name).unwrap().is_some() {
                    graceful.insert(name);
                }
                finalizer_releases += 1;
            }
            // Terminating pods take writes too (held ones stay until released).
            0..=69 if !live.is_empty() || !held.is_empty() => {
                let i = rng.random_range(0..live.len() + held.len());
                let name = if i < live.len() { &live[i] } else { &held[i - live.len()] };
                let patch = json!({"metadata": {"annotations": {"step": step.to_string()}}});
                sim.merge_patch("pods", "chaos", name, &patch).unwrap();
            }
            70..=84 => {
                let with_finalizer = rng.random_range(0..4) == 0;
                let name = create(next, with_finalizer);
                if with_finalizer {
                    finalized.insert(name.clone());
                }
                live.push(name);
                next += 1;
            }
            // Gone at once, whatever its finalizers (as if removed from etcd).
            85..=89 if !live.is_empty() => {
                let name = live.swap_remove(rng.random_range(0..live.len()));
                finalized.remove(&name);
                sim.delete("pods", "chaos", &name).unwrap();
            }
            // A DELETE by the server's rules: the pod's own grace period (30 s;
            // 0 for a finished pod) or grace 0; a finalizer holds it either way.
            roll @ 90..=99 if !live.is_empty() => {
                let name = live.swap_remove(rng.random_range(0..live.len()));
                let grace_period_seconds = (roll >= 97).then_some(0);
                sim.delete_with("pods", "chaos", &name, &DeleteOptions { grace_period_seconds, ..DeleteOptions::default() })
                    .unwrap();
                if finalized.remove(&name) {
                    held.push(name);
                } else if sim.get("pods", "chaos", &name).unwrap().is_some() {
                    graceful_deletes += 1;
                    graceful.insert(name);
                }
            }
            _ => {}
        }
        if step % 100 == 50 {
            faults += 1;
            match (step / 100) % 5 {
                0 => sim.close_watches_every(7),
                1 => {
                    sim.close_watches_every(0);
                    sim.expire_history();
                    sim.restart();
                }
                2 => sim.inject_malformed_frame(),
                3 => sim.restart(),
                _ => sim.set_latency(Duration::from_millis(if step % 200 == 50 { 20 } else { 0 })),
            }
        }
        if step % 100 == 75 {
            // Every grace period so far ends: the kubelet removes those pods
            // (MODIFIED with grace 0, then DELETED) and confirms the held ones.
            sim.advance_clock(Duration::from_secs(31));
            graceful.retain(|name| sim.get("pods", "chaos", name).unwrap().is_some());
            clock_advances += 1;
        }
        if step % 25 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // End with both kinds of terminating pod on the server, whatever the mix drew.
    let name = create(next, true);
    sim.delete_with("pods", "chaos", &name, &DeleteOptions::default()).unwrap();
    held.push(name);
    let mut running = pods_gen.pod(next + 1);
    running["status"]["phase"] = json!("Running");
    sim.create("pods", running).unwrap();
    let name = PodGen::name(next + 1);
    sim.delete_with("pods", "chaos", &name, &DeleteOptions::default()).unwrap();
    graceful.insert(name);

    sim.close_watches_every(0);
    sim.set_latency(Duration::ZERO);
    let took = converge(&sim, &informer, Duration::from_secs(60)).await;
    let stats = informer.stats();
    eprintln!(
        "{steps} writes in {:?}; faults {faults}, relists {}, watch restarts {}, decode errors {}, converged {took:?} after the last write",
        chaos_started.elapsed(),
        stats.relists.load(std::sync::atomic::Ordering::Relaxed),
        stats.watch_restarts.load(std::sync::atomic::Ordering::Relaxed),
        stats.decode_errors.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(stats.watch_restarts.load(std::sync::atomic::Ordering::Relaxed) > 0);

    // Terminating pods are still on the server, and the cache holds them as such.
    // (Only the kubelet writes now, removing graceful pods whose grace period
    // passed on the real clock: compare until both sides agree.)
    eventually(Duration::from_secs(60), || {
        let (server, cache) = (terminating_on_server(&sim), terminating_in_cache(&informer));
        if server == cache { Ok(()) } else { Err(format!("terminating on the server {server:?}, in the cache {cache:?}")) }
    })
    .await;
    let on_server = terminating_on_server(&sim);
    for name in &held {
        assert!(on_server.contains(&key(name)), "{name} is held by its finalizer");
    }
    for k in &on_server {
        let name = k.trim_start_matches("chaos/");
        assert!(held.iter().any(|h| h == name) || graceful.contains(name), "{k} terminates but was never deleted");
    }
    let server = server_state(&sim);
    for name in &live {
        assert!(server.contains_key(&key(name)) && !on_server.contains(&key(name)), "{name} should be live");
    }
    eprintln!(
        "graceful deletes {graceful_deletes}, finalizers released {finalizer_releases}, clock advances {clock_advances}; \
         at the end {} pods, {} terminating ({} held by the finalizer)",
        server.len(),
        on_server.len(),
        held.len()
    );

    // Handler sequences are consistent per key, and their last state is the server's.
    history.assert_consistent();
    eventually(Duration::from_secs(60), || history.matches(&server_state(&sim))).await;
    history.assert_consistent();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_client_reads_from_the_cache_and_writes_through() {
    let sim = sim().await;
    let pods_gen = PodGen::new(9, "apps");
    for i in 0..30 {
        sim.create("pods", pods_gen.pod(i)).unwrap();
    }
    let client = CachedClient::new(sim.client().unwrap()).with_field_index::<Pod>("spec.nodeName", "/spec/nodeName");
    // Before sync: answered by the API server.
    let first: Option<Pod> = client.get(Some("apps"), &PodGen::name(3)).await.unwrap();
    assert_eq!(first.unwrap().metadata.name.unwrap(), PodGen::name(3));
    assert!(client.informer::<Pod>().unwrap().wait_for_sync(Duration::from_secs(30)).await);

    let node = podgen::node_name(5);
    let on_node: Vec<Pod> = client
        .list(&ListOptions { field_index: Some(("spec.nodeName".into(), node.clone())), ..ListOptions::default() })
        .await
        .unwrap();
    let expected = sim.objects("pods", Some("apps")).unwrap().iter().filter(|p| p["spec"]["nodeName"] == node).count();
    assert_eq!(on_node.len(), expected);
    assert!(on_node.iter().all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(node.as_str())));

    let running: Vec<Pod> = client
        .list(&ListOptions { namespace: Some("apps".into()), label_selector: Some("app".into()), ..ListOptions::default() })
        .await
        .unwrap();
    assert_eq!(running.len(), 30);

    // Write through the API, then read our own write from the cache.
    let patched: Pod = client
        .patch("apps", &PodGen::name(1), &kube::api::Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})))
        .await
        .unwrap();
    let rv = patched.metadata.resource_version.unwrap();
    client.wait_for_cache::<Pod>(&rv, Duration::from_secs(10)).await.unwrap();
    let cached: Pod = client.get(Some("apps"), &PodGen::name(1)).await.unwrap().unwrap();
    assert_eq!(cached.metadata.resource_version.as_deref(), Some(rv.as_str()));
    let touched: Vec<Pod> =
        client.list(&ListOptions { label_selector: Some("touched=yes".into()), ..ListOptions::default() }).await.unwrap();
    assert_eq!(touched.len(), 1);

    // The pod is bound to a node: the server deletes it gracefully. The cache
    // first sees it terminating, then gone once the (simulated) kubelet
    // confirms after the grace period.
    client.delete::<Pod>("apps", &PodGen::name(2)).await.unwrap();
    let marked_rv = sim.resource_version().to_string();
    client.wait_for_cache::<Pod>(&marked_rv, Duration::from_secs(10)).await.unwrap();
    let terminating: Pod = client.get(Some("apps"), &PodGen::name(2)).await.unwrap().unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    sim.advance_clock(Duration::from_secs(31));
    let gone_rv = sim.resource_version().to_string();
    assert_ne!(gone_rv, marked_rv, "the kubelet's confirmation is a write");
    client.wait_for_cache::<Pod>(&gone_rv, Duration::from_secs(10)).await.unwrap();
    assert!(client.get::<Pod>(Some("apps"), &PodGen::name(2)).await.unwrap().is_none());
    assert!(client.list::<Pod>(&ListOptions { label_selector: Some("app in (".into()), ..Default::default() }).await.is_err());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_only_informer_caches_partial_objects() {
    let sim = sim().await;
    podgen::load_pods(&sim, "meta", 50, 1).unwrap();
    let source = KubeSource::for_type::<Pod>(sim.client().unwrap(), None).metadata_only(true);
    let informer = Informer::spawn(source, informer_config()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(30)).await);
    assert_eq!(cache_state(&informer), server_state(&sim));
    let name = PodGen::name(1);
    let one = informer.store().get_by_key(&format!("meta/{name}")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&one.json()).unwrap();
    assert_eq!(v["kind"], "PartialObjectMetadata");
    assert!(v.get("spec").is_none() && v.get("status").is_none(), "metadata only: {v}");

    let patched = sim.merge_patch("pods", "meta", &name, &json!({"metadata": {"labels": {"seen": "yes"}}})).unwrap();
    let rv = patched["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    informer.store().wait_for(&rv).await.unwrap();
    let updated = informer.store().get_by_key(&format!("meta/{name}")).unwrap();
    assert_eq!(updated.label("seen"), Some("yes"));
    assert!(updated.json().len() < 2_000, "a partial object stays small: {} bytes", updated.json().len());
    sim.shutdown().await;
}
