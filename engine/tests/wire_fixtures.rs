//! Every capture in fixtures/real-apiserver/ decodes, and what the decoder
//! extracts equals what serde_json reports for the same fields.

use std::sync::Arc;

use bytes::Bytes;
use kcache::Obj;
use kcache::wire::{DecodeError, Decoder, DecoderConfig, FrameError, Framer, WatchEvent, decode_status};
use serde_json::Value;

const FIELDS: &[&str] = &["/spec/nodeName", "/status/phase", "/metadata/generation", "/spec/containers/0/image"];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/real-apiserver/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decoder(strip: bool) -> Decoder {
    Decoder::new(DecoderConfig {
        index_fields: FIELDS.iter().map(|s| s.to_string()).collect(),
        strip_managed_fields: strip,
        ..DecoderConfig::default()
    })
}

fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Asserts that `obj` agrees with `v` (the same object parsed by serde_json).
fn check(obj: &Obj, v: &Value, strip: bool) {
    let m = &v["metadata"];
    assert_eq!(obj.name(), m["name"].as_str().unwrap());
    assert_eq!(obj.namespace(), m["namespace"].as_str());
    assert_eq!(obj.uid(), m["uid"].as_str().unwrap_or(""));
    assert_eq!(obj.resource_version(), m["resourceVersion"].as_str().unwrap_or(""));
    assert_eq!(obj.generation(), m["generation"].as_i64());
    assert_eq!(obj.deletion_timestamp(), m["deletionTimestamp"].as_str());
    let mut labels: Vec<(String, String)> = obj.labels().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    labels.sort();
    let mut want: Vec<(String, String)> = m["labels"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect())
        .unwrap_or_default();
    want.sort();
    assert_eq!(labels, want);
    let owners: Vec<_> = obj.owner_references().collect();
    let want = m["ownerReferences"].as_array().cloned().unwrap_or_default();
    assert_eq!(owners.len(), want.len());
    for (o, w) in owners.iter().zip(&want) {
        assert_eq!(o.api_version, w["apiVersion"].as_str().unwrap());
        assert_eq!(o.kind, w["kind"].as_str().unwrap());
        assert_eq!(o.name, w["name"].as_str().unwrap());
        assert_eq!(o.uid, w["uid"].as_str().unwrap());
        assert_eq!(o.controller, w["controller"].as_bool().unwrap_or(false));
    }
    for (i, p) in FIELDS.iter().enumerate() {
        assert_eq!(obj.field(i).map(str::to_owned), scalar(v.pointer(p)), "field {p} of {}", obj.name());
    }
    // The stored bytes are the object (minus managedFields when stripping).
    let stored: Value = serde_json::from_slice(&obj.json()).expect("stored bytes are valid json");
    let mut want = v.clone();
    if strip && let Some(m) = want.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    assert_eq!(stored, want);
    assert_eq!(stored["metadata"].get("managedFields").is_some(), !strip && v["metadata"].get("managedFields").is_some());
}

