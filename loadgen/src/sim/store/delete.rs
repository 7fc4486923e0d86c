//! The delete verb: DELETE of one object with the real server's graceful
//! deletion, finalizers, propagation policy and preconditions.
//!
//! The rules follow k8s.io/apiserver/pkg/registry/rest/delete.go `BeforeDelete`,
//! k8s.io/apiserver/pkg/registry/generic/registry/store.go `Delete`,
//! `updateForGracefulDeletionAndFinalizers`, `markAsDeleting` and
//! `deletionFinalizersForGarbageCollection`, pkg/registry/core/pod/strategy.go
//! `CheckGracefulDelete`, and pkg/registry/core/namespace/storage/storage.go
//! `Delete`.
//!
//! # Guarantees
//! * A pod bound to a node (`spec.nodeName`) is deleted gracefully: the DELETE
//!   sets `deletionTimestamp` (now + grace) and `deletionGracePeriodSeconds`,
//!   sends MODIFIED and keeps the pod; the simulated kubelet removes it when the
//!   grace period ends. A later DELETE may shorten the grace period, never
//!   lengthen it. A grace period of 0 (or an unscheduled or finished pod) sends
//!   MODIFIED then DELETED in one commit, as the real two-step delete does.
//! * An object with `metadata.finalizers` is only marked (`deletionTimestamp`,
//!   `deletionGracePeriodSeconds: 0`, MODIFIED); the update that removes the
//!   last finalizer removes it (see [`super::finalize`]).
//! * Other objects leave the store at once with one DELETED event carrying the
//!   last stored version.
//! * A failed precondition answers 409 and changes nothing; an unknown
//!   `propagationPolicy` answers 422 and changes nothing.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::object::{EventType, ResourceId, Stored, key_of};
use super::prepare::{into_object, meta_mut, prepare};
use super::state::Store;
use crate::sim::resource::ResourceDef;
use crate::sim::status::ApiError;
use crate::sim::time::{parse_rfc3339, rfc3339};

/// The finalizer the garbage collector honours for `propagationPolicy=Orphan`.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// The finalizer the garbage collector honours for `propagationPolicy=Foreground`.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
/// A pod's grace period when neither the request nor the pod names one: the
/// API defaults `spec.terminationGracePeriodSeconds` to 30 on create.
pub const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

/// DELETE options the simulator honours (`DeleteOptions`, from the body or the
/// query).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `propagationPolicy` (`Orphan`, `Background`, `Foreground`).
    pub propagation_policy: Option<String>,
    /// The deprecated `orphanDependents`.
    pub orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// The delete handler's `ValidateDeleteOptions`
    /// (k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go).
    ///
    /// # Errors
    /// 422 Invalid for both `orphanDependents` and `propagationPolicy`, or an
    /// unknown policy.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(p) = &self.propagation_policy {
            if self.orphan_dependents.is_some() {
                return Err(ApiError::invalid_delete_options(
                    "propagationPolicy",
                    "FieldValueInvalid",
                    &format!("Invalid value: {p:?}: orphanDependents and deletionPropagation cannot be both set"),
                ));
            }
            if !matches!(p.as_str(), "Foreground" | "Background" | "Orphan") {
                return Err(ApiError::invalid_delete_options(
                    "propagationPolicy",
                    "FieldValueNotSupported",
                    &format!(
                        "Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                    ),
                ));
            }
        }
        Ok(())
    }

    fn should_orphan(&self, finalizers: &[String]) -> bool {
        if let Some(o) = self.orphan_dependents {
            return o;
        }
        match self.propagation_policy.as_deref() {
            Some("Orphan") => return true,
            Some("Background" | "Foreground") => return false,
            _ => {}
        }
        for f in finalizers {
            match f.as_str() {
                FINALIZER_ORPHAN => return true,
                FINALIZER_FOREGROUND => return false,
                _ => {}
            }
        }
        false
    }

    fn should_delete_dependents(&self, finalizers: &[String]) -> bool {
        if self.orphan_dependents.is_some() {
            return false;
        }
        match self.propagation_policy.as_deref() {
            Some("Foreground") => return true,
            Some("Background" | "Orphan") => return false,
            _ => {}
        }
        for f in finalizers {
            match f.as_str() {
                FINALIZER_FOREGROUND => return true,
                FINALIZER_ORPHAN => return false,
                _ => {}
            }
        }
        false
    }
}

