//! [`Store<K>`]: kube-rs's `Store<K>` reads over kcache's untyped store.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use kube::Resource;
use serde::de::DeserializeOwned;

use super::cache::{CacheStats, Capacity, DecodedCache, Version};
use super::{DecodeError, ObjectRef, WriterDropped};
use crate::Obj;
use crate::informer::Informer;

/// Decoded objects a view keeps unless told otherwise ([`Store::with_cache_capacity`]):
/// one per ten stored objects, and at least 64.
///
/// A decoded object costs about what kube-rs's store holds per object (~35–38 KB for the
/// benches' realistic pods, against ~4.7 KB in kcache's store), so this keeps a view's
/// memory near a tenth of kube-rs's on top of kcache's store: at 10,000 pods the
/// store and a full cache measured 0.24x kube-rs's store (docs/ARCHITECTURE.md,
/// "Typed views").
pub const DEFAULT_CACHE_CAPACITY: Capacity = Capacity::ShareOfStore { per: 10, min: 64 };

thread_local! {
    /// Scratch buffer for building keys from an `ObjectRef` without allocating.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A typed, read-only view of an informer's store: kube-rs's
/// `kube::runtime::reflector::Store<K>` over kcache's untyped [`crate::Store`].
///
/// The store keeps each object as its JSON bytes; the view decodes an object into
/// `K` when it is read and keeps recently read decodes in a bounded cache (by
/// default one per ten stored objects, [`DEFAULT_CACHE_CAPACITY`];
/// [`Store::with_cache`]), each entry tagged with the resourceVersion it was decoded
/// from. So:
/// * memory stays close to kcache's: no decoded copy of every object, as kube-rs keeps;
/// * a read of a kept object, unchanged since it was decoded, is a lookup and an `Arc`
///   clone, as fast as kube-rs's `get`; any other read decodes the object (a full
///   serde parse: ~16 µs for the benches' realistic pods) and keeps it, evicting
///   the least recently read (CLOCK);
/// * a read never returns a decode of an older version than the store holds at that
///   moment, and a deleted object reads as `None`.
///
/// Cheap to clone (clones share the cache); usable from any thread.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use k8s_openapi::api::core::v1::Pod;
/// use kcache::{Informer, InformerConfig};
/// use kcache::testing::MemorySource;
/// use kcache::typed::{ObjectRef, Store};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let pods = MemorySource::new("Pod");
/// pods.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "web-0"}, "spec": {"nodeName": "n1"}}));
/// let informer = Informer::spawn(pods.clone(), InformerConfig::default()).unwrap();
/// let store = Store::<Pod>::from_informer(&informer);
/// tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready()).await.unwrap().unwrap();
///
/// let pod: Arc<Pod> = store.get(&ObjectRef::new("web-0").within("default")).unwrap();
/// assert_eq!(pod.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some("n1"));
/// assert_eq!(store.state().len(), 1);
/// assert!(store.find(|p| p.metadata.name.as_deref() == Some("web-0")).is_some());
/// # });
/// ```
pub struct Store<K: Resource> {
    store: crate::Store,
    dyntype: K::DynamicType,
    cache: Arc<DecodedCache<K>>,
}

impl<K> Store<K>
where
    K: Resource + DeserializeOwned,
    K::DynamicType: Default + PartialEq,
{
    /// A view of `store` (an informer's store of `K` objects).
    pub fn new(store: crate::Store) -> Self {
        Self::new_with(store, K::DynamicType::default())
    }

    /// A view of `informer`'s store. The view does not keep the informer running:
    /// as with any [`crate::Store`] handle, the objects stay readable after it stops.
    pub fn from_informer(informer: &Informer) -> Self {
        Self::new(informer.store())
    }
}

impl<K> Store<K>
where
    K: Resource + DeserializeOwned,
    K::DynamicType: PartialEq,
{
    /// A view of `store` for a kind described at run time: for `kube::api::DynamicObject`,
    /// the `ApiResource` of the objects the store holds.
    ///
    /// ```
    /// use kcache::store::{StoreConfig, store};
    /// use kcache::typed::{ObjectRef, Store};
    /// use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    ///
    /// let (reader, mut writer) = store(StoreConfig::default());
    /// writer.upsert(kcache::testing::object("ConfigMap", "default", "settings", "3", &[]));
    /// let cm = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
    /// let view = Store::<DynamicObject>::new_with(reader, cm.clone());
    /// let obj = view.get(&ObjectRef::new_with("settings", cm).within("default")).unwrap();
    /// assert_eq!(obj.metadata.resource_version.as_deref(), Some("3"));
    /// ```
    pub fn new_with(store: crate::Store, dyntype: K::DynamicType) -> Self {
        Store { store, dyntype, cache: Arc::new(DecodedCache::new(DEFAULT_CACHE_CAPACITY)) }
    }

    /// The same view with a cache of at most `capacity` decoded objects, replacing
    /// this one's (0: keep none, decode on every read; `usize::MAX`: keep every object
    /// read, which approaches kube-rs's memory once every object has been read).
    #[must_use]
    pub fn with_cache_capacity(self, capacity: usize) -> Self {
        self.with_cache(Capacity::Fixed(capacity))
    }

    /// The same view with a cache bounded by `capacity`, replacing this one's.
    #[must_use]
    pub fn with_cache(self, capacity: Capacity) -> Self {
        Store { cache: Arc::new(DecodedCache::new(capacity)), ..self }
    }

    /// The object `r` names, decoded; `None` when the store does not hold it, or when
    /// it does not decode as `K` (logged at `warn`; [`Store::try_get`] returns why).
    ///
    /// As kube-rs's, a reference with a namespace also finds a cluster-scoped object
    /// of that name, and a reference of another dynamic type finds nothing.
    pub fn get(&self, r: &ObjectRef<K>) -> Option<Arc<K>> {
        self.try_get(r).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "typed store read skipped an object");
            None
        })
    }

    /// [`Store::get`], with the reason when the stored object does not decode as `K`.
    ///
    /// ```
    /// use k8s_openapi::api::core::v1::Pod;
    /// use kcache::store::{StoreConfig, store};
    /// use kcache::typed::{ObjectRef, Store};
    ///
    /// let (reader, mut writer) = store(StoreConfig::default());
    /// // A Node where the view expects Pods.
    /// writer.upsert(kcache::testing::object("Node", "default", "n1", "3", &[]));
    /// let view = Store::<Pod>::new(reader);
    /// let err = view.try_get(&ObjectRef::new("n1").within("default")).unwrap_err();
    /// assert_eq!((err.key.as_str(), err.kind.as_str()), ("default/n1", "Pod"));
    /// assert!(view.get(&ObjectRef::new("n1").within("default")).is_none());
    /// assert!(view.try_get(&ObjectRef::new("n2").within("default")).unwrap().is_none());
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] when the stored object does not decode as `K`.
    pub fn try_get(&self, r: &ObjectRef<K>) -> Result<Option<Arc<K>>, DecodeError> {
        if r.dyntype != self.dyntype {
            return Ok(None);
        }
        let found = KEY.with(|k| {
            let mut k = k.borrow_mut();
            r.write_key(&mut k);
            self.try_get_by_key(&k)
        })?;
        match (found, &r.namespace) {
            (None, Some(_)) => self.try_get_by_key(&r.name),
            (found, _) => Ok(found),
        }
    }

    /// The object under the client-go key `namespace/name` (or `name`), decoded: for
    /// keys handed out by the untyped layers ([`crate::ObjectRef::key`],
    /// informer handlers' keys). `None` as for [`Store::get`].
    pub fn get_by_key(&self, key: &str) -> Option<Arc<K>> {
        self.try_get_by_key(key).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "typed store read skipped an object");
            None
        })
    }

    /// [`Store::try_get`] for a reference given by its parts, without building one (a
    /// controller's key names the object this way on every reconcile).
    pub(crate) fn try_get_named(&self, namespace: Option<&str>, name: &str) -> Result<Option<Arc<K>>, DecodeError> {
        let Some(ns) = namespace else { return self.try_get_by_key(name) };
        let found = KEY.with(|k| {
            let mut k = k.borrow_mut();
            k.clear();
            k.push_str(ns);
            k.push('/');
            k.push_str(name);
            self.try_get_by_key(&k)
        })?;
        match found {
            None => self.try_get_by_key(name),
            found => Ok(found),
        }
    }

    /// [`Store::get_by_key`], with the reason when the stored object does not decode.
    ///
    /// # Errors
    /// [`DecodeError`] when the stored object does not decode as `K`.
    pub fn try_get_by_key(&self, key: &str) -> Result<Option<Arc<K>>, DecodeError> {
        // A hit is read under the store's guard, with no handle of the object taken;
        // a miss takes one and decodes outside it.
        let kept = self.store.with_by_key(key, |obj| self.cache.get(obj.key_bytes(), Version::Of(obj)).ok_or_else(|| obj.clone()));
        match kept {
            Some(Ok(hit)) => Ok(Some(hit)),
            Some(Err(obj)) => self.decode(&obj, true).map(Some),
            None => {
                self.cache.forget(key.as_bytes());
                Ok(None)
            }
        }
    }

    /// Every object, decoded, in no particular order (a weak snapshot, as
    /// [`crate::Store::list`]). Objects that do not decode as `K` are left out (logged
    /// at `warn`).
    ///
    /// Objects not in the cache are decoded and not kept, so that a full scan does not
    /// push out the objects a controller reads one by one: on a cold cache this costs a
    /// decode per object. Prefer [`Store::get`], or the untyped store's indexes
    /// ([`Store::untyped`]) to pick objects before decoding them.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.state_filter(|_| true)
    }

    /// The objects for which `predicate` holds, decoded (see [`Store::state`]).
    pub fn state_filter(&self, predicate: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        self.store.list().iter().filter_map(|o| self.typed_or_skip(o)).filter(|k| predicate(k)).collect()
    }

    /// The first object found for which `predicate` holds (in no particular order),
    /// decoding objects until one does (see [`Store::state`] for the cost).
    pub fn find(&self, predicate: impl Fn(&K) -> bool) -> Option<Arc<K>> {
        self.store.list().iter().filter_map(|o| self.typed_or_skip(o)).find(|k| predicate(k))
    }

    /// Number of objects in the store.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Waits until the informer has applied its first complete list (kube-rs's
    /// readiness: the store has synced). Bound it with `tokio::time::timeout`.
    ///
    /// # Errors
    /// [`WriterDropped`] when the informer shut down before it synced.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        let mut delay = Duration::from_millis(1);
        loop {
            if self.store.has_synced() {
                return Ok(());
            }
            if self.store.is_closed() {
                // It may have synced between the two loads.
                return if self.store.has_synced() { Ok(()) } else { Err(WriterDropped) };
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    /// The untyped store under the view: its indexes, resourceVersion barrier and raw
    /// objects.
    pub fn untyped(&self) -> &crate::Store {
        &self.store
    }

    /// What the view's cache holds and did.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats(self.store.len())
    }

    fn typed_or_skip(&self, obj: &Obj) -> Option<Arc<K>> {
        self.typed(obj, false)
            .map_err(|e| tracing::warn!(error = %e, "typed store read skipped an object"))
            .ok()
    }

    /// `obj` decoded: from the cache when it holds this version, else by a decode that
    /// is kept when `keep`.
    fn typed(&self, obj: &Obj, keep: bool) -> Result<Arc<K>, DecodeError> {
        if let Some(hit) = self.cache.get(obj.key_bytes(), Version::Of(obj)) {
            return Ok(hit);
        }
        self.decode(obj, keep)
    }

    /// Decodes `obj`, keeping the decode when `keep` (and the object has a
    /// resourceVersion: without one two versions cannot be told apart).
    fn decode(&self, obj: &Obj, keep: bool) -> Result<Arc<K>, DecodeError> {
        let value = Arc::new(obj.decode::<K>().map_err(|source| {
            self.cache.decode_errors.fetch_add(1, Relaxed);
            DecodeError { key: obj.key(), kind: K::kind(&self.dyntype).into_owned(), source }
        })?);
        let version = Version::Of(obj);
        if keep && !version.parts().0.is_empty() {
            self.cache.insert(obj.key_bytes(), version, &value, self.store.len());
        }
        Ok(value)
    }
}

impl<K: Resource> Clone for Store<K>
where
    K::DynamicType: Clone,
{
    fn clone(&self) -> Self {
        Store { store: self.store.clone(), dyntype: self.dyntype.clone(), cache: Arc::clone(&self.cache) }
    }
}

impl<K: Resource> fmt::Debug for Store<K>
where
    K::DynamicType: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dyntype", &self.dyntype)
            .field("len", &self.store.len())
            .field("cache", &self.cache.stats(self.store.len()))
            .finish()
    }
}
