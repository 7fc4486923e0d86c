//! The shared informer factory: one informer per [`InformerKey`].

use std::collections::HashMap;
use std::sync::Mutex;

use kube::core::{ApiResource, Resource};

use super::{Informer, InformerConfig, InformerError};
use crate::reflector::{KubeSource, Source};

/// What makes two informer requests the same informer.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct InformerKey {
    /// API group (empty for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name, e.g. `pods`.
    pub plural: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Metadata-only (`PartialObjectMetadata`) objects.
    pub metadata_only: bool,
}

impl InformerKey {
    /// The key for every object of `resource`, all namespaces.
    pub fn new(resource: &ApiResource) -> Self {
        InformerKey {
            group: resource.group.clone(),
            version: resource.version.clone(),
            plural: resource.plural.clone(),
            kind: resource.kind.clone(),
            namespace: None,
            label_selector: None,
            field_selector: None,
            metadata_only: false,
        }
    }

    /// The key for a k8s-openapi type.
    pub fn of<K: Resource<DynamicType = ()>>() -> Self {
        InformerKey::new(&ApiResource::erase::<K>(&()))
    }

    /// The resource as kube-client describes it.
    pub fn api_resource(&self) -> ApiResource {
        let api_version =
            if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) };
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version,
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Restricts to one namespace.
    #[must_use]
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// Sets the label selector.
    #[must_use]
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// Sets the field selector.
    #[must_use]
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }

    /// Asks for metadata-only objects.
    #[must_use]
    pub fn metadata_only(mut self) -> Self {
        self.metadata_only = true;
        self
    }
}

type MakeSource<S> = Box<dyn Fn(&InformerKey) -> S + Send + Sync>;

/// Hands out one shared [`Informer`] per [`InformerKey`].
///
/// ```
/// use kcache::informer::{InformerConfig, InformerKey, SharedInformerFactory};
/// use kcache::testing::MemorySource;
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let pods = MemorySource::new("Pod");
/// pods.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "web"}}));
/// let src = pods.clone();
/// let factory = SharedInformerFactory::new(move |_key: &InformerKey| src.clone());
/// let key = InformerKey::of::<k8s_openapi::api::core::v1::Pod>();
/// let a = factory.informer(&key, InformerConfig::default).unwrap();
/// let b = factory.informer(&key, InformerConfig::default).unwrap();
/// assert!(a.wait_for_sync(std::time::Duration::from_secs(10)).await);
/// assert_eq!(b.store().len(), 1);
/// assert_eq!(pods.list_calls(), 1); // one list for both consumers
/// # });
/// ```
pub struct SharedInformerFactory<S> {
    make_source: MakeSource<S>,
    informers: Mutex<HashMap<InformerKey, Informer>>,
}

impl SharedInformerFactory<KubeSource> {
    /// A factory whose informers talk to the API server behind `client`.
    pub fn from_client(client: kube::Client) -> Self {
        SharedInformerFactory::new(move |key: &InformerKey| {
            KubeSource::new(client.clone(), &key.api_resource(), key.namespace.as_deref()).metadata_only(key.metadata_only)
        })
    }
}

impl<S: Source> SharedInformerFactory<S> {
    /// A factory that builds each informer's source with `make_source`.
    pub fn new(make_source: impl Fn(&InformerKey) -> S + Send + Sync + 'static) -> Self {
        SharedInformerFactory { make_source: Box::new(make_source), informers: Mutex::new(HashMap::new()) }
    }

    /// The informer for `key`, started on first request with `config()`
    /// (selectors from the key override the config's).
    ///
    /// # Errors
    /// [`InformerError::Spawn`] when a new informer's threads cannot be started.
    pub fn informer(&self, key: &InformerKey, config: impl FnOnce() -> InformerConfig) -> Result<Informer, InformerError> {
        let mut informers = self.informers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = informers.get(key) {
            return Ok(i.clone());
        }
        let mut config = config();
        config.watcher.label_selector.clone_from(&key.label_selector);
        config.watcher.field_selector.clone_from(&key.field_selector);
        let informer = Informer::spawn((self.make_source)(key), config)?;
        informers.insert(key.clone(), informer.clone());
        Ok(informer)
    }

    /// Number of distinct informers started.
    pub fn len(&self) -> usize {
        self.informers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no informer was started.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every informer.
    pub fn shutdown(&self) {
        for i in self.informers.lock().unwrap_or_else(|p| p.into_inner()).values() {
            i.shutdown();
        }
    }
}
