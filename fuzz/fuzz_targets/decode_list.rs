//! Arbitrary bytes as a LIST body through `Decoder::decode_list`, with
//! managedFields stripping on and index fields registered.
//!
//! Findings: a panic, stored bytes that are not JSON, an item whose stored
//! bytes are not the wire item minus `metadata.managedFields`, or accessors
//! (including index fields, whose spans shift when bytes are cut) that
//! disagree with the stored bytes.
#![no_main]

use kcache_fuzz::{assert_obj_self_consistent, decoder, value_without_duplicates, without_managed_fields};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut dec = decoder(true);
    let Ok(list) = dec.decode_list(data) else { return };
    let v = value_without_duplicates(data);
    for o in &list.items {
        assert_obj_self_consistent(o, "list item", v.is_some());
    }
    let Some(v) = v else { return };
    assert_eq!(list.resource_version, v["metadata"]["resourceVersion"].as_str().unwrap_or(""), "list rv");
    let cont = v["metadata"]["continue"].as_str().filter(|c| !c.is_empty());
    assert_eq!(list.continue_token.as_deref(), cont, "list continue");
    let want = v["items"].as_array().map_or(&[][..], Vec::as_slice);
    assert_eq!(list.items.len(), want.len(), "item count");
    for (o, w) in list.items.iter().zip(want) {
        let stored: Value = serde_json::from_slice(&o.json()).expect("stored item parses like its wire bytes");
        assert_eq!(stored, without_managed_fields(w), "stored item is not the wire item minus managedFields");
    }
});
