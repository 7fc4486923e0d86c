//! Owner references to queue keys: which owner an owned object's event concerns.
//!
//! # Guarantees
//! * An owner reference matches a kind by the group of its `apiVersion` and its
//!   `kind`, never by `kind` alone: `apps/v1 ReplicaSet` and `example.com/v1 ReplicaSet`
//!   are different owners. The version is not compared, so a reference written with an
//!   older version of the owner's API still finds it.
//! * The owner's namespace follows the owner kind's scope: the child's namespace for a
//!   namespaced owner, none for a cluster-scoped one.
//! * A reference with a malformed `apiVersion` (empty, or more than one `/`, or an
//!   empty part) or no name is skipped and reported as an [`OwnerRefError`]; the other
//!   references of the object are still mapped.

use super::key::{Kind, ReconcileKey, Scope};
use crate::Obj;
use crate::object::OwnerRef;

/// Why an owner reference could not be mapped to a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnerRefError {
    /// `apiVersion` is neither `version` (the core group) nor `group/version`.
    #[error("owner reference {kind}/{name} of {child} has a malformed apiVersion {api_version:?}")]
    MalformedApiVersion {
        /// The child's key (`namespace/name`).
        child: String,
        /// The reference's `apiVersion`.
        api_version: String,
        /// The reference's `kind`.
        kind: String,
        /// The reference's `name`.
        name: String,
    },
    /// The reference names no object.
    #[error("owner reference {kind} of {child} has no name")]
    MissingName {
        /// The child's key (`namespace/name`).
        child: String,
        /// The reference's `kind`.
        kind: String,
    },
}

/// The group of an `apiVersion`: `""` for `v1`, `apps` for `apps/v1`; `None` when it
/// is malformed.
///
/// apimachinery's `schema.ParseGroupVersion` (k8s.io/apimachinery/pkg/runtime/schema/group_version.go)
/// accepts exactly these two shapes.
pub fn group_of(api_version: &str) -> Option<&str> {
    match api_version.split_once('/') {
        None if !api_version.is_empty() => Some(""),
        Some((group, version)) if !group.is_empty() && !version.is_empty() && !version.contains('/') => Some(group),
        _ => None,
    }
}

/// Maps the owner references of `child` that name an object of `owner` to that
/// owner's keys (only those with `controller: true` when `controller_only`), and the
/// references that are malformed to errors.
///
/// ```
/// use std::sync::Arc;
/// use kcache::controller::{Scope, owner_keys};
/// use kube::core::GroupVersionKind;
///
/// let child = kcache::wire::Decoder::new(Default::default()).decode_object(br#"{"metadata":{"namespace":"ns","name":"p",
///     "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u","controller":true}]}}"#).unwrap();
/// let rs = Arc::new(GroupVersionKind::gvk("apps", "v1", "ReplicaSet"));
/// let keys = owner_keys(&child, &rs, Scope::Namespaced, true);
/// assert_eq!(keys[0].as_ref().unwrap().to_string(), "ReplicaSet.v1.apps/rs.ns");
/// ```
pub fn owner_keys(child: &Obj, owner: &Kind, scope: Scope, controller_only: bool) -> Vec<Result<ReconcileKey, OwnerRefError>> {
    child
        .owner_references()
        .filter_map(|r| owner_key(child, &r, owner, scope, controller_only).transpose())
        .collect()
}

/// The key `r` names if it is an owner of kind `owner`; `Ok(None)` if it is not.
pub(crate) fn owner_key(
    child: &Obj,
    r: &OwnerRef<'_>,
    owner: &Kind,
    scope: Scope,
    controller_only: bool,
) -> Result<Option<ReconcileKey>, OwnerRefError> {
    let Some(group) = group_of(r.api_version) else {
        return Err(OwnerRefError::MalformedApiVersion {
            child: child.key(),
            api_version: r.api_version.to_owned(),
            kind: r.kind.to_owned(),
            name: r.name.to_owned(),
        });
    };
    if group != owner.group || r.kind != owner.kind || (controller_only && !r.controller) {
        return Ok(None);
    }
    if r.name.is_empty() {
        return Err(OwnerRefError::MissingName { child: child.key(), kind: r.kind.to_owned() });
    }
    let namespace = match scope {
        Scope::Namespaced => child.namespace(),
        Scope::Cluster => None,
    };
    Ok(Some(ReconcileKey::new(owner.clone(), namespace, r.name)))
}

/// Whether two versions of an object name different owners: compared by the
/// references' text (apiVersion, kind, name, uid, controller), not by where the text
/// sits in the JSON, which says nothing about what it says.
pub(crate) fn owners_differ(old: &Obj, new: &Obj) -> bool {
    !old.owner_references().eq(new.owner_references())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Decoder, DecoderConfig};
    use kube::core::GroupVersionKind;
    use std::sync::Arc;

    fn obj(json: &str) -> Obj {
        Decoder::new(DecoderConfig::default()).decode_object(json.as_bytes()).unwrap()
    }

    #[test]
    fn api_versions_parse_like_apimachinery() {
        assert_eq!(group_of("v1"), Some(""));
        assert_eq!(group_of("apps/v1"), Some("apps"));
        for bad in ["", "/v1", "apps/", "a/b/c", "/"] {
            assert_eq!(group_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn owners_match_by_group_and_kind_and_scope_decides_the_namespace() {
        let child = obj(
            r#"{"metadata":{"namespace":"ns","name":"p","ownerReferences":[
            {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"a","controller":true},
            {"apiVersion":"example.com/v1","kind":"ReplicaSet","name":"b","controller":true},
            {"apiVersion":"v1","kind":"Node","name":"n1"},
            {"apiVersion":"a/b/c","kind":"ReplicaSet","name":"c"}]}}"#,
        );
        let rs = Arc::new(GroupVersionKind::gvk("apps", "v1beta2", "ReplicaSet"));
        let keys = owner_keys(&child, &rs, Scope::Namespaced, false);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0], Ok(ReconcileKey::new(rs.clone(), Some("ns"), "a")));
        assert!(matches!(&keys[1], Err(OwnerRefError::MalformedApiVersion { api_version, .. }) if api_version == "a/b/c"));
        let node = Arc::new(GroupVersionKind::gvk("", "v1", "Node"));
        let keys: Vec<_> = owner_keys(&child, &node, Scope::Cluster, false).into_iter().filter_map(Result::ok).collect();
        assert_eq!(keys, vec![ReconcileKey::new(node.clone(), None, "n1")]);
        assert!(owner_keys(&child, &node, Scope::Cluster, true).iter().all(Result::is_err), "n1 is not the controller");
    }
}
