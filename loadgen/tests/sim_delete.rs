//! The simulator deletes as a real kube-apiserver does: graceful deletion of
//! pods bound to a node (the simulated kubelet removes them when the grace
//! period ends), finalizers, namespaces that terminate, propagation policies,
//! preconditions, DELETE of a collection, and a Status for every bad request.

use std::time::Duration;

use kcache_loadgen::sim::{
    Collector, DeleteOptions, RawClient, RawStream, SimHandle, SimServer, parse_rfc3339,
};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

struct Sim {
    sim: SimHandle,
    c: RawClient,
}

impl Sim {
    async fn start() -> Sim {
        Sim::with(SimServer::builder()).await
    }

    async fn with(b: SimServer) -> Sim {
        let sim = b.start().await.expect("sim");
        let c = RawClient::connect(sim.addr()).await.expect("connect");
        Sim { sim, c }
    }

    async fn call(&mut self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(body).expect("json") };
        let ct = if method == "PATCH" { "application/merge-patch+json" } else { "application/json" };
        let r = self.c.request(method, path, &[("content-type", ct)], bytes).await.expect("request");
        let v = if r.body.is_empty() { Value::Null } else { r.json() };
        (r.status, v)
    }

    async fn ok(&mut self, method: &str, path: &str, body: &Value) -> Value {
        let (code, v) = self.call(method, path, body).await;
        assert!((200..300).contains(&code), "{method} {path}: {code} {v}");
        v
    }

    async fn watch(&self, path: &str) -> RawStream {
        let rv = self.sim.resource_version();
        let sep = if path.contains('?') { '&' } else { '?' };
        let w = RawClient::stream(self.sim.addr(), &format!("{path}{sep}watch=1&resourceVersion={rv}"), &[])
            .await
            .expect("watch");
        assert_eq!(w.status, 200);
        w
    }
}

fn pod(name: &str, node: Option<&str>) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": "app:1"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec})
}

/// The next watch event's type and object.
async fn next(w: &mut RawStream) -> (String, Value) {
    let e = w.until(T, |_| true).await.expect("an event");
    (e["type"].as_str().unwrap_or("").to_owned(), e["object"].clone())
}

/// No event arrives within a short while.
async fn quiet(w: &mut RawStream) {
    if let Some(e) = w.until(Duration::from_millis(200), |e| e["type"] != "BOOKMARK").await {
        panic!("unexpected event {e}");
    }
}

fn ts(v: &Value) -> i64 {
    parse_rfc3339(v["metadata"]["deletionTimestamp"].as_str().expect("deletionTimestamp")).expect("rfc3339")
}

#[tokio::test]
async fn a_scheduled_pod_is_deleted_gracefully_and_the_kubelet_removes_it_when_the_grace_period_ends() {
    let mut s = Sim::start().await;
    let created = s.ok("POST", "/api/v1/namespaces/g/pods", &pod("web", Some("node-1"))).await;
    let created_at = parse_rfc3339(created["metadata"]["creationTimestamp"].as_str().unwrap()).unwrap();
    let mut w = s.watch("/api/v1/namespaces/g/pods").await;

    let deleted = s.ok("DELETE", "/api/v1/namespaces/g/pods/web", &Value::Null).await;
    assert_eq!(deleted["kind"], "Pod", "the object, not a Status");
    assert_eq!(deleted["metadata"]["deletionGracePeriodSeconds"], 30, "the default grace period");
    assert!((ts(&deleted) - created_at - 30).abs() <= 2, "deletionTimestamp is now + 30 s: {deleted}");
    assert_eq!(deleted["metadata"]["generation"], 2);
    let (ty, obj) = next(&mut w).await;
    assert_eq!((ty.as_str(), &obj["metadata"]["deletionGracePeriodSeconds"]), ("MODIFIED", &json!(30)));
    quiet(&mut w).await;
    let (code, still) = s.call("GET", "/api/v1/namespaces/g/pods/web", &Value::Null).await;
    assert_eq!((code, &still["metadata"]["deletionTimestamp"]), (200, &deleted["metadata"]["deletionTimestamp"]));

    s.sim.advance_clock(Duration::from_secs(31));
    // The kubelet's delete with grace 0: MODIFIED (grace 0), then DELETED.
    let (ty, obj) = next(&mut w).await;
    assert_eq!((ty.as_str(), &obj["metadata"]["deletionGracePeriodSeconds"]), ("MODIFIED", &json!(0)));
    let (ty, obj) = next(&mut w).await;
    assert_eq!((ty.as_str(), obj["metadata"]["name"].as_str()), ("DELETED", Some("web")));
    assert_eq!(s.call("GET", "/api/v1/namespaces/g/pods/web", &Value::Null).await.0, 404);
}

