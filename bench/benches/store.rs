//! Store benches: cache reads of kcache's store next to kube-rs's reflector `Store`
//! (its baseline, holding the same realistic pods), index snapshot take/iterate, and
//! index update cost as one bucket grows from 1k to 100k members.
//!
//! Printed before the criterion groups (they are distributions, which criterion
//! does not report):
//! * reads under writes, kcache and kube-rs side by side: 2 reader threads timing
//!   Gets and 1,000-pod Lists exactly as `loadgen run` does ([`ReadLoad`]: bursts of
//!   64 one-call timings, 1 ms pauses) while a writer thread applies 2,000 updates/s
//!   to the same cache; three interleaved pairs, each pair's p99 ratio printed;
//! * Gets alone after the same pauses, next to a floor (the same timing around a hash
//!   of the key): what each engine adds to what any Get pays;
//! * single-call probes of the same Gets (timer alone, one call, mean of 16) under
//!   the same writer, for both caches.
#![forbid(unsafe_code)]
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use k8s_openapi::api::core::v1::Pod;
use kcache::Obj;
use kcache::object::testing::pod;
use kcache::store::{NAMESPACE_INDEX, StoreConfig, store};
use kcache::wire::{Decoder, DecoderConfig};
use kcache_loadgen::podgen::{list_body, realistic_pods_in_namespaces};
use kcache_loadgen::run::{CacheReader, EngineKind, ReadLoad, key_in_hand};
use kube::runtime::{reflector, watcher};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PODS: usize = 10_000;
/// 10 namespaces of 1,000 pods, as `loadgen run` lays out 10,000 pods.
const NAMESPACES: usize = 10;
/// The namespace the List benches read.
const LIST_NAMESPACE: &str = "ns-3";

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

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000, 3).expect("valid bounds")
}

/// Runs `read` on 2 reader threads (numbered 0 and 1) and merges what they timed.
fn on_two_readers(read: impl Fn(usize) -> Histogram<u64> + Sync) -> Histogram<u64> {
    std::thread::scope(|s| {
        let read = &read;
        let threads: Vec<_> = (0..2).map(|t| s.spawn(move || read(t))).collect();
        let mut all = histogram();
        for t in threads {
            all.add(t.join().expect("reader")).expect("same bounds");
        }
        all
    })
}

/// Two versions (resourceVersions `1000 + i` and `100000 + i`) of 10,000 realistic
/// pods, decoded once for each cache, so the writers only clone and apply.
struct Versions {
    keys: Arc<[String]>,
    kcache: Vec<[Obj; 2]>,
    kube: Vec<[Pod; 2]>,
}

impl Versions {
    fn new() -> Versions {
        let first = realistic_pods_in_namespaces(PODS, 7, NAMESPACES);
        let second: Vec<Vec<u8>> = first
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut v: serde_json::Value = serde_json::from_slice(p).expect("generated pods are JSON");
                v["metadata"]["resourceVersion"] = serde_json::json!((100_000 + i).to_string());
                serde_json::to_vec(&v).expect("serializable")
            })
            .collect();
        let mut dec = Decoder::new(DecoderConfig::default());
        let mut decode = |pods: &[Vec<u8>]| -> Vec<Obj> {
            pods.chunks(500).flat_map(|page| dec.decode_list(&list_body(page, "1")).expect("generated list decodes").items).collect()
        };
        let (a, b) = (decode(&first), decode(&second));
        let typed = |p: &Vec<u8>| serde_json::from_slice::<Pod>(p).expect("generated pods are Pods");
        Versions {
            keys: a.iter().map(Obj::key).collect(),
            kcache: a.into_iter().zip(b).map(|(a, b)| [a, b]).collect(),
            kube: first.iter().zip(&second).map(|(a, b)| [typed(a), typed(b)]).collect(),
        }
    }

    /// A cache of `engine` holding the first version of every pod, and its writer.
    fn cache(&self, engine: EngineKind) -> (CacheReader, CacheWriter<'_>) {
        match engine {
            EngineKind::Kcache => {
                let (reader, mut writer) = store(StoreConfig::default().shards(2));
                for v in &self.kcache {
                    writer.upsert(v[0].clone());
                }
                (CacheReader::Kcache(reader), CacheWriter::Kcache(writer, &self.kcache))
            }
            EngineKind::KubeRs => {
                let (reader, mut writer) = reflector::store::<Pod>();
                for v in &self.kube {
                    writer.apply_watcher_event(&watcher::Event::Apply(v[0].clone()));
                }
                (CacheReader::KubeRs(reader), CacheWriter::KubeRs(writer, &self.kube))
            }
        }
    }
}

