//! The `/metrics` endpoint: what it answers, where it binds, how it stops.
#![cfg(feature = "metrics-server")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kcache::informer::{Informer, InformerConfig};
use kcache::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, ServeError, serve, serve_non_loopback};
use kcache::queue::WorkQueue;
use kcache::testing::MemorySource;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

/// An HTTP/1.1 answer: status code, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole answer.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
    let mut conn = timeout(WAIT, TcpStream::connect(addr)).await.unwrap().unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    timeout(WAIT, conn.read_to_string(&mut raw)).await.unwrap().unwrap();
    parse(&raw)
}

fn parse(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

async fn synced_informer(kind: &str, names: &[&str]) -> Informer {
    let src = MemorySource::new(kind);
    for name in names {
        src.apply(json!({"metadata": {"namespace": "default", "name": name}}));
    }
    let informer = Informer::spawn(src, InformerConfig::default()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(60)).await, "{kind} informer did not sync");
    informer
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_metrics_serves_two_informers_and_a_queue_with_each_family_once() {
    let pods = synced_informer("Pod", &["a", "b"]).await;
    let nodes = synced_informer("Node", &["n"]).await;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    metrics.informer("pods", &pods);
    let server = serve(Arc::new(registry), localhost()).await.unwrap();
    assert!(server.local_addr().ip().is_loopback());
    assert_ne!(server.local_addr().port(), 0);
    // Added after the registry is served: still reported.
    metrics.informer("nodes", &nodes);
    let queue: WorkQueue<String> = WorkQueue::builder().name("queue-a").metrics(&metrics).build();
    queue.add("default/a".to_owned());
    let controller = metrics.controller("pods");
    controller.set_max_concurrent_reconciles(2);
    let _reconciling = controller.reconcile_started();

    let answer = request(server.local_addr(), "GET", "/metrics").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.headers.get("content-type").map(String::as_str), Some(OPENMETRICS_CONTENT_TYPE));
    assert_eq!(OPENMETRICS_CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = answer.body;
    let mut types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let described = types.len();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), described, "a family described twice in\n{text}");
    for family in ["kcache_informer_store_objects", "workqueue_depth", "controller_runtime_active_workers"] {
        assert_eq!(text.matches(&format!("# TYPE {family} gauge\n")).count(), 1, "{family} in\n{text}");
    }
    assert!(text.contains("kcache_informer_store_objects{informer=\"pods\"} 2.0\n"), "{text}");
    assert!(text.contains("kcache_informer_store_objects{informer=\"nodes\"} 1.0\n"), "{text}");
    assert!(text.contains("workqueue_depth{name=\"queue-a\"} 1\n"), "{text}");
    assert!(text.contains("controller_runtime_active_workers{controller=\"pods\"} 1\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    // A query string does not change the answer's kind.
    let answer = request(server.local_addr(), "GET", "/metrics?debug=1").await;
    assert_eq!(answer.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_are_404_and_other_methods_405() {
    let mut registry = Registry::default();
    let _metrics = Metrics::register(&mut registry);
    let server = serve(Arc::new(registry), localhost()).await.unwrap();
    let addr = server.local_addr();
    for path in ["/", "/metricsx", "/metrics/", "/healthz"] {
        let answer = request(addr, "GET", path).await;
        assert_eq!(answer.status, 404, "GET {path}");
        assert!(!answer.body.contains("# TYPE"), "GET {path}: {}", answer.body);
    }
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let answer = request(addr, method, "/metrics").await;
        assert_eq!(answer.status, 405, "{method} /metrics");
        assert_eq!(answer.headers.get("allow").map(String::as_str), Some("GET"), "{method} /metrics");
    }
    // The endpoint still serves after the refusals.
    assert_eq!(request(addr, "GET", "/metrics").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_address_must_be_asked_for() {
    let registry = Arc::new(Registry::default());
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    match serve(Arc::clone(&registry), any).await {
        Err(ServeError::NotLoopback { addr }) => assert_eq!(addr, any),
        other => panic!("serve on {any}: {other:?}"),
    }
    let server = serve_non_loopback(registry, any).await.unwrap();
    assert!(server.local_addr().ip().is_unspecified());
    let port = server.local_addr().port();
    let answer = request(SocketAddr::from(([127, 0, 0, 1], port)), "GET", "/metrics").await;
    assert_eq!(answer.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    match serve(Arc::new(Registry::default()), addr).await {
        Err(ServeError::Bind { addr: asked, source }) => {
            assert_eq!(asked, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("serve on a taken port: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_stops_listening() {
    let server = serve(Arc::new(Registry::default()), localhost()).await.unwrap();
    let addr = server.local_addr();
    // A keep-alive connection that has been answered once and then sits idle.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = timeout(WAIT, idle.read(&mut first)).await.unwrap().unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
    // Read the rest of the first answer (the body may come in a second segment) until idle.
    let mut rest = Vec::new();
    timeout(WAIT, server.shutdown()).await.expect("shutdown did not finish");
    timeout(WAIT, idle.read_to_end(&mut rest)).await.expect("the idle connection was not closed").unwrap();
    assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1"), "a second answer after shutdown");
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting on {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_server_stops_it() {
    let server = serve(Arc::new(Registry::default()), localhost()).await.unwrap();
    let addr = server.local_addr();
    assert_eq!(request(addr, "GET", "/metrics").await.status, 200);
    drop(server);
    // The accept loop ends on its own task: wait for the port to close.
    let closed = timeout(WAIT, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    closed.await.expect("still accepting after the server was dropped");
}
