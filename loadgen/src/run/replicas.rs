//! `loadgen run --replicas N` (N > 1): N `loadgen replica` child processes
//! ([`super::replica_process`]) share the run's pods through a ring of Leases
//! (or, with `--leader-election`, each caches every pod and only an elected
//! leader reconciles), one may be SIGKILLed or SIGSTOPped mid-run (the leader,
//! under leader election), and the report says who reconciled what.
//!
//! # Figures
//! * `takeover_seconds`: from the SIGKILL until every key whose last reconcile
//!   before the kill was the killed replica's, and that still exists at the end,
//!   has been reconciled by a survivor (whose reconcile started after the kill).
//! * `double_reconciles`: keys two replicas reconciled in overlapping intervals.
//! * `keys_never_reconciled`: keys on the server at the end that no replica reconciled.
//! * `events_lost`: the run's writes whose effect no reconcile saw: for a key's
//!   last acknowledged update or create at version W, no reconcile of it at W or
//!   later; for a last delete, the key is still in a survivor's cache.
//! * `cache_matches_server`: the union of the survivors' caches (per key, the
//!   newest version any holds) agrees with the server by [`verify`]'s rule.
//! * `failover_seconds` (leader election): from the kill or pause of the leader
//!   until the first reconcile start by another replica.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};

use super::config::{RunConfig, namespace_name};
use super::error::RunError;
use super::recorder::now_nanos;
use super::replica_process::{ReplicaMessage, ReplicaPlan};
use super::target::{Preload, Target, TargetKind};
use super::verify::{self, ServerSnapshot};
use super::write_mix::WriteStats;
use super::writer_process::{WritePlan, Writes};
use crate::report::Report;

/// One reconcile a replica reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileRecord {
    /// Which replica (its index).
    pub replica: usize,
    /// `namespace/name`.
    pub key: String,
    /// The version it read.
    pub rv: u64,
    /// Wall-clock nanoseconds at its start.
    pub start: u64,
    /// Wall-clock nanoseconds at its end.
    pub end: u64,
}

/// Keys reconciled by two replicas in overlapping intervals.
pub fn double_reconciles(records: &[ReconcileRecord]) -> u64 {
    let mut by_key: HashMap<&str, Vec<&ReconcileRecord>> = HashMap::new();
    for r in records {
        by_key.entry(r.key.as_str()).or_default().push(r);
    }
    by_key
        .into_values()
        .filter(|runs| {
            let mut runs = runs.clone();
            runs.sort_by_key(|r| r.start);
            // Per replica, the latest end of its intervals that started so far: a
            // later-starting interval overlaps an earlier one iff that one ends after it starts.
            let mut ends: HashMap<usize, u64> = HashMap::new();
            runs.iter().any(|r| {
                let overlaps = ends.iter().any(|(&replica, &end)| replica != r.replica && end > r.start);
                let end = ends.entry(r.replica).or_insert(0);
                *end = (*end).max(r.end);
                overlaps
            })
        })
        .count() as u64
}

/// Seconds from `killed_at` until every key `victim` owned then (its last
/// reconcile before the kill was the victim's) that is in `alive` has been
/// reconciled by another replica; `None` while some has not been.
pub fn takeover_seconds(records: &[ReconcileRecord], victim: usize, killed_at: u64, alive: &HashSet<&str>) -> Option<f64> {
    let mut last_before: HashMap<&str, (u64, usize)> = HashMap::new();
    let mut first_after: HashMap<&str, u64> = HashMap::new();
    for r in records {
        if r.start < killed_at {
            let e = last_before.entry(r.key.as_str()).or_insert((0, usize::MAX));
            if r.start >= e.0 {
                *e = (r.start, r.replica);
            }
        } else if r.replica != victim {
            let e = first_after.entry(r.key.as_str()).or_insert(u64::MAX);
            *e = (*e).min(r.end);
        }
    }
    let mut latest = killed_at;
    for (key, (_, owner)) in last_before {
        if owner != victim || !alive.contains(key) {
            continue;
        }
        latest = latest.max(*first_after.get(key)?);
    }
    Some((latest - killed_at) as f64 / 1e9)
}

