//! The `configmapgen_controller` example (engine/examples/configmapgen) against the
//! simulator: its ConfigMap appears with the generator's content and a controller
//! reference, follows the generator, comes back when deleted or changed, and goes
//! with the generator through the simulator's garbage collector.

#[path = "../../engine/examples/configmapgen/controller.rs"]
mod configmapgen;

use std::time::{Duration, Instant};

use configmapgen::ConfigMapGenerator;
use k8s_openapi::api::core::v1::ConfigMap;
use kcache_loadgen::sim::{ResourceDef, SimHandle, SimServer};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(30);
const NS: &str = "gen";

/// Polls `probe` until it returns `Some`, failing after [`T`] with `what`.
async fn eventually<V>(what: &str, mut probe: impl FnMut() -> Option<V>) -> V {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < T, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn configmap(sim: &SimHandle, name: &str) -> Option<Value> {
    sim.get("configmaps", NS, name).expect("configmaps are served")
}

/// The ConfigMap once it holds `content`.
async fn configmap_with(sim: &SimHandle, name: &str, content: &str) -> Value {
    eventually(&format!("configmap {name} holds {content:?}"), || {
        configmap(sim, name).filter(|cm| cm["data"]["content"] == content)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_configmap_follows_its_generator_and_comes_back() {
    let sim = SimServer::builder()
        .bookmark_interval(Duration::from_millis(200))
        .resource(ResourceDef::new("nullable.se", "v1", "ConfigMapGenerator", "configmapgenerators", true))
        .start()
        .await
        .expect("sim starts");
    let client = sim.client().expect("client");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(configmapgen::run(client.clone(), futures::stream::pending(), async move {
        let _ = stopped.await;
    }));

    let generators: Api<ConfigMapGenerator> = Api::namespaced(client.clone(), NS);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let created = generators.create(&PostParams::default(), &ConfigMapGenerator::new("hello", "first")).await.expect("create");
    let uid = created.metadata.uid.clone().expect("the server sets a uid");

    // Created with the content and a controller reference to the generator.
    let cm = configmap_with(&sim, "hello", "first").await;
    assert_eq!(
        cm["metadata"]["ownerReferences"],
        json!([{"apiVersion": "nullable.se/v1", "kind": "ConfigMapGenerator", "name": "hello", "uid": uid, "controller": true}])
    );
    assert_eq!(cm["data"].as_object().map(|d| d.len()), Some(1), "only data.content: {cm}");

    // The generator's new content reaches the same ConfigMap.
    generators
        .patch("hello", &PatchParams::default(), &Patch::Merge(json!({"spec": {"content": "second"}})))
        .await
        .expect("patch generator");
    let updated = configmap_with(&sim, "hello", "second").await;
    assert_eq!(updated["metadata"]["uid"], cm["metadata"]["uid"], "updated in place, not recreated");

    // Deleted by someone else: the delete of an owned object reconciles the owner.
    configmaps.delete("hello", &DeleteParams::default()).await.expect("delete configmap");
    let recreated = eventually("the configmap is recreated", || {
        configmap(&sim, "hello").filter(|c| c["metadata"]["uid"] != cm["metadata"]["uid"])
    })
    .await;
    assert_eq!(recreated["data"]["content"], "second");
    assert_eq!(recreated["metadata"]["ownerReferences"][0]["uid"], uid.as_str());

    // Changed by someone else: the content is put back. A key the controller never
    // applied belongs to the other writer and stays (server-side apply).
    configmaps
        .patch("hello", &PatchParams::default(), &Patch::Merge(json!({"data": {"content": "tampered", "extra": "x"}})))
        .await
        .expect("patch configmap");
    let restored = eventually("the configmap is restored", || {
        configmap(&sim, "hello").filter(|c| c["data"] == json!({"content": "second", "extra": "x"}))
    })
    .await;
    assert_eq!(restored["metadata"]["uid"], recreated["metadata"]["uid"]);
    let managers: Vec<&str> = restored["metadata"]["managedFields"].as_array().into_iter().flatten().filter_map(|m| m["manager"].as_str()).collect();
    assert!(managers.contains(&configmapgen::MANAGER), "applied by the controller's manager: {managers:?}");

    // A second generator gets its own ConfigMap; the first's is untouched.
    generators.create(&PostParams::default(), &ConfigMapGenerator::new("other", "third")).await.expect("create");
    configmap_with(&sim, "other", "third").await;
    assert_eq!(configmap(&sim, "hello").expect("still there")["data"]["content"], "second");

    // Deleting the generator takes its ConfigMap with it. The simulator's garbage
    // collector removes dependents for the foreground policy only (it plays the
    // `foregroundDeletion` finalizer), so the test asks for that one.
    generators.delete("hello", &DeleteParams::foreground()).await.expect("delete generator");
    eventually("the generator and its configmap are gone", || {
        let gone = sim.get("configmapgenerators.nullable.se", NS, "hello").expect("served").is_none()
            && configmap(&sim, "hello").is_none();
        gone.then_some(())
    })
    .await;
    assert!(configmap(&sim, "other").is_some(), "the other generator's configmap stays");

    stop.send(()).expect("controller running");
    tokio::time::timeout(T, controller).await.expect("controller stops").expect("no panic").expect("informers started");
    sim.shutdown().await;
}
