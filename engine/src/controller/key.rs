//! [`ReconcileKey`]: the untyped queue key of a controller, naming an object by group,
//! kind, namespace and name so that two kinds never share a key.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use kube::Resource;
use kube::core::GroupVersionKind;

/// Whether objects of a kind live in a namespace or in the cluster.
///
/// Decides the namespace of an owner's key: an owner reference carries no namespace,
/// and the child's namespace is right only for a namespaced owner (Kubernetes forbids
/// a namespaced owner in another namespace; a cluster-scoped owner has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Objects have `metadata.namespace`.
    Namespaced,
    /// Objects have no namespace (Node, Namespace, ClusterRole, ...).
    Cluster,
}

impl Scope {
    /// The scope `K` declares through `k8s_openapi`'s `ResourceScope`; `None` for
    /// `kube::core::DynamicResourceScope` (`DynamicObject`), which only knows at run time.
    pub fn of<K: Resource>() -> Option<Scope>
    where
        K::Scope: 'static,
    {
        use std::any::TypeId;
        let scope = TypeId::of::<K::Scope>();
        if scope == TypeId::of::<kube::core::NamespaceResourceScope>() {
            Some(Scope::Namespaced)
        } else if scope == TypeId::of::<kube::core::ClusterResourceScope>() {
            Some(Scope::Cluster)
        } else {
            None
        }
    }
}

/// A kind as a key carries it: group, version and kind, shared by every key of the kind.
pub type Kind = Arc<GroupVersionKind>;

/// The kind of `K` described by `dyntype`.
pub fn kind_of<K: Resource>(dyntype: &K::DynamicType) -> Kind {
    Arc::new(GroupVersionKind::gvk(&K::group(dyntype), &K::version(dyntype), &K::kind(dyntype)))
}

/// Names one object of one kind in a controller's queue: kube-rs's
/// `ObjectRef<DynamicObject>` (what its scheduler keys on), without a type parameter.
///
/// Two keys are equal when group, kind, namespace and name are: the version is carried
/// (for logs and for the typed reference) but ignored, as one object is the same object
/// whichever version an owner reference or a mapper names it by.
///
/// ```
/// use k8s_openapi::api::core::v1::{ConfigMap, Secret};
/// use kcache::controller::ReconcileKey;
///
/// let cm = ReconcileKey::of::<ConfigMap>(Some("default"), "app");
/// let secret = ReconcileKey::of::<Secret>(Some("default"), "app");
/// assert_ne!(cm, secret, "same namespace and name, different kinds");
/// assert_eq!(cm.to_string(), "ConfigMap.v1./app.default"); // kube-rs's format
/// assert_eq!(cm.object_ref(), kcache::ObjectRef::new_namespaced("default", "app"));
/// ```
#[derive(Clone)]
pub struct ReconcileKey {
    /// Group, version and kind.
    pub kind: Kind,
    /// `metadata.namespace`; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ReconcileKey {
    /// A key of `kind`.
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str) -> Self {
        ReconcileKey { kind, namespace: namespace.map(str::to_owned), name: name.to_owned() }
    }

    /// A key of the static kind `K` (a `k8s_openapi` type or a derived custom resource).
    pub fn of<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> Self {
        ReconcileKey::new(kind_of::<K>(&()), namespace, name)
    }

    /// The key of a typed reference.
    pub fn from_typed<K: Resource>(r: &crate::typed::ObjectRef<K>) -> Self {
        ReconcileKey::new(kind_of::<K>(&r.dyntype), r.namespace.as_deref(), &r.name)
    }

    /// The untyped reference the stores take.
    pub fn object_ref(&self) -> crate::ObjectRef {
        crate::ObjectRef { name: self.name.clone(), namespace: self.namespace.clone() }
    }

    /// The typed reference of kind `K`, described by `dyntype` (the caller checks that
    /// the key is of that kind).
    pub fn typed<K: Resource>(&self, dyntype: K::DynamicType) -> crate::typed::ObjectRef<K> {
        let r = crate::typed::ObjectRef::new_with(&self.name, dyntype);
        match &self.namespace {
            Some(ns) => r.within(ns),
            None => r,
        }
    }

    /// Whether the key is of `kind` (group and kind; the version is not compared).
    pub fn is_kind(&self, kind: &GroupVersionKind) -> bool {
        // Keys of one controller share its kind's allocation: no string compare then.
        std::ptr::eq(&*self.kind, kind) || (self.kind.group == kind.group && self.kind.kind == kind.kind)
    }
}

impl PartialEq for ReconcileKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.namespace == other.namespace && self.is_kind(&other.kind)
    }
}

impl Eq for ReconcileKey {}

impl Hash for ReconcileKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.group.hash(state);
        self.kind.kind.hash(state);
        self.namespace.hash(state);
        self.name.hash(state);
    }
}

impl fmt::Display for ReconcileKey {
    /// kube-rs's `ObjectRef` format: `Kind.version.group/name[.namespace]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}/{}", self.kind.kind, self.kind.version, self.kind.group, self.name)?;
        if let Some(ns) = &self.namespace {
            write!(f, ".{ns}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ReconcileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Pod};

    #[test]
    fn keys_differ_by_group_and_kind_but_not_by_version() {
        let apps = ReconcileKey::new(Arc::new(GroupVersionKind::gvk("apps", "v1", "Deployment")), Some("a"), "x");
        let beta = ReconcileKey::new(Arc::new(GroupVersionKind::gvk("apps", "v1beta1", "Deployment")), Some("a"), "x");
        let other_group = ReconcileKey::new(Arc::new(GroupVersionKind::gvk("example.com", "v1", "Deployment")), Some("a"), "x");
        assert_eq!(apps, beta);
        assert_ne!(apps, other_group);
        assert_eq!(apps, ReconcileKey::of::<Deployment>(Some("a"), "x"));
        assert_ne!(ReconcileKey::of::<Pod>(Some("a"), "x"), ReconcileKey::of::<Pod>(None, "x"));
    }

    #[test]
    fn scope_comes_from_the_resource_type() {
        assert_eq!(Scope::of::<Pod>(), Some(Scope::Namespaced));
        assert_eq!(Scope::of::<Namespace>(), Some(Scope::Cluster));
        assert_eq!(Scope::of::<kube::api::DynamicObject>(), None);
    }

    #[test]
    fn typed_round_trip() {
        let key = ReconcileKey::of::<Pod>(Some("ns"), "p");
        let typed = key.typed::<Pod>(());
        assert_eq!(typed, crate::typed::ObjectRef::new("p").within("ns"));
        assert_eq!(ReconcileKey::from_typed(&typed), key);
    }
}
