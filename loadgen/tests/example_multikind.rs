//! The multi-kind example (engine/examples/multikind) against the simulator: a
//! `WebApp` gets a `WebAppRevision` and its pods, scales, rolls to a new revision on
//! an image change, reports counts in its status, and on delete runs its cleanup
//! once, after which the app, its revisions and its pods are gone; the controller's
//! Events about the app reach the server.

#[path = "../../engine/examples/multikind/controller.rs"]
mod controller;
#[path = "../../engine/examples/multikind/types.rs"]
mod types;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kcache_loadgen::sim::{ResourceDef, SimHandle, SimServer};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use types::{APP_LABEL, GROUP, WebApp, WebAppSpec, revision_name};

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(30);
const NS: &str = "shop";
const APPS: &str = "webapps.example.kcache.dev";
const REVISIONS: &str = "webapprevisions.example.kcache.dev";

/// Polls `probe` until it returns `Some`, failing after [`T`] with `what` and the
/// last state `probe` described.
async fn eventually<V>(what: &str, mut probe: impl FnMut() -> Result<V, String>) -> V {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) => assert!(start.elapsed() < T, "never happened: {what}; last: {last}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn of_app(sim: &SimHandle, resource: &str, app: &str) -> Vec<Value> {
    let mut v: Vec<Value> = sim
        .objects(resource, Some(NS))
        .expect("served")
        .into_iter()
        .filter(|o| o["metadata"]["labels"][APP_LABEL] == app)
        .collect();
    v.sort_by_key(|o| o["metadata"]["name"].as_str().unwrap_or_default().to_owned());
    v
}

