//! Server-side apply on the simulator against a real kube-apiserver: one
//! sequence of applies (create, no-op, conflicts, force, omitted fields,
//! a deployment's containers merged by name, the status subresource, refused
//! requests) runs
//! on both, and each answer is written as a transcript of shapes: status code,
//! a Status's reason, message and causes, an object's data, container names,
//! condition types and its `Apply` managedFields entries without their times.
//!
//! * `the_simulator_applies_as_the_recorded_real_server` runs in CI against
//!   `tests/data/real-apiserver-apply-transcript.txt`, recorded from a real
//!   kube-apiserver v1.36.
//! * `the_real_apiserver_applies_as_recorded` is `#[ignore]`d: it needs
//!   `KCACHE_REAL_KUBECONFIG`; with `KCACHE_REAL_RECORD=1` it rewrites the
//!   recording. It creates one namespace and deletes it at the end.
//!
//! The sequence avoids what the simulator does not model (see the module doc
//! of `sim::store::apply`): fields set by plain updates, defaulted fields, and
//! managers other than the ones that apply (a real server's controllers may
//! add `Update` entries: the transcript keeps `Apply` entries only).

use std::collections::HashMap;

use http_body_util::BodyExt;
use kcache_loadgen::sim::{ResourceDef, SimServer};
use serde_json::{Value, json};

mod real_support;
use real_support::{compare_or_record, real_client, sim_client};

const TRANSCRIPT: &str = "tests/data/real-apiserver-apply-transcript.txt";
const APPLY: &str = "application/apply-patch+yaml";

struct Server {
    client: kube::Client,
    ns: String,
    lines: Vec<String>,
    /// The last resourceVersion seen per object name: a step says whether it wrote.
    versions: HashMap<String, String>,
}

impl Server {
    async fn call(&mut self, method: &str, path: &str, body: Option<&Value>, content_type: &str) -> (u16, Value) {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json")).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(path.replace("{ns}", &self.ns))
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(kube::client::Body::from(bytes))
            .expect("request");
        let res = self.client.send(req).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// PATCHes `path` with `body` as `content_type`, and records the answer's shape.
    async fn step(&mut self, step: &str, path: &str, body: &Value, content_type: &str) -> Value {
        let (code, v) = self.call("PATCH", path, Some(body), content_type).await;
        let line = format!("{step}: {code} {}", self.shape(&v));
        self.lines.push(line.replace(&self.ns, "NS"));
        v
    }

    fn shape(&mut self, v: &Value) -> String {
        if v["kind"] == "Status" {
            let causes: Vec<String> = v["details"]["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{}|{}|{}", c["reason"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or(""), c["field"].as_str().unwrap_or("")))
                .collect();
            return format!("Status {} {:?} causes={causes:?}", v["reason"].as_str().unwrap_or(""), v["message"].as_str().unwrap_or(""));
        }
        let m = &v["metadata"];
        let name = m["name"].as_str().unwrap_or("").to_owned();
        let rv = m["resourceVersion"].as_str().unwrap_or("").to_owned();
        let wrote = match self.versions.insert(name.clone(), rv.clone()) {
            Some(before) if before == rv => "unchanged",
            Some(_) => "written",
            None => "new",
        };
        let mut s = format!("{} {name} {wrote}", v["kind"].as_str().unwrap_or(""));
        if let Some(d) = v.get("data") {
            s.push_str(&format!(" data={d}"));
        }
        let containers = v["spec"]["containers"].as_array().or_else(|| v["spec"]["template"]["spec"]["containers"].as_array());
        if let Some(cs) = containers {
            let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
            let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
            s.push_str(&format!(" containers={names:?} images={images:?}"));
        }
        if let Some(cs) = v["status"]["conditions"].as_array() {
            let types: Vec<String> =
                cs.iter().map(|c| format!("{}={}", c["type"].as_str().unwrap_or(""), c["status"].as_str().unwrap_or(""))).collect();
            s.push_str(&format!(" conditions={types:?}"));
        }
        let mut entries: Vec<String> = m["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["operation"] == "Apply")
            .map(|e| {
                format!(
                    "\n    {} {} {} {} sub={} {}",
                    e["manager"].as_str().unwrap_or(""),
                    e["operation"].as_str().unwrap_or(""),
                    e["apiVersion"].as_str().unwrap_or(""),
                    e["fieldsType"].as_str().unwrap_or(""),
                    e["subresource"].as_str().unwrap_or("-"),
                    e["fieldsV1"],
                )
            })
            .collect();
        entries.sort();
        s.push_str(&entries.concat());
        s
    }
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": data})
}

fn deployment(containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d1"},
           "spec": {"selector": {"matchLabels": {"app": "d1"}},
                    "template": {"metadata": {"labels": {"app": "d1"}}, "spec": {"containers": containers}}}})
}

