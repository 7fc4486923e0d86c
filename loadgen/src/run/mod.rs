//! `loadgen run`: the main job. Creates pods, syncs an engine, drives writes,
//! verifies the cache against the server, and measures everything in the
//! [`Report`](crate::report::Report).
//!
//! # Steps
//! 1. Target: the simulated API server in a child process (`loadgen sim`, the
//!    default, so RSS and CPU figures are this process's alone), in-process, or a
//!    real cluster through a kubeconfig (guarded, see [`crate::guard`]).
//! 2. Create `--namespaces` namespaces and `--pods` realistic pods, labelled as
//!    this run's so that nothing else is touched (or, with `--preload`, let the
//!    simulator bulk-load them into one namespace; see [`RunConfig::preload`]).
//!    Pods are created, and writes driven, by a `loadgen write` child process
//!    by default ([`WriterKind`]), so this process holds the engine alone.
//! 3. Start the engine with the chosen handler style; time its sync. With
//!    `--profile NAME`, sample this process's stacks from here to the end of the
//!    write phase (see [`crate::profile`]).
//! 4. For `--duration`, write at `--write-qps`: 90% merge-patches stamping the
//!    send time, 5% creates, 5% deletes.
//! 5. Wait for the cache to converge; compare it with a LIST from the server
//!    (same keys, same resourceVersions) and check that every key's last write
//!    reached the handlers.
//! 6. Cache Get / List(namespace) are timed during the writes by `--readers`
//!    threads (see [`reads`]); direct GET / LIST after them.

mod engines;
mod raw_watch;
mod reads;
mod recorder;
mod target;
mod write_mix;
mod writer_process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

pub use engines::{CacheReader, Engine, EngineKind, EngineSettings, HandlerStyle};
pub use reads::{CacheReads, ReadLoad, key_in_hand};
pub use recorder::{Recorder, SENT_AT, SENT_AT_POINTER};
pub use target::{Connection, OWNED_LABEL, Preload, Target, TargetKind, cleanup_owned};
pub use write_mix::{WriteStats, Writer};
pub use writer_process::{WritePlan, WriterKind, WriterMessage, Writes, serve_child};

use crate::procstat;
use crate::profile::{ProfileError, Profiler};
use crate::report::{ApiCalls, Percentiles, Report};

/// The label every object of a run carries.
pub const RUN_LABEL: &str = "loadgen.kcache.io/run";

/// The label selector of a `--preload` run: every generated pod has an `app`
/// label ([`crate::podgen`]), but the simulator's bulk loader does not add
/// [`RUN_LABEL`], so the run selects on the label's existence instead.
pub const PRELOAD_SELECTOR: &str = "app";

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The target (simulator or cluster) could not be reached or started.
    #[error("could not set up the target: {0}")]
    Target(String),
    /// An API call the run depends on failed.
    #[error("api call failed while {during}")]
    Api {
        /// What the run was doing.
        during: &'static str,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The engine could not be started.
    #[error("could not start the engine")]
    Engine(#[from] kcache::InformerError),
    /// `--preload` needs a simulator target.
    #[error("--preload needs the simulator (it bulk-loads pods itself); it cannot preload a real cluster")]
    PreloadNeedsSim,
    /// The profiler could not be started or its output written.
    #[error("profiling failed")]
    Profile(#[from] ProfileError),
    /// The writer (a `loadgen write` child by default) failed.
    #[error("the writer failed: {0}")]
    Writer(String),
    /// The engine did not sync in time.
    #[error("{engine} did not sync {pods} pods within {timeout:?}")]
    SyncTimeout {
        /// Engine name.
        engine: &'static str,
        /// Pods expected.
        pods: usize,
        /// How long it was given.
        timeout: Duration,
    },
}

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
    /// `loadgen.kcache.io/run=true` ([`PRELOAD_SELECTOR`] with `preload`).
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
        }
    }
}

impl RunConfig {
    /// The label selector the engine and the verification use.
    pub fn selector(&self) -> String {
        match &self.label_selector {
            Some(s) => s.clone(),
            None if self.preload => PRELOAD_SELECTOR.to_owned(),
            None => format!("{RUN_LABEL}=true"),
        }
    }
}

