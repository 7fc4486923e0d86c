//! Shared oracles for kcache's fuzz targets.
//!
//! Each target feeds hostile bytes to the decode path and panics (a finding)
//! when kcache either crashes or disagrees with an independent reading of the
//! same bytes: a reference line splitter for the [`Framer`], and
//! `serde_json::Value` for the decoder.
//!
//! Comparisons with `serde_json` are made only for documents without
//! duplicate member names: `Value` keeps the last duplicate while kcache (like
//! Go's `encoding/json` decoding into a struct) merges them, so the two
//! readings legitimately differ there.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use kcache::Obj;
use kcache::wire::{ApiStatus, Decoder, DecoderConfig, FrameError, Framer};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Index fields registered in every target's decoder: plain, under metadata
/// (parsed twice), array-indexed, escaped (`~1`), and inside managedFields
/// (which stripping must turn into `None`).
pub const INDEX_FIELDS: &[&str] = &[
    "/spec/nodeName",
    "/status/phase",
    "/metadata/name",
    "/metadata/labels/app",
    "/spec/containers/0/image",
    "/spec/replicas",
    "/a~1b",
    "/metadata/managedFields/0/manager",
    "/metadata/generation",
    "",
];

/// A decoder configuration with [`INDEX_FIELDS`] registered.
pub fn config(strip_managed_fields: bool) -> DecoderConfig {
    DecoderConfig {
        index_fields: INDEX_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
        strip_managed_fields,
        ..DecoderConfig::default()
    }
}

/// A decoder over [`config`].
pub fn decoder(strip_managed_fields: bool) -> Decoder {
    Decoder::new(config(strip_managed_fields))
}

/// Deserializes any JSON value and fails on a duplicate member name anywhere.
struct NoDup;

impl<'de> Deserialize<'de> for NoDup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDupVisitor)
    }
}

struct NoDupVisitor;

impl<'de> Visitor<'de> for NoDupVisitor {
    type Value = NoDup;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDup, E> {
        Ok(NoDup)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDup, E> {
        Ok(NoDup)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDup, E> {
        Ok(NoDup)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDup, E> {
        Ok(NoDup)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDup, E> {
        Ok(NoDup)
    }
    fn visit_unit<E>(self) -> Result<NoDup, E> {
        Ok(NoDup)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDup, A::Error> {
        while seq.next_element::<NoDup>()?.is_some() {}
        Ok(NoDup)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDup, A::Error> {
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k) {
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value::<NoDup>()?;
        }
        Ok(NoDup)
    }
}

/// `doc` parsed as a `Value`, if it is valid JSON (per serde_json, which also
/// rejects lone surrogate escapes) with no duplicate member names.
pub fn value_without_duplicates(doc: &[u8]) -> Option<Value> {
    has_no_duplicates(doc).then(|| serde_json::from_slice::<Value>(doc).ok()).flatten()
}

/// Whether `doc` is JSON (per serde_json) without duplicate member names anywhere.
pub fn has_no_duplicates(doc: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(doc);
    de.disable_recursion_limit();
    NoDup::deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// Whether `doc` is one complete JSON value per serde_json's grammar, without
/// a nesting limit (kcache allows 128 levels, serde_json 127) and without
/// surrogate checks in strings (kcache checks those only where it extracts).
pub fn is_json_grammar(doc: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(doc);
    de.disable_recursion_limit();
    IgnoredAny::deserialize(&mut de).is_ok() && de.end().is_ok()
}

fn str_or_null(v: Option<&Value>) -> Option<Option<&str>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        _ => None,
    }
}

/// Whether `v` has exactly the shape kcache's decoder requires of an object:
/// an object whose `metadata` is an object with a non-empty string `name`,
/// string-or-null `namespace`/`uid`/`resourceVersion`/`deletionTimestamp`,
/// int64-or-null `generation`, labels of strings and owner references of
/// strings (and a boolean `controller`).
pub fn conforms(v: &Value) -> bool {
    let Some(m) = v.get("metadata").and_then(Value::as_object) else { return false };
    if !m.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
        return false;
    }
    for k in ["namespace", "uid", "resourceVersion", "deletionTimestamp"] {
        if str_or_null(m.get(k)).is_none() {
            return false;
        }
    }
    match m.get("generation") {
        None | Some(Value::Null) => {}
        Some(g) if g.as_i64().is_some() => {}
        _ => return false,
    }
    match m.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(l)) if l.values().all(Value::is_string) => {}
        _ => return false,
    }
    match m.get("ownerReferences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(owners)) => {
            for o in owners {
                let Some(o) = o.as_object() else { return false };
                for k in ["apiVersion", "kind", "name", "uid"] {
                    if str_or_null(o.get(k)).is_none() {
                        return false;
                    }
                }
                if !matches!(o.get("controller"), None | Some(Value::Null | Value::Bool(_))) {
                    return false;
                }
            }
        }
        _ => return false,
    }
    true
}

