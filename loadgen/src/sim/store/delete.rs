//! The delete verb: DELETE of one object, with the preconditions and grace
//! period of `DeleteOptions`.
//!
//! # Guarantees
//! * Deletion is immediate (no finalizers, no kubelet): the object leaves the
//!   store in the same commit that emits DELETED, and the answer is that last
//!   version with `deletionTimestamp`, `deletionGracePeriodSeconds` and a bumped
//!   `generation`.
//! * A `preconditions.uid` or `preconditions.resourceVersion` that does not
//!   match the stored object answers 409 Conflict and deletes nothing.

use std::sync::Arc;

use serde_json::Value;

use super::object::{EventType, ResourceId, Stored, key_of};
use super::prepare::{into_object, meta_mut, prepare};
use super::state::Store;
use crate::sim::status::ApiError;
use crate::sim::time::now_rfc3339;

/// DELETE options the simulator honours.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds` (recorded as `deletionGracePeriodSeconds`; deletion is immediate).
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl Store {
    /// Deletes an object (DELETE): emits DELETED and returns the last version, with
    /// `deletionTimestamp` set. Deletion is immediate (no finalizers, no kubelet).
    pub(crate) fn delete(
        &self,
        res: ResourceId,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Arc<Stored>, ApiError> {
        let def = self.def(res);
        let key = key_of(ns, name);
        loop {
            let cur = self
                .current(res, &key)
                .ok_or_else(|| ApiError::not_found(&def.plural, name))?;
            let mut obj = into_object(cur.to_value(), &def.kind)?;
            let meta = meta_mut(&mut obj);
            if let Some(uid) = &opts.uid
                && Some(uid.as_str()) != meta.get("uid").and_then(Value::as_str)
            {
                return Err(ApiError::conflict(&def.plural, name));
            }
            if let Some(rv) = &opts.resource_version
                && *rv != cur.rv.to_string()
            {
                return Err(ApiError::conflict(&def.plural, name));
            }
            meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            meta.insert(
                "deletionGracePeriodSeconds".into(),
                Value::from(opts.grace_period_seconds.unwrap_or(0).max(0)),
            );
            let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
            meta.insert("generation".into(), Value::from(generation + 1));
            let prepared = prepare(&def, key.clone(), obj);
            if let Some(done) =
                self.commit_if_unchanged(res, &def, name, &cur, prepared, EventType::Deleted)?
            {
                return Ok(done);
            }
        }
    }
}
