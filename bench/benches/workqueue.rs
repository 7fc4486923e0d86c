//! Work queue benches: add+get+done throughput with 2 workers against a naive
//! `Mutex<VecDeque> + HashSet` port of client-go, and enqueue-to-dequeue latency
//! at 2,000 adds/s.
//!
//! Run: `cargo bench -p kcache-bench --bench workqueue -- --warm-up-time 1 --measurement-time 3`
#![forbid(unsafe_code)]

use std::collections::{HashSet, VecDeque};
use std::hint::black_box;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use kcache::queue::WorkQueue;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keys processed per measured iteration (each one add + get + done).
const KEYS: u64 = 100_000;
/// Each worker adds this many keys, then gets and dones as many.
const BATCH: u64 = 64;
const WORKERS: u64 = 2;

/// The operations both queues offer to the bench.
trait Queue: Sync {
    fn add(&self, k: u64);
    fn get(&self) -> Option<u64>;
    fn done(&self, k: u64);
    fn shutdown(&self);
}

impl Queue for WorkQueue<u64> {
    fn add(&self, k: u64) {
        WorkQueue::add(self, k);
    }
    fn get(&self) -> Option<u64> {
        WorkQueue::get(self)
    }
    fn done(&self, k: u64) {
        WorkQueue::done(self, &k);
    }
    fn shutdown(&self) {
        WorkQueue::shutdown(self);
    }
}

/// The straightforward port of client-go's queue.go: one mutex over a
/// `VecDeque` and std `HashSet`s (dirty, processing), one condvar signalled on
/// every push (`cond.Signal()` in Go). With `counted_waiters`, it signals only
/// when a getter is waiting: the single biggest difference to kcache's queue,
/// shown separately so the figures say where the gain comes from.
#[derive(Default)]
struct Baseline {
    state: Mutex<BaselineState>,
    cond: Condvar,
    counted_waiters: bool,
}

impl Baseline {
    fn signal(&self, s: &BaselineState) {
        if !self.counted_waiters || s.waiters > 0 {
            self.cond.notify_one();
        }
    }
}

#[derive(Default)]
struct BaselineState {
    queue: VecDeque<u64>,
    dirty: HashSet<u64>,
    processing: HashSet<u64>,
    shutting_down: bool,
    waiters: usize,
}

impl Queue for Baseline {
    fn add(&self, k: u64) {
        let mut s = self.state.lock().unwrap();
        if s.shutting_down || !s.dirty.insert(k) || s.processing.contains(&k) {
            return;
        }
        s.queue.push_back(k);
        self.signal(&s);
    }
    fn get(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap();
        while s.queue.is_empty() && !s.shutting_down {
            s.waiters += 1;
            s = self.cond.wait(s).unwrap();
            s.waiters -= 1;
        }
        let k = s.queue.pop_front()?;
        s.processing.insert(k);
        s.dirty.remove(&k);
        Some(k)
    }
    fn done(&self, k: u64) {
        let mut s = self.state.lock().unwrap();
        s.processing.remove(&k);
        if s.dirty.contains(&k) {
            s.queue.push_back(k);
            self.signal(&s);
        }
    }
    fn shutdown(&self) {
        self.state.lock().unwrap().shutting_down = true;
        self.cond.notify_all();
    }
}

/// Two workers each add a batch of distinct keys then get+done as many, until
/// `KEYS` keys went through; returns the wall time.
fn run_once<Q: Queue>(q: &Q) -> Duration {
    let per_worker = KEYS / WORKERS;
    let start = Instant::now();
    thread::scope(|s| {
        for w in 0..WORKERS {
            s.spawn(move || {
                let base = w * per_worker;
                let mut i = 0;
                while i < per_worker {
                    let n = BATCH.min(per_worker - i);
                    for j in 0..n {
                        q.add(base + i + j);
                    }
                    for _ in 0..n {
                        let k = q.get().expect("queue shut down mid-bench");
                        q.done(black_box(k));
                    }
                    i += n;
                }
            });
        }
    });
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("workqueue/add_get_done_2_workers");
    g.throughput(Throughput::Elements(KEYS));
    g.sample_size(10);
    let baseline = Baseline::default();
    g.bench_function("baseline_mutex_vecdeque_hashset", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_once(&baseline)).sum());
    });
    for shards in [1, 2, 4] {
        let q: WorkQueue<u64> = WorkQueue::builder().shards(shards).build();
        g.bench_function(format!("kcache_{shards}_shard"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_once(&q)).sum());
        });
        q.shutdown();
    }
    baseline.shutdown();
    let counted = Baseline { counted_waiters: true, ..Baseline::default() };
    g.bench_function("baseline_signal_only_waiters", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_once(&counted)).sum());
    });
    counted.shutdown();
    g.finish();
}

/// A producer adds one key every 500 µs (2,000/s) for `secs`; two workers
/// get+done. Each key is its send time in ns since `epoch`, so the worker
/// records the enqueue-to-dequeue latency directly.
fn latency_of<Q: Queue>(q: &Q, secs: u64) -> Histogram<u64> {
    let epoch = Instant::now();
    let hists: Vec<Histogram<u64>> = thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                s.spawn(move || {
                    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
                    while let Some(k) = q.get() {
                        let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        h.saturating_record(now.saturating_sub(k).max(1));
                        q.done(k);
                    }
                    h
                })
            })
            .collect();
        let period = Duration::from_micros(500);
        let total = secs * 2_000;
        let mut next = Instant::now();
        for _ in 0..total {
            next += period;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            }
            q.add(u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        q.shutdown();
        workers.into_iter().map(|w| w.join().expect("worker panicked")).collect()
    });
    let mut all = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
    for h in &hists {
        all.add(h).expect("same bounds");
    }
    all
}

fn print_latency(name: &str, h: &Histogram<u64>) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "workqueue/latency_at_2000_adds_per_s/{name}: n={} p50={:.1}µs p90={:.1}µs p99={:.1}µs p99.9={:.1}µs max={:.1}µs",
        h.len(),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1_000.0
    );
}

fn latency(_c: &mut Criterion) {
    // A fixed-rate measurement, not a criterion loop: bounded to 3 s per queue.
    let secs = 3;
    let q: WorkQueue<u64> = WorkQueue::builder().name("latency").build();
    print_latency("kcache_1_shard", &latency_of(&q, secs));
    print_latency("baseline_mutex_vecdeque_hashset", &latency_of(&Baseline::default(), secs));
}

criterion_group!(benches, throughput, latency);
criterion_main!(benches);
