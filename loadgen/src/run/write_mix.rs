//! The write side of a run: namespaces, the initial pods, and the paced write mix.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::ProgressBar;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::task::JoinSet;

use super::recorder::{SENT_AT, now_nanos};
use crate::cleanup::OWNED_LABEL;
use super::config::RUN_LABEL;
use super::error::RunError;
use super::verify::KeyItem;
use crate::podgen;
use crate::report::Percentiles;

/// Concurrent requests while creating the initial pods.
const CREATE_CONCURRENCY: usize = 32;
/// Most writes in flight during the write phase.
const MAX_IN_FLIGHT: usize = 256;

/// Creates the run's namespaces (an existing one is fine; one that is
/// terminating is refused by the server when pods are created in it, which
/// [`RunError`] explains).
pub async fn ensure_namespaces(client: &kube::Client, namespaces: &[String]) -> Result<(), RunError> {
    let api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        let body: Namespace = serde_json::from_value(json!({
            "metadata": {"name": ns, "labels": {OWNED_LABEL: "true"}}
        }))
        .map_err(|e| RunError::Target(e.to_string()))?;
        match api.create(&PostParams::default(), &body).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(source) => return Err(RunError::api(format!("creating namespace {ns}"), source)),
        }
    }
    Ok(())
}

fn run_pod(namespace: &str, index: usize, seed: u64, run_id: &str) -> Result<Pod, RunError> {
    let mut value = podgen::PodGen::new(seed, namespace).pod(index);
    value["metadata"]["labels"][RUN_LABEL] = json!(run_id);
    serde_json::from_value(value).map_err(|e| RunError::Target(format!("generated pod does not decode: {e}")))
}

/// Creates `n` pods of run `run_id` spread over `namespaces`; returns their
/// `(namespace, name)`.
pub async fn create_pods(
    client: &kube::Client,
    namespaces: &[String],
    n: usize,
    seed: u64,
    run_id: &str,
    bar: &ProgressBar,
) -> Result<Vec<(String, String)>, RunError> {
    // Pods are generated as the stream pulls them, so at most
    // CREATE_CONCURRENCY of them exist at once: building all of them first
    // held ~300 MiB for 10,000 typed pods, which the allocator then kept
    // resident into the engine's part of the run and blurred its RSS figures.
    let results = futures::stream::iter((0..n).map(|i| {
        let ns = namespaces[i % namespaces.len()].clone();
        let client = client.clone();
        async move {
            let pod = run_pod(&ns, i, seed, run_id)?;
            let api: Api<Pod> = Api::namespaced(client, &ns);
            let name = pod.metadata.name.clone().unwrap_or_default();
            match api.create(&PostParams::default(), &pod).await {
                Ok(_) => Ok((ns, name)),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok((ns, name)),
                Err(source) => Err(RunError::api(format!("creating pod {ns}/{name}"), source)),
            }
        }
    }))
    .buffer_unordered(CREATE_CONCURRENCY)
    .inspect(|_| bar.inc(1))
    .collect::<Vec<_>>()
    .await;
    results.into_iter().collect()
}

/// What the write phase did. Serialized when a `loadgen write` child reports
/// it to the run (see `run/writer_process.rs`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct WriteStats {
    /// Acknowledged updates.
    pub updates: u64,
    /// Acknowledged creates.
    pub creates: u64,
    /// Acknowledged deletes.
    pub deletes: u64,
    /// Failed writes.
    pub errors: u64,
    /// Wall time of the phase, until the last write was acknowledged.
    pub elapsed: Duration,
    /// Per key, the resourceVersion of its last acknowledged write (`None`: deleted).
    pub last_write: HashMap<String, Option<String>>,
    /// The resourceVersion every acknowledged update and create was answered
    /// with: the version of the event it causes, by which a run tells its own
    /// events from other writers'.
    #[serde(default)]
    pub upsert_rvs: Vec<u64>,
    /// Per deleted key, the resourceVersion its DELETE was answered with (a
    /// real API server answers a grace-0 delete with the version of the
    /// MODIFIED event that marked it; its DELETED event comes after).
    #[serde(default)]
    pub delete_rvs: HashMap<String, u64>,
    /// Write sent to its event read off a raw watch by the writer's process,
    /// milliseconds: the floor under the engine's event latency (`run/raw_watch.rs`).
    #[serde(default)]
    pub wire_latency_ms: Percentiles,
}

impl WriteStats {
    /// Writes acknowledged by the server.
    pub fn acknowledged(&self) -> u64 {
        self.updates + self.creates + self.deletes
    }
}

/// A finished write: its key, what it was, and the server's answer (the new resourceVersion).
type Done = ((String, String), Op, Result<String, kube::Error>);

#[derive(Debug)]
enum Op {
    Update,
    Create(Box<Pod>),
    Delete,
}

/// Drives the write mix: 90% stamped merge-patches, 5% creates, 5% deletes,
/// never two writes to one key at once (so acknowledgements stay in order).
pub struct Writer {
    client: kube::Client,
    keys: Vec<(String, String)>,
    namespaces: Vec<String>,
    rng: StdRng,
    seed: u64,
    run_id: String,
    next_index: usize,
}

