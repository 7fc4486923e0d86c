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
