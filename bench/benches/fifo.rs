//! Fifo throughput: deltas/s through a 2-shard fifo into the store with a no-op handler.
#![forbid(unsafe_code)]
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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

fn benches(c: &mut Criterion) {
    let (_reader, writer) = store(StoreConfig::default().shards(2));
    let mut fifo = Fifo::spawn(writer).expect("spawn");
    fifo.add_handler(Arc::new(Noop)).expect("open");
    // Two prebuilt versions per key (with labels, so indexes are updated too).
    let versions: Vec<[Obj; 2]> = (0..KEYS)
        .map(|i| {
            let ns = format!("ns-{}", i % 10);
            let name = format!("pod-{i}");
            [pod(&ns, &name, "1", &[("app", "web")]), pod(&ns, &name, "2", &[("app", "web")])]
        })
        .collect();
    fifo.replace(versions.iter().map(|v| v[0].clone()).collect(), "1").expect("open");
    let mut round = 0usize;
    let mut g = c.benchmark_group("fifo");
    g.throughput(Throughput::Elements(KEYS as u64));
    // One sample = every key updated once, then wait until all are applied and
    // delivered; no key repeats within a batch, so nothing coalesces.
    g.bench_function("push_apply_deliver_2_shards_10k", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                round += 1;
                for v in &versions {
                    fifo.push(Delta::Updated(v[round % 2].clone())).expect("open");
                }
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let s = fifo.stats();
                    if s.applied + s.coalesced == s.pushed || Instant::now() > deadline {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            start.elapsed()
        })
    });
    g.finish();
    let s = fifo.stats();
    println!("fifo totals: pushed={} applied={} coalesced={} panics={}", s.pushed, s.applied, s.coalesced, s.handler_panics);
    fifo.close();
}

criterion_group!(fifo_benches, benches);
criterion_main!(fifo_benches);