/// What a DELETE did.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// The object left the store (DELETED sent); its last version.
    Removed(Arc<Stored>),
    /// The object is still there, marked for deletion (grace period running,
    /// finalizers pending, namespace terminating) or already being deleted.
    Marked(Arc<Stored>),
}

impl DeleteOutcome {
    /// The object the outcome carries.
    pub fn object(&self) -> &Arc<Stored> {
        match self {
            DeleteOutcome::Removed(o) | DeleteOutcome::Marked(o) => o,
        }
    }
}

/// `metadata.finalizers` of an object.
pub(super) fn finalizers(meta: &Map<String, Value>) -> Vec<String> {
    meta.get("finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn set_finalizers(meta: &mut Map<String, Value>, f: Vec<String>) {
    if f.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), Value::from(f));
    }
}

/// Whether the real server deletes this kind gracefully (its strategy is a
/// `RESTGracefulDeleteStrategy`): pods.
pub(super) fn is_graceful_kind(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.kind == "Pod"
}

/// Whether the resource is the core Namespace.
pub(super) fn is_namespace(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.kind == "Namespace"
}

/// Whether a DELETE that removes an object answers with the object (the
/// registry's `ReturnDeletedObject`: pods and namespaces) rather than a
/// `Status` of kind Success.
pub fn returns_deleted_object(def: &ResourceDef) -> bool {
    def.group.is_empty() && matches!(def.kind.as_str(), "Pod" | "Namespace")
}

/// What `BeforeDelete` decided.
enum Before {
    /// Not a graceful deletion (other kinds; an object already marked with no
    /// grace period left).
    NotGraceful,
    /// A graceful deletion with this grace period was written into the object.
    Graceful(i64),
    /// A graceful deletion is already running and this request does not shorten it.
    Pending,
}

fn i64_at(meta: &Map<String, Value>, k: &str) -> Option<i64> {
    meta.get(k).and_then(Value::as_i64)
}

/// `rest.BeforeDelete` with the pod strategy's `CheckGracefulDelete`.
fn before_delete(def: &ResourceDef, obj: &mut Map<String, Value>, opts: &DeleteOptions, now: i64) -> Before {
    let node_name = obj.get("spec").and_then(|s| s.get("nodeName")).and_then(Value::as_str).unwrap_or("").to_owned();
    let pod_grace = obj.get("spec").and_then(|s| s.get("terminationGracePeriodSeconds")).and_then(Value::as_i64);
    let phase = obj.get("status").and_then(|s| s.get("phase")).and_then(Value::as_str).unwrap_or("").to_owned();
    let meta = meta_mut(obj);
    // "Negative values will be treated as the value `1s` on the delete path."
    let mut grace = opts.grace_period_seconds.map(|g| if g < 0 { 1 } else { g });
    let current = i64_at(meta, "deletionGracePeriodSeconds");
    if current.is_some_and(|c| c < 0) {
        grace = Some(1);
    }
    if !is_graceful_kind(def) {
        return Before::NotGraceful;
    }
    if let Some(ts) = meta.get("deletionTimestamp").and_then(Value::as_str) {
        let Some(current) = current.filter(|c| *c != 0) else {
            return Before::NotGraceful;
        };
        return match grace {
            Some(g) if g < current => {
                let shortened = parse_rfc3339(ts).unwrap_or(now) - current + g;
                meta.insert("deletionTimestamp".into(), Value::String(rfc3339(shortened)));
                meta.insert("deletionGracePeriodSeconds".into(), Value::from(g));
                Before::Graceful(g)
            }
            _ => Before::Pending,
        };
    }
    let mut period = grace.unwrap_or_else(|| pod_grace.unwrap_or(DEFAULT_POD_GRACE_SECONDS));
    if node_name.is_empty() || phase == "Succeeded" || phase == "Failed" {
        period = 0;
    }
    if period < 0 {
        period = 1;
    }
    meta.insert("deletionTimestamp".into(), Value::String(rfc3339(now + period)));
    meta.insert("deletionGracePeriodSeconds".into(), Value::from(period));
    if let Some(g) = i64_at(meta, "generation").filter(|g| *g > 0) {
        meta.insert("generation".into(), Value::from(g + 1));
    }
    Before::Graceful(period)
}

