//! Each injected fault is observable by a client, through the Rust API and the
//! admin endpoint.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kcache_loadgen::podgen::{self, PodGen};
use kcache_loadgen::sim::{FaultRequest, Line, RawClient, RawStream, SimHandle, SimServer, Stats};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

async fn watch_from_now(sim: &SimHandle, ns: &str) -> RawStream {
    let rv = sim.resource_version();
    let s = RawClient::stream(
        sim.addr(),
        &format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}"),
        &[],
    )
    .await
    .expect("watch");
    assert_eq!(s.status, 200);
    s
}

async fn admin(c: &mut RawClient, f: &FaultRequest) -> Stats {
    let r = c
        .request(
            "POST",
            "/_sim/faults",
            &[("content-type", "application/json")],
            serde_json::to_vec(f).expect("json"),
        )
        .await
        .expect("faults");
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).expect("stats")
}

fn create(sim: &SimHandle, ns: &str, name: &str) {
    sim.create("pods", json!({"metadata": {"name": name, "namespace": ns}}))
        .expect("create");
}

async fn event_names(s: &mut RawStream) -> (Vec<String>, Line) {
    let mut names = Vec::new();
    loop {
        match s.next_line(T).await {
            Line::Line(l) => {
                let v: Value = serde_json::from_slice(&l).expect("json line");
                names.push(
                    v["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
            }
            end => return (names, end),
        }
    }
}

#[tokio::test]
async fn close_watches_every_n_ends_each_watch_cleanly_after_n_events() {
    let sim = SimServer::builder().start().await.expect("sim");
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    sim.close_watches_every(3);
    let mut w = watch_from_now(&sim, "f").await;
    for i in 0..5 {
        create(&sim, "f", &format!("a{i}"));
    }
    let (names, end) = event_names(&mut w).await;
    assert_eq!(names, ["a0", "a1", "a2"]);
    assert_eq!(
        end,
        Line::End,
        "a clean end of stream, not a broken connection"
    );

    // The same through the admin endpoint; 0 turns it off.
    let stats = admin(
        &mut c,
        &FaultRequest {
            close_watches_every: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(stats.watches_closed_by_fault, 1);
    let mut w = watch_from_now(&sim, "f").await;
    create(&sim, "f", "b0");
    create(&sim, "f", "b1");
    create(&sim, "f", "b2");
    assert_eq!(
        event_names(&mut w).await,
        (vec!["b0".to_owned(), "b1".to_owned()], Line::End)
    );
    admin(
        &mut c,
        &FaultRequest {
            close_watches_every: Some(0),
            ..Default::default()
        },
    )
    .await;
    let mut w = watch_from_now(&sim, "f").await;
    for i in 0..4 {
        create(&sim, "f", &format!("c{i}"));
    }
    for i in 0..4 {
        assert!(matches!(w.next_line(T).await, Line::Line(_)), "event {i}");
    }
    assert_eq!(
        w.next_line(Duration::from_millis(200)).await,
        Line::Timeout,
        "still open"
    );
}

#[tokio::test]
async fn expire_history_makes_older_watches_fail_with_410_and_newer_ones_work() {
    let sim = SimServer::builder().start().await.expect("sim");
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    create(&sim, "x", "p0");
    let old = sim.resource_version();
    create(&sim, "x", "p1");
    let path = |rv: u64| format!("/api/v1/namespaces/x/pods?watch=1&resourceVersion={rv}");
    let mut before = RawClient::stream(sim.addr(), &path(old - 1), &[])
        .await
        .expect("watch");
    assert!(
        matches!(before.next_line(T).await, Line::Line(l) if serde_json::from_slice::<Value>(&l).expect("json")["type"] == "ADDED")
    );

    admin(
        &mut c,
        &FaultRequest {
            expire_history: true,
            ..Default::default()
        },
    )
    .await;
    let mut w = RawClient::stream(sim.addr(), &path(old), &[])
        .await
        .expect("watch");
    let e = w.until(T, |_| true).await.expect("one event");
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(w.next_line(T).await, Line::End);

    let mut fresh = RawClient::stream(sim.addr(), &path(sim.resource_version()), &[])
        .await
        .expect("watch");
    create(&sim, "x", "p2");
    let e = fresh.until(T, |_| true).await.expect("event");
    assert_eq!(e["object"]["metadata"]["name"], "p2");
    assert_eq!(sim.compacted_resource_version(), sim.resource_version() - 1);
}

#[tokio::test]
async fn inject_malformed_frame_sends_one_bad_line_on_every_open_watch() {
    let sim = SimServer::builder().start().await.expect("sim");
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    let mut w1 = watch_from_now(&sim, "m").await;
    let mut w2 = watch_from_now(&sim, "m").await;
    sim.inject_malformed_frame();
    admin(
        &mut c,
        &FaultRequest {
            inject_malformed_frame: true,
            ..Default::default()
        },
    )
    .await;
    for w in [&mut w1, &mut w2] {
        for _ in 0..2 {
            match w.next_line(T).await {
                Line::Line(l) => assert!(
                    serde_json::from_slice::<Value>(&l).is_err(),
                    "malformed: {}",
                    String::from_utf8_lossy(&l)
                ),
                other => panic!("expected a malformed line, got {other:?}"),
            }
        }
    }
    create(&sim, "m", "after");
    for w in [&mut w1, &mut w2] {
        let e = w.until(T, |_| true).await.expect("the watch goes on");
        assert_eq!(e["object"]["metadata"]["name"], "after");
    }
}

#[tokio::test]
async fn set_latency_delays_every_response() {
    let sim = SimServer::builder().start().await.expect("sim");
    podgen::load_pods(&sim, "l", 1, 1).expect("load");
    let api: kube::Api<Pod> = kube::Api::namespaced(sim.client().expect("client"), "l");
    api.get(&PodGen::name(0)).await.expect("warm up");
    sim.set_latency(Duration::from_millis(150));
    let t = Instant::now();
    api.get(&PodGen::name(0)).await.expect("get");
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    admin(
        &mut c,
        &FaultRequest {
            latency_ms: Some(0),
            ..Default::default()
        },
    )
    .await;
    let t = Instant::now();
    api.get(&PodGen::name(0)).await.expect("get");
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn restart_drops_connections_and_watches_but_keeps_the_data() {
    let sim = SimServer::builder().start().await.expect("sim");
    podgen::load_pods(&sim, "r", 10, 1).expect("load");
    let rv = sim.resource_version();
    let mut w = watch_from_now(&sim, "r").await;
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    assert_eq!(
        c.get("/api/v1/namespaces/r/pods/pod-00001")
            .await
            .expect("get")
            .status,
        200
    );
    sim.restart();
    assert!(
        matches!(w.next_line(T).await, Line::Broken(_) | Line::End),
        "the watch is cut"
    );
    let mut c2 = RawClient::connect(sim.addr()).await.expect("reconnect");
    let admin_stats = admin(
        &mut c2,
        &FaultRequest {
            restart: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(admin_stats.restarts, 2);
    let mut c3 = RawClient::connect(sim.addr()).await.expect("reconnect");
    let list = c3
        .get("/api/v1/namespaces/r/pods")
        .await
        .expect("list")
        .json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(10));
    assert_eq!(sim.resource_version(), rv);
    assert_eq!(sim.stats().watches_active, 0);
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_closed_without_slowing_writers() {
    let sim = SimServer::builder()
        .watch_buffer(64)
        .start()
        .await
        .expect("sim");
    let w = watch_from_now(&sim, "slow").await;
    let t = Instant::now();
    podgen::load_pods(&sim, "slow", 4000, 1).expect("load");
    for i in 0..200 {
        sim.merge_patch(
            "pods",
            "slow",
            &PodGen::name(i),
            &json!({"metadata": {"labels": {"n": i.to_string()}}}),
        )
        .expect("patch");
    }
    let write_time = t.elapsed();
    let deadline = Instant::now() + T;
    while sim.stats().watches_closed_lagging == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.stats().watches_closed_lagging,
        1,
        "the stalled watcher was closed"
    );
    assert!(
        write_time < Duration::from_secs(5),
        "writes were not held up: {write_time:?}"
    );
    drop(w);
}

#[tokio::test]
async fn stats_count_requests_by_verb_watches_and_events() {
    let sim = SimServer::builder().start().await.expect("sim");
    let mut c = RawClient::connect(sim.addr()).await.expect("connect");
    let mut w = watch_from_now(&sim, "s").await;
    let pods = "/api/v1/namespaces/s/pods";
    let ct = [("content-type", "application/json")];
    c.request("POST", pods, &ct, r#"{"metadata":{"name":"a"}}"#)
        .await
        .expect("post");
    c.get(&format!("{pods}/a")).await.expect("get");
    c.get(pods).await.expect("list");
    c.request(
        "PATCH",
        &format!("{pods}/a"),
        &[("content-type", "application/merge-patch+json")],
        "{}",
    )
    .await
    .expect("patch");
    let cur = c.get(&format!("{pods}/a")).await.expect("get").body;
    c.request("PUT", &format!("{pods}/a"), &ct, cur)
        .await
        .expect("put");
    c.request("DELETE", &format!("{pods}/a"), &[], "")
        .await
        .expect("delete");
    for _ in 0..4 {
        assert!(matches!(w.next_line(T).await, Line::Line(_)));
    }
    let s: Stats = serde_json::from_slice(&c.get("/_sim/stats").await.expect("stats").body)
        .expect("stats json");
    assert_eq!(
        (
            s.create, s.get, s.list, s.patch, s.update, s.delete, s.watch
        ),
        (1, 2, 1, 1, 1, 1, 1)
    );
    // The delete is a MODIFIED (deletionTimestamp) then a DELETED, as on the real server.
    assert_eq!(s.events_sent, 5);
    assert_eq!(s.watches_active, 1);
    assert_eq!(s.objects, 0);
}
