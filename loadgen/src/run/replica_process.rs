//! One replica of `loadgen run --replicas N`: a `loadgen replica` child process
//! running a kcache informer of the run's pods and a `Controller<Pod>` sharded
//! over a [`ShardMembership`] on the API server's Leases (by each pod's uid), or,
//! with `--leader-election`, an informer of every pod and a controller gated by a
//! [`LeaderElector`] on one Lease; its no-op reconcile reports which key it
//! reconciled, at which resourceVersion, and when.
//!
//! # Protocol
//! The child prints one JSON [`ReplicaMessage`] per stdout line: `synced` once
//! its cache holds the initial list (with its RSS and store bytes then), one
//! `reconciled` per reconcile that ran to its end, `leading` whenever its
//! elector starts or stops leading, and `snapshot` (its cache's keys and
//! versions) for every `dump` line read on stdin. It exits when stdin closes, so
//! a parent that goes away takes it down.
//!
//! # Guarantees
//! * Reconcile times are wall-clock nanoseconds ([`now_nanos`]), the clock every
//!   process of a run shares on one machine, so the parent can compare intervals
//!   recorded by different replicas. A step of the wall clock during a run
//!   (NTP) would skew them; the runs are short and loopback-only.
//! * Only a reconcile that ran to its end is reported: one the membership
//!   aborted (its key was lost) never ran past its start, so it reconciled nothing.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kcache::controller::{Action, Controller};
use kcache::lease::{LeaderElectionConfig, LeaderElector, LeaseClient};
use kcache::shard::{CacheMode, MembershipConfig, ShardBy, ShardMembership, ShardedInformer, Timing};
use kcache::{Informer, InformerConfig, KubeSource};
use serde::{Deserialize, Serialize};

use super::error::{RunError, chain};
use super::recorder::now_nanos;
use super::target::Connection;
use crate::procstat;

/// The field the replicas shard by (see `serve_replica_inner` for why).
const SHARD_BY: ShardBy = ShardBy::ObjectUid;

/// What one replica runs.
#[derive(Clone, Debug)]
pub struct ReplicaPlan {
    /// Label selector of the run's pods.
    pub selector: String,
    /// Namespace of the ring's Leases.
    pub lease_namespace: String,
    /// The ring's name (a DNS label).
    pub ring: String,
    /// This replica's identity in the ring.
    pub identity: String,
    /// Lease duration (whole seconds).
    pub lease_duration: Duration,
    /// Controller workers.
    pub workers: usize,
    /// Elect one leader on the Lease named `ring` instead of sharding: every
    /// replica caches every pod, only the leader reconciles.
    pub leader_election: bool,
}

impl ReplicaPlan {
    /// The command-line arguments of `loadgen replica` for this plan (after the
    /// connection's own arguments).
    pub(crate) fn args(&self) -> Vec<String> {
        vec![
            "--selector".to_owned(),
            self.selector.clone(),
            "--lease-namespace".to_owned(),
            self.lease_namespace.clone(),
            "--ring".to_owned(),
            self.ring.clone(),
            "--identity".to_owned(),
            self.identity.clone(),
            "--lease-duration".to_owned(),
            self.lease_duration.as_secs().to_string(),
            "--workers".to_owned(),
            self.workers.to_string(),
        ]
        .into_iter()
        .chain(self.leader_election.then(|| "--leader-election".to_owned()))
        .collect()
    }
}

/// The ring's durations for a lease of `lease_duration` (whole seconds): client-go's
/// ratios (15 s lease, 10 s renew deadline, 2 s retry period), the retry period
/// shortened so that a short test lease still renews several times per deadline.
pub fn timing_for(lease_duration: Duration) -> Timing {
    Timing { lease_duration, renew_deadline: lease_duration * 2 / 3, retry_period: lease_duration / 8 }
}

/// The leader election's renew deadline and retry period for a lease of
/// `lease_duration`: client-go's default ratios (15 s lease, 10 s renew deadline,
/// 2 s retry period; tools/leaderelection/leaderelection.go), which pass
/// [`LeaderElectionConfig::validate`] at every lease length.
pub fn leader_timing(lease_duration: Duration) -> (Duration, Duration) {
    (lease_duration * 10 / 15, lease_duration * 2 / 15)
}

