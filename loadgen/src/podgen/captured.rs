//! The pod captured from a real API server, varied in identity only: the
//! decode and store benches' input.
//!
//! `fixtures/real-apiserver/pod.json` is a pod a real kube-apiserver served
//! (~4 KB, ~1.6 KB of it managedFields). Each generated pod gets its own name,
//! uid, resourceVersion, labels, node and ReplicaSet owner, so a decoder cannot
//! benefit from identical strings, and everything else stays as captured.
//!
//! # Guarantees
//! * The output for a seed never changes, byte for byte: criterion baselines
//!   compare runs over it (the tests pin it).

use serde_json::{Value, json};

use super::seeded::{APPS, NODES, PodGen, node_name};

/// The captured pod every generated pod is derived from.
pub const POD_JSON: &[u8] = include_bytes!("../../../fixtures/real-apiserver/pod.json");

/// A small deterministic generator (SplitMix64): its sequence, unlike a
/// `rand` generator's, cannot change with a dependency update, which keeps the
/// benches' input the same across builds.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn uid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

/// `n` compact JSON pods derived from [`POD_JSON`], deterministic for a given `seed`.
///
/// Pod `i` is [`PodGen::name`]`(i)` on one of [`NODES`] nodes, in one of
/// [`APPS`] apps, with a random uid, a ReplicaSet owner and resourceVersion
/// `1000 + i`, in the captured pod's namespace.
///
/// ```
/// let pods = kcache_loadgen::podgen::realistic_pods(2, 42);
/// let pod: serde_json::Value = serde_json::from_slice(&pods[1]).unwrap();
/// assert_eq!(pod["metadata"]["name"], "pod-00001");
/// assert_eq!(pod["metadata"]["resourceVersion"], "1001");
/// ```
pub fn realistic_pods(n: usize, seed: u64) -> Vec<Vec<u8>> {
    generate(n, seed, None)
}

/// [`realistic_pods`] spread over `namespaces` namespaces: pod `i` is in
/// `ns-{i % namespaces}`, so a namespace of a 10,000-pod set with 10 namespaces
/// holds 1,000 pods, as the cache read benches and `loadgen run` lay them out.
pub fn realistic_pods_in_namespaces(n: usize, seed: u64, namespaces: usize) -> Vec<Vec<u8>> {
    generate(n, seed, Some(namespaces.max(1)))
}

fn generate(n: usize, seed: u64, namespaces: Option<usize>) -> Vec<Vec<u8>> {
    let base: Value = serde_json::from_slice(POD_JSON).unwrap_or(Value::Null);
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|i| {
            let mut p = base.clone();
            let app = format!("app-{:03}", rng.below(APPS));
            let hash = format!("{:08x}", rng.next() & 0xffff_ffff);
            let tier = ["web", "api", "worker"][i % 3];
            p["metadata"]["name"] = json!(PodGen::name(i));
            if let Some(k) = namespaces {
                p["metadata"]["namespace"] = json!(format!("ns-{}", i % k));
            }
            p["metadata"]["uid"] = json!(rng.uid());
            p["metadata"]["resourceVersion"] = json!((1000 + i).to_string());
            p["metadata"]["labels"] = json!({
                "anchor-bench": "true",
                "app": app,
                "pod-template-hash": hash,
                "tier": tier,
            });
            p["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": format!("{app}-{hash}"),
                "uid": rng.uid(),
                "controller": true,
                "blockOwnerDeletion": true,
            }]);
            p["spec"]["nodeName"] = json!(node_name(rng.below(NODES)));
            serde_json::to_vec(&p).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Taken from the generator the benches' criterion baselines were recorded
    // with (then in kcache-bench), checked equal to this one for several
    // seeds and sizes before it was removed.
    const PINNED_1000_42: u64 = 0xefde_59c0_ae3d_1f40;
    const PINNED_10000_7: u64 = 0x8e56_75a6_209c_8735;
    const PINNED_10000_7_NS10: u64 = 0xb41e_6cf2_ac7b_df8f;
    const PINNED_POD_1_UID: &str = "9e54d738-297f-47ae-a347-724a775b19bf";
    const PINNED_POD_1_LABELS: &str = r#"{"anchor-bench":"true","app":"app-008","pod-template-hash":"0b3d7dd5","tier":"api"}"#;
    const PINNED_POD_1_OWNER: &str = "app-008-0b3d7dd5";
    const PINNED_POD_1_NODE: &str = "node-095";
    const PINNED_POD_1_LEN: usize = 4268;

    /// FNV-1a over the pods, one `\n` after each: a fingerprint that, unlike
    /// std's hasher, is the same on every toolchain.
    fn fingerprint(pods: &[Vec<u8>]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in pods.iter().flat_map(|p| p.iter().chain(b"\n")) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    #[test]
    fn the_benches_pods_are_what_they_always_were() {
        // The sets the decode and store benches and `store_memory` generate.
        assert_eq!(fingerprint(&realistic_pods(1000, 42)), PINNED_1000_42);
        assert_eq!(fingerprint(&realistic_pods(10_000, 7)), PINNED_10000_7);
        assert_eq!(fingerprint(&realistic_pods_in_namespaces(10_000, 7, 10)), PINNED_10000_7_NS10);
        // One pod in full, so a change shows where it is.
        let pod: Value = serde_json::from_slice(&realistic_pods(2, 42)[1]).unwrap_or(Value::Null);
        let meta = &pod["metadata"];
        assert_eq!(meta["name"], "pod-00001");
        assert_eq!(meta["namespace"], "bench1k");
        assert_eq!(meta["resourceVersion"], "1001");
        assert_eq!(meta["uid"], PINNED_POD_1_UID);
        assert_eq!(meta["labels"], PINNED_POD_1_LABELS.parse::<Value>().unwrap_or(Value::Null));
        assert_eq!(meta["ownerReferences"][0]["name"], PINNED_POD_1_OWNER);
        assert_eq!(pod["spec"]["nodeName"], PINNED_POD_1_NODE);
        assert_eq!(realistic_pods(2, 42)[1].len(), PINNED_POD_1_LEN);
    }

    #[test]
    fn generated_pods_are_distinct_valid_pods() {
        let pods = realistic_pods(20, 1);
        let names: std::collections::HashSet<_> = pods
            .iter()
            .map(|p| serde_json::from_slice::<k8s_openapi::api::core::v1::Pod>(p).map(|p| p.metadata.uid))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        assert_eq!(names.len(), 20);
        assert_eq!(realistic_pods(3, 9), realistic_pods(3, 9));
    }

    #[test]
    fn pods_in_namespaces_are_spread_round_robin() {
        let pods = realistic_pods_in_namespaces(25, 1, 10);
        let namespaces: Vec<String> = pods
            .iter()
            .map(|p| serde_json::from_slice::<k8s_openapi::api::core::v1::Pod>(p).ok().and_then(|p| p.metadata.namespace).unwrap_or_default())
            .collect();
        assert_eq!(namespaces.iter().filter(|ns| *ns == "ns-3").count(), 3);
        assert_eq!(namespaces[0], "ns-0");
        assert_eq!(namespaces[24], "ns-4");
        // Everything but the namespace is what `realistic_pods` generates.
        let plain = realistic_pods(25, 1);
        let strip = |p: &[u8]| {
            let mut v: Value = serde_json::from_slice(p).unwrap_or(Value::Null);
            v["metadata"]["namespace"] = Value::Null;
            v
        };
        assert!(pods.iter().zip(&plain).all(|(a, b)| strip(a) == strip(b)));
    }
}
