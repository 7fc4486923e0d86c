//! kube-client's own `Api<Pod>` against the simulated API server.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kcache_loadgen::podgen::{self, PodGen};
use kcache_loadgen::sim::{SimHandle, SimServer};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

async fn sim() -> SimHandle {
    SimServer::builder().start().await.expect("sim starts")
}

fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "node-001"},
    }))
    .expect("pod")
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[tokio::test]
async fn create_get_replace_patch_delete_round_trip_through_kube_client() {
    let sim = sim().await;
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "ns1");
    tokio::time::timeout(T, async {
        let created = api
            .create(&PostParams::default(), &pod("web-0", "web"))
            .await
            .expect("create");
        let meta = &created.metadata;
        assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
        assert_eq!(meta.generation, Some(1));
        assert!(meta.creation_timestamp.is_some());
        let rv1: u64 = meta
            .resource_version
            .as_deref()
            .expect("rv")
            .parse()
            .expect("numeric rv");
        assert_eq!(meta.namespace.as_deref(), Some("ns1"));

        let got = api.get("web-0").await.expect("get");
        assert_eq!(got.metadata.uid, created.metadata.uid);

        // Creating it again is AlreadyExists.
        let e = api
            .create(&PostParams::default(), &pod("web-0", "web"))
            .await
            .expect_err("exists");
        assert_eq!(api_code(&e), Some(409));

        // Replace with the current RV works and bumps it; replaying the stale one conflicts.
        let mut next = got.clone();
        next.metadata
            .labels
            .get_or_insert_default()
            .insert("v".into(), "2".into());
        let replaced = api
            .replace("web-0", &PostParams::default(), &next)
            .await
            .expect("replace");
        let rv2: u64 = replaced
            .metadata
            .resource_version
            .as_deref()
            .expect("rv")
            .parse()
            .expect("rv");
        assert!(rv2 > rv1);
        let e = api
            .replace("web-0", &PostParams::default(), &next)
            .await
            .expect_err("stale rv");
        assert_eq!(api_code(&e), Some(409));
        assert!(matches!(&e, kube::Error::Api(s) if s.is_conflict()));

        // Merge patch and JSON patch.
        let p = api
            .patch(
                "web-0",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"merged": "yes"}}})),
            )
            .await
            .expect("merge patch");
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("merged"))
                .map(String::as_str),
            Some("yes")
        );
        let ops: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/metadata/labels/merged", "value": "json"},
            {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}},
        ]))
        .expect("ops");
        let p = api
            .patch("web-0", &PatchParams::default(), &Patch::Json::<()>(ops))
            .await
            .expect("json patch");
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("merged"))
                .map(String::as_str),
            Some("json")
        );
        assert_eq!(
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("a"))
                .map(String::as_str),
            Some("b")
        );
        assert_eq!(
            p.metadata.generation,
            Some(1),
            "metadata-only changes keep the generation"
        );

        // Strategic merge patch is not supported: 415.
        let e = api
            .patch(
                "web-0",
                &PatchParams::default(),
                &Patch::Strategic(json!({"metadata": {"labels": {"s": "1"}}})),
            )
            .await
            .expect_err("strategic");
        assert_eq!(api_code(&e), Some(415));

        // Delete returns the object, then it is gone.
        let deleted = api
            .delete("web-0", &DeleteParams::default().grace_period(0))
            .await
            .expect("delete");
        let obj = deleted.left().expect("the deleted object, not a Status");
        assert!(obj.metadata.deletion_timestamp.is_some());
        let e = api.get("web-0").await.expect_err("gone");
        assert_eq!(api_code(&e), Some(404));
        assert!(matches!(&e, kube::Error::Api(s) if s.is_not_found()));
        assert_eq!(sim.object_count("pods").expect("pods"), 0);
    })
    .await
    .expect("within the timeout");
}