#[tokio::test]
async fn the_grace_period_comes_from_the_pod_the_query_or_the_body_and_may_only_shrink() {
    let mut s = Sim::start().await;
    let mut p = pod("own", Some("n"));
    p["spec"]["terminationGracePeriodSeconds"] = json!(120);
    s.ok("POST", "/api/v1/namespaces/g/pods", &p).await;
    let d = s.ok("DELETE", "/api/v1/namespaces/g/pods/own", &Value::Null).await;
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 120);

    s.ok("POST", "/api/v1/namespaces/g/pods", &pod("q", Some("n"))).await;
    let d = s.ok("DELETE", "/api/v1/namespaces/g/pods/q?gracePeriodSeconds=60", &Value::Null).await;
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 60);
    let first = ts(&d);
    let mut w = s.watch("/api/v1/namespaces/g/pods?fieldSelector=metadata.name%3Dq").await;
    // Longer: nothing changes, the answer is the object as it is.
    let same = s.ok("DELETE", "/api/v1/namespaces/g/pods/q", &json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 90})).await;
    assert_eq!((same["metadata"]["deletionGracePeriodSeconds"].clone(), ts(&same)), (json!(60), first));
    assert_eq!(same["metadata"]["resourceVersion"], d["metadata"]["resourceVersion"]);
    quiet(&mut w).await;
    // Shorter (from the body, which wins over the query): the deadline moves earlier.
    let shorter = s.ok("DELETE", "/api/v1/namespaces/g/pods/q?gracePeriodSeconds=50", &json!({"gracePeriodSeconds": 10})).await;
    assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 10);
    assert_eq!(ts(&shorter), first - 50);
    assert_eq!(next(&mut w).await.0, "MODIFIED");
    // Zero: gone at once.
    let gone = s.ok("DELETE", "/api/v1/namespaces/g/pods/q?gracePeriodSeconds=0", &Value::Null).await;
    assert_eq!(gone["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(next(&mut w).await.0, "MODIFIED");
    assert_eq!(next(&mut w).await.0, "DELETED");
    // A negative grace period counts as 1 s.
    s.ok("POST", "/api/v1/namespaces/g/pods", &pod("neg", Some("n"))).await;
    let d = s.ok("DELETE", "/api/v1/namespaces/g/pods/neg?gracePeriodSeconds=-5", &Value::Null).await;
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 1);
}