/// Applies updates to one cache, as its engine's watch loop would.
enum CacheWriter<'a> {
    Kcache(kcache::store::Writer, &'a [[Obj; 2]]),
    KubeRs(reflector::store::Writer<Pod>, &'a [[Pod; 2]]),
}

impl CacheWriter<'_> {
    /// Writes version `n % 2` of pod `i`.
    fn update(&mut self, i: usize, n: u64) {
        let v = (n % 2) as usize;
        match self {
            CacheWriter::Kcache(w, objs) => {
                black_box(w.upsert(objs[i][v].clone()));
            }
            CacheWriter::KubeRs(w, pods) => w.apply_watcher_event(&watcher::Event::Apply(pods[i][v].clone())),
        }
    }
}

/// Runs `read` while `writer` applies 2,000 updates/s (2 a millisecond, paced
/// against the clock, spread over the keys); returns what `read` returned and the
/// number of updates.
fn under_writes<T>(writer: CacheWriter<'_>, read: impl FnOnce() -> T) -> (T, u64) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut writer = writer;
        let stop = &stop;
        let w = s.spawn(move || {
            let start = Instant::now();
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start.elapsed().as_millis() as u64 * 2;
                while done < due {
                    writer.update((done as usize * 7919) % PODS, done / PODS as u64);
                    done += 1;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            done
        });
        let out = read();
        stop.store(true, Ordering::Relaxed);
        (out, w.join().expect("writer thread"))
    })
}

