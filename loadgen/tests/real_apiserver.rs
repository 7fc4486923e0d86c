//! The simulator against a real kube-apiserver: one scenario of deletions,
//! finalizers, namespaces, preconditions and list versions runs on both, and
//! what each server answered is written as a transcript of shapes (status
//! codes, Status reasons and causes, which deletion fields are set, the watch
//! events each step caused), with names, uids, timestamps and versions masked.
//!
//! * `the_simulator_answers_as_the_recorded_real_server` runs in CI: the
//!   scenario on the simulator must give the transcript recorded from a real
//!   kube-apiserver v1.36 (`tests/data/real-apiserver-transcript.txt`).
//! * `the_real_apiserver_answers_as_recorded` is `#[ignore]`d: it needs the real
//!   server of `shared/real-apiserver/README.md` (the command is in
//!   docs/TESTING.md). With `KCACHE_REAL_RECORD=1` it rewrites the recording.
//!
//! Where the two differ on purpose, the scenario does not ask: the simulated
//! kubelet removes a gracefully deleted pod when its grace ends, where the
//! real server without kubelets keeps it; so the scenario ends every graceful
//! delete with a grace-0 delete.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use kcache_loadgen::sim::{SimHandle, SimServer};
use serde_json::{Value, json};
use tokio::sync::mpsc;

mod real_support;
use real_support::{compare_or_record, real_client, sim_client};

const TRANSCRIPT: &str = "tests/data/real-apiserver-transcript.txt";
/// How long a step's watch events may take to arrive; a step's events are the
/// ones that arrive before the watch has been quiet this long.
const QUIET: Duration = Duration::from_millis(700);

/// One server under test: the simulator (whose clock and controllers the
/// scenario can drive) or a real kube-apiserver.
struct Server {
    client: kube::Client,
    sim: Option<SimHandle>,
    ns: String,
    lines: Vec<String>,
    /// Strings replaced by placeholders in the transcript (uids, versions).
    masks: Vec<(String, String)>,
}

impl Server {
    async fn call(&mut self, method: &str, path: &str, body: Option<&Value>, content_type: &str) -> (u16, Value) {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json")).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(kube::client::Body::from(bytes))
            .expect("request");
        let res = self.client.send(req).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let v = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
        (status, v)
    }

    /// Runs one request and records its answer's shape under `step`.
    async fn step(&mut self, step: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let ct = if method == "PATCH" { "application/merge-patch+json" } else { "application/json" };
        let path = path.replace("{ns}", &self.ns);
        let (code, v) = self.call(method, &path, body, ct).await;
        let line = format!("{step}: {code} {}", self.shape(&v));
        self.lines.push(line);
        (code, v)
    }

    /// Records what a watch received since the last step.
    async fn events(&mut self, w: &mut Watch) {
        for e in w.drain().await {
            let line = format!("  watch {} {}", e["type"].as_str().unwrap_or("?"), self.shape(&e["object"]));
            self.lines.push(line);
        }
    }

    fn mask(&self, s: &str) -> String {
        let mut out = s.replace(&self.ns, "NS");
        for (from, to) in &self.masks {
            out = out.replace(from, to);
        }
        mask_numbers(&out)
    }

    /// What the transcript keeps of an answer: a Status's code, reason,
    /// message and causes; an object's kind and its deletion fields; a list's
    /// kind and item count.
    fn shape(&self, v: &Value) -> String {
        let kind = v["kind"].as_str().unwrap_or("");
        if kind == "Status" {
            let causes: Vec<String> = v["details"]["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{}:{}", c["reason"].as_str().unwrap_or(""), c["field"].as_str().unwrap_or("")))
                .collect();
            return self.mask(&format!(
                "Status {} {} {:?} causes={:?}",
                v["code"],
                v["reason"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or(""),
                causes
            ));
        }
        if kind.ends_with("List") {
            return format!("{kind} items={}", v["items"].as_array().map_or(0, Vec::len));
        }
        if v.is_null() {
            return "(no body)".to_owned();
        }
        let m = &v["metadata"];
        let mut s = format!("{kind} {}", self.mask(m["name"].as_str().unwrap_or("")));
        if m.get("deletionTimestamp").is_some() {
            s.push_str(" deletionTimestamp");
        }
        if let Some(g) = m.get("deletionGracePeriodSeconds") {
            s.push_str(&format!(" grace={g}"));
        }
        if let Some(f) = m.get("finalizers") {
            s.push_str(&format!(" finalizers={f}"));
        }
        if let Some(p) = v["status"].get("phase") {
            s.push_str(&format!(" phase={p}"));
        }
        s
    }

