//! Reconcile throughput measured in the `compare` process: a no-op
//! `kcache::controller::Controller<Pod>` against kube-rs's `kube::runtime::Controller<Pod>`,
//! each over the same simulated API server holding the same realistic pods.
//!
//! Each engine run starts a fresh controller (kcache: an `Informer` on a `KubeSource`;
//! kube-rs: `Controller::new(Api::<Pod>::all(..), watcher::Config::default())`) with one
//! worker per core, on a tokio runtime of its own with one thread per core, and times
//! two phases: from the start until every pod has been reconciled once (the initial
//! LIST and decode included), then from a reconcile-all trigger (`reconcile_all_on`
//! of both) until every pod has been reconciled again, five times over (once in the
//! quick comparison), each trigger sent when the previous one's reconciles are done:
//! reconciles / that time is the steady-state rate, the goal's figure. The reconcile counts and returns "await
//! change"; no API call is made after the initial LIST and WATCH.
//!
//! # Guarantees
//! * Engines alternate within each round (kcache, then kube-rs) over one simulator;
//!   the row's figures are medians over the rounds and its ratios the medians of
//!   the rounds' paired ratios.
//! * A phase that does not complete within the timeout fails the measurement; no
//!   partial figure is reported.
//! * With `verify`, every pod must have been reconciled exactly once in each phase.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use k8s_openapi::api::core::v1::Pod;
use kcache::controller::{Action as KcacheAction, Controller as KcacheController};
use kcache::typed::Capacity;
use kcache::{Informer, InformerConfig, KubeSource};
use kcache_loadgen::sim::SimHandle;
use kube::Api;
use kube::runtime::controller::{Action as KubeAction, Config as KubeConfig, Controller as KubeController};
use kube::runtime::watcher;

use super::rows::{Engines, ReconcileRow, ReconcileRun};

/// Pods on the simulator.
pub const PODS: usize = 10_000;

/// Why the measurement failed.
#[derive(Debug, thiserror::Error)]
#[error("reconcile throughput: {0}")]
pub struct ReconcileError(String);

fn err(e: impl std::fmt::Display) -> ReconcileError {
    ReconcileError(e.to_string())
}

/// What the no-op reconciles share: how many completed, a wake-up once a target
/// count is reached, and (when verifying) how often each pod was reconciled.
struct Counter {
    done: AtomicU64,
    target: AtomicU64,
    reached: tokio::sync::Notify,
    by_pod: Option<Mutex<HashMap<String, u32>>>,
}

impl Counter {
    fn new(verify: bool) -> Counter {
        Counter {
            done: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: tokio::sync::Notify::new(),
            by_pod: verify.then(|| Mutex::new(HashMap::new())),
        }
    }

    fn count(&self, pod: &Pod) {
        if let Some(by_pod) = &self.by_pod {
            let key = format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""));
            *by_pod.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key).or_default() += 1;
        }
        let n = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }

    /// Waits until `n` reconciles have completed in all.
    async fn wait_for(&self, n: u64, timeout: Duration) -> Result<(), ReconcileError> {
        self.target.store(n, Ordering::Release);
        let wait = async {
            // `notify_one` keeps a permit for a waiter yet to come, so a count that
            // reaches the target between the check and the wait still wakes it.
            while self.done.load(Ordering::Acquire) < n {
                self.reached.notified().await;
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            ReconcileError(format!("{} of {n} reconciles after {} s", self.done.load(Ordering::Acquire), timeout.as_secs()))
        })
    }

    /// Every one of `pods` pods was reconciled `times` times (when verifying).
    fn check(&self, pods: usize, times: u32) -> Result<(), ReconcileError> {
        let Some(by_pod) = &self.by_pod else { return Ok(()) };
        let by_pod = by_pod.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let wrong: Vec<(&String, &u32)> = by_pod.iter().filter(|&(_, &n)| n != times).take(3).collect();
        if by_pod.len() != pods || !wrong.is_empty() {
            return Err(ReconcileError(format!(
                "{} distinct pods reconciled, {pods} expected, each {times} times; e.g. {wrong:?}",
                by_pod.len()
            )));
        }
        Ok(())
    }
}

/// The two timed phases, once the controller has been started at `start`.
async fn phases(
    counter: &Counter,
    config: &ReconcileConfig,
    start: Instant,
    reconcile_all: &mpsc::UnboundedSender<()>,
) -> Result<ReconcileRun, ReconcileError> {
    let (pods, timeout) = (config.pods, config.timeout);
    let n = pods as u64;
    counter.wait_for(n, timeout).await?;
    let initial = start.elapsed();
    counter.check(pods, 1)?;
    let t = Instant::now();
    let triggers = config.reconcile_alls.max(1);
    for i in 1..=triggers {
        reconcile_all.unbounded_send(()).map_err(|_| ReconcileError("the controller stopped before the reconcile-all trigger".into()))?;
        counter.wait_for((u64::from(i) + 1) * n, timeout).await?;
        counter.check(pods, i + 1)?;
    }
    let all = t.elapsed();
    let reconciled = n * u64::from(triggers);
    Ok(ReconcileRun { initial_seconds: initial.as_secs_f64(), reconcile_all_per_s: reconciled as f64 / all.as_secs_f64().max(1e-9) })
}