fn spinner(enabled: bool, len: u64, msg: &'static str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// Namespace `i` of a run.
pub fn namespace_name(i: usize) -> String {
    format!("loadgen-{i}")
}

/// Runs the whole scenario and returns its report.
pub async fn run(cfg: &RunConfig) -> Result<Report, RunError> {
    let preload = if cfg.preload {
        if matches!(cfg.target, TargetKind::Kubeconfig { .. }) {
            return Err(RunError::PreloadNeedsSim);
        }
        Some(Preload { pods: cfg.pods, namespace: namespace_name(0), seed: cfg.seed })
    } else {
        None
    };
    let target = Target::start(&cfg.target, preload.as_ref()).await?;
    let client = target.client.clone();
    let selector = cfg.selector();
    let namespaces: Vec<String> = match &preload {
        Some(p) => vec![p.namespace.clone()],
        None => (0..cfg.namespaces.max(1)).map(namespace_name).collect(),
    };

    // 1. Namespaces and pods.
    let plan = WritePlan {
        namespaces: namespaces.clone(),
        pods: cfg.pods,
        seed: cfg.seed,
        preloaded: preload.is_some(),
        write_qps: cfg.write_qps,
        duration: cfg.duration,
        selector: selector.clone(),
    };
    let bar = spinner(cfg.progress && preload.is_none(), cfg.pods as u64, "creating pods");
    let writes = Writes::prepare(cfg.writer, &client, &target.connection, plan, &bar).await?;
    bar.finish_and_clear();

    // 2. Engine sync. The peak-RSS mark is reset first so that the engine's
    // peak excludes the pods this process built to create them.
    let recorder = Arc::new(Recorder::with_handler_cost(cfg.handler_cost));
    let settings = EngineSettings {
        label_selector: selector.clone(),
        handler: cfg.handler,
        shards: cfg.shards,
        strip_managed_fields: cfg.strip_managed_fields,
        streaming_list: cfg.streaming_list,
        resync: cfg.resync,
    };
    if !reset_peak_rss() {
        tracing::debug!("cannot reset the peak RSS mark; the engine's peak includes pod creation");
    }
    let rss_before_engine = procstat::rss_bytes().unwrap_or(0);
    let stats_before = sim_stats(&client, &cfg.target).await;
    let profiler = match &cfg.profile {
        Some(_) => Some(Profiler::start(cfg.profile_hz)?),
        None => None,
    };
    let cpu_before = procstat::cpu_seconds().unwrap_or(0.0);
    let sync_start = Instant::now();
    let engine = Engine::start(cfg.engine, client.clone(), &settings, Arc::clone(&recorder))?;
    let timeout = Duration::from_secs(120 + cfg.pods as u64 / 500);
    if !engine.wait_synced(timeout).await {
        return Err(RunError::SyncTimeout { engine: cfg.engine.as_str(), pods: cfg.pods, timeout });
    }
    let sync_seconds = sync_start.elapsed().as_secs_f64();
    let rss_after_sync = procstat::rss_bytes().unwrap_or(0);

    // 3. Writes, sampling RSS once a second, with the cache readers beside them.
    let read_load = cfg.read_timings.then(|| {
        let cached = engine.snapshot();
        let namespace = biggest_namespace(&cached);
        let keys: Arc<[String]> = cached.into_iter().map(|(k, _)| k).collect();
        let load = ReadLoad::start(&engine.reader(), Arc::clone(&keys), namespace.as_str().into(), cfg.readers);
        (load, keys, namespace)
    });
    let bar = spinner(cfg.progress, cfg.duration.as_secs().max(1), "writing");
    recorder.start_at(recorder::now_nanos());
    let timeline = Arc::new(std::sync::Mutex::new(Vec::new()));
    // No write phase, no timeline: a sampler's immediate first tick would
    // otherwise race the phase's end and leave one stray sample.
    let sampler = (!cfg.duration.is_zero()).then(|| {
        let timeline = Arc::clone(&timeline);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let mb = procstat::rss_bytes().unwrap_or(0) as f64 / 1048576.0;
                timeline.lock().unwrap_or_else(|p| p.into_inner()).push(mb);
            }
        })
    });
    let stats = writes.drive(&bar).await;
    // The readers stop with the writes (after their minimum of samples), even
    // when the writes failed, so no thread outlives the run.
    let reads = match read_load {
        Some((load, keys, namespace)) => {
            let timings = tokio::task::spawn_blocking(move || load.finish()).await.unwrap_or_else(|e| {
                tracing::warn!("collecting the cache read timings failed: {e}");
                CacheReads::empty()
            });
            Some((timings, keys, namespace))
        }
        None => None,
    };
    let stats = stats?;
    let keys_written = cfg.pods + stats.creates as usize;
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    let rss_timeline = std::mem::take(&mut *timeline.lock().unwrap_or_else(|p| p.into_inner()));
    bar.finish_and_clear();
    let rss_peak_engine = procstat::peak_rss_bytes().unwrap_or(0);
    let stats_after = sim_stats(&client, &cfg.target).await;
    if let (Some(profiler), Some(stem)) = (profiler, &cfg.profile) {
        profiler.finish(stem)?;
    }

    // 4. Convergence and verification.
    let lp = ListParams::default().labels(&selector);
    let converge_start = Instant::now();
    let (server, wire_bytes) = loop {
        let (server, wire_bytes) = server_snapshot(&client, &lp).await?;
        if engine.snapshot() == server || converge_start.elapsed() > converge_timeout(cfg.handler_cost, keys_written) {
            break (server, wire_bytes);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let cached = engine.snapshot();
    let cache_matches_server = cached == server;
    let cpu_seconds = procstat::cpu_seconds().unwrap_or(0.0) - cpu_before;

    // 5. Read latencies.
    let (cache_reads, direct_get, direct_list) = match reads {
        Some((cache_reads, keys, namespace)) => {
            let (direct_get, direct_list) = time_direct(&client, &keys, &namespace).await?;
            (cache_reads, direct_get, direct_list)
        }
        None => (CacheReads::empty(), reads::histogram(), reads::histogram()),
    };
    let api_calls = match (stats_before, stats_after) {
        (Some(a), Some(b)) => Some(ApiCalls {
            list: b.list.saturating_sub(a.list),
            watch: b.watch.saturating_sub(a.watch),
            get: b.get.saturating_sub(a.get),
        }),
        _ => None,
    };

    let events_received = recorder.stamped_events.load(std::sync::atomic::Ordering::Relaxed)
        + recorder.deletes.load(std::sync::atomic::Ordering::Relaxed);
    let events_expected = stats.acknowledged();
    let report = Report {
        engine: cfg.engine.as_str().to_owned(),
        handler: cfg.handler.as_str().to_owned(),
        handler_cost_us: cfg.handler_cost.as_micros() as u64,
        writer: cfg.writer.as_str().to_owned(),
        pods: cfg.pods as u64,
        write_qps_target: cfg.write_qps,
        write_qps_achieved: stats.acknowledged() as f64 / stats.elapsed.as_secs_f64().max(1e-9),
        duration_seconds: stats.elapsed.as_secs_f64(),
        sync_seconds,
        events_expected,
        events_received,
        events_lost: lost_writes(&stats, &cached),
        cache_matches_server,
        event_latency_ms: Percentiles::from_histogram(&recorder.latency(), 1000.0),
        wire_event_latency_ms: stats.wire_latency_ms,
        readers: if cfg.read_timings { cfg.readers as u64 } else { 0 },
        cache_get_ns: Percentiles::from_histogram(&cache_reads.gets, 1.0),
        cache_get_hit_rate: cache_reads.hit_rate(),
        cache_list_1000_ns: Percentiles::from_histogram(&cache_reads.lists, 1.0),
        direct_get_ms: Percentiles::from_histogram(&direct_get, 1000.0),
        direct_list_1000_ms: Percentiles::from_histogram(&direct_list, 1000.0),
        rss_mb_before_engine: rss_before_engine as f64 / 1048576.0,
        rss_mb_after_sync: rss_after_sync as f64 / 1048576.0,
        rss_mb_peak: procstat::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0,
        rss_mb_peak_engine: rss_peak_engine as f64 / 1048576.0,
        rss_mb_timeline: rss_timeline,
        store_bytes: engine.store_bytes(),
        wire_bytes,
        cpu_seconds,
        api_calls,
        handler_events: recorder.events.load(std::sync::atomic::Ordering::Relaxed),
        resync_events: recorder.resyncs.load(std::sync::atomic::Ordering::Relaxed),
        streaming_list: cfg.streaming_list,
        resync_seconds: cfg.resync.map_or(0.0, |d| d.as_secs_f64()),
        strip_managed_fields: cfg.strip_managed_fields,
        preload: cfg.preload,
    };
    engine.shutdown();
    target.cleanup(&namespaces).await;
    Ok(report)
}

/// How long the cache may take to catch up after the last write: a minute,
/// plus, for a handler slowed by `--handler-cost-us`, the time to drain the
/// coalesced backlog (at most two deltas per key, on one thread at worst),
/// capped at four minutes so a hopeless backlog ends the run.
fn converge_timeout(handler_cost: Duration, keys: usize) -> Duration {
    let drain = handler_cost.saturating_mul(u32::try_from(2 * keys).unwrap_or(u32::MAX));
    (Duration::from_secs(60) + drain).min(Duration::from_secs(240))
}

/// Resets this process's peak-RSS mark (`VmHWM`) to its current RSS by writing
/// `5` to `/proc/self/clear_refs` (Linux 4.0+, see proc(5)); whether it worked.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// The simulator's request counters (`GET /_sim/stats`); `None` for a real cluster
/// or when the endpoint does not answer.
async fn sim_stats(client: &kube::Client, target: &TargetKind) -> Option<crate::sim::Stats> {
    if matches!(target, TargetKind::Kubeconfig { .. }) {
        return None;
    }
    let req = http::Request::get("/_sim/stats").body(Vec::new()).ok()?;
    client.request::<crate::sim::Stats>(req).await.ok()
}

/// Writes whose effect never reached the cache: for each key, the last
/// acknowledged write must be what the cache holds (its resourceVersion or,
/// for a delete, absence). Coalescing may skip intermediate states; it may not
/// skip the last one.
fn lost_writes(stats: &WriteStats, cached: &[(String, String)]) -> u64 {
    let cached: HashMap<&str, &str> = cached.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    stats
        .last_write
        .iter()
        .filter(|(key, rv)| match rv {
            Some(rv) => cached.get(key.as_str()).is_none_or(|c| c.parse::<u64>().ok() < rv.parse::<u64>().ok()),
            None => cached.contains_key(key.as_str()),
        })
        .count() as u64
}

/// Key and resourceVersion of every item of a LIST body, and nothing else: the
/// verification must not decode 100,000 typed pods to compare two key sets.
#[derive(serde::Deserialize)]
struct KeyList {
    items: Vec<KeyItem>,
}

/// One object's key and resourceVersion: a LIST item, or the answer to a write
/// ([`write_mix`], which must not decode 2,000 typed pods a second either). `name`
/// may be absent because a DELETE may answer with a Status.
#[derive(serde::Deserialize)]
struct KeyItem {
    metadata: KeyMeta,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyMeta {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource_version: String,
}

/// The server's `(namespace/name, resourceVersion)` pairs, sorted, and the size
/// of the LIST body that carried them (the pods' wire bytes plus a ~100-byte envelope).
async fn server_snapshot(client: &kube::Client, lp: &ListParams) -> Result<(Vec<(String, String)>, u64), RunError> {
    let during = "listing pods to verify the cache";
    let req = kube::core::Request::new("/api/v1/pods")
        .list(lp)
        .map_err(|e| RunError::Api { during, source: kube::Error::BuildRequest(e) })?;
    let body = client.request_text(req).await.map_err(|source| RunError::Api { during, source })?;
    let list: KeyList = serde_json::from_str(&body).map_err(|e| RunError::Api { during, source: kube::Error::SerdeError(e) })?;
    let mut out: Vec<(String, String)> = list
        .items
        .into_iter()
        .map(|i| (format!("{}/{}", i.metadata.namespace.as_deref().unwrap_or(""), i.metadata.name), i.metadata.resource_version))
        .collect();
    out.sort();
    Ok((out, body.len() as u64))
}

fn biggest_namespace(keys: &[(String, String)]) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (k, _) in keys {
        *counts.entry(k.split('/').next().unwrap_or("")).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(ns, _)| ns.to_owned()).unwrap_or_default()
}

/// Direct GETs timed at the end of a run.
const DIRECT_GETS: usize = 1_000;
/// Direct LISTs of the biggest namespace timed at the end of a run.
const DIRECT_LISTS: usize = 100;

async fn time_direct(
    client: &kube::Client,
    keys: &[String],
    namespace: &str,
) -> Result<(Histogram<u64>, Histogram<u64>), RunError> {
    let mut gets = reads::histogram();
    let mut lists = reads::histogram();
    for key in keys.iter().cycle().step_by((keys.len() / DIRECT_GETS).max(1)).take(DIRECT_GETS.min(keys.len() * 8)) {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let t = Instant::now();
        api.get_opt(name).await.map_err(|source| RunError::Api { during: "timing direct GETs", source })?;
        let _ = gets.record((t.elapsed().as_micros() as u64).max(1));
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for _ in 0..DIRECT_LISTS {
        let t = Instant::now();
        api.list(&ListParams::default()).await.map_err(|source| RunError::Api { during: "timing direct LISTs", source })?;
        let _ = lists.record((t.elapsed().as_micros() as u64).max(1));
    }
    Ok((gets, lists))
}