#[tokio::test]
async fn unscheduled_pods_and_other_kinds_go_at_once() {
    let mut s = Sim::start().await;
    s.ok("POST", "/api/v1/namespaces/g/pods", &pod("pending", None)).await;
    let mut w = s.watch("/api/v1/namespaces/g/pods").await;
    let d = s.ok("DELETE", "/api/v1/namespaces/g/pods/pending", &Value::Null).await;
    assert_eq!((d["kind"].as_str(), &d["metadata"]["deletionGracePeriodSeconds"]), (Some("Pod"), &json!(0)));
    // As fixtures/real-apiserver/watch-events.jsonl: MODIFIED (deletion), DELETED.
    assert_eq!(next(&mut w).await.0, "MODIFIED");
    let (ty, obj) = next(&mut w).await;
    assert_eq!(ty, "DELETED");
    assert_eq!(obj["metadata"]["deletionTimestamp"], d["metadata"]["deletionTimestamp"]);

    let cm = s.ok("POST", "/api/v1/namespaces/g/configmaps", &json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).await;
    let mut w = s.watch("/api/v1/namespaces/g/configmaps").await;
    let (code, status) = s.call("DELETE", "/api/v1/namespaces/g/configmaps/cfg", &Value::Null).await;
    assert_eq!(code, 200);
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": {"name": "cfg", "kind": "configmaps", "uid": cm["metadata"]["uid"]}})
    );
    let (ty, obj) = next(&mut w).await;
    assert_eq!(ty, "DELETED");
    assert!(obj["metadata"].get("deletionTimestamp").is_none(), "the last stored version: {obj}");
}

#[tokio::test]
async fn finalizers_hold_an_object_until_the_last_one_is_removed() {
    let mut s = Sim::start().await;
    s.ok("POST", "/api/v1/namespaces/f/configmaps", &json!({"metadata": {"name": "held", "finalizers": ["example.com/a", "example.com/b"]}})).await;
    let mut w = s.watch("/api/v1/namespaces/f/configmaps").await;
    let d = s.ok("DELETE", "/api/v1/namespaces/f/configmaps/held", &Value::Null).await;
    assert_eq!(d["kind"], "ConfigMap");
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(next(&mut w).await.0, "MODIFIED");
    // Deleting again answers the object as it is.
    let again = s.ok("DELETE", "/api/v1/namespaces/f/configmaps/held", &Value::Null).await;
    assert_eq!(again["metadata"]["deletionTimestamp"], d["metadata"]["deletionTimestamp"]);

    // No new finalizers on an object being deleted.
    let (code, e) = s
        .call("PATCH", "/api/v1/namespaces/f/configmaps/held", &json!({"metadata": {"finalizers": ["example.com/a", "example.com/b", "example.com/c"]}}))
        .await;
    assert_eq!((code, e["reason"].as_str()), (422, Some("Invalid")), "{e}");
    assert_eq!(
        e["message"],
        "ConfigMap \"held\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/c\"}"
    );
    // deletionTimestamp cannot be taken away; removing a finalizer is an update.
    let cur = s.ok("GET", "/api/v1/namespaces/f/configmaps/held", &Value::Null).await;
    let mut put = cur.clone();
    put["metadata"]["finalizers"] = json!(["example.com/b"]);
    put["metadata"].as_object_mut().unwrap().remove("deletionTimestamp");
    let after = s.ok("PUT", "/api/v1/namespaces/f/configmaps/held", &put).await;
    assert_eq!(after["metadata"]["deletionTimestamp"], d["metadata"]["deletionTimestamp"]);
    assert_eq!(next(&mut w).await.0, "MODIFIED");
    // A finalizer list without one it never had (example.com/z) is just an update.
    s.ok("PATCH", "/api/v1/namespaces/f/configmaps/held", &json!({"metadata": {"finalizers": ["example.com/b"], "labels": {"x": "1"}}})).await;
    assert_eq!(next(&mut w).await.0, "MODIFIED");
    // The last one goes: so does the object.
    let last = s.ok("PATCH", "/api/v1/namespaces/f/configmaps/held", &json!({"metadata": {"finalizers": null}})).await;
    assert_eq!(last["metadata"]["name"], "held");
    let (ty, obj) = next(&mut w).await;
    assert_eq!(ty, "DELETED");
    assert_eq!(obj["metadata"]["finalizers"], json!(["example.com/b"]), "the last stored version");
    assert_eq!(s.call("GET", "/api/v1/namespaces/f/configmaps/held", &Value::Null).await.0, 404);
}

