//! The create verbs: POST of one object ([`Store::create`]) and the bulk load
//! tests and `loadgen` seed clusters with ([`Store::create_many`]).
//!
//! # Guarantees
//! * The server owns `uid`, `generation` (1), `creationTimestamp` and, for a
//!   namespaced resource, `namespace`; a name comes from `generateName` plus
//!   five random characters of the real server's alphabet when absent.
//! * A create of an existing key answers 409 AlreadyExists and commits nothing.
//! * A create in a namespace being deleted answers the NamespaceLifecycle
//!   admission plugin's 403 (the bulk load does not check).

use std::sync::Arc;

use serde_json::Value;

use super::object::{EventType, ResourceId, Stored, key_of};
use super::prepare::{check_type, into_object, meta_mut, prepare};
use super::state::Store;
use super::strategy::prepare_for_create;
use crate::sim::status::ApiError;
use crate::sim::time::new_uid;

/// A `generateName` suffix: five characters of the alphabet apimachinery's
/// `utilrand.String` draws from.
fn gen_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(CHARS[rand::random_range(0..CHARS.len())]))
        .collect()
}

impl Store {
    /// Creates an object (POST). `path_ns` is the namespace from the URL.
    pub(crate) fn create(
        &self,
        res: ResourceId,
        path_ns: &str,
        obj: Value,
    ) -> Result<Arc<Stored>, ApiError> {
        let def = self.def(res);
        let mut obj = into_object(obj, &def.kind)?;
        check_type(&def, &obj)?;
        prepare_for_create(&def, &mut obj);
        let ts = self.clock.now_rfc3339();
        let meta = meta_mut(&mut obj);
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let generated = name.is_empty();
        if generated {
            let generate = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required",
                ));
            }
            name = format!("{generate}{}", gen_suffix());
            meta.insert("name".into(), Value::String(name.clone()));
        }
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let ns = if def.namespaced {
            if path_ns.is_empty() {
                return Err(ApiError::method_not_allowed());
            }
            if !body_ns.is_empty() && body_ns != path_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), Value::String(path_ns.to_owned()));
            path_ns.to_owned()
        } else {
            meta.remove("namespace");
            String::new()
        };
        // NamespaceLifecycle admission (k8s.io/apiserver/pkg/admission/plugin/
        // namespace/lifecycle/admission.go) runs before the name is generated.
        if def.namespaced && self.namespace_terminating(&ns) {
            return Err(ApiError::namespace_terminating(&def.plural, if generated { "" } else { name.as_str() }, &ns));
        }
        meta.insert("uid".into(), Value::String(new_uid()));
        meta.insert("generation".into(), Value::from(1));
        meta.insert("creationTimestamp".into(), Value::String(ts));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        let prepared = prepare(&def, key_of(&ns, &name), obj);
        let mut st = self.lock();
        if st.objects[res].contains_key(&prepared.key) {
            return Err(ApiError::already_exists(&def, &name));
        }
        Ok(self.commit(&mut st, res, prepared, EventType::Added, None))
    }

    /// Inserts many objects at once under one lock, each as a create (ADDED event).
    /// Objects that already exist are skipped. Returns how many were created.
    pub(crate) fn create_many(
        &self,
        res: ResourceId,
        objs: impl IntoIterator<Item = Value>,
    ) -> Result<usize, ApiError> {
        let def = self.def(res);
        let ts = self.clock.now_rfc3339();
        let mut prepared = Vec::new();
        for obj in objs {
            let mut obj = into_object(obj, &def.kind)?;
            check_type(&def, &obj)?;
            let meta = meta_mut(&mut obj);
            let name = meta
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if name.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name is required",
                ));
            }
            let ns = if def.namespaced {
                let ns = meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned();
                meta.insert("namespace".into(), Value::String(ns.clone()));
                ns
            } else {
                String::new()
            };
            meta.entry("uid")
                .or_insert_with(|| Value::String(new_uid()));
            meta.entry("generation").or_insert_with(|| Value::from(1));
            meta.entry("creationTimestamp")
                .or_insert_with(|| Value::String(ts.clone()));
            prepared.push(prepare(&def, key_of(&ns, &name), obj));
        }
        let mut st = self.lock();
        let mut n = 0;
        for p in prepared {
            if !st.objects[res].contains_key(&p.key) {
                self.commit(&mut st, res, p, EventType::Added, None);
                n += 1;
            }
        }
        Ok(n)
    }
}
