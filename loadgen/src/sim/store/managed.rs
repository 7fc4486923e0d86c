//! Field sets for server-side apply: the leaf paths a manager owns, their
//! `FieldsV1` encoding in `metadata.managedFields`, and reading, merging and
//! removing the values at those paths.
//!
//! # Guarantees
//! * A path is a list of `FieldsV1` segments (`f:<field>` or
//!   `k:{"<key>":<value>}`), so a set read from `FieldsV1` and written back is
//!   the same JSON (keys sorted, as serde_json writes them).
//! * Lists named in [`merge_keys`] are maps keyed by their merge key; every
//!   other list is atomic: one leaf, compared and replaced as a whole. So is
//!   an object named `selector`; every other object is granular.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One leaf (or keyed list item) path, as `FieldsV1` segments.
pub(super) type FieldPath = Vec<String>;

/// The paths one manager owns.
pub(super) type FieldSet = BTreeSet<FieldPath>;

/// The merge keys of the lists the simulator treats as maps, by field name:
/// the pod's container lists by `name` and any `conditions` by `type`
/// (k8s.io/api/core/v1/types.go `+listMapKey` tags).
pub(super) fn merge_keys(field: &str) -> Option<&'static [&'static str]> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" => Some(&["name"]),
        "conditions" => Some(&["type"]),
        _ => None,
    }
}

/// Whether an object-valued field is owned as one leaf: a label selector
/// (`metav1.LabelSelector` is `+structType=atomic`, a Service's and a pod's
/// `selector` maps `+mapType=atomic`).
fn atomic_object(field: Option<&str>) -> bool {
    field == Some("selector")
}

/// The `k:{…}` segment of `item` in a list keyed by `keys`, when it carries them all.
fn key_segment(item: &Value, keys: &[&str]) -> Option<String> {
    let obj = item.as_object()?;
    let mut key = Map::new();
    for k in keys {
        key.insert((*k).to_owned(), obj.get(*k)?.clone());
    }
    Some(format!("k:{}", Value::Object(key)))
}

/// Whether `items` is a list keyed by `keys` (every item carries the keys).
fn keyed<'k>(field: Option<&str>, items: &[Value]) -> Option<&'k [&'k str]> {
    let keys = merge_keys(field?)?;
    items.iter().all(|i| key_segment(i, keys).is_some()).then_some(keys)
}

fn last_field(path: &[String]) -> Option<&str> {
    path.last().and_then(|s| s.strip_prefix("f:"))
}

