//! Realistic pod fixtures for decode and memory benchmarks.
//!
//! Pods are variations of `fixtures/real-apiserver/pod.json` (a pod captured from
//! a real kube-apiserver, ~4 KB with ~1.6 KB of managedFields): each gets its own
//! name, uid, resourceVersion, labels, node and a ReplicaSet owner reference, so
//! a decoder cannot benefit from identical strings.

use serde_json::{Value, json};

/// The captured pod every generated pod is derived from.
pub const POD_JSON: &[u8] = include_bytes!("../../fixtures/real-apiserver/pod.json");

/// A small deterministic generator (SplitMix64), so runs are reproducible without a `rand` dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
/// Pod `i` is `pod-{i:05}` on one of 100 nodes, in one of 50 apps, with a
/// random uid, a ReplicaSet owner and resourceVersion `1000 + i`, in the
/// captured pod's namespace.
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
            let app = format!("app-{:03}", rng.next() % 50);
            let hash = format!("{:08x}", rng.next() & 0xffff_ffff);
            let tier = ["web", "api", "worker"][i % 3];
            p["metadata"]["name"] = json!(format!("pod-{i:05}"));
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
            p["spec"]["nodeName"] = json!(format!("node-{:03}", rng.next() % 100));
            serde_json::to_vec(&p).unwrap_or_default()
        })
        .collect()
}

/// A `PodList` body holding `pods`, with list `metadata.resourceVersion` `resource_version`.
pub fn list_body(pods: &[Vec<u8>], resource_version: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(pods.iter().map(|p| p.len() + 1).sum::<usize>() + 128);
    out.extend_from_slice(br#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":""#);
    out.extend_from_slice(resource_version.as_bytes());
    out.extend_from_slice(br#""},"items":["#);
    for (i, p) in pods.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"]}");
    out
}

/// A watch body: one `{"type":event_type,"object":pod}` line per pod.
pub fn watch_body(pods: &[Vec<u8>], event_type: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pods {
        out.extend_from_slice(br#"{"type":""#);
        out.extend_from_slice(event_type.as_bytes());
        out.extend_from_slice(br#"","object":"#);
        out.extend_from_slice(p);
        out.extend_from_slice(b"}\n");
    }
    out
}

/// Resident bytes of `n` decoded pods against their wire bytes.
#[derive(Clone, Copy, Debug)]
pub struct StoreMemory {
    /// Sum of the pods' JSON sizes on the wire.
    pub wire_bytes: usize,
    /// Arena segment bytes holding the stored pods.
    pub segment_bytes: usize,
    /// Heap owned by the `Obj` handles besides the JSON (Arc header, metadata spans).
    pub meta_bytes: usize,
}

impl StoreMemory {
    /// `(segment_bytes + meta_bytes) / wire_bytes`.
    pub fn ratio(&self) -> f64 {
        (self.segment_bytes + self.meta_bytes) as f64 / self.wire_bytes as f64
    }
}

/// Decodes `n` realistic pods (in LIST pages of 500, with `/spec/nodeName` and
/// `/status/phase` index fields) and measures what storing them costs.
pub fn store_memory(n: usize, strip_managed_fields: bool) -> StoreMemory {
    use kcache::wire::{Decoder, DecoderConfig};
    let pods = realistic_pods(n, 7);
    let mut dec = Decoder::new(DecoderConfig {
        index_fields: vec!["/spec/nodeName".into(), "/status/phase".into()],
        strip_managed_fields,
        ..DecoderConfig::default()
    });
    let mut kept = Vec::with_capacity(n);
    for page in pods.chunks(500) {
        let body = list_body(page, "1");
        match dec.decode_list(&body) {
            Ok(list) => kept.extend(list.items),
            Err(e) => panic!("generated list does not decode: {e}"),
        }
    }
    let stats = dec.arena().stats();
    StoreMemory {
        wire_bytes: pods.iter().map(Vec::len).sum(),
        segment_bytes: stats.segment_bytes,
        meta_bytes: kept.iter().map(kcache::Obj::meta_heap_bytes).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn stored_pods_cost_at_most_1_1x_their_wire_bytes() {
        for strip in [false, true] {
            let m = store_memory(10_000, strip);
            println!("10k pods, strip_managed_fields={strip}: {m:?} ratio {:.3}", m.ratio());
            assert!(m.ratio() <= 1.1, "{m:?}");
            if strip {
                assert!(m.ratio() < 0.75, "stripping managedFields saves over a quarter: {m:?}");
            }
        }
    }
}