/// One line of a `loadgen replica` child's stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaMessage {
    /// The cache holds the initial list.
    Synced {
        /// This process's RSS right after sync, bytes.
        rss_bytes: u64,
        /// Bytes of object JSON in the store.
        store_bytes: u64,
        /// The server ignores the shard selector: the cache holds every pod.
        #[serde(default)]
        full_cache: bool,
    },
    /// A reconcile ran to its end.
    Reconciled {
        /// `namespace/name`.
        key: String,
        /// The resourceVersion of the object it read.
        rv: u64,
        /// Wall-clock nanoseconds at its start.
        start: u64,
        /// Wall-clock nanoseconds at its end.
        end: u64,
    },
    /// The cache's `(namespace/name, resourceVersion)` pairs, sorted, with the
    /// store bytes now.
    Snapshot {
        /// The pairs.
        keys: Vec<(String, String)>,
        /// Bytes of object JSON in the store.
        store_bytes: u64,
    },
    /// The leader elector started (`true`) or stopped (`false`) leading.
    Leading {
        /// Whether this replica leads now.
        leading: bool,
    },
    /// The replica could not go on.
    Failed {
        /// Why.
        error: String,
    },
}

/// Prints messages from any thread, one JSON line each, flushing when idle.
#[derive(Clone)]
struct Emitter {
    tx: std::sync::mpsc::Sender<ReplicaMessage>,
}

impl Emitter {
    fn start() -> Emitter {
        let (tx, rx) = std::sync::mpsc::channel::<ReplicaMessage>();
        std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            while let Ok(first) = rx.recv() {
                let mut next = Some(first);
                while let Some(message) = next {
                    // A parent that went away is noticed on stdin; a write error here changes nothing.
                    let _ = serde_json::to_writer(&mut out, &message);
                    let _ = out.write_all(b"\n");
                    next = rx.try_recv().ok();
                }
                let _ = out.flush();
            }
        });
        Emitter { tx }
    }

    fn send(&self, message: ReplicaMessage) {
        let _ = self.tx.send(message);
    }
}

struct Ctx {
    emit: Emitter,
}

#[derive(Debug, thiserror::Error)]
#[error("a no-op reconcile does not fail")]
struct Never;

/// The no-op reconcile: records the key and its interval. The short sleep gives the
/// interval a width, so that two replicas reconciling one key at once would overlap.
async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, Never> {
    let start = now_nanos();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let end = now_nanos();
    let key = format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""));
    let rv = pod.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    ctx.emit.send(ReplicaMessage::Reconciled { key, rv, start, end });
    Ok(Action::await_change())
}

fn snapshot(informer: &Informer) -> ReplicaMessage {
    let store = informer.store();
    let mut keys: Vec<(String, String)> = store.list().iter().map(|o| (o.key(), o.resource_version().to_owned())).collect();
    keys.sort();
    ReplicaMessage::Snapshot { keys, store_bytes: store.stats().json_bytes }
}

