//! The client itself: configuration, informers and the reads from their stores.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{GetParams, ListParams, ObjectList};
use kube::core::{ApiResource, DynamicObject, Resource};
use serde::de::DeserializeOwned;

use crate::Obj;
use crate::informer::{Informer, InformerConfig, InformerError, InformerKey, SharedInformerFactory};
use crate::reflector::KubeSource;
use crate::selector::LabelSelector;
use crate::store::{Indexer, NAMESPACE_INDEX, StoreError};

/// A failed cached-client call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The API server refused or the request failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
    /// A cached object could not be decoded into the requested type.
    #[error("cached object {key} does not decode as the requested type")]
    Decode {
        /// The object's key.
        key: String,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// The label selector is malformed.
    #[error(transparent)]
    Selector(#[from] crate::selector::SelectorError),
    /// The store refused the query (for example an unknown field index).
    #[error("cache query failed")]
    Store(#[from] StoreError),
    /// The informer could not be started.
    #[error("could not start the informer")]
    Informer(#[from] InformerError),
    /// An applied object names no `metadata.name`.
    #[error("an applied object needs metadata.name")]
    MissingName,
    /// The cache did not reach the resourceVersion in time (after a write:
    /// the write itself was made).
    #[error("cache did not reach resourceVersion {0} in time (after a write, the write was made: do not repeat it; reads may not see it yet)")]
    Timeout(String),
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// A label selector in the API server's syntax.
    pub label_selector: Option<String>,
    /// `(index name, value)` of a registered field index, e.g. `("spec.nodeName", "node-1")`.
    pub field_index: Option<(String, String)>,
}

/// A field index to register for one kind: name and JSON pointer.
#[derive(Clone, Debug)]
struct FieldIndex {
    name: String,
    pointer: String,
}

/// Reads from shared informer caches; writes to the API server.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use k8s_openapi::api::core::v1::Pod;
/// use kcache::client::{CachedClient, ListOptions};
/// let client = CachedClient::new(kube::Client::try_default().await?)
///     .with_field_index::<Pod>("spec.nodeName", "/spec/nodeName");
/// let on_node: Vec<Pod> = client
///     .list(&ListOptions { field_index: Some(("spec.nodeName".into(), "node-1".into())), ..Default::default() })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CachedClient {
    pub(super) client: kube::Client,
    factory: Arc<SharedInformerFactory<KubeSource>>,
    field_indexes: Arc<Mutex<HashMap<InformerKey, Vec<FieldIndex>>>>,
    /// The informers this client started: the kinds whose writes wait for the cache.
    started: Arc<Mutex<HashMap<InformerKey, Informer>>>,
    /// How long a write waits for its kind's cache to catch up.
    pub(super) write_wait: Duration,
    /// The field manager of patches that need one and name none.
    pub(super) field_manager: String,
}

/// How long a write waits for the cache by default.
const DEFAULT_WRITE_WAIT: Duration = Duration::from_secs(10);

impl CachedClient {
    /// A cached client over `client`.
    pub fn new(client: kube::Client) -> Self {
        CachedClient {
            factory: Arc::new(SharedInformerFactory::from_client(client.clone())),
            client,
            field_indexes: Arc::new(Mutex::new(HashMap::new())),
            started: Arc::new(Mutex::new(HashMap::new())),
            write_wait: DEFAULT_WRITE_WAIT,
            field_manager: "kcache".to_owned(),
        }
    }

    /// How long each write waits for its kind's cache to hold it (10 s by
    /// default; zero turns read-your-writes off). A write whose cache does not
    /// catch up in time answers [`ClientError::Timeout`]: the write itself
    /// was made.
    #[must_use]
    pub fn with_write_wait(mut self, wait: Duration) -> Self {
        self.write_wait = wait;
        self
    }

    /// The field manager sent with patches that need one (`kcache` by
    /// default); [`CachedClient::apply`] names its own.
    #[must_use]
    pub fn with_field_manager(mut self, manager: &str) -> Self {
        manager.clone_into(&mut self.field_manager);
        self
    }

    /// Registers a field index for kind `K` (before its informer starts).
    #[must_use]
    pub fn with_field_index<K: Resource<DynamicType = ()>>(self, name: &str, pointer: &str) -> Self {
        self.field_indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(InformerKey::of::<K>())
            .or_default()
            .push(FieldIndex { name: name.to_owned(), pointer: pointer.to_owned() });
        self
    }

    /// The underlying kube client.
    pub fn kube_client(&self) -> &kube::Client {
        &self.client
    }

    /// The shared informer for all objects of `K` (started on first use).
    ///
    /// # Errors
    /// [`ClientError::Informer`] when its threads cannot be started.
    pub fn informer<K: Resource<DynamicType = ()>>(&self) -> Result<Informer, ClientError> {
        self.informer_for(&InformerKey::of::<K>())
    }

    /// The shared informer for all objects of a dynamic `resource` (started on first use).
    ///
    /// # Errors
    /// [`ClientError::Informer`] when its threads cannot be started.
    pub fn dynamic_informer(&self, resource: &ApiResource) -> Result<Informer, ClientError> {
        self.informer_for(&InformerKey::new(resource))
    }

    pub(super) fn informer_for(&self, key: &InformerKey) -> Result<Informer, ClientError> {
        let key = key.clone();
        let fields = self.field_indexes.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned().unwrap_or_default();
        let informer = self.factory.informer(&key, move || {
            let mut config = InformerConfig::default();
            for (i, f) in fields.iter().enumerate() {
                config.decoder.index_fields.push(f.pointer.clone());
                config.store = config.store.indexer(Indexer::field(f.name.as_str(), i));
            }
            config
        })?;
        self.started.lock().unwrap_or_else(|p| p.into_inner()).insert(key, informer.clone());
        Ok(informer)
    }

    /// The informer of `key` when this client started it and it has synced:
    /// the one whose store a read would be answered from.
    pub(super) fn synced_informer(&self, key: &InformerKey) -> Option<Informer> {
        self.started.lock().unwrap_or_else(|p| p.into_inner()).get(key).filter(|i| i.has_synced()).cloned()
    }

    /// The cached object, or `None`; falls back to a GET before the informer synced.
    pub async fn get<K>(&self, namespace: Option<&str>, name: &str) -> Result<Option<K>, ClientError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    {
        self.get_at(&InformerKey::of::<K>(), K::url_path(&(), namespace), namespace, name).await
    }

    /// [`CachedClient::get`] of a dynamic `resource` (a custom resource, for example).
    pub async fn get_dynamic(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<DynamicObject>, ClientError> {
        self.get_at(&InformerKey::new(resource), DynamicObject::url_path(resource, namespace), namespace, name).await
    }

    async fn get_at<K: DeserializeOwned>(
        &self,
        key: &InformerKey,
        url: String,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<K>, ClientError> {
        let informer = self.informer_for(key)?;
        if informer.has_synced() {
            let key = match namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_owned(),
            };
            return informer.store().get_by_key(&key).map(|o| decode(&o)).transpose();
        }
        let req = kube::core::Request::new(url).get(name, &GetParams::default()).map_err(kube::Error::BuildRequest)?;
        match self.client.request::<K>(req).await {
            Ok(obj) => Ok(Some(obj)),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Lists from the cache (by namespace, label selector and/or field index);
    /// falls back to a LIST before the informer synced.
    pub async fn list<K>(&self, opts: &ListOptions) -> Result<Vec<K>, ClientError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    {
        self.list_at(&InformerKey::of::<K>(), K::url_path(&(), opts.namespace.as_deref()), opts).await
    }

    /// [`CachedClient::list`] of a dynamic `resource`.
    pub async fn list_dynamic(&self, resource: &ApiResource, opts: &ListOptions) -> Result<Vec<DynamicObject>, ClientError> {
        self.list_at(&InformerKey::new(resource), DynamicObject::url_path(resource, opts.namespace.as_deref()), opts).await
    }

    async fn list_at<K: DeserializeOwned + Clone>(
        &self,
        key: &InformerKey,
        url: String,
        opts: &ListOptions,
    ) -> Result<Vec<K>, ClientError> {
        let selector: LabelSelector = opts.label_selector.as_deref().unwrap_or("").parse()?;
        let informer = self.informer_for(key)?;
        if !informer.has_synced() {
            let request = kube::core::Request::new(url);
            let mut lp = ListParams::default();
            lp.label_selector.clone_from(&opts.label_selector);
            let req = request.list(&lp).map_err(kube::Error::BuildRequest)?;
            let items = self.client.request::<ObjectList<K>>(req).await?.items;
            return Ok(match &opts.field_index {
                None => items,
                Some(_) => {
                    // The API server cannot filter by an arbitrary field index: the
                    // cache can, so wait for it rather than answer wrongly.
                    if !informer.wait_for_sync(Duration::from_secs(30)).await {
                        return Err(ClientError::Timeout("initial sync".into()));
                    }
                    return self.list_cached(&informer, opts, &selector);
                }
            });
        }
        self.list_cached(&informer, opts, &selector)
    }

    fn list_cached<K: DeserializeOwned>(
        &self,
        informer: &Informer,
        opts: &ListOptions,
        selector: &LabelSelector,
    ) -> Result<Vec<K>, ClientError> {
        let store = informer.store();
        let objs: Vec<Obj> = match (&opts.field_index, &opts.namespace) {
            (Some((index, value)), _) => store.index(index, value)?.to_vec(),
            (None, Some(ns)) => store.index(NAMESPACE_INDEX, ns)?.to_vec(),
            (None, None) => store.list(),
        };
        objs.iter()
            .filter(|o| opts.namespace.as_deref().is_none_or(|ns| o.namespace() == Some(ns)))
            .filter(|o| selector.matches(o))
            .map(decode)
            .collect()
    }

    /// Waits until `K`'s cache has applied everything up to `resource_version`
    /// (read-your-writes), or `timeout`.
    pub async fn wait_for_cache<K: Resource<DynamicType = ()>>(
        &self,
        resource_version: &str,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.wait_for_key(&InformerKey::of::<K>(), resource_version, timeout).await
    }

    /// [`CachedClient::wait_for_cache`] for a dynamic `resource`.
    pub async fn wait_for_dynamic_cache(
        &self,
        resource: &ApiResource,
        resource_version: &str,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.wait_for_key(&InformerKey::new(resource), resource_version, timeout).await
    }

    async fn wait_for_key(&self, key: &InformerKey, resource_version: &str, timeout: Duration) -> Result<(), ClientError> {
        let store = self.informer_for(key)?.store();
        match tokio::time::timeout(timeout, store.wait_for(resource_version)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ClientError::Timeout(resource_version.to_owned())),
        }
    }
}

pub(super) fn decode<K: DeserializeOwned>(obj: &Obj) -> Result<K, ClientError> {
    obj.decode().map_err(|source| ClientError::Decode { key: obj.key(), source })
}
