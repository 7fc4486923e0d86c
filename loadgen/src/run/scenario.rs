//! The run itself ([`run`]): the steps the [module docs](super) list, in order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::config::{RunConfig, namespace_name};
use super::engines::{Engine, EngineSettings};
use super::error::RunError;
use super::reads::{self, CacheReads, ReadLoad};
use super::recorder::{self, Recorder};
use super::target::{Preload, Target, TargetKind};
use super::verify::{self, ServerSnapshot, Verdict};
use super::writer_process::{WritePlan, Writes};
use crate::procstat;
use crate::profile::Profiler;
use crate::report::{ApiCalls, Percentiles, Report};

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

/// Runs the whole scenario and returns its report.
pub async fn run(cfg: &RunConfig) -> Result<Report, RunError> {
    if cfg.replicas > 1 {
        return super::replicas::run(cfg).await;
    }
    let preload = if cfg.preload {
        if matches!(cfg.target, TargetKind::Kubeconfig { .. }) {
            return Err(RunError::PreloadNeedsSim);
        }
        Some(Preload { pods: cfg.pods, namespace: namespace_name(&cfg.run_id, 0), seed: cfg.seed })
    } else {
        None
    };
    let target = Target::start(&cfg.target, preload.as_ref()).await?;
    let client = target.client.clone();
    let selector = cfg.selector();
    let namespaces: Vec<String> = match &preload {
        Some(p) => vec![p.namespace.clone()],
        None => (0..cfg.namespaces.max(1)).map(|i| namespace_name(&cfg.run_id, i)).collect(),
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
        run_id: cfg.run_id.clone(),
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
        compress: cfg.compress,
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
    // Handlers may still be delivering the initial list (a channel's consumer,
    // a workqueue's workers): events at or below this version are not writes
    // of the write phase, by the run or anyone else.
    let start_rv = engine.max_resource_version();
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

    // 4. Convergence and verification (see [`verify`]): until the cache agrees
    // with the server at a version it has reached and every write of the run
    // reached the handlers, or the time is up.
    let converge_start = Instant::now();
    let (snapshot, verdict, cached, log) = loop {
        let at = recorder.max_resource_version();
        let snapshot = verify::server_snapshot(&client, &selector, at).await?;
        let cached = engine.snapshot();
        let verdict = check_cache(&client, &selector, &snapshot, &cached).await?;
        let log = recorder.log();
        let lost = verify::lost_writes(&stats, &log, &cached);
        if (verdict.matches() && lost == 0) || converge_start.elapsed() > converge_timeout(cfg.handler_cost, keys_written) {
            break (snapshot, verdict, cached, log);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let cache_matches_server = verdict.matches();
    if !cache_matches_server {
        tracing::warn!("the cache disagrees with the server at {}: {}", snapshot.at, verdict.disagreeing.join("; "));
    }
    let wire_bytes = snapshot.wire_bytes;
    let accounting = verify::account(&log, &stats, start_rv);
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
        events_received: accounting.writes_seen,
        events_lost: verify::lost_writes(&stats, &log, &cached),
        events_own: accounting.own_upsert_events + accounting.own_delete_events,
        events_own_timed: accounting.own_upsert_events,
        events_from_others: accounting.other_events,
        write_errors: stats.errors,
        cache_matches_server,
        verification: verification_note(&snapshot, &verdict),
        verified_at_resource_version: snapshot.at,
        event_latency_ms: Percentiles::from_histogram(&accounting.latency_us, 1000.0),
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
        store_uncompressed_bytes: engine.store_uncompressed_bytes(),
        compressed: cfg.compress && cfg.engine == super::engines::EngineKind::Kcache,
        wire_bytes,
        cpu_seconds,
        api_calls,
        handler_events: recorder.events.load(std::sync::atomic::Ordering::Relaxed),
        resync_events: recorder.resyncs.load(std::sync::atomic::Ordering::Relaxed),
        streaming_list: cfg.streaming_list,
        resync_seconds: cfg.resync.map_or(0.0, |d| d.as_secs_f64()),
        strip_managed_fields: cfg.strip_managed_fields,
        preload: cfg.preload,
        run_id: cfg.run_id.clone(),
        namespaces: namespaces.clone(),
        replicas: 1,
        rss_mb_after_sync_per_replica: vec![rss_after_sync as f64 / 1048576.0],
        store_bytes_per_replica: vec![engine.store_bytes()],
        ..Report::default()
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

/// Compares the cache with `snapshot` by [`verify`]'s rule, asking the server
/// (a plain LIST) about keys the snapshot has and the cache lacks.
async fn check_cache(
    client: &kube::Client,
    selector: &str,
    snapshot: &ServerSnapshot,
    cached: &[(String, String)],
) -> Result<Verdict, RunError> {
    let missing = verify::missing_from_cache(&snapshot.keys, cached);
    let now: HashSet<String> = if missing.is_empty() {
        HashSet::new()
    } else {
        verify::server_snapshot(client, selector, 0).await?.keys.into_iter().map(|(k, _)| k).collect()
    };
    Ok(verify::compare(snapshot.at, &snapshot.keys, cached, &|k| now.contains(k)))
}

/// What the verification compared, for the report.
fn verification_note(snapshot: &ServerSnapshot, verdict: &Verdict) -> String {
    let read = if snapshot.fell_back {
        format!("plain LIST at {} (the exact read was compacted: 410)", snapshot.at)
    } else {
        format!("exact LIST at {}", snapshot.at)
    };
    let mut note = format!(
        "{read}: {} same, {} newer in the cache, {} deleted after",
        verdict.same, verdict.newer_in_cache, verdict.deleted_after
    );
    if verdict.disagree > 0 {
        note.push_str(&format!(", {} disagree ({})", verdict.disagree, verdict.disagreeing.join("; ")));
    }
    note
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
        api.get_opt(name).await.map_err(|source| RunError::api("timing direct GETs", source))?;
        let _ = gets.record((t.elapsed().as_micros() as u64).max(1));
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for _ in 0..DIRECT_LISTS {
        let t = Instant::now();
        api.list(&ListParams::default()).await.map_err(|source| RunError::api("timing direct LISTs", source))?;
        let _ = lists.record((t.elapsed().as_micros() as u64).max(1));
    }
    Ok((gets, lists))
}
