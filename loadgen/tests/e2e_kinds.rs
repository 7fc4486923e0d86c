//! End to end on kinds other than pods: kcache informers over HTTP (kube-client)
//! against the simulator for a cluster-scoped kind (nodes), another API group
//! (apps/v1 deployments), a custom resource whose delete waits for a finalizer,
//! and a bound pod's graceful delete.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kcache::reflector::Backoff;
use kcache::{Handler, Informer, InformerConfig, KubeSource, Obj, ObjectRef};
use kcache_loadgen::sim::{RawClient, ResourceDef, SimHandle, SimServer};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(30);

const WIDGET_GROUP: &str = "example.kcache.dev";
const CLEANUP: &str = "example.kcache.dev/cleanup";
const AUDIT: &str = "example.kcache.dev/audit";

async fn sim_with(resources: Vec<ResourceDef>) -> SimHandle {
    let mut b = SimServer::builder().bookmark_interval(Duration::from_millis(200));
    for r in resources {
        b = b.resource(r);
    }
    b.start().await.expect("sim starts")
}

fn informer_config() -> InformerConfig {
    let mut c = InformerConfig::default();
    c.watcher.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
    c.watcher.min_watch_timeout = Duration::from_secs(5);
    c
}

/// What a handler was called with, in call order.
#[derive(Clone, Debug)]
enum Seen {
    Add(Obj, bool),
    Update(Obj, Obj),
    Delete(Obj, bool),
}

impl Seen {
    fn key(&self) -> String {
        match self {
            Seen::Add(o, _) | Seen::Update(_, o) | Seen::Delete(o, _) => o.key(),
        }
    }

    /// `A`, `U` or `D` and the resourceVersion of the object handed over.
    fn short(&self) -> (char, String) {
        match self {
            Seen::Add(o, _) => ('A', o.resource_version().to_owned()),
            Seen::Update(_, o) => ('U', o.resource_version().to_owned()),
            Seen::Delete(o, _) => ('D', o.resource_version().to_owned()),
        }
    }
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl Handler for Recorder {
    fn on_add(&self, obj: &Obj, initial: bool) {
        self.seen.lock().unwrap().push(Seen::Add(obj.clone(), initial));
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        assert_eq!(old.key(), new.key());
        self.seen.lock().unwrap().push(Seen::Update(old.clone(), new.clone()));
    }
    fn on_delete(&self, obj: &Obj, unknown: bool) {
        self.seen.lock().unwrap().push(Seen::Delete(obj.clone(), unknown));
    }
}

impl Recorder {
    fn of(&self, key: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.key() == key).cloned().collect()
    }