#[tokio::test]
async fn a_pod_with_a_finalizer_outlives_its_grace_period_until_the_finalizer_goes() {
    let mut s = Sim::start().await;
    let mut p = pod("fin", Some("n"));
    p["metadata"]["finalizers"] = json!(["example.com/keep"]);
    s.ok("POST", "/api/v1/namespaces/f/pods", &p).await;
    s.ok("DELETE", "/api/v1/namespaces/f/pods/fin?gracePeriodSeconds=5", &Value::Null).await;
    s.sim.advance_clock(Duration::from_secs(6));
    let (code, held) = s.call("GET", "/api/v1/namespaces/f/pods/fin", &Value::Null).await;
    assert_eq!((code, &held["metadata"]["deletionGracePeriodSeconds"]), (200, &json!(0)), "{held}");
    s.ok("PATCH", "/api/v1/namespaces/f/pods/fin", &json!({"metadata": {"finalizers": []}})).await;
    assert_eq!(s.call("GET", "/api/v1/namespaces/f/pods/fin", &Value::Null).await.0, 404);
}

#[tokio::test]
async fn a_deleted_namespace_terminates_empties_and_goes() {
    let mut s = Sim::start().await;
    s.ok("POST", "/api/v1/namespaces", &json!({"metadata": {"name": "doomed"}})).await;
    s.ok("POST", "/api/v1/namespaces/doomed/pods", &pod("bound", Some("n"))).await;
    s.ok("POST", "/api/v1/namespaces/doomed/pods", &pod("loose", None)).await;
    s.ok("POST", "/api/v1/namespaces/doomed/configmaps", &json!({"metadata": {"name": "cfg"}})).await;
    s.ok("POST", "/api/v1/namespaces/kept/configmaps", &json!({"metadata": {"name": "cfg"}})).await;
    let mut w = s.watch("/api/v1/namespaces").await;

    let d = s.ok("DELETE", "/api/v1/namespaces/doomed", &Value::Null).await;
    assert_eq!(d["kind"], "Namespace");
    assert_eq!(d["status"]["phase"], "Terminating");
    assert_eq!(d["spec"]["finalizers"], json!(["kubernetes"]));
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    let (ty, obj) = next(&mut w).await;
    assert_eq!((ty.as_str(), &obj["status"]["phase"]), ("MODIFIED", &json!("Terminating")));

    let (code, e) = s.call("POST", "/api/v1/namespaces/doomed/configmaps", &json!({"metadata": {"name": "late"}})).await;
    assert_eq!(code, 403);
    assert_eq!(
        e,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated",
               "reason": "Forbidden",
               "details": {"name": "late", "kind": "configmaps", "causes": [{"reason": "NamespaceTerminating", "message": "namespace doomed is being terminated", "field": "metadata.namespace"}]},
               "code": 403})
    );
    let (code, e) = s.call("DELETE", "/api/v1/namespaces/doomed", &Value::Null).await;
    assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")));
    assert_eq!(
        e["message"],
        "Operation cannot be fulfilled on namespaces \"doomed\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system."
    );

    // The namespace controller deletes the content at once, except the bound
    // pod, whose grace period must pass first.
    s.sim.reconcile();
    assert_eq!(s.sim.objects("configmaps", Some("doomed")).unwrap().len(), 0);
    let pods = s.sim.objects("pods", Some("doomed")).unwrap();
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0]["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(s.sim.get("namespaces", "", "doomed").unwrap().map(|n| n["status"]["phase"].clone()), Some(json!("Terminating")));
    s.sim.advance_clock(Duration::from_secs(31));
    for _ in 0..3 {
        s.sim.reconcile();
    }
    assert!(s.sim.objects("pods", Some("doomed")).unwrap().is_empty());
    assert_eq!(s.sim.get("namespaces", "", "doomed").unwrap(), None);
    let (ty, obj) = next(&mut w).await;
    assert_eq!((ty.as_str(), &obj["spec"].get("finalizers")), ("MODIFIED", &None), "the kubernetes finalizer is removed first");
    assert_eq!(next(&mut w).await.0, "DELETED");
    // Other namespaces are untouched; a namespace that was never created is usable.
    assert_eq!(s.sim.objects("configmaps", Some("kept")).unwrap().len(), 1);
    s.ok("POST", "/api/v1/namespaces/doomed/configmaps", &json!({"metadata": {"name": "again"}})).await;
}