/// Gets and Lists timed by `loadgen run`'s own reader threads ([`ReadLoad`]) under
/// 2,000 updates/s, kcache and kube-rs in three interleaved pairs.
fn reads_under_writes(versions: &Versions) {
    let mut ratios = Vec::new();
    for round in 1..=3 {
        let mut p99 = [0u64; 2];
        for (e, engine) in [EngineKind::Kcache, EngineKind::KubeRs].into_iter().enumerate() {
            let (reader, writer) = versions.cache(engine);
            let (reads, writes) = under_writes(writer, || {
                let load = ReadLoad::start(&reader, Arc::clone(&versions.keys), LIST_NAMESPACE.into(), 2);
                std::thread::sleep(Duration::from_secs(3));
                load.finish()
            });
            let label = format!("reads under writes, round {round}, {}, {writes} writes", engine.as_str());
            print_hist(&format!("{label}: Get (2 readers, bursts of 64, 1 ms pauses)"), &reads.gets);
            print_hist(&format!("{label}: List 1,000 pods"), &reads.lists);
            assert_eq!(reads.hit_rate(), Some(1.0), "every key stays in the cache");
            p99[e] = reads.gets.value_at_quantile(0.99);
        }
        let ratio = p99[0] as f64 / p99[1].max(1) as f64;
        println!("reads under writes, round {round}: Get p99 kcache / kube-rs = {ratio:.2}x");
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!("reads under writes: Get p99 kcache / kube-rs, median of 3 pairs = {:.2}x", ratios[1]);
}

/// What a reader in [`gets_after_pauses`] calls per timing.
#[derive(Clone, Copy)]
enum GetCall {
    /// Hashes the key's bytes and touches no cache: what every engine's Get pays
    /// before it reaches its map (the key string, the clock, a thread just woken).
    Floor,
    Get(EngineKind),
}

/// Gets alone, timed as [`ReadLoad`] times them (bursts of 64 one-call timings,
/// 1 ms pauses, 2 threads) but with no List between the bursts, under 2,000
/// updates/s: kube-rs's List walks its whole map, which warms the lines its next
/// Gets read, and kcache's reads one namespace's index. The floor row is the same
/// timing around a hash of the key; what an engine adds to it is its own.
fn gets_after_pauses(versions: &Versions) {
    let keys = &versions.keys;
    for round in 1..=2 {
        let mut p99 = Vec::new();
        for call in [GetCall::Floor, GetCall::Get(EngineKind::Kcache), GetCall::Get(EngineKind::KubeRs)] {
            let engine = match call {
                GetCall::Floor => EngineKind::Kcache,
                GetCall::Get(e) => e,
            };
            let (reader, writer) = versions.cache(engine);
            let (h, writes) = under_writes(writer, || {
                on_two_readers(|t| {
                    let hasher = std::hash::RandomState::new();
                    let mut h = histogram();
                    // loadgen's strides and starts (`run::reads`).
                    let stride = [7919, 104_729][t];
                    let mut idx = t * keys.len() / 2;
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < deadline {
                        for _ in 0..64 {
                            idx = (idx + stride) % keys.len();
                            let key = key_in_hand(&keys[idx]);
                            let t0 = Instant::now();
                            let found = match call {
                                GetCall::Floor => std::hash::BuildHasher::hash_one(&hasher, key) != 0,
                                GetCall::Get(_) => reader.get(key),
                            };
                            let ns = t0.elapsed().as_nanos() as u64;
                            black_box(found);
                            h.saturating_record(ns.max(1));
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    h
                })
            });
            let what = match call {
                GetCall::Floor => "floor (key hash only)".to_owned(),
                GetCall::Get(e) => e.as_str().to_owned(),
            };
            print_hist(&format!("gets after pauses, round {round}, {what}, {writes} writes"), &h);
            p99.push(h.value_at_quantile(0.99));
        }
        let (floor, k, r) = (p99[0] as f64, p99[1] as f64, p99[2].max(1) as f64);
        println!(
            "gets after pauses, round {round}: Get p99 kcache / kube-rs = {:.2}x; over the floor: {:.2}x",
            k / r,
            (k - floor).max(0.0) / (r - floor).max(1.0)
        );
    }
}

/// How a reader thread times its gets.
#[derive(Clone, Copy, PartialEq)]
enum Probe {
    /// One Get between two `Instant::now()` calls: includes the timer's own
    /// cost (printed by `TimerOnly`).
    Single,
    /// Two `Instant::now()` calls around nothing: the floor of `Single`.
    TimerOnly,
    /// 16 gets between two timer calls, recorded as the mean per get: the timer's cost
    /// is amortized, and a tail sample means 16 slow gets, not one.
    Batch16,
}

/// Latency of back-to-back Gets on 2 reader threads while a writer applies 2,000
/// updates/s, for 2 s.
fn get_latency_under_writes(versions: &Versions, engine: EngineKind, probe: Probe) {
    let (reader, writer) = versions.cache(engine);
    let keys = &versions.keys;
    let (all, writes) = under_writes(writer, || {
        on_two_readers(|t| {
            let mut h = histogram();
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut i = t * 31;
            while Instant::now() < deadline {
                for _ in 0..1000 {
                    let dt = match probe {
                        Probe::Single => {
                            i = (i + 7) % PODS;
                            let t0 = Instant::now();
                            let o = reader.get(&keys[i]);
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
                                black_box(reader.get(&keys[i]));
                            }
                            t0.elapsed().as_nanos() as u64 / 16
                        }
                    };
                    h.saturating_record(dt.max(1));
                }
            }
            h
        })
    });
    let what = match probe {
        Probe::Single => "Get, one call per timing",
        Probe::TimerOnly => "timer alone (Instant::now() pair)",
        Probe::Batch16 => "Get, mean of 16 calls per timing",
    };
    print_hist(&format!("{}: {what}, under {writes} writes in ~2 s, 2 readers", engine.as_str()), &all);
}

/// Time to take a snapshot of a 1,000-pod namespace, as a distribution.
fn snapshot_latency() {
    let (reader, mut writer) = store(StoreConfig::default().shards(2));
    for p in pods(10, PODS, 1) {
        writer.upsert(p);
    }
    let mut h = histogram();
    for _ in 0..200_000 {
        let t0 = Instant::now();
        let s = reader.index(NAMESPACE_INDEX, LIST_NAMESPACE).expect("index");
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
    let versions = Versions::new();
    reads_under_writes(&versions);
    gets_after_pauses(&versions);
    get_latency_under_writes(&versions, EngineKind::Kcache, Probe::TimerOnly);
    for probe in [Probe::Single, Probe::Batch16] {
        for engine in [EngineKind::Kcache, EngineKind::KubeRs] {
            get_latency_under_writes(&versions, engine, probe);
        }
    }
    snapshot_latency();

    // Both caches side by side, read the way `loadgen run` reads them (one
    // `CacheReader` call per iteration), with no writer: the hot-cache cost.
    let caches: Vec<(EngineKind, CacheReader)> = [EngineKind::Kcache, EngineKind::KubeRs].into_iter().map(|e| (e, versions.cache(e).0)).collect();
    let mut g = c.benchmark_group("store/get_10k");
    for (engine, reader) in &caches {
        let mut i = 0;
        g.bench_function(engine.as_str(), |b| {
            b.iter(|| {
                i = (i + 7) % PODS;
                black_box(reader.get(&versions.keys[i]))
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("store/list_namespace_1000");
    g.throughput(Throughput::Elements((PODS / NAMESPACES) as u64));
    for (engine, reader) in &caches {
        assert_eq!(reader.list_namespace(LIST_NAMESPACE), PODS / NAMESPACES, "{engine:?}");
        g.bench_function(engine.as_str(), |b| b.iter(|| black_box(reader.list_namespace(LIST_NAMESPACE))));
    }
    g.finish();
    drop(caches);

    let (reader, mut writer) = store(StoreConfig::default().shards(2));
    for p in pods(10, PODS, 1) {
        writer.upsert(p);
    }
    c.bench_function("store/index_snapshot_take_1000", |b| b.iter(|| black_box(reader.index(NAMESPACE_INDEX, LIST_NAMESPACE).expect("index"))));
    let snap = reader.index(NAMESPACE_INDEX, LIST_NAMESPACE).expect("index");
    let mut g = c.benchmark_group("store/index_snapshot_iterate");
    g.throughput(Throughput::Elements(snap.len() as u64));
    g.bench_function("1000", |b| b.iter(|| snap.iter().map(|o| o.json().len()).sum::<usize>()));
    g.finish();

    // Baseline for the curve below: the same re-apply with no index at all (primary
    // map only), so the index share can be told apart from cache effects of a bigger
    // working set.
    reapply_group(c, "store/upsert_no_index", &StoreConfig::default().shards(1).without_builtin_indexes());
    // One namespace bucket of N members (the default store's one index); each sample
    // re-applies one member (a new handle), which re-files it in that set: one path copy.
    reapply_group(c, "store/index_update", &StoreConfig::default().shards(1));
}

/// A group timing one shard's upsert of a new handle for a stored key, at 1k, 10k
/// and 100k stored pods in one namespace, in a store of `config`.
fn reapply_group(c: &mut Criterion, name: &str, config: &StoreConfig) {
    let mut g = c.benchmark_group(name);
    for n in [1_000usize, 10_000, 100_000] {
        let (_r, w) = store(config.clone());
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