fn deployment_containers(containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d1"},
           "spec": {"template": {"spec": {"containers": containers}}}})
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"containers": containers}})
}

async fn scenario(s: &mut Server) {
    let ns = s.ns.clone();
    let (code, _) = s
        .call("POST", "/api/v1/namespaces", Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})), "application/json")
        .await;
    assert_eq!(code, 201, "create the namespace");
    let c1 = "/api/v1/namespaces/{ns}/configmaps/c1";
    s.step("apply creates", &format!("{c1}?fieldManager=alice"), &cm(json!({"x": "1", "y": "2", "w": "4"})), APPLY).await;
    s.step("the same apply again", &format!("{c1}?fieldManager=alice"), &cm(json!({"x": "1", "y": "2", "w": "4"})), APPLY).await;
    s.step("another manager, one conflict", &format!("{c1}?fieldManager=bob"), &cm(json!({"x": "9", "z": "3"})), APPLY).await;
    s.step("another manager, two conflicts", &format!("{c1}?fieldManager=bob"), &cm(json!({"x": "9", "y": "7"})), APPLY).await;
    s.step("a shared value", &format!("{c1}?fieldManager=carol"), &cm(json!({"w": "4"})), APPLY).await;
    s.step("force takes over", &format!("{c1}?fieldManager=bob&force=true"), &cm(json!({"x": "9", "z": "3"})), APPLY).await;
    s.step("omitted fields go", &format!("{c1}?fieldManager=bob"), &cm(json!({"z": "3"})), APPLY).await;
    s.step("omitted shared fields stay", &format!("{c1}?fieldManager=alice"), &cm(json!({"y": "2"})), APPLY).await;
    s.step("no field manager", c1, &cm(json!({"y": "2"})), APPLY).await;
    s.step(
        "another kind",
        &format!("{c1}?fieldManager=alice"),
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c1"}}),
        APPLY,
    )
    .await;
    s.step("an unsupported patch type", c1, &json!({"data": {"q": "1"}}), "application/foo").await;

    let p1 = "/api/v1/namespaces/{ns}/pods/p1";
    s.step("apply a pod", &format!("{p1}?fieldManager=alice"), &pod(json!([{"name": "a", "image": "busybox", "args": ["x"]}])), APPLY)
        .await;
    // Pod containers may not change after creation: a deployment's template's may.
    let d1 = "/apis/apps/v1/namespaces/{ns}/deployments/d1";
    s.step("apply a deployment", &format!("{d1}?fieldManager=alice"), &deployment(json!([{"name": "a", "image": "busybox", "args": ["x"]}])), APPLY)
        .await;
    s.step("another container", &format!("{d1}?fieldManager=bob"), &deployment_containers(json!([{"name": "b", "image": "nginx"}])), APPLY)
        .await;
    s.step("a keyed conflict", &format!("{d1}?fieldManager=bob"), &deployment_containers(json!([{"name": "a", "image": "nginx"}])), APPLY)
        .await;
    s.step("force drops an omitted container", &format!("{d1}?fieldManager=alice&force=true"), &deployment(json!([{"name": "b", "image": "nginx"}])), APPLY)
        .await;
    let status = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
                        "status": {"conditions": [{"type": "Example", "status": "False"}]}});
    s.step("apply the status", &format!("{p1}/status?fieldManager=carol"), &status, APPLY).await;
    s.step("a status conflict", &format!("{p1}/status?fieldManager=dave"), &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
            "status": {"conditions": [{"type": "Example", "status": "True"}]}}), APPLY).await;
    s.step("apply the status of an absent pod", &format!("{}/status?fieldManager=carol", p1.replace("p1", "p2")), &status, APPLY).await;

    let (code, _) = s.call("DELETE", &format!("/api/v1/namespaces/{ns}"), None, "application/json").await;
    assert_eq!(code, 200, "delete the namespace");
}

async fn transcript(client: kube::Client) -> String {
    let ns = format!("kcache-apply-{}", std::process::id());
    let mut s = Server { client, ns, lines: Vec::new(), versions: HashMap::new() };
    scenario(&mut s).await;
    s.lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_applies_as_the_recorded_real_server() {
    let sim = SimServer::builder().resource(ResourceDef::deployments()).start().await.expect("sim");
    let ours = transcript(sim_client(&sim)).await;
    compare_or_record(TRANSCRIPT, &ours, "the simulator", false);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: KCACHE_REAL_KUBECONFIG (see the file's doc)"]
async fn the_real_apiserver_applies_as_recorded() {
    let real = transcript(real_client().await).await;
    compare_or_record(TRANSCRIPT, &real, "the real server", true);
}
