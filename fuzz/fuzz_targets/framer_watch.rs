//! Arbitrary bytes, cut into arbitrary chunks, through a watch `Framer`; each
//! document through `Decoder::decode_event`.
//!
//! Input layout: see `kcache_fuzz::split_framer_input`. Findings: a panic in
//! kcache, documents that differ from a reference line splitter, or a decoded
//! event that disagrees with serde_json's reading of the same line.
#![no_main]

use kcache::wire::{Framer, WatchEvent};
use kcache_fuzz::{assert_obj_matches, assert_obj_self_consistent, assert_status_matches, decoder, reference_frames, run_framer, split_framer_input, value_without_duplicates};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (limit, chunks) = split_framer_input(data);
    let body: Vec<u8> = chunks.concat();
    let mut framer = Framer::watch_with_limit(limit);
    let mut dec = decoder(false);
    let got = run_framer(&mut framer, &chunks, |doc| {
        let Ok(ev) = dec.decode_event(doc) else { return };
        let v = value_without_duplicates(doc);
        if let Some(v) = &v {
            let want = match &ev {
                WatchEvent::Added(_) => "ADDED",
                WatchEvent::Modified(_) => "MODIFIED",
                WatchEvent::Deleted(_) => "DELETED",
                WatchEvent::Bookmark { .. } => "BOOKMARK",
                WatchEvent::Error(_) => "ERROR",
            };
            assert_eq!(v["type"].as_str(), Some(want), "event type");
        }
        match ev {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                assert_obj_self_consistent(&o, "event object", v.is_some());
                if let Some(v) = &v {
                    assert_obj_matches(&o, &v["object"], "event object vs serde_json");
                }
            }
            WatchEvent::Bookmark { resource_version, initial_events_end } => {
                if let Some(v) = &v {
                    let m = &v["object"]["metadata"];
                    assert_eq!(resource_version, m["resourceVersion"].as_str().unwrap_or(""), "bookmark rv");
                    let end = m["annotations"]["k8s.io/initial-events-end"].as_str() == Some("true");
                    assert_eq!(initial_events_end, end, "bookmark initial-events-end");
                }
            }
            WatchEvent::Error(st) => {
                if let Some(v) = &v {
                    assert_status_matches(&st, &v["object"], "error event status");
                }
            }
        }
    });
    assert_eq!(got, reference_frames(&body, limit), "framer output differs from the reference splitter");
});