/// Panics unless every accessor of `obj` agrees with `v`, the same object read
/// by serde_json (`v` must come from a document without duplicate names).
pub fn assert_obj_matches(obj: &Obj, v: &Value, what: &str) {
    let m = &v["metadata"];
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
    assert_eq!(obj.name(), s("name"), "{what}: name");
    assert!(!obj.name().is_empty(), "{what}: accepted an empty name");
    assert_eq!(obj.namespace().unwrap_or(""), s("namespace"), "{what}: namespace");
    assert_eq!(obj.uid(), s("uid"), "{what}: uid");
    assert_eq!(obj.resource_version(), s("resourceVersion"), "{what}: resourceVersion");
    assert_eq!(obj.deletion_timestamp(), m.get("deletionTimestamp").and_then(Value::as_str), "{what}: deletionTimestamp");
    match m.get("generation") {
        None | Some(Value::Null) => assert_eq!(obj.generation(), None, "{what}: generation"),
        Some(g) if g.as_i64().is_some() => assert_eq!(obj.generation(), g.as_i64(), "{what}: generation"),
        // e.g. `-0`, which serde_json reads as a float: nothing to compare.
        Some(_) => {}
    }
    let labels: BTreeMap<&str, &str> = obj.labels().collect();
    assert_eq!(labels.len(), obj.labels().len(), "{what}: duplicate labels");
    let want: BTreeMap<&str, &str> = match m.get("labels") {
        Some(Value::Object(l)) => l.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("\u{0}not a string"))).collect(),
        _ => BTreeMap::new(),
    };
    assert_eq!(labels, want, "{what}: labels");
    let owners: Vec<_> = obj.owner_references().collect();
    let want_owners = m.get("ownerReferences").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    assert_eq!(owners.len(), want_owners.len(), "{what}: owner count");
    for (o, w) in owners.iter().zip(want_owners) {
        let ws = |k: &str| w.get(k).and_then(Value::as_str).unwrap_or("");
        assert_eq!(
            (o.api_version, o.kind, o.name, o.uid, o.controller),
            (ws("apiVersion"), ws("kind"), ws("name"), ws("uid"), w.get("controller") == Some(&Value::Bool(true))),
            "{what}: owner reference"
        );
    }
    for (i, p) in INDEX_FIELDS.iter().enumerate() {
        let got = obj.field(i);
        match v.pointer(p) {
            Some(Value::String(s)) => assert_eq!(got, Some(s.as_str()), "{what}: field {p}"),
            Some(Value::Bool(b)) => assert_eq!(got, Some(if *b { "true" } else { "false" }), "{what}: field {p}"),
            Some(Value::Number(n)) => {
                let raw = got.unwrap_or_else(|| panic!("{what}: field {p} missing, want {n}"));
                let parsed: f64 = raw.parse().unwrap_or_else(|_| panic!("{what}: field {p} = {raw:?} is not a number"));
                assert_eq!(Some(parsed), n.as_f64(), "{what}: field {p} = {raw:?}");
            }
            _ => assert_eq!(got, None, "{what}: field {p}"),
        }
    }
}

/// Panics unless `obj`'s stored bytes are JSON, and, when the wire document
/// had no duplicate member names (`wire_unique`) and the stored bytes parse,
/// unless its accessors agree with them (spans point at the right bytes after
/// managedFields stripping).
///
/// The wire document matters, not only the stored bytes: with two
/// `managedFields` members only the last is cut, so stored bytes can look
/// duplicate-free while the spans were taken from a document that was not.
pub fn assert_obj_self_consistent(obj: &Obj, what: &str, wire_unique: bool) {
    assert!(is_json_grammar(&obj.json()), "{what}: stored bytes are not json: {:?}", String::from_utf8_lossy(&obj.json()));
    assert!(std::str::from_utf8(&obj.json()).is_ok(), "{what}: stored bytes are not utf-8");
    if !wire_unique {
        return;
    }
    if let Some(v) = value_without_duplicates(&obj.json()) {
        assert_obj_matches(obj, &v, what);
    }
}