    /// Waits until the handler was called for `key` until `done` says so.
    async fn wait(&self, key: &str, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let start = Instant::now();
        loop {
            let seen = self.of(key);
            if done(&seen) {
                return seen;
            }
            assert!(start.elapsed() < T, "{key}: handlers never saw {what}; saw {:?}", shorts(&seen));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the `n`-th handler call for `key`.
    async fn wait_calls(&self, key: &str, n: usize) -> Vec<Seen> {
        self.wait(key, &format!("{n} calls"), |s| s.len() >= n).await
    }
}

fn shorts(seen: &[Seen]) -> Vec<(char, String)> {
    seen.iter().map(Seen::short).collect()
}

async fn spawn(source: KubeSource) -> (Informer, Arc<Recorder>) {
    let informer = Informer::spawn(source, informer_config()).expect("informer");
    let recorder = Arc::new(Recorder::default());
    let id = informer.add_handler(recorder.clone()).expect("handler");
    assert!(informer.wait_for_sync(T).await, "informer synced");
    // The store syncs first; the handler once its initial adds were delivered.
    let start = Instant::now();
    while !informer.handler_synced(id) {
        assert!(start.elapsed() < T, "handler synced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (informer, recorder)
}

/// `namespace/name` (or `name` for a cluster-scoped object) -> resourceVersion, on the server.
fn server_state(sim: &SimHandle, resource: &str) -> BTreeMap<String, String> {
    sim.objects(resource, None)
        .expect("served")
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            let name = m["name"].as_str().unwrap();
            let key = match m["namespace"].as_str() {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_owned(),
            };
            (key, m["resourceVersion"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn cache_state(i: &Informer) -> BTreeMap<String, String> {
    i.store().list().iter().map(|o| (o.key(), o.resource_version().to_owned())).collect()
}

async fn converge(sim: &SimHandle, resource: &str, informer: &Informer) {
    let start = Instant::now();
    while cache_state(informer) != server_state(sim, resource) {
        assert!(
            start.elapsed() < T,
            "{resource}: cache {:?} never became the server's {:?}",
            cache_state(informer),
            server_state(sim, resource)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn finalizers(o: &Obj) -> Vec<String> {
    o.pointer("/metadata/finalizers")
        .and_then(|f| serde_json::from_value(f).ok())
        .unwrap_or_default()
}

fn grace(o: &Obj) -> Option<i64> {
    o.pointer("/metadata/deletionGracePeriodSeconds").and_then(|g| g.as_i64())
}

fn rv(o: &Obj) -> u64 {
    o.resource_version().parse().expect("numeric resourceVersion")
}

fn node(i: usize) -> Value {
    let name = format!("node-{i:03}");
    let zone = ["eu-west-1a", "eu-west-1b", "eu-west-1c"][i % 3];
    let ts = "2026-11-02T08:14:51Z";
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.xlarge",
                "topology.kubernetes.io/region": "eu-west-1",
                "topology.kubernetes.io/zone": zone,
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "podCIDR": format!("10.244.{i}.0/24"),
            "podCIDRs": [format!("10.244.{i}.0/24")],
            "providerID": format!("aws:///{zone}/i-0{:016x}", i * 7919),
        },
        "status": {
            "capacity": {"cpu": "4", "ephemeral-storage": "83873772Ki", "memory": "16069924Ki", "pods": "110"},
            "allocatable": {"cpu": "3920m", "ephemeral-storage": "76224326324", "memory": "15052068Ki", "pods": "110"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
                 "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available"},
                {"type": "DiskPressure", "status": "False", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
                 "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure"},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
                 "reason": "KubeletReady", "message": "kubelet is posting ready status"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": format!("192.168.{}.{}", i / 250, 10 + i % 250)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:032x}", i * 104_729),
                "systemUUID": format!("ec2{:05x}-0000-0000-0000-{:012x}", i, i * 31),
                "bootID": format!("{:08x}-1111-2222-3333-444455556666", i),
                "kernelVersion": "6.1.112-124.190.amzn2023.x86_64",
                "osImage": "Amazon Linux 2023.6.20241031",
                "containerRuntimeVersion": "containerd://1.7.22",
                "kubeletVersion": "v1.31.2",
                "kubeProxyVersion": "v1.31.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_cluster_scoped_in_the_cache_and_follow_the_server() {
    let sim = sim_with(Vec::new()).await;
    for i in 0..12 {
        sim.create("nodes", node(i)).expect("create node");
    }
    let client = sim.client().expect("client");
    let (informer, rec) = spawn(KubeSource::for_type::<Node>(client.clone(), None)).await;
    let store = informer.store();
    assert_eq!(store.len(), 12);
    for o in store.list() {
        assert_eq!(o.namespace(), None, "{o:?}");
        assert_eq!(o.key(), o.name(), "a cluster-scoped key is the bare name");
    }
    let by_ref = store.get(&ObjectRef::new_cluster("node-003")).expect("get by name");
    assert_eq!(Some(by_ref.clone()), store.get_by_key("node-003"));
    let typed: Node = by_ref.decode().expect("a Node");
    assert_eq!(typed.metadata.name.as_deref(), Some("node-003"));
    assert_eq!(typed.metadata.namespace, None);
    assert_eq!(typed.status.unwrap().node_info.unwrap().kubelet_version, "v1.31.2");
    assert!(store.get(&ObjectRef::new_namespaced("default", "node-003")).is_none());
    let initial = rec.seen.lock().unwrap().clone();
    assert_eq!(initial.len(), 12);
    assert!(initial.iter().all(|s| matches!(s, Seen::Add(_, true))), "{:?}", shorts(&initial));

    // Writes over HTTP, at /api/v1/nodes.
    let nodes: Api<Node> = Api::all(client);
    nodes.create(&PostParams::default(), &serde_json::from_value(node(12)).unwrap()).await.expect("POST node");
    let patched = nodes
        .patch(
            "node-004",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"node-role.kubernetes.io/ingress": ""}}, "spec": {"unschedulable": true}})),
        )
        .await
        .expect("PATCH node");
    nodes.delete("node-005", &DeleteParams::default()).await.expect("DELETE node");

    let added = rec.wait_calls("node-012", 1).await;
    assert!(matches!(&added[..], [Seen::Add(o, false)] if o.namespace().is_none()), "{:?}", shorts(&added));
    let updated = rec.wait_calls("node-004", 2).await;
    match &updated[..] {
        [Seen::Add(_, true), Seen::Update(old, new)] => {
            assert_eq!(old.label("node-role.kubernetes.io/ingress"), None);
            assert_eq!(new.label("node-role.kubernetes.io/ingress"), Some(""));
            assert_eq!(new.pointer("/spec/unschedulable"), Some(json!(true)));
            assert_eq!(Some(new.resource_version()), patched.metadata.resource_version.as_deref());
        }
        other => panic!("node-004: {:?}", shorts(other)),
    }
    let deleted = rec.wait_calls("node-005", 2).await;
    assert!(
        matches!(&deleted[..], [Seen::Add(_, true), Seen::Delete(o, false)] if o.name() == "node-005"),
        "node-005: {:?}",
        shorts(&deleted)
    );
    converge(&sim, "nodes", &informer).await;
    assert!(store.get(&ObjectRef::new_cluster("node-005")).is_none());
    assert!(store.get(&ObjectRef::new_cluster("node-012")).is_some());
    assert_eq!(store.len(), 12);
    informer.shutdown();
    sim.shutdown().await;
}

fn deployment(ns: &str, name: &str, replicas: i64) -> Value {
    let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": ns});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": "1"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{
                        "name": name,
                        "image": format!("registry.example.invalid/{ns}/{name}:v1.4.2"),
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                           "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "securityContext": {},
                    "schedulerName": "default-scheduler",
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability.",
                 "lastUpdateTime": "2026-11-02T08:20:00Z", "lastTransitionTime": "2026-11-02T08:20:00Z"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": format!("ReplicaSet \"{name}-5d8f7c9b4\" has successfully progressed."),
                 "lastUpdateTime": "2026-11-02T08:20:00Z", "lastTransitionTime": "2026-11-02T08:19:31Z"},
            ],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_listed_and_watched_under_apis_apps_v1() {
    let sim = sim_with(vec![ResourceDef::deployments()]).await;
    for (ns, n) in [("shop", 5), ("blog", 3)] {
        for i in 0..n {
            sim.create("deployments.apps", deployment(ns, &format!("web-{i}"), 2 + i)).expect("create");
        }
    }
    // The apps group's URL space is served, and the core group's is not.
    let mut raw = RawClient::connect(sim.addr()).await.expect("connect");
    let (code, list) = get(&mut raw, "/apis/apps/v1/namespaces/shop/deployments").await;
    assert_eq!((code, list["kind"].as_str(), list["items"].as_array().map(Vec::len)), (200, Some("DeploymentList"), Some(5)));
    assert_eq!(list["apiVersion"], "apps/v1");
    let (code, list) = get(&mut raw, "/apis/apps/v1/deployments").await;
    assert_eq!((code, list["items"].as_array().map(Vec::len)), (200, Some(8)));
    let (code, one) = get(&mut raw, "/apis/apps/v1/namespaces/blog/deployments/web-2").await;
    assert_eq!((code, one["kind"].as_str(), one["apiVersion"].as_str()), (200, Some("Deployment"), Some("apps/v1")));
    let (code, discovery) = get(&mut raw, "/apis/apps/v1").await;
    assert_eq!(code, 200);
    assert!(
        discovery["resources"].as_array().unwrap().iter().any(|r| r["name"] == "deployments" && r["namespaced"] == true),
        "{discovery}"
    );
    assert_eq!(get(&mut raw, "/api/v1/namespaces/shop/deployments").await.0, 404);
    assert_eq!(get(&mut raw, "/apis/extensions/v1beta1/namespaces/shop/deployments").await.0, 404);
    let before = sim.stats();

    let client = sim.client().expect("client");
    let (all, rec) = spawn(KubeSource::for_type::<Deployment>(client.clone(), None)).await;
    let (blog, _) = spawn(KubeSource::for_type::<Deployment>(client.clone(), Some("blog"))).await;
    assert_eq!(all.store().len(), 8);
    assert_eq!(cache_state(&blog), server_state(&sim, "deployments.apps").into_iter().filter(|(k, _)| k.starts_with("blog/")).collect());
    let cached: Deployment = all.store().get_by_key("shop/web-3").expect("shop/web-3").decode().expect("a Deployment");
    let spec = cached.spec;
    assert_eq!(spec.replicas, Some(5));
    assert_eq!(spec.template.spec.unwrap().containers[0].image.as_deref(), Some("registry.example.invalid/shop/web-3:v1.4.2"));
    assert_eq!(all.store().get_by_key("shop/web-0").unwrap().generation(), Some(1));

    // Writes over HTTP: scale (a spec change: a new generation), create, delete.
    let shop: Api<Deployment> = Api::namespaced(client, "shop");
    shop.patch("web-0", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 7}}))).await.expect("scale");
    shop.create(&PostParams::default(), &serde_json::from_value(deployment("shop", "api", 3)).unwrap()).await.expect("create");
    shop.delete("web-1", &DeleteParams::default()).await.expect("delete");
    let scaled = rec.wait_calls("shop/web-0", 2).await;
    match &scaled[..] {
        [Seen::Add(_, true), Seen::Update(old, new)] => {
            assert_eq!((old.generation(), new.generation()), (Some(1), Some(2)));
            assert_eq!(new.pointer("/spec/replicas"), Some(json!(7)));
            assert_eq!(new.pointer("/apiVersion"), Some(json!("apps/v1")));
        }
        other => panic!("shop/web-0: {:?}", shorts(other)),
    }
    let created = rec.wait_calls("shop/api", 1).await;
    assert!(matches!(&created[..], [Seen::Add(o, false)] if o.namespace() == Some("shop")), "{:?}", shorts(&created));
    let deleted = rec.wait_calls("shop/web-1", 2).await;
    assert!(matches!(&deleted[..], [Seen::Add(_, true), Seen::Delete(_, false)]), "{:?}", shorts(&deleted));
    converge(&sim, "deployments.apps", &all).await;
    assert_eq!(all.store().len(), 8);
    assert_eq!(cache_state(&blog).len(), 3, "writes in shop do not reach the blog informer");

    let after = sim.stats();
    assert!(after.list >= before.list + 2 && after.watch >= before.watch + 2, "{before:?} -> {after:?}");
    assert_eq!(after.errors, before.errors, "every informer request was served");
    all.shutdown();
    blog.shutdown();
    sim.shutdown().await;
}

