//! Handlers that turn informer events into controller keys, and the mappers
//! that say which keys an object's event concerns.

use std::sync::Arc;

use crate::fifo::Handler;
use crate::queue::WorkQueue;
use crate::{Obj, ObjectRef};

/// Maps a watched object to the keys of the objects to reconcile.
pub type Mapper = Arc<dyn Fn(&Obj) -> Vec<ObjectRef> + Send + Sync>;

/// Enqueues keys from informer events. Cheap: it only adds to the queue.
pub(crate) struct EnqueueHandler {
    pub(crate) queue: WorkQueue<ObjectRef>,
    pub(crate) map: Mapper,
}

impl EnqueueHandler {
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
        // Owner changes must reach both the old and the new owner.
        if old.meta().owners != new.meta().owners {
            self.enqueue(old);
        }
        self.enqueue(new);
    }
    fn on_delete(&self, obj: &Obj, _final_state_unknown: bool) {
        self.enqueue(obj);
    }
}

/// The reference of an object itself.
pub fn self_ref(obj: &Obj) -> Vec<ObjectRef> {
    vec![obj.to_ref()]
}

/// A mapper to the controlling owner of kind `owner_kind` (the ownerReference
/// with `controller: true`), in the object's namespace — how a ReplicaSet
/// controller hears about its pods.
pub fn owner_ref(owner_kind: &str) -> Mapper {
    let kind = owner_kind.to_owned();
    Arc::new(move |obj: &Obj| {
        obj.owner_references()
            .filter(|o| o.controller && o.kind == kind)
            .map(|o| ObjectRef { name: o.name.to_owned(), namespace: obj.namespace().map(str::to_owned) })
            .collect()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::object::{Meta, OwnerSpans, Span};
    use bytes::Bytes;

    /// A pod owned by two objects; only the ReplicaSet is its controller.
    pub(crate) fn owned_pod() -> Obj {
        let json = r#"{"metadata":{"namespace":"ns","name":"p","ownerReferences":[{"kind":"ReplicaSet","name":"rs-1","controller":true},{"kind":"Node","name":"n1"}]}}"#;
        let find = |s: &str| {
            let start = json.find(&format!("\"{s}\"")).expect("in fixture") + 1;
            Span::new(start as u32, s.len() as u32)
        };
        let meta = Meta {
            namespace: find("ns"),
            name: find("p"),
            owners: vec![
                OwnerSpans { kind: find("ReplicaSet"), name: find("rs-1"), controller: true, ..OwnerSpans::default() },
                OwnerSpans { kind: find("Node"), name: find("n1"), controller: false, ..OwnerSpans::default() },
            ]
            .into_boxed_slice(),
            ..Meta::default()
        };
        Obj::from_parts(Bytes::from_static(json.as_bytes()), meta)
    }

    #[test]
    fn owned_objects_map_to_their_controlling_owner_in_their_namespace() {
        let pod = owned_pod();
        assert_eq!(owner_ref("ReplicaSet")(&pod), vec![ObjectRef::new_namespaced("ns", "rs-1")]);
        assert!(owner_ref("Node")(&pod).is_empty(), "a non-controller owner is not enqueued");
        assert!(owner_ref("Deployment")(&pod).is_empty());
        assert_eq!(self_ref(&pod), vec![ObjectRef::new_namespaced("ns", "p")]);
    }
}