impl Writer {
    /// A writer over the pods `keys` of run `run_id`.
    pub fn new(client: kube::Client, keys: Vec<(String, String)>, namespaces: Vec<String>, seed: u64, run_id: &str) -> Self {
        let next_index = keys.len();
        let rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        Writer { client, keys, namespaces, rng, seed, run_id: run_id.to_owned(), next_index }
    }

    /// The client the writes go through.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Writes at `qps` for `duration`, then waits for the writes in flight.
    pub async fn drive(&mut self, qps: f64, duration: Duration, bar: &ProgressBar) -> WriteStats {
        let mut stats = WriteStats::default();
        let mut in_flight: HashSet<(String, String)> = HashSet::new();
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let start = Instant::now();
        let mut issued: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_second = 0;
        while start.elapsed() < duration {
            tick.tick().await;
            let due = (start.elapsed().as_secs_f64() * qps) as u64;
            while issued < due && tasks.len() < MAX_IN_FLIGHT {
                let Some((key, op)) = self.pick(&in_flight) else { break };
                in_flight.insert(key.clone());
                tasks.spawn(self.write(key, op));
                issued += 1;
            }
            while let Some(done) = tasks.try_join_next() {
                self.settle(done, &mut stats, &mut in_flight);
            }
            let s = start.elapsed().as_secs();
            if s != last_second {
                bar.set_position(s);
                last_second = s;
            }
        }
        while let Some(done) = tasks.join_next().await {
            self.settle(done, &mut stats, &mut in_flight);
        }
        stats.elapsed = start.elapsed();
        stats
    }

    fn pick(&mut self, in_flight: &HashSet<(String, String)>) -> Option<((String, String), Op)> {
        let roll = self.rng.random_range(0..100);
        if roll < 5 || self.keys.is_empty() {
            let ns = self.namespaces[self.next_index % self.namespaces.len()].clone();
            let pod = run_pod(&ns, self.next_index, self.seed, &self.run_id).ok()?;
            self.next_index += 1;
            let name = pod.metadata.name.clone().unwrap_or_default();
            return Some(((ns, name), Op::Create(Box::new(pod))));
        }
        for _ in 0..8 {
            let i = self.rng.random_range(0..self.keys.len());
            if in_flight.contains(&self.keys[i]) {
                continue;
            }
            if roll < 10 {
                let key = self.keys.swap_remove(i);
                return Some((key, Op::Delete));
            }
            return Some((self.keys[i].clone(), Op::Update));
        }
        None
    }

    fn write(
        &self,
        key: (String, String),
        op: Op,
    ) -> impl std::future::Future<Output = Done> + Send + 'static {
        let client = self.client.clone();
        async move {
            let stamp = now_nanos().to_string();
            let pods = kube::core::Request::new(<Pod as kube::Resource>::url_path(&(), Some(&key.0)));
            let request = match &op {
                Op::Update => {
                    let patch = json!({"metadata": {"annotations": {SENT_AT: stamp}}});
                    pods.patch(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
                }
                Op::Create(pod) => {
                    let mut pod = Pod::clone(pod);
                    pod.metadata.annotations.get_or_insert_with(Default::default).insert(SENT_AT.to_owned(), stamp);
                    match serde_json::to_vec(&pod) {
                        Ok(body) => pods.create(&PostParams::default(), body),
                        Err(e) => return (key, op, Err(kube::Error::SerdeError(e))),
                    }
                }
                // Grace 0: loadgen's pods name nodes no kubelet serves, so a graceful
                // delete would wait for a kubelet that never confirms (docs/KIND.md).
                Op::Delete => pods.delete(&key.1, &DeleteParams::default().grace_period(0)),
            };
            let result = match request {
                // Only the new resourceVersion is read from the answer: decoding
                // the whole pod 2,000 times a second would load the cores the
                // engine under test shares.
                Ok(request) => client.request::<KeyItem>(request).await.map(|w| w.metadata.resource_version),
                Err(e) => Err(kube::Error::BuildRequest(e)),
            };
            (key, op, result)
        }
    }

    fn settle(
        &mut self,
        done: Result<Done, tokio::task::JoinError>,
        stats: &mut WriteStats,
        in_flight: &mut HashSet<(String, String)>,
    ) {
        let Ok((key, op, result)) = done else {
            stats.errors += 1;
            return;
        };
        in_flight.remove(&key);
        let k = format!("{}/{}", key.0, key.1);
        match (op, result) {
            (Op::Update, Ok(rv)) => {
                stats.updates += 1;
                stats.upsert_rvs.extend(rv.parse::<u64>().ok());
                stats.last_write.insert(k, Some(rv));
            }
            (Op::Create(_), Ok(rv)) => {
                stats.creates += 1;
                stats.upsert_rvs.extend(rv.parse::<u64>().ok());
                stats.last_write.insert(k, Some(rv));
                self.keys.push(key);
            }
            (Op::Delete, Ok(rv)) => {
                stats.deletes += 1;
                if let Ok(rv) = rv.parse::<u64>() {
                    stats.delete_rvs.insert(k.clone(), rv);
                }
                stats.last_write.insert(k, None);
            }
            (Op::Delete, Err(_)) => {
                stats.errors += 1;
                self.keys.push(key);
            }
            (_, Err(_)) => stats.errors += 1,
        }
    }
}
