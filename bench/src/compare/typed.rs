//! Typed Gets measured in the `compare` process: kcache's typed view
//! (`kcache::typed::Store<Pod>`) against kube-rs's `reflector::Store<Pod>::get`, over
//! the same 10,000 realistic pods (the `typed_get` criterion bench measures the same
//! reads, every design of the view, and memory).
//!
//! # Guarantees
//! * Both engines are timed in the same round, one after the other, on the same keys
//!   and the same thread; the row's ratio is the median of the rounds' ratios.
//! * Every Get is timed on its own (`Instant` around one call) and must find its pod.

use std::hint::black_box;
use std::time::Instant;

use hdrhistogram::Histogram;
use k8s_openapi::api::core::v1::Pod;
use kcache::store::{StoreConfig, store};
use kcache::typed::{Capacity, DEFAULT_CACHE_CAPACITY, ObjectRef, Store as TypedStore};
use kcache::wire::{Decoder, DecoderConfig};
use kcache_loadgen::podgen::{list_body, realistic_pods_in_namespaces};
use kube::runtime::{reflector, watcher};

use super::rows::{Lat, TypedGetRound, TypedGetRow};

/// Pods in each cache.
pub const PODS: usize = 10_000;
/// Keys the hit-path Gets cycle through: within the default cache bound at 10,000 pods
/// (1,000 decodes), as the objects a controller keeps coming back to.
pub const HOT_KEYS: usize = 512;
/// Consecutive Gets read keys this far apart (prime to both key counts).
const STRIDE: usize = 7_919;

/// Both caches, filled with the same pods.
struct Caches {
    kcache: kcache::Store,
    _decoder: Decoder,
    typed_refs: Vec<ObjectRef<Pod>>,
    kube: reflector::Store<Pod>,
    _kube_writer: reflector::store::Writer<Pod>,
    kube_refs: Vec<reflector::ObjectRef<Pod>>,
}

/// Why the caches could not be filled (a generator or decoder bug).
#[derive(Debug, thiserror::Error)]
#[error("typed Get setup: {0}")]
pub struct TypedGetError(pub(super) String);

impl Caches {
    fn new() -> Result<Caches, TypedGetError> {
        let json = realistic_pods_in_namespaces(PODS, 7, 10);
        let (kcache, mut writer) = store(StoreConfig::default().shards(2));
        let mut decoder = Decoder::new(DecoderConfig::default());
        for page in json.chunks(500) {
            let list = decoder.decode_list(&list_body(page, "1")).map_err(|e| TypedGetError(e.to_string()))?;
            for obj in list.items {
                writer.upsert(obj);
            }
        }
        let (kube, mut kube_writer) = reflector::store::<Pod>();
        for p in &json {
            let pod: Pod = serde_json::from_slice(p).map_err(|e| TypedGetError(e.to_string()))?;
            kube_writer.apply_watcher_event(&watcher::Event::Apply(pod));
        }
        let mut names = Vec::with_capacity(PODS);
        for o in kcache.list() {
            let ns = o.namespace().ok_or_else(|| TypedGetError(format!("pod {} has no namespace", o.name())))?;
            names.push((ns.to_owned(), o.name().to_owned()));
        }
        Ok(Caches {
            typed_refs: names.iter().map(|(ns, n)| ObjectRef::new(n).within(ns)).collect(),
            kube_refs: names.iter().map(|(ns, n)| reflector::ObjectRef::new(n).within(ns)).collect(),
            kcache,
            _decoder: decoder,
            kube,
            _kube_writer: kube_writer,
        })
    }
}

/// Times `gets` calls of `get(i)`, `i` walking `0..keys` with the stride.
pub(super) fn time(gets: usize, keys: usize, mut get: impl FnMut(usize) -> bool) -> Result<Lat, TypedGetError> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).map_err(|e| TypedGetError(e.to_string()))?;
    for n in 0..gets {
        let i = (n * STRIDE) % keys;
        let t = Instant::now();
        let found = black_box(get(i));
        let ns = t.elapsed().as_nanos().max(1) as u64;
        if !found {
            return Err(TypedGetError(format!("Get {i} missed a stored pod")));
        }
        h.saturating_record(ns);
    }
    Ok(Lat::from_ns_histogram(&h))
}

/// One round: kube-rs, kcache's hit path (a fresh view with the default bound,
/// warmed by one read of each hot key), then kcache reading pods it does not keep.
fn round(c: &Caches, gets: usize, decodes: usize) -> Result<TypedGetRound, TypedGetError> {
    let kube_rs = time(gets, HOT_KEYS, |i| c.kube.get(&c.kube_refs[i]).is_some())?;
    let view = TypedStore::<Pod>::new(c.kcache.clone()).with_cache(DEFAULT_CACHE_CAPACITY);
    for r in &c.typed_refs[..HOT_KEYS] {
        black_box(view.get(r));
    }
    let kcache = time(gets, HOT_KEYS, |i| view.get(&c.typed_refs[i]).is_some())?;
    let uncached = TypedStore::<Pod>::new(c.kcache.clone()).with_cache(Capacity::Fixed(0));
    let kcache_decode = time(decodes, PODS, |i| uncached.get(&c.typed_refs[i]).is_some())?;
    Ok(TypedGetRound { kcache, kube_rs, kcache_decode })
}

/// Rounds of the full measurement. Each takes about half a second; a round on a
/// loaded moment moves one p99 by 2x at these times (10 ns steps), so the median
/// is taken over more rounds than the runner's process rows have.
const ROUNDS: usize = 7;

/// Measures the row: [`ROUNDS`] rounds (1 with `quick`).
///
/// # Errors
/// When the generated pods do not fill the caches, or a Get misses a stored pod.
pub fn measure(quick: bool) -> Result<TypedGetRow, TypedGetError> {
    let (rounds, gets, decodes) = if quick { (1, 100_000, 1_000) } else { (ROUNDS, 500_000, 5_000) };
    let caches = Caches::new()?;
    let rounds: Vec<TypedGetRound> = (0..rounds).map(|_| round(&caches, gets, decodes)).collect::<Result<_, _>>()?;
    TypedGetRow::from_rounds(PODS, HOT_KEYS, &rounds).ok_or_else(|| TypedGetError("no round".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_measurement_times_every_get_of_both_engines() {
        let caches = Caches::new().unwrap();
        assert_eq!((caches.kcache.len(), caches.kube.len()), (PODS, PODS));
        let r = round(&caches, 2_000, 20).unwrap();
        assert_eq!((r.kcache.samples, r.kube_rs.samples, r.kcache_decode.samples), (2_000, 2_000, 20));
        for l in [r.kcache, r.kube_rs, r.kcache_decode] {
            assert!(l.p50 > 0.0 && l.p50 <= l.p95 && l.p95 <= l.p99, "{l:?}");
        }
        let row = TypedGetRow::from_rounds(PODS, HOT_KEYS, &[r]).unwrap();
        assert_eq!(row.p99_ratio, Some(r.kcache.p99 / r.kube_rs.p99));
    }
}
