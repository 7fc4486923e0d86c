//! What storing decoded pods costs in memory against their wire bytes.

use kcache::wire::{Decoder, DecoderConfig};

use super::bodies::list_body;
use super::captured::realistic_pods;

/// Resident bytes of `n` decoded pods against their wire bytes.
#[derive(Clone, Copy, Debug)]
pub struct StoreMemory {
    /// Sum of the pods' JSON sizes on the wire.
    pub wire_bytes: usize,
    /// Arena segment bytes holding the stored pods.
    pub segment_bytes: usize,
    /// Heap owned by the `Obj` handles besides the JSON (Arc header, metadata spans).
    pub meta_bytes: usize,
}

impl StoreMemory {
    /// `(segment_bytes + meta_bytes) / wire_bytes`.
    pub fn ratio(&self) -> f64 {
        (self.segment_bytes + self.meta_bytes) as f64 / self.wire_bytes as f64
    }
}

/// Decodes `n` [`realistic_pods`] (in LIST pages of 500, with `/spec/nodeName`
/// and `/status/phase` index fields) and measures what storing them costs.
///
/// # Panics
/// If a generated LIST page does not decode, which would be a decoder bug.
pub fn store_memory(n: usize, strip_managed_fields: bool) -> StoreMemory {
    let pods = realistic_pods(n, 7);
    let mut dec = Decoder::new(DecoderConfig {
        index_fields: vec!["/spec/nodeName".into(), "/status/phase".into()],
        strip_managed_fields,
        ..DecoderConfig::default()
    });
    let mut kept = Vec::with_capacity(n);
    for page in pods.chunks(500) {
        let body = list_body(page, "1");
        match dec.decode_list(&body) {
            Ok(list) => kept.extend(list.items),
            Err(e) => panic!("generated list does not decode: {e}"),
        }
    }
    let stats = dec.arena().stats();
    StoreMemory {
        wire_bytes: pods.iter().map(Vec::len).sum(),
        segment_bytes: stats.segment_bytes,
        meta_bytes: kept.iter().map(kcache::Obj::meta_heap_bytes).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_pods_cost_at_most_1_1x_their_wire_bytes() {
        for strip in [false, true] {
            let m = store_memory(10_000, strip);
            println!("10k pods, strip_managed_fields={strip}: {m:?} ratio {:.3}", m.ratio());
            assert!(m.ratio() <= 1.1, "{m:?}");
            if strip {
                assert!(m.ratio() < 0.75, "stripping managedFields saves over a quarter: {m:?}");
            }
        }
    }
}
