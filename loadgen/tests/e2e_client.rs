//! End to end: `CachedClient`'s writes (server-side apply, the status
//! subresource, cluster-scoped kinds) and its reads against the simulator,
//! with read-your-writes and the API calls each path makes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodCondition, PodStatus};
use kcache::client::{CachedClient, ClientError, ListOptions};
use kcache_loadgen::sim::{ResourceDef, SimHandle, SimServer};
use kube::api::Patch;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

const SYNC: Duration = Duration::from_secs(30);

async fn sim() -> SimHandle {
    SimServer::builder()
        .history(2_000)
        .bookmark_interval(Duration::from_millis(200))
        .resource(ResourceDef::new("example.com", "v1", "Tenant", "tenants", false))
        .resource(ResourceDef::deployments())
        .start()
        .await
        .expect("sim starts")
}

fn config_map(ns: &str, name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"namespace": ns, "name": name}, "data": data}))
    .expect("a ConfigMap")
}

/// `(manager, operation, subresource, fieldsV1)` of each managedFields entry.
fn managers<K: kube::Resource>(obj: &K) -> Vec<(String, String, Option<String>, Value)> {
    obj.meta()
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
                e.subresource.clone(),
                e.fields_v1.as_ref().map_or(Value::Null, |f| f.0.clone()),
            )
        })
        .collect()
}

fn rv<K: kube::Resource>(obj: &K) -> u64 {
    obj.meta().resource_version.as_deref().expect("a resourceVersion").parse().expect("numeric")
}