/// One run of kcache's controller, with its default decoded-object cache or keeping
/// every decode.
async fn run_kcache(client: kube::Client, keep_every_decode: bool, config: &ReconcileConfig) -> Result<ReconcileRun, ReconcileError> {
    let (workers, timeout) = (config.workers, config.timeout);
    let counter = Arc::new(Counter::new(config.verify));
    let (trigger, triggers) = mpsc::unbounded::<()>();
    let (stop, stopped) = oneshot::channel::<()>();
    let start = Instant::now();
    let informer = Informer::spawn(KubeSource::for_type::<Pod>(client, None), InformerConfig::default()).map_err(err)?;
    let mut controller = KcacheController::<Pod>::new(&informer);
    if keep_every_decode {
        controller = controller.decoded_cache(Capacity::ShareOfStore { per: 1, min: 0 });
    }
    let controller = controller
        .workers(workers)
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        });
    let run = tokio::spawn(controller.run(
        |pod: Arc<Pod>, c: Arc<Counter>| async move {
            c.count(&pod);
            Ok::<_, Infallible>(KcacheAction::await_change())
        },
        |_: Arc<Pod>, e: &Infallible, _: Arc<Counter>| match *e {},
        Arc::clone(&counter),
    ));
    let measured = phases(&counter, config, start, &trigger).await;
    let _ = stop.send(());
    let stopped = tokio::time::timeout(timeout, run).await;
    informer.shutdown();
    let measured = measured?;
    stopped.map_err(|_| ReconcileError("kcache's controller did not stop".into()))?.map_err(err)?;
    Ok(measured)
}

/// One run of kube-rs's controller.
async fn run_kube_rs(client: kube::Client, config: &ReconcileConfig) -> Result<ReconcileRun, ReconcileError> {
    let (workers, timeout) = (config.workers, config.timeout);
    let counter = Arc::new(Counter::new(config.verify));
    let (trigger, triggers) = mpsc::unbounded::<()>();
    let (stop, stopped) = oneshot::channel::<()>();
    let start = Instant::now();
    let concurrency = u16::try_from(workers).unwrap_or(u16::MAX);
    let controller = KubeController::new(Api::<Pod>::all(client), watcher::Config::default())
        .with_config(KubeConfig::default().concurrency(concurrency))
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        });
    let run = tokio::spawn(
        controller
            .run(
                |pod: Arc<Pod>, c: Arc<Counter>| async move {
                    c.count(&pod);
                    Ok::<_, Infallible>(KubeAction::await_change())
                },
                |_: Arc<Pod>, e: &Infallible, _: Arc<Counter>| match *e {},
                Arc::clone(&counter),
            )
            .for_each(|_| futures::future::ready(())),
    );
    let measured = phases(&counter, config, start, &trigger).await;
    let _ = stop.send(());
    let stopped = tokio::time::timeout(timeout, run).await;
    let measured = measured?;
    stopped.map_err(|_| ReconcileError("kube-rs's controller did not stop".into()))?.map_err(err)?;
    Ok(measured)
}

/// Which controller a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    /// kcache's controller with its default decoded-object cache.
    Kcache,
    /// kcache's controller keeping every decoded object.
    KcacheKeepingDecodes,
    KubeRs,
}

/// One run of `engine` over `sim`'s pods, on a runtime of its own with `workers` threads.
fn run_engine(engine: Engine, sim: &SimHandle, config: &ReconcileConfig) -> Result<ReconcileRun, ReconcileError> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(config.workers).enable_all().build().map_err(err)?;
    rt.block_on(async {
        // The client's connection pool and request buffer live on the engine's runtime.
        let client = sim.client().map_err(err)?;
        match engine {
            Engine::Kcache => run_kcache(client, false, config).await,
            Engine::KcacheKeepingDecodes => run_kcache(client, true, config).await,
            Engine::KubeRs => run_kube_rs(client, config).await,
        }
    })
}

/// How a measurement is run.
#[derive(Clone, Copy, Debug)]
pub struct ReconcileConfig {
    /// Pods on the simulator.
    pub pods: usize,
    /// Rounds, each one run of each engine.
    pub rounds: usize,
    /// Concurrent reconciles of each controller, and threads of its runtime.
    pub workers: usize,
    /// Longest wait for each phase.
    pub timeout: Duration,
    /// Check that each phase reconciled every pod exactly once (costs a lock per reconcile).
    pub verify: bool,
    /// Reconcile-all triggers in the timed phase, one after the other (each waits for
    /// every pod's reconcile); the rate is over all of them.
    pub reconcile_alls: u32,
}

impl ReconcileConfig {
    /// The comparison's: [`PODS`] pods, one worker per core, 3 rounds of 5 reconcile-alls
    /// (1 of 1 with `quick`).
    pub fn new(quick: bool) -> ReconcileConfig {
        ReconcileConfig {
            pods: PODS,
            rounds: if quick { 1 } else { 3 },
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout: Duration::from_secs(600),
            verify: false,
            reconcile_alls: if quick { 1 } else { 5 },
        }
    }
}

