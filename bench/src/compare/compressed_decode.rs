//! Reading a pod's body from the compressed store (decompress + typed decode) against
//! the typed decode of the same pod stored uncompressed, measured in the `compare`
//! process over 10,000 realistic pods (the `compress` criterion bench measures the
//! same reads on captured pods too).
//!
//! # Guarantees
//! * Both stores are read in the same round, one after the other, on the same keys
//!   and the same thread, as [`super::typed`] times its engines; the row's ratio is the
//!   median of the rounds' ratios.
//! * Every read is timed on its own, must find its pod, and in the compressed store
//!   every pod read is stored compressed.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kcache::arena::Arena;
use kcache::compress::{Codec, ZstdConfig};
use kcache::store::{StoreConfig, store};
use kcache::typed::{Capacity, ObjectRef, Store as TypedStore};
use kcache::wire::{Decoder, DecoderConfig};
use kcache_loadgen::podgen::{list_body, realistic_pods_in_namespaces};

use super::compressed::TypedDecodeRow;
use super::rows::Lat;
use super::typed::{PODS, TypedGetError, time};

/// Both stores, filled with the same pods, read through typed views that keep no
/// decode (every read decodes).
struct Stores {
    compressed: TypedStore<Pod>,
    uncompressed: TypedStore<Pod>,
    refs: Vec<ObjectRef<Pod>>,
    _decoders: [Decoder; 2],
}

fn err(e: impl std::fmt::Display) -> TypedGetError {
    TypedGetError(format!("compressed body reads: {e}"))
}

impl Stores {
    fn new() -> Result<Stores, TypedGetError> {
        let json = realistic_pods_in_namespaces(PODS, 7, 10);
        let (plain, mut plain_writer) = store(StoreConfig::default().shards(2));
        let mut plain_decoder = Decoder::new(DecoderConfig::default());
        let (packed, mut packed_writer) = store(StoreConfig::default().shards(2));
        let codec = Codec::new(ZstdConfig::default());
        let mut packed_decoder = Decoder::with_arena(DecoderConfig::default(), Arena::new().with_codec(codec.clone()));
        for page in json.chunks(500) {
            let body = list_body(page, "1");
            for obj in plain_decoder.decode_list(&body).map_err(err)?.items {
                plain_writer.upsert(obj);
            }
            for obj in packed_decoder.decode_list(&body).map_err(err)?.items {
                packed_writer.upsert(obj);
            }
        }
        codec.list_done();
        if !codec.wait_idle(Duration::from_secs(120)) || !codec.has_dictionary() {
            return Err(err("no dictionary was trained"));
        }
        // The pods decoded before the dictionary existed are stored plain (an informer's
        // compaction converts them): decode those again, now compressed.
        for page in json.chunks(500) {
            for obj in packed_decoder.decode_list(&list_body(page, "1")).map_err(err)?.items {
                if packed.get_by_key(&obj.key()).is_some_and(|o| !o.is_compressed()) {
                    packed_writer.upsert(obj);
                }
            }
        }
        let plain_count = packed.list().iter().filter(|o| !o.is_compressed()).count();
        if plain_count > 0 {
            return Err(err(format!("{plain_count} pods of the compressed store are stored plain")));
        }
        let mut refs = Vec::with_capacity(PODS);
        for o in plain.list() {
            let ns = o.namespace().ok_or_else(|| err(format!("pod {} has no namespace", o.name())))?;
            refs.push(ObjectRef::new(o.name()).within(ns));
        }
        Ok(Stores {
            compressed: TypedStore::<Pod>::new(packed).with_cache(Capacity::Fixed(0)),
            uncompressed: TypedStore::<Pod>::new(plain).with_cache(Capacity::Fixed(0)),
            refs,
            _decoders: [plain_decoder, packed_decoder],
        })
    }
}

/// One round: the uncompressed store, then the compressed one.
fn round(s: &Stores, reads: usize) -> Result<(Lat, Lat), TypedGetError> {
    let uncompressed = time(reads, s.refs.len(), |i| s.uncompressed.get(&s.refs[i]).is_some())?;
    let compressed = time(reads, s.refs.len(), |i| s.compressed.get(&s.refs[i]).is_some())?;
    Ok((compressed, uncompressed))
}

/// Measures the row: 3 rounds of 20,000 reads per store (1 of 2,000 with `quick`).
///
/// # Errors
/// When the generated pods do not fill the stores, no dictionary is trained, a pod
/// of the compressed store is stored plain, or a read misses a stored pod.
pub fn measure(quick: bool) -> Result<TypedDecodeRow, TypedGetError> {
    let (rounds, reads) = if quick { (1, 2_000) } else { (3, 20_000) };
    let stores = Stores::new()?;
    let rounds: Vec<(Lat, Lat)> = (0..rounds).map(|_| round(&stores, reads)).collect::<Result<_, _>>()?;
    TypedDecodeRow::from_rounds(PODS, &rounds).ok_or_else(|| err("no round"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcache::Obj;

    #[test]
    fn a_short_measurement_reads_every_pod_compressed_and_plain() {
        let stores = Stores::new().unwrap();
        assert_eq!((stores.compressed.len(), stores.uncompressed.len(), stores.refs.len()), (PODS, PODS, PODS));
        assert!(stores.compressed.untyped().list().iter().all(Obj::is_compressed));
        assert!(stores.uncompressed.untyped().list().iter().all(|o| !o.is_compressed()));
        // The same pod, read from either store.
        let r = &stores.refs[17];
        assert_eq!(stores.compressed.get(r), stores.uncompressed.get(r));
        let (c, u) = round(&stores, 500).unwrap();
        assert_eq!((c.samples, u.samples), (500, 500));
        for l in [c, u] {
            assert!(l.p50 > 0.0 && l.p50 <= l.p95 && l.p95 <= l.p99, "{l:?}");
        }
        let row = TypedDecodeRow::from_rounds(PODS, &[(c, u)]).unwrap();
        assert_eq!(row.p99_ratio, Some(c.p99 / u.p99));
    }
}
