//! The cluster's other writers, played by the simulator: the kubelet (removes a
//! pod once its grace period has passed), the namespace controller (empties a
//! terminating namespace, then removes it), the garbage collector (the
//! `orphan` and `foregroundDeletion` finalizers), and, for tests that need
//! other writers, an optional [`Collector`] that deletes objects of a label at
//! a rate and a status writer ([`crate::sim::SimServer::status_writer`]) that updates their status at a rate
//! (as kubelets do).
//!
//! # Guarantees
//! * Every write they make goes through the same verbs a client's would
//!   ([`Store::delete`], and updates checked by [`super::finalize`]), so watchers
//!   see exactly the events a real cluster's controllers cause.
//! * Only objects a deletion marked are looked at (each when it next may need
//!   work), so a pass over an idle store takes one lock.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::delete::{
    DeleteOptions, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, finalizers, is_graceful_kind,
    is_namespace,
};
use super::finalize::settle;
use super::object::{ResourceId, Stored};
use super::prepare::{into_object, meta_mut, prepare};
use super::state::{Store, under_prefix};
use crate::sim::resource::ResourceDef;
use crate::sim::selector::LabelSelector;
use crate::sim::time::parse_rfc3339;

/// Another writer for tests: deletes up to `per_second` objects of `resource`
/// that match `label_selector` every second (with `options`), the way a
/// garbage collector or an operator scaling down would.
#[derive(Clone, Debug)]
pub struct Collector {
    /// The resource (`pods`, `deployments.apps`).
    pub resource: String,
    /// Which objects it deletes (a label selector, `""` for all).
    pub label_selector: String,
    /// How many deletions per second of the simulator's clock.
    pub per_second: f64,
    /// The options of its deletes (default: the object's own grace period).
    pub options: DeleteOptions,
}

/// Another writer for tests: patches the status of up to `per_second`
/// objects of `resource` that match `label_selector` every second, taking
/// them in turn, the way kubelets report their pods' status. Each patch sets
/// `status.message` to a new value, so each is a real write (a new
/// resourceVersion and a MODIFIED event) that keeps the object's metadata.
///
/// Set with [`SimServer::status_writer`](crate::sim::SimServer::status_writer).
#[derive(Clone, Debug)]
pub(crate) struct StatusWriter {
    /// The resource (`pods`).
    pub(crate) resource: String,
    /// Which objects it updates (a label selector, `""` for all).
    pub(crate) label_selector: String,
    /// How many updates per second of the simulator's clock.
    pub(crate) per_second: f64,
}

/// Settings of the simulated controllers; the built-in ones always run.
#[derive(Clone, Debug, Default)]
pub struct Controllers {
    /// An extra deleting writer; off by default.
    pub collector: Option<Collector>,
    /// An extra status-updating writer; off by default.
    pub(crate) status_writer: Option<StatusWriter>,
}

impl Controllers {
    /// Turns the status writer on.
    pub(crate) fn set_status_writer(&mut self, resource: &str, label_selector: &str, per_second: f64) {
        self.status_writer =
            Some(StatusWriter { resource: resource.to_owned(), label_selector: label_selector.to_owned(), per_second });
    }
}

/// What the controllers do next with a marked object.
enum Next {
    /// Nothing more: it is gone, or waits for someone else.
    Done,
    /// Look again when the clock reaches this second.
    At(i64),
}

impl Store {
    /// One pass of the built-in controllers at the store's clock. Returns how
    /// many objects it looked at.
    pub fn reconcile(&self) -> usize {
        let now = self.clock.now_secs();
        let due: Vec<(ResourceId, String)> = self
            .terminating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (res, key) in &due {
            let next = self.reconcile_one(*res, key, now);
            let mut tracked = self.terminating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match next {
                Next::Done => tracked.remove(&(*res, key.clone())),
                Next::At(t) => tracked.insert((*res, key.clone()), t),
            };
        }
        due.len()
    }

