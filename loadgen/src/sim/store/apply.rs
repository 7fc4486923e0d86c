//! Server-side apply: PATCH with `application/apply-patch+yaml`, of a whole
//! object or of its `status` subresource, with field ownership recorded in
//! `metadata.managedFields`.
//!
//! # Guarantees
//! * An apply of an absent object creates it (201) by the rules of a POST; of
//!   an absent object's `status`, 404. Otherwise the applied configuration is
//!   merged into the stored object (200), and an apply that changes nothing
//!   writes nothing (the resourceVersion stays, as on the real server).
//! * Each manager's entry (`manager`, `operation: Apply`, `apiVersion`, `time`,
//!   `fieldsType: FieldsV1`, `fieldsV1`, and `subresource: status` for the
//!   subresource) lists the leaf paths its last applied configuration set.
//! * A field another manager owns with a different value is a conflict: 409
//!   with the real Status (reason Conflict, one `FieldManagerConflict` cause per
//!   field, the message of apimachinery's
//!   `pkg/util/managedfields/internal/conflict.go`). With `force=true` the
//!   applier takes the fields over and the other managers lose them; an entry
//!   left with no fields is dropped.
//! * A field the manager applied before and omits now is removed from the
//!   object, unless another manager owns it or something below it.
//! * No `fieldManager` answers the real server's 422.
//!
//! # What differs from the real structured-merge-diff
//! * Ownership is kept per leaf path, without the schema: every list is atomic
//!   except the ones [`super::managed::merge_keys`] names (containers by
//!   `name`, conditions by `type`); a map of unknown shape is granular.
//! * Only writes through apply record ownership: POST, PUT and merge/JSON
//!   patches of the simulator add no `Update` entry (a PUT without
//!   `managedFields` drops them, where the real server keeps them), so a field
//!   set by a plain update never conflicts with an apply.
//! * The body must be JSON (which is YAML); YAML in block syntax answers 400.
//! * On `status`, only `.status` of the applied configuration is taken (the
//!   real server also lets a status apply change most metadata); on the main
//!   resource of a kind with a status subresource, `.status` is dropped, as the
//!   real strategy's reset fields do.
//! * Defaulting is not modelled: fields the real server defaults (a
//!   container's `terminationMessagePath`, …) are neither added nor owned.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::finalize::{answer_to_deleting_write, settle};
use super::managed::{FieldPath, FieldSet, collect, from_fields_v1, merge, path_string, remove_at, to_fields_v1, value_at};
use super::object::{EventType, ResourceId, Stored, key_of};
use super::prepare::{into_object, merge_server_fields, meta_mut, prepare};
use super::state::Store;
use super::strategy::patch_reaches_guarded_fields;
use crate::sim::resource::ResourceDef;
use crate::sim::status::ApiError;

/// Metadata the server owns: never part of an applied configuration's fields
/// (k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager `stripMeta`).
const STRIPPED_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn parse(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Entry {
            manager: s("manager")?,
            operation: s("operation").unwrap_or_default(),
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time").unwrap_or_default(),
            subresource: s("subresource").filter(|s| !s.is_empty()),
            fields: v.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.fields),
        });
        if let Some(sub) = &self.subresource {
            v["subresource"] = Value::from(sub.clone());
        }
        v
    }

    /// How the conflict message names the manager (conflict.go `printManager`).
    fn printed(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {} at {}", self.api_version, self.time));
        }
        out
    }
}

/// A server-side apply request.
pub(crate) struct ApplyRequest<'a> {
    /// The applied configuration (JSON).
    pub body: &'a [u8],
    /// `fieldManager`.
    pub manager: Option<&'a str>,
    /// `force`.
    pub force: bool,
    /// Whether the PATCH addressed the `status` subresource.
    pub status_only: bool,
}