#[tokio::test]
async fn list_filters_by_label_and_field_selectors() {
    let sim = sim().await;
    podgen::load_pods(&sim, "sel", 300, 5).expect("load");
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "sel");
    let all = sim.objects("pods", Some("sel")).expect("objects");
    let want_app = all
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "app-007")
        .count();
    let want_node = all
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "node-042")
        .count();
    let want_running = all
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count();
    assert!(want_app > 0 && want_node > 0);

    let l = api
        .list(&ListParams::default().labels("app=app-007"))
        .await
        .expect("list");
    assert_eq!(l.items.len(), want_app);
    assert!(l.items.iter().all(|p| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .map(String::as_str)
            == Some("app-007")
    }));

    let l = api
        .list(&ListParams::default().labels("app in (app-007, app-008),tier"))
        .await
        .expect("set list");
    let want = all
        .iter()
        .filter(|p| {
            ["app-007", "app-008"].contains(&p["metadata"]["labels"]["app"].as_str().unwrap_or(""))
        })
        .count();
    assert_eq!(l.items.len(), want);

    let l = api
        .list(&ListParams::default().fields("spec.nodeName=node-042"))
        .await
        .expect("field list");
    assert_eq!(l.items.len(), want_node);
    let l = api
        .list(&ListParams::default().fields("status.phase!=Running"))
        .await
        .expect("phase list");
    assert_eq!(l.items.len(), all.len() - want_running);
    let l = api
        .list(&ListParams::default().fields(&format!("metadata.name={}", PodGen::name(17))))
        .await
        .expect("name");
    assert_eq!(l.items.len(), 1);

    let other: Api<Pod> = Api::namespaced(sim.client().expect("client"), "elsewhere");
    assert!(
        other
            .list(&ListParams::default())
            .await
            .expect("empty ns")
            .items
            .is_empty()
    );
    let everywhere: Api<Pod> = Api::all(sim.client().expect("client"));
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .expect("all")
            .items
            .len(),
        300
    );
}

#[tokio::test]
async fn list_pagination_visits_every_pod_once_at_one_resource_version() {
    let sim = sim().await;
    podgen::load_pods(&sim, "pages", 25, 9).expect("load");
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "pages");
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let mut pages = 0;
    let mut first_rv = None;
    loop {
        let page = api.list(&lp).await.expect("page");
        pages += 1;
        let rv = page.metadata.resource_version.clone();
        first_rv.get_or_insert(rv.clone());
        assert_eq!(
            Some(rv),
            first_rv.clone(),
            "every page is served at the first page's RV"
        );
        names.extend(page.items.iter().filter_map(|p| p.metadata.name.clone()));
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some(15));
            // A write between pages must not show up in later pages.
            sim.delete("pods", "pages", &PodGen::name(24))
                .expect("delete");
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..25).map(PodGen::name).collect();
    assert_eq!(names, want);
}

#[tokio::test]
async fn the_status_subresource_patch_changes_only_status() {
    let sim = sim().await;
    podgen::load_pods(&sim, "st", 1, 1).expect("load");
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "st");
    let p = api
        .patch_status(
            &PodGen::name(0),
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Failed"}, "metadata": {"labels": {"ignored": "x"}}}),
            ),
        )
        .await
        .expect("patch status");
    assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Failed"));
    assert!(
        p.metadata
            .labels
            .is_some_and(|l| !l.contains_key("ignored"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_to_one_pod_are_all_applied_and_each_bumps_the_rv_once() {
    let sim = sim().await;
    podgen::load_pods(&sim, "c", 1, 1).expect("load");
    let rv0 = sim.resource_version();
    std::thread::scope(|s| {
        for t in 0..8 {
            let sim = &sim;
            s.spawn(move || {
                for i in 0..50 {
                    sim.merge_patch("pods", "c", &PodGen::name(0), &json!({"metadata": {"labels": {format!("w{t}-{i}"): "x"}}}))
                        .expect("patch");
                }
            });
        }
    });
    let pod = sim.get("pods", "c", &PodGen::name(0)).expect("pods").expect("pod");
    let labels = pod["metadata"]["labels"].as_object().expect("labels");
    assert_eq!(labels.keys().filter(|k| k.starts_with("w")).count(), 400, "no lost update");
    assert_eq!(sim.resource_version(), rv0 + 400);
    assert_eq!(pod["metadata"]["resourceVersion"], json!((rv0 + 400).to_string()));
}
