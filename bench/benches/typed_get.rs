//! Typed reads of 10,000 realistic pods: kcache's typed view (`kcache::typed::Store<Pod>`)
//! with each way of keeping decodes, next to kube-rs's `reflector::Store<Pod>::get` (its
//! baseline: the same pods, decoded once as they were stored) and a bare
//! `obj.decode::<Pod>()`.
//!
//! Printed before the criterion group "typed_get":
//! * memory: the live heap each cache adds for the 10,000 pods, counted by a wrapping
//!   allocator (bytes allocated minus bytes freed around the build): kube-rs's store,
//!   kcache's store, and kcache's typed cache after every pod was read once through a
//!   view with the default bound (1 decode per 10 stored objects) and with none;
//! * per-get percentiles: each get timed on its own (`Instant` around one call) over
//!   keys taken with a wide stride, one thread, no writer.
//!
//! The designs: "decode each" (no cache: every get decodes), "unbounded, hit" (every
//! pod kept once read, warmed: every get is a hit, at kube-rs's memory), "default
//! bound, uniform keys" (1,000 decodes kept, reads spread over all 10,000 keys: mostly
//! misses) and "default bound, 512 hot keys" (the reads of a controller that keeps
//! coming back to the same objects; kube-rs is timed on the same keys).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use k8s_openapi::api::core::v1::Pod;
use kcache::Obj;
use kcache::store::{StoreConfig, store};
use kcache::typed::{Capacity, DEFAULT_CACHE_CAPACITY, ObjectRef, Store as TypedStore};
use kcache::wire::{Decoder, DecoderConfig};
use kcache_loadgen::podgen::{list_body, realistic_pods_in_namespaces};
use kube::runtime::{reflector, watcher};

/// mimalloc, counting the bytes it holds for the program.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

