//! Typed views (`kcache::typed::Store<K>`) over informers fed by `MemorySource`:
//! reads of pods, a cluster-scoped kind and `DynamicObject`s; updates and deletes
//! never served from a stale decode; objects that do not decode; readiness.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kcache::store::{StoreConfig, store};
use kcache::testing::MemorySource;
use kcache::typed::{ObjectRef, Store, WriterDropped};
use kcache::{Informer, InformerConfig};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

fn pod(ns: &str, name: &str, node: &str) -> serde_json::Value {
    json!({"metadata": {"namespace": ns, "name": name, "labels": {"app": "web"}}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}})
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

async fn ready<K>(informer: &Informer) -> Store<K>
where
    K: kube::Resource + serde::de::DeserializeOwned,
    K::DynamicType: Default + PartialEq,
{
    let view = Store::<K>::from_informer(informer);
    tokio::time::timeout(T, view.wait_until_ready()).await.expect("synced in time").expect("informer running");
    view
}

/// Waits until the view's store has applied every event up to `rv`.
async fn applied<K>(view: &Store<K>, rv: u64)
where
    K: kube::Resource + serde::de::DeserializeOwned,
    K::DynamicType: PartialEq,
{
    tokio::time::timeout(T, view.untyped().wait_for(&rv.to_string())).await.expect("applied in time").expect("store open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_read_by_ref_and_key_listed_and_found() {
    let src = MemorySource::new("Pod");
    for (ns, name, node) in [("default", "web-0", "n1"), ("default", "web-1", "n2"), ("prod", "web-0", "n3")] {
        src.apply(pod(ns, name, node));
    }
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let view = ready::<Pod>(&informer).await;

    let p = view.get(&ObjectRef::new("web-0").within("prod")).expect("stored");
    assert_eq!((p.metadata.namespace.as_deref(), node_of(&p)), (Some("prod"), Some("n3")));
    assert_eq!(view.get_by_key("default/web-1").as_deref().and_then(node_of), Some("n2"));
    // A controller's untyped reconcile key converts to the typed reference.
    let key = kcache::ObjectRef::new_namespaced("default", "web-0");
    assert_eq!(view.get(&ObjectRef::from(&key)).as_deref().and_then(node_of), Some("n1"));
    assert!(view.get(&ObjectRef::new("web-1").within("prod")).is_none());
    assert!(view.get(&ObjectRef::new("web-0")).is_none(), "a namespaced pod is not found without its namespace");

    assert_eq!((view.len(), view.is_empty()), (3, false));
    let mut nodes: Vec<String> = view.state().iter().filter_map(|p| node_of(p).map(str::to_owned)).collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"]);
    let on_n2 = view.find(|p| node_of(p) == Some("n2")).expect("one pod is on n2");
    assert_eq!(on_n2.metadata.name.as_deref(), Some("web-1"));
    assert!(view.find(|p| node_of(p) == Some("n9")).is_none());
    assert_eq!(view.state_filter(|p| p.metadata.name.as_deref() == Some("web-0")).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_object_is_decoded_once_and_shared() {
    let src = MemorySource::new("Pod");
    src.apply(pod("default", "a", "n1"));
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let view = ready::<Pod>(&informer).await;
    let r = ObjectRef::new("a").within("default");
    let first = view.get(&r).unwrap();
    let again = view.get(&r).unwrap();
    assert!(Arc::ptr_eq(&first, &again), "the second read is the kept decode");
    let s = view.cache_stats();
    assert_eq!((s.entries, s.inserts, s.hits), (1, 1, 1));
    // A clone shares the cache.
    assert!(Arc::ptr_eq(&view.clone().get(&r).unwrap(), &first));

    // Without a cache, every read decodes.
    let uncached = view.clone().with_cache_capacity(0);
    let (x, y) = (uncached.get(&r).unwrap(), uncached.get(&r).unwrap());
    assert!(!Arc::ptr_eq(&x, &y));
    assert_eq!(x, y);
    assert_eq!(uncached.cache_stats().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_is_read_as_the_new_object_never_the_kept_decode() {
    let src = MemorySource::new("Pod");
    src.apply(pod("default", "a", "n1"));
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let view = ready::<Pod>(&informer).await;
    let r = ObjectRef::new("a").within("default");
    assert_eq!(view.get(&r).as_deref().and_then(node_of), Some("n1"));
    assert_eq!(view.get(&r).as_deref().and_then(node_of), Some("n1"));

    // Same length as before: only the resourceVersion tells the versions apart.
    let rv = src.apply(pod("default", "a", "n2"));
    applied(&view, rv).await;
    let now = view.get(&r).unwrap();
    assert_eq!(node_of(&now), Some("n2"));
    assert_eq!(now.metadata.resource_version.as_deref(), Some(rv.to_string().as_str()));
    assert_eq!(view.state()[0].metadata.resource_version, now.metadata.resource_version);
    assert_eq!(view.cache_stats().inserts, 2);

    for i in 0..20 {
        let rv = src.apply(pod("default", "a", &format!("node-{i}")));
        applied(&view, rv).await;
        assert_eq!(view.get(&r).as_deref().and_then(node_of), Some(format!("node-{i}").as_str()));
    }
    assert_eq!(view.cache_stats().entries, 1, "one entry per key, replaced in place");
}

#[test]
fn hand_built_versions_with_one_resource_version_are_told_apart_by_length() {
    let (reader, mut writer) = store(StoreConfig::default());
    writer.upsert(kcache::testing::pod("ns", "a", "1", &[("app", "x")]));
    let view = Store::<Pod>::new(reader);
    let r = ObjectRef::new("a").within("ns");
    assert_eq!(view.get(&r).unwrap().metadata.labels.as_ref().map(|l| l.len()), Some(1));
    writer.upsert(kcache::testing::pod("ns", "a", "1", &[("app", "x"), ("tier", "web")]));
    assert_eq!(view.get(&r).unwrap().metadata.labels.as_ref().map(|l| l.len()), Some(2));
    // Without a resourceVersion nothing is kept: two versions could not be told apart.
    writer.upsert(kcache::testing::pod("ns", "b", "", &[]));
    assert!(view.get(&ObjectRef::new("b").within("ns")).is_some());
    assert_eq!(view.cache_stats().entries, 1);
}

#[test]
fn readers_racing_a_writer_never_get_a_version_older_than_the_store_held_before_the_read() {
    const WRITES: u64 = 3_000;
    let (reader, mut writer) = store(StoreConfig::default().shards(2));
    writer.upsert(kcache::testing::pod("ns", "a", "1", &[("v", "1")]));
    let view = Store::<Pod>::new(reader).with_cache_capacity(8);
    let rv_of = |p: &Pod| p.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()).expect("numeric rv");
    std::thread::scope(|s| {
        let w = s.spawn(move || {
            for rv in 2..=WRITES {
                let v = rv.to_string();
                writer.upsert(kcache::testing::pod("ns", "a", &v, &[("v", &v)]));
            }
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let view = view.clone();
                s.spawn(move || {
                    let r = ObjectRef::new("a").within("ns");
                    let mut last = 0;
                    while last < WRITES {
                        let before: u64 = view.untyped().get_by_key("ns/a").expect("stored").resource_version().parse().unwrap();
                        let pod = view.get(&r).expect("stored");
                        let rv = rv_of(&pod);
                        assert!(rv >= before, "read version {rv} after the store held {before}");
                        assert!(rv >= last, "read version {rv} after reading {last}");
                        let label = pod.metadata.labels.as_ref().and_then(|l| l.get("v")).cloned();
                        assert_eq!(label, Some(rv.to_string()), "the decode is of the version it is tagged with");
                        last = rv;
                    }
                })
            })
            .collect();
        w.join().expect("writer");
        for r in readers {
            r.join().expect("reader");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_object_reads_as_none_and_its_decode_is_dropped() {
    let src = MemorySource::new("Pod");
    src.apply(pod("default", "a", "n1"));
    src.apply(pod("default", "b", "n1"));
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let view = ready::<Pod>(&informer).await;
    let r = ObjectRef::new("a").within("default");
    let held = view.get(&r).expect("stored");
    assert_eq!(view.cache_stats().entries, 1);
    let rv = src.delete("default/a").expect("existed");
    applied(&view, rv).await;
    assert!(view.get(&r).is_none());
    assert!(view.try_get(&r).unwrap().is_none());
    assert_eq!(view.cache_stats().entries, 0);
    assert_eq!((view.len(), view.state().len()), (1, 1));
    // What a reader took before the delete stays valid.
    assert_eq!(node_of(&held), Some("n1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_scoped_kind_is_read_by_name() {
    let src = MemorySource::new("Namespace");
    for name in ["default", "prod"] {
        src.apply(json!({"metadata": {"name": name, "labels": {"team": name}}}));
    }
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let view = ready::<Namespace>(&informer).await;
    let prod = view.get(&ObjectRef::new("prod")).expect("stored");
    assert_eq!(prod.metadata.labels.as_ref().and_then(|l| l.get("team")).map(String::as_str), Some("prod"));
    // As kube-rs's store: a namespace on the reference does not hide a cluster-scoped object.
    assert!(view.get(&ObjectRef::new("prod").within("anything")).is_some());
    assert!(view.get(&ObjectRef::new("staging")).is_none());
    assert_eq!(view.state().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_objects_are_read_with_their_api_resource() {
    let src = MemorySource::new("Deployment");
    src.apply(json!({"apiVersion": "apps/v1", "metadata": {"namespace": "default", "name": "web"}, "spec": {"replicas": 3}}));
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let deployments = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
    let view = Store::<DynamicObject>::new_with(informer.store(), deployments.clone());
    tokio::time::timeout(T, view.wait_until_ready()).await.unwrap().unwrap();

    let web = view.get(&ObjectRef::new_with("web", deployments).within("default")).expect("stored");
    assert_eq!(web.data["spec"]["replicas"], 3);
    assert_eq!((web.metadata.namespace.as_deref(), web.metadata.name.as_deref()), (Some("default"), Some("web")));
    let other = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "StatefulSet"));
    assert!(view.get(&ObjectRef::new_with("web", other).within("default")).is_none(), "another type's reference finds nothing");
    assert_eq!(view.find(|d| d.data["spec"]["replicas"] == 3).and_then(|d| d.metadata.name.clone()).as_deref(), Some("web"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_does_not_decode_is_an_error_with_its_reason_not_a_panic() {
    let src = MemorySource::new("Pod");
    src.apply(pod("default", "good", "n1"));
    src.apply(json!({"metadata": {"namespace": "default", "name": "bad"}, "spec": {"containers": "not a list"}}));
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let view = ready::<Pod>(&informer).await;
    let bad = ObjectRef::new("bad").within("default");
    let err = view.try_get(&bad).expect_err("containers must be a list");
    assert_eq!((err.key.as_str(), err.kind.as_str()), ("default/bad", "Pod"));
    let text = err.to_string();
    assert!(text.contains("default/bad") && text.contains("Pod") && text.contains("invalid type"), "{text}");
    assert!(view.get(&bad).is_none());
    assert!(view.get_by_key("default/bad").is_none());
    let state = view.state();
    assert_eq!(state.len(), 1, "the undecodable object is left out");
    assert_eq!(state[0].metadata.name.as_deref(), Some("good"));
    assert!(view.find(|p| p.metadata.name.as_deref() == Some("bad")).is_none());
    assert!(view.cache_stats().decode_errors >= 5);
    assert_eq!(view.cache_stats().entries, 0, "a failed decode keeps nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_until_ready_waits_for_the_first_complete_list() {
    let src = MemorySource::new("Pod");
    for i in 0..3 {
        src.apply(pod("default", &format!("p-{i}"), "n1"));
    }
    // The first list fails: the informer syncs only after its backoff and a second list.
    src.fail_next_list(500);
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let view = Store::<Pod>::from_informer(&informer);
    tokio::time::timeout(T, view.wait_until_ready()).await.expect("synced in time").expect("informer running");
    assert!(src.list_calls() >= 2, "ready only after the list that succeeded");
    assert_eq!(view.len(), 3, "ready means the list is in the store");
    // Once ready, it stays ready.
    view.wait_until_ready().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_until_ready_fails_when_the_informer_stops_before_it_synced() {
    let src = MemorySource::new("Pod");
    src.apply(pod("default", "a", "n1"));
    src.fail_next_list(500);
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    let view = Store::<Pod>::from_informer(&informer);
    informer.shutdown();
    let outcome = tokio::time::timeout(T, view.wait_until_ready()).await.expect("resolves in time");
    // The first list failed and the next one is 800 ms of backoff away: the shutdown
    // comes first.
    assert_eq!(outcome, Err(WriterDropped));
    assert!(!view.untyped().has_synced());
}