/// store.go `markAsDeleting`: an object that waits only for finalizers.
pub(super) fn mark_as_deleting(meta: &mut Map<String, Value>, now: i64) {
    if !meta.contains_key("deletionTimestamp") {
        if let Some(g) = i64_at(meta, "generation").filter(|g| *g > 0) {
            meta.insert("generation".into(), Value::from(g + 1));
        }
        meta.insert("deletionTimestamp".into(), Value::String(rfc3339(now)));
    }
    meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
}

/// store.go `deletionFinalizersForGarbageCollection`: the finalizers the
/// propagation policy asks for, and whether they differ from the object's.
fn gc_finalizers(current: &[String], opts: &DeleteOptions) -> (bool, Vec<String>) {
    let mut next: Vec<String> = current
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND)
        .cloned()
        .collect();
    if opts.should_orphan(current) {
        next.push(FINALIZER_ORPHAN.into());
    }
    if opts.should_delete_dependents(current) {
        next.push(FINALIZER_FOREGROUND.into());
    }
    let as_set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    if as_set(current) == as_set(&next) {
        (false, current.to_vec())
    } else {
        (true, next)
    }
}

impl Store {
    /// Deletes an object (DELETE) by the real server's rules: see the
    /// [module docs](self).
    pub(crate) fn delete(
        &self,
        res: ResourceId,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        opts.validate()?;
        let def = self.def(res);
        if is_namespace(&def) {
            return self.delete_namespace(res, &def, name, opts);
        }
        let key = key_of(ns, name);
        loop {
            let cur = self
                .current(res, &key)
                .ok_or_else(|| ApiError::not_found(&def, name))?;
            let original = into_object(cur.to_value(), &def.kind)?;
            let uid = original.get("metadata").and_then(|m| m.get("uid")).and_then(Value::as_str).unwrap_or("").to_owned();
            // rest/delete.go BeforeDelete checks the uid, then the resourceVersion,
            // naming the kind.
            if let Some(want) = &opts.uid
                && *want != uid
            {
                return Err(ApiError::conflict_because(
                    &def.kind,
                    name,
                    &format!(
                        "the UID in the precondition ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
                    ),
                ));
            }
            if let Some(want) = &opts.resource_version
                && *want != cur.rv.to_string()
            {
                return Err(ApiError::conflict_because(
                    &def.kind,
                    name,
                    &format!(
                        "the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({}). The object might have been modified",
                        cur.rv
                    ),
                ));
            }
            let now = self.clock.now_secs();
            let mut obj = original.clone();
            let graceful = match before_delete(&def, &mut obj, opts, now) {
                Before::Pending => return Ok(DeleteOutcome::Marked(cur)),
                Before::Graceful(g) => Some(g),
                Before::NotGraceful => None,
            };
            let meta = meta_mut(&mut obj);
            let had = finalizers(meta);
            let (update_finalizers, next) = gc_finalizers(&had, opts);
            if graceful.is_some() || !had.is_empty() || update_finalizers {
                if update_finalizers {
                    set_finalizers(meta, next);
                }
                let pending_finalizers = !finalizers(meta).is_empty();
                if graceful.is_none() && pending_finalizers {
                    mark_as_deleting(meta, now);
                }
                let keep = pending_finalizers || graceful.is_some_and(|g| g > 0);
                let due = meta
                    .get("deletionTimestamp")
                    .and_then(Value::as_str)
                    .and_then(parse_rfc3339)
                    .unwrap_or(now);
                if keep {
                    // A write that changes nothing is not made (the etcd3
                    // store's GuaranteedUpdate skips identical bytes).
                    if obj == original {
                        return Ok(DeleteOutcome::Marked(cur));
                    }
                    let prepared = prepare(&def, key.clone(), obj);
                    if let Some(done) =
                        self.commit_if_unchanged(res, &def, name, &cur, prepared, EventType::Modified)?
                    {
                        self.track_terminating(res, &key, due);
                        return Ok(DeleteOutcome::Marked(done));
                    }
                    continue;
                }
                // The real delete is an update (MODIFIED) followed by the
                // removal (DELETED); both commit together here.
                let marked = prepare(&def, key.clone(), obj.clone());
                let removed = prepare(&def, key.clone(), obj);
                let mut st = self.lock();
                match st.objects[res].get(&key) {
                    Some(stored) if Arc::ptr_eq(stored, &cur) => {
                        let m = self.commit(&mut st, res, marked, EventType::Modified, Some(cur.clone()));
                        let gone = self.commit(&mut st, res, removed, EventType::Deleted, Some(m));
                        return Ok(DeleteOutcome::Removed(gone));
                    }
                    Some(_) => continue,
                    None => return Err(ApiError::not_found(&def, name)),
                }
            }
            let prepared = prepare(&def, key.clone(), original);
            if let Some(done) =
                self.commit_if_unchanged(res, &def, name, &cur, prepared, EventType::Deleted)?
            {
                return Ok(DeleteOutcome::Removed(done));
            }
        }
    }

