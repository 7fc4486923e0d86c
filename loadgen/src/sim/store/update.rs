//! The update verb: PUT of a whole object, or of its `status` subresource.
//!
//! # Guarantees
//! * A body carrying a `metadata.resourceVersion` other than the stored one
//!   answers 409 Conflict; one without it is last-writer-wins, as on the real
//!   server.
//! * The server-owned metadata survives the update; `generation` moves only when
//!   `spec` changes.
//! * The finalizer rules of [`super::finalize`] apply.

use std::sync::Arc;

use serde_json::Value;

use super::finalize::{answer_to_deleting_write, settle};
use super::object::{EventType, ResourceId, Stored, key_of};
use super::prepare::{check_type, into_object, merge_server_fields, meta_mut, prepare};
use super::state::Store;
use crate::sim::status::ApiError;

impl Store {
    /// Replaces an object (PUT). With `status_only`, only `.status` is taken from `obj`.
    pub(crate) fn update(
        &self,
        res: ResourceId,
        ns: &str,
        name: &str,
        obj: Value,
        status_only: bool,
    ) -> Result<Arc<Stored>, ApiError> {
        let def = self.def(res);
        let mut obj = into_object(obj, &def.kind)?;
        check_type(&def, &obj)?;
        let meta = meta_mut(&mut obj);
        if let Some(n) = meta.get("name").and_then(Value::as_str)
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(n) = meta.get("namespace").and_then(Value::as_str)
            && !n.is_empty()
            && n != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let want_rv = meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let key = key_of(ns, name);
        loop {
            let cur = self
                .current(res, &key)
                .ok_or_else(|| ApiError::not_found(&def, name))?;
            if !want_rv.is_empty() && want_rv != cur.rv.to_string() {
                return Err(ApiError::conflict(&def, name));
            }
            let old = into_object(cur.to_value(), &def.kind)?;
            let next = merge_server_fields(&def, &old, obj.clone(), status_only);
            let ty = settle(&def, name, &old, &next)?;
            let (prepared, written) = if ty == EventType::Deleted {
                (prepare(&def, key.clone(), old), Some(next))
            } else {
                (prepare(&def, key.clone(), next), None)
            };
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