// SAFETY: every call is forwarded to mimalloc with the caller's arguments; the counter
// only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is mimalloc's.
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: as `alloc`.
        unsafe { INNER.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: `ptr` came from `alloc` with `layout`.
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: as `dealloc`, and `new_size` is the caller's.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PODS: usize = 10_000;
const NAMESPACES: usize = 10;
/// Consecutive gets read keys this far apart (prime to `PODS`), so that one get does
/// not find the previous one's lines in the cache.
const STRIDE: usize = 7_919;
const HOT_KEYS: usize = 512;

fn live() -> isize {
    LIVE.load(Relaxed)
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / 1_048_576.0
}

struct Fixture {
    kcache: kcache::Store,
    /// Keeps the arena's current segment, as an informer's decoder does.
    _decoder: Decoder,
    objs: Vec<Obj>,
    keys: Vec<String>,
    typed_refs: Vec<ObjectRef<Pod>>,
    kube: reflector::Store<Pod>,
    _kube_writer: reflector::store::Writer<Pod>,
    kube_refs: Vec<reflector::ObjectRef<Pod>>,
    kcache_bytes: isize,
    kube_bytes: isize,
}

impl Fixture {
    fn new() -> Fixture {
        let json = realistic_pods_in_namespaces(PODS, 7, NAMESPACES);

        let before = live();
        let (kcache, mut writer) = store(StoreConfig::default().shards(2));
        let mut decoder = Decoder::new(DecoderConfig::default());
        for page in json.chunks(500) {
            for obj in decoder.decode_list(&list_body(page, "1")).expect("generated list decodes").items {
                writer.upsert(obj);
            }
        }
        writer.mark_synced();
        writer.release_retired();
        let kcache_bytes = live() - before;

        let before = live();
        let (kube, mut kube_writer) = reflector::store::<Pod>();
        for p in &json {
            let pod: Pod = serde_json::from_slice(p).expect("generated pods are Pods");
            kube_writer.apply_watcher_event(&watcher::Event::Apply(pod));
        }
        let kube_bytes = live() - before;

        let objs = kcache.list();
        let typed_refs = objs
            .iter()
            .map(|o| ObjectRef::new(o.name()).within(o.namespace().expect("pods are namespaced")))
            .collect::<Vec<_>>();
        let kube_refs = objs
            .iter()
            .map(|o| reflector::ObjectRef::new(o.name()).within(o.namespace().expect("pods are namespaced")))
            .collect();
        let keys = objs.iter().map(Obj::key).collect();
        Fixture { kcache, _decoder: decoder, objs, keys, typed_refs, kube, _kube_writer: kube_writer, kube_refs, kcache_bytes, kube_bytes }
    }

    fn view(&self, capacity: Capacity) -> TypedStore<Pod> {
        TypedStore::<Pod>::new(self.kcache.clone()).with_cache(capacity)
    }
}

/// The live heap a view's cache holds once every pod was read through it once.
fn cache_bytes(f: &Fixture, view: &TypedStore<Pod>) -> (isize, usize) {
    let before = live();
    for i in 0..PODS {
        black_box(view.get(&f.typed_refs[(i * STRIDE) % PODS]).expect("stored"));
    }
    let bytes = live() - before;
    (bytes, view.cache_stats().entries)
}

fn memory(f: &Fixture) {
    println!(
        "typed_get memory, 10,000 pods (live heap added): kube-rs Store<Pod> {:.1} MiB, kcache store {:.1} MiB ({:.3}x)",
        mib(f.kube_bytes),
        mib(f.kcache_bytes),
        f.kcache_bytes as f64 / f.kube_bytes as f64
    );
    for (name, view) in [("default (1 per 10 stored)", f.view(DEFAULT_CACHE_CAPACITY)), ("unbounded", f.view(Capacity::Fixed(usize::MAX)))] {
        let (bytes, entries) = cache_bytes(f, &view);
        println!(
            "typed_get memory: typed cache {name} after reading all 10,000 pods: {entries} decodes, {:.1} MiB ({} bytes each); kcache store + it = {:.3}x kube-rs",
            mib(bytes),
            bytes / entries.max(1) as isize,
            (f.kcache_bytes + bytes) as f64 / f.kube_bytes as f64
        );
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds")
}

/// Times `gets` calls of `get(i)` one by one, `i` walking the keys `keys` with the stride.
fn sample<R>(name: &str, gets: usize, keys: usize, mut get: impl FnMut(usize) -> R) -> Histogram<u64> {
    let mut h = histogram();
    for n in 0..gets {
        let i = (n * STRIDE) % keys;
        let t = Instant::now();
        black_box(get(i));
        h.record(t.elapsed().as_nanos().max(1) as u64).expect("in bounds");
    }
    println!(
        "typed_get {name}: n={} p50={} ns p90={} ns p99={} ns p99.9={} ns max={} ns",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    h
}

fn ratios(name: &str, h: &Histogram<u64>, base: &Histogram<u64>) {
    println!(
        "typed_get {name}: p50 {:.2}x, p99 {:.2}x",
        h.value_at_quantile(0.5) as f64 / base.value_at_quantile(0.5).max(1) as f64,
        h.value_at_quantile(0.99) as f64 / base.value_at_quantile(0.99).max(1) as f64
    );
}

/// A view that holds every pod decoded (all reads after this are hits).
fn warm_unbounded(f: &Fixture) -> TypedStore<Pod> {
    let view = f.view(Capacity::Fixed(usize::MAX));
    for r in &f.typed_refs {
        view.get(r).expect("stored");
    }
    view
}

fn percentiles(f: &Fixture) {
    const FAST: usize = 500_000;
    const SLOW: usize = 10_000;
    let kube = sample("kube-rs Store::get", FAST, PODS, |i| f.kube.get(&f.kube_refs[i]));
    let kube_hot = sample("kube-rs Store::get, 512 hot keys", FAST, HOT_KEYS, |i| f.kube.get(&f.kube_refs[i]));
    sample("kcache untyped Store::get", FAST, PODS, |i| f.kcache.get_by_key(&f.keys[i]));
    let all = warm_unbounded(f);
    let hit = sample("kcache typed get, unbounded, hit", FAST, PODS, |i| all.get(&f.typed_refs[i]));
    drop(all);
    let bounded = f.view(DEFAULT_CACHE_CAPACITY);
    sample("kcache typed get, default bound, uniform keys", SLOW, PODS, |i| bounded.get(&f.typed_refs[i]));
    let s = bounded.cache_stats();
    println!("typed_get default bound, uniform keys: {} hits, {} decodes, capacity {}", s.hits, s.inserts, s.capacity);
    let hot = f.view(DEFAULT_CACHE_CAPACITY);
    let hot_hist = sample("kcache typed get, default bound, 512 hot keys", FAST, HOT_KEYS, |i| hot.get(&f.typed_refs[i]));
    let s = hot.cache_stats();
    println!("typed_get default bound, 512 hot keys: {} hits, {} decodes", s.hits, s.inserts);
    let each = f.view(Capacity::Fixed(0));
    sample("kcache typed get, decode each", SLOW, PODS, |i| each.get(&f.typed_refs[i]));
    sample("obj.decode::<Pod>()", SLOW, PODS, |i| f.objs[i].decode::<Pod>().expect("decodes"));
    ratios("unbounded hit / kube-rs", &hit, &kube);
    ratios("default bound, 512 hot keys / kube-rs on the same keys", &hot_hist, &kube_hot);
}

fn benches(c: &mut Criterion) {
    let f = Fixture::new();
    memory(&f);
    percentiles(&f);

    let mut g = c.benchmark_group("typed_get");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let mut i = 0;
    let mut next = move || {
        i = (i + STRIDE) % PODS;
        i
    };
    g.bench_function("kube-rs Store::get", |b| b.iter(|| black_box(f.kube.get(&f.kube_refs[next()]))));
    let all = warm_unbounded(&f);
    g.bench_function("kcache typed get, unbounded, hit", |b| b.iter(|| black_box(all.get(&f.typed_refs[next()]))));
    drop(all);
    let mut h = 0;
    g.bench_function("kube-rs Store::get, 512 hot keys", |b| {
        b.iter(|| {
            h = (h + STRIDE) % HOT_KEYS;
            black_box(f.kube.get(&f.kube_refs[h]))
        })
    });
    let hot = f.view(DEFAULT_CACHE_CAPACITY);
    g.bench_function("kcache typed get, default bound, 512 hot keys", |b| {
        b.iter(|| {
            h = (h + STRIDE) % HOT_KEYS;
            black_box(hot.get(&f.typed_refs[h]))
        })
    });
    let each = f.view(Capacity::Fixed(0));
    g.bench_function("kcache typed get, decode each", |b| b.iter(|| black_box(each.get(&f.typed_refs[next()]))));
    g.bench_function("obj.decode::<Pod>()", |b| b.iter(|| black_box(f.objs[next()].decode::<Pod>())));
    g.finish();
}

criterion_group!(typed, benches);
criterion_main!(typed);
