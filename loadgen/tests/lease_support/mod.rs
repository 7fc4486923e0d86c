//! What the lease tests share: short election durations, electors and controllers
//! against the simulator, and a recorder of reconcile intervals.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kcache::controller::{Action, KeyController, ReconcileKey};
use kcache::lease::{LeaderElectionConfig, LeaderElectionMetrics, LeaderElector, Leadership};
use k8s_openapi::api::core::v1::ConfigMap;

/// A generous bound for anything that should happen.
pub const T: Duration = Duration::from_secs(60);
/// The short durations of the tests: lease 2 s, renew deadline 1 s, retry 200 ms.
pub const LEASE: Duration = Duration::from_secs(2);
/// See [`LEASE`].
pub const RENEW_DEADLINE: Duration = Duration::from_secs(1);
/// See [`LEASE`].
pub const RETRY: Duration = Duration::from_millis(200);
/// The namespace and name of the election's Lease.
pub const NS: &str = "default";
/// See [`NS`].
pub const LEASE_NAME: &str = "lead";
/// The simulator's name for leases.
pub const LEASES: &str = "leases.coordination.k8s.io";

/// The test configuration for `identity`.
pub fn config(identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig::new(NS, LEASE_NAME, identity)
        .lease_duration(LEASE)
        .renew_deadline(RENEW_DEADLINE)
        .retry_period(RETRY)
}

/// A running elector: its leadership, the instants it started leading, and how to stop it.
pub struct Candidate {
    /// The elector's handle.
    pub leadership: Leadership,
    /// When `on_started_leading` ran, in order.
    pub started: Arc<Mutex<Vec<Instant>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Candidate {
    /// Starts an elector on the current runtime.
    pub fn start(client: kube::Client, config: LeaderElectionConfig) -> Candidate {
        Candidate::start_with(client, config, None)
    }

    /// [`Candidate::start`], reporting into `metrics`.
    pub fn start_with(client: kube::Client, config: LeaderElectionConfig, metrics: Option<&LeaderElectionMetrics>) -> Candidate {
        let started = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&started);
        let mut elector = LeaderElector::new(client, config)
            .expect("valid config")
            .on_started_leading(move || record.lock().unwrap().push(Instant::now()));
        if let Some(metrics) = metrics {
            elector = elector.metrics(metrics);
        }
        let leadership = elector.leadership();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async move {
            let _ = stopped.await;
        }));
        Candidate { leadership, started, stop: Some(stop), task }
    }

    /// Graceful shutdown (releases the lease); waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(T, self.task).await.expect("elector stops").expect("elector task");
    }

    /// Kills the elector without a release, as a crash would; its `Leadership`
    /// handles stay (a controller holding one keeps running).
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Waits until `cond` holds, failing after [`T`].
pub async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < T, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Samples the handles every millisecond for `how_long`; panics if two lead at once.
/// Returns how many samples saw a leader.
pub async fn never_two_leaders(handles: &[&Leadership], how_long: Duration) -> usize {
    let start = Instant::now();
    let mut led = 0;
    while start.elapsed() < how_long {
        let leading = handles.iter().filter(|l| l.is_leading()).count();
        assert!(leading <= 1, "{leading} electors lead at once");
        led += usize::from(leading == 1);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    led
}

/// One reconcile as a replica ran it.
#[derive(Clone, Debug)]
pub struct Run {
    /// Which replica.
    pub replica: &'static str,
    /// The key.
    pub key: String,
    /// When the reconcile's code started.
    pub start: Instant,
    /// When its code finished (`None`: aborted).
    pub finished: Option<Instant>,
    /// When it finished or was dropped.
    pub ended: Option<Instant>,
}

/// Every reconcile of every replica.
#[derive(Clone, Default)]
pub struct Recorder {
    runs: Arc<Mutex<Vec<Run>>>,
}

struct Open {
    recorder: Recorder,
    index: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut runs = self.recorder.runs.lock().unwrap();
        let run = &mut runs[self.index];
        run.ended.get_or_insert_with(Instant::now);
    }
}

impl Recorder {
    /// A snapshot.
    pub fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    /// The runs of `replica` that started after `t`.
    pub fn started_after(&self, replica: &str, t: Instant) -> Vec<Run> {
        self.runs().into_iter().filter(|r| r.replica == replica && r.start > t).collect()
    }

    /// A reconcile that records itself, works for `work`, and asks to run again soon.
    pub fn reconcile(
        &self,
        replica: &'static str,
        work: Duration,
    ) -> impl Fn(ReconcileKey) -> futures::future::BoxFuture<'static, Result<Action, std::io::Error>> + Send + Sync + 'static {
        let recorder = self.clone();
        move |key: ReconcileKey| {
            let recorder = recorder.clone();
            Box::pin(async move {
                let index = {
                    let mut runs = recorder.runs.lock().unwrap();
                    runs.push(Run { replica, key: key.name.clone(), start: Instant::now(), finished: None, ended: None });
                    runs.len() - 1
                };
                let open = Open { recorder: recorder.clone(), index };
                tokio::time::sleep(work).await;
                {
                    let now = Instant::now();
                    let mut runs = recorder.runs.lock().unwrap();
                    runs[index].finished = Some(now);
                    runs[index].ended = Some(now);
                }
                drop(open);
                Ok(Action::RequeueAfter(Duration::from_millis(5)))
            })
        }
    }

    /// Panics if runs of two replicas overlap, each run spanning `[start, span(run)]`.
    pub fn assert_no_overlap(&self, span: impl Fn(&Run) -> Instant) {
        let mut runs = self.runs();
        runs.sort_by_key(|r| r.start);
        // Sweep in start order, keeping the latest end (and its run) of each replica.
        let mut latest: std::collections::HashMap<&'static str, (Instant, Run)> = std::collections::HashMap::new();
        for run in &runs {
            for (replica, (end, other)) in &latest {
                assert!(
                    *replica == run.replica || *end <= run.start,
                    "reconciles of two replicas overlap: {other:?} and {run:?}"
                );
            }
            let end = span(run);
            let entry = latest.entry(run.replica).or_insert_with(|| (end, run.clone()));
            if end > entry.0 {
                *entry = (end, run.clone());
            }
        }
    }
}

/// Until a run ended (finished or dropped); a run still open counts as open now.
pub fn until_ended(run: &Run) -> Instant {
    run.ended.unwrap_or_else(Instant::now)
}

/// Until the reconcile's own code last ran: its finish, or its start if aborted.
pub fn until_code_ran(run: &Run) -> Instant {
    run.finished.unwrap_or(run.start)
}

/// The keys every replica's controller reconciles over and over.
pub fn keys() -> Vec<ReconcileKey> {
    (0..4).map(|i| ReconcileKey::of::<ConfigMap>(Some("default"), &format!("k{i}"))).collect()
}

/// A controller of [`keys`] that reconciles only while `leadership` leads,
/// recording into `recorder` as `replica`. Returns its stats and a stop switch.
pub fn start_controller(
    replica: &'static str,
    leadership: Leadership,
    recorder: &Recorder,
) -> (Arc<kcache::controller::ControllerStats>, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let controller = KeyController::new().workers(2).leader_election(leadership);
    for key in keys() {
        controller.queue().add(key);
    }
    let stats = controller.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller.run(recorder.reconcile(replica, Duration::from_millis(20)), async move {
        let _ = stopped.await;
    }));
    (stats, stop, task)
}
