//! Simulated API server throughput: (a) LIST of 10,000 realistic pods over HTTP,
//! (b) sustained writes at 2,000 updates/s with 3 watchers reading everything,
//! then flat-out writes to show the headroom; (c) one merge patch at a time,
//! the per-write cost that every event-latency figure includes. The load code lives in
//! [`kcache_bench::simload`], which the comparison runner also uses for the
//! simulator section of docs/RESULTS.md.
//!
//! Run: `cargo bench -p kcache-bench --bench sim -- --warm-up-time 1 --measurement-time 3`.
//! The load generator shares the process with the simulator, so CPU figures and
//! the flat-out rate include the client side: they bound the sim's own cost from above.
#![forbid(unsafe_code)]

use std::time::Duration;

use criterion::{Criterion, Throughput};
use kcache_bench::simload::{self, META_ACCEPT, WritePhase};
use kcache_loadgen::podgen::PodGen;
use kcache_loadgen::sim::RawClient;
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PODS: usize = 10_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn bench_list(c: &mut Criterion, rt: &Runtime) {
    let sim = rt.block_on(simload::loaded_sim(PODS)).expect("sim starts");
    let mut client = rt.block_on(RawClient::connect(sim.addr())).expect("connect");
    let path = simload::list_path();
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

/// One merge patch of one annotation over a keep-alive connection, answered
/// before the next is sent: the simulator's per-write cost (parse, patch,
/// serialise, commit, respond), which every event-latency figure includes.
fn bench_patch(c: &mut Criterion, rt: &Runtime) {
    let sim = rt.block_on(simload::loaded_sim(PODS)).expect("sim starts");
    let mut client = rt.block_on(RawClient::connect(sim.addr())).expect("connect");
    let mut g = c.benchmark_group("sim_write");
    g.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    g.bench_function("merge_patch_annotation", |b| {
        b.iter(|| {
            n += 1;
            let path = format!("{}/{}", simload::list_path(), PodGen::name(n * 7919 % PODS));
            let body = format!(r#"{{"metadata":{{"annotations":{{"bench/n":"{n}"}}}}}}"#);
            let r = rt
                .block_on(client.request("PATCH", &path, &[("content-type", "application/merge-patch+json")], body))
                .expect("patch");
            assert_eq!(r.status, 200);
            r.body.len()
        });
    });
    g.finish();
    drop(sim);
}

fn report(name: &str, p: &WritePhase) {
    println!(
        "{name}: {} writes in {:.2}s = {:.0} writes/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; process CPU {:.2} cores ({:.0}% of 2)",
        p.writes,
        p.wall.as_secs_f64(),
        p.rate(),
        p.latency_us.value_at_quantile(0.50) as f64 / 1000.0,
        p.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
        p.latency_us.max() as f64 / 1000.0,
        p.cores(),
        p.cores() * 50.0,
    );
    println!(
        "  watchers received {} of {} events; lagging closes: {}",
        p.events_received, p.events_expected, p.watches_closed_lagging
    );
}

fn sustained_writes(rt: &Runtime) {
    rt.block_on(async {
        let sim = simload::loaded_sim(PODS).await.expect("sim starts");
        let watchers = simload::Watchers::open(&sim, 3).await.expect("watch");
        // 2,000 writes/s: 8 connections at 250/s each, for 4 s.
        let paced = simload::write_phase(&sim, &watchers, 3, PODS, 8, Some(250.0), Duration::from_secs(4)).await.expect("writes");
        report("sim sustained 2000 writes/s target, 3 watchers", &paced);
        let flat = simload::write_phase(&sim, &watchers, 3, PODS, 16, None, Duration::from_secs(3)).await.expect("writes");
        report("sim flat-out writes (16 connections), 3 watchers", &flat);
        drop(watchers);
        sim.shutdown().await;
    });
}

fn main() {
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();
    bench_list(&mut c, &rt);
    bench_patch(&mut c, &rt);
    sustained_writes(&rt);
    c.final_summary();
}