/// Seconds from `at` until the first reconcile start by a replica other than
/// `victim`; `None` while there is none.
pub fn failover_seconds(records: &[ReconcileRecord], victim: usize, at: u64) -> Option<f64> {
    let first = records.iter().filter(|r| r.replica != victim && r.start >= at).map(|r| r.start).min()?;
    Some((first - at) as f64 / 1e9)
}

/// The run's writes whose effect no reconcile saw (see the module docs).
pub fn lost_writes(stats: &WriteStats, records: &[ReconcileRecord], cached: &HashSet<&str>) -> u64 {
    let mut newest: HashMap<&str, u64> = HashMap::new();
    for r in records {
        let e = newest.entry(r.key.as_str()).or_insert(0);
        *e = (*e).max(r.rv);
    }
    stats
        .last_write
        .iter()
        .filter(|(key, last)| match last {
            Some(w) => newest.get(key.as_str()).copied().unwrap_or(0) < w.parse::<u64>().unwrap_or(u64::MAX),
            None => cached.contains(key.as_str()),
        })
        .count() as u64
}

/// One `loadgen replica` child.
struct ReplicaChild {
    child: Child,
    stdin: ChildStdin,
    synced: tokio::sync::watch::Receiver<Option<(u64, u64, bool)>>,
    snapshots: tokio::sync::mpsc::UnboundedReceiver<(Vec<(String, String)>, u64)>,
    failed: Arc<Mutex<Option<String>>>,
    /// Whether its elector said last that it leads (leader election only).
    leading: tokio::sync::watch::Receiver<bool>,
}

fn spawn_replica(
    index: usize,
    target: &Target,
    plan: &ReplicaPlan,
    records: &Arc<Mutex<Vec<ReconcileRecord>>>,
) -> Result<ReplicaChild, RunError> {
    let exe = std::env::current_exe().map_err(|e| RunError::Replica(format!("cannot find loadgen's own binary: {e}")))?;
    let mut child = tokio::process::Command::new(exe)
        .arg("replica")
        .args(target.connection.args())
        .args(plan.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RunError::Replica(format!("cannot start `loadgen replica` {index}: {e}")))?;
    let stdin = child.stdin.take().ok_or_else(|| RunError::Replica("no stdin to `loadgen replica`".into()))?;
    let stdout = child.stdout.take().ok_or_else(|| RunError::Replica("no stdout from `loadgen replica`".into()))?;
    let (synced_tx, synced) = tokio::sync::watch::channel(None);
    let (snap_tx, snapshots) = tokio::sync::mpsc::unbounded_channel();
    let (leading_tx, leading) = tokio::sync::watch::channel(false);
    let failed = Arc::new(Mutex::new(None));
    let records = Arc::clone(records);
    let failure = Arc::clone(&failed);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<ReplicaMessage>(&line) {
                Ok(ReplicaMessage::Reconciled { key, rv, start, end }) => {
                    records.lock().unwrap_or_else(|p| p.into_inner()).push(ReconcileRecord { replica: index, key, rv, start, end });
                }
                Ok(ReplicaMessage::Synced { rss_bytes, store_bytes, full_cache }) => {
                    let _ = synced_tx.send(Some((rss_bytes, store_bytes, full_cache)));
                }
                Ok(ReplicaMessage::Snapshot { keys, store_bytes }) => {
                    let _ = snap_tx.send((keys, store_bytes));
                }
                Ok(ReplicaMessage::Leading { leading }) => {
                    let _ = leading_tx.send(leading);
                }
                Ok(ReplicaMessage::Failed { error }) => {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                }
                Err(e) => tracing::warn!("replica {index} said something unreadable ({e}): {line:?}"),
            }
        }
    });
    Ok(ReplicaChild { child, stdin, synced, snapshots, failed, leading })
}