/// `v` without `metadata.managedFields`: what a stripping decoder must store.
pub fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

/// Panics unless `st` agrees with `v` (a Status read by serde_json).
pub fn assert_status_matches(st: &ApiStatus, v: &Value, what: &str) {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    assert_eq!(st.status, s("status"), "{what}: status");
    assert_eq!(st.reason, s("reason"), "{what}: reason");
    assert_eq!(st.message, s("message"), "{what}: message");
    if let Some(c) = v.get("code").and_then(Value::as_u64) {
        assert_eq!(u64::from(st.code), c, "{what}: code");
    }
    let cont = v["metadata"].get("continue").and_then(Value::as_str).filter(|c| !c.is_empty());
    assert_eq!(st.continue_token.as_deref(), cont, "{what}: continue");
}

/// One framing outcome, comparable between the framer and the reference.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A document.
    Doc(Vec<u8>),
    /// A line over the limit.
    TooLarge,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

/// What a watch framer with `limit` must produce from `body`, computed the
/// slow way: split on `\n`, drop leading whitespace, report lines longer than
/// the limit (trailing whitespace counts), trim and skip blank lines. The last
/// line (no newline) is what `finish` returns.
pub fn reference_frames(body: &[u8], limit: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    for line in body.split(|&c| c == b'\n') {
        let start = line.iter().position(|&c| !is_ws(c)).unwrap_or(line.len());
        let line = &line[start..];
        if line.len() > limit {
            out.push(Frame::TooLarge);
            continue;
        }
        let end = line.iter().rposition(|&c| !is_ws(c)).map_or(0, |i| i + 1);
        if end > 0 {
            out.push(Frame::Doc(line[..end].to_vec()));
        }
    }
    out
}

/// Feeds `chunks` to `framer`, draining documents after each push and calling
/// `finish` at the end. `on_doc` sees each document as it comes.
pub fn run_framer(framer: &mut Framer, chunks: &[&[u8]], mut on_doc: impl FnMut(&[u8])) -> Vec<Frame> {
    let limit = framer.limit();
    let mut out = Vec::new();
    let mut take = |r: Result<bytes::Bytes, FrameError>, out: &mut Vec<Frame>| match r {
        Ok(d) => {
            assert!(d.len() <= limit, "document of {} bytes over the {limit}-byte limit", d.len());
            on_doc(&d);
            out.push(Frame::Doc(d.to_vec()));
        }
        Err(FrameError::TooLarge { .. }) => out.push(Frame::TooLarge),
        Err(e) => panic!("unexpected frame error {e:?}"),
    };
    for c in chunks {
        framer.push(bytes::Bytes::copy_from_slice(c));
        while let Some(r) = framer.next_document() {
            take(r, &mut out);
        }
    }
    match framer.finish() {
        Ok(Some(d)) => take(Ok(d), &mut out),
        Ok(None) => {}
        Err(e) => take(Err(e), &mut out),
    }
    out
}

/// Splits `data` into framer limit, chunk sizes and body.
///
/// Layout: byte 0 picks the limit (even: 1 MiB, odd: `1 + (b >> 1) * 16`),
/// byte 1 the number `m < 16` of chunk-size bytes that follow (each a size
/// `1..=256`, used cyclically; `m = 0` sends the body as one chunk), then the body.
pub fn split_framer_input(data: &[u8]) -> (usize, Vec<&[u8]>) {
    let b0 = data.first().copied().unwrap_or(0);
    let limit = if b0 & 1 == 0 { 1 << 20 } else { 1 + usize::from(b0 >> 1) * 16 };
    let m = usize::from(data.get(1).copied().unwrap_or(0) % 16);
    let sizes: Vec<usize> = data.get(2..2 + m).unwrap_or_default().iter().map(|&s| usize::from(s) + 1).collect();
    let body = data.get((2 + m).min(data.len())..).unwrap_or_default();
    let mut chunks = Vec::new();
    if sizes.is_empty() {
        chunks.push(body);
    } else {
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            let (a, b) = rest.split_at(n);
            chunks.push(a);
            rest = b;
            i += 1;
        }
    }
    (limit, chunks)
}