    fn reconcile_one(&self, res: ResourceId, key: &str, now: i64) -> Next {
        let Some(cur) = self.current(res, key) else {
            return Next::Done;
        };
        let def = self.def(res);
        let Ok(obj) = into_object(cur.to_value(), &def.kind) else {
            return Next::Done;
        };
        let meta = obj.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
        let Some(deleted_at) = meta.get("deletionTimestamp").and_then(Value::as_str) else {
            return Next::Done;
        };
        let deadline = parse_rfc3339(deleted_at).unwrap_or(now);
        let grace = meta.get("deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
        let (ns, name) = (cur.namespace.clone(), cur.name.clone());
        if is_namespace(&def) {
            return self.finish_namespace(res, &def, &cur, &obj);
        }
        if is_graceful_kind(&def) && grace > 0 {
            if deadline > now {
                return Next::At(deadline);
            }
            // The kubelet has stopped the containers: its status manager deletes
            // with grace 0 and the pod's uid as precondition.
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                uid: meta.get("uid").and_then(Value::as_str).map(str::to_owned),
                ..DeleteOptions::default()
            };
            let _ = self.delete(res, &ns, &name, &opts);
            return Next::At(now);
        }
        let fins = finalizers(&meta);
        if fins.iter().any(|f| f == FINALIZER_ORPHAN) {
            // Nothing in the simulator keeps owner references to clear.
            self.remove_finalizer(res, &def, &cur, &obj, FINALIZER_ORPHAN);
            return Next::At(now);
        }
        if fins.iter().any(|f| f == FINALIZER_FOREGROUND) {
            let uid = meta.get("uid").and_then(Value::as_str).unwrap_or("").to_owned();
            let dependents = self.dependents_of(&uid);
            if dependents.is_empty() {
                self.remove_finalizer(res, &def, &cur, &obj, FINALIZER_FOREGROUND);
            } else {
                for (r, d) in dependents {
                    if !d.metadata_json().windows(19).any(|w| w == br#""deletionTimestamp""#) {
                        let _ = self.delete(r, &d.namespace, &d.name, &DeleteOptions::default());
                    }
                }
            }
            return Next::At(now);
        }
        Next::Done
    }

