//! Predicates: which updates of the main kind are worth a reconcile, as kube-rs's
//! `kube::runtime::predicates`.
//!
//! # Guarantees
//! * A predicate reads a value off an object (kube-rs: a hash of it); an update passes
//!   when the value differs between the old and the new object, or when the new object
//!   has none (kube-rs lets those through, so an object without, say, a generation is
//!   never filtered out).
//! * Adds and deletes always pass: the first sight of an object and its removal are
//!   changes whatever the predicate says.
//! * Several predicates on one controller pass an update when any of them does
//!   (kube-rs's `Predicate::combine`).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::Obj;

/// Reads the compared value off an object.
type Extract = dyn Fn(&Obj) -> Option<u64> + Send + Sync;

/// A value of an object whose change is worth a reconcile; `None` passes every update.
#[derive(Clone)]
pub struct Predicate(Arc<Extract>);

impl std::fmt::Debug for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Predicate")
    }
}

fn hash_of(value: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

impl Predicate {
    /// A predicate over the value `f` reads (kube-rs's `Predicate` impl for
    /// `Fn(&K) -> Option<u64>`).
    pub fn custom(f: impl Fn(&Obj) -> Option<u64> + Send + Sync + 'static) -> Self {
        Predicate(Arc::new(f))
    }

    /// Whether the update from `old` to `new` passes.
    pub fn changed(&self, old: &Obj, new: &Obj) -> bool {
        match (self.0)(new) {
            None => true,
            value => (self.0)(old) != value,
        }
    }
}

/// `metadata.generation`: the API server bumps it on spec changes only, so a
/// status-only update does not pass (kube-rs's `predicates::generation`).
pub fn generation() -> Predicate {
    Predicate::custom(|o| o.generation().map(|g| g as u64))
}

/// `metadata.labels`, in any order (kube-rs's `predicates::labels`).
pub fn labels() -> Predicate {
    Predicate::custom(|o| {
        let mut labels: Vec<(&str, &str)> = o.labels().collect();
        labels.sort_unstable();
        Some(hash_of(labels))
    })
}

/// `metadata.annotations` (kube-rs's `predicates::annotations`). The decoder does not
/// keep annotations, so this parses the object's metadata on each update it sees.
pub fn annotations() -> Predicate {
    Predicate::custom(|o| {
        // serde_json's map is ordered by key, so equal annotations hash equally.
        let annotations = o.pointer("/metadata/annotations").unwrap_or_default();
        Some(hash_of(annotations.to_string()))
    })
}

/// `metadata.resourceVersion`: every write passes, resyncs and relists of an unchanged
/// object do not (kube-rs's `predicates::resource_version`).
pub fn resource_version() -> Predicate {
    Predicate::custom(|o| Some(hash_of(o.resource_version())))
}

/// Whether an update passes any of `predicates` (every update passes an empty list).
pub(crate) fn any_changed(predicates: &[Predicate], old: &Obj, new: &Obj) -> bool {
    predicates.is_empty() || predicates.iter().any(|p| p.changed(old, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Decoder, DecoderConfig};

    fn obj(json: &str) -> Obj {
        Decoder::new(DecoderConfig::default()).decode_object(json.as_bytes()).unwrap()
    }

    #[test]
    fn each_predicate_sees_only_its_field() {
        let base = obj(r#"{"metadata":{"name":"a","generation":1,"resourceVersion":"1","labels":{"x":"1","y":"2"},"annotations":{"n":"1"}}}"#);
        let status = obj(r#"{"metadata":{"name":"a","generation":1,"resourceVersion":"2","labels":{"y":"2","x":"1"},"annotations":{"n":"1"}},"status":{}}"#);
        let spec = obj(r#"{"metadata":{"name":"a","generation":2,"resourceVersion":"3","labels":{"x":"1","y":"2"},"annotations":{"n":"1"}}}"#);
        let relabel = obj(r#"{"metadata":{"name":"a","generation":1,"resourceVersion":"4","labels":{"x":"9","y":"2"},"annotations":{"n":"1"}}}"#);
        let annotate = obj(r#"{"metadata":{"name":"a","generation":1,"resourceVersion":"5","labels":{"x":"1","y":"2"},"annotations":{"n":"2"}}}"#);
        assert!(!generation().changed(&base, &status));
        assert!(generation().changed(&base, &spec));
        assert!(!labels().changed(&base, &status), "label order does not matter");
        assert!(labels().changed(&base, &relabel));
        assert!(!annotations().changed(&base, &relabel));
        assert!(annotations().changed(&base, &annotate));
        assert!(resource_version().changed(&base, &status));
        assert!(!any_changed(&[generation(), labels()], &base, &status));
        assert!(any_changed(&[generation(), labels()], &base, &relabel));
        assert!(any_changed(&[], &base, &base));
        let no_generation = obj(r#"{"metadata":{"name":"a","resourceVersion":"1"}}"#);
        assert!(generation().changed(&no_generation, &no_generation), "no value passes, as in kube-rs");
    }
}
