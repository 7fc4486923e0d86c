//! Builders for objects in tests and examples, without going through the decoder.

use super::{Body, Meta, Obj, OwnerSpans, Span};
use bytes::Bytes;
use std::sync::Arc;

/// A copy of a compressed `obj` with the byte at `at` (modulo the frame's length)
/// of its zstd frame flipped, to test that a corrupt frame is refused; `None` for
/// an uncompressed object.
pub fn corrupt_frame(obj: &Obj, at: usize) -> Option<Obj> {
    let Body::Zstd(dict) = obj.body() else { return None };
    let mut frame = obj.stored_bytes().to_vec();
    let i = at % frame.len();
    frame[i] ^= 0x5a;
    let json_len = obj.frame_json_len()?;
    Some(crate::arena::Arena::new().store_frame(&frame, json_len, obj.meta().clone(), Arc::clone(dict)))
}

/// A minimal pod whose spans are recorded as its JSON is written.
///
/// `namespace` may be empty for a cluster-scoped object. Strings must not
/// need JSON escaping.
pub fn pod(namespace: &str, name: &str, resource_version: &str, labels: &[(&str, &str)]) -> Obj {
    object("Pod", namespace, name, resource_version, labels)
}

/// A minimal object of any kind, built like [`pod`].
pub fn object(kind: &str, namespace: &str, name: &str, resource_version: &str, labels: &[(&str, &str)]) -> Obj {
    let (mut out, meta) = metadata(kind, namespace, name, resource_version, labels);
    out.push_str("}}");
    Obj::from_parts(Bytes::from(out), meta)
}

/// A pod like [`pod`] that also has `ownerReferences` with the uids `owners`
/// (the first is the controller) and, as index field 0, `spec.nodeName`
/// (`None` leaves it out): for tests of the owner and field indexes.
pub fn pod_full(
    namespace: &str,
    name: &str,
    resource_version: &str,
    labels: &[(&str, &str)],
    owners: &[&str],
    node: Option<&str>,
) -> Obj {
    let (mut out, mut meta) = metadata("Pod", namespace, name, resource_version, labels);
    out.push_str(",\"ownerReferences\":[");
    let mut spans = Vec::with_capacity(owners.len());
    for (i, uid) in owners.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"uid\":");
        spans.push(OwnerSpans { uid: quoted(&mut out, uid), controller: i == 0, ..OwnerSpans::default() });
        out.push('}');
    }
    out.push_str("]},\"spec\":{");
    let mut node_span = None;
    if let Some(n) = node {
        out.push_str("\"nodeName\":");
        node_span = Some(quoted(&mut out, n));
    }
    out.push_str("}}");
    meta.owners = spans.into_boxed_slice();
    meta.fields = vec![node_span].into_boxed_slice();
    Obj::from_parts(Bytes::from(out), meta)
}

/// The JSON of an object up to the end of its metadata's members (the
/// metadata object is left open) and the spans recorded on the way.
fn metadata(kind: &str, namespace: &str, name: &str, resource_version: &str, labels: &[(&str, &str)]) -> (String, Meta) {
    let mut out = String::with_capacity(256);
    let mut meta = Meta::default();
    out.push_str("{\"kind\":\"");
    out.push_str(kind);
    out.push_str("\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":");
    meta.name = quoted(&mut out, name);
    if !namespace.is_empty() {
        out.push_str(",\"namespace\":");
        meta.namespace = quoted(&mut out, namespace);
    }
    out.push_str(",\"uid\":");
    let uid = format!("uid-{namespace}-{name}");
    meta.uid = quoted(&mut out, &uid);
    out.push_str(",\"resourceVersion\":");
    meta.resource_version = quoted(&mut out, resource_version);
    let mut spans = Vec::with_capacity(labels.len());
    if !labels.is_empty() {
        out.push_str(",\"labels\":{");
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let ks = quoted(&mut out, k);
            out.push(':');
            let vs = quoted(&mut out, v);
            spans.push((ks, vs));
        }
        out.push('}');
    }
    meta.labels = spans.into_boxed_slice();
    (out, meta)
}

fn quoted(out: &mut String, s: &str) -> Span {
    out.push('"');
    let start = out.len() as u32;
    out.push_str(s);
    out.push('"');
    Span::new(start, s.len() as u32)
}