fn names(objs: &[Value]) -> Vec<String> {
    objs.iter().map(|o| o["metadata"]["name"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until `app` runs `replicas` pods of `image` in one revision, everything
/// owned as it should be, and the app's status says so. Returns the pods.
async fn converged(sim: &SimHandle, app: &str, replicas: usize, image: &str) -> Vec<Value> {
    let rev = revision_name(app, image);
    let want_pods: Vec<String> = (0..replicas).map(|i| format!("{rev}-{i}")).collect();
    eventually(&format!("{app} runs {replicas} pods of {image}"), || {
        let revisions = of_app(sim, REVISIONS, app);
        let pods = of_app(sim, "pods", app);
        let web = sim.get(APPS, NS, app).expect("served").ok_or("no app")?;
        let state = format!("revisions {:?}, pods {:?}, app status {}", names(&revisions), names(&pods), web["status"]);
        if names(&revisions) != [rev.clone()] || names(&pods) != want_pods {
            return Err(state);
        }
        let status = json!({"revision": rev, "replicas": replicas, "pods": replicas});
        if web["status"] != status || revisions[0]["status"]["replicas"] != replicas {
            return Err(state);
        }
        Ok(pods)
    })
    .await
}

fn controller_ref(o: &Value) -> Value {
    let refs = o["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    assert_eq!(refs.len(), 1, "one owner: {o}");
    refs[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webapp_scales_rolls_reports_and_cleans_up_once() {
    let sim = SimServer::builder()
        .bookmark_interval(Duration::from_millis(200))
        .resource(ResourceDef::new(GROUP, "v1", "WebApp", "webapps", true))
        .resource(ResourceDef::new(GROUP, "v1", "WebAppRevision", "webapprevisions", true))
        .resource(ResourceDef::events())
        .start()
        .await
        .expect("sim starts");
    let client = sim.client().expect("client");
    let counters = Arc::new(controller::Counters::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller::run(client.clone(), Arc::clone(&counters), async move {
        let _ = stopped.await;
    }));

    let apps: Api<WebApp> = Api::namespaced(client.clone(), NS);
    let spec = WebAppSpec { replicas: 3, image: "web:1".into() };
    let app = apps.create(&PostParams::default(), &WebApp::new("store", spec)).await.expect("create app");
    let app_uid = app.metadata.uid.clone().expect("uid");

    // The revision, owned by the app; its pods, owned by the revision.
    let pods = converged(&sim, "store", 3, "web:1").await;
    let rev1 = revision_name("store", "web:1");
    let revision = sim.get(REVISIONS, NS, &rev1).expect("served").expect("revision");
    let r = controller_ref(&revision);
    assert_eq!((&r["kind"], &r["name"], &r["uid"], &r["controller"]), (&json!("WebApp"), &json!("store"), &json!(app_uid), &json!(true)));
    assert_eq!(revision["spec"], json!({"replicas": 3, "image": "web:1"}));
    for pod in &pods {
        let r = controller_ref(pod);
        assert_eq!((&r["kind"], &r["name"], &r["uid"]), (&json!("WebAppRevision"), &json!(rev1), &revision["metadata"]["uid"]));
        assert_eq!(pod["spec"]["containers"][0]["image"], "web:1");
    }
    let web = sim.get(APPS, NS, "store").expect("served").expect("app");
    assert_eq!(web["metadata"]["finalizers"], json!([controller::FINALIZER]));

    // Scale up, then down.
    let scale = |n: i32| Patch::Merge(json!({"spec": {"replicas": n}}));
    apps.patch("store", &PatchParams::default(), &scale(5)).await.expect("scale up");
    converged(&sim, "store", 5, "web:1").await;
    apps.patch("store", &PatchParams::default(), &scale(2)).await.expect("scale down");
    converged(&sim, "store", 2, "web:1").await;

    // A pod deleted by someone else comes back.
    let pod_api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), NS);
    let first = format!("{rev1}-0");
    let old_uid = sim.get("pods", NS, &first).expect("served").expect("pod")["metadata"]["uid"].clone();
    pod_api.delete(&first, &DeleteParams::default()).await.expect("delete pod");
    eventually("the deleted pod is recreated", || match sim.get("pods", NS, &first).expect("served") {
        Some(p) if p["metadata"]["uid"] != old_uid => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await;

    // A new image rolls to a new revision; the old one goes with its pods.
    apps.patch("store", &PatchParams::default(), &Patch::Merge(json!({"spec": {"image": "web:2"}}))).await.expect("new image");
    let pods = converged(&sim, "store", 2, "web:2").await;
    assert!(pods.iter().all(|p| p["spec"]["containers"][0]["image"] == "web:2"), "{pods:?}");
    assert_eq!(sim.get(REVISIONS, NS, &rev1).expect("served"), None);
    assert_eq!(counters.cleanups.load(Ordering::Relaxed), 0, "no cleanup while the app lives");

    // Delete: the finalizer holds the app until its cleanup ran; then all is gone.
    apps.delete("store", &DeleteParams::default()).await.expect("delete app");
    eventually("the app, its revisions and its pods are gone", || {
        let left = (sim.get(APPS, NS, "store").expect("served"), names(&of_app(&sim, REVISIONS, "store")), names(&of_app(&sim, "pods", "store")));
        if left.0.is_none() && left.1.is_empty() && left.2.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    })
    .await;
    stop.send(()).expect("controllers running");
    tokio::time::timeout(T, run).await.expect("controllers stop").expect("no panic").expect("informers started");
    assert_eq!(counters.cleanups.load(Ordering::Relaxed), 1, "the cleanup ran once");

    // `run` flushed the recorder: every event about the app is on the server. Events
    // that differ only in their note are one Event with a series count (client-go's
    // aggregation), so the two revisions make one RevisionCreated counted twice.
    let events: Vec<(String, String, u64)> = sim
        .objects("events.events.k8s.io", Some(NS))
        .expect("events are served")
        .iter()
        .filter(|e| e["regarding"]["kind"] == "WebApp" && e["regarding"]["name"] == "store")
        .map(|e| {
            let reason = e["reason"].as_str().unwrap_or_default().to_owned();
            let note = e["note"].as_str().unwrap_or_default().to_owned();
            (reason, note, e["series"]["count"].as_u64().unwrap_or(1))
        })
        .collect();
    let rev2 = revision_name("store", "web:2");
    let expected = [
        ("RevisionCreated", format!("revision {rev1} runs web:1"), 2),
        ("RevisionRetired", format!("revision {rev1} replaced by {rev2}"), 1),
        ("CleanedUp", "revisions deleted: 1".to_owned(), 1),
    ];
    let mut seen: Vec<_> = events.iter().map(|(r, n, c)| (r.as_str(), n.clone(), *c)).collect();
    seen.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(seen, expected, "the app's events");
    sim.shutdown().await;
}
