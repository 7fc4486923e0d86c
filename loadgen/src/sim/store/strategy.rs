//! What the real server's registry strategies do to an object before it is
//! stored: the status a create starts with, the status an ordinary update may
//! not change, and the empty metadata collections Go's encoder never writes.
//!
//! # Guarantees
//! * A POST of a pod starts with `status: {phase: Pending, qosClass}` whatever
//!   the body said (pkg/registry/core/pod/strategy.go `PrepareForCreate`); of a
//!   namespace with `status.phase: Active` and the `kubernetes` finalizer
//!   (pkg/registry/core/namespace/strategy.go); of a deployment with an empty
//!   status (pkg/registry/apps/deployment/strategy.go). Nodes keep theirs.
//!   The bulk load ([`super::Store::create_many`]) keeps what it is given: it
//!   plays objects that kubelets and controllers have long since written.
//! * An update or patch of the main resource of a kind with a `status`
//!   subresource keeps the stored status (each strategy's `PrepareForUpdate`);
//!   a namespace also keeps its `spec.finalizers`.
//! * `metadata.finalizers`, `labels`, `annotations` and `ownerReferences` that
//!   are empty are dropped (ObjectMeta's fields are `omitempty`).

use serde_json::{Map, Value};

use crate::sim::resource::ResourceDef;

/// Whether objects of `def` have a `status` subresource, as the real server
/// serves them (pods, nodes, namespaces, deployments).
fn has_status_subresource(def: &ResourceDef) -> bool {
    matches!((def.group.as_str(), def.kind.as_str()), ("", "Pod" | "Node" | "Namespace") | ("apps", "Deployment"))
}

/// A pod's QoS class from its containers' requests and limits
/// (pkg/apis/core/helper/qos/qos.go `GetPodQOS`, for cpu and memory).
fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers = spec
        .into_iter()
        .flat_map(|s| ["initContainers", "containers"].map(|k| s.get(k)))
        .flatten()
        .filter_map(Value::as_array)
        .flatten();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = &c["resources"];
        for r in ["cpu", "memory"] {
            let (req, lim) = (res["requests"].get(r), res["limits"].get(r));
            any |= req.is_some() || lim.is_some();
            // Without a request, the limit is the request (defaulting).
            if lim.is_none() || req.is_some_and(|q| Some(q) != lim) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Sets what a POST of `obj` starts with on the real server.
pub(super) fn prepare_for_create(def: &ResourceDef, obj: &mut Map<String, Value>) {
    match def.kind.as_str() {
        "Pod" if def.group.is_empty() => {
            let qos = qos_class(obj.get("spec"));
            obj.insert("status".into(), serde_json::json!({"phase": "Pending", "qosClass": qos}));
        }
        "Namespace" if def.group.is_empty() => {
            obj.insert("status".into(), serde_json::json!({"phase": "Active"}));
            let spec = obj.entry("spec").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(spec) = spec
                && !spec.get("finalizers").and_then(Value::as_array).is_some_and(|f| f.iter().any(|f| f == "kubernetes"))
            {
                let mut list = spec.get("finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
                list.push(Value::from("kubernetes"));
                spec.insert("finalizers".into(), Value::Array(list));
            }
        }
        "Deployment" if def.group == "apps" => {
            obj.insert("status".into(), Value::Object(Map::new()));
        }
        _ => {}
    }
}

/// Carries into `next` what an update of the main resource may not change.
pub(super) fn prepare_for_update(def: &ResourceDef, old: &Map<String, Value>, next: &mut Map<String, Value>) {
    if !has_status_subresource(def) {
        return;
    }
    match old.get("status") {
        Some(s) => next.insert("status".into(), s.clone()),
        None => next.remove("status"),
    };
    if def.kind == "Namespace" {
        let kept = old.get("spec").and_then(|s| s.get("finalizers")).cloned();
        let spec = next.entry("spec").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(spec) = spec {
            match kept {
                Some(f) => spec.insert("finalizers".into(), f),
                None => spec.remove("finalizers"),
            };
        }
    }
}

/// Whether a merge patch of the main resource touches what
/// [`prepare_for_update`] restores (the lazy patch path then declines it).
pub(super) fn patch_reaches_guarded_fields(def: &ResourceDef, patch: &Map<String, Value>) -> bool {
    has_status_subresource(def) && patch.contains_key("status")
}

/// Drops the empty metadata collections Go's encoder leaves out.
pub(super) fn drop_empty_metadata(meta: &mut Map<String, Value>) {
    for k in ["finalizers", "ownerReferences", "labels", "annotations"] {
        let empty = match meta.get(k) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn a_created_pod_starts_pending_with_its_qos_class() {
        let pod = ResourceDef::new("", "v1", "Pod", "pods", true);
        for (resources, qos) in [
            (json!({}), "BestEffort"),
            (json!({"requests": {"cpu": "1"}}), "Burstable"),
            (json!({"limits": {"cpu": "1", "memory": "1Gi"}}), "Guaranteed"),
            (json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}), "Burstable"),
        ] {
            let mut o = obj(json!({"spec": {"containers": [{"name": "a", "resources": resources}]},
                                   "status": {"phase": "Running", "podIP": "10.0.0.1"}}));
            prepare_for_create(&pod, &mut o);
            assert_eq!(o["status"], json!({"phase": "Pending", "qosClass": qos}));
        }
    }

    #[test]
    fn a_created_namespace_is_active_with_the_kubernetes_finalizer() {
        let ns = ResourceDef::new("", "v1", "Namespace", "namespaces", false);
        let mut o = obj(json!({"metadata": {"name": "a"}}));
        prepare_for_create(&ns, &mut o);
        assert_eq!(o["status"], json!({"phase": "Active"}));
        assert_eq!(o["spec"]["finalizers"], json!(["kubernetes"]));
        let mut again = o.clone();
        prepare_for_create(&ns, &mut again);
        assert_eq!(again["spec"]["finalizers"], json!(["kubernetes"]));
    }

    #[test]
    fn an_update_keeps_the_status_of_kinds_with_a_status_subresource() {
        let pod = ResourceDef::new("", "v1", "Pod", "pods", true);
        let cm = ResourceDef::new("", "v1", "ConfigMap", "configmaps", true);
        let old = obj(json!({"status": {"phase": "Running"}}));
        let mut next = obj(json!({"status": {"phase": "Failed"}}));
        prepare_for_update(&pod, &old, &mut next);
        assert_eq!(next["status"]["phase"], "Running");
        let mut next = obj(json!({"status": {"phase": "Failed"}}));
        prepare_for_update(&cm, &old, &mut next);
        assert_eq!(next["status"]["phase"], "Failed");
        assert!(patch_reaches_guarded_fields(&pod, &obj(json!({"status": {}}))));
        assert!(!patch_reaches_guarded_fields(&cm, &obj(json!({"status": {}}))));
    }

    #[test]
    fn empty_metadata_collections_are_dropped() {
        let mut m = obj(json!({"finalizers": [], "labels": {}, "annotations": {"a": "b"}, "ownerReferences": null}));
        drop_empty_metadata(&mut m);
        assert_eq!(Value::Object(m), json!({"annotations": {"a": "b"}}));
    }
}