#[test]
fn single_object_fixtures_decode_to_what_serde_json_sees() {
    for name in ["pod.json", "pod-pretty.json", "create-resp.json", "delete-resp.json"] {
        let doc = fixture(name);
        let v: Value = serde_json::from_slice(&doc).unwrap();
        for strip in [false, true] {
            let obj = decoder(strip).decode_object(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            check(&obj, &v, strip);
        }
    }
}

#[test]
fn stripping_managed_fields_makes_a_pod_smaller() {
    let doc = fixture("pod.json");
    let full = decoder(false).decode_object(&doc).unwrap();
    let stripped = decoder(true).decode_object(&doc).unwrap();
    assert_eq!(full.json(), doc.trim_ascii());
    assert!(stripped.json().len() + 1000 < full.json().len(), "{} vs {}", stripped.json().len(), full.json().len());
}

#[test]
fn list_fixtures_decode_with_their_list_metadata() {
    for name in ["list-3-pods.json", "list-50-pods.json", "list-3-pods-metadata-only.json"] {
        let doc = fixture(name);
        let v: Value = serde_json::from_slice(&doc).unwrap();
        for strip in [false, true] {
            let list = decoder(strip).decode_list(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            let items = v["items"].as_array().unwrap();
            assert_eq!(list.items.len(), items.len(), "{name}");
            for (o, w) in list.items.iter().zip(items) {
                check(o, w, strip);
            }
            assert_eq!(list.resource_version, v["metadata"]["resourceVersion"].as_str().unwrap());
            assert_eq!(list.continue_token.as_deref(), v["metadata"]["continue"].as_str().filter(|s| !s.is_empty()));
            assert_eq!(list.remaining_item_count, v["metadata"]["remainingItemCount"].as_i64());
        }
    }
    let page = decoder(false).decode_list(&fixture("list-50-pods.json")).unwrap();
    assert!(page.continue_token.is_some());
    assert_eq!(page.remaining_item_count, Some(950));
}

/// Frames `body` in chunks of `size`, returning the documents.
fn frame(body: &[u8], size: usize) -> Vec<Bytes> {
    let mut f = Framer::watch();
    let mut docs = Vec::new();
    for c in body.chunks(size) {
        f.push(Bytes::copy_from_slice(c));
        while let Some(d) = f.next_document() {
            docs.push(d.unwrap());
        }
    }
    docs.extend(f.finish().unwrap());
    docs
}

fn check_event(dec: &mut Decoder, doc: &[u8]) {
    let v: Value = serde_json::from_slice(doc).unwrap();
    let ev = dec.decode_event(doc).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(doc)));
    let ty = v["type"].as_str().unwrap();
    match ev {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            assert!(matches!(ty, "ADDED" | "MODIFIED" | "DELETED"));
            check(&o, &v["object"], false);
        }
        WatchEvent::Bookmark { resource_version, initial_events_end } => {
            assert_eq!(ty, "BOOKMARK");
            assert_eq!(resource_version, v["object"]["metadata"]["resourceVersion"].as_str().unwrap());
            let ann = v["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"].as_str();
            assert_eq!(initial_events_end, ann == Some("true"));
        }
        WatchEvent::Error(st) => {
            assert_eq!(ty, "ERROR");
            assert_eq!(i64::from(st.code), v["object"]["code"].as_i64().unwrap());
            assert_eq!(st.reason, v["object"]["reason"].as_str().unwrap());
            assert_eq!(st.message, v["object"]["message"].as_str().unwrap());
        }
    }
}

#[test]
fn watch_fixtures_frame_identically_at_every_chunk_size_and_decode() {
    for name in ["watch-events.jsonl", "watchlist-initial-events.jsonl", "watch-410.jsonl"] {
        let body = fixture(name);
        let lines: Vec<&[u8]> = body.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
        for size in (1..=64).chain([body.len()]) {
            let docs = frame(&body, size);
            assert_eq!(docs.len(), lines.len(), "{name} at chunk size {size}");
            for (d, l) in docs.iter().zip(&lines) {
                assert_eq!(&d[..], *l, "{name} at chunk size {size}");
            }
        }
        let mut dec = decoder(false);
        for l in &lines {
            check_event(&mut dec, l);
        }
    }
}

