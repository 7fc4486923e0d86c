//! The event recorder (`kcache::controller::events`) end to end on the
//! simulator serving `events.k8s.io/v1`: the Event's shape, aggregation into a
//! series, the spam filter, and a slow server that must not block publishing.
//!
//! `the_real_apiserver_accepts_and_returns_the_event_as_written` is
//! `#[ignore]`d: it needs a real server (`KCACHE_REAL_KUBECONFIG`, a `kind-`
//! context on a loopback address); it creates and deletes its own namespace.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kcache::controller::events::{Event, Recorder, RecorderConfig, Reporter};
use kcache_loadgen::sim::{ResourceDef, SimHandle, SimServer};
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

mod real_support;
use real_support::real_client;

const NS: &str = "ev";
const CONTROLLER: &str = "kcache.dev/e2e";

async fn start() -> (SimHandle, kube::Client) {
    let sim = SimServer::builder().resource(ResourceDef::events()).start().await.expect("sim starts");
    let client = sim.client().expect("client");
    make_namespace(&client, NS).await;
    (sim, client)
}

async fn make_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace created");
}

async fn config_map(client: &kube::Client, ns: &str, name: &str) -> ConfigMap {
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).expect("configmap");
    Api::namespaced(client.clone(), ns).create(&PostParams::default(), &cm).await.expect("configmap created")
}

fn reporter() -> Reporter {
    Reporter { controller: CONTROLLER.into(), instance: Some("e2e-0".into()) }
}

fn raw_events(sim: &SimHandle) -> Vec<Value> {
    sim.objects("events.events.k8s.io", Some(NS)).expect("served")
}

