//! The patch verb: PATCH with a merge patch (RFC 7386) or a JSON patch
//! (RFC 6902), of a whole object or of its `status` subresource.
//!
//! # Guarantees
//! * A merge patch that leaves `spec` and the server-owned fields alone takes
//!   the lazy path ([`crate::sim::lazy`]): only what the patch reaches is
//!   parsed, and the bytes written are exactly the full path's.
//! * A patch carrying a `metadata.resourceVersion` other than the stored one
//!   answers 409 Conflict, on either path.
//! * The finalizer rules of [`super::finalize`] apply.
//! * A JSON patch's `test` passes and fails as on a real server (a `null` test
//!   of a missing member passes), and a failed operation answers its 422.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::finalize::{answer_to_deleting_write, settle};
use super::object::{EventType, ResourceId, Stored, key_of};
use super::prepare::{
    CARRIED_METADATA, FieldRef, Prepared, RV_PLACEHOLDER, encode, into_object, label_pairs,
    merge_server_fields, prepare, str_at,
};
use super::state::Store;
use super::strategy::patch_reaches_guarded_fields;
use crate::sim::lazy::{Field, LazyObject};
use crate::sim::resource::ResourceDef;
use crate::sim::status::ApiError;

/// The kind of PATCH body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
}

impl Store {
    /// Patches an object (PATCH). With `status_only`, only `.status` is taken from the result.
    pub(crate) fn patch(
        &self,
        res: ResourceId,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: &[u8],
        status_only: bool,
    ) -> Result<Arc<Stored>, ApiError> {
        let def = self.def(res);
        let patch_doc: Value = serde_json::from_slice(patch)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let json_patch: Option<json_patch::Patch> = match kind {
            PatchKind::Json => Some(serde_json::from_value(patch_doc.clone()).map_err(|e| {
                // A real v1.36 server decodes the list first (400) and each
                // operation only when applying it: an unknown `op` in a list
                // is the 422 of any failed operation.
                if patch_doc.is_array() {
                    json_patch_rejected()
                } else {
                    ApiError::bad_request(format!("error decoding json patch: {e}"))
                }
            })?),
            PatchKind::Merge => {
                if !patch_doc.is_object() {
                    return Err(ApiError::bad_request(
                        "error decoding merge patch: not a JSON object",
                    ));
                }
                None
            }
        };
        let key = key_of(ns, name);
        let lazy_patch = match (&patch_doc, status_only) {
            (Value::Object(p), false) if json_patch.is_none() => Some(p),
            _ => None,
        };
        loop {
            let cur = self
                .current(res, &key)
                .ok_or_else(|| ApiError::not_found(&def, name))?;
            if let Some(prepared) = lazy_patch.and_then(|p| prepare_merge_lazy(&def, name, &cur, p)) {
                if let Some(done) =
                    self.commit_if_unchanged(res, &def, name, &cur, prepared?, EventType::Modified)?
                {
                    return Ok(done);
                }
                continue;
            }
            let (prepared, ty, written) =
                prepare_patch_full(&def, name, &cur, &patch_doc, json_patch.as_ref(), status_only)?;
            if let Some(done) = self.commit_if_unchanged(res, &def, name, &cur, prepared, ty)?
            {
                return Ok(match written {
                    Some(w) => answer_to_deleting_write(&def, w, &done),
                    None => done,
                });
            }
        }
    }
}

/// What the full patch path prepares: the version to commit, its event type,
/// and for a patch that deleted the object, the patched object (the answer).
type FullPatch = (Prepared, EventType, Option<Map<String, Value>>);

/// `patch` (a JSON patch when `json_patch` is given, else a merge patch) of
/// `cur`, prepared by parsing the whole object: every patch the lazy path
/// declines, and the reference the lazy path is tested against. The event type
/// is DELETED when the patch removed the last finalizer of an object waiting
/// for it ([`super::finalize`]); the patched object is then also returned, as
/// the write's answer.
fn prepare_patch_full(
    def: &ResourceDef,
    name: &str,
    cur: &Stored,
    patch: &Value,
    json_patch: Option<&json_patch::Patch>,
    status_only: bool,
) -> Result<FullPatch, ApiError> {
    let old = into_object(cur.to_value(), &def.kind)?;
    let mut doc = Value::Object(old.clone());
    match json_patch {
        Some(p) => apply_json_patch(&mut doc, p)?,
        None => json_patch::merge(&mut doc, patch),
    }
    let patched = into_object(doc, &def.kind)?;
    let patched_rv = patched
        .get("metadata")
        .map(|m| str_at(m, "/resourceVersion"))
        .unwrap_or("");
    if !patched_rv.is_empty() && patched_rv != cur.rv.to_string() {
        return Err(ApiError::conflict(def, name));
    }
    let next = merge_server_fields(def, &old, patched, status_only);
    let ty = settle(def, name, &old, &next)?;
    if ty == EventType::Deleted {
        return Ok((prepare(def, cur.key.clone(), old), ty, Some(next)));
    }
    Ok((prepare(def, cur.key.clone(), next), ty, None))
}