impl Store {
    /// Applies a configuration (PATCH `application/apply-patch+yaml`); the
    /// stored object and whether the apply created it.
    pub(crate) fn apply(
        &self,
        res: ResourceId,
        ns: &str,
        name: &str,
        req: &ApplyRequest<'_>,
    ) -> Result<(Arc<Stored>, bool), ApiError> {
        let def = self.def(res);
        let manager = req.manager.filter(|m| !m.is_empty()).ok_or_else(manager_required)?;
        let body: Value = serde_json::from_slice(req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        let body = into_object(body, &def.kind)?;
        check_applied_type(&def, &body)?;
        let api_version = def.api_version();
        let config = applied_config(&def, &body, req.status_only);
        let mut applied = FieldSet::new();
        collect(&config, &mut Vec::new(), &mut applied);
        let subresource = req.status_only.then(|| "status".to_owned());
        let key = key_of(ns, name);
        loop {
            let now = self.clock.now_rfc3339();
            let mine = Entry {
                manager: manager.to_owned(),
                operation: "Apply".into(),
                api_version: api_version.clone(),
                time: now,
                subresource: subresource.clone(),
                fields: applied.clone(),
            };
            let Some(cur) = self.current(res, &key) else {
                // The real server looks the object up before it compares names.
                if req.status_only {
                    return Err(ApiError::not_found(&def, name));
                }
                check_names(&body, ns, name)?;
                let mut obj = body.clone();
                if patch_reaches_guarded_fields(&def, &obj) {
                    obj.remove("status");
                }
                let meta = meta_mut(&mut obj);
                meta.insert("name".into(), Value::from(name));
                meta.insert("managedFields".into(), Value::Array(vec![mine.to_value()]));
                match self.create(res, ns, Value::Object(obj)) {
                    Ok(o) => return Ok((o, true)),
                    // Created meanwhile: apply to what is there now.
                    Err(e) if e.code == 409 => continue,
                    Err(e) => return Err(e),
                }
            };
            check_names(&body, ns, name)?;
            let old = into_object(cur.to_value(), &def.kind)?;
            let live = Value::Object(old.clone());
            let mut entries: Vec<Entry> = old
                .get("metadata")
                .and_then(|m| m.get("managedFields"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Entry::parse).collect())
                .unwrap_or_default();
            let conflicts = conflicts(&entries, &mine, &live, &config);
            if !conflicts.is_empty() {
                if !req.force {
                    let named: Vec<(String, String)> =
                        conflicts.iter().map(|(i, p)| (entries[*i].printed(), path_string(p))).collect();
                    return Err(conflict_error(&named));
                }
                for (i, path) in &conflicts {
                    entries[*i].fields.remove(path);
                }
            }
            let same = |e: &Entry| e.manager == mine.manager && e.operation == "Apply" && e.subresource == mine.subresource;
            let previous = entries.iter().find(|e| same(e)).map(|e| e.fields.clone()).unwrap_or_default();
            let mut next = live.clone();
            merge(&mut next, &config, None);
            // A keyed item before its fields: removing the key field first would
            // leave the item unfindable.
            for path in previous.difference(&applied) {
                let owned_elsewhere = entries
                    .iter()
                    .filter(|e| !same(e))
                    .any(|e| e.fields.iter().any(|p| p.starts_with(path)));
                if !owned_elsewhere {
                    remove_at(&mut next, path);
                }
            }
            match entries.iter_mut().find(|e| same(e)) {
                // An apply that changes no ownership keeps its time, so that
                // a no-op apply is a no-op write.
                Some(e) if e.fields == mine.fields && e.api_version == mine.api_version => {}
                Some(e) => *e = mine.clone(),
                None => entries.push(mine.clone()),
            }
            entries.retain(|e| !e.fields.is_empty());
            let mut next = merge_server_fields(&def, &old, into_object(next, &def.kind)?, req.status_only);
            meta_mut(&mut next).insert("managedFields".into(), Value::Array(entries.iter().map(Entry::to_value).collect()));
            let mut unchanged = old.clone();
            unchanged.remove("kind");
            unchanged.remove("apiVersion");
            if next == unchanged {
                return Ok((cur, false));
            }
            let ty = settle(&def, name, &old, &next)?;
            let (prepared, written) = if ty == EventType::Deleted {
                (prepare(&def, key.clone(), old), Some(next))
            } else {
                (prepare(&def, key.clone(), next), None)
            };
            if let Some(done) = self.commit_if_unchanged(res, &def, name, &cur, prepared, ty)? {
                return Ok((
                    match written {
                        Some(w) => answer_to_deleting_write(&def, w, &done),
                        None => done,
                    },
                    false,
                ));
            }
        }
    }
}

/// The real server's 422 for an apply without `fieldManager`.
fn manager_required() -> ApiError {
    let detail = "Required value: is required for apply patch";
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: {detail}"),
        details: Some(json!({
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [{"reason": "FieldValueRequired", "message": detail, "field": "fieldManager"}],
        })),
        continue_token: None,
    }
}

/// An applied configuration must name the resource's `apiVersion` and `kind`;
/// the real server answers `invalid object type: <group>/<version>, Kind=<kind>`
/// (a `schema.GroupVersionKind` printed) otherwise.
fn check_applied_type(def: &ResourceDef, body: &Map<String, Value>) -> Result<(), ApiError> {
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (s("apiVersion"), s("kind"));
    if api_version == def.api_version() && kind == def.kind {
        return Ok(());
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Err(ApiError::bad_request(format!("invalid object type: {group}/{version}, Kind={kind}")))
}

fn check_names(body: &Map<String, Value>, ns: &str, name: &str) -> Result<(), ApiError> {
    let meta = body.get("metadata");
    let s = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or("");
    if !s("name").is_empty() && s("name") != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            s("name")
        )));
    }
    if !s("namespace").is_empty() && s("namespace") != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// The part of `body` whose fields the manager comes to own.