    /// The namespace controller: deletes everything in the namespace (each by
    /// the ordinary rules), removes the `kubernetes` finalizer once nothing is
    /// left, then deletes the namespace.
    fn finish_namespace(&self, res: ResourceId, def: &ResourceDef, cur: &Arc<Stored>, obj: &Map<String, Value>) -> Next {
        let now = self.clock.now_secs();
        let spec_finalizers: Vec<Value> = obj
            .get("spec")
            .and_then(|s| s.get("finalizers"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let prefix = format!("{}/", cur.name);
        if spec_finalizers.iter().any(|f| f == "kubernetes") {
            let content: Vec<(ResourceId, Arc<Stored>)> = {
                let st = self.lock();
                st.resources
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.namespaced)
                    .flat_map(|(r, _)| under_prefix(&st.objects[r], Some(&prefix)).into_iter().map(move |o| (r, o)))
                    .collect()
            };
            if !content.is_empty() {
                for (r, o) in content {
                    if !o.metadata_json().windows(19).any(|w| w == br#""deletionTimestamp""#) {
                        let _ = self.delete(r, &o.namespace, &o.name, &DeleteOptions::default());
                    }
                }
                return Next::At(now);
            }
            let mut next = obj.clone();
            if let Some(Value::Object(spec)) = next.get_mut("spec") {
                let left: Vec<Value> = spec_finalizers.into_iter().filter(|f| f != "kubernetes").collect();
                if left.is_empty() {
                    spec.remove("finalizers");
                } else {
                    spec.insert("finalizers".into(), Value::from(left));
                }
            }
            let prepared = prepare(def, cur.key.clone(), next);
            let _ = self.commit_if_unchanged(res, def, &cur.name, cur, prepared, super::object::EventType::Modified);
            return Next::At(now);
        }
        if !spec_finalizers.is_empty() {
            // Another finalizer's controller, not simulated, owns the rest.
            return Next::Done;
        }
        let fins = obj.get("metadata").and_then(Value::as_object).map(finalizers).unwrap_or_default();
        for gc in [FINALIZER_ORPHAN, FINALIZER_FOREGROUND] {
            if fins.iter().any(|f| f == gc) {
                // Nothing in the namespace is left to orphan or wait for.
                self.remove_finalizer(res, def, cur, obj, gc);
                return Next::At(now);
            }
        }
        if !fins.is_empty() {
            return Next::Done;
        }
        match self.delete(res, "", &cur.name, &DeleteOptions::default()) {
            Ok(super::delete::DeleteOutcome::Marked(_)) => Next::At(now),
            _ => Next::Done,
        }
    }

    /// Objects whose `ownerReferences` name `uid`.
    fn dependents_of(&self, uid: &str) -> Vec<(ResourceId, Arc<Stored>)> {
        if uid.is_empty() {
            return Vec::new();
        }
        let st = self.lock();
        let mut out = Vec::new();
        for (r, map) in st.objects.iter().enumerate() {
            for o in map.values() {
                let m = o.metadata_json();
                // Cheap byte test first; the parse confirms it is an owner reference.
                if m.windows(uid.len()).any(|w| w == uid.as_bytes())
                    && serde_json::from_slice::<Value>(m).ok().and_then(|v| v.get("ownerReferences").cloned()).and_then(|v| v.as_array().cloned()).is_some_and(|refs| refs.iter().any(|x| x.get("uid").and_then(Value::as_str) == Some(uid)))
                {
                    out.push((r, o.clone()));
                }
            }
        }
        out
    }

    /// Removes one finalizer the way a controller's update does.
    fn remove_finalizer(&self, res: ResourceId, def: &ResourceDef, cur: &Arc<Stored>, obj: &Map<String, Value>, which: &str) {
        let mut next = obj.clone();
        let left: Vec<String> = finalizers(meta_mut(&mut next)).into_iter().filter(|f| f != which).collect();
        let meta = meta_mut(&mut next);
        if left.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), Value::from(left));
        }
        let Ok(ty) = settle(def, &cur.name, obj, &next) else {
            return;
        };
        let body = if ty == super::object::EventType::Deleted { obj.clone() } else { next };
        let prepared = prepare(def, cur.key.clone(), body);
        let _ = self.commit_if_unchanged(res, def, &cur.name, cur, prepared, ty);
    }

    /// The [`Collector`]'s work for one pass: deletes up to `n` objects of
    /// `res` matching `selector` that are not being deleted yet. Returns how
    /// many deletes it made.
    pub(crate) fn collect(&self, res: ResourceId, selector: &LabelSelector, opts: &DeleteOptions, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let victims: Vec<Arc<Stored>> = self
            .snapshot(res, None)
            .into_iter()
            .filter(|o| selector.matches(&o.labels))
            .filter(|o| !o.metadata_json().windows(19).any(|w| w == br#""deletionTimestamp""#))
            .take(n)
            .collect();
        victims
            .iter()
            .filter(|o| self.delete(res, &o.namespace, &o.name, opts).is_ok())
            .count()
    }

    /// The [`StatusWriter`]'s work for one pass: patches the status of up to
    /// `n` objects of `res` matching `selector`, the first after `cursor` (a
    /// key) in key order, wrapping around. Returns the last key it updated
    /// (the next pass's cursor) and how many updates it made.
    pub(crate) fn write_statuses(&self, res: ResourceId, selector: &LabelSelector, cursor: &str, n: usize) -> (String, usize) {
        if n == 0 {
            return (cursor.to_owned(), 0);
        }
        let matching: Vec<Arc<Stored>> = self.snapshot(res, None).into_iter().filter(|o| selector.matches(&o.labels)).collect();
        let start = matching.iter().position(|o| o.key.as_str() > cursor).unwrap_or(0);
        let mut last = cursor.to_owned();
        let mut made = 0;
        for o in matching.iter().cycle().skip(start).take(n.min(matching.len())) {
            let message = format!("status update at resourceVersion {}", self.resource_version());
            let patch = serde_json::json!({"status": {"message": message}});
            let body = serde_json::to_vec(&patch).unwrap_or_default();
            // The status subresource: only `.status` changes, as a kubelet's update.
            if self.patch(res, &o.namespace, &o.name, super::patch::PatchKind::Merge, &body, true).is_ok() {
                made += 1;
            }
            last.clone_from(&o.key);
        }
        (last, made)
    }
}