/// Applies an RFC 6902 patch as the real server does (apiserver
/// pkg/endpoints/handlers/patch.go `jsonPatcher.applyJSPatch`, with
/// gopkg.in/evanphx/json-patch.v4).
///
/// Any operation that fails, a failed `test` included, answers what a real
/// v1.36 server answered to each of: a `test` of `/metadata/finalizers` against
/// a different list, of `/metadata/resourceVersion` against an old version, a
/// `remove` of `/metadata/finalizers/5` past the list's end, a `test` below a
/// missing member: HTTP 422 `{"kind":"Status","apiVersion":"v1","metadata":{},
/// "status":"Failure","message":"the server rejected our request due to an
/// error in our request","reason":"Invalid","details":{},"code":422}` (the
/// handler's `NewGenericServerResponse(422, ...)`: the patch error itself is
/// not in the answer).
fn apply_json_patch(doc: &mut Value, patch: &json_patch::Patch) -> Result<(), ApiError> {
    for op in &patch.0 {
        let applied = match op {
            json_patch::PatchOperation::Test(t) => go_test(doc, t.path.as_str(), &t.value),
            other => json_patch::patch(doc, std::slice::from_ref(other)).is_ok(),
        };
        if !applied {
            return Err(json_patch_rejected());
        }
    }
    Ok(())
}

/// The real server's answer to a JSON patch operation that fails (see [`apply_json_patch`]).
fn json_patch_rejected() -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message: "the server rejected our request due to an error in our request".to_owned(),
        details: Some(Value::Object(Map::new())),
        continue_token: None,
    }
}

