//! The verification's read of the server ([`verify::server_snapshot`]):
//! the state at exactly the resourceVersion asked for, or, when that version
//! was compacted (410), a plain LIST, marked as such.

use kcache_loadgen::run::{RUN_LABEL, verify};
use kcache_loadgen::sim::SimServer;
use serde_json::json;

#[tokio::test]
async fn the_server_is_read_at_the_exact_version_or_latest_when_it_was_compacted() {
    let sim = SimServer::builder().start().await.expect("sim");
    let client = sim.client().expect("client");
    for name in ["a", "b"] {
        sim.create("pods", json!({"metadata": {"name": name, "namespace": "ns", "labels": {RUN_LABEL: "r"}}, "spec": {"containers": []}}))
            .expect("pod");
    }
    let before = sim.resource_version();
    let patched = sim.merge_patch("pods", "ns", "a", &json!({"status": {"message": "another writer"}})).expect("patch");
    let after = patched["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    sim.delete("pods", "ns", "b").expect("delete");
    let selector = format!("{RUN_LABEL}=r");

    let exact = verify::server_snapshot(&client, &selector, before).await.expect("exact read");
    assert!(!exact.fell_back);
    assert_eq!(exact.at, before);
    let keys: Vec<&str> = exact.keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["ns/a", "ns/b"], "the state at {before}, before the patch and the delete");
    assert_ne!(exact.keys[0].1, after);

    sim.expire_history();
    let latest = verify::server_snapshot(&client, &selector, before).await.expect("fallback read");
    assert!(latest.fell_back, "410 for the compacted version: a plain LIST");
    assert!(latest.at > before);
    assert_eq!(latest.keys, vec![("ns/a".to_owned(), after)]);
    sim.shutdown().await;
}
