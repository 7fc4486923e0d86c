//! `loadgen sim` as a child process, the way `loadgen run` will start it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kcache_loadgen::sim::RawClient;

#[tokio::test]
async fn loadgen_sim_prints_its_url_first_serves_preloaded_pods_and_exits_when_stdin_closes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["sim", "--port", "0", "--pods", "50", "--seed", "7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn loadgen sim");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("first line");
    let url = line
        .trim()
        .strip_prefix("listening on http://")
        .expect("the first line names the URL")
        .to_owned();
    let addr: std::net::SocketAddr = url.parse().expect("host:port");
    assert!(addr.ip().is_loopback());

    let mut c = RawClient::connect(addr).await.expect("connect");
    let list = c
        .get("/api/v1/namespaces/default/pods")
        .await
        .expect("list")
        .json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(50));

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "loadgen sim did not exit after stdin closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success());
}

#[test]
fn loadgen_run_with_an_unreadable_kubeconfig_exits_2_and_says_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--quiet", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kubeconfig"), "{stderr}");
}

/// The default placement: `loadgen run` starts `loadgen sim` and `loadgen
/// write` as children, so the engine's process creates no pod and sends no
/// write itself, and the report still accounts for every write.
#[test]
fn loadgen_run_with_the_child_writer_loses_nothing_and_says_where_writes_came_from() {
    let report_path = std::env::temp_dir().join(format!("kcache-child-writer-report-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--quiet", "--pods", "300", "--namespaces", "3", "--write-qps", "200", "--duration", "2"])
        .args(["--no-read-timings", "--report"])
        .arg(&report_path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).expect("report written")).expect("json");
    let _ = std::fs::remove_file(&report_path);
    assert_eq!(report["writer"], "child");
    assert_eq!(report["events_lost"], 0);
    assert_eq!(report["cache_matches_server"], true);
    // 2 s at 200 writes/s: the child's acknowledged writes reached the report.
    let expected = report["events_expected"].as_u64().expect("number");
    assert!(expected >= 200, "{report}");
    assert!(report["events_received"].as_u64().expect("number") >= expected, "{report}");
    let calls = &report["api_calls"];
    assert_eq!((calls["list"].as_u64(), calls["watch"].as_u64()), (Some(1), Some(1)), "the writer's calls are not the engine's: {report}");
}

#[test]
fn loadgen_write_without_a_reachable_server_reports_failed_and_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["write", "--server", "http://127.0.0.1:9", "--namespaces", "a", "--pods", "1", "--write-qps", "1", "--duration", "1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("write");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a message");
    let message: serde_json::Value = serde_json::from_str(last).expect("json line");
    let error = message["failed"]["error"].as_str().expect("an error");
    // One line: what it was doing, what went wrong, what to do.
    assert!(error.starts_with("creating namespace a: "), "{stdout}");
    assert!(error.contains("is the API server reachable?"), "{stdout}");
    // Reported once, on stdout, for the parent to print; nothing on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("creating namespace"), "{stderr}");
}

/// A kubeconfig whose only context, `kind-loadgen-test`, points at `server`
/// (a loopback URL, so the local-kind guard accepts it).
fn kind_kubeconfig(server: &str, tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("kcache-kubeconfig-{tag}-{}.yaml", std::process::id()));
    let yaml = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-loadgen-test\n\
         clusters:\n- name: kind-loadgen-test\n  cluster:\n    server: {server}\n\
         users:\n- name: test\n  user: {{}}\n\
         contexts:\n- name: kind-loadgen-test\n  context:\n    cluster: kind-loadgen-test\n    user: test\n"
    );
    std::fs::write(&path, yaml).expect("write kubeconfig");
    path
}

/// An API error in the `loadgen write` child reaches the user once, as one
/// line that says what the run was doing and what to do.
#[test]
fn a_failing_run_prints_its_error_once_on_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    // The listener is dropped: nothing serves the port.
    let kubeconfig = kind_kubeconfig(&format!("http://127.0.0.1:{port}"), "unreachable");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--quiet", "--pods", "10", "--duration", "0.5", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&kubeconfig);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, once: {stderr}");
    assert!(lines[0].starts_with("loadgen run: creating namespace loadgen-"), "{stderr}");
    assert!(lines[0].contains("is the API server reachable?"), "{stderr}");
    assert!(!stderr.contains("Status {") && !stderr.contains("ErrorResponse"), "{stderr}");
}

/// `loadgen cleanup` through a kubeconfig (the way it is run against kind),
/// here pointed at a `loadgen sim`: it deletes loadgen's namespaces and their
/// pods, waits for them to go, and says so.
#[tokio::test]
async fn loadgen_cleanup_removes_loadgens_namespaces_and_waits_for_them() {
    let mut sim = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["sim", "--port", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn loadgen sim");
    let stdout = sim.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("first line");
    let url = line.trim().strip_prefix("listening on ").expect("url").to_owned();
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().expect("host:port");
    let mut c = RawClient::connect(addr).await.expect("connect");
    let post = |path: &str, body: serde_json::Value| (path.to_owned(), serde_json::to_vec(&body).expect("json"));
    for (path, body) in [
        post("/api/v1/namespaces", serde_json::json!({"metadata": {"name": "loadgen-old-0", "labels": {"loadgen.kcache.io/owned": "true"}}})),
        post("/api/v1/namespaces/loadgen-old-0/pods", serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeName": "node-001", "containers": [{"name": "c", "image": "i"}]}})),
        post("/api/v1/namespaces", serde_json::json!({"metadata": {"name": "not-loadgens"}})),
    ] {
        let r = c.request("POST", &path, &[("content-type", "application/json")], body).await.expect("post");
        assert_eq!(r.status, 201, "{path}");
    }
    let kubeconfig = kind_kubeconfig(&url, "cleanup");
    let out = tokio::task::spawn_blocking({
        let kubeconfig = kubeconfig.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_loadgen"))
                .args(["cleanup", "--wait", "30", "--kubeconfig"])
                .arg(&kubeconfig)
                .output()
                .expect("cleanup")
        }
    })
    .await
    .expect("join");
    let _ = std::fs::remove_file(&kubeconfig);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("namespace loadgen-old-0: deleted"), "{stdout}");
    assert!(stdout.contains("all gone"), "{stdout}");
    assert_eq!(c.get("/api/v1/namespaces/loadgen-old-0").await.expect("get").status, 404);
    assert_eq!(c.get("/api/v1/namespaces/not-loadgens").await.expect("get").status, 200);
    drop(sim.stdin.take());
    let _ = sim.wait();
}
