//! Cleanup before deletion: a reconcile that keeps a finalizer on its objects
//! until [`Event::Cleanup`] has succeeded (kube-runtime's `finalizer` helper).
//!
//! # Guarantees
//! * [`Event::Apply`] runs only on an object that carries the finalizer: one
//!   that lacks it gets it first, and the reconcile ends there (the change
//!   brings the object back).
//! * A cleanup is never lost, across restarts included: the finalizer stays,
//!   and the server keeps the object, until [`Event::Cleanup`] has returned `Ok`.
//! * Adding and removing the finalizer are JSON patches that `test` what they
//!   change first (the finalizer list, the entry to remove): a concurrent change
//!   makes the patch fail ([`FinalizerError::is_conflict`]) instead of
//!   clobbering the other writer's finalizers.
//! * The helper needs nothing of the controller loop: an object, an
//!   [`Api`] and the finalizer's name.

use std::error::Error as StdError;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::core::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Action;

/// What the reconcile passed to [`finalizer`] is asked to do.
#[derive(Debug)]
pub enum Event<K> {
    /// Make the world match the object. Must be idempotent: it runs again after
    /// every change, failure and restart.
    Apply(Arc<K>),
    /// The object is being deleted: release what it owns. Must be idempotent and
    /// tolerate that [`Event::Apply`] never ran or never succeeded.
    Cleanup(Arc<K>),
}

/// A failed [`finalizer`] call. `E` is the reconcile's own error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FinalizerError<E>
where
    E: StdError + 'static,
{
    /// Applying `object` failed; the finalizer is in place.
    #[error("apply of {object} failed")]
    ApplyFailed {
        /// `namespace/name` of the object.
        object: String,
        /// The reconcile's error.
        #[source]
        source: E,
    },
    /// Cleaning up `object` failed; the finalizer stays, so the object stays too
    /// and the cleanup runs again.
    #[error("cleanup of {object} failed; finalizer {finalizer} kept")]
    CleanupFailed {
        /// `namespace/name` of the object.
        object: String,
        /// The finalizer kept.
        finalizer: String,
        /// The reconcile's error.
        #[source]
        source: E,
    },
    /// The patch adding the finalizer failed (see [`FinalizerError::is_conflict`]).
    #[error("adding finalizer {finalizer} to {object} failed")]
    AddFailed {
        /// `namespace/name` of the object.
        object: String,
        /// The finalizer.
        finalizer: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The patch removing the finalizer after a successful cleanup failed; the
    /// cleanup runs again (it is idempotent).
    #[error("removing finalizer {finalizer} from {object} failed")]
    RemoveFailed {
        /// `namespace/name` of the object.
        object: String,
        /// The finalizer.
        finalizer: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The object has no name, so it cannot be patched.
    #[error("the object has no name")]
    UnnamedObject,
}

impl<E: StdError + 'static> FinalizerError<E> {
    /// Whether an add or remove patch was refused because the object changed
    /// since it was read: a failed `test` (422 Invalid) or a conflict (409).
    /// Reconcile again with the fresh object.
    pub fn is_conflict(&self) -> bool {
        match self {
            FinalizerError::AddFailed { source: kube::Error::Api(s), .. }
            | FinalizerError::RemoveFailed { source: kube::Error::Api(s), .. } => matches!(s.code, 409 | 422),
            _ => false,
        }
    }
}

/// Reconciles `obj` so that `cleanup` runs before the object may go away, with
/// kube-runtime's semantics (`kube::runtime::finalizer`):
///
/// | object | has `finalizer_name` | does |
/// |---|---|---|
/// | not being deleted | no | adds it, returns [`Action::Done`] (the change requeues it) |
/// | not being deleted | yes | runs [`Event::Apply`] |
/// | being deleted | yes | runs [`Event::Cleanup`], then removes it |
/// | being deleted | no | nothing: [`Action::Done`] |
///
/// `finalizer_name` must be unique among the controllers of the object (a
/// qualified name such as `example.com/cleanup`).
///
/// ```no_run
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kcache::controller::Action;
/// use kcache::controller::finalizer::{Event, finalizer};
///
/// # async fn reconcile(client: kube::Client, cm: Arc<ConfigMap>) -> Result<Action, Box<dyn std::error::Error>> {
/// let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
/// let action = finalizer(&api, "example.com/cleanup", cm, |event| async move {
///     match event {
///         Event::Apply(cm) => { /* create what cm asks for */ let _ = cm; }
///         Event::Cleanup(cm) => { /* delete what cm owns */ let _ = cm; }
///     }
///     Ok::<_, std::io::Error>(Action::Done)
/// })
/// .await?;
/// # Ok(action) }
/// ```
///
/// # Errors
/// [`FinalizerError::ApplyFailed`] and [`FinalizerError::CleanupFailed`] wrap the
/// reconcile's error; [`FinalizerError::AddFailed`] and
/// [`FinalizerError::RemoveFailed`] the API's.
pub async fn finalizer<K, F, Fut, E>(
    api: &Api<K>,
    finalizer_name: &str,
    obj: Arc<K>,
    reconcile: F,
) -> Result<Action, FinalizerError<E>>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
    E: StdError + 'static,
{
    let meta = obj.meta();
    let object = describe(meta);
    let deleting = meta.deletion_timestamp.is_some();
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    let index = finalizers.iter().position(|f| f == finalizer_name);
    match (deleting, index) {
        (false, Some(_)) => reconcile(Event::Apply(obj)).await.map_err(|source| FinalizerError::ApplyFailed { object, source }),
        (true, Some(i)) => {
            let name = meta.name.clone().ok_or(FinalizerError::UnnamedObject)?;
            let action = reconcile(Event::Cleanup(obj)).await.map_err(|source| FinalizerError::CleanupFailed {
                object: object.clone(),
                finalizer: finalizer_name.to_owned(),
                source,
            })?;
            api.patch(&name, &PatchParams::default(), &json_patch(remove_ops(finalizer_name, i)))
                .await
                .map_err(|source| FinalizerError::RemoveFailed { object, finalizer: finalizer_name.to_owned(), source })?;
            Ok(action)
        }
        (false, None) => {
            let name = meta.name.as_deref().ok_or(FinalizerError::UnnamedObject)?;
            api.patch(name, &PatchParams::default(), &json_patch(add_ops(finalizer_name, &finalizers)))
                .await
                .map_err(|source| FinalizerError::AddFailed { object, finalizer: finalizer_name.to_owned(), source })?;
            Ok(Action::Done)
        }
        (true, None) => Ok(Action::Done),
    }
}

/// The operations adding `name` to an object whose finalizers are `current`.
///
/// The `test` is of the whole list rather than of the resourceVersion: a status
/// write elsewhere must not fail the add, but a finalizer added meanwhile must
/// (the server does not deduplicate finalizers, and an `add` at `-` on a
/// stale list could add ours twice). An empty list is tested against `null`:
/// `metadata.finalizers` is absent then (ObjectMeta's `omitempty`), and the
/// real server's JSON patch passes a `null` test of a missing member.
pub(crate) fn add_ops(name: &str, current: &[String]) -> Value {
    if current.is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ])
    }
}

