//! Arbitrary bytes as a single object (`Decoder::decode_object`, three
//! configurations) and as a Status (`decode_status`).
//!
//! Findings: a panic, stored bytes that are not JSON or over
//! `max_object_bytes`, accessors that disagree with the stored bytes, or a
//! Status that disagrees with serde_json's reading.
#![no_main]

use std::sync::Arc;

use kcache::wire::{Decoder, DecoderConfig, decode_status};
use kcache_fuzz::{assert_obj_self_consistent, assert_status_matches, config, has_no_duplicates, value_without_duplicates};
use libfuzzer_sys::fuzz_target;

const SMALL_LIMIT: usize = 600;
/// What the transform puts in place of the object's closing brace.
const TAIL: &[u8] = br#","kcache-transformed":true}"#;

fn decoders() -> Vec<Decoder> {
    // A transform that changes the bytes forces the second scan of the stored
    // copy. (Padding with whitespace would not show: the rescan stores the
    // object's span, without surrounding whitespace.)
    let pad: kcache::wire::Transform = Arc::new(|v: &mut Vec<u8>| {
        if v.last() == Some(&b'}') {
            v.pop();
            v.extend_from_slice(TAIL);
        }
    });
    vec![
        Decoder::new(config(false)),
        Decoder::new(config(true)),
        Decoder::new(DecoderConfig { transform: Some(pad), max_object_bytes: SMALL_LIMIT, ..config(true) }),
    ]
}


fuzz_target!(|data: &[u8]| {
    let mut all = decoders();
    let unique = has_no_duplicates(data);
    let plain = all[0].decode_object(data);
    if let Ok(o) = &plain {
        assert_obj_self_consistent(o, "plain object", unique);
        let trimmed = data.trim_ascii();
        assert_eq!(&*o.json(), trimmed, "without stripping the stored bytes are the wire bytes");
    }
    let stripped = all[1].decode_object(data);
    assert_eq!(plain.is_ok(), stripped.is_ok(), "stripping changed acceptance: {plain:?} vs {stripped:?}");
    if let Ok(o) = &stripped {
        assert_obj_self_consistent(o, "stripped object", unique);
    }
    if let Ok(o) = all[2].decode_object(data) {
        assert!(o.json().len() <= SMALL_LIMIT, "stored {} bytes over the {SMALL_LIMIT}-byte limit", o.json().len());
        assert!(o.json().ends_with(TAIL), "transform not applied: {:?}", String::from_utf8_lossy(&o.json()));
        assert_obj_self_consistent(&o, "transformed object", unique);
    }
    if let Ok(st) = decode_status(data)
        && let Some(v) = value_without_duplicates(data)
    {
        assert_status_matches(&st, &v, "status");
    }
});
