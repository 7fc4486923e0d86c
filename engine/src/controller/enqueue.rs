//! Handlers that turn informer events into controller keys, and the mappers
//! that say which keys an object's event concerns.

use std::sync::Arc;

use super::key::{Kind, ReconcileKey, Scope};
use super::owner::{owner_keys, owners_differ};
use super::predicates::{Predicate, any_changed};
use crate::Obj;
use crate::fifo::Handler;
use crate::queue::WorkQueue;

/// Maps a watched object to the keys of the objects to reconcile.
pub type Mapper = Arc<dyn Fn(&Obj) -> Vec<ReconcileKey> + Send + Sync>;

/// Enqueues keys from informer events. Cheap: it only adds to the queue (and, with
/// predicates, reads the compared fields of both versions).
pub(crate) struct EnqueueHandler {
    pub(crate) queue: WorkQueue<ReconcileKey>,
    pub(crate) map: Mapper,
    /// Updates that pass none of these are dropped; empty: every update passes.
    pub(crate) predicates: Vec<Predicate>,
}

impl EnqueueHandler {
    pub(crate) fn new(queue: WorkQueue<ReconcileKey>, map: Mapper) -> Self {
        EnqueueHandler { queue, map, predicates: Vec::new() }
    }

    fn enqueue(&self, obj: &Obj) {
        for key in (self.map)(obj) {
            self.queue.add(key);
        }
    }
}

impl Handler for EnqueueHandler {
    fn on_add(&self, obj: &Obj, _is_in_initial_list: bool) {
        self.enqueue(obj);
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        // An object that moved to another owner concerns its old owner too.
        if owners_differ(old, new) {
            self.enqueue(old);
        } else if !any_changed(&self.predicates, old, new) {
            return;
        }
        self.enqueue(new);
    }
    fn on_delete(&self, obj: &Obj, _final_state_unknown: bool) {
        self.enqueue(obj);
    }
}

/// A mapper to the object's own key, as an object of `kind`.
pub fn self_key(kind: Kind) -> Mapper {
    Arc::new(move |obj: &Obj| vec![ReconcileKey::new(kind.clone(), obj.namespace(), obj.name())])
}

/// A mapper to the controlling owner of kind `owner` (the ownerReference with
/// `controller: true`, matched by group and kind), in the object's namespace when the
/// owner kind is namespaced — how a ReplicaSet controller hears about its pods.
/// Malformed references are skipped and logged.
pub fn owner_mapper(owner: Kind, scope: Scope) -> Mapper {
    Arc::new(move |obj: &Obj| {
        owner_keys(obj, &owner, scope, true)
            .into_iter()
            .filter_map(|k| k.map_err(|e| tracing::warn!(error = %e, "owner reference skipped")).ok())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::predicates::generation;
    use crate::wire::{Decoder, DecoderConfig};
    use k8s_openapi::api::apps::v1::Deployment;

    fn deployment(generation: i64, status: &str) -> Obj {
        let json = format!(r#"{{"metadata":{{"namespace":"a","name":"d","generation":{generation}}},"status":{status}}}"#);
        Decoder::new(DecoderConfig::default()).decode_object(json.as_bytes()).unwrap()
    }

    #[test]
    fn predicates_drop_updates_they_see_no_change_in_but_never_adds_or_deletes() {
        let queue = WorkQueue::new();
        let kind = crate::controller::kind_of::<Deployment>(&());
        let handler = EnqueueHandler { queue: queue.clone(), map: self_key(kind), predicates: vec![generation()] };
        let (v1, status_only, v2) = (deployment(1, "{}"), deployment(1, r#"{"replicas":3}"#), deployment(2, "{}"));
        handler.on_update(&v1, &status_only);
        assert!(queue.is_empty(), "a status-only update is dropped");
        handler.on_update(&status_only, &v2);
        assert_eq!(queue.len(), 1);
        let key = queue.try_get().unwrap();
        queue.done(&key);
        handler.on_add(&v1, false);
        assert_eq!(queue.len(), 1);
        let key = queue.try_get().unwrap();
        queue.done(&key);
        handler.on_delete(&v1, false);
        assert_eq!(queue.len(), 1);
    }
}