/// The paths `value` sets, below `path`: every scalar, `null`, empty object
/// and atomic list is a leaf; a keyed list item is its own path and its fields'.
pub(super) fn collect(value: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    match value {
        Value::Object(m) if !m.is_empty() && !atomic_object(last_field(path)) => {
            for (k, v) in m {
                path.push(format!("f:{k}"));
                collect(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match keyed(last_field(path), items) {
            Some(keys) => {
                for item in items {
                    path.push(key_segment(item, keys).unwrap_or_default());
                    out.insert(path.clone());
                    collect(item, path, out);
                    path.pop();
                }
            }
            None => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// A `FieldsV1` object read into a set.
pub(super) fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        for (k, child) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            if child.as_object().is_some_and(Map::is_empty) {
                out.insert(path.clone());
            } else {
                walk(child, path, out);
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// A set written as `FieldsV1`: nested objects, `{}` for a leaf, `"."` for an
/// owned path that also has owned children.
pub(super) fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for seg in path {
            node = match node.entry(seg.clone()).or_insert_with(|| Value::Object(Map::new())) {
                Value::Object(m) => m,
                _ => unreachable!("every node is an object"),
            };
        }
    }
    // A path owned and also the parent of owned paths gets its ".".
    for path in set {
        let mut node = &mut root;
        for seg in path {
            node = match node.get_mut(seg) {
                Some(Value::Object(m)) => m,
                _ => unreachable!("built above"),
            };
        }
        if !node.is_empty() && !node.contains_key(".") {
            node.insert(".".into(), Value::Object(Map::new()));
        }
    }
    Value::Object(root)
}

/// The key fields of a `k:{…}` segment.
fn parse_key(seg: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(seg.strip_prefix("k:")?) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn matches_key(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter().all(|(k, v)| item.get(k) == Some(v))
}

/// The value at `path` in `root`.
pub(super) fn value_at<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut v = root;
    for seg in path {
        v = if let Some(f) = seg.strip_prefix("f:") {
            v.as_object()?.get(f)?
        } else {
            let key = parse_key(seg)?;
            v.as_array()?.iter().find(|i| matches_key(i, &key))?
        };
    }
    Some(v)
}

/// Removes the value at `path` from `root`, then the objects that removal
/// left empty on the way up (Go's `omitempty` would not write them).
pub(super) fn remove_at(root: &mut Value, path: &[String]) {
    fn go(v: &mut Value, path: &[String]) -> bool {
        let Some((seg, rest)) = path.split_first() else { return false };
        if let Some(f) = seg.strip_prefix("f:") {
            let Some(m) = v.as_object_mut() else { return false };
            if rest.is_empty() {
                return m.remove(f).is_some();
            }
            let removed = m.get_mut(f).is_some_and(|c| go(c, rest));
            if removed && m.get(f).is_some_and(|c| c.as_object().is_some_and(Map::is_empty)) {
                m.remove(f);
            }
            removed
        } else {
            let (Some(key), Some(items)) = (parse_key(seg), v.as_array_mut()) else { return false };
            let Some(i) = items.iter().position(|i| matches_key(i, &key)) else { return false };
            if rest.is_empty() {
                items.remove(i);
                return true;
            }
            go(&mut items[i], rest)
        }
    }
    go(root, path);
}

/// Merges the applied configuration `applied` into `live`: objects field by
/// field, keyed lists item by item (new items appended), anything else replaced.
pub(super) fn merge(live: &mut Value, applied: &Value, field: Option<&str>) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !atomic_object(field) => {
            for (k, av) in a {
                match l.get_mut(k) {
                    Some(lv) => merge(lv, av, Some(k)),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) if keyed(field, a).is_some() && keyed(field, l).is_some() => {
            let keys = keyed(field, a).unwrap_or_default();
            for ai in a {
                let seg = key_segment(ai, keys).unwrap_or_default();
                let key = parse_key(&seg).unwrap_or_default();
                match l.iter_mut().find(|li| matches_key(li, &key)) {
                    Some(li) => merge(li, ai, None),
                    None => l.push(ai.clone()),
                }
            }
        }
        (l, a) => *l = a.clone(),
    }
}

/// A path as apimachinery's `fieldpath.Path.String()` writes it:
/// `.spec.containers[name="a"].image`.
pub(super) fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(key) = parse_key(seg) {
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push('[');
            out.push_str(&parts.join(","));
            out.push(']');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set_of(v: &Value) -> FieldSet {
        let mut out = FieldSet::new();
        collect(v, &mut Vec::new(), &mut out);
        out
    }

    #[test]
    fn fields_v1_round_trips_and_matches_the_real_servers_shape() {
        // What kube-apiserver v1.36 answered for this applied pod spec.
        let applied = json!({"spec": {"containers": [{"name": "a", "image": "busybox", "args": ["x"]}]}});
        let set = set_of(&applied);
        let expected = json!({"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}}}});
        assert_eq!(to_fields_v1(&set), expected);
        assert_eq!(from_fields_v1(&expected), set);
    }

    #[test]
    fn values_are_found_merged_and_removed_by_path() {
        let mut live = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}, "data": {"k": "v"}});
        let path: FieldPath = vec!["f:spec".into(), "f:containers".into(), r#"k:{"name":"b"}"#.into(), "f:image".into()];
        assert_eq!(value_at(&live, &path), Some(&json!("y")));
        assert_eq!(path_string(&path), r#".spec.containers[name="b"].image"#);
        merge(&mut live, &json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c"}]}}), None);
        assert_eq!(live["spec"]["containers"], json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c"}]));
        remove_at(&mut live, &path[..3]);
        assert_eq!(live["spec"]["containers"], json!([{"name": "a", "image": "x"}, {"name": "c"}]));
        remove_at(&mut live, &["f:data".to_owned(), "f:k".to_owned()]);
        assert!(live.get("data").is_none(), "an object emptied by a removal goes too");
    }

    #[test]
    fn other_lists_and_selectors_are_atomic() {
        let set = set_of(&json!({"spec": {"args": ["a", "b"], "selector": {"matchLabels": {"app": "x"}}}}));
        assert_eq!(to_fields_v1(&set), json!({"f:spec": {"f:args": {}, "f:selector": {}}}));
        let mut live = json!({"selector": {"matchLabels": {"app": "x"}}});
        merge(&mut live, &json!({"selector": {"matchExpressions": []}}), None);
        assert_eq!(live, json!({"selector": {"matchExpressions": []}}), "an atomic object is replaced");
    }
}
