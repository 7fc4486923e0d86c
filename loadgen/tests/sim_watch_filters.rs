//! Watch selection semantics: namespaces, selectors (objects moving in and out of
//! the selection), initial state for resourceVersion "0", metadata-only watches,
//! timeoutSeconds, and cluster-scoped resources.

use std::time::{Duration, Instant};

use kcache_loadgen::sim::{Line, RawClient, RawStream, ResourceDef, SimServer};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

async fn next(s: &mut RawStream) -> Value {
    match s.next_line(T).await {
        Line::Line(l) => serde_json::from_slice(&l).expect("json"),
        other => panic!("expected an event, got {other:?}"),
    }
}

fn summary(e: &Value) -> (String, String) {
    (
        e["type"].as_str().unwrap_or("").to_owned(),
        e["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

#[tokio::test]
async fn objects_moving_out_of_a_label_selection_are_sent_as_deleted_and_back_in_as_added() {
    let sim = SimServer::builder().start().await.expect("sim");
    sim.create(
        "pods",
        json!({"metadata": {"name": "p", "namespace": "a", "labels": {"app": "web"}}}),
    )
    .expect("create");
    let rv = sim.resource_version();
    let mut w = RawClient::stream(
        sim.addr(),
        &format!("/api/v1/pods?watch=1&resourceVersion={rv}&labelSelector=app%3Dweb"),
        &[],
    )
    .await
    .expect("watch");
    let set = |app: &str| {
        sim.merge_patch(
            "pods",
            "a",
            "p",
            &json!({"metadata": {"labels": {"app": app}}}),
        )
        .expect("patch")
    };
    set("db");
    let out = next(&mut w).await;
    assert_eq!(summary(&out), ("DELETED".into(), "p".into()));
    assert_eq!(
        out["object"]["metadata"]["labels"]["app"], "web",
        "the last matching state"
    );
    assert_eq!(
        out["object"]["metadata"]["resourceVersion"],
        json!(sim.resource_version().to_string()),
        "stamped with the event RV"
    );
    set("cache");
    set("web");
    assert_eq!(summary(&next(&mut w).await), ("ADDED".into(), "p".into()));
    sim.merge_patch(
        "pods",
        "a",
        "p",
        &json!({"metadata": {"annotations": {"x": "1"}}}),
    )
    .expect("patch");
    assert_eq!(
        summary(&next(&mut w).await),
        ("MODIFIED".into(), "p".into())
    );
    sim.create(
        "pods",
        json!({"metadata": {"name": "other", "namespace": "b", "labels": {"app": "db"}}}),
    )
    .expect("create");
    sim.delete("pods", "a", "p").expect("delete");
    assert_eq!(summary(&next(&mut w).await), ("DELETED".into(), "p".into()));
}

#[tokio::test]
async fn field_selected_namespaced_watches_see_only_their_objects() {
    let sim = SimServer::builder().start().await.expect("sim");
    let rv = sim.resource_version();
    let mut w = RawClient::stream(
        sim.addr(),
        &format!("/api/v1/namespaces/a/pods?watch=1&resourceVersion={rv}&fieldSelector=spec.nodeName%3Dnode-001"),
        &[],
    )
    .await
    .expect("watch");
    for (ns, name, node) in [
        ("b", "x1", "node-001"),
        ("a", "x2", "node-002"),
        ("a", "x3", "node-001"),
    ] {
        sim.create(
            "pods",
            json!({"metadata": {"name": name, "namespace": ns}, "spec": {"nodeName": node}}),
        )
        .expect("create");
    }
    assert_eq!(summary(&next(&mut w).await), ("ADDED".into(), "x3".into()));
    assert_eq!(w.next_line(Duration::from_millis(100)).await, Line::Timeout);
}

#[tokio::test]
async fn a_watch_at_rv_0_starts_with_the_current_state_and_metadata_only_watches_carry_metadata() {
    let sim = SimServer::builder().start().await.expect("sim");
    for n in ["a", "b"] {
        sim.create(
            "pods",
            json!({"metadata": {"name": n, "namespace": "z"}, "spec": {"nodeName": "n"}}),
        )
        .expect("create");
    }
    let mut w = RawClient::stream(
        sim.addr(),
        "/api/v1/namespaces/z/pods?watch=1&resourceVersion=0",
        &[(
            "accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )],
    )
    .await
    .expect("watch");
    for n in ["a", "b"] {
        let e = next(&mut w).await;
        assert_eq!(summary(&e), ("ADDED".into(), n.into()));
        assert_eq!(e["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(e["object"]["apiVersion"], "meta.k8s.io/v1");
        assert!(e["object"].get("spec").is_none());
    }
    sim.create("pods", json!({"metadata": {"name": "c", "namespace": "z"}}))
        .expect("create");
    assert_eq!(summary(&next(&mut w).await), ("ADDED".into(), "c".into()));

    // sendInitialEvents=false at RV 0: no initial state.
    let mut w = RawClient::stream(
        sim.addr(),
        "/api/v1/namespaces/z/pods?watch=1&resourceVersion=0&sendInitialEvents=false",
        &[],
    )
    .await
    .expect("watch");
    assert_eq!(w.next_line(Duration::from_millis(100)).await, Line::Timeout);
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream_cleanly() {
    let sim = SimServer::builder().start().await.expect("sim");
    let t = Instant::now();
    let mut w = RawClient::stream(sim.addr(), "/api/v1/pods?watch=1&timeoutSeconds=1", &[])
        .await
        .expect("watch");
    assert_eq!(w.next_line(T).await, Line::End);
    assert!(t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn cluster_scoped_and_registered_group_resources_are_served() {
    let sim = SimServer::builder()
        .resource(ResourceDef::new(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
        ))
        .start()
        .await
        .expect("sim");
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    let ct = [("content-type", "application/json")];
    let r = c
        .request(
            "POST",
            "/api/v1/nodes",
            &ct,
            r#"{"metadata":{"name":"node-000"}}"#,
        )
        .await
        .expect("node");
    assert_eq!(r.status, 201);
    assert!(r.json()["metadata"].get("namespace").is_none());
    assert_eq!(
        c.get("/api/v1/nodes/node-000").await.expect("get").status,
        200
    );
    let r = c
        .request(
            "POST",
            "/api/v1/namespaces",
            &ct,
            r#"{"metadata":{"name":"team-a"}}"#,
        )
        .await
        .expect("ns");
    assert_eq!(r.status, 201);
    assert_eq!(
        c.get("/api/v1/namespaces/team-a")
            .await
            .expect("get ns")
            .json()["kind"],
        "Namespace"
    );

    let r = c
        .request(
            "POST",
            "/apis/apps/v1/namespaces/team-a/deployments",
            &ct,
            r#"{"metadata":{"name":"d"}}"#,
        )
        .await
        .expect("deploy");
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["apiVersion"], "apps/v1");
    let list = c
        .get("/apis/apps/v1/deployments")
        .await
        .expect("list")
        .json();
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(list["apiVersion"], "apps/v1");
    assert_eq!(sim.object_count("deployments.apps").expect("count"), 1);
    let groups = c.get("/apis").await.expect("apis").json();
    assert_eq!(groups["groups"][0]["name"], "apps");

    sim.register(ResourceDef::new(
        "example.com",
        "v1",
        "Widget",
        "widgets",
        false,
    ));
    let r = c
        .request(
            "POST",
            "/apis/example.com/v1/widgets",
            &ct,
            r#"{"metadata":{"name":"w"}}"#,
        )
        .await
        .expect("widget");
    assert_eq!(r.status, 201);
}