fn applied_config(def: &ResourceDef, body: &Map<String, Value>, status_only: bool) -> Value {
    let mut config = body.clone();
    config.remove("apiVersion");
    config.remove("kind");
    if status_only {
        config.retain(|k, _| k == "status");
    } else if patch_reaches_guarded_fields(def, &config) {
        config.remove("status");
    }
    if let Some(Value::Object(meta)) = config.get_mut("metadata") {
        for k in STRIPPED_METADATA {
            meta.remove(k);
        }
    }
    if config.get("metadata").is_some_and(|m| m.as_object().is_none_or(Map::is_empty)) {
        config.remove("metadata");
    }
    Value::Object(config)
}

/// The fields of `config` that another manager owns with a different live
/// value, as (entry index, path), in manager then path order.
fn conflicts(entries: &[Entry], mine: &Entry, live: &Value, config: &Value) -> Vec<(usize, FieldPath)> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.manager == mine.manager {
            continue;
        }
        for path in e.fields.intersection(&mine.fields) {
            // A keyed list item's own path holds no value of its own.
            if path.last().is_some_and(|s| s.starts_with("k:")) {
                continue;
            }
            if value_at(live, path) != value_at(config, path) {
                out.push((i, path.clone()));
            }
        }
    }
    out.sort_by(|a, b| (&entries[a.0].manager, &a.1).cmp(&(&entries[b.0].manager, &b.1)));
    out
}

/// The 409 of apimachinery's `NewConflictError` (conflict.go).
fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p}))
        .collect();
    let message = if let [(m, p)] = conflicts {
        format!("Apply failed with 1 conflict: conflict with {m}: {p}")
    } else {
        let mut lines = Vec::new();
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(conflicts.iter().filter(|(o, _)| o == m).map(|(_, p)| format!("- {p}")));
        }
        format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
    };
    ApiError { code: 409, reason: "Conflict", message, details: Some(json!({"causes": causes})), continue_token: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: &str, subresource: Option<&str>) -> Entry {
        Entry {
            manager: manager.into(),
            operation: operation.into(),
            api_version: "v1".into(),
            time: "2026-12-05T00:00:00Z".into(),
            subresource: subresource.map(str::to_owned),
            fields: FieldSet::new(),
        }
    }

    /// conflict.go's `printManager` and `getConflictMessage`, for managers of
    /// every kind and more than one of them.
    #[test]
    fn conflicts_are_worded_as_apimachinery_words_them() {
        assert_eq!(entry("a", "Apply", None).printed(), r#""a""#);
        assert_eq!(entry("a", "Apply", Some("status")).printed(), r#""a" with subresource "status""#);
        assert_eq!(entry("k", "Update", None).printed(), r#""k" using v1 at 2026-12-05T00:00:00Z"#);
        let e = conflict_error(&[
            (r#""b""#.into(), ".data.y".into()),
            (r#""a""#.into(), ".data.x".into()),
            (r#""b""#.into(), ".data.z".into()),
        ]);
        assert_eq!((e.code, e.reason), (409, "Conflict"));
        assert_eq!(e.message, "Apply failed with 3 conflicts: conflicts with \"a\":\n- .data.x\nconflicts with \"b\":\n- .data.y\n- .data.z");
        let causes = e.details.expect("details")["causes"].clone();
        assert_eq!(causes[0], json!({"reason": "FieldManagerConflict", "message": "conflict with \"b\"", "field": ".data.y"}));
    }

    #[test]
    fn an_entry_survives_a_round_trip_through_managed_fields() {
        let mut e = entry("a", "Apply", Some("status"));
        collect(&json!({"status": {"phase": "x"}}), &mut Vec::new(), &mut e.fields);
        assert_eq!(Entry::parse(&e.to_value()), Some(e));
    }

    #[test]
    fn the_applied_configuration_leaves_out_server_metadata_and_guarded_status() {
        let pod = ResourceDef::new("", "v1", "Pod", "pods", true);
        let body = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n", "labels": {"a": "b"}},
            "spec": {"x": 1}, "status": {"phase": "Running"}});
        let body = body.as_object().expect("object");
        assert_eq!(applied_config(&pod, body, false), json!({"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}}));
        assert_eq!(applied_config(&pod, body, true), json!({"status": {"phase": "Running"}}));
    }
}
