//! Fifo throughput: deltas/s through a 2-shard fifo into the store with a no-op
//! handler, next to its baseline: the same updates as typed pods through kube-rs's
//! reflector (`Writer::apply_watcher_event`, then the handler) on one thread, as a
//! kube-rs controller applies its watch stream.
#![forbid(unsafe_code)]
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{reflector, watcher};
use kcache::Obj;
use kcache::fifo::{Delta, Fifo, Handler};
use kcache::object::testing::pod;
use kcache::store::{StoreConfig, store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Noop;
impl Handler for Noop {
    fn on_add(&self, _: &Obj, _: bool) {}
    fn on_update(&self, _: &Obj, _: &Obj) {}
    fn on_delete(&self, _: &Obj, _: bool) {}
}

const KEYS: usize = 10_000;

/// Waits until `done()` or 30 s have passed, polling every 20 µs: a spinning wait
/// would take one of the two cores from the threads being measured.
fn wait_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(20));
    }
}

fn benches(c: &mut Criterion) {
    // Two prebuilt versions per key (with labels, so indexes are updated too).
    let versions: Vec<[Obj; 2]> = (0..KEYS)
        .map(|i| {
            let ns = format!("ns-{}", i % 10);
            let name = format!("pod-{i}");
            [pod(&ns, &name, "1", &[("app", "web")]), pod(&ns, &name, "2", &[("app", "web")])]
        })
        .collect();
    let mut round = 0usize;
    let mut g = c.benchmark_group("fifo");
    g.throughput(Throughput::Elements(KEYS as u64));
    // One sample = every key updated once, then wait until all are applied and
    // delivered; no key repeats within a batch, so nothing coalesces. With the
    // default store's namespace index (what an informer keeps) and without (the
    // fifo and the primary map alone, as much as the baseline below does).
    for (name, config) in [
        ("kcache_2_shards_10k", StoreConfig::default().shards(2)),
        ("kcache_2_shards_no_index_10k", StoreConfig::default().shards(2).without_builtin_indexes()),
    ] {
        let (_reader, writer) = store(config);
        let mut fifo = Fifo::spawn(writer).expect("spawn");
        fifo.add_handler(Arc::new(Noop)).expect("open");
        fifo.replace(versions.iter().map(|v| v[0].clone()).collect(), "1").expect("open");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    round += 1;
                    for v in &versions {
                        fifo.push(Delta::Updated(v[round % 2].clone())).expect("open");
                    }
                    wait_until(|| {
                        let s = fifo.stats();
                        s.applied + s.coalesced == s.pushed
                    });
                }
                start.elapsed()
            })
        });
        let s = fifo.stats();
        println!("{name} totals: pushed={} applied={} coalesced={} panics={}", s.pushed, s.applied, s.coalesced, s.handler_panics);
        fifo.close();
    }

    // Baseline: one thread applies the events to a reflector store and hands each to
    // a no-op handler. The typed pods are cloned before the clock starts: a kube-rs
    // watch stream hands over pods its decode just built.
    let typed: Vec<[Pod; 2]> = versions
        .iter()
        .map(|v| v.clone().map(|o| serde_json::from_slice::<Pod>(&o.json()).expect("test pods are Pods")))
        .collect();
    let (tx, rx) = mpsc::channel::<watcher::Event<Pod>>();
    let applied = Arc::new(AtomicU64::new(0));
    let consumer = {
        let applied = Arc::clone(&applied);
        std::thread::spawn(move || {
            let (_store, mut writer) = reflector::store::<Pod>();
            let handler = |e: &watcher::Event<Pod>| {
                std::hint::black_box(e);
            };
            for event in rx {
                writer.apply_watcher_event(&event);
                handler(&event);
                applied.fetch_add(1, Ordering::Release);
            }
        })
    };
    for v in &typed {
        tx.send(watcher::Event::Apply(v[0].clone())).expect("consumer runs");
    }
    let mut sent = KEYS as u64;
    g.bench_function("kube_rs_reflector_1_thread_10k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let events: Vec<_> = typed.iter().map(|v| watcher::Event::Apply(v[round % 2].clone())).collect();
                let start = Instant::now();
                for e in events {
                    tx.send(e).expect("consumer runs");
                }
                sent += KEYS as u64;
                wait_until(|| applied.load(Ordering::Acquire) >= sent);
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    drop(tx);
    consumer.join().expect("consumer thread");
    println!("reflector baseline: {} events applied", applied.load(Ordering::Acquire));
}

criterion_group!(fifo_benches, benches);
criterion_main!(fifo_benches);
