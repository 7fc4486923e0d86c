//! Pods built field by field from a seed, modelled on fixtures/real-apiserver/pod.json:
//! what `loadgen` creates and the simulator bulk-loads.
//!
//! # Guarantees
//! * The same seed and index give the same pod, byte for byte (`StdRng::seed_from_u64`),
//!   whatever else was generated before.
//! * Each pod is 3-6 KB of JSON once stored: app/tier/pod-template-hash labels,
//!   annotations, a ReplicaSet ownerReference, managedFields, two containers with
//!   env, ports, resources, volume mounts and probes, a projected service-account
//!   token volume, tolerations, and a status with conditions and containerStatuses.
//! * `spec.nodeName` spreads over 100 nodes `node-000`..`node-099`; `status.phase`
//!   is `Running` for about 94% of pods (then Pending, Succeeded, Failed).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::sim::{SimHandle, rfc3339};

/// Number of nodes pods are spread over.
pub const NODES: usize = 100;

/// Number of distinct apps (each with its own ReplicaSet).
pub const APPS: usize = 50;

const TIERS: [&str; 4] = ["web", "api", "worker", "cache"];

/// 2026-11-23T00:00:00Z, the base of generated timestamps.
const BASE_TIME: i64 = 1_795_392_000;

/// A seeded pod generator.
///
/// ```
/// let g = kcache_loadgen::podgen::PodGen::new(7, "bench");
/// let a = g.pod(3);
/// assert_eq!(a, g.pod(3));
/// assert_eq!(a["metadata"]["name"], "pod-00003");
/// assert!(serde_json::to_vec(&a).unwrap().len() > 3000);
/// ```
#[derive(Clone, Debug)]
pub struct PodGen {
    seed: u64,
    namespace: String,
}

fn hex(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

fn alnum(rng: &mut StdRng, n: usize) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

fn uid(rng: &mut StdRng) -> String {
    crate::sim::uuid_from(rng.random::<u128>())
}

/// The node a pod index lands on: `node-000`..`node-099`.
pub fn node_name(i: usize) -> String {
    format!("node-{:03}", i % NODES)
}

impl PodGen {
    /// A generator for pods in `namespace`.
    pub fn new(seed: u64, namespace: &str) -> Self {
        PodGen {
            seed,
            namespace: namespace.to_owned(),
        }
    }

    /// The name of pod `i`: `pod-00042`.
    pub fn name(i: usize) -> String {
        format!("pod-{i:05}")
    }

    /// Pod number `i` (no resourceVersion or uid-dependent server fields beyond
    /// what a real pod carries; the store stamps resourceVersion).
    pub fn pod(&self, i: usize) -> Value {
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // App-level values come from a per-app rng so every pod of an app agrees.
        let app_idx = rng.random_range(0..APPS);
        let mut app_rng = StdRng::seed_from_u64(self.seed.wrapping_add(app_idx as u64 * 7919));
        let app = format!("app-{app_idx:03}");
        let tier = TIERS[app_idx % TIERS.len()];
        let hash = hex(&mut app_rng, 10);
        let rs_name = format!("{app}-{hash}");
        let rs_uid = uid(&mut app_rng);
        let version = format!(
            "v1.{}.{}",
            app_rng.random_range(0..20),
            app_rng.random_range(0..10)
        );
        let name = Self::name(i);
        let ns = &self.namespace;
        let node = node_name(rng.random_range(0..NODES));
        let created = rfc3339(BASE_TIME + rng.random_range(0..86_400));
        let started = rfc3339(BASE_TIME + 86_400 + rng.random_range(0..3_600));
        let token_vol = format!("kube-api-access-{}", alnum(&mut rng, 5));
        let phase = match rng.random_range(0..100) {
            0..94 => "Running",
            94..97 => "Pending",
            97..99 => "Succeeded",
            _ => "Failed",
        };
        let running = phase == "Running";
        let restarts = if rng.random_range(0..10) == 0 {
            rng.random_range(1..5)
        } else {
            0
        };
        let pod_ip = format!(
            "10.{}.{}.{}",
            244 + i % 8,
            rng.random_range(0..256),
            rng.random_range(2..255)
        );
        let host_ip = format!("192.168.{}.{}", i % NODES / 250, 10 + i % NODES);
        let cpu_req = ["50m", "100m", "250m", "500m"][rng.random_range(0..4)];
        let mem_req = ["64Mi", "128Mi", "256Mi", "512Mi"][rng.random_range(0..4)];
        let image = format!("registry.example.invalid/team/{app}:{version}");
        let proxy_image = "registry.example.invalid/infra/proxy:v2.4.1";
        let cid = |rng: &mut StdRng| format!("containerd://{}", hex(rng, 64));
        let ready_status = if running { "True" } else { "False" };
        let container_state = |started: &str| {
            if running {
                json!({"running": {"startedAt": started}})
            } else {
                json!({"waiting": {"reason": "ContainerCreating"}})
            }
        };
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": uid(&mut rng),
                "generation": 1,
                "creationTimestamp": created,
                "labels": {
                    "app": app,
                    "app.kubernetes.io/name": app,
                    "pod-template-hash": hash,
                    "tier": tier,
                    "version": version,
                },
                "annotations": {
                    "kubectl.kubernetes.io/default-container": "app",
                    "prometheus.io/port": "9102",
                    "prometheus.io/scrape": "true",
                },
                "ownerReferences": [{
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs_name,
                    "uid": rs_uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
                "managedFields": [
                    {
                        "manager": "kube-controller-manager",
                        "operation": "Update",
                        "apiVersion": "v1",
                        "time": created,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {
                            "f:metadata": {
                                "f:annotations": {".": {}, "f:kubectl.kubernetes.io/default-container": {}, "f:prometheus.io/port": {}, "f:prometheus.io/scrape": {}},
                                "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}, "f:tier": {}, "f:version": {}},
                                "f:ownerReferences": {".": {}, format!("k:{{\"uid\":\"{rs_uid}\"}}"): {}},
                            },
                            "f:spec": {
                                "f:containers": {
                                    "k:{\"name\":\"app\"}": {".": {}, "f:env": {}, "f:image": {}, "f:name": {}, "f:ports": {}, "f:readinessProbe": {}, "f:resources": {}, "f:volumeMounts": {}},
                                    "k:{\"name\":\"proxy\"}": {".": {}, "f:image": {}, "f:name": {}, "f:ports": {}, "f:resources": {}},
                                },
                                "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:terminationGracePeriodSeconds": {}, "f:volumes": {},
                            },
                        },
                    },
                    {
                        "manager": "kubelet",
                        "operation": "Update",
                        "apiVersion": "v1",
                        "time": started,
                        "fieldsType": "FieldsV1",
                        "subresource": "status",
                        "fieldsV1": {
                            "f:status": {
                                "f:conditions": {".": {}, "k:{\"type\":\"Ready\"}": {".": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
                                "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {}, "f:startTime": {},
                            },
                        },
                    },
                ],
            },
            "spec": {
                "volumes": [
                    {"name": "config", "configMap": {"name": format!("{app}-config"), "defaultMode": 420}},
                    {"name": token_vol, "projected": {"sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                    ], "defaultMode": 420}},
                ],
                "containers": [
                    {
                        "name": "app",
                        "image": image,
                        "ports": [
                            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9102, "protocol": "TCP"},
                        ],
                        "env": [
                            {"name": "APP_NAME", "value": app},
                            {"name": "LOG_LEVEL", "value": "info"},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        ],
                        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": cpu_req, "memory": mem_req}},
                        "volumeMounts": [
                            {"name": "config", "readOnly": true, "mountPath": "/etc/app"},
                            {"name": token_vol, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                        ],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                    },
                    {
                        "name": "proxy",
                        "image": proxy_image,
                        "ports": [{"name": "proxy", "containerPort": 15001, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}, "requests": {"cpu": "10m", "memory": "32Mi"}},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                    },
                ],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default",
                "serviceAccount": "default",
                "nodeName": node,
                "securityContext": {},
                "schedulerName": "default-scheduler",
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                ],
                "priority": 0,
                "enableServiceLinks": true,
                "preemptionPolicy": "PreemptLowerPriority",
            },
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": created},
                    {"type": "Ready", "status": ready_status, "lastTransitionTime": started},
                    {"type": "ContainersReady", "status": ready_status, "lastTransitionTime": started},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
                ],
                "hostIP": host_ip,
                "podIP": pod_ip,
                "startTime": created,
                "containerStatuses": [
                    {"name": "app", "state": container_state(&started), "lastState": {}, "ready": running, "restartCount": restarts,
                     "image": image, "imageID": format!("{image}@sha256:{}", hex(&mut app_rng, 64)), "containerID": cid(&mut rng), "started": running},
                    {"name": "proxy", "state": container_state(&started), "lastState": {}, "ready": running, "restartCount": 0,
                     "image": proxy_image, "imageID": format!("{proxy_image}@sha256:{}", hex(&mut app_rng, 64)), "containerID": cid(&mut rng), "started": running},
                ],
                "qosClass": "Burstable",
            },
        })
    }

    /// Pods `0..n`.
    pub fn pods(&self, n: usize) -> impl Iterator<Item = Value> + '_ {
        (0..n).map(|i| self.pod(i))
    }
}

