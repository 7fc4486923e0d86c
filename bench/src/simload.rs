//! Load on the simulated API server alone: LIST latency of 10,000 realistic
//! pods and sustained writes with open watches. Shared by the `sim` criterion
//! bench and the comparison runner's simulator section.
//!
//! The load generator runs in the simulator's process, so CPU figures include
//! the client side: they bound the simulator's own cost from above.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kcache_loadgen::podgen::{self, PodGen};
use kcache_loadgen::sim::{Line, RawClient, SimHandle, SimServer};

/// Namespace the pods are loaded into.
pub const NAMESPACE: &str = "bench";
/// `Accept` header of a metadata-only LIST.
pub const META_ACCEPT: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// Why a simulator measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimLoadError {
    /// The simulator or a request to it failed.
    #[error("simulator: {0}")]
    Sim(String),
    /// The simulator answered a request with an unexpected status.
    #[error("simulator answered {what} with HTTP {status}")]
    Status {
        /// The request.
        what: &'static str,
        /// The status code.
        status: u16,
    },
}

fn sim_err(e: impl std::fmt::Display) -> SimLoadError {
    SimLoadError::Sim(e.to_string())
}

/// A simulator with `pods` realistic pods in [`NAMESPACE`], history and watch
/// buffers sized for 2,000 writes/s.
///
/// # Errors
/// When the simulator cannot start or load the pods.
pub async fn loaded_sim(pods: usize) -> Result<SimHandle, SimLoadError> {
    let sim = SimServer::builder().history(20_000).watch_buffer(16_384).start().await.map_err(sim_err)?;
    podgen::load_pods(&sim, NAMESPACE, pods, 42).map_err(sim_err)?;
    Ok(sim)
}

/// Path of the LIST of every pod in [`NAMESPACE`].
pub fn list_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/pods")
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

/// LIST latency over one keep-alive connection.
#[derive(Clone, Debug)]
pub struct ListTiming {
    /// Body bytes of one LIST.
    pub body_bytes: u64,
    /// Latency of each LIST, microseconds.
    pub latency_us: Histogram<u64>,
}

/// Times `n` LISTs of [`NAMESPACE`] (metadata-only when `metadata_only`).
///
/// # Errors
/// When a request fails or does not answer 200.
pub async fn time_lists(addr: SocketAddr, n: usize, metadata_only: bool) -> Result<ListTiming, SimLoadError> {
    let mut client = RawClient::connect(addr).await.map_err(sim_err)?;
    let headers: &[(&str, &str)] = if metadata_only { &[("accept", META_ACCEPT)] } else { &[] };
    let path = list_path();
    let mut latency_us = histogram();
    let mut body_bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = client.request("GET", &path, headers, "").await.map_err(sim_err)?;
        let _ = latency_us.record((t.elapsed().as_micros() as u64).max(1));
        if r.status != 200 {
            return Err(SimLoadError::Status { what: "LIST", status: r.status });
        }
        body_bytes = r.body.len() as u64;
    }
    Ok(ListTiming { body_bytes, latency_us })
}

/// User+system CPU time of this process (Linux /proc; zero elsewhere).
pub fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the comm field.
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// What one write phase did.
#[derive(Clone, Debug)]
pub struct WritePhase {
    /// Writes acknowledged with 200.
    pub writes: u64,
    /// Wall time.
    pub wall: Duration,
    /// Process CPU time over the phase (simulator, writers and watch readers).
    pub cpu: Duration,
    /// Write latency, microseconds.
    pub latency_us: Histogram<u64>,
    /// Watch events the watchers were owed (writes x watchers).
    pub events_expected: u64,
    /// Watch events they received before the drain deadline.
    pub events_received: u64,
    /// Watches the simulator closed because a watcher lagged.
    pub watches_closed_lagging: u64,
}

