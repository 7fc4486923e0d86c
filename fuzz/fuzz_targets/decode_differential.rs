//! Differential: kcache's decoder against `serde_json::Value` on single objects.
//!
//! * When serde_json reads the bytes as an object with a non-empty string
//!   `metadata.name` and the metadata shapes kcache requires (see
//!   `kcache_fuzz::conforms`), with no duplicate member names, kcache must
//!   accept it and extract the same name, namespace, resourceVersion, labels,
//!   owners and index fields.
//! * Whenever kcache accepts, the bytes must be one JSON value in UTF-8.
#![no_main]

use kcache_fuzz::{assert_obj_matches, conforms, decoder, is_json_grammar, value_without_duplicates, without_managed_fields};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut dec = decoder(false);
    let got = dec.decode_object(data);
    if got.is_ok() {
        assert!(std::str::from_utf8(data).is_ok(), "kcache accepted invalid utf-8");
        assert!(is_json_grammar(data), "kcache accepted bytes that are not json");
    }
    let Some(v) = value_without_duplicates(data) else { return };
    if !conforms(&v) {
        return;
    }
    let obj = match got {
        Ok(o) => o,
        Err(e) => panic!("serde_json reads a well-formed object but kcache rejects it: {e}"),
    };
    assert_obj_matches(&obj, &v, "kcache vs serde_json");
    let mut strip = decoder(true);
    let s = strip.decode_object(data).expect("stripping decoder accepts what the plain one does");
    let stored: Value = serde_json::from_slice(&s.json()).expect("stripped bytes parse");
    assert_eq!(stored, without_managed_fields(&v), "stripped bytes");
    assert_obj_matches(&s, &stored, "stripped object vs its bytes");
});
