//! What the tests that compare the simulator with a real kube-apiserver share:
//! their clients and the comparison of transcripts with a recording.
#![allow(dead_code)] // each test file uses its part

use kcache_loadgen::sim::SimHandle;

/// A client without kube-client's retry layer: a scenario wants each server's
/// first answer (the default retries a 504 up to 15 times).
fn no_retry(mut config: kube::Config) -> kube::Client {
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

/// A client of the simulator.
pub fn sim_client(sim: &SimHandle) -> kube::Client {
    no_retry(kube::Config::new(sim.url().parse().expect("url")))
}

/// A client of the real server of docs/TESTING.md (`KCACHE_REAL_KUBECONFIG`),
/// refused unless its context is a `kind-` one on a loopback address.
pub async fn real_client() -> kube::Client {
    let path = std::env::var("KCACHE_REAL_KUBECONFIG").expect("KCACHE_REAL_KUBECONFIG: the real server's kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig");
    kcache_loadgen::guard::check_context(&kubeconfig, None, false).expect("a kind- context on a loopback server");
    no_retry(kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config"))
}

/// Writes `ours` as the recording at `path` when `KCACHE_REAL_RECORD` is set
/// and `ours` comes from the real server; else fails listing every line where
/// it differs from the recording (and keeps `ours` in the temp dir).
pub fn compare_or_record(path: &str, ours: &str, who: &str, real: bool) {
    if real && std::env::var_os("KCACHE_REAL_RECORD").is_some() {
        std::fs::create_dir_all("tests/data").expect("mkdir");
        std::fs::write(path, ours).expect("write the transcript");
        return;
    }
    let recorded = std::fs::read_to_string(path).expect("the recorded transcript");
    let stem = std::path::Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap_or("transcript");
    let kept = std::env::temp_dir().join(format!("{stem}-{}.txt", who.replace(' ', "-")));
    std::fs::write(&kept, ours).expect("write the transcript");
    let a: Vec<&str> = ours.lines().collect();
    let b: Vec<&str> = recorded.lines().collect();
    let mut diff = String::new();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).copied().unwrap_or("(none)"), b.get(i).copied().unwrap_or("(none)"));
        if x != y {
            diff.push_str(&format!("line {}:\n  {who}: {x}\n  recorded:  {y}\n", i + 1));
        }
    }
    assert!(diff.is_empty(), "{who} differs from the recorded real server ({} kept):\n{diff}", kept.display());
}