/// A JSON patch `test` as evanphx/json-patch v4 `Patch.test` decides it, which
/// differs from RFC 6902 (and from the `json_patch` crate) where a member is
/// missing: a missing member of an existing object, or one that holds `null`,
/// passes a test for `null`. kube-rs's finalizer helper relies on it
/// (`test /metadata/finalizers == null` on an object without finalizers), and a
/// real v1.36 server passes it (`test /metadata/labels == null` on a configmap
/// without labels answered 200). The parent must exist and an array index must
/// be in range.
fn go_test(doc: &Value, path: &str, expected: &Value) -> bool {
    if path.is_empty() {
        return doc == expected;
    }
    let Some((parent, key)) = path.rsplit_once('/') else {
        return false;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    let found = match doc.pointer(parent) {
        Some(Value::Object(m)) => m.get(&key),
        Some(Value::Array(a)) => match key.parse::<usize>() {
            Ok(i) if i < a.len() => a.get(i),
            _ => return false,
        },
        _ => return false,
    };
    match found {
        None | Some(Value::Null) => expected.is_null(),
        Some(v) => v == expected,
    }
}

/// The merge patch `patch` of `cur`, prepared without parsing what the patch
/// does not reach (see [`crate::sim::lazy`]). `None` when this patch or object
/// needs the full path: one that may change `spec` (the generation then depends
/// on a comparison), sets `kind`/`apiVersion` or a server-owned metadata field,
/// or meets a stored key with an escape. The result is byte for byte the full
/// path's.
fn prepare_merge_lazy(
    def: &ResourceDef,
    name: &str,
    cur: &Stored,
    patch: &Map<String, Value>,
) -> Option<Result<Prepared, ApiError>> {
    if ["spec", "kind", "apiVersion"].iter().any(|k| patch.contains_key(*k))
        || patch_reaches_guarded_fields(def, patch)
    {
        return None;
    }
    let meta_patch = match patch.get("metadata") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return None,
    };
    if let Some(m) = meta_patch {
        // The full path restores these; the lazy one takes only patches that leave them alone.
        if m.contains_key("generation") || CARRIED_METADATA.iter().any(|k| m.contains_key(*k)) {
            return None;
        }
        // Finalizer changes of a terminating object may delete it or be refused.
        if m.contains_key("finalizers")
            && cur.metadata_json().windows(19).any(|w| w == br#""deletionTimestamp""#)
        {
            return None;
        }
        let want_rv = m.get("resourceVersion").and_then(Value::as_str).unwrap_or("");
        if !want_rv.is_empty() && want_rv != cur.rv.to_string() {
            return Some(Err(ApiError::conflict(def, name)));
        }
    }
    let stored = std::str::from_utf8(&cur.body).ok()?;
    let mut obj = LazyObject::parse(stored).ok()?;
    obj.merge(patch).ok()?;
    let meta = obj.object_mut("metadata").ok()?;
    // The full path writes the generation back as an integer (1 when absent).
    let generation_is_integer = matches!(
        meta.get("generation"),
        Some(Field::Raw(g)) if !g.get().is_empty() && g.get().len() < 19 && g.get().bytes().all(|b| b.is_ascii_digit())
    );
    if !generation_is_integer {
        return None;
    }
    meta.set(
        "resourceVersion",
        Field::Value(Value::String(RV_PLACEHOLDER.to_owned())),
    );
    let labels = match meta.get("labels") {
        Some(Field::Raw(_)) => cur.labels.clone(),
        Some(f) => label_pairs(&f.to_value()),
        None => Vec::new(),
    };
    let phase = match obj.get("status") {
        Some(Field::Raw(_)) => cur.phase.clone(),
        Some(Field::Object(o)) => o.get("phase").and_then(Field::as_string).unwrap_or_default(),
        Some(Field::Value(v)) => str_at(v, "/phase").to_owned(),
        None => String::new(),
    };
    let encoded = encode(def, obj.fields().map(|(k, v)| (k, FieldRef::Lazy(v))));
    Some(Ok(Prepared::new(
        cur.key.clone(),
        encoded,
        cur.name.clone(),
        cur.namespace.clone(),
        labels,
        cur.node_name.clone(),
        phase,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podgen::PodGen;
    use serde_json::json;

    fn store_with_pods(n: usize) -> (Store, ResourceId, Arc<ResourceDef>) {
        let store = Store::new(ResourceDef::defaults(), 100, 100);
        let res = store.register(ResourceDef::new("", "v1", "Pod", "pods", true));
        let pods = PodGen::new(7, "ns");
        for i in 0..n {
            store.create(res, "ns", pods.pod(i)).expect("pod is created");
        }
        let def = store.lock().resources[res].clone();
        (store, res, def)
    }

    fn same(a: &Prepared, b: &Prepared) {
        assert_eq!(String::from_utf8_lossy(&a.body), String::from_utf8_lossy(&b.body));
        assert_eq!(
            (a.rv_at, a.rest, a.meta, &a.key, &a.name, &a.namespace),
            (b.rv_at, b.rest, b.meta, &b.key, &b.name, &b.namespace)
        );
        assert_eq!((&a.labels, &a.node_name, &a.phase), (&b.labels, &b.node_name, &b.phase));
    }

    /// The lazy merge path writes exactly what parsing the whole object writes,
    /// for the patches it takes, on realistic pods.
    #[test]
    fn lazy_merge_patch_equals_the_full_path() {
        let (store, res, def) = store_with_pods(5);
        let patches = [
            json!({"metadata": {"annotations": {"loadgen.kcache.io/sent-at": "123"}}}),
            json!({"metadata": {"annotations": null}}),
            json!({"metadata": {"labels": {"app": "other", "new": "x", "pod-template-hash": null}}}),
            json!({"metadata": {"finalizers": ["a/b"], "ownerReferences": null}}),
            json!({"aaa": {"b": 1}, "zzz": [1, 2], "metadata": {"resourceVersion": null}}),
            json!({}),
        ];
        for (i, patch) in patches.iter().enumerate() {
            let name = PodGen::name(i % 5);
            let cur = store.current(res, &key_of("ns", &name)).expect("pod exists");
            let p = patch.as_object().expect("patch is an object");
            let lazy = prepare_merge_lazy(&def, &name, &cur, p)
                .unwrap_or_else(|| panic!("lazy path declined {patch}"))
                .expect("patch applies");
            let (full, _, _) = prepare_patch_full(&def, &name, &cur, patch, None, false).expect("patch applies");
            same(&lazy, &full);
        }
    }

    #[test]
    fn lazy_merge_patch_declines_what_it_cannot_do_exactly() {
        let (store, res, def) = store_with_pods(1);
        let name = PodGen::name(0);
        let cur = store.current(res, &key_of("ns", &name)).expect("pod exists");
        for patch in [
            json!({"spec": {"nodeName": "n"}}),
            json!({"kind": "Pod"}),
            json!({"metadata": {"uid": "x"}}),
            json!({"metadata": {"generation": 5}}),
            json!({"metadata": null}),
            // A pod's status is its subresource's: the full path restores it.
            json!({"status": {"phase": "Failed", "conditions": null}}),
            json!({"status": null}),
        ] {
            assert!(prepare_merge_lazy(&def, &name, &cur, patch.as_object().unwrap()).is_none(), "{patch}");
        }
    }

    #[test]
    fn lazy_merge_patch_checks_the_resource_version_precondition() {
        let (store, res, def) = store_with_pods(1);
        let name = PodGen::name(0);
        let cur = store.current(res, &key_of("ns", &name)).expect("pod exists");
        let stale = json!({"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}});
        let r = prepare_merge_lazy(&def, &name, &cur, stale.as_object().unwrap()).expect("lazy path takes it");
        assert_eq!(r.err().map(|e| e.code), Some(409));
        let fresh = json!({"metadata": {"resourceVersion": cur.rv.to_string()}});
        assert!(prepare_merge_lazy(&def, &name, &cur, fresh.as_object().unwrap()).expect("taken").is_ok());
    }

    /// JSON patch `test` ops decide as the real server's: a test for null
    /// passes on a missing member, and any failure is the real server's 422.
    #[test]
    fn json_patch_tests_follow_the_real_server() {
        let doc = json!({"metadata": {"name": "a", "finalizers": ["x/y"], "labels": null}});
        assert!(go_test(&doc, "/metadata/annotations", &Value::Null));
        assert!(go_test(&doc, "/metadata/labels", &Value::Null));
        assert!(go_test(&doc, "/metadata/finalizers", &json!(["x/y"])));
        assert!(go_test(&doc, "/metadata/finalizers/0", &json!("x/y")));
        assert!(!go_test(&doc, "/metadata/finalizers", &Value::Null));
        assert!(!go_test(&doc, "/metadata/finalizers/1", &Value::Null), "index out of range");
        assert!(!go_test(&doc, "/metadata/nothere/x", &Value::Null), "missing parent");
        assert!(!go_test(&doc, "/metadata/name", &json!("b")));

        let (store, res, _) = store_with_pods(1);
        let name = PodGen::name(0);
        let add = br#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["a/b"]}]"#;
        let after = store.patch(res, "ns", &name, PatchKind::Json, add, false).expect("test passes").to_value();
        assert_eq!(after["metadata"]["finalizers"], json!(["a/b"]));
        let err = store.patch(res, "ns", &name, PatchKind::Json, add, false).expect_err("the list is no longer null");
        assert_eq!(
            String::from_utf8(err.to_json()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server rejected our request due to an error in our request","reason":"Invalid","details":{},"code":422}"#
        );
        let remove_past_end = br#"[{"op":"remove","path":"/metadata/finalizers/5"}]"#;
        let err = store.patch(res, "ns", &name, PatchKind::Json, remove_past_end, false).expect_err("no such index");
        assert_eq!((err.code, err.reason), (422, "Invalid"));
        let unknown_op = br#"[{"op":"bogus","path":"/metadata/labels"}]"#;
        let err = store.patch(res, "ns", &name, PatchKind::Json, unknown_op, false).expect_err("no such op");
        assert_eq!((err.code, err.reason), (422, "Invalid"), "a real server refuses it when applying");
        let not_a_list = br#"{"op":"test"}"#;
        let err = store.patch(res, "ns", &name, PatchKind::Json, not_a_list, false).expect_err("not a list");
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
        let unchanged = store.current(res, &key_of("ns", &name)).expect("pod exists").to_value();
        assert_eq!(unchanged["metadata"]["finalizers"], json!(["a/b"]));
    }

    /// Through the public path: a patch commits, bumps the resourceVersion and
    /// keeps the server-owned fields.
    #[test]
    fn patched_object_keeps_server_fields_and_gets_a_new_version() {
        let (store, res, _) = store_with_pods(1);
        let name = PodGen::name(0);
        let before = store.current(res, &key_of("ns", &name)).expect("pod exists").to_value();
        let after = store
            .patch(res, "ns", &name, PatchKind::Merge, br#"{"metadata":{"annotations":{"k":"v"}}}"#, false)
            .expect("patch applies")
            .to_value();
        assert_eq!(after["metadata"]["annotations"]["k"], "v");
        for k in ["uid", "creationTimestamp", "generation", "name", "namespace"] {
            assert_eq!(after["metadata"][k], before["metadata"][k], "{k}");
        }
        let (b, a) = (&before["metadata"]["resourceVersion"], &after["metadata"]["resourceVersion"]);
        assert!(a.as_str().unwrap().parse::<u64>().unwrap() > b.as_str().unwrap().parse::<u64>().unwrap());
        assert_eq!(after["spec"], before["spec"]);
    }
}
