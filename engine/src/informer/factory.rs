//! The shared informer factory: one informer per [`InformerKey`].

use std::collections::HashMap;
use std::fmt;
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

impl fmt::Display for InformerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{group}/{}/{}", self.version, self.plural)?;
        if let Some(ns) = &self.namespace {
            write!(f, " namespace={ns}")?;
        }
        if let Some(l) = &self.label_selector {
            write!(f, " labelSelector={l}")?;
        }
        if let Some(l) = &self.field_selector {
            write!(f, " fieldSelector={l}")?;
        }
        if self.metadata_only {
            f.write_str(" metadata-only")?;
        }
        Ok(())
    }
}

/// The comparable fields of an [`InformerConfig`], named, as text.
///
/// Closures cannot be compared and are left out: `watcher.on_error`,
/// `decoder.transform` and a custom indexer's function (its name and kind
/// are compared). Selectors come from the [`InformerKey`].
fn comparable_fields(c: &InformerConfig) -> Vec<(&'static str, String)> {
    let w = &c.watcher;
    let b = &w.backoff;
    vec![
        ("watcher.page_size", format!("{:?}", w.page_size)),
        ("watcher.list_resource_version", format!("{:?}", w.list_resource_version)),
        ("watcher.streaming_list", format!("{:?}", w.streaming_list)),
        ("watcher.initial_events_timeout", format!("{:?}", w.initial_events_timeout)),
        ("watcher.min_watch_timeout", format!("{:?}", w.min_watch_timeout)),
        (
            "watcher.backoff",
            format!("{:?}..{:?} x{} jitter {} reset after {:?}", b.initial, b.max, b.factor, b.jitter, b.reset_after),
        ),
        ("watcher.max_frame_bytes", format!("{:?}", w.max_frame_bytes)),
        ("watcher.max_objects", format!("{:?}", w.max_objects)),
        ("decoder.index_fields", format!("{:?}", c.decoder.index_fields)),
        ("decoder.strip_managed_fields", format!("{:?}", c.decoder.strip_managed_fields)),
        ("decoder.max_object_bytes", format!("{:?}", c.decoder.max_object_bytes)),
        ("store", format!("{:?}", c.store)),
        ("resync", format!("{:?}", c.resync)),
        ("arena_segment_bytes", format!("{:?}", c.arena_segment_bytes)),
        ("compaction", format!("{:?}", c.compaction)),
        ("compression", format!("{:?}", c.compression)),
    ]
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
    informers: Mutex<HashMap<InformerKey, Running>>,
}

/// A started informer and the comparable fields of the config it was started with.
struct Running {
    informer: Informer,
    config: Vec<(&'static str, String)>,
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
    /// Every request must ask for the same config: `config()` is called each
    /// time and its comparable fields (all but the closures `watcher.on_error`,
    /// `decoder.transform` and custom index functions, which are not compared)
    /// must equal those the informer was started with. An informer that was
    /// shut down ([`Informer::shutdown`], [`SharedInformerFactory::shutdown`])
    /// is never handed out again: the next request starts a new one for the
    /// key, with that request's config, which lists again.
    ///
    /// # Errors
    /// [`InformerError::Spawn`] when a new informer's threads cannot be started;
    /// [`InformerError::ConfigMismatch`] when the informer for `key` runs with a
    /// different config (naming the fields that differ).
    pub fn informer(&self, key: &InformerKey, config: impl FnOnce() -> InformerConfig) -> Result<Informer, InformerError> {
        let mut config = config();
        config.watcher.label_selector.clone_from(&key.label_selector);
        config.watcher.field_selector.clone_from(&key.field_selector);
        let fields = comparable_fields(&config);
        let mut informers = self.informers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = informers.get(key).filter(|r| !r.informer.is_shut_down()) {
            let differs: Vec<String> = running
                .config
                .iter()
                .zip(&fields)
                .filter(|((_, had), (_, asked))| had != asked)
                .map(|((name, had), (_, asked))| format!("{name} ({had} != {asked})"))
                .collect();
            if !differs.is_empty() {
                return Err(InformerError::ConfigMismatch { key: key.to_string(), differs });
            }
            return Ok(running.informer.clone());
        }
        let informer = Informer::spawn((self.make_source)(key), config)?;
        informers.insert(key.clone(), Running { informer: informer.clone(), config: fields });
        Ok(informer)
    }

    /// Number of keys an informer was started for (a key whose informer was
    /// shut down and started again counts once).
    pub fn len(&self) -> usize {
        self.informers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no informer was started.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every informer.
    pub fn shutdown(&self) {
        for running in self.informers.lock().unwrap_or_else(|p| p.into_inner()).values() {
            running.informer.shutdown();
        }
    }
}