#[test]
fn watch_fixtures_carry_the_expected_event_sequence() {
    let mut dec = decoder(false);
    let kinds = |dec: &mut Decoder, name: &str| -> Vec<String> {
        frame(&fixture(name), 4096)
            .iter()
            .map(|d| match dec.decode_event(d).unwrap() {
                WatchEvent::Added(_) => "A".into(),
                WatchEvent::Modified(_) => "M".into(),
                WatchEvent::Deleted(o) => format!("D{}", o.deletion_timestamp().is_some()),
                WatchEvent::Bookmark { initial_events_end, .. } => format!("B{initial_events_end}"),
                WatchEvent::Error(st) => format!("E{}", st.is_expired()),
            })
            .collect()
    };
    let ev = kinds(&mut dec, "watch-events.jsonl");
    assert_eq!(&ev[..4], ["A", "M", "M", "Dtrue"]);
    assert!(ev[4..].iter().all(|e| e == "Bfalse"));
    let ev = kinds(&mut dec, "watchlist-initial-events.jsonl");
    assert_eq!(ev.last().unwrap(), "Btrue");
    assert!(ev[..ev.len() - 1].iter().all(|e| e == "A"));
    assert_eq!(kinds(&mut dec, "watch-410.jsonl"), ["Etrue"]);
}

