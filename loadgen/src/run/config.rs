//! What `loadgen run` can be told ([`RunConfig`]), and how a run names its
//! namespaces and labels its pods.
//!
//! # Guarantees
//! * Every run has its own id ([`RunConfig::run_id`]): its namespaces are
//!   `loadgen-<id>-<i>` and its pods carry `loadgen.kcache.io/run=<id>`, so a
//!   run never writes into a previous run's namespaces (which a real cluster
//!   keeps Terminating until its namespace controller has emptied them) and
//!   never selects a previous run's pods (docs/KIND.md).

use std::path::PathBuf;
use std::time::Duration;

use super::engines::{EngineKind, HandlerStyle};
use super::recorder::now_nanos;
use super::target::TargetKind;
use super::writer_process::WriterKind;

/// The label every pod of a run carries; its value is the run's id.
pub const RUN_LABEL: &str = "loadgen.kcache.io/run";

/// The label selector of a `--preload` run: every generated pod has an `app`
/// label ([`crate::podgen`]), but the simulator's bulk loader does not add
/// [`RUN_LABEL`], so the run selects on the label's existence instead.
pub const PRELOAD_SELECTOR: &str = "app";

/// Everything `loadgen run` can be told.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Pods created before the write phase.
    pub pods: usize,
    /// Writes per second during the write phase.
    pub write_qps: f64,
    /// Length of the write phase.
    pub duration: Duration,
    /// Namespaces the pods are spread over.
    pub namespaces: usize,
    /// Handler style.
    pub handler: HandlerStyle,
    /// Work (a sleep) per event wherever the handler style does its work; zero: none.
    pub handler_cost: Duration,
    /// Engine under test.
    pub engine: EngineKind,
    /// kcache shards; 0 = cores.
    pub shards: usize,
    /// Strip managedFields at decode time.
    pub strip_managed_fields: bool,
    /// kcache: compress object bodies (zstd with a trained dictionary).
    pub compress: bool,
    /// Seed for pod contents and the write mix.
    pub seed: u64,
    /// Where the API server is.
    pub target: TargetKind,
    /// Which process creates the pods and drives the writes.
    pub writer: WriterKind,
    /// Draw progress bars.
    pub progress: bool,
    /// kcache: list with a streaming list (`sendInitialEvents=true`) instead of
    /// paginated LISTs. kube-rs: `watcher::Config::streaming_lists()`.
    pub streaming_list: bool,
    /// kcache: the informer's resync period (`None` or zero: no resync). kube-rs
    /// has no resync; the setting is ignored there.
    pub resync: Option<Duration>,
    /// Let the simulator bulk-load the pods into namespace `loadgen-0` before it
    /// listens (`loadgen sim --pods N`), instead of creating them over HTTP: much
    /// faster for 100k pods, and the run's process never holds them. Simulator
    /// targets only; the label selector defaults to [`PRELOAD_SELECTOR`].
    pub preload: bool,
    /// Label selector of the engine and the verification LIST; `None`:
    /// `loadgen.kcache.io/run=<run_id>` ([`PRELOAD_SELECTOR`] with `preload`).
    pub label_selector: Option<String>,
    /// Time cache Get / List during the writes and direct GET / LIST after them.
    /// Off for sync-only runs of one big namespace, where a direct LIST of the
    /// whole namespace is slow.
    pub read_timings: bool,
    /// Threads timing cache reads during the writes (with `read_timings`).
    pub readers: usize,
    /// Profile the sync and write phases; write `STEM.svg` and `STEM.pb`.
    pub profile: Option<PathBuf>,
    /// Profiler sampling frequency, Hz.
    pub profile_hz: i32,
    /// This run's id: it names the namespaces ([`namespace_name`]) and is the
    /// value of the pods' [`RUN_LABEL`]. Each default config gets a new one
    /// ([`new_run_id`]).
    pub run_id: String,
    /// Engine processes (`loadgen replica` children) sharing the pods through a
    /// ring of Leases; 1: this process runs the engine itself.
    pub replicas: usize,
    /// With `replicas > 1`: SIGKILL replica 0 this long after the write phase starts.
    pub kill_replica_at: Option<Duration>,
    /// With `replicas > 1`: the ring's lease duration (whole seconds).
    pub lease_duration: Duration,
    /// With `replicas > 1`: one Lease elects a leader, every replica caches every
    /// pod and only the leader reconciles (no sharding); a kill or pause hits the leader.
    pub leader_election: bool,
    /// With `replicas > 1`: SIGSTOP one replica this long after the write phase
    /// starts, and SIGCONT it `pause_for` later.
    pub pause_replica_at: Option<Duration>,
    /// How long `pause_replica_at` keeps the replica stopped.
    pub pause_for: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            pods: 10_000,
            write_qps: 2000.0,
            duration: Duration::from_secs(30),
            namespaces: 10,
            handler: HandlerStyle::Sync,
            handler_cost: Duration::ZERO,
            engine: EngineKind::Kcache,
            shards: 0,
            strip_managed_fields: false,
            compress: false,
            seed: 1,
            target: TargetKind::SimChild,
            writer: WriterKind::Child,
            progress: true,
            streaming_list: false,
            resync: None,
            preload: false,
            label_selector: None,
            read_timings: true,
            readers: 2,
            profile: None,
            profile_hz: 199,
            run_id: new_run_id(),
            replicas: 1,
            kill_replica_at: None,
            lease_duration: Duration::from_secs(5),
            leader_election: false,
            pause_replica_at: None,
            pause_for: Duration::ZERO,
        }
    }
}

impl RunConfig {
    /// The label selector the engine and the verification use.
    pub fn selector(&self) -> String {
        match &self.label_selector {
            Some(s) => s.clone(),
            None if self.preload => PRELOAD_SELECTOR.to_owned(),
            None => format!("{RUN_LABEL}={}", self.run_id),
        }
    }
}

/// Namespace `i` of run `run_id`.
pub fn namespace_name(run_id: &str, i: usize) -> String {
    format!("loadgen-{run_id}-{i}")
}

/// A new run id: eight hex digits from the clock and the process id, a valid
/// label value and namespace-name part.
pub fn new_run_id() -> String {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nth = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mixed = (now_nanos() / 1_000) ^ (u64::from(std::process::id()) << 20) ^ nth.wrapping_mul(0x9e37_79b9);
    format!("{:08x}", mixed & 0xffff_ffff)
}
