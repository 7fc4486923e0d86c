//! Test objects with owners and index fields (the `testing::pod` builder has neither).
#![allow(dead_code)]

use bytes::Bytes;
use kcache::Obj;
use kcache::object::{Meta, OwnerSpans, Span};

fn quoted(out: &mut String, s: &str) -> Span {
    out.push('"');
    let start = out.len() as u32;
    out.push_str(s);
    out.push('"');
    Span::new(start, s.len() as u32)
}

/// A pod with labels, owner uids, and `spec.nodeName` registered as field 0.
#[allow(clippy::field_reassign_with_default)] // spans are known only as the JSON is written
pub fn pod_full(ns: &str, name: &str, rv: &str, labels: &[(&str, &str)], owners: &[&str], node: Option<&str>) -> Obj {
    let mut out = String::from("{\"kind\":\"Pod\",\"metadata\":{\"name\":");
    let mut meta = Meta::default();
    meta.name = quoted(&mut out, name);
    if !ns.is_empty() {
        out.push_str(",\"namespace\":");
        meta.namespace = quoted(&mut out, ns);
    }
    out.push_str(",\"uid\":");
    meta.uid = quoted(&mut out, &format!("uid-{ns}-{name}"));
    out.push_str(",\"resourceVersion\":");
    meta.resource_version = quoted(&mut out, rv);
    out.push_str(",\"labels\":{");
    let mut ls = Vec::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let ks = quoted(&mut out, k);
        out.push(':');
        ls.push((ks, quoted(&mut out, v)));
    }
    out.push_str("},\"ownerReferences\":[");
    let mut os = Vec::new();
    for (i, uid) in owners.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"uid\":");
        os.push(OwnerSpans { uid: quoted(&mut out, uid), controller: i == 0, ..OwnerSpans::default() });
        out.push('}');
    }
    out.push_str("]},\"spec\":{");
    let mut field = None;
    if let Some(n) = node {
        out.push_str("\"nodeName\":");
        field = Some(quoted(&mut out, n));
    }
    out.push_str("}}");
    meta.labels = ls.into_boxed_slice();
    meta.owners = os.into_boxed_slice();
    meta.fields = vec![field].into_boxed_slice();
    Obj::from_parts(Bytes::from(out), meta)
}

/// A name in namespace `ns` whose key lands on shard `shard` of `n`, distinct per `i`.
pub fn name_on_shard(ns: &str, shard: usize, n: usize, i: usize) -> String {
    (0..)
        .map(|j| format!("p{i}-{j}"))
        .find(|name| kcache::store::shard_for_key(&format!("{ns}/{name}"), n) == shard)
        .unwrap_or_default()
}