#[test]
fn status_fixtures_decode() {
    for (name, code, reason) in [
        ("status-404.json", 404, "NotFound"),
        ("status-409-conflict.json", 409, "Conflict"),
        ("status-409-exists.json", 409, "AlreadyExists"),
        ("status-410-continue.json", 410, "Expired"),
        ("status-400-selector.json", 400, "BadRequest"),
    ] {
        let doc = fixture(name);
        let v: Value = serde_json::from_slice(&doc).unwrap();
        let st = decode_status(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((st.code, st.reason.as_str()), (code, reason), "{name}");
        assert_eq!(st.status, "Failure");
        assert_eq!(st.message, v["message"].as_str().unwrap());
        assert_eq!(st.continue_token.as_deref(), v["metadata"]["continue"].as_str());
    }
    assert!(decode_status(&fixture("status-410-continue.json")).unwrap().continue_token.is_some());
    assert!(matches!(decode_status(&fixture("pod.json")), Err(DecodeError::WrongShape(_))));
}

#[test]
fn escaped_strings_are_unescaped_into_the_spill_buffer() {
    let doc = br#"{"metadata":{"name":"a\"b","namespace":"n\u0073","labels":{"k\/1":"v\\1","plain":"p"},"ownerReferences":[{"apiVersion":"v1","kind":"R\u00e9","name":"o","uid":"u","controller":true}]},"spec":{"nodeName":"n\td"}}"#;
    let obj = decoder(false).decode_object(doc).unwrap();
    let v: Value = serde_json::from_slice(doc).unwrap();
    check(&obj, &v, false);
    assert_eq!(obj.name(), "a\"b");
    assert_eq!(obj.namespace(), Some("ns"));
    assert_eq!(obj.label("k/1"), Some("v\\1"));
    assert_eq!(obj.field(0), Some("n\td"));
    assert_eq!(obj.owner_references().next().unwrap().kind, "Ré");
    assert!(obj.meta().name.is_spill() && !obj.meta().labels[1].0.is_spill());
}

#[test]
fn event_keys_may_come_in_any_order() {
    let mut dec = decoder(false);
    let ev = dec.decode_event(br#" { "object" : {"metadata":{"name":"x","resourceVersion":"3"}} , "type" : "DELETED" } "#).unwrap();
    assert!(matches!(ev, WatchEvent::Deleted(o) if o.name() == "x" && o.resource_version() == "3"));
    let ev = dec.decode_event(br#"{"object":{"metadata":{"resourceVersion":"9"}},"type":"BOOKMARK"}"#).unwrap();
    assert!(matches!(ev, WatchEvent::Bookmark { resource_version, initial_events_end: false } if resource_version == "9"));
    let ev = dec.decode_event(br#"{"object":{"kind":"Status","code":410,"reason":"Expired"},"type":"ERROR"}"#).unwrap();
    assert!(matches!(ev, WatchEvent::Error(st) if st.is_expired()));
}

#[test]
fn a_transform_that_changes_bytes_is_rescanned() {
    let cfg = DecoderConfig {
        index_fields: vec!["/spec/nodeName".into()],
        strip_managed_fields: true,
        transform: Some(Arc::new(|b: &mut Vec<u8>| {
            let s = String::from_utf8_lossy(b).replace("\"nodeName\":\"n1\"", "\"nodeName\":\"node-one\",\"x\":1");
            *b = s.into_bytes();
        })),
        ..DecoderConfig::default()
    };
    let mut dec = Decoder::new(cfg);
    let obj = dec.decode_object(br#"{"metadata":{"managedFields":[1],"name":"a"},"spec":{"nodeName":"n1"}}"#).unwrap();
    assert_eq!(obj.json(), br#"{"metadata":{"name":"a"},"spec":{"nodeName":"node-one","x":1}}"#);
    assert_eq!(obj.field(0), Some("node-one"));
    assert_eq!(obj.name(), "a");
}

#[test]
fn managed_fields_are_cut_wherever_they_sit_in_metadata() {
    let mut dec = decoder(true);
    for doc in [
        &br#"{"metadata":{"managedFields":[{"a":1}],"name":"a","labels":{"x":"y"}}}"#[..],
        br#"{"metadata":{"name":"a","managedFields":[],"labels":{"x":"y"}}}"#,
        br#"{"metadata":{"name":"a","labels":{"x":"y"},"managedFields":null}}"#,
        br#"{"metadata":{ "managedFields" : [ ] , "name":"a","labels":{"x":"y"}}}"#,
    ] {
        let obj = dec.decode_object(doc).unwrap();
        let v: Value = serde_json::from_slice(&obj.json()).unwrap();
        assert_eq!(v, serde_json::json!({"metadata":{"name":"a","labels":{"x":"y"}}}), "{}", String::from_utf8_lossy(doc));
        assert_eq!((obj.name(), obj.label("x")), ("a", Some("y")));
    }
    let obj = dec.decode_object(br#"{"metadata":{"managedFields":[]}, "x":{"metadata":{"name":"b"}}}"#);
    assert_eq!(obj.unwrap_err(), DecodeError::MissingName);
}

#[test]
fn every_truncation_of_a_pod_is_an_error() {
    let doc = fixture("pod.json");
    let mut dec = decoder(true);
    for n in 0..doc.len() - 1 {
        assert!(dec.decode_object(&doc[..n]).is_err(), "prefix of {n} bytes");
        assert!(dec.decode_event(&doc[..n]).is_err());
        assert!(dec.decode_list(&doc[..n]).is_err());
    }
}

#[test]
fn bad_documents_are_typed_errors() {
    let mut dec = decoder(false);
    let invalid = |r: Result<Obj, DecodeError>| matches!(r, Err(DecodeError::InvalidJson { .. }));
    assert!(invalid(dec.decode_object(b"{\"metadata\":{\"name\":\"a\xff\"}}")));
    assert!(invalid(dec.decode_object(b"{\"metadata\":{\"name\":\"a\"},\"spec\":\"\xc0\xaf\"}")));
    let deep = format!("{{\"metadata\":{{\"name\":\"a\"}},\"spec\":{}1{}}}", "[".repeat(50_000), "]".repeat(50_000));
    assert!(matches!(dec.decode_object(deep.as_bytes()), Err(DecodeError::TooDeep { .. })));
    assert!(matches!(
        dec.decode_object(br#"{"metadata":{"name":"a","generation":123456789012345678901234567890}}"#),
        Err(DecodeError::WrongShape(_))
    ));
    assert!(dec.decode_object(br#"{"metadata":{"name":"a"},"spec":{"n":1e999999,"m":-123456789012345678901234567890}}"#).is_ok());
    assert_eq!(dec.decode_object(br#"{"kind":"Pod","spec":{}}"#).unwrap_err(), DecodeError::MissingMetadata);
    assert_eq!(dec.decode_object(br#"{"metadata":{"namespace":"x"}}"#).unwrap_err(), DecodeError::MissingName);
    assert_eq!(dec.decode_object(br#"[1,2]"#).unwrap_err(), DecodeError::WrongShape("object is not a json object"));
    assert!(invalid(dec.decode_object(br#"{"metadata":{"name":"a"}} x"#)));
    assert_eq!(
        dec.decode_event(br#"{"type":"SNAPSHOT","object":{}}"#).unwrap_err(),
        DecodeError::UnknownEventType("SNAPSHOT".into())
    );
    assert!(matches!(dec.decode_event(br#"{"type":"ADDED"}"#), Err(DecodeError::WrongShape(_))));
    assert!(matches!(dec.decode_list(br#"{"items":{}}"#), Err(DecodeError::WrongShape(_))));
    let mut small = Decoder::new(DecoderConfig { max_object_bytes: 40, ..DecoderConfig::default() });
    assert_eq!(
        small.decode_object(br#"{"metadata":{"name":"a"},"spec":{"x":"0123456789"}}"#).unwrap_err(),
        DecodeError::ObjectTooLarge { size: 51, limit: 40 }
    );
    let err = dec.decode_object(br#"{"metadata":{"name":"a",}}"#).unwrap_err();
    assert_eq!(err, DecodeError::InvalidJson { offset: 24, reason: "expected a member name" });
}

#[test]
fn oversize_watch_frames_are_errors_and_the_stream_continues() {
    let body = fixture("watch-events.jsonl");
    let mut f = Framer::watch_with_limit(4000);
    f.push(Bytes::from(body.clone()));
    let results: Vec<_> = std::iter::from_fn(|| f.next_document()).collect();
    let lines: Vec<&[u8]> = body.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(results.len(), lines.len());
    for (r, l) in results.iter().zip(&lines) {
        match r {
            Ok(d) => assert_eq!(&d[..], *l),
            Err(FrameError::TooLarge { limit, .. }) => assert!(l.len() > *limit),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(results.iter().any(Result::is_err) && results.iter().any(Result::is_ok));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_through_framer_and_decoder_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), cut in 1usize..64) {
            let mut f = Framer::watch_with_limit(256);
            let mut dec = decoder(true);
            for c in body.chunks(cut) {
                f.push(Bytes::copy_from_slice(c));
                while let Some(d) = f.next_document() {
                    if let Ok(d) = d {
                        let _ = dec.decode_event(&d);
                        let _ = dec.decode_list(&d);
                        let _ = dec.decode_object(&d);
                        let _ = decode_status(&d);
                    }
                }
            }
        }

        #[test]
        fn mutated_pods_decode_only_when_serde_json_accepts_them(
            edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut doc = fixture("pod.json");
            for (i, b) in &edits {
                let at = i.index(doc.len());
                doc[at] = *b;
            }
            let mut dec = decoder(true);
            if let Ok(obj) = dec.decode_object(&doc) {
                prop_assert!(serde_json::from_slice::<Value>(&doc).is_ok(), "accepted what serde_json rejects");
                prop_assert!(serde_json::from_slice::<Value>(&obj.json()).is_ok());
            }
        }

        #[test]
        fn random_chunkings_of_a_watch_body_frame_the_same_lines(cuts in proptest::collection::vec(1usize..200, 1..40)) {
            let body = fixture("watchlist-initial-events.jsonl");
            let mut f = Framer::watch();
            let mut docs = Vec::new();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= body.len() { break; }
                let end = (at + c).min(body.len());
                f.push(Bytes::copy_from_slice(&body[at..end]));
                at = end;
                while let Some(d) = f.next_document() { docs.push(d.unwrap()); }
            }
            docs.extend(f.finish().unwrap());
            let lines: Vec<&[u8]> = body.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
            prop_assert_eq!(docs.len(), lines.len());
            let mut dec = decoder(false);
            for (d, l) in docs.iter().zip(&lines) {
                prop_assert_eq!(&d[..], *l);
                check_event(&mut dec, d);
            }
        }
    }
}
