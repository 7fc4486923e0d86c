//! Simulated API server throughput: (a) LIST of 10,000 realistic pods over HTTP,
//! (b) sustained writes at 2,000 updates/s with 3 watchers reading everything,
//! then flat-out writes to show the headroom.
//!
//! Run: `cargo bench -p kcache-bench --bench sim -- --warm-up-time 1 --measurement-time 3`.
//! The load generator shares the process with the simulator, so CPU figures and
//! the flat-out rate include the client side: they bound the sim's own cost from above.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use hdrhistogram::Histogram;
use kcache_loadgen::podgen::{self, PodGen};
use kcache_loadgen::sim::{Line, RawClient, SimHandle, SimServer};
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PODS: usize = 10_000;
const NS: &str = "bench";
const META_ACCEPT: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

async fn loaded_sim() -> SimHandle {
    let sim = SimServer::builder().history(20_000).watch_buffer(16_384).start().await.expect("sim starts");
    podgen::load_pods(&sim, NS, PODS, 42).expect("load pods");
    sim
}

fn bench_list(c: &mut Criterion, rt: &Runtime) {
    let sim = rt.block_on(loaded_sim());
    let mut client = rt.block_on(RawClient::connect(sim.addr())).expect("connect");
    let path = format!("/api/v1/namespaces/{NS}/pods");
    let full_len = rt.block_on(client.get(&path)).expect("list").body.len() as u64;
    let meta_len = rt.block_on(client.request("GET", &path, &[("accept", META_ACCEPT)], "")).expect("list").body.len() as u64;
    eprintln!("sim LIST body: {full_len} bytes full, {meta_len} bytes metadata-only, {PODS} pods");

    let mut g = c.benchmark_group("sim_list_10k_pods");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(full_len));
    g.bench_function("full", |b| {
        b.iter(|| {
            let r = rt.block_on(client.get(&path)).expect("list");
            assert_eq!(r.status, 200);
            r.body.len()
        });
    });
    g.throughput(Throughput::Bytes(meta_len));
    g.bench_function("metadata_only", |b| {
        b.iter(|| rt.block_on(client.request("GET", &path, &[("accept", META_ACCEPT)], "")).expect("list").body.len());
    });
    g.finish();
    drop(sim);
}

/// User+system CPU time of this process (Linux /proc; zero elsewhere).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the comm field.
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

struct Phase {
    writes: u64,
    wall: Duration,
    cpu: Duration,
    latency: Histogram<u64>,
}

/// Runs `writers` connections doing merge patches, each paced to `per_writer_rate`
/// writes/s (None: as fast as possible), for `dur`.
async fn drive(sim: &SimHandle, writers: usize, per_writer_rate: Option<f64>, dur: Duration) -> Phase {
    let start = Instant::now();
    let cpu0 = cpu_time();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let addr = sim.addr();
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(addr).await.expect("connect");
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
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
                let i = (w * 7919 + n as usize * 31) % PODS;
                let path = format!("/api/v1/namespaces/{NS}/pods/{}", PodGen::name(i));
                let body = format!(r#"{{"metadata":{{"annotations":{{"kcache/ts":"{}"}}}}}}"#, n);
                let t0 = Instant::now();
                let r = c.request("PATCH", &path, &[("content-type", "application/merge-patch+json")], body).await.expect("patch");
                assert_eq!(r.status, 200);
                let _ = hist.record(t0.elapsed().as_micros() as u64);
                n += 1;
            }
            (n, hist)
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut writes = 0;
    for t in tasks {
        let (n, h) = t.await.expect("writer");
        writes += n;
        latency.add(&h).expect("same bounds");
    }
    Phase { writes, wall: start.elapsed(), cpu: cpu_time().saturating_sub(cpu0), latency }
}

fn report(name: &str, p: &Phase) {
    let rate = p.writes as f64 / p.wall.as_secs_f64();
    println!(
        "{name}: {} writes in {:.2}s = {rate:.0} writes/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; process CPU {:.2} cores ({:.0}% of 2)",
        p.writes,
        p.wall.as_secs_f64(),
        p.latency.value_at_quantile(0.50) as f64 / 1000.0,
        p.latency.value_at_quantile(0.99) as f64 / 1000.0,
        p.latency.max() as f64 / 1000.0,
        p.cpu.as_secs_f64() / p.wall.as_secs_f64(),
        p.cpu.as_secs_f64() / p.wall.as_secs_f64() * 50.0,
    );
}

fn sustained_writes(rt: &Runtime) {
    rt.block_on(async {
        let sim = loaded_sim().await;
        let received = Arc::new(AtomicU64::new(0));
        let rv = sim.resource_version();
        let mut watchers = Vec::new();
        for _ in 0..3 {
            let mut s = RawClient::stream(sim.addr(), &format!("/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"), &[]).await.expect("watch");
            let received = received.clone();
            watchers.push(tokio::spawn(async move {
                loop {
                    match s.next_line(Duration::from_secs(30)).await {
                        Line::Line(l) => {
                            if !l.starts_with(br#"{"type":"BOOKMARK""#) {
                                received.fetch_add(1, Relaxed);
                            }
                        }
                        _ => return,
                    }
                }
            }));
        }
        // 2,000 writes/s: 8 connections at 250/s each, for 4 s.
        let paced = drive(&sim, 8, Some(250.0), Duration::from_secs(4)).await;
        let want = paced.writes * 3;
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.load(Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        report("sim sustained 2000 writes/s target, 3 watchers", &paced);
        println!("  watchers received {} of {} events; lagging closes: {}", received.load(Relaxed), want, sim.stats().watches_closed_lagging);

        let flat = drive(&sim, 16, None, Duration::from_secs(3)).await;
        let want = want + flat.writes * 3;
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.load(Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        report("sim flat-out writes (16 connections), 3 watchers", &flat);
        println!("  watchers received {} of {} events; lagging closes: {}", received.load(Relaxed), want, sim.stats().watches_closed_lagging);
        for w in watchers {
            w.abort();
        }
        sim.shutdown().await;
    });
}

fn main() {
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();
    bench_list(&mut c, &rt);
    sustained_writes(&rt);
    c.final_summary();
}
