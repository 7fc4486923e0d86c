//! Store benches: get-by-key latency under writes, index snapshot take/iterate, and
//! index update cost as one bucket grows from 1k to 100k members.
#![forbid(unsafe_code)]
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use kcache::object::testing::pod;
use kcache::store::{StoreConfig, store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PODS: usize = 10_000;

fn pods(ns_count: usize, n: usize, rv: u64) -> Vec<kcache::Obj> {
    (0..n).map(|i| pod(&format!("ns-{}", i % ns_count), &format!("pod-{i}"), &rv.to_string(), &[("app", "web"), ("pod-template-hash", "abc")])).collect()
}

fn print_hist(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: n={} p50={} ns p90={} ns p99={} ns p99.9={} ns max={} ns",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

/// How a reader thread times its gets.
#[derive(Clone, Copy, PartialEq)]
enum Probe {
    /// One `get_by_key` between two `Instant::now()` calls: includes the timer's own
    /// cost (printed by `TimerOnly`).
    Single,
    /// Two `Instant::now()` calls around nothing: the floor of `Single`.
    TimerOnly,
    /// 16 gets between two timer calls, recorded as the mean per get: the timer's cost
    /// is amortized, and a tail sample means 16 slow gets, not one.
    Batch16,
    /// Bursts of 64 single timings with 1 ms pauses, as `loadgen run`'s readers:
    /// the first Get after a pause finds its cache lines cold.
    Bursts,
}

/// Latency of reads on 2 reader threads while a writer applies 2,000 updates/s.
fn get_latency_under_writes(probe: Probe) {
    let (reader, mut writer) = store(StoreConfig::default().shards(2));
    for p in pods(10, PODS, 1) {
        writer.upsert(p);
    }
    let keys: Arc<Vec<String>> = Arc::new((0..PODS).map(|i| format!("ns-{}/pod-{i}", i % 10)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let w_stop = Arc::clone(&stop);
    let wthread = std::thread::spawn(move || {
        // 2 updates per millisecond = 2,000/s, paced against the clock.
        let start = Instant::now();
        let mut done = 0u64;
        let mut rv = 2u64;
        while !w_stop.load(Ordering::Relaxed) {
            let due = start.elapsed().as_millis() as u64 * 2;
            while done < due {
                let i = (done as usize * 7919) % PODS;
                writer.upsert(pod(&format!("ns-{}", i % 10), &format!("pod-{i}"), &rv.to_string(), &[("app", "web"), ("pod-template-hash", "abc")]));
                done += 1;
                rv += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        done
    });
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (reader, keys) = (reader.clone(), Arc::clone(&keys));
            std::thread::spawn(move || {
                let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("valid bounds");
                let deadline = Instant::now() + Duration::from_secs(2);
                let mut i = t * 31;
                while Instant::now() < deadline {
                    let burst = if probe == Probe::Bursts { 64 } else { 1000 };
                    for _ in 0..burst {
                        let dt = match probe {
                            Probe::Single | Probe::Bursts => {
                                i = (i + 7) % PODS;
                                let t0 = Instant::now();
                                let o = reader.get_by_key(&keys[i]);
                                let dt = t0.elapsed().as_nanos() as u64;
                                black_box(o);
                                dt
                            }
                            Probe::TimerOnly => {
                                let t0 = Instant::now();
                                black_box(&keys);
                                t0.elapsed().as_nanos() as u64
                            }
                            Probe::Batch16 => {
                                let t0 = Instant::now();
                                for _ in 0..16 {
                                    i = (i + 7) % PODS;
                                    black_box(reader.get_by_key(&keys[i]));
                                }
                                t0.elapsed().as_nanos() as u64 / 16
                            }
                        };
                        h.saturating_record(dt.max(1));
                    }
                    if probe == Probe::Bursts {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                h
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("valid bounds");
    for r in readers {
        all.add(r.join().expect("reader")).expect("same bounds");
    }
    stop.store(true, Ordering::Relaxed);
    let writes = wthread.join().expect("writer");
    let what = match probe {
        Probe::Single => "get_by_key, one call per timing",
        Probe::TimerOnly => "timer alone (Instant::now() pair)",
        Probe::Batch16 => "get_by_key, mean of 16 calls per timing",
        Probe::Bursts => "get_by_key, bursts of 64 timings with 1 ms pauses",
    };
    print_hist(&format!("{what}, under {writes} writes in ~2 s, 2 readers"), &all);
}

/// Time to take a snapshot of a 1,000-pod namespace, as a distribution.
fn snapshot_latency() {
    let (reader, mut writer) = store(StoreConfig::default().shards(2));
    for p in pods(10, PODS, 1) {
        writer.upsert(p);
    }
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("valid bounds");
    for _ in 0..200_000 {
        let t0 = Instant::now();
        let s = reader.index("namespace", "ns-3").expect("index");
        let dt = t0.elapsed().as_nanos() as u64;
        assert_eq!(s.len(), 1000);
        black_box(s);
        h.saturating_record(dt.max(1));
    }
    print_hist("index(namespace) snapshot take, 1,000 members", &h);
}

/// Per-update cost as one bucket grows, measured as batches of 2,000 re-applies: the
/// minimum batch mean is the least disturbed by other load on a shared machine, the
/// median shows the typical cost. Printed next to the same loop with no index.
fn index_update_curve() {
    for indexed in [false, true] {
        for n in [1_000usize, 10_000, 100_000] {
            let cfg = StoreConfig::default().shards(1);
            let (_r, w) = store(if indexed { cfg } else { cfg.without_builtin_indexes() });
            let (_barrier, mut shards) = w.into_parts();
            let shard = &mut shards[0];
            let objs = pods(1, n, 1);
            for o in &objs {
                shard.upsert(o.clone()).expect("one shard owns every key");
            }
            let next = pods(1, n, 2);
            let mut j = 0usize;
            let mut means: Vec<f64> = (0..150)
                .map(|_| {
                    let t0 = Instant::now();
                    for _ in 0..2_000 {
                        j = (j + 7919) % n;
                        let o = if j.is_multiple_of(2) { &next[j] } else { &objs[j] };
                        black_box(shard.upsert(o.clone()).expect("one shard"));
                    }
                    t0.elapsed().as_nanos() as f64 / 2_000.0
                })
                .collect();
            means.sort_by(f64::total_cmp);
            println!(
                "update curve: {} n={n}: min {:.0} ns, median {:.0} ns per upsert",
                if indexed { "3 indexes" } else { "no index " },
                means[0],
                means[means.len() / 2]
            );
        }
    }
}

fn benches(c: &mut Criterion) {
    if std::env::var_os("KCACHE_BENCH_CURVE").is_some() {
        index_update_curve();
    }
    for probe in [Probe::TimerOnly, Probe::Single, Probe::Batch16, Probe::Bursts] {
        get_latency_under_writes(probe);
    }
    snapshot_latency();

    let (reader, mut writer) = store(StoreConfig::default().shards(2));
    for p in pods(10, PODS, 1) {
        writer.upsert(p);
    }
    let keys: Vec<String> = (0..PODS).map(|i| format!("ns-{}/pod-{i}", i % 10)).collect();
    let mut i = 0;
    c.bench_function("store/get_by_key", |b| {
        b.iter(|| {
            i = (i + 7) % PODS;
            black_box(reader.get_by_key(&keys[i]))
        })
    });
    c.bench_function("store/index_snapshot_take_1000", |b| b.iter(|| black_box(reader.index("namespace", "ns-3").expect("index"))));
    let snap = reader.index("namespace", "ns-3").expect("index");
    let mut g = c.benchmark_group("store/index_snapshot_iterate");
    g.throughput(Throughput::Elements(snap.len() as u64));
    g.bench_function("1000", |b| b.iter(|| snap.iter().map(|o| o.json().len()).sum::<usize>()));
    g.finish();

    // Baseline for the curve below: the same re-apply with no index at all (primary
    // map only), so the index share can be told apart from cache effects of a bigger
    // working set.
    let mut g = c.benchmark_group("store/upsert_no_index");
    for n in [1_000usize, 10_000, 100_000] {
        let (_r, w) = store(StoreConfig::default().shards(1).without_builtin_indexes());
        let (_barrier, mut shards) = w.into_parts();
        let shard = &mut shards[0];
        let objs = pods(1, n, 1);
        for o in &objs {
            shard.upsert(o.clone()).expect("one shard owns every key");
        }
        let next = pods(1, n, 2);
        let mut j = 0usize;
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                j = (j + 7919) % n;
                let o = if j.is_multiple_of(2) { &next[j] } else { &objs[j] };
                black_box(shard.upsert(o.clone()).expect("one shard"))
            })
        });
    }
    g.finish();

    // One namespace bucket of N members (and the two label buckets, also N); each sample re-applies one member (a new
    // handle), which re-files it in the three sets: one path copy each.
    let mut g = c.benchmark_group("store/index_update");
    for n in [1_000usize, 10_000, 100_000] {
        let (_r, w) = store(StoreConfig::default().shards(1));
        let (_barrier, mut shards) = w.into_parts();
        let shard = &mut shards[0];
        let objs = pods(1, n, 1);
        for o in &objs {
            shard.upsert(o.clone()).expect("one shard owns every key");
        }
        let next = pods(1, n, 2);
        let mut j = 0usize;
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                j = (j + 7919) % n;
                let o = if j.is_multiple_of(2) { &next[j] } else { &objs[j] };
                black_box(shard.upsert(o.clone()).expect("one shard"))
            })
        });
    }
    g.finish();
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