async fn get(raw: &mut RawClient, path: &str) -> (u16, Value) {
    let r = raw.request("GET", path, &[], Vec::new()).await.expect("request");
    (r.status, if r.body.is_empty() { Value::Null } else { r.json() })
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(WIDGET_GROUP, "v1", "Widget"), "widgets")
}

fn widget(name: &str, finalizers: &[&str]) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.kcache.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "factory", "labels": {"line": "a"}, "finalizers": finalizers},
        "spec": {"size": 3, "color": "blue", "parts": [{"name": "gear", "count": 12}]},
    }))
    .expect("a DynamicObject")
}

/// A widget with a finalizer: the DELETE only marks it (the handler sees an
/// update carrying `deletionTimestamp`, the cache keeps it); the write that
/// removes its last finalizer deletes it. The real server sends only DELETED
/// for that write, no MODIFIED (k8s.io/apiserver/pkg/registry/generic/registry/store.go:
/// `Update` -> `ShouldDeleteDuringUpdate` -> `deleteWithoutFinalizers`), and the
/// DELETED object is the last stored version, finalizers and all, at the
/// deletion's resourceVersion (k8s.io/apiserver/pkg/storage/etcd3/watcher.go
/// `prepareObjects`: "this sends the *old* object with the etcd revision for
/// the time at which it gets deleted").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_with_a_finalizer_is_deleted_only_when_the_finalizer_goes() {
    let sim = sim_with(vec![ResourceDef::new(WIDGET_GROUP, "v1", "Widget", "widgets", true)]).await;
    sim.create("widgets.example.kcache.dev", serde_json::to_value(widget("plain", &[])).unwrap()).expect("create");
    let client = sim.client().expect("client");
    let ar = widget_resource();
    let (informer, rec) = spawn(KubeSource::new(client.clone(), &ar, None)).await;
    assert!(matches!(&rec.of("factory/plain")[..], [Seen::Add(_, true)]));
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, "factory", &ar);

    // One finalizer.
    widgets.create(&PostParams::default(), &widget("guarded", &[CLEANUP])).await.expect("POST widget");
    let key = "factory/guarded";
    rec.wait_calls(key, 1).await;
    let marked = widgets.delete("guarded", &DeleteParams::default()).await.expect("DELETE widget");
    let marked = marked.left().expect("the marked object, not a Status");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let seen = rec.wait_calls(key, 2).await;
    let terminating = match &seen[..] {
        [Seen::Add(added, false), Seen::Update(old, new)] => {
            assert_eq!(finalizers(added), [CLEANUP]);
            assert_eq!(old.deletion_timestamp(), None);
            assert!(new.deletion_timestamp().is_some(), "MODIFIED carries deletionTimestamp");
            assert_eq!(grace(new), Some(0), "an object waiting only for finalizers");
            assert_eq!(finalizers(new), [CLEANUP]);
            assert_eq!(Some(new.resource_version()), marked.metadata.resource_version.as_deref());
            new.clone()
        }
        other => panic!("{key}: {:?}", shorts(other)),
    };
    let cached = informer.store().get_by_key(key).expect("a terminating object stays in the cache");
    assert_eq!(cached, terminating);
    assert!(sim.get("widgets.example.kcache.dev", "factory", "guarded").unwrap().is_some());

    // A terminating object cannot gain finalizers: 422, no event.
    let refused = widgets
        .patch("guarded", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": [CLEANUP, AUDIT]}})))
        .await
        .expect_err("no new finalizers on a terminating object");
    assert!(matches!(&refused, kube::Error::Api(s) if s.code == 422), "{refused:?}");

    widgets
        .patch("guarded", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .expect("remove the finalizer");
    let seen = rec.wait(key, "the delete", |s| matches!(s.last(), Some(Seen::Delete(..)))).await;
    match &seen[..] {
        [Seen::Add(..), Seen::Update(..), Seen::Delete(last, unknown)] => {
            assert!(!unknown, "seen on the watch, not inferred from a relist");
            assert!(rv(last) > rv(&terminating), "the deletion has its own resourceVersion");
            assert!(last.deletion_timestamp().is_some());
            assert_eq!(finalizers(last), [CLEANUP], "DELETED carries the last stored version");
        }
        other => panic!("{key}: expected add, update, delete: {:?}", shorts(other)),
    }
    assert!(informer.store().get_by_key(key).is_none());
    assert!(sim.get("widgets.example.kcache.dev", "factory", "guarded").unwrap().is_none());

    // Two finalizers: removing the first is an ordinary update.
    widgets.create(&PostParams::default(), &widget("double", &[CLEANUP, AUDIT])).await.expect("POST widget");
    let key = "factory/double";
    rec.wait_calls(key, 1).await;
    widgets.delete("double", &DeleteParams::default()).await.expect("DELETE widget");
    rec.wait_calls(key, 2).await;
    widgets
        .patch("double", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": [CLEANUP]}})))
        .await
        .expect("remove one finalizer");
    rec.wait_calls(key, 3).await;
    widgets
        .patch("double", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": []}})))
        .await
        .expect("remove the last finalizer");
    let seen = rec.wait_calls(key, 4).await;
    match &seen[..] {
        [Seen::Add(..), Seen::Update(_, marked), Seen::Update(_, fewer), Seen::Delete(last, false)] => {
            assert_eq!((finalizers(marked), marked.deletion_timestamp().is_some()), (vec![CLEANUP.into(), AUDIT.into()], true));
            assert_eq!(finalizers(fewer), [CLEANUP]);
            assert_eq!(fewer.deletion_timestamp(), marked.deletion_timestamp(), "deletionTimestamp never moves");
            assert_eq!(finalizers(last), [CLEANUP]);
        }
        other => panic!("{key}: expected add, update, update, delete: {:?}", shorts(other)),
    }

    converge(&sim, "widgets.example.kcache.dev", &informer).await;
    assert_eq!(cache_state(&informer).into_keys().collect::<Vec<_>>(), ["factory/plain"]);
    assert_eq!(rec.of("factory/plain").len(), 1, "other keys saw nothing");
    informer.shutdown();
    sim.shutdown().await;
}

/// A pod bound to a node is deleted gracefully: the handler sees it
/// terminating (deletionTimestamp, deletionGracePeriodSeconds 30), and its
/// delete once the simulated kubelet confirms after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_pods_graceful_delete_reaches_handlers_in_two_steps() {
    let sim = sim_with(Vec::new()).await;
    sim.create(
        "pods",
        json!({
            "metadata": {"name": "web", "namespace": "grace", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-007", "terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "app", "image": "registry.example.invalid/web:v2"}]},
            "status": {"phase": "Running"},
        }),
    )
    .expect("create");
    let client = sim.client().expect("client");
    let (informer, rec) = spawn(KubeSource::for_type::<Pod>(client.clone(), Some("grace"))).await;
    let key = "grace/web";

    let pods: Api<Pod> = Api::namespaced(client, "grace");
    let marked = pods.delete("web", &DeleteParams::default()).await.expect("DELETE pod");
    let marked = marked.left().expect("the pod, not a Status");
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    let seen = rec.wait_calls(key, 2).await;
    let terminating = match &seen[..] {
        [Seen::Add(_, true), Seen::Update(old, new)] => {
            assert_eq!(old.deletion_timestamp(), None);
            assert_eq!(grace(new), Some(30));
            let stored = sim.get("pods", "grace", "web").unwrap().expect("still on the server");
            assert_eq!(new.deletion_timestamp(), stored["metadata"]["deletionTimestamp"].as_str());
            assert_eq!(new.resource_version(), marked.metadata.resource_version.as_deref().unwrap());
            new.clone()
        }
        other => panic!("{key}: {:?}", shorts(other)),
    };
    assert_eq!(informer.store().get_by_key(key).as_ref(), Some(&terminating), "terminating, still cached");

    // Before the grace period ends the kubelet leaves the pod alone.
    sim.advance_clock(Duration::from_secs(20));
    assert!(sim.get("pods", "grace", "web").unwrap().is_some());
    sim.advance_clock(Duration::from_secs(11));
    let seen = rec.wait(key, "the delete", |s| matches!(s.last(), Some(Seen::Delete(..)))).await;
    // The kubelet's delete with grace 0 is MODIFIED then DELETED, committed
    // together; the fifo may hand both over as one delete of the final state.
    match &seen[2..] {
        [Seen::Delete(last, false)] => assert_eq!(grace(last), Some(0)),
        [Seen::Update(_, zero), Seen::Delete(last, false)] => {
            assert_eq!(grace(zero), Some(0));
            assert_eq!(grace(last), Some(0));
            assert!(rv(last) > rv(zero));
        }
        _ => panic!("{key}: expected the delete after the update: {:?}", shorts(&seen)),
    }
    assert!(informer.store().get_by_key(key).is_none());
    converge(&sim, "pods", &informer).await;
    informer.shutdown();
    sim.shutdown().await;
}