/// Runs the rounds on a simulator preloaded with `config.pods` pods; each round's
/// figures per engine.
///
/// # Errors
/// When the simulator cannot start, a controller cannot start, a phase times out, or
/// (with `verify`) a pod was not reconciled exactly once per phase.
pub fn measure_rounds(config: &ReconcileConfig) -> Result<(Vec<Engines<ReconcileRun>>, Vec<ReconcileRun>), ReconcileError> {
    // The simulator serves from its own thread so each engine's runtime holds only the engine.
    let sim_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map_err(err)?;
    let sim = sim_rt.block_on(crate::simload::loaded_sim(config.pods)).map_err(err)?;
    let mut rounds = Vec::with_capacity(config.rounds);
    let mut kept = Vec::with_capacity(config.rounds);
    for _ in 0..config.rounds {
        let kcache = run_engine(Engine::Kcache, &sim, config)?;
        kept.push(run_engine(Engine::KcacheKeepingDecodes, &sim, config)?);
        let kube_rs = run_engine(Engine::KubeRs, &sim, config)?;
        rounds.push(Engines { kcache, kube_rs });
    }
    sim_rt.block_on(async move { drop(sim) });
    Ok((rounds, kept))
}

/// Measures the row: [`PODS`] pods, 3 rounds (1 with `quick`).
///
/// # Errors
/// As [`measure_rounds`].
pub fn measure(quick: bool) -> Result<ReconcileRow, ReconcileError> {
    let config = ReconcileConfig::new(quick);
    let (rounds, kept) = measure_rounds(&config)?;
    ReconcileRow::from_rounds(config.pods, config.workers, &rounds, &kept).ok_or_else(|| ReconcileError("no round".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_measurement_reconciles_every_pod_once_per_phase_in_both_engines() {
        let config = ReconcileConfig { pods: 200, rounds: 1, workers: 2, timeout: Duration::from_secs(120), verify: true, reconcile_alls: 2 };
        let (rounds, kept) = measure_rounds(&config).unwrap();
        assert_eq!((rounds.len(), kept.len()), (1, 1));
        for (engine, run) in rounds[0].named().into_iter().chain([("kcache keeping decodes", &kept[0])]) {
            assert!(run.initial_seconds > 0.0 && run.initial_seconds.is_finite(), "{engine}: {run:?}");
            assert!(run.reconcile_all_per_s > 0.0 && run.reconcile_all_per_s.is_finite(), "{engine}: {run:?}");
        }
        let row = ReconcileRow::from_rounds(200, 2, &rounds, &kept).unwrap();
        assert_eq!(row.ratio, Some(rounds[0].kcache.reconcile_all_per_s / rounds[0].kube_rs.reconcile_all_per_s));
        assert_eq!(row.kept_ratio, Some(kept[0].reconcile_all_per_s / rounds[0].kube_rs.reconcile_all_per_s));
    }

    /// The comparison's measurement at a chosen size, for a look at the figures:
    /// `RECONCILE_PODS=2000 RECONCILE_ROUNDS=3 cargo test --release -p kcache-bench
    /// reconcile_figures -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn reconcile_figures() {
        let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        let config = ReconcileConfig { pods: env("RECONCILE_PODS", PODS), rounds: env("RECONCILE_ROUNDS", 3), ..ReconcileConfig::new(false) };
        let (rounds, kept) = measure_rounds(&config).unwrap();
        for (r, k) in rounds.iter().zip(&kept) {
            eprintln!("round: {r:?}; kcache keeping decodes: {k:?}");
        }
        eprintln!("{:#?}", ReconcileRow::from_rounds(config.pods, config.workers, &rounds, &kept).unwrap());
    }

    /// One engine alone, round after round, for a profile of it:
    /// `RECONCILE_ENGINE=kept RECONCILE_ROUNDS=20 perf record -g -- <test binary>
    /// reconcile_one_engine --ignored --nocapture` (`kcache`, `kept` or `kube-rs`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn reconcile_one_engine() {
        let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        let engine = match std::env::var("RECONCILE_ENGINE").as_deref() {
            Ok("kube-rs") => Engine::KubeRs,
            Ok("kcache") => Engine::Kcache,
            _ => Engine::KcacheKeepingDecodes,
        };
        let config = ReconcileConfig {
            pods: env("RECONCILE_PODS", PODS),
            rounds: env("RECONCILE_ROUNDS", 3),
            reconcile_alls: u32::try_from(env("RECONCILE_ALLS", 20)).unwrap_or(20),
            ..ReconcileConfig::new(false)
        };
        let sim_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let sim = sim_rt.block_on(crate::simload::loaded_sim(config.pods)).unwrap();
        for _ in 0..config.rounds {
            let run = run_engine(engine, &sim, &config).unwrap();
            eprintln!("{engine:?}: {run:?}");
        }
        sim_rt.block_on(async move { drop(sim) });
    }
}