/// The child side (`loadgen replica`): runs the replica as the module docs
/// describe until stdin closes. An error has already been reported as `failed`.
pub async fn serve_replica(connection: &Connection, plan: &ReplicaPlan) -> Result<(), RunError> {
    let emit = Emitter::start();
    let result = serve_replica_inner(connection, plan, &emit).await;
    if let Err(e) = &result {
        emit.send(ReplicaMessage::Failed { error: chain(e) });
        // Let the emitter thread print it before the process exits.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    result
}

/// What keeps a replica's coordination with the others running.
enum Coordination {
    /// The sharded informer and the ring membership inside it.
    Ring(ShardedInformer),
    /// The leader elector's task and the sender that stops it.
    Leader { stop: tokio::sync::oneshot::Sender<()>, election: tokio::task::JoinHandle<()> },
}

/// A replica's cache, controller and coordination, before the controller runs.
struct Parts {
    informer: Informer,
    controller: Controller<Pod>,
    coordination: Coordination,
    /// The cache holds every pod (the server ignores the shard selector, or leader election).
    full_cache: bool,
}

/// The sharded informer and controller of a ring member.
async fn sharded(client: kube::Client, plan: &ReplicaPlan, config: InformerConfig) -> Result<Parts, RunError> {
    let membership = ShardMembership::start(
        LeaseClient::new(client.clone(), plan.lease_namespace.clone()),
        MembershipConfig::new(plan.ring.clone(), plan.identity.clone()).timing(timing_for(plan.lease_duration)),
    )
    .map_err(|e| RunError::Replica(format!("cannot join the ring: {e}")))?;
    // The slice this replica owns where the server serves the shard selector;
    // everything (filtered by the controller) where it does not. By each pod's own
    // uid: the run's pods have controller owners, and under `ShardBy::Uid` an owned
    // pod is placed by its owner's uid, which a server-side selector on the pod's own
    // uid cannot follow; by namespace the run's few, similarly named namespaces sit
    // close together on FNV-1a's space and land on one replica.
    let sharded = ShardedInformer::start(membership.clone(), KubeSource::for_type::<Pod>(client, None), SHARD_BY, config)
        .await
        .map_err(|e| RunError::Replica(format!("cannot start the sharded informer: {}", chain(&e))))?;
    let full_cache = sharded.mode() == CacheMode::Everything;
    let informer = sharded.informer().clone();
    let controller = Controller::<Pod>::new(&informer).workers(plan.workers.max(1)).shard(membership, SHARD_BY);
    Ok(Parts { informer, controller, coordination: Coordination::Ring(sharded), full_cache })
}

/// An informer of every pod and a controller that reconciles only while this
/// replica's elector leads, telling the parent when it starts and stops leading.
fn leader_elected(client: kube::Client, plan: &ReplicaPlan, config: InformerConfig, emit: &Emitter) -> Result<Parts, RunError> {
    let (renew_deadline, retry_period) = leader_timing(plan.lease_duration);
    let election = LeaderElectionConfig::new(plan.lease_namespace.clone(), plan.ring.clone(), plan.identity.clone())
        .lease_duration(plan.lease_duration)
        .renew_deadline(renew_deadline)
        .retry_period(retry_period);
    let (started, stopped) = (emit.clone(), emit.clone());
    let elector = LeaderElector::new(client.clone(), election)
        .map_err(|e| RunError::Replica(format!("cannot elect a leader: {e}")))?
        .on_started_leading(move || started.send(ReplicaMessage::Leading { leading: true }))
        .on_stopped_leading(move || stopped.send(ReplicaMessage::Leading { leading: false }));
    let informer = Informer::spawn(KubeSource::for_type::<Pod>(client, None), config)
        .map_err(|e| RunError::Replica(format!("cannot start the informer: {}", chain(&e))))?;
    let controller = Controller::<Pod>::new(&informer).workers(plan.workers.max(1)).leader_election(elector.leadership());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let election = tokio::spawn(elector.run(async move {
        let _ = stopped.await;
    }));
    Ok(Parts { informer, controller, coordination: Coordination::Leader { stop, election }, full_cache: true })
}

async fn serve_replica_inner(connection: &Connection, plan: &ReplicaPlan, emit: &Emitter) -> Result<(), RunError> {
    let client = connection.client().await?;
    let mut config = InformerConfig::default();
    config.watcher.label_selector = Some(plan.selector.clone());
    let Parts { informer, controller, coordination, full_cache } = if plan.leader_election {
        leader_elected(client, plan, config, emit)?
    } else {
        sharded(client, plan, config).await?
    };
    let ctx = Arc::new(Ctx { emit: emit.clone() });
    let run = tokio::spawn(controller.run(reconcile, |_, _, _| Action::requeue(Duration::from_millis(100)), ctx));
    if !informer.wait_for_sync(Duration::from_secs(600)).await {
        return Err(RunError::Replica("the informer did not sync in 10 minutes".into()));
    }
    emit.send(ReplicaMessage::Synced {
        rss_bytes: procstat::rss_bytes().unwrap_or(0),
        store_bytes: informer.store().stats().json_bytes,
        full_cache,
    });
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        if line.trim() == "dump" {
            emit.send(snapshot(&informer));
        }
    }
    run.abort();
    informer.shutdown();
    match coordination {
        Coordination::Ring(sharded) => drop(sharded),
        Coordination::Leader { stop, election } => {
            // Releases the lease; a parent that closed stdin does not wait for it long.
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
        }
    }
    Ok(())
}
