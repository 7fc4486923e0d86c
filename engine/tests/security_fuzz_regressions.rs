//! Regressions for decode-path defects found by fuzzing and review, and a
//! replay of the committed fuzz corpus (fuzz/corpus) through the decoder.
//!
//! Each regression test names the input that went wrong and how it was found.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kcache::wire::{DecodeError, Decoder, DecoderConfig, Framer, WatchEvent, decode_status};

const POD: &str = r#"{"metadata":{"name":"web-0","namespace":"ns","resourceVersion":"7"},"spec":{"nodeName":"n1"}}"#;

/// Found by review while writing the fuzz oracles: a second `type` member was
/// paired with the object scanned under the first, and every type that is not
/// ADDED or MODIFIED came out as DELETED, so a garbled MODIFIED + BOOKMARK line
/// deleted the object from the cache. Such events are now refused.
#[test]
fn a_watch_event_with_two_types_is_refused() {
    let mut dec = Decoder::default();
    let two_types = [
        format!(r#"{{"type":"MODIFIED","object":{POD},"type":"BOOKMARK"}}"#),
        format!(r#"{{"type":"MODIFIED","object":{POD},"type":"ERROR"}}"#),
        format!(r#"{{"type":"BOOKMARK","object":{POD},"type":"ADDED"}}"#),
        format!(r#"{{"object":{POD},"type":"ADDED","type":"DELETED"}}"#),
        format!(r#"{{"type":"ADDED","type":"ADDED","object":{POD}}}"#),
        // An escaped member name is the same member.
        format!(r#"{{"type":"ADDED","object":{POD},"\u0074ype":"DELETED"}}"#),
    ];
    for doc in &two_types {
        assert_eq!(
            dec.decode_event(doc.as_bytes()).map(|_| ()),
            Err(DecodeError::WrongShape("watch event has more than one type")),
            "{doc}"
        );
    }
    // One type, in either position, still decodes.
    let ok = format!(r#"{{"object":{POD},"type":"MODIFIED"}}"#);
    assert!(matches!(dec.decode_event(ok.as_bytes()), Ok(WatchEvent::Modified(o)) if o.key() == "ns/web-0"));
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn config(strip: bool) -> DecoderConfig {
    DecoderConfig {
        index_fields: vec!["/spec/nodeName".into(), "/metadata/managedFields/0/manager".into(), "/spec/containers/0/image".into()],
        strip_managed_fields: strip,
        ..DecoderConfig::default()
    }
}

/// An accepted object is named and its stored bytes are JSON.
fn check(o: &kcache::Obj, what: &Path) {
    assert!(!o.name().is_empty(), "{}", what.display());
    assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&o.json()).is_ok(), "{}: stored bytes are not json", what.display());
}

#[test]
fn the_committed_fuzz_corpus_decodes_or_fails_cleanly() {
    let mut decoded = 0usize;
    for p in corpus_files("framer_watch") {
        // Same layout as the fuzz target: limit byte, chunk-size count, sizes, body.
        let data = read(&p);
        let b0 = data.first().copied().unwrap_or(0);
        let limit = if b0 & 1 == 0 { 1 << 20 } else { 1 + usize::from(b0 >> 1) * 16 };
        let m = usize::from(data.get(1).copied().unwrap_or(0) % 16);
        let sizes: Vec<usize> = data.get(2..2 + m).unwrap_or_default().iter().map(|&s| usize::from(s) + 1).collect();
        let body = data.get((2 + m).min(data.len())..).unwrap_or_default();
        let mut framer = Framer::watch_with_limit(limit);
        let mut dec = Decoder::new(config(false));
        let mut rest = body;
        let mut i = 0;
        let mut docs = Vec::new();
        while !rest.is_empty() {
            let n = if sizes.is_empty() { rest.len() } else { sizes[i % sizes.len()].min(rest.len()) };
            framer.push(Bytes::copy_from_slice(&rest[..n]));
            rest = &rest[n..];
            i += 1;
            docs.extend(std::iter::from_fn(|| framer.next_document()));
        }
        docs.extend(framer.finish().transpose());
        for d in docs.into_iter().flatten() {
            assert!(d.len() <= limit);
            if let Ok(WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)) = dec.decode_event(&d) {
                check(&o, &p);
                decoded += 1;
            }
        }
    }
    for p in corpus_files("decode_list") {
        if let Ok(list) = Decoder::new(config(true)).decode_list(&read(&p)) {
            for o in &list.items {
                check(o, &p);
                decoded += 1;
            }
        }
    }
    for target in ["decode_object", "decode_differential"] {
        for p in corpus_files(target) {
            let data = read(&p);
            for strip in [false, true] {
                if let Ok(o) = Decoder::new(config(strip)).decode_object(&data) {
                    check(&o, &p);
                    decoded += 1;
                }
            }
            let _ = decode_status(&data);
        }
    }
    // The seeds alone (real API server captures) hold well over 100 objects.
    assert!(decoded > 100, "only {decoded} objects decoded from the corpus");
}
