//! An object that moves to another owner reconciles both owners, whatever the
//! owners' names look like.

use k8s_openapi::api::apps::v1::ReplicaSet;
use kcache::controller::{KeyController, Scope, kind_of, owner_mapper};
use kcache::wire::{Decoder, DecoderConfig};
use kcache::Obj;

fn obj(json: serde_json::Value) -> Obj {
    Decoder::new(DecoderConfig::default()).decode_object(json.to_string().as_bytes()).unwrap()
}

fn pod_owned_by(rs: &str, uid: &str) -> Obj {
    obj(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "ns", "name": "p", "resourceVersion": "1",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": uid, "controller": true}]}}))
}

fn drain(controller: &KeyController) -> Vec<String> {
    let queue = controller.queue();
    let mut keys = Vec::new();
    while let Some(k) = queue.try_get() {
        keys.push(k.to_string());
        queue.done(&k);
    }
    keys.sort();
    keys
}

#[test]
fn a_pod_moving_to_an_owner_with_a_same_length_name_enqueues_its_old_owner() {
    let controller = KeyController::new();
    let handler = controller.handler_mapped(owner_mapper(kind_of::<ReplicaSet>(&()), Scope::Namespaced));
    // Same length, same offset: only the text differs.
    handler.on_update(&pod_owned_by("rs-a", "u"), &pod_owned_by("rs-b", "u"));
    assert_eq!(drain(&controller), vec!["ReplicaSet.v1.apps/rs-a.ns", "ReplicaSet.v1.apps/rs-b.ns"]);

    // Same name, another incarnation (uid) of the owner: the mapper names one key, once.
    handler.on_update(&pod_owned_by("rs-a", "u1"), &pod_owned_by("rs-a", "u2"));
    assert_eq!(drain(&controller), vec!["ReplicaSet.v1.apps/rs-a.ns"]);

    // Unchanged owners: only the current owner.
    handler.on_update(&pod_owned_by("rs-b", "u"), &pod_owned_by("rs-b", "u"));
    assert_eq!(drain(&controller), vec!["ReplicaSet.v1.apps/rs-b.ns"]);
}