    async fn watch(&mut self, path: &str) -> Watch {
        let path = path.replace("{ns}", &self.ns);
        let (_, list) = self.call("GET", &path, None, "application/json").await;
        let rv = list["metadata"]["resourceVersion"].as_str().expect("list rv").to_owned();
        let sep = if path.contains('?') { '&' } else { '?' };
        let req = http::Request::builder()
            .uri(format!("{path}{sep}watch=true&resourceVersion={rv}&allowWatchBookmarks=false"))
            .header("accept", "application/json")
            .header("accept-encoding", "identity")
            .body(kube::client::Body::empty())
            .expect("request");
        let res = self.client.send(req).await.expect("watch");
        assert_eq!(res.status().as_u16(), 200, "watch {path}");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut body = res.into_body().into_data_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                let chunk: Bytes = chunk;
                buf.extend_from_slice(&chunk);
                while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&line)
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        Watch { rx }
    }

    /// Lets the server's controllers act: the simulator runs a pass at once;
    /// a real server's run on their own.
    async fn settle(&self) {
        if let Some(sim) = &self.sim {
            sim.reconcile();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Waits until GET `path` answers 404, driving the simulator's clock.
    async fn wait_gone(&mut self, step: &str, path: &str) {
        let path = path.replace("{ns}", &self.ns);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, _) = self.call("GET", &path, None, "application/json").await;
            if code == 404 {
                self.lines.push(format!("{step}: gone"));
                return;
            }
            assert!(Instant::now() < deadline, "{path} still there after 120 s");
            if let Some(sim) = &self.sim {
                sim.advance_clock(Duration::from_secs(1));
            }
            self.settle().await;
        }
    }
}

struct Watch {
    rx: mpsc::UnboundedReceiver<Value>,
}

impl Watch {
    /// The events that arrive before the watch is quiet for [`QUIET`].
    async fn drain(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Some(e)) = tokio::time::timeout(QUIET, self.rx.recv()).await {
            if e["type"] != "BOOKMARK" {
                out.push(e);
            }
        }
        out
    }
}

/// Replaces runs of two or more digits (resourceVersions, times, codes) with `N`.
fn mask_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    for c in s.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 2 {
            out.push('N');
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

fn pod(name: &str, node: Option<&str>) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": "app:1"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec})
}

fn configmap(name: &str, finalizers: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": {"set": "a"}, "finalizers": finalizers},
           "data": {"k": "v"}})
}

