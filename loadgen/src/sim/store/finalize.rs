//! Finalizer rules every update and patch goes through: a terminating object
//! cannot gain finalizers, and the write that removes its last one removes it.
//!
//! # Guarantees
//! * Adding a finalizer to an object with `deletionTimestamp` answers 422 with
//!   the message of k8s.io/apimachinery/pkg/api/validation/objectmeta.go
//!   `ValidateNoNewFinalizers`; removing finalizers (even ones it never had) is
//!   an ordinary update.
//! * An update leaving no finalizers on an object that had some and is marked
//!   with `deletionGracePeriodSeconds: 0` deletes it instead
//!   (k8s.io/apiserver/pkg/registry/generic/registry/store.go
//!   `shouldDeleteDuringUpdate`, `deleteWithoutFinalizers`): one DELETED event
//!   carrying the last stored version; the write itself is answered with the
//!   object as written.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::delete::finalizers;
use super::object::{EventType, Stored};
use super::prepare::prepare;
use crate::sim::resource::ResourceDef;
use crate::sim::status::ApiError;

fn meta(obj: &Map<String, Value>) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// The event an update of `old` into `next` commits as: MODIFIED, or DELETED
/// when it removed the last finalizer of an object waiting only for them.
///
/// # Errors
/// 422 Invalid when `next` adds finalizers to an object being deleted.
pub(super) fn settle(
    def: &ResourceDef,
    name: &str,
    old: &Map<String, Value>,
    next: &Map<String, Value>,
) -> Result<EventType, ApiError> {
    let empty = Map::new();
    let (old_meta, new_meta) = (meta(old).unwrap_or(&empty), meta(next).unwrap_or(&empty));
    let (had, has) = (finalizers(old_meta), finalizers(new_meta));
    if old_meta.contains_key("deletionTimestamp") {
        let mut added: Vec<&String> = has.iter().filter(|f| !had.contains(f)).collect();
        added.sort();
        added.dedup();
        if !added.is_empty() {
            let list = added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ");
            // Both the generic BeforeUpdate and the strategy's ValidateUpdate
            // run ValidateObjectMetaUpdate: the real Status lists the cause
            // twice under one message.
            return Err(ApiError::invalid_twice(
                &def.kind,
                name,
                "metadata.finalizers",
                "FieldValueForbidden",
                &format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                ),
            ));
        }
    }
    let zero_grace = new_meta.get("deletionGracePeriodSeconds").and_then(Value::as_i64) == Some(0);
    if has.is_empty() && !had.is_empty() && new_meta.contains_key("deletionTimestamp") && zero_grace {
        return Ok(EventType::Deleted);
    }
    Ok(EventType::Modified)
}

/// The answer to a write that deleted its object by removing the last
/// finalizer: the object as written (no finalizers) at the deletion's
/// resourceVersion, while the DELETED event carries the last stored version
/// (what kube-apiserver v1.36 answered: loadgen/tests/data/real-apiserver-transcript.txt).
pub(super) fn answer_to_deleting_write(def: &ResourceDef, written: Map<String, Value>, deleted: &Stored) -> Arc<Stored> {
    Arc::new(prepare(def, deleted.key.clone(), written).finish(deleted.rv))
}