fn api_status(e: ClientError) -> kube::core::Status {
    match e {
        ClientError::Api(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_then_updates_and_a_no_op_apply_writes_nothing() {
    let sim = sim().await;
    let client = CachedClient::new(sim.client().unwrap());
    let created: ConfigMap = client.apply(&config_map("default", "c1", json!({"x": "1"})), "alice", false).await.unwrap();
    assert_eq!(created.data.as_ref().unwrap()["x"], "1");
    assert_eq!(managers(&created), vec![("alice".into(), "Apply".into(), None, json!({"f:data": {"f:x": {}}}))]);
    let entry = &created.metadata.managed_fields.as_ref().unwrap()[0];
    assert_eq!((entry.api_version.as_deref(), entry.fields_type.as_deref()), (Some("v1"), Some("FieldsV1")));
    assert!(entry.time.is_some());
    assert_eq!(sim.stats().create, 0, "an apply is a PATCH, even when it creates");

    let updated: ConfigMap = client.apply(&config_map("default", "c1", json!({"x": "2", "y": "3"})), "alice", false).await.unwrap();
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    assert!(rv(&updated) > rv(&created));
    assert_eq!(updated.data.as_ref().unwrap().get("y").map(String::as_str), Some("3"));
    assert_eq!(managers(&updated)[0].3, json!({"f:data": {"f:x": {}, "f:y": {}}}));

    let again: ConfigMap = client.apply(&config_map("default", "c1", json!({"x": "2", "y": "3"})), "alice", false).await.unwrap();
    assert_eq!(rv(&again), rv(&updated), "a no-op apply is not a write");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_manager_conflicts_and_force_takes_the_field_over() {
    let sim = sim().await;
    let client = CachedClient::new(sim.client().unwrap());
    let _: ConfigMap = client.apply(&config_map("default", "c1", json!({"x": "1", "y": "2"})), "alice", false).await.unwrap();

    let err = client.apply(&config_map("default", "c1", json!({"x": "9", "z": "3"})), "bob", false).await.unwrap_err();
    let status = api_status(err);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(status.message, r#"Apply failed with 1 conflict: conflict with "alice": .data.x"#);
    let causes = status.details.expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(
        (causes[0].reason.as_str(), causes[0].message.as_str(), causes[0].field.as_str()),
        ("FieldManagerConflict", r#"conflict with "alice""#, ".data.x")
    );
    // Nothing was written.
    assert_eq!(sim.get("configmaps", "default", "c1").unwrap().unwrap()["data"], json!({"x": "1", "y": "2"}));

    // Two fields: one cause each, the message lists them.
    let err = client.apply(&config_map("default", "c1", json!({"x": "9", "y": "7"})), "bob", false).await.unwrap_err();
    let status = api_status(err);
    assert_eq!(status.message, "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .data.x\n- .data.y");
    assert_eq!(status.details.unwrap().causes.len(), 2);

    // The same value is shared ownership, not a conflict.
    let shared: ConfigMap = client.apply(&config_map("default", "c1", json!({"y": "2"})), "carol", false).await.unwrap();
    assert_eq!(managers(&shared).len(), 2);

    let forced: ConfigMap = client.apply(&config_map("default", "c1", json!({"x": "9", "z": "3"})), "bob", true).await.unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["x"], "9");
    let owners = managers(&forced);
    assert_eq!(owners[0], ("alice".into(), "Apply".into(), None, json!({"f:data": {"f:y": {}}})));
    assert_eq!(owners[2], ("bob".into(), "Apply".into(), None, json!({"f:data": {"f:x": {}, "f:z": {}}})));

    // alice lost x: re-applying her old value now conflicts with bob.
    let err = client.apply(&config_map("default", "c1", json!({"x": "1", "y": "2"})), "alice", false).await.unwrap_err();
    assert_eq!(api_status(err).message, r#"Apply failed with 1 conflict: conflict with "bob": .data.x"#);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_a_manager_stops_applying_are_removed_unless_someone_else_owns_them() {
    let sim = sim().await;
    let client = CachedClient::new(sim.client().unwrap());
    let _: ConfigMap = client.apply(&config_map("default", "c1", json!({"x": "1", "y": "2", "w": "4"})), "alice", false).await.unwrap();
    let _: ConfigMap = client.apply(&config_map("default", "c1", json!({"w": "4"})), "bob", false).await.unwrap();
    let after: ConfigMap = client.apply(&config_map("default", "c1", json!({"x": "1"})), "alice", false).await.unwrap();
    let data = after.data.clone().unwrap();
    assert_eq!(data.get("y"), None, "alice alone owned y");
    assert_eq!(data.get("w").map(String::as_str), Some("4"), "bob owns w too");
    assert_eq!(managers(&after)[0].3, json!({"f:data": {"f:x": {}}}));

    // Containers merge by name: one manager's container survives another's
    // apply. (A pod's containers are immutable on the real server: a
    // deployment's template's are not.)
    let deployment = |containers: Value| -> Deployment {
        serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": "default", "name": "d1"},
            "spec": {"selector": {"matchLabels": {"app": "d1"}},
                     "template": {"metadata": {"labels": {"app": "d1"}}, "spec": {"containers": containers}}}}))
        .unwrap()
    };
    let names = |d: &Deployment| -> Vec<String> {
        d.spec.template.spec.as_ref().unwrap().containers.iter().map(|c| c.name.clone()).collect()
    };
    let _: Deployment = client.apply(&deployment(json!([{"name": "a", "image": "busybox", "args": ["x"]}])), "alice", false).await.unwrap();
    let both: Deployment = client.apply(&deployment(json!([{"name": "b", "image": "nginx"}])), "bob", false).await.unwrap();
    assert_eq!(names(&both), ["a", "b"]);
    assert_eq!(
        managers(&both)[0].3["f:spec"]["f:template"]["f:spec"],
        json!({"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}}})
    );
    assert_eq!(managers(&both)[0].3["f:spec"]["f:selector"], json!({}), "a selector is owned whole");
    let err = client.apply(&deployment(json!([{"name": "a", "image": "nginx"}])), "bob", false).await.unwrap_err();
    assert_eq!(
        api_status(err).message,
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.template.spec.containers[name="a"].image"#
    );
    let only_b: Deployment = client.apply(&deployment(json!([{"name": "b", "image": "nginx"}])), "alice", true).await.unwrap();
    assert_eq!(names(&only_b), ["b"], "alice dropped container a, which she alone owned");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_leave_the_spec_and_spec_writes_leave_the_status() {
    let sim = sim().await;
    let client = CachedClient::new(sim.client().unwrap());
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "default", "name": "p1"},
        "spec": {"containers": [{"name": "a", "image": "busybox"}]}}))
    .unwrap();
    let created: Pod = client.apply(&pod, "alice", false).await.unwrap();
    assert_eq!(created.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));

    // PUT /status with another spec: the spec stays, the status changes.
    let mut body = created.clone();
    body.spec.as_mut().unwrap().containers[0].image = Some("nginx".into());
    body.status.as_mut().unwrap().message = Some("from replace_status".into());
    let replaced: Pod = client.replace_status("default", "p1", &body).await.unwrap();
    assert_eq!(replaced.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("busybox"));
    assert_eq!(replaced.status.as_ref().unwrap().message.as_deref(), Some("from replace_status"));
    assert_eq!(replaced.metadata.generation, created.metadata.generation);

    // A merge patch of /status.
    let patched: Pod = client
        .patch_status("default", "p1", &Patch::Merge(json!({"spec": {"nodeName": "n1"}, "status": {"reason": "Testing"}})))
        .await
        .unwrap();
    assert_eq!(patched.spec.as_ref().unwrap().node_name, None);
    assert_eq!(patched.status.as_ref().unwrap().reason.as_deref(), Some("Testing"));

    // Apply to /status: its own managedFields entry, conditions keyed by type.
    let mut status_cfg: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "default", "name": "p1"}}))
    .unwrap();
    status_cfg.status = Some(PodStatus {
        conditions: Some(vec![PodCondition { type_: "Ready".into(), status: "False".into(), ..Default::default() }]),
        ..Default::default()
    });
    let applied: Pod = client.apply_status(&status_cfg, "carol", false).await.unwrap();
    assert_eq!(applied.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].type_, "Ready");
    let carol = managers(&applied).into_iter().find(|m| m.0 == "carol").expect("carol's entry");
    assert_eq!(carol.2.as_deref(), Some("status"));
    assert_eq!(carol.3, json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}}));
    // Apply through the status Patch variant, as the client's field manager.
    let via_patch: Pod = client
        .patch_status("default", "p1", &Patch::Apply(json!({"apiVersion": "v1", "kind": "Pod", "status": {"message": "applied"}})))
        .await
        .unwrap();
    assert_eq!(via_patch.status.as_ref().unwrap().message.as_deref(), Some("applied"));
    assert!(managers(&via_patch).iter().any(|m| m.0 == "kcache" && m.2.as_deref() == Some("status")));

    // Main-resource writes keep the status: apply, merge patch, replace.
    let mut with_status = pod.clone();
    with_status.status = Some(PodStatus { message: Some("ignored".into()), ..Default::default() });
    let main: Pod = client.apply(&with_status, "alice", false).await.unwrap();
    assert_eq!(main.status, via_patch.status);
    let main: Pod = client.patch("default", "p1", &Patch::Merge(json!({"status": {"message": "ignored"}}))).await.unwrap();
    assert_eq!(main.status, via_patch.status);
    let mut put = main.clone();
    put.status.as_mut().unwrap().message = Some("ignored".into());
    let main: Pod = client.replace("default", "p1", &put).await.unwrap();
    assert_eq!(main.status, via_patch.status);

    // /status of an absent object is 404, apply included.
    let mut absent = status_cfg.clone();
    absent.metadata.name = Some("p2".into());
    assert_eq!(api_status(client.apply_status(&absent, "carol", false).await.unwrap_err()).code, 404);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_scoped_kind_goes_through_every_verb() {
    let sim = sim().await;
    let client = CachedClient::new(sim.client().unwrap());
    let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})).unwrap();
    let created: Node = client.create(None, &node).await.unwrap();
    assert_eq!(created.metadata.namespace, None);
    assert!(client.get::<Node>(None, "n1").await.unwrap().is_some());
    assert_eq!(client.list::<Node>(&ListOptions::default()).await.unwrap().len(), 1);

    let mut changed = created.clone();
    changed.spec = Some(NodeSpec { unschedulable: Some(true), ..Default::default() });
    let replaced: Node = client.replace(None, "n1", &changed).await.unwrap();
    assert_eq!(replaced.spec.as_ref().unwrap().unschedulable, Some(true));
    let patched: Node = client.patch(None, "n1", &Patch::Merge(json!({"metadata": {"labels": {"zone": "a"}}}))).await.unwrap();
    assert_eq!(patched.metadata.labels.as_ref().unwrap()["zone"], "a");
    let mut cfg = node.clone();
    cfg.spec = Some(NodeSpec { pod_cidr: Some("10.0.0.0/24".into()), ..Default::default() });
    let applied: Node = client.apply(&cfg, "node-controller", false).await.unwrap();
    assert_eq!(applied.spec.as_ref().unwrap().pod_cidr.as_deref(), Some("10.0.0.0/24"));

    let mut with_status = applied.clone();
    with_status.status = Some(NodeStatus { phase: Some("Running".into()), ..Default::default() });
    let st: Node = client.replace_status(None, "n1", &with_status).await.unwrap();
    assert_eq!(st.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    let st: Node = client.patch_status(None, "n1", &Patch::Merge(json!({"status": {"phase": "Terminated"}}))).await.unwrap();
    assert_eq!(st.status.as_ref().unwrap().phase.as_deref(), Some("Terminated"));
    let mut status_cfg = node.clone();
    status_cfg.status = Some(NodeStatus {
        conditions: Some(vec![NodeCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
        ..Default::default()
    });
    let st: Node = client.apply_status(&status_cfg, "kubelet", false).await.unwrap();
    assert_eq!(st.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].status, "True");
    assert_eq!(st.spec.as_ref().unwrap().pod_cidr.as_deref(), Some("10.0.0.0/24"));

    client.delete::<Node>(None, "n1").await.unwrap();
    assert!(sim.get("nodes", "", "n1").unwrap().is_none());
    // Every call above was unwrapped: a namespaced URL for a cluster-scoped
    // kind would have been the simulator's 404.

    // A cluster-scoped custom resource, through the dynamic verbs.
    let tenants = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Tenant"), "tenants");
    let mut tenant = DynamicObject::new("acme", &tenants);
    tenant.data = json!({"spec": {"tier": "gold"}});
    let created = client.create_dynamic(&tenants, None, &tenant).await.unwrap();
    assert_eq!(created.data["spec"]["tier"], "gold");
    assert!(client.get_dynamic(&tenants, None, "acme").await.unwrap().is_some());
    assert_eq!(client.list_dynamic(&tenants, &ListOptions::default()).await.unwrap().len(), 1);
    let mut next = created.clone();
    next.data["spec"]["tier"] = json!("silver");
    let replaced = client.replace_dynamic(&tenants, None, "acme", &next).await.unwrap();
    assert_eq!(replaced.data["spec"]["tier"], "silver");
    let patched =
        client.patch_dynamic(&tenants, None, "acme", &Patch::Merge(json!({"spec": {"seats": 3}}))).await.unwrap();
    assert_eq!(patched.data["spec"]["seats"], 3);
    let mut cfg = DynamicObject::new("acme", &tenants);
    cfg.data = json!({"spec": {"tier": "bronze"}});
    let applied = client.apply_dynamic(&tenants, &cfg, "tenant-operator", true).await.unwrap();
    assert_eq!(applied.data["spec"], json!({"tier": "bronze", "seats": 3}));
    let mut st = applied.clone();
    st.data["status"] = json!({"ready": false});
    let st = client.replace_status_dynamic(&tenants, None, "acme", &st).await.unwrap();
    assert_eq!(st.data["status"]["ready"], false);
    let st = client
        .patch_status_dynamic(&tenants, None, "acme", &Patch::Merge(json!({"status": {"ready": true}})))
        .await
        .unwrap();
    assert_eq!(st.data["status"]["ready"], true);
    let mut status_cfg = DynamicObject::new("acme", &tenants);
    status_cfg.data = json!({"status": {"seatsUsed": 2}});
    let st = client.apply_status_dynamic(&tenants, &status_cfg, "tenant-operator", false).await.unwrap();
    assert_eq!(st.data["status"]["seatsUsed"], 2);
    client.delete_dynamic(&tenants, None, "acme").await.unwrap();
    assert!(client.get_dynamic(&tenants, None, "acme").await.unwrap().is_none());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_read_back_from_the_cache_right_after_it() {
    let sim = sim().await;
    let client = CachedClient::new(sim.client().unwrap());
    assert!(client.informer::<ConfigMap>().unwrap().wait_for_sync(SYNC).await);
    assert!(client.informer::<Node>().unwrap().wait_for_sync(SYNC).await);
    let gets = sim.stats().get;
    let cached = |cm: &ConfigMap| rv(cm);

    let w: ConfigMap = client.create("default", &config_map("default", "c1", json!({"a": "1"}))).await.unwrap();
    let r: ConfigMap = client.get(Some("default"), "c1").await.unwrap().expect("cached after create");
    assert_eq!(cached(&r), rv(&w));
    let w: ConfigMap = client.apply(&config_map("default", "c1", json!({"a": "2"})), "alice", true).await.unwrap();
    assert_eq!(rv(&client.get::<ConfigMap>(Some("default"), "c1").await.unwrap().unwrap()), rv(&w));
    let w: ConfigMap = client.patch("default", "c1", &Patch::Merge(json!({"data": {"b": "3"}}))).await.unwrap();
    assert_eq!(rv(&client.get::<ConfigMap>(Some("default"), "c1").await.unwrap().unwrap()), rv(&w));
    let w: ConfigMap = client.replace("default", "c1", &w).await.unwrap();
    assert_eq!(rv(&client.get::<ConfigMap>(Some("default"), "c1").await.unwrap().unwrap()), rv(&w));
    client.delete::<ConfigMap>("default", "c1").await.unwrap();
    assert!(client.get::<ConfigMap>(Some("default"), "c1").await.unwrap().is_none());

    let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})).unwrap();
    let w: Node = client.create(None, &node).await.unwrap();
    assert_eq!(rv(&client.get::<Node>(None, "n1").await.unwrap().unwrap()), rv(&w));
    let mut s = w.clone();
    s.status = Some(NodeStatus { phase: Some("Running".into()), ..Default::default() });
    let w: Node = client.replace_status(None, "n1", &s).await.unwrap();
    let r = client.get::<Node>(None, "n1").await.unwrap().unwrap();
    assert_eq!((rv(&r), r.status), (rv(&w), w.status.clone()));
    let w: Node = client.patch_status(None, "n1", &Patch::Merge(json!({"status": {"phase": "Pending"}}))).await.unwrap();
    assert_eq!(rv(&client.get::<Node>(None, "n1").await.unwrap().unwrap()), rv(&w));
    let mut cfg = node.clone();
    cfg.status = Some(NodeStatus { phase: Some("Running".into()), ..Default::default() });
    let w: Node = client.apply_status(&cfg, "kubelet", true).await.unwrap();
    let r = client.get::<Node>(None, "n1").await.unwrap().unwrap();
    assert_eq!((rv(&r), r.status.unwrap().phase.as_deref()), (rv(&w), Some("Running")));
    client.delete::<Node>(None, "n1").await.unwrap();
    assert!(client.get::<Node>(None, "n1").await.unwrap().is_none());

    assert_eq!(sim.stats().get, gets, "every read after a write came from the cache");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_server_until_the_informer_syncs_and_to_the_cache_after() {
    let sim = sim().await;
    for i in 0..20 {
        sim.create("configmaps", json!({"metadata": {"namespace": "default", "name": format!("c{i}")}, "data": {"i": i.to_string()}}))
            .unwrap();
    }
    let client = CachedClient::new(sim.client().unwrap());
    // The first reads start the informer; a slow server keeps it from
    // syncing while both are asked, so both go to the server.
    sim.set_latency(Duration::from_millis(300));
    let before = sim.stats();
    let everything = ListOptions::default();
    let (first, listed) = tokio::join!(
        client.get::<ConfigMap>(Some("default"), "c3"),
        client.list::<ConfigMap>(&everything)
    );
    assert_eq!(first.unwrap().expect("exists").data.unwrap()["i"], "3");
    assert_eq!(listed.unwrap().len(), 20);
    sim.set_latency(Duration::ZERO);
    let informer = client.informer::<ConfigMap>().unwrap();
    assert!(informer.wait_for_sync(SYNC).await);
    let synced = sim.stats();
    assert_eq!(synced.get - before.get, 1, "the fallback GET");
    assert_eq!(synced.list - before.list, 2, "the informer's LIST and the fallback LIST");

    for i in 0..20 {
        let name = format!("c{i}");
        assert!(client.get::<ConfigMap>(Some("default"), &name).await.unwrap().is_some());
        assert!(client.get::<ConfigMap>(Some("default"), &format!("absent-{i}")).await.unwrap().is_none());
    }
    let all: Vec<ConfigMap> = client.list(&ListOptions { namespace: Some("default".into()), ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 20);
    let after = sim.stats();
    assert_eq!((after.get, after.list), (synced.get, synced.list), "after sync, reads make no API call");
    sim.shutdown().await;
}