    /// Removes an object at once with one DELETED event, whatever its grace
    /// period or finalizers: what `SimHandle::delete` does for tests that only
    /// need an object gone. The last version carries `deletionTimestamp`,
    /// `deletionGracePeriodSeconds: 0` and a bumped `generation`.
    pub(crate) fn remove_now(&self, res: ResourceId, ns: &str, name: &str) -> Result<Arc<Stored>, ApiError> {
        let def = self.def(res);
        let key = key_of(ns, name);
        loop {
            let cur = self
                .current(res, &key)
                .ok_or_else(|| ApiError::not_found(&def, name))?;
            let mut obj = into_object(cur.to_value(), &def.kind)?;
            let meta = meta_mut(&mut obj);
            if !meta.contains_key("deletionTimestamp") {
                meta.insert("deletionTimestamp".into(), Value::String(self.clock.now_rfc3339()));
                let generation = i64_at(meta, "generation").unwrap_or(0);
                meta.insert("generation".into(), Value::from(generation + 1));
            }
            meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
            let prepared = prepare(&def, key.clone(), obj);
            if let Some(done) =
                self.commit_if_unchanged(res, &def, name, &cur, prepared, EventType::Deleted)?
            {
                return Ok(done);
            }
        }
    }

    /// The namespace registry's `Delete`: the first DELETE makes the namespace
    /// Terminating (the namespace controller empties and removes it); later
    /// ones answer 409 while content remains.
    fn delete_namespace(
        &self,
        res: ResourceId,
        def: &ResourceDef,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        loop {
            let cur = self
                .current(res, name)
                .ok_or_else(|| ApiError::not_found(def, name))?;
            let mut obj = into_object(cur.to_value(), &def.kind)?;
            let spec_finalizers = obj
                .get("spec")
                .and_then(|s| s.get("finalizers"))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            let meta = meta_mut(&mut obj);
            let uid = meta.get("uid").and_then(Value::as_str).unwrap_or("").to_owned();
            if let Some(want) = &opts.uid
                && *want != uid
            {
                return Err(ApiError::conflict_because(
                    "namespaces",
                    name,
                    &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                ));
            }
            if let Some(want) = &opts.resource_version
                && *want != cur.rv.to_string()
            {
                return Err(ApiError::conflict_because(
                    "namespaces",
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                        cur.rv
                    ),
                ));
            }
            if meta.contains_key("deletionTimestamp") {
                if spec_finalizers {
                    return Err(ApiError::conflict_because(
                        "namespaces",
                        name,
                        "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
                    ));
                }
                return self.delete_plain(res, def, name, opts, cur);
            }
            meta.insert("deletionTimestamp".into(), Value::String(self.clock.now_rfc3339()));
            let had = finalizers(meta);
            let orphan = opts
                .orphan_dependents
                .unwrap_or_else(|| match opts.propagation_policy.as_deref() {
                    Some(p) => p == "Orphan",
                    None => had.iter().any(|f| f == FINALIZER_ORPHAN),
                });
            let foreground = match (opts.orphan_dependents, opts.propagation_policy.as_deref()) {
                (Some(_), _) => false,
                (None, Some(p)) => p == "Foreground",
                (None, None) => had.iter().any(|f| f == FINALIZER_FOREGROUND),
            };
            let mut next: Vec<String> = had
                .into_iter()
                .filter(|f| f != FINALIZER_ORPHAN && f != FINALIZER_FOREGROUND)
                .collect();
            if orphan {
                next.push(FINALIZER_ORPHAN.into());
            }
            if foreground {
                next.push(FINALIZER_FOREGROUND.into());
            }
            set_finalizers(meta, next);
            // The namespace strategy's PrepareForCreate adds the `kubernetes`
            // finalizer the namespace controller removes; objects created here
            // without it get it now, so termination always goes through it.
            let spec = obj.entry("spec").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(spec) = spec
                && !spec.contains_key("finalizers")
            {
                spec.insert("finalizers".into(), Value::from(vec!["kubernetes"]));
            }
            let status = obj.entry("status").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(status) = status {
                status.insert("phase".into(), Value::from("Terminating"));
            }
            let prepared = prepare(def, name.to_owned(), obj);
            if let Some(done) =
                self.commit_if_unchanged(res, def, name, &cur, prepared, EventType::Modified)?
            {
                self.track_terminating(res, name, self.clock.now_secs());
                return Ok(DeleteOutcome::Marked(done));
            }
        }
    }

    /// The generic store's delete of an object the namespace registry has
    /// finished with: removed unless finalizers remain.
    fn delete_plain(
        &self,
        res: ResourceId,
        def: &ResourceDef,
        name: &str,
        opts: &DeleteOptions,
        cur: Arc<Stored>,
    ) -> Result<DeleteOutcome, ApiError> {
        let original = into_object(cur.to_value(), &def.kind)?;
        let mut obj = original.clone();
        let meta = meta_mut(&mut obj);
        let had = finalizers(meta);
        let (update, next) = gc_finalizers(&had, opts);
        if update {
            set_finalizers(meta, next);
        }
        let ty = if finalizers(meta).is_empty() {
            EventType::Deleted
        } else {
            mark_as_deleting(meta, self.clock.now_secs());
            EventType::Modified
        };
        if ty == EventType::Modified && obj == original {
            return Ok(DeleteOutcome::Marked(cur));
        }
        let body = if ty == EventType::Deleted && !update { original } else { obj };
        let prepared = prepare(def, cur.key.clone(), body);
        match self.commit_if_unchanged(res, def, name, &cur, prepared, ty)? {
            Some(done) if ty == EventType::Deleted => Ok(DeleteOutcome::Removed(done)),
            Some(done) => Ok(DeleteOutcome::Marked(done)),
            // Changed meanwhile: the caller's next look decides again.
            None => Ok(DeleteOutcome::Marked(cur)),
        }
    }

    /// Whether namespace `ns` exists and is being deleted.
    pub(crate) fn namespace_terminating(&self, ns: &str) -> bool {
        let st = self.lock();
        let Some(res) = st.resources.iter().position(|r| is_namespace(r)) else {
            return false;
        };
        st.objects[res]
            .get(ns)
            .is_some_and(|o| o.phase == "Terminating" || o.metadata_json().windows(19).any(|w| w == b"\"deletionTimestamp\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_policies_are_validated_like_the_real_server() {
        for p in ["Orphan", "Background", "Foreground"] {
            let o = DeleteOptions { propagation_policy: Some(p.into()), ..DeleteOptions::default() };
            assert!(o.validate().is_ok(), "{p}");
        }
        let bad = DeleteOptions { propagation_policy: Some("Sideways".into()), ..DeleteOptions::default() };
        let e = bad.validate().expect_err("unknown policy");
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert!(e.message.starts_with("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\""), "{}", e.message);
        let both = DeleteOptions {
            propagation_policy: Some("Orphan".into()),
            orphan_dependents: Some(true),
            ..DeleteOptions::default()
        };
        assert_eq!(both.validate().expect_err("both set").code, 422);
    }

    #[test]
    fn gc_finalizers_follow_the_policy() {
        let fg = DeleteOptions { propagation_policy: Some("Foreground".into()), ..DeleteOptions::default() };
        assert_eq!(gc_finalizers(&["a".into()], &fg), (true, vec!["a".into(), FINALIZER_FOREGROUND.into()]));
        let bg = DeleteOptions { propagation_policy: Some("Background".into()), ..DeleteOptions::default() };
        assert_eq!(gc_finalizers(&["a".into()], &bg), (false, vec!["a".into()]));
        assert_eq!(gc_finalizers(&[FINALIZER_ORPHAN.into()], &bg), (true, vec![]));
        assert_eq!(gc_finalizers(&[], &DeleteOptions::default()), (false, vec![]));
    }
}