/// The fields the recorder writes, compared with what was published.
fn check_shape(raw: &Value, regarding: &ObjectReference, related: &ObjectReference) {
    let name = raw["metadata"]["name"].as_str().expect("name");
    let (prefix, hex) = name.split_once('.').expect("<regarding>.<hex time>");
    assert_eq!(prefix, regarding.name.as_deref().unwrap());
    assert!(!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    assert_eq!(raw["metadata"]["namespace"], json!(regarding.namespace));
    assert_eq!((raw["apiVersion"].as_str(), raw["kind"].as_str()), (Some("events.k8s.io/v1"), Some("Event")));
    assert_eq!(raw["reportingController"], CONTROLLER);
    assert_eq!(raw["reportingInstance"], "e2e-0");
    assert_eq!((raw["action"].as_str(), raw["reason"].as_str()), (Some("Reconcile"), Some("Synced")));
    assert_eq!((raw["type"].as_str(), raw["note"].as_str()), (Some("Normal"), Some("first note")));
    assert_eq!(raw["regarding"], serde_json::to_value(regarding).unwrap());
    assert_eq!(raw["related"], serde_json::to_value(related).unwrap());
    // MicroTime: RFC 3339 with exactly six fractional digits, in UTC.
    let t = raw["eventTime"].as_str().expect("eventTime");
    let frac = t.split_once('.').map(|(_, f)| f).expect("fraction");
    assert!(frac.len() == 7 && frac.ends_with('Z'), "{t}");
    for absent in ["deprecatedCount", "deprecatedFirstTimestamp", "deprecatedLastTimestamp"] {
        assert!(raw[absent].is_null(), "{absent} is not written");
    }
}

fn event() -> Event {
    Event::normal("Synced", "Reconcile").note("first note")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_is_written_with_the_events_k8s_io_shape() {
    let (sim, client) = start().await;
    let cm = config_map(&client, NS, "web").await;
    let other = config_map(&client, NS, "web-extra").await;
    let recorder = Recorder::new(client.clone(), reporter());
    let (regarding, related) = (cm.object_ref(&()), other.object_ref(&()));
    assert!(recorder.publish(&event().related(related.clone()), &regarding));
    recorder.flush().await;

    let raw = raw_events(&sim);
    assert_eq!(raw.len(), 1, "{raw:?}");
    check_shape(&raw[0], &regarding, &related);
    assert!(raw[0]["series"].is_null(), "a single occurrence has no series");
    // And it reads back through kube's typed Event.
    let typed = Api::<K8sEvent>::namespaced(client, NS).list(&ListParams::default()).await.expect("list");
    assert_eq!(typed.items[0].regarding.as_ref(), Some(&regarding));
    assert_eq!(recorder.stats().created.load(Ordering::Relaxed), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_identical_events_become_one_event_with_series_count_ten() {
    let (sim, client) = start().await;
    let cm = config_map(&client, NS, "web").await;
    let recorder = Recorder::new(client, reporter());
    for i in 0..10 {
        // The note is not part of the identity (client-go's isomorphic events).
        let note = if i == 0 { "first note".to_owned() } else { format!("note {i}") };
        assert!(recorder.publish(&Event::normal("Synced", "Reconcile").note(&note), &cm.object_ref(&())));
    }
    recorder.flush().await;

    let raw = raw_events(&sim);
    assert_eq!(raw.len(), 1, "one Event: {raw:?}");
    assert_eq!(raw[0]["series"]["count"], 10);
    assert_eq!(raw[0]["note"], "first note", "the first occurrence's note stays");
    let (first, last) = (raw[0]["eventTime"].as_str().unwrap(), raw[0]["series"]["lastObservedTime"].as_str().unwrap());
    assert!(last >= first, "{first} .. {last}");
    let s = recorder.stats();
    assert_eq!(s.created.load(Ordering::Relaxed), 1);
    assert_eq!(s.aggregated.load(Ordering::Relaxed), 8, "the 3rd..10th only counted");
    assert_eq!(s.series_patched.load(Ordering::Relaxed), 2, "count 2 at once, count 10 on flush");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spam_filter_drops_beyond_the_burst_and_counts_the_drops() {
    let (sim, client) = start().await;
    let noisy = config_map(&client, NS, "noisy").await;
    let quiet = config_map(&client, NS, "quiet").await;
    let recorder = Recorder::new(client, reporter());
    for i in 0..40 {
        recorder.publish(&Event::warning(&format!("Failed{i}"), "Reconcile"), &noisy.object_ref(&()));
    }
    recorder.publish(&Event::warning("Failed0", "Reconcile"), &quiet.object_ref(&()));
    recorder.flush().await;

    let per_object = |name: &str| raw_events(&sim).iter().filter(|e| e["regarding"]["name"] == name).count();
    assert_eq!(per_object("noisy"), 25, "client-go's burst of 25 per object");
    assert_eq!(per_object("quiet"), 1, "another object has its own budget");
    let s = recorder.stats();
    assert_eq!(s.dropped_spam.load(Ordering::Relaxed), 15);
    assert_eq!(s.created.load(Ordering::Relaxed), 26);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_never_blocks_publish() {
    let (sim, client) = start().await;
    let config = RecorderConfig { queue: 8, ..RecorderConfig::default() };
    let recorder = Recorder::with_config(client, reporter(), config);
    sim.set_latency(Duration::from_secs(2));
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..100 {
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            namespace: Some(NS.into()),
            name: Some(format!("cm-{i}")),
            ..ObjectReference::default()
        };
        let t = Instant::now();
        recorder.publish(&event(), &regarding);
        slowest = slowest.max(t.elapsed());
    }
    let publishing = started.elapsed();
    // Meanwhile the background task waits for the server.
    let stuck = tokio::time::timeout(Duration::from_millis(300), recorder.flush()).await;
    assert!(stuck.is_err(), "writing waits for the 2 s server; publishing did not");
    for i in 0..100 {
        let regarding = ObjectReference { name: Some(format!("late-{i}")), namespace: Some(NS.into()), ..ObjectReference::default() };
        let t = Instant::now();
        recorder.publish(&event(), &regarding);
        slowest = slowest.max(t.elapsed());
    }
    let s = recorder.stats();
    let (published, dropped) = (s.published.load(Ordering::Relaxed), s.dropped_full.load(Ordering::Relaxed));
    println!("100 publishes against a 2 s server: {publishing:?} in all; slowest of 200 {slowest:?}; {dropped} dropped");
    assert_eq!(published, 200);
    assert!(dropped > 0, "the bounded queue filled and dropped instead of waiting");

    sim.set_latency(Duration::ZERO);
    recorder.flush().await;
    assert_eq!(raw_events(&sim).len() as u64, published - dropped, "every event not dropped is written");
    assert_eq!(s.failed.load(Ordering::Relaxed), 0);
    sim.shutdown().await;
}

/// Writes an Event, then the same again (a series), on a real kube-apiserver
/// and compares what it returns with what was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: KCACHE_REAL_KUBECONFIG, see docs/TESTING.md"]
async fn the_real_apiserver_accepts_and_returns_the_event_as_written() {
    let client = real_client().await;
    let ns = format!("kcache-events-e2e-{:x}", rand::random::<u32>());
    make_namespace(&client, &ns).await;
    let cm = config_map(&client, &ns, "web").await;
    let other = config_map(&client, &ns, "web-extra").await;
    let recorder = Recorder::new(client.clone(), reporter());
    let (regarding, related) = (cm.object_ref(&()), other.object_ref(&()));
    for _ in 0..3 {
        assert!(recorder.publish(&event().related(related.clone()), &regarding));
    }
    recorder.flush().await;
    let s = recorder.stats();
    assert_eq!((s.created.load(Ordering::Relaxed), s.failed.load(Ordering::Relaxed)), (1, 0));

    let events: Api<K8sEvent> = Api::namespaced(client.clone(), &ns);
    let list = events.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    let raw = serde_json::to_value(&list.items[0]).expect("json");
    check_shape(&raw, &regarding, &related);
    assert_eq!(raw["series"]["count"], 3);
    Api::<Namespace>::all(client).delete(&ns, &DeleteParams::default()).await.expect("namespace deleted");
}
