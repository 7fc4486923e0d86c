//! [`ObjectRef<K>`]: a typed reference to one object, with kube-rs's name and shape.

use std::fmt;
use std::hash::{Hash, Hasher};

use kube::Resource;

/// Names one object of kind `K`: its name, its namespace (for namespaced kinds) and,
/// for kinds known only at run time (`kube::api::DynamicObject`), its type.
///
/// The same fields and constructors as kube-runtime's
/// `kube::runtime::reflector::ObjectRef` (without its `extra`), so that code written
/// against kube-rs's `Store<K>` only changes its `use` line. It is kcache's own type
/// because the engine does not use kube-runtime (its reflector, watcher and store are
/// kcache's), and a public type from it would tie the engine's API to that crate's
/// releases.
///
/// ```
/// use k8s_openapi::api::core::v1::{Node, Pod};
/// use kcache::typed::ObjectRef;
///
/// let pod = ObjectRef::<Pod>::new("web-0").within("default");
/// assert_eq!(pod.key(), "default/web-0");
/// assert_eq!(pod.to_string(), "Pod.v1./web-0.default"); // kube-rs's format
/// let node = ObjectRef::<Node>::new("node-1");
/// assert_eq!(node.key(), "node-1");
/// assert_eq!(kcache::ObjectRef::from(node), kcache::ObjectRef::new_cluster("node-1"));
/// ```
#[non_exhaustive]
pub struct ObjectRef<K: Resource> {
    /// The kind's type information: `()` for `k8s_openapi` and derived types, an
    /// `ApiResource` for `DynamicObject`.
    pub dyntype: K::DynamicType,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
}

impl<K: Resource> ObjectRef<K>
where
    K::DynamicType: Default,
{
    /// A reference to the object `name` (cluster-scoped until [`ObjectRef::within`]).
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self::new_with(name, K::DynamicType::default())
    }

    /// The reference naming `obj` (an object without a name gets an empty one).
    #[must_use]
    pub fn from_obj(obj: &K) -> Self {
        Self::from_obj_with(obj, K::DynamicType::default())
    }
}

impl<K: Resource> ObjectRef<K> {
    /// A reference to the object `name` of the kind described by `dyntype`.
    #[must_use]
    pub fn new_with(name: &str, dyntype: K::DynamicType) -> Self {
        ObjectRef { dyntype, name: name.to_owned(), namespace: None }
    }

    /// The reference naming `obj`, of the kind described by `dyntype`.
    #[must_use]
    pub fn from_obj_with(obj: &K, dyntype: K::DynamicType) -> Self {
        let meta = obj.meta();
        ObjectRef { dyntype, name: meta.name.clone().unwrap_or_default(), namespace: meta.namespace.clone() }
    }

    /// The same reference in `namespace`.
    #[must_use]
    pub fn within(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// The client-go cache key the store files the object under: `namespace/name`,
    /// or `name` for a cluster-scoped object.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Writes [`ObjectRef::key`] into `buf` (cleared first), without allocating when
    /// `buf` has room.
    pub(crate) fn write_key(&self, buf: &mut String) {
        buf.clear();
        if let Some(ns) = &self.namespace {
            buf.push_str(ns);
            buf.push('/');
        }
        buf.push_str(&self.name);
    }
}

impl<K: Resource> From<ObjectRef<K>> for crate::ObjectRef {
    fn from(r: ObjectRef<K>) -> Self {
        crate::ObjectRef { name: r.name, namespace: r.namespace }
    }
}

impl<K: Resource> From<&crate::ObjectRef> for ObjectRef<K>
where
    K::DynamicType: Default,
{
    /// The typed reference for a key the untyped layers hand out (an
    /// enqueue handler's `ObjectRef`, for instance; a controller's
    /// [`crate::controller::ReconcileKey`] has its own `typed`).
    fn from(r: &crate::ObjectRef) -> Self {
        ObjectRef { dyntype: K::DynamicType::default(), name: r.name.clone(), namespace: r.namespace.clone() }
    }
}

impl<K: Resource> From<&K> for ObjectRef<K>
where
    K::DynamicType: Default,
{
    fn from(obj: &K) -> Self {
        Self::from_obj(obj)
    }
}

impl<K: Resource> Clone for ObjectRef<K>
where
    K::DynamicType: Clone,
{
    fn clone(&self) -> Self {
        ObjectRef { dyntype: self.dyntype.clone(), name: self.name.clone(), namespace: self.namespace.clone() }
    }
}

impl<K: Resource> fmt::Debug for ObjectRef<K>
where
    K::DynamicType: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectRef")
            .field("dyntype", &self.dyntype)
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl<K: Resource> PartialEq for ObjectRef<K>
where
    K::DynamicType: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.dyntype == other.dyntype && self.name == other.name && self.namespace == other.namespace
    }
}

impl<K: Resource> Eq for ObjectRef<K> where K::DynamicType: Eq {}

impl<K: Resource> Hash for ObjectRef<K>
where
    K::DynamicType: Hash,
{
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.dyntype.hash(state);
        self.name.hash(state);
        self.namespace.hash(state);
    }
}

impl<K: Resource> fmt::Display for ObjectRef<K> {
    /// kube-rs's format: `Kind.version.group/name[.namespace]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}/{}", K::kind(&self.dyntype), K::version(&self.dyntype), K::group(&self.dyntype), self.name)?;
        if let Some(ns) = &self.namespace {
            write!(f, ".{ns}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{ApiResource, DynamicObject};
    use kube::core::GroupVersionKind;

    #[test]
    fn display_and_key_follow_kube_rs_and_client_go() {
        let d = ObjectRef::<Deployment>::new("web").within("prod");
        assert_eq!(d.to_string(), "Deployment.v1.apps/web.prod");
        assert_eq!(d.key(), "prod/web");
        let mut buf = String::from("leftover");
        d.write_key(&mut buf);
        assert_eq!(buf, "prod/web");
    }

    #[test]
    fn from_obj_reads_name_and_namespace_and_tolerates_a_missing_name() {
        let mut pod = Pod::default();
        assert_eq!(ObjectRef::from_obj(&pod).name, "");
        pod.metadata.name = Some("a".into());
        pod.metadata.namespace = Some("ns".into());
        assert_eq!(ObjectRef::from(&pod), ObjectRef::<Pod>::new("a").within("ns"));
    }

    #[test]
    fn dynamic_refs_with_different_types_differ() {
        let cm = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
        let secret = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Secret"));
        let a = ObjectRef::<DynamicObject>::new_with("x", cm.clone());
        assert_ne!(a, ObjectRef::<DynamicObject>::new_with("x", secret));
        assert_eq!(a.clone(), ObjectRef::<DynamicObject>::new_with("x", cm));
        assert_eq!(a.to_string(), "ConfigMap.v1./x");
    }

    #[test]
    fn converts_to_and_from_the_untyped_reference() {
        let untyped = crate::ObjectRef::new_namespaced("ns", "a");
        let typed = ObjectRef::<Pod>::from(&untyped);
        assert_eq!(typed, ObjectRef::new("a").within("ns"));
        assert_eq!(crate::ObjectRef::from(typed), untyped);
    }
}