/// The scenario. Every step's answer and the watch events it caused go into
/// the transcript.
async fn scenario(s: &mut Server) {
    let ns = s.ns.clone();
    s.step("create namespace", "POST", "/api/v1/namespaces", Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})))
        .await;
    let mut pods = s.watch("/api/v1/namespaces/{ns}/pods").await;
    let mut cms = s.watch("/api/v1/namespaces/{ns}/configmaps").await;

    // An unscheduled pod goes at once.
    s.step("create unscheduled pod", "POST", "/api/v1/namespaces/{ns}/pods", Some(&pod("free", None))).await;
    s.events(&mut pods).await;
    s.step("delete unscheduled pod", "DELETE", "/api/v1/namespaces/{ns}/pods/free", None).await;
    s.events(&mut pods).await;

    // A pod bound to a node is deleted gracefully; a shorter grace shortens,
    // a longer one does not lengthen, grace 0 removes it.
    s.step("create bound pod", "POST", "/api/v1/namespaces/{ns}/pods", Some(&pod("bound", Some("node-a")))).await;
    s.events(&mut pods).await;
    s.step("delete bound pod", "DELETE", "/api/v1/namespaces/{ns}/pods/bound", None).await;
    s.events(&mut pods).await;
    s.step("delete bound pod, grace 10", "DELETE", "/api/v1/namespaces/{ns}/pods/bound?gracePeriodSeconds=10", None)
        .await;
    s.events(&mut pods).await;
    s.step("delete bound pod, grace 60", "DELETE", "/api/v1/namespaces/{ns}/pods/bound?gracePeriodSeconds=60", None)
        .await;
    s.events(&mut pods).await;
    s.step(
        "delete bound pod, grace 0 in the body",
        "DELETE",
        "/api/v1/namespaces/{ns}/pods/bound",
        Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})),
    )
    .await;
    s.events(&mut pods).await;

    // Finalizers: the delete marks, adding one is refused, removing the last deletes.
    let (_, cm) = s.step("create configmap with a finalizer", "POST", "/api/v1/namespaces/{ns}/configmaps", Some(&configmap("fin", &["example.com/guard"]))).await;
    let uid = cm["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    s.masks.push((uid.clone(), "UID".to_owned()));
    s.events(&mut cms).await;
    s.step(
        "delete with a wrong uid precondition",
        "DELETE",
        "/api/v1/namespaces/{ns}/configmaps/fin",
        Some(&json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})),
    )
    .await;
    s.step(
        "delete with a wrong resourceVersion precondition",
        "DELETE",
        "/api/v1/namespaces/{ns}/configmaps/fin",
        Some(&json!({"preconditions": {"resourceVersion": "1"}})),
    )
    .await;
    s.step("delete with an unknown propagationPolicy", "DELETE", "/api/v1/namespaces/{ns}/configmaps/fin?propagationPolicy=Sideways", None)
        .await;
    s.step("delete with a malformed body", "DELETE", "/api/v1/namespaces/{ns}/configmaps/fin", Some(&json!({"gracePeriodSeconds": "soon"})))
        .await;
    s.step("delete configmap with a finalizer", "DELETE", "/api/v1/namespaces/{ns}/configmaps/fin", Some(&json!({"preconditions": {"uid": uid}})))
        .await;
    s.events(&mut cms).await;
    s.step("delete it again", "DELETE", "/api/v1/namespaces/{ns}/configmaps/fin", None).await;
    s.events(&mut cms).await;
    s.step(
        "add a finalizer while deleting",
        "PATCH",
        "/api/v1/namespaces/{ns}/configmaps/fin",
        Some(&json!({"metadata": {"finalizers": ["example.com/guard", "example.com/other"]}})),
    )
    .await;
    s.step("remove the last finalizer", "PATCH", "/api/v1/namespaces/{ns}/configmaps/fin", Some(&json!({"metadata": {"finalizers": null}})))
        .await;
    s.events(&mut cms).await;
    s.step("get it", "GET", "/api/v1/namespaces/{ns}/configmaps/fin", None).await;

    // A collection.
    for name in ["c1", "c2", "c3"] {
        s.step("create configmap", "POST", "/api/v1/namespaces/{ns}/configmaps", Some(&configmap(name, &[]))).await;
    }
    s.events(&mut cms).await;
    s.step("delete the collection", "DELETE", "/api/v1/namespaces/{ns}/configmaps?labelSelector=set%3Da", None).await;
    let mut deleted = cms.drain().await;
    // A collection's deletes may reach the watch in any order.
    deleted.sort_by_key(|e| e["object"]["metadata"]["name"].as_str().unwrap_or("").to_owned());
    for e in deleted {
        let line = format!("  watch {} {}", e["type"].as_str().unwrap_or("?"), s.shape(&e["object"]));
        s.lines.push(line);
    }

    // List versions: a version the server has not reached. (An exact read at an
    // old version depends on when etcd last compacted: not asked.)
    let (_, list) = s.call("GET", &format!("/api/v1/namespaces/{ns}/pods"), None, "application/json").await;
    let rv: u64 = list["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse().ok()).expect("list rv");
    s.step(
        "list not older than a future version",
        "GET",
        &format!("/api/v1/namespaces/{{ns}}/pods?resourceVersion={}&resourceVersionMatch=NotOlderThan", rv + 1_000_000),
        None,
    )
    .await;
    s.step("list with a match and no version", "GET", "/api/v1/namespaces/{ns}/pods?resourceVersionMatch=NotOlderThan", None)
        .await;

    // A namespace terminates: creates in it are refused, then it goes.
    s.step("create a pod to outlive", "POST", "/api/v1/namespaces/{ns}/pods", Some(&pod("left", None))).await;
    s.events(&mut pods).await;
    s.step("delete namespace", "DELETE", &format!("/api/v1/namespaces/{ns}"), None).await;
    s.step("create in the terminating namespace", "POST", "/api/v1/namespaces/{ns}/configmaps", Some(&configmap("late", &[])))
        .await;
    s.wait_gone("namespace", &format!("/api/v1/namespaces/{ns}")).await;
    s.events(&mut pods).await;
}

async fn transcript(client: kube::Client, sim: Option<SimHandle>) -> String {
    let ns = format!("kcache-real-{}", std::process::id());
    let mut s = Server { client, sim, ns, lines: Vec::new(), masks: Vec::new() };
    scenario(&mut s).await;
    s.lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_as_the_recorded_real_server() {
    let sim = SimServer::builder().start().await.expect("sim");
    let client = sim_client(&sim);
    let ours = transcript(client, Some(sim)).await;
    compare_or_record(TRANSCRIPT, &ours, "the simulator", false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: see docs/TESTING.md"]
async fn the_real_apiserver_answers_as_recorded() {
    let real = transcript(real_client().await, None).await;
    compare_or_record(TRANSCRIPT, &real, "the real server", true);
}