#[tokio::test]
async fn a_namespace_deleted_with_orphan_propagation_still_goes() {
    let mut s = Sim::start().await;
    s.ok("POST", "/api/v1/namespaces", &json!({"metadata": {"name": "orph"}})).await;
    s.ok("POST", "/api/v1/namespaces/orph/configmaps", &json!({"metadata": {"name": "cfg"}})).await;
    let mut w = s.watch("/api/v1/namespaces").await;
    let d = s.ok("DELETE", "/api/v1/namespaces/orph?propagationPolicy=Orphan", &Value::Null).await;
    assert_eq!(d["metadata"]["finalizers"], json!(["orphan"]));
    for _ in 0..10 {
        s.sim.reconcile();
    }
    assert_eq!(s.sim.get("namespaces", "", "orph").unwrap(), None);
    let mut types = Vec::new();
    loop {
        let (ty, _) = next(&mut w).await;
        let done = ty == "DELETED";
        types.push(ty);
        if done {
            break;
        }
    }
    assert!(types.len() <= 5, "a bounded number of writes: {types:?}");
    quiet(&mut w).await;
}

#[tokio::test]
async fn propagation_policies_add_the_garbage_collectors_finalizers() {
    let mut s = Sim::start().await;
    let owner = s.ok("POST", "/api/v1/namespaces/p/configmaps", &json!({"metadata": {"name": "owner"}})).await;
    let uid = owner["metadata"]["uid"].clone();
    for name in ["dep-1", "dep-2"] {
        s.ok("POST", "/api/v1/namespaces/p/pods", &json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}, "spec": {"nodeName": "n"}})).await;
    }
    let d = s.ok("DELETE", "/api/v1/namespaces/p/configmaps/owner", &json!({"propagationPolicy": "Foreground"})).await;
    assert_eq!(d["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 0);
    // The collector deletes the dependents (gracefully) and waits for them.
    s.sim.reconcile();
    assert!(s.sim.get("configmaps", "p", "owner").unwrap().is_some());
    assert!(s.sim.objects("pods", Some("p")).unwrap().iter().all(|p| p["metadata"]["deletionTimestamp"].is_string()));
    s.sim.advance_clock(Duration::from_secs(31));
    s.sim.reconcile();
    assert!(s.sim.objects("pods", Some("p")).unwrap().is_empty());
    assert_eq!(s.sim.get("configmaps", "p", "owner").unwrap(), None);

    // Orphan: the orphan finalizer, which the collector removes (no dependents here).
    s.ok("POST", "/api/v1/namespaces/p/configmaps", &json!({"metadata": {"name": "o"}})).await;
    let d = s.ok("DELETE", "/api/v1/namespaces/p/configmaps/o?propagationPolicy=Orphan", &Value::Null).await;
    assert_eq!(d["metadata"]["finalizers"], json!(["orphan"]));
    s.sim.reconcile();
    assert_eq!(s.sim.get("configmaps", "p", "o").unwrap(), None);
    // Background: gone at once.
    s.ok("POST", "/api/v1/namespaces/p/configmaps", &json!({"metadata": {"name": "b"}})).await;
    let (code, st) = s.call("DELETE", "/api/v1/namespaces/p/configmaps/b?propagationPolicy=Background", &Value::Null).await;
    assert_eq!((code, st["status"].as_str()), (200, Some("Success")));
    // Unknown: the validation error, nothing deleted.
    s.ok("POST", "/api/v1/namespaces/p/configmaps", &json!({"metadata": {"name": "u"}})).await;
    let (code, e) = s.call("DELETE", "/api/v1/namespaces/p/configmaps/u", &json!({"propagationPolicy": "Sideways"})).await;
    assert_eq!(code, 422);
    assert_eq!(
        e,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"",
               "reason": "Invalid",
               "details": {"group": "meta.k8s.io", "kind": "DeleteOptions", "causes": [{"reason": "FieldValueNotSupported", "message": "Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"", "field": "propagationPolicy"}]},
               "code": 422})
    );
    // orphanDependents=false on a deletion that does not finish at once: 202.
    let (code, _) = s.call("DELETE", "/api/v1/namespaces/p/configmaps/u", &json!({"orphanDependents": false, "preconditions": {"uid": null}})).await;
    assert_eq!(code, 200, "no finalizer is pending, so the object went at once");
    s.ok("POST", "/api/v1/namespaces/p/pods", &pod("slow", Some("n"))).await;
    let (code, _) = s.call("DELETE", "/api/v1/namespaces/p/pods/slow?orphanDependents=false", &Value::Null).await;
    assert_eq!(code, 202);
}

#[tokio::test]
async fn failed_preconditions_answer_409_and_delete_nothing() {
    let mut s = Sim::start().await;
    let p = s.ok("POST", "/api/v1/namespaces/c/pods", &pod("web", None)).await;
    let (code, e) = s.call("DELETE", "/api/v1/namespaces/c/pods/web", &json!({"preconditions": {"uid": "not-it"}})).await;
    assert_eq!(code, 409);
    let uid = p["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        e,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("Operation cannot be fulfilled on Pod \"web\": the UID in the precondition (not-it) does not match the UID in record ({uid}). The object might have been deleted and then recreated"),
               "reason": "Conflict", "details": {"name": "web", "kind": "Pod"}, "code": 409})
    );
    let (code, e) = s.call("DELETE", "/api/v1/namespaces/c/pods/web", &json!({"preconditions": {"resourceVersion": "1"}})).await;
    assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")));
    let rv = p["metadata"]["resourceVersion"].as_str().unwrap();
    assert_eq!(
        e["message"],
        // rest/delete.go BeforeDelete, as kube-apiserver v1.36 answered it
        // (tests/data/real-apiserver-transcript.txt).
        format!("Operation cannot be fulfilled on Pod \"web\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({rv}). The object might have been modified")
    );
    assert!(s.sim.get("pods", "c", "web").unwrap().is_some());
    let d = s.ok("DELETE", "/api/v1/namespaces/c/pods/web", &json!({"preconditions": {"uid": uid, "resourceVersion": rv}})).await;
    assert_eq!(d["metadata"]["name"], "web");
    assert!(s.sim.get("pods", "c", "web").unwrap().is_none());
}