/// Bulk-loads pods `0..n` of `PodGen::new(seed, namespace)` into the simulator
/// without HTTP (one lock, one ADDED event each). Returns how many were created.
///
/// # Errors
/// [`crate::sim::SimError`] if the sim does not serve pods.
pub fn load_pods(
    sim: &SimHandle,
    namespace: &str,
    n: usize,
    seed: u64,
) -> crate::sim::Result<usize> {
    let g = PodGen::new(seed, namespace);
    sim.create_many("pods", g.pods(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_deterministic_and_realistically_sized() {
        let g = PodGen::new(42, "ns");
        let mut sizes = Vec::new();
        for i in 0..200 {
            let p = g.pod(i);
            assert_eq!(p, g.pod(i));
            sizes.push(serde_json::to_vec(&p).expect("serialises").len());
        }
        let (min, max) = (
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
        );
        assert!(min >= 3000 && max <= 6000, "sizes {min}..{max}");
        assert_ne!(PodGen::new(43, "ns").pod(0), g.pod(0));
    }

    #[test]
    fn pods_spread_over_nodes_and_are_mostly_running() {
        let g = PodGen::new(1, "ns");
        let pods: Vec<Value> = g.pods(2000).collect();
        let nodes: std::collections::HashSet<&str> = pods
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str())
            .collect();
        assert_eq!(nodes.len(), NODES);
        assert!(nodes.iter().all(|n| n.starts_with("node-0")));
        let running = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        assert!(running > 1700 && running < 1990, "running {running}");
    }

    #[test]
    fn a_generated_pod_decodes_as_a_typed_pod() {
        let p: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(PodGen::new(3, "ns").pod(9)).expect("valid pod");
        assert_eq!(p.spec.map(|s| s.containers.len()), Some(2));
    }
}