impl ReplicaChild {
    fn failure(&self, index: usize) -> Option<RunError> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone().map(|e| RunError::Replica(format!("replica {index}: {e}")))
    }

    async fn snapshot(&mut self, index: usize) -> Result<(Vec<(String, String)>, u64), RunError> {
        let ask = async {
            self.stdin.write_all(b"dump\n").await?;
            self.stdin.flush().await
        };
        ask.await.map_err(|e| RunError::Replica(format!("cannot ask replica {index} for its cache: {e}")))?;
        tokio::time::timeout(Duration::from_secs(120), self.snapshots.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| self.failure(index).unwrap_or_else(|| RunError::Replica(format!("replica {index} did not send its cache"))))
    }
}

/// Runs the scenario with `cfg.replicas` replica processes.
pub async fn run(cfg: &RunConfig) -> Result<Report, RunError> {
    let preload = if cfg.preload {
        if matches!(cfg.target, TargetKind::Kubeconfig { .. }) {
            return Err(RunError::PreloadNeedsSim);
        }
        Some(Preload { pods: cfg.pods, namespace: namespace_name(&cfg.run_id, 0), seed: cfg.seed })
    } else {
        None
    };
    // Each replica caches only its slice where the server serves the shard selector.
    let target = Target::start_with(&cfg.target, preload.as_ref(), true).await?;
    let client = target.client.clone();
    let selector = cfg.selector();
    let namespaces: Vec<String> = match &preload {
        Some(p) => vec![p.namespace.clone()],
        None => (0..cfg.namespaces.max(1)).map(|i| namespace_name(&cfg.run_id, i)).collect(),
    };
    let plan = WritePlan {
        namespaces: namespaces.clone(),
        pods: cfg.pods,
        seed: cfg.seed,
        preloaded: preload.is_some(),
        write_qps: cfg.write_qps,
        duration: cfg.duration,
        selector: selector.clone(),
        run_id: cfg.run_id.clone(),
    };
    let bar = indicatif::ProgressBar::hidden();
    let writes = Writes::prepare(cfg.writer, &client, &target.connection, plan, &bar).await?;

    // Replicas, all synced.
    let records = Arc::new(Mutex::new(Vec::new()));
    let sync_start = Instant::now();
    let mut replicas = Vec::with_capacity(cfg.replicas);
    for i in 0..cfg.replicas {
        let plan = ReplicaPlan {
            selector: selector.clone(),
            lease_namespace: namespaces[0].clone(),
            ring: format!("loadgen-{}", cfg.run_id),
            identity: format!("replica-{i}"),
            lease_duration: cfg.lease_duration,
            workers: 4,
            leader_election: cfg.leader_election,
        };
        replicas.push(spawn_replica(i, &target, &plan, &records)?);
    }
    let sync_timeout = Duration::from_secs(120 + cfg.pods as u64 / 500);
    let mut synced = Vec::with_capacity(cfg.replicas);
    for (i, r) in replicas.iter_mut().enumerate() {
        let wait = tokio::time::timeout_at((sync_start + sync_timeout).into(), r.synced.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|w| w.ok().and_then(|s| *s));
        match wait {
            Some(s) => synced.push(s),
            None => {
                return Err(r.failure(i).unwrap_or(RunError::SyncTimeout { engine: "kcache replica", pods: cfg.pods, timeout: sync_timeout }));
            }
        }
    }
    let sync_seconds = sync_start.elapsed().as_secs_f64();
    let leader_timeout = Duration::from_secs(60) + cfg.lease_duration * 3;
    let settled_store = if cfg.leader_election {
        // Nothing moves between leader-elected replicas: wait for a leader only.
        if leader(&replicas, leader_timeout).await.is_none() {
            return Err(RunError::Replica(format!("no replica led within {leader_timeout:?}")));
        }
        let mut bytes = Vec::with_capacity(replicas.len());
        for (i, r) in replicas.iter_mut().enumerate() {
            bytes.push(r.snapshot(i).await?.1);
        }
        bytes
    } else {
        settle(&mut replicas, &client, &selector, cfg.lease_duration).await?
    };

    // Writes, with the kill or the pause beside them.
    let write_task = tokio::spawn(async move { writes.drive(&indicatif::ProgressBar::hidden()).await });
    let mut killed_at = None;
    let mut victim = None;
    let mut paused = None;
    if let Some(at) = cfg.kill_replica_at {
        tokio::time::sleep(at).await;
        let v = target_replica(&replicas, cfg.leader_election, leader_timeout).await?;
        replicas[v].child.start_kill().map_err(|e| RunError::Replica(format!("cannot kill replica {v}: {e}")))?;
        killed_at = Some(now_nanos());
        victim = Some(v);
        let _ = replicas[v].child.wait().await;
    } else if let Some(at) = cfg.pause_replica_at {
        tokio::time::sleep(at).await;
        let p = target_replica(&replicas, cfg.leader_election, leader_timeout).await?;
        signal(&replicas[p].child, p, "STOP").await?;
        paused = Some((p, now_nanos()));
        tokio::time::sleep(cfg.pause_for).await;
        signal(&replicas[p].child, p, "CONT").await?;
    }
    let stats = write_task.await.map_err(|e| RunError::Writer(format!("the write task failed: {e}")))??;
    // The replica whose leadership the fault took, and when.
    let lost_leader = match (victim, killed_at, paused) {
        _ if !cfg.leader_election => None,
        (Some(v), Some(at), _) => Some((v, at)),
        (_, _, Some(p)) => Some(p),
        _ => None,
    };

    // Convergence: every survivor's cache, the reconciles and the server agree.
    let converge_start = Instant::now();
    let converge_timeout = Duration::from_secs(120);
    let outcome = loop {
        let snapshot = verify::server_snapshot(&client, &selector, 0).await?;
        let mut union: HashMap<String, String> = HashMap::new();
        let mut store_now = vec![0; cfg.replicas];
        for (i, r) in replicas.iter_mut().enumerate() {
            if Some(i) == victim {
                continue;
            }
            let (keys, bytes) = r.snapshot(i).await?;
            store_now[i] = bytes;
            for (k, v) in keys {
                let newer = union.get(&k).is_none_or(|old| verify_rv(&v) > verify_rv(old));
                if newer {
                    union.insert(k, v);
                }
            }
        }
        let (outcome, failover) = {
            let records = records.lock().unwrap_or_else(|p| p.into_inner());
            let outcome = Outcome::measure(&snapshot, union, &records, &stats, victim, killed_at);
            (outcome, lost_leader.and_then(|(v, at)| failover_seconds(&records, v, at)))
        };
        let done = outcome.cache_matches
            && outcome.lost == 0
            && outcome.never == 0
            && (killed_at.is_none() || outcome.takeover.is_some())
            && (killed_at.is_none() || lost_leader.is_none() || failover.is_some());
        let outcome = (outcome, failover);
        if done || converge_start.elapsed() > converge_timeout {
            break outcome;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (outcome, failover) = outcome;
    if !outcome.cache_matches {
        tracing::warn!("the replicas' caches disagree with the server: {}", outcome.verification);
    }
    let reconciles = records.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
    let rss: Vec<f64> = synced.iter().map(|(rss, _, _)| *rss as f64 / 1048576.0).collect();
    let store = settled_store;
    let replica_cache = if synced.iter().any(|(_, _, full)| *full) { "everything" } else { "slice" };
    let report = Report {
        engine: "kcache".to_owned(),
        handler: "controller".to_owned(),
        writer: cfg.writer.as_str().to_owned(),
        pods: cfg.pods as u64,
        write_qps_target: cfg.write_qps,
        write_qps_achieved: stats.acknowledged() as f64 / stats.elapsed.as_secs_f64().max(1e-9),
        duration_seconds: stats.elapsed.as_secs_f64(),
        sync_seconds,
        events_expected: stats.acknowledged(),
        events_received: reconciles,
        events_lost: outcome.lost,
        write_errors: stats.errors,
        cache_matches_server: outcome.cache_matches,
        verification: outcome.verification,
        verified_at_resource_version: outcome.at,
        wire_event_latency_ms: stats.wire_latency_ms,
        rss_mb_after_sync: rss.iter().copied().fold(0.0, f64::max),
        store_bytes: store.iter().copied().max().unwrap_or(0),
        wire_bytes: outcome.wire_bytes,
        handler_events: reconciles,
        preload: cfg.preload,
        run_id: cfg.run_id.clone(),
        namespaces: namespaces.clone(),
        replicas: cfg.replicas as u64,
        rss_mb_after_sync_per_replica: rss,
        store_bytes_per_replica: store,
        lease_duration_seconds: cfg.lease_duration.as_secs_f64(),
        killed_replica: victim.map(|v| v as u64),
        takeover_seconds: outcome.takeover,
        double_reconciles: outcome.double,
        keys_never_reconciled: outcome.never,
        replica_cache: replica_cache.to_owned(),
        leader_election: cfg.leader_election,
        failover_seconds: failover,
        paused_replica: paused.map(|(p, _)| p as u64),
        ..Report::default()
    };
    // Closing their stdin ends the replicas; kill_on_drop covers one that hangs.
    drop(replicas);
    target.cleanup(&namespaces).await;
    Ok(report)
}

/// The replica that leads now by its own last word, waiting at most `timeout`
/// for one to lead.
async fn leader(replicas: &[ReplicaChild], timeout: Duration) -> Option<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(i) = replicas.iter().position(|r| *r.leading.borrow()) {
            return Some(i);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The replica a kill or pause hits: the leader under leader election, else replica 0.
async fn target_replica(replicas: &[ReplicaChild], leader_election: bool, timeout: Duration) -> Result<usize, RunError> {
    if !leader_election {
        return Ok(0);
    }
    leader(replicas, timeout).await.ok_or_else(|| RunError::Replica(format!("no replica led within {timeout:?}")))
}

/// Sends `SIG<name>` to a replica through kill(1): the signals std cannot send.
async fn signal(child: &Child, index: usize, name: &str) -> Result<(), RunError> {
    let pid = child.id().ok_or_else(|| RunError::Replica(format!("replica {index} has exited")))?;
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .await
        .map_err(|e| RunError::Replica(format!("cannot run kill -{name} for replica {index}: {e}")))?;
    if !status.success() {
        return Err(RunError::Replica(format!("kill -{name} {pid} (replica {index}) failed: {status}")));
    }
    Ok(())
}

/// Waits until the replicas' caches are the ring's settled slices (each pod in
/// exactly one cache, or in all when the server ignores the shard selector), at
/// most a minute plus three leases; returns each one's store bytes then. A replica
/// that synced before the others joined held everything until its ranges shrank.
async fn settle(replicas: &mut [ReplicaChild], client: &kube::Client, selector: &str, lease: Duration) -> Result<Vec<u64>, RunError> {
    let deadline = Instant::now() + Duration::from_secs(60) + lease * 3;
    let mut settled_since: Option<Instant> = None;
    loop {
        let server = verify::server_snapshot(client, selector, 0).await?.keys.len();
        let mut bytes = Vec::with_capacity(replicas.len());
        let mut held = Vec::with_capacity(replicas.len());
        let mut union = HashSet::new();
        for (i, r) in replicas.iter_mut().enumerate() {
            let (keys, b) = r.snapshot(i).await?;
            bytes.push(b);
            held.push(keys.len());
            union.extend(keys.into_iter().map(|(k, _)| k));
        }
        let total: usize = held.iter().sum();
        let everywhere = held.iter().all(|&n| n == server);
        // A replica alone on the ring at first holds everything, disjointly too:
        // the slices count as settled once they stayed so for two leases.
        let settled = union.len() == server && (total == server || everywhere);
        let since = *settled_since.get_or_insert_with(Instant::now);
        if !settled {
            settled_since = None;
        } else if since.elapsed() >= lease * 2 {
            return Ok(bytes);
        }
        if Instant::now() > deadline {
            return Ok(bytes);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn verify_rv(v: &str) -> u64 {
    v.parse().unwrap_or(0)
}

/// What one convergence check found.
struct Outcome {
    cache_matches: bool,
    verification: String,
    at: u64,
    wire_bytes: u64,
    lost: u64,
    never: u64,
    double: u64,
    takeover: Option<f64>,
}

impl Outcome {
    fn measure(
        snapshot: &ServerSnapshot,
        union: HashMap<String, String>,
        records: &[ReconcileRecord],
        stats: &WriteStats,
        victim: Option<usize>,
        killed_at: Option<u64>,
    ) -> Outcome {
        let mut cached: Vec<(String, String)> = union.into_iter().collect();
        cached.sort();
        let on_server: HashSet<&str> = snapshot.keys.iter().map(|(k, _)| k.as_str()).collect();
        let verdict = verify::compare(snapshot.at, &snapshot.keys, &cached, &|k| on_server.contains(k));
        let cached_keys: HashSet<&str> = cached.iter().map(|(k, _)| k.as_str()).collect();
        let reconciled: HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
        let mut verification = format!(
            "union of the survivors' caches against a LIST at {}: {} same, {} newer in a cache, {} deleted after",
            snapshot.at, verdict.same, verdict.newer_in_cache, verdict.deleted_after
        );
        if verdict.disagree > 0 {
            verification.push_str(&format!(", {} disagree ({})", verdict.disagree, verdict.disagreeing.join("; ")));
        }
        Outcome {
            cache_matches: verdict.matches(),
            verification,
            at: snapshot.at,
            wire_bytes: snapshot.wire_bytes,
            lost: lost_writes(stats, records, &cached_keys),
            never: on_server.iter().filter(|k| !reconciled.contains(*k)).count() as u64,
            double: double_reconciles(records),
            takeover: match (victim, killed_at) {
                (Some(v), Some(at)) => takeover_seconds(records, v, at, &on_server),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(replica: usize, key: &str, start: u64, end: u64) -> ReconcileRecord {
        ReconcileRecord { replica, key: key.to_owned(), rv: 1, start, end }
    }

    #[test]
    fn overlapping_intervals_of_two_replicas_count_once_per_key() {
        let records = vec![
            rec(0, "a", 0, 10),
            rec(1, "a", 11, 20),
            rec(0, "b", 0, 10),
            rec(0, "b", 1, 30),
            rec(1, "b", 25, 26),
            rec(1, "b", 27, 28),
            rec(0, "c", 0, 10),
            rec(0, "c", 5, 15),
        ];
        assert_eq!(double_reconciles(&records), 1);
    }

    #[test]
    fn failover_is_the_first_start_by_another_replica_after_the_fault() {
        let mut records = vec![rec(0, "a", 0, 1), rec(1, "b", 5, 6), rec(0, "c", 20, 21)];
        // Lost at 10: the old leader's later start and the other's earlier one do not count.
        assert_eq!(failover_seconds(&records, 0, 10), None);
        records.push(rec(2, "a", 3_000_000_010, 3_000_000_020));
        records.push(rec(1, "a", 1_500_000_010, 1_600_000_010));
        assert_eq!(failover_seconds(&records, 0, 10), Some(1.5));
    }

    #[test]
    fn takeover_waits_for_every_key_the_victim_owned_at_the_kill() {
        let alive: HashSet<&str> = ["a", "b", "c"].into_iter().collect();
        let mut records = vec![rec(0, "a", 0, 1), rec(1, "b", 0, 1), rec(1, "a", 2, 3), rec(0, "c", 5, 6), rec(0, "gone", 5, 6)];
        // Killed at 10: the victim owned c (a moved to replica 1 before); "gone" no longer exists.
        assert_eq!(takeover_seconds(&records, 0, 10, &alive), None);
        records.push(rec(2, "c", 1_000_000_010, 2_000_000_010));
        assert_eq!(takeover_seconds(&records, 0, 10, &alive), Some(2.0));
    }
}