#[tokio::test]
async fn bad_delete_requests_answer_a_status() {
    let mut s = Sim::start().await;
    s.ok("POST", "/api/v1/namespaces/b/pods", &pod("web", Some("n"))).await;
    for (path, body) in [
        ("/api/v1/namespaces/b/pods/web", "{not json"),
        ("/api/v1/namespaces/b/pods/web", r#"{"gracePeriodSeconds":"soon"}"#),
        ("/api/v1/namespaces/b/pods/web", "[1,2]"),
        ("/api/v1/namespaces/b/pods/web?gracePeriodSeconds=later", ""),
        ("/api/v1/namespaces/b/pods?labelSelector=app%3D%3D%3D", ""),
    ] {
        let r = s.c.request("DELETE", path, &[("content-type", "application/json")], body.to_owned()).await.expect("request");
        let v = r.json();
        assert_eq!((r.status, v["kind"].as_str(), v["reason"].as_str()), (400, Some("Status"), Some("BadRequest")), "{path} {body}: {v}");
    }
    assert_eq!(s.call("DELETE", "/api/v1/namespaces/b/pods/nope", &Value::Null).await.0, 404);
    assert_eq!(s.call("DELETE", "/api/v1/pods", &Value::Null).await.0, 405);
    assert!(s.sim.get("pods", "b", "web").unwrap().unwrap()["metadata"].get("deletionTimestamp").is_none());
}

#[tokio::test]
async fn delete_collection_deletes_what_the_selector_matches_by_the_same_rules() {
    let mut s = Sim::start().await;
    for (name, app, node) in [("a", "web", Some("n")), ("b", "web", None), ("c", "db", Some("n"))] {
        let mut p = pod(name, node);
        p["metadata"]["labels"]["app"] = json!(app);
        s.ok("POST", "/api/v1/namespaces/dc/pods", &p).await;
    }
    let list = s.ok("DELETE", "/api/v1/namespaces/dc/pods?labelSelector=app%3Dweb", &Value::Null).await;
    assert_eq!(list["kind"], "PodList");
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    let left = s.sim.objects("pods", Some("dc")).unwrap();
    let left: Vec<(&str, bool)> = left
        .iter()
        .map(|p| (p["metadata"]["name"].as_str().unwrap(), p["metadata"]["deletionTimestamp"].is_string()))
        .collect();
    assert_eq!(left, [("a", true), ("c", false)], "the bound pod waits for its grace period");
    s.ok("DELETE", "/api/v1/namespaces/dc/pods?gracePeriodSeconds=0", &Value::Null).await;
    assert!(s.sim.objects("pods", Some("dc")).unwrap().is_empty());
}

#[tokio::test]
async fn a_fast_clock_lets_grace_periods_pass_in_real_time() {
    let mut s = Sim::with(SimServer::builder().clock_scale(1000.0)).await;
    s.ok("POST", "/api/v1/namespaces/fast/pods", &pod("web", Some("n"))).await;
    s.ok("DELETE", "/api/v1/namespaces/fast/pods/web", &Value::Null).await;
    let deadline = tokio::time::Instant::now() + T;
    while s.sim.get("pods", "fast", "web").unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the kubelet never removed the pod");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_handle_deletes_by_the_servers_rules_or_removes_at_once() {
    let s = Sim::start().await;
    s.sim.create("pods", json!({"metadata": {"name": "h", "namespace": "h"}, "spec": {"nodeName": "n"}})).unwrap();
    let marked = s.sim.delete_with("pods", "h", "h", &DeleteOptions::default()).unwrap();
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(s.sim.get("pods", "h", "h").unwrap().is_some());
    let removed = s.sim.delete("pods", "h", "h").unwrap();
    assert!(removed["metadata"]["deletionTimestamp"].is_string());
    assert!(s.sim.get("pods", "h", "h").unwrap().is_none());
}

#[tokio::test]
async fn a_collector_is_another_writer_deleting_at_its_rate_and_is_off_by_default() {
    let quiet_sim = Sim::start().await;
    let busy = Sim::with(SimServer::builder().clock_scale(10.0).collector(Collector {
        resource: "pods".into(),
        label_selector: "app=web".into(),
        per_second: 20.0,
        options: DeleteOptions { grace_period_seconds: Some(0), ..DeleteOptions::default() },
    }))
    .await;
    for s in [&quiet_sim, &busy] {
        for i in 0..30 {
            let app = if i % 3 == 0 { "db" } else { "web" };
            s.sim.create("pods", json!({"metadata": {"name": format!("p{i}"), "namespace": "gc", "labels": {"app": app}}, "spec": {"nodeName": "n"}})).unwrap();
        }
    }
    let deadline = tokio::time::Instant::now() + T;
    while busy.sim.object_count("pods").unwrap() > 10 {
        assert!(tokio::time::Instant::now() < deadline, "the collector did not delete the web pods");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let left = busy.sim.objects("pods", Some("gc")).unwrap();
    assert_eq!(left.len(), 10);
    assert!(left.iter().all(|p| p["metadata"]["labels"]["app"] == "db"));
    assert_eq!(quiet_sim.sim.object_count("pods").unwrap(), 30);
}