/// The operations removing `name`, found at `index`: the `test` makes the patch
/// fail rather than remove another controller's finalizer when the list moved.
pub(crate) fn remove_ops(name: &str, index: usize) -> Value {
    let path = format!("/metadata/finalizers/{index}");
    json!([
        {"op": "test", "path": path, "value": name},
        {"op": "remove", "path": path},
    ])
}

fn json_patch(ops: Value) -> Patch<()> {
    // The operations are built above from literals; they always decode.
    Patch::Json(serde_json::from_value(ops).unwrap_or_else(|e| unreachable!("well-formed JSON patch: {e}")))
}

fn describe(meta: &kube::core::ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("<unnamed>");
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_tests_the_whole_list_and_removal_tests_the_entry() {
        assert_eq!(
            add_ops("a/b", &[]),
            json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                   {"op": "add", "path": "/metadata/finalizers", "value": ["a/b"]}])
        );
        assert_eq!(
            add_ops("a/b", &["x/y".to_owned()]),
            json!([{"op": "test", "path": "/metadata/finalizers", "value": ["x/y"]},
                   {"op": "add", "path": "/metadata/finalizers/-", "value": "a/b"}])
        );
        assert_eq!(
            remove_ops("a/b", 2),
            json!([{"op": "test", "path": "/metadata/finalizers/2", "value": "a/b"},
                   {"op": "remove", "path": "/metadata/finalizers/2"}])
        );
        // And they are valid JSON patches.
        let _ = json_patch(add_ops("a/b", &["x/y".to_owned()]));
        let _ = json_patch(remove_ops("a/b", 0));
    }
}
