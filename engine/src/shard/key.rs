//! An object's place on the ring: the 64-bit FNV-1a hash of the field the ring shards
//! by, owner-aware so that an owner and the objects it controls land on one replica.
//!
//! # Guarantees
//! * The hash is the one Kubernetes' server-side shard selector computes (64-bit
//!   FNV-1a of the field's bytes), so a replica's ranges exported with
//!   [`shard_selector`](super::shard_selector) select the same objects it is assigned.
//! * With [`ShardBy::Namespace`] an object and every object in its namespace share a
//!   hash; with [`ShardBy::Uid`] an object with a controller owner hashes as that owner;
//!   with [`ShardBy::ObjectUid`] every object hashes by its own uid.

use crate::Obj;
use crate::reflector::ShardField;

/// Which field places an object on the ring.
///
/// | | balance | owner and owned together | server-side slicing |
/// |---|---|---|---|
/// | `Namespace` | by namespace: one namespace is one point, so a big namespace is one replica's | always (Kubernetes forbids an owner in another namespace) | every kind, by `object.metadata.namespace` |
/// | `Uid` | by object: uids are random, the best spread | owned objects hash by their controller owner's uid | the owners' kind only: an owned object's own uid is not where it is assigned |
/// | `ObjectUid` | by object, the best spread | no | every kind, by `object.metadata.uid`: what a replica caches is exactly what it is assigned |
///
/// FNV-1a keeps the high bits of strings that differ only at the end close together,
/// so namespaces named `team-1` … `team-9` sit near each other on the ring: with
/// `Namespace`, few namespaces or sequential names balance worse than the ring's
/// vnodes suggest. Cluster-scoped objects have no namespace and all hash as `""`
/// under `Namespace`: shard cluster-scoped kinds by `Uid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShardBy {
    /// `metadata.namespace` (`""` for cluster-scoped objects).
    Namespace,
    /// `metadata.uid`, or the uid of the object's controller owner when it has one.
    Uid,
    /// The object's own `metadata.uid`, owner or not: the placement a server-side
    /// `object.metadata.uid` selector slices by, for a controller of one kind whose
    /// objects have owners it does not reconcile (pods under ReplicaSets).
    ObjectUid,
}

impl ShardBy {
    /// The field path the server-side selector names (`object.metadata.…`).
    pub fn field_path(self) -> &'static str {
        self.field().path()
    }

    /// The field a server-side selector hashes for this placement. Under `Uid` an owned
    /// object is placed by its controller owner's uid, which a selector on the object's
    /// own uid cannot follow: slice owned kinds server-side by `Namespace`.
    pub fn field(self) -> ShardField {
        match self {
            ShardBy::Namespace => ShardField::Namespace,
            ShardBy::Uid | ShardBy::ObjectUid => ShardField::Uid,
        }
    }

    /// Where `obj` sits on the ring.
    ///
    /// ```
    /// use kcache::shard::{ShardBy, fnv1a64};
    /// let owned = kcache::wire::Decoder::new(Default::default()).decode_object(br#"{"metadata":{"namespace":"ns","name":"p","uid":"pod-uid",
    ///     "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"rs-uid","controller":true}]}}"#).unwrap();
    /// assert_eq!(ShardBy::Uid.hash(&owned), fnv1a64(b"rs-uid"), "placed with its controller");
    /// assert_eq!(ShardBy::ObjectUid.hash(&owned), fnv1a64(b"pod-uid"), "placed by its own uid");
    /// assert_eq!(ShardBy::Namespace.hash(&owned), fnv1a64(b"ns"));
    /// ```
    pub fn hash(self, obj: &Obj) -> u64 {
        match self {
            ShardBy::Namespace => ShardBy::namespace_hash(obj.namespace()),
            ShardBy::Uid => match obj.owner_references().find(|r| r.controller && !r.uid.is_empty()) {
                Some(owner) => fnv1a64(owner.uid.as_bytes()),
                None => ShardBy::ObjectUid.hash(obj),
            },
            // Only objects built by hand lack a uid (a server always sets one);
            // spread them by name rather than pile them on the hash of "".
            ShardBy::ObjectUid if obj.uid().is_empty() => fnv1a64(obj.key().as_bytes()),
            ShardBy::ObjectUid => fnv1a64(obj.uid().as_bytes()),
        }
    }

    /// The hash of a namespace under [`ShardBy::Namespace`] (`None`: cluster-scoped).
    pub fn namespace_hash(namespace: Option<&str>) -> u64 {
        fnv1a64(namespace.unwrap_or("").as_bytes())
    }
}

/// 64-bit FNV-1a, the hash of Kubernetes' shard selector
/// (`k8s.io/apimachinery/pkg/sharding`): the reflector's, so ring and selector agree.
pub use crate::reflector::fnv1a64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Decoder, DecoderConfig};

    fn obj(json: &str) -> Obj {
        Decoder::new(DecoderConfig::default()).decode_object(json.as_bytes()).unwrap()
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite (isthe.com/chongo/tech/comp/fnv).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn owned_objects_hash_with_their_controller_and_namespaces_keep_together() {
        let owner = obj(r#"{"metadata":{"namespace":"ns","name":"rs","uid":"rs-uid"}}"#);
        let controlled = obj(
            r#"{"metadata":{"namespace":"ns","name":"p","uid":"p-uid","ownerReferences":[
            {"apiVersion":"v1","kind":"ConfigMap","name":"other","uid":"other-uid"},
            {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"rs-uid","controller":true}]}}"#,
        );
        let loose = obj(r#"{"metadata":{"namespace":"ns","name":"q","uid":"q-uid","ownerReferences":[
            {"apiVersion":"v1","kind":"ConfigMap","name":"other","uid":"other-uid"}]}}"#);
        assert_eq!(ShardBy::Uid.hash(&owner), ShardBy::Uid.hash(&controlled));
        assert_eq!(ShardBy::Uid.hash(&loose), fnv1a64(b"q-uid"), "a non-controller owner does not place it");
        for o in [&owner, &controlled, &loose] {
            assert_eq!(ShardBy::Namespace.hash(o), fnv1a64(b"ns"));
        }
        let cluster = obj(r#"{"metadata":{"name":"n1","uid":"n-uid"}}"#);
        assert_eq!(ShardBy::Namespace.hash(&cluster), fnv1a64(b""));
        let no_uid = obj(r#"{"metadata":{"namespace":"ns","name":"a"}}"#);
        let other_no_uid = obj(r#"{"metadata":{"namespace":"ns","name":"b"}}"#);
        assert_ne!(ShardBy::Uid.hash(&no_uid), ShardBy::Uid.hash(&other_no_uid));
    }
}