impl WritePhase {
    /// Acknowledged writes per second.
    pub fn rate(&self) -> f64 {
        self.writes as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Cores used on average.
    pub fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `writers` connections doing merge patches on the first `pods` pods,
/// each paced to `per_writer_rate` writes/s (`None`: as fast as possible), for `dur`.
async fn drive(
    addr: SocketAddr,
    pods: usize,
    writers: usize,
    per_writer_rate: Option<f64>,
    dur: Duration,
) -> Result<(u64, Histogram<u64>), SimLoadError> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(addr).await.map_err(sim_err)?;
            let mut hist = histogram();
            let mut ticker = per_writer_rate.map(|r| {
                let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            let mut n = 0u64;
            let deadline = Instant::now() + dur;
            while Instant::now() < deadline {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                let i = (w * 7919 + n as usize * 31) % pods.max(1);
                let path = format!("/api/v1/namespaces/{NAMESPACE}/pods/{}", PodGen::name(i));
                let body = format!(r#"{{"metadata":{{"annotations":{{"kcache/ts":"{n}"}}}}}}"#);
                let t0 = Instant::now();
                let r = c
                    .request("PATCH", &path, &[("content-type", "application/merge-patch+json")], body)
                    .await
                    .map_err(sim_err)?;
                if r.status != 200 {
                    return Err(SimLoadError::Status { what: "PATCH", status: r.status });
                }
                let _ = hist.record((t0.elapsed().as_micros() as u64).max(1));
                n += 1;
            }
            Ok((n, hist))
        }));
    }
    let mut latency = histogram();
    let mut writes = 0;
    for t in tasks {
        let (n, h) = t.await.map_err(sim_err)??;
        writes += n;
        let _ = latency.add(&h);
    }
    Ok((writes, latency))
}

/// Watch readers counting every non-bookmark event of every pod.
pub struct Watchers {
    received: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watchers {
    /// Opens `n` watches of all pods from the simulator's current resourceVersion.
    ///
    /// # Errors
    /// When a watch cannot be opened.
    pub async fn open(sim: &SimHandle, n: usize) -> Result<Watchers, SimLoadError> {
        let received = Arc::new(AtomicU64::new(0));
        let rv = sim.resource_version();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let path = format!("/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true");
            let mut s = RawClient::stream(sim.addr(), &path, &[]).await.map_err(sim_err)?;
            let received = Arc::clone(&received);
            tasks.push(tokio::spawn(async move {
                while let Line::Line(l) = s.next_line(Duration::from_secs(30)).await {
                    if !l.starts_with(br#"{"type":"BOOKMARK""#) {
                        received.fetch_add(1, Relaxed);
                    }
                }
            }));
        }
        Ok(Watchers { received, tasks })
    }

    /// Events received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    async fn drain_to(&self, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.received() < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Writes to the first `pods` pods with `writers` connections (paced at
/// `per_writer_rate` each, or flat out) for `dur`, then waits up to 10 s for
/// `watchers` to receive every event.
///
/// # Errors
/// When a write fails.
pub async fn write_phase(
    sim: &SimHandle,
    watchers: &Watchers,
    watcher_count: u64,
    pods: usize,
    writers: usize,
    per_writer_rate: Option<f64>,
    dur: Duration,
) -> Result<WritePhase, SimLoadError> {
    let before = watchers.received();
    let start = Instant::now();
    let cpu0 = cpu_time();
    let (writes, latency_us) = drive(sim.addr(), pods, writers, per_writer_rate, dur).await?;
    let wall = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    let events_expected = writes * watcher_count;
    watchers.drain_to(before + events_expected).await;
    Ok(WritePhase {
        writes,
        wall,
        cpu,
        latency_us,
        events_expected,
        events_received: watchers.received() - before,
        watches_closed_lagging: sim.stats().watches_closed_lagging,
    })
}

/// Every simulator figure the comparison reports.
#[derive(Clone, Debug)]
pub struct SimFigures {
    /// Pods loaded.
    pub pods: usize,
    /// Full LISTs of every pod.
    pub list: ListTiming,
    /// Metadata-only LISTs of every pod.
    pub list_metadata: ListTiming,
    /// 2,000 writes/s (8 connections x 250/s) with 3 watches.
    pub paced: WritePhase,
    /// Writes as fast as 16 connections go, with the same 3 watches.
    pub flat_out: WritePhase,
}

/// Measures the simulator: `lists` LISTs of `pods` pods (full and
/// metadata-only), 2,000 writes/s for `paced` with 3 watches, then flat out
/// for `flat`.
///
/// # Errors
/// When the simulator fails a request.
pub async fn measure(pods: usize, lists: usize, paced: Duration, flat: Duration) -> Result<SimFigures, SimLoadError> {
    let sim = loaded_sim(pods).await?;
    let list = time_lists(sim.addr(), lists, false).await?;
    let list_metadata = time_lists(sim.addr(), lists, true).await?;
    let watchers = Watchers::open(&sim, 3).await?;
    let paced = write_phase(&sim, &watchers, 3, pods, 8, Some(250.0), paced).await?;
    let flat_out = write_phase(&sim, &watchers, 3, pods, 16, None, flat).await?;
    drop(watchers);
    sim.shutdown().await;
    Ok(SimFigures { pods, list, list_metadata, paced, flat_out })
}
