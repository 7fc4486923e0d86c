//! Bad input gets a Status error, never a panic or a hung connection.

use std::time::Duration;

use kcache_loadgen::podgen;
use kcache_loadgen::sim::{MAX_BODY, RawClient, SimError, SimServer};

const T: Duration = Duration::from_secs(10);

async fn check(
    c: &mut RawClient,
    method: &str,
    path: &str,
    ct: &str,
    body: Vec<u8>,
    code: u16,
    reason: &str,
) {
    let headers: Vec<(&str, &str)> = if ct.is_empty() {
        vec![]
    } else {
        vec![("content-type", ct)]
    };
    let r = tokio::time::timeout(T, c.request(method, path, &headers, body))
        .await
        .expect("answered in time")
        .expect("http");
    assert_eq!(
        r.status,
        code,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let s = r.json();
    assert_eq!(s["kind"], "Status", "{s}");
    assert_eq!(s["status"], "Failure");
    assert_eq!(s["code"], code);
    assert_eq!(s["reason"], reason);
}

#[tokio::test]
async fn bad_requests_get_status_errors_and_the_server_keeps_serving() {
    let sim = SimServer::builder().start().await.expect("sim");
    podgen::load_pods(&sim, "b", 3, 1).expect("load");
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    let pods = "/api/v1/namespaces/b/pods";
    let json = "application/json";

    check(
        &mut c,
        "POST",
        pods,
        json,
        b"{not json".to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "POST",
        pods,
        json,
        b"[1,2]".to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "POST",
        pods,
        json,
        br#"{"metadata":{}}"#.to_vec(),
        422,
        "Invalid",
    )
    .await;
    check(
        &mut c,
        "POST",
        pods,
        json,
        br#"{"kind":"Node","metadata":{"name":"x"}}"#.to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "POST",
        pods,
        json,
        br#"{"metadata":{"name":"x","namespace":"other"}}"#.to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "PUT",
        &format!("{pods}/pod-00000"),
        json,
        b"\xff\xfe".to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "PUT",
        &format!("{pods}/pod-00000"),
        json,
        br#"{"metadata":{"name":"other"}}"#.to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "PUT",
        &format!("{pods}/missing"),
        json,
        br#"{"metadata":{"name":"missing"}}"#.to_vec(),
        404,
        "NotFound",
    )
    .await;

    // Unknown resources and paths.
    check(
        &mut c,
        "GET",
        "/api/v1/namespaces/b/widgets",
        "",
        vec![],
        404,
        "NotFound",
    )
    .await;
    check(
        &mut c,
        "GET",
        "/apis/example.com/v1/widgets",
        "",
        vec![],
        404,
        "NotFound",
    )
    .await;
    check(&mut c, "GET", "/nonsense", "", vec![], 404, "NotFound").await;
    check(
        &mut c,
        "GET",
        &format!("{pods}/pod-00000/exec"),
        "",
        vec![],
        404,
        "NotFound",
    )
    .await;

    // Patch content types and bodies.
    let p = format!("{pods}/pod-00000");
    check(
        &mut c,
        "PATCH",
        &p,
        "application/strategic-merge-patch+json",
        b"{}".to_vec(),
        415,
        "UnsupportedMediaType",
    )
    .await;
    check(
        &mut c,
        "PATCH",
        &p,
        "application/apply-patch+yaml",
        b"{}".to_vec(),
        // Server-side apply is served; without a fieldManager the real server answers 422.
        422,
        "Invalid",
    )
    .await;
    check(
        &mut c,
        "PATCH",
        &format!("{p}?fieldManager=m"),
        "application/apply-patch+yaml",
        b"{oops".to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "PATCH",
        &p,
        "text/plain",
        b"{}".to_vec(),
        415,
        "UnsupportedMediaType",
    )
    .await;
    check(
        &mut c,
        "PATCH",
        &p,
        "application/merge-patch+json",
        b"{oops".to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "PATCH",
        &p,
        "application/json-patch+json",
        br#"{"op":"add"}"#.to_vec(),
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "PATCH",
        &p,
        "application/json-patch+json",
        br#"[{"op":"remove","path":"/nope/deeper"}]"#.to_vec(),
        422,
        "Invalid",
    )
    .await;
    check(
        &mut c,
        "PATCH",
        &p,
        "application/merge-patch+json",
        br#"{"metadata":{"resourceVersion":"1"}}"#.to_vec(),
        409,
        "Conflict",
    )
    .await;

    // Selectors and query parameters.
    check(
        &mut c,
        "GET",
        &format!("{pods}?labelSelector=a%20in%20(b"),
        "",
        vec![],
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "GET",
        &format!("{pods}?labelSelector=%3D%3D"),
        "",
        vec![],
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "GET",
        &format!("{pods}?fieldSelector=spec.foo%3Dx"),
        "",
        vec![],
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "GET",
        &format!("{pods}?limit=abc"),
        "",
        vec![],
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "GET",
        &format!("{pods}?continue=garbage!"),
        "",
        vec![],
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "GET",
        &format!("{pods}?resourceVersion=abc"),
        "",
        vec![],
        400,
        "BadRequest",
    )
    .await;
    check(
        &mut c,
        "GET",
        &format!("{pods}?resourceVersion=99999999"),
        "",
        vec![],
        504,
        "Timeout",
    )
    .await;
    check(
        &mut c,
        "GET",
        &format!("{pods}?watch=1&sendInitialEvents=true"),
        "",
        vec![],
        422,
        "Invalid",
    )
    .await;
    check(
        &mut c,
        "GET",
        &format!("{pods}?watch=1&labelSelector=x%20notin"),
        "",
        vec![],
        400,
        "BadRequest",
    )
    .await;

    // Methods the resource does not allow.
    check(
        &mut c,
        "POST",
        &p,
        json,
        b"{}".to_vec(),
        405,
        "MethodNotAllowed",
    )
    .await;
    check(
        &mut c,
        "PUT",
        pods,
        json,
        b"{}".to_vec(),
        405,
        "MethodNotAllowed",
    )
    .await;
    // DELETE of a collection is deletecollection (sim_delete.rs); PATCH is not a collection verb.
    check(&mut c, "PATCH", pods, "application/merge-patch+json", b"{}".to_vec(), 405, "MethodNotAllowed").await;

    // Oversized bodies: 413 whether or not a Content-Length announces them.
    let big = vec![b' '; MAX_BODY + 1];
    check(
        &mut c,
        "POST",
        pods,
        json,
        big,
        413,
        "RequestEntityTooLarge",
    )
    .await;
    let mut c2 = RawClient::connect(sim.addr()).await.expect("connect");
    let mut just_under = br#"{"metadata":{"name":"big"},"data":""#.to_vec();
    just_under.resize(MAX_BODY - 10, b'a');
    just_under.extend_from_slice(b"\"}");
    let r = tokio::time::timeout(
        T,
        c2.request("POST", pods, &[("content-type", json)], just_under),
    )
    .await
    .expect("time")
    .expect("http");
    assert_eq!(r.status, 201, "a body just under the limit is accepted");

    // Still serving, nothing changed by the failed writes.
    let r = c2.get(&p).await.expect("get");
    assert_eq!(r.status, 200);
    assert_eq!(sim.object_count("pods").expect("count"), 4);
    assert!(sim.stats().errors >= 30);
}

#[tokio::test]
async fn the_server_refuses_non_loopback_addresses() {
    let e = SimServer::builder()
        .bind("0.0.0.0:0".parse().expect("addr"))
        .start()
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, SimError::NonLoopback(_)));
    let ok = SimServer::builder()
        .bind("127.0.0.2:0".parse().expect("addr"))
        .start()
        .await;
    assert!(ok.is_ok(), "any 127/8 address is loopback");
}

#[tokio::test]
async fn discovery_endpoints_answer_for_clients_that_probe_them() {
    let sim = SimServer::builder().start().await.expect("sim");
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    let v = c.get("/version").await.expect("version").json();
    assert_eq!(v["major"], "1");
    let api = c.get("/api").await.expect("api").json();
    assert_eq!(api["versions"][0], "v1");
    let v1 = c.get("/api/v1").await.expect("v1").json();
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for want in ["pods", "nodes", "namespaces", "configmaps"] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert_eq!(
        c.get("/apis").await.expect("apis").json()["kind"],
        "APIGroupList"
    );
    let info = sim
        .client()
        .expect("client")
        .apiserver_version()
        .await
        .expect("kube-client reads /version");
    assert_eq!(info.major, "1");
}
