//! Write preparation: turning the next version of an object into its stored
//! bytes outside the state lock, with a placeholder where the resourceVersion
//! goes, plus the JSON helpers every verb shares.
//!
//! # Guarantees
//! * Objects are written as `{"kind","apiVersion","metadata",spec,status,rest…}`
//!   (the rest in key order), whichever path built them, so equal objects are
//!   equal bytes.
//! * [`Prepared::finish`] only splices the resourceVersion in: the one piece of
//!   work done under the lock is one copy of the bytes.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::object::Stored;
use crate::sim::lazy::{Field, write_key};
use crate::sim::resource::ResourceDef;
use super::strategy::{drop_empty_metadata, prepare_for_update};
use crate::sim::status::{ApiError, write_json};

/// The string at JSON pointer `ptr` in `v` (empty when absent or not a string).
pub(super) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// A top-level field value, from a parsed object or a lazily patched one.
#[derive(Clone, Copy)]
pub(super) enum FieldRef<'x, 'a> {
    Json(&'x Value),
    Lazy(&'x Field<'a>),
}

impl FieldRef<'_, '_> {
    fn write(self, out: &mut Vec<u8>) {
        match self {
            FieldRef::Json(v) => write_json(out, v),
            FieldRef::Lazy(f) => f.write(out),
        }
    }
}

/// An encoded object: its bytes, the offset of `"metadata":` and the byte range
/// of the metadata object.
pub(super) type Encoded = (Vec<u8>, usize, (usize, usize));

/// Serialises an object as `{"kind","apiVersion","metadata",spec,status,rest…}`
/// (the rest in key order) and records where metadata sits. `fields` are the
/// object's top-level fields; its own `kind`/`apiVersion` give way to `def`'s.
pub(super) fn encode<'x, 'a>(
    def: &ResourceDef,
    fields: impl Iterator<Item = (&'x str, FieldRef<'x, 'a>)>,
) -> Encoded
where
    'a: 'x,
{
    let mut metadata = None;
    let mut rest: Vec<(u8, &str, FieldRef<'_, '_>)> = Vec::with_capacity(8);
    for (k, v) in fields {
        match k {
            "kind" | "apiVersion" => {}
            "metadata" => metadata = Some(v),
            "spec" => rest.push((0, k, v)),
            "status" => rest.push((1, k, v)),
            _ => rest.push((2, k, v)),
        }
    }
    rest.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(br#"{"kind":"#);
    write_json(&mut out, &Value::String(def.kind.clone()));
    out.extend_from_slice(br#","apiVersion":"#);
    write_json(&mut out, &Value::String(def.api_version()));
    out.push(b',');
    let rest_at = out.len();
    out.extend_from_slice(br#""metadata":"#);
    let meta_start = out.len();
    match metadata {
        Some(m) => m.write(&mut out),
        None => out.extend_from_slice(b"{}"),
    }
    let meta_end = out.len();
    for (_, k, v) in rest {
        out.push(b',');
        write_key(&mut out, k);
        v.write(&mut out);
    }
    out.push(b'}');
    (out, rest_at, (meta_start, meta_end))
}

/// Placeholder stamped into `metadata.resourceVersion` before the real value is
/// known; serde_json writes U+0001 as `\u0001`.
pub(super) const RV_PLACEHOLDER: &str = "\u{1}";
const RV_PLACEHOLDER_JSON: &[u8] = br#""resourceVersion":"\u0001""#;

/// An object serialised outside the state lock, waiting for its resourceVersion.
pub(crate) struct Prepared {
    pub(super) key: String,
    pub(super) body: Vec<u8>,
    /// Offset of the placeholder's escaped text (`\u0001`, 6 bytes) in `body`.
    pub(super) rv_at: usize,
    pub(super) rest: usize,
    pub(super) meta: (usize, usize),
    pub(super) name: String,
    pub(super) namespace: String,
    pub(super) labels: Vec<(String, String)>,
    pub(super) node_name: String,
    pub(super) phase: String,
}

/// Serialises `obj` with a placeholder resourceVersion and extracts what
/// selectors need: all the per-write CPU work, done without the lock.
pub(super) fn prepare(def: &ResourceDef, key: String, mut obj: Map<String, Value>) -> Prepared {
    let meta = meta_mut(&mut obj);
    drop_empty_metadata(meta);
    meta.insert(
        "resourceVersion".into(),
        Value::String(RV_PLACEHOLDER.to_owned()),
    );
    let (body, rest, meta) = encode(def, obj.iter().map(|(k, v)| (k.as_str(), FieldRef::Json(v))));
    let field = |top: &str, ptr: &str| obj.get(top).map_or("", |v| str_at(v, ptr)).to_owned();
    let labels = obj
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .map(label_pairs)
        .unwrap_or_default();
    Prepared::new(
        key,
        (body, rest, meta),
        field("metadata", "/name"),
        field("metadata", "/namespace"),
        labels,
        field("spec", "/nodeName"),
        field("status", "/phase"),
    )
}

/// The pairs of a `metadata.labels` value (none when it is not an object).
pub(super) fn label_pairs(labels: &Value) -> Vec<(String, String)> {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

impl Prepared {
    /// An encoded object (see [`encode`]) and its selector fields.
    pub(super) fn new(
        key: String,
        (body, rest, meta): Encoded,
        name: String,
        namespace: String,
        labels: Vec<(String, String)>,
        node_name: String,
        phase: String,
    ) -> Prepared {
        let rv_at = body[meta.0..meta.1]
            .windows(RV_PLACEHOLDER_JSON.len())
            .position(|w| w == RV_PLACEHOLDER_JSON)
            .map_or(0, |p| meta.0 + p + RV_PLACEHOLDER_JSON.len() - 7);
        Prepared { key, body, rv_at, rest, meta, name, namespace, labels, node_name, phase }
    }

    /// Splices the resourceVersion in (one copy of the bytes).
    pub(super) fn finish(self, rv: u64) -> Stored {
        let rv_s = rv.to_string();
        let mut body = Vec::with_capacity(self.body.len() + rv_s.len());
        body.extend_from_slice(&self.body[..self.rv_at]);
        body.extend_from_slice(rv_s.as_bytes());
        body.extend_from_slice(&self.body[self.rv_at + 6..]);
        let grow = rv_s.len();
        Stored {
            key: self.key,
            name: self.name,
            namespace: self.namespace,
            rv,
            labels: self.labels,
            node_name: self.node_name,
            phase: self.phase,
            body: Bytes::from(body),
            rest: self.rest,
            meta: (self.meta.0, self.meta.1 + grow - 6),
        }
    }
}

/// Metadata fields every write carries over from the version before it
/// (`generation` is the server's too, but computed: see [`merge_server_fields`]).
pub(super) const CARRIED_METADATA: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "name",
    "namespace",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Carries the server-owned fields (uid, creationTimestamp, generation, name,
/// namespace) from `old` into the next version built from `new`.
pub(super) fn merge_server_fields(
    def: &ResourceDef,
    old: &Map<String, Value>,
    mut new: Map<String, Value>,
    status_only: bool,
) -> Map<String, Value> {
    if status_only {
        let mut next = old.clone();
        match new.remove("status") {
            Some(s) => next.insert("status".into(), s),
            None => next.remove("status"),
        };
        return next;
    }
    prepare_for_update(def, old, &mut new);
    let spec_changed = old.get("spec") != new.get("spec");
    let empty = Map::new();
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let meta = meta_mut(&mut new);
    for k in CARRIED_METADATA {
        match old_meta.get(k) {
            Some(v) => meta.insert(k.into(), v.clone()),
            None => meta.remove(k),
        };
    }
    let generation = old_meta
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    meta.insert(
        "generation".into(),
        Value::from(if spec_changed {
            generation + 1
        } else {
            generation
        }),
    );
    new.remove("kind");
    new.remove("apiVersion");
    new
}

/// The object's `metadata` map, made an empty object first if absent or not an object.
pub(super) fn meta_mut(obj: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// A request body as a JSON object, or the real server's 400.
pub(super) fn into_object(v: Value, kind: &str) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request(format!(
            "the body of the request is not a JSON object (expected a {kind})"
        ))),
    }
}

/// Refuses a body whose `kind` or `apiVersion` names another resource.
pub(super) fn check_type(def: &ResourceDef, obj: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            def.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
        && av != def.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    Ok(())
}
