//! The simulator's responses have the same JSON shape as a real kube-apiserver's
//! (fixtures/real-apiserver): the same keys at every level and the same value types.

use std::time::Duration;

use kcache_loadgen::sim::{Line, RawClient, RawStream, SimHandle, SimServer};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);
const META_ACCEPT: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

fn fixture(name: &str) -> String {
    let p = format!(
        "{}/../fixtures/real-apiserver/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {p}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).expect("fixture is JSON")
}

fn fixture_lines(name: &str) -> Vec<Value> {
    fixture(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences in structure between `real` and `sim`: key sets of every object,
/// value types everywhere, array elements pairwise. `managedFields[].fieldsV1` is
/// compared by type only: its keys are field paths the real server's server-side
/// field tracking writes, which the simulator does not do.
fn shape_diff(real: &Value, sim: &Value, path: &str, out: &mut Vec<String>) {
    if type_name(real) != type_name(sim) {
        out.push(format!(
            "{path}: real is {}, sim is {}",
            type_name(real),
            type_name(sim)
        ));
        return;
    }
    if path.ends_with("/fieldsV1") {
        return;
    }
    match (real, sim) {
        (Value::Object(r), Value::Object(s)) => {
            for k in r.keys().filter(|k| !s.contains_key(*k)) {
                out.push(format!("{path}/{k}: missing in sim"));
            }
            for k in s.keys().filter(|k| !r.contains_key(*k)) {
                out.push(format!("{path}/{k}: extra in sim"));
            }
            for (k, rv) in r {
                if let Some(sv) = s.get(k) {
                    shape_diff(rv, sv, &format!("{path}/{k}"), out);
                }
            }
        }
        (Value::Array(r), Value::Array(s)) => {
            for (i, (rv, sv)) in r.iter().zip(s).enumerate() {
                shape_diff(rv, sv, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[track_caller]
fn assert_same_shape(real: &Value, sim: &Value) {
    let mut diffs = Vec::new();
    shape_diff(real, sim, "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "shape differences:\n{}\nsim: {sim}",
        diffs.join("\n")
    );
}

/// A fixture object stripped of server-set fields, ready to POST.
fn as_new(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            m.remove(k);
        }
    }
    o
}

async fn setup() -> (SimHandle, RawClient) {
    let sim = SimServer::builder()
        .bookmark_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("sim");
    let c = RawClient::connect(sim.addr()).await.expect("connect");
    (sim, c)
}

async fn post(c: &mut RawClient, ns: &str, obj: &Value) -> Value {
    let r = c
        .request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/pods"),
            &[("content-type", "application/json")],
            serde_json::to_vec(obj).expect("json"),
        )
        .await
        .expect("post");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn ns_of(v: &Value) -> String {
    v["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned()
}

#[tokio::test]
async fn get_create_and_delete_responses_match_the_real_servers_shape() {
    let (_sim, mut c) = setup().await;
    tokio::time::timeout(T, async {
        let pod = fixture_json("pod.json");
        post(&mut c, &ns_of(&pod), &as_new(&pod)).await;
        let got = c
            .get("/api/v1/namespaces/bench1k/pods/pod-00000")
            .await
            .expect("get");
        assert_eq!(got.status, 200);
        assert_same_shape(&pod, &got.json());

        let create = fixture_json("create-resp.json");
        let created = post(&mut c, "fixtures", &as_new(&create)).await;
        assert_same_shape(&create, &created);
        assert_eq!(created["metadata"]["generation"], 1);

        let patch = json!({"metadata": {"annotations": {"kcache/ts": "1"}}});
        let r = c
            .request(
                "PATCH",
                "/api/v1/namespaces/fixtures/pods/web-0",
                &[("content-type", "application/merge-patch+json")],
                patch.to_string(),
            )
            .await
            .expect("patch");
        assert_eq!(r.status, 200);
        let r = c
            .request(
                "DELETE",
                "/api/v1/namespaces/fixtures/pods/web-0?gracePeriodSeconds=0",
                &[],
                "",
            )
            .await
            .expect("delete");
        assert_eq!(r.status, 200);
        let deleted = r.json();
        assert_same_shape(&fixture_json("delete-resp.json"), &deleted);
        assert_eq!(
            deleted["metadata"]["generation"], 2,
            "setting deletionTimestamp bumps generation, as on the real server"
        );
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn complete_paginated_and_metadata_only_lists_match_the_real_servers_shape() {
    let (_sim, mut c) = setup().await;
    tokio::time::timeout(T, async {
        let three = fixture_json("list-3-pods.json");
        for item in three["items"].as_array().expect("items") {
            post(&mut c, "fixtures", &as_new(item)).await;
        }
        let list = c
            .get("/api/v1/namespaces/fixtures/pods")
            .await
            .expect("list")
            .json();
        assert_same_shape(&three, &list);
        assert!(
            list["items"]
                .as_array()
                .expect("items")
                .iter()
                .all(|i| i.get("kind").is_none() && i.get("apiVersion").is_none())
        );

        let meta = c
            .request(
                "GET",
                "/api/v1/namespaces/fixtures/pods",
                &[("accept", META_ACCEPT)],
                "",
            )
            .await
            .expect("meta");
        assert_same_shape(
            &fixture_json("list-3-pods-metadata-only.json"),
            &meta.json(),
        );

        let fifty = fixture_json("list-50-pods.json");
        for item in fifty["items"].as_array().expect("items") {
            post(&mut c, "bench1k", &as_new(item)).await;
        }
        let extra = as_new(&fifty["items"][0]);
        for i in 0..5 {
            let mut e = extra.clone();
            e["metadata"]["name"] = json!(format!("zz-extra-{i}"));
            post(&mut c, "bench1k", &e).await;
        }
        let page = c
            .get("/api/v1/namespaces/bench1k/pods?limit=50")
            .await
            .expect("page")
            .json();
        assert_same_shape(&fifty, &page);
        assert_eq!(page["metadata"]["remainingItemCount"], 5);
    })
    .await
    .expect("in time");
}

async fn lines(s: &mut RawStream, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        match s.next_line(T).await {
            Line::Line(l) => out.push(serde_json::from_slice(&l).expect("each watch line is JSON")),
            other => panic!("watch ended early: {other:?} after {out:?}"),
        }
    }
    out
}

#[tokio::test]
async fn watch_events_and_bookmarks_match_the_real_servers_shape() {
    let (sim, mut c) = setup().await;
    tokio::time::timeout(T, async {
        let real = fixture_lines("watch-events.jsonl");
        let real_of = |ty: &str| real.iter().find(|e| e["type"] == ty).cloned().expect("fixture has the type");
        let rv = sim.resource_version();
        let mut w = RawClient::stream(
            sim.addr(),
            &format!("/api/v1/namespaces/fixtures/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=8"),
            &[],
        )
        .await
        .expect("watch");
        assert_eq!(w.status, 200);
        post(&mut c, "fixtures", &as_new(&fixture_json("create-resp.json"))).await;
        let patch = json!({"metadata": {"annotations": {"kcache/ts": "1"}}}).to_string();
        c.request("PATCH", "/api/v1/namespaces/fixtures/pods/web-0", &[("content-type", "application/merge-patch+json")], patch)
            .await
            .expect("patch");
        c.request("DELETE", "/api/v1/namespaces/fixtures/pods/web-0?gracePeriodSeconds=0", &[], "").await.expect("delete");
        // As the real server: the delete is a MODIFIED that sets the
        // deletionTimestamp, then the DELETED.
        let got = lines(&mut w, 4).await;
        assert_eq!(
            got.iter().map(|e| e["type"].as_str().unwrap_or("")).collect::<Vec<_>>(),
            ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
        );
        let real_deleting = real.iter().find(|e| e["type"] == "MODIFIED" && !e["object"]["metadata"]["deletionTimestamp"].is_null()).cloned().expect("fixture has the deletion's MODIFIED");
        assert_same_shape(&real_of("ADDED"), &got[0]);
        assert_same_shape(&real_of("MODIFIED"), &got[1]);
        assert_same_shape(&real_deleting, &got[2]);
        assert_same_shape(&real_of("DELETED"), &got[3]);
        assert!(got[1]["object"]["metadata"]["deletionTimestamp"].is_null());
        assert!(!got[2]["object"]["metadata"]["deletionTimestamp"].is_null());
        assert_eq!(got[2]["object"]["metadata"]["deletionGracePeriodSeconds"], 0);
        let bookmark = w.until(T, |e| e["type"] == "BOOKMARK").await.expect("a bookmark");
        assert_same_shape(&real_of("BOOKMARK"), &bookmark);
        assert_eq!(bookmark["object"]["spec"]["containers"], Value::Null);
        assert_eq!(bookmark["object"]["metadata"]["resourceVersion"], got[3]["object"]["metadata"]["resourceVersion"]);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_watch_from_a_compacted_rv_gets_one_410_error_event_like_the_real_server() {
    let (sim, mut c) = setup().await;
    post(
        &mut c,
        "fixtures",
        &as_new(&fixture_json("create-resp.json")),
    )
    .await;
    sim.expire_history();
    let mut w = RawClient::stream(
        sim.addr(),
        "/api/v1/namespaces/fixtures/pods?watch=1&resourceVersion=1",
        &[],
    )
    .await
    .expect("watch");
    assert_eq!(w.status, 200);
    let got = lines(&mut w, 1).await;
    assert_same_shape(&fixture_lines("watch-410.jsonl")[0], &got[0]);
    assert_eq!(got[0]["object"]["code"], 410);
    assert_eq!(got[0]["object"]["reason"], "Expired");
    assert_eq!(
        w.next_line(T).await,
        Line::End,
        "the stream closes after the error"
    );
}

#[tokio::test]
async fn streaming_list_initial_events_and_end_bookmark_match_the_real_servers_shape() {
    let (sim, mut c) = setup().await;
    let real = fixture_lines("watchlist-initial-events.jsonl");
    let real_items: Vec<Value> = real
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| as_new(&e["object"]))
        .collect();
    for item in &real_items {
        post(&mut c, "fixtures", item).await;
    }
    let mut w = RawClient::stream(
        sim.addr(),
        "/api/v1/namespaces/fixtures/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        &[],
    )
    .await
    .expect("watch");
    let got = lines(&mut w, real.len()).await;
    assert_eq!(got.len(), real.len());
    for (r, s) in real.iter().zip(&got) {
        assert_eq!(r["type"], s["type"]);
        assert_same_shape(r, s);
    }
    let end = got.last().expect("end bookmark");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(
        end["object"]["metadata"]["resourceVersion"],
        json!(sim.resource_version().to_string())
    );
}

#[tokio::test]
async fn status_errors_match_the_real_servers_shape() {
    let (sim, mut c) = setup().await;
    tokio::time::timeout(T, async {
        let r = c
            .get("/api/v1/namespaces/fixtures/pods/nope")
            .await
            .expect("get");
        assert_eq!(r.status, 404);
        assert_eq!(
            r.json(),
            fixture_json("status-404.json"),
            "404 is byte-for-byte the same JSON value"
        );

        let web0 = as_new(&fixture_json("create-resp.json"));
        let created = post(&mut c, "fixtures", &web0).await;
        let r = c
            .request(
                "POST",
                "/api/v1/namespaces/fixtures/pods",
                &[("content-type", "application/json")],
                web0.to_string(),
            )
            .await
            .expect("post again");
        assert_eq!(r.status, 409);
        assert_eq!(r.json(), fixture_json("status-409-exists.json"));

        let mut stale = created.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        let r = c
            .request(
                "PUT",
                "/api/v1/namespaces/fixtures/pods/web-0",
                &[("content-type", "application/json")],
                stale.to_string(),
            )
            .await
            .expect("put");
        assert_eq!(r.status, 409);
        assert_eq!(r.json(), fixture_json("status-409-conflict.json"));

        let r = c
            .get("/api/v1/namespaces/fixtures/pods?labelSelector=app+in+%28a%2C")
            .await
            .expect("bad selector");
        assert_eq!(r.status, 400);
        assert_eq!(r.json(), fixture_json("status-400-selector.json"));

        let mut e = web0.clone();
        e["metadata"]["name"] = json!("web-1");
        post(&mut c, "fixtures", &e).await;
        let page = c
            .get("/api/v1/namespaces/fixtures/pods?limit=1")
            .await
            .expect("page")
            .json();
        let token = page["metadata"]["continue"]
            .as_str()
            .expect("continue token")
            .to_owned();
        sim.merge_patch(
            "pods",
            "fixtures",
            "web-1",
            &json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .expect("write");
        sim.expire_history();
        let r = c
            .get(&format!(
                "/api/v1/namespaces/fixtures/pods?limit=1&continue={token}"
            ))
            .await
            .expect("continue");
        assert_eq!(r.status, 410);
        let got = r.json();
        assert_same_shape(&fixture_json("status-410-continue.json"), &got);
        assert_eq!(
            got["message"],
            fixture_json("status-410-continue.json")["message"]
        );
        // The fresh token continues from the same key at the latest state.
        let fresh = got["metadata"]["continue"].as_str().expect("fresh token");
        let rest = c
            .get(&format!(
                "/api/v1/namespaces/fixtures/pods?limit=1&continue={fresh}"
            ))
            .await
            .expect("fresh");
        assert_eq!(rest.status, 200);
        assert_eq!(rest.json()["items"][0]["metadata"]["name"], "web-1");
    })
    .await
    .expect("in time");
}
