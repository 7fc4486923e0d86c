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
