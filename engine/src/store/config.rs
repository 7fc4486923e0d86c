//! Store configuration: shard count and secondary indexes.

use std::fmt;
use std::sync::Arc;

use crate::Obj;

/// Name of the built-in index on `metadata.namespace` (cluster-scoped objects are
/// indexed under `""`, as client-go's `MetaNamespaceIndexFunc` does).
pub const NAMESPACE_INDEX: &str = "namespace";
/// Name of the label index ([`Indexer::labels`]); values are `key=value`.
pub const LABEL_INDEX: &str = "label";
/// Name of the owner index ([`Indexer::owners`]) on `metadata.ownerReferences[].uid`.
pub const OWNER_INDEX: &str = "owner";

/// A user index function: the index values an object is filed under (client-go
/// `IndexFunc`). Called on the shard writer thread for every applied write, so keep
/// it cheap.
pub type IndexFunc = Arc<dyn Fn(&Obj) -> Vec<String> + Send + Sync>;

/// How an index computes its values.
#[derive(Clone)]
pub(crate) enum IndexKind {
    Namespace,
    Label,
    Owner,
    /// The `i`-th decoder-registered field (`obj.field(i)`); no allocation per write.
    Field(usize),
    Custom(IndexFunc),
}

/// A named secondary index.
#[derive(Clone)]
pub struct Indexer {
    pub(crate) name: Arc<str>,
    pub(crate) kind: IndexKind,
}

impl Indexer {
    /// An index computed by `f`.
    ///
    /// ```
    /// use kcache::store::Indexer;
    /// let by_phase = Indexer::new("phase", |o: &kcache::Obj| o.label("phase").map(|p| vec![p.to_owned()]).unwrap_or_default());
    /// assert_eq!(by_phase.name(), "phase");
    /// ```
    pub fn new(name: impl Into<Arc<str>>, f: impl Fn(&Obj) -> Vec<String> + Send + Sync + 'static) -> Self {
        Indexer { name: name.into(), kind: IndexKind::Custom(Arc::new(f)) }
    }

    /// An index on the `field`-th index field registered with the decoder (for example
    /// `"spec.nodeName"` read through `obj.field(0)`). Objects whose field is absent are
    /// not indexed. Costs no allocation per write.
    pub fn field(name: impl Into<Arc<str>>, field: usize) -> Self {
        Indexer { name: name.into(), kind: IndexKind::Field(field) }
    }

    /// The namespace index, [`NAMESPACE_INDEX`]: in every store unless
    /// [`StoreConfig::without_builtin_indexes`] removed it.
    pub fn namespace() -> Self {
        Indexer { name: NAMESPACE_INDEX.into(), kind: IndexKind::Namespace }
    }

    /// The label index, [`LABEL_INDEX`]: each object under every `key=value` of its
    /// labels. Not in the default store: every write re-files the object in one set
    /// per label (see [`crate::store`], "Index snapshots"), and a pod commonly has
    /// five or more. Add it when callers look objects up by label often.
    ///
    /// ```
    /// use kcache::object::testing::pod;
    /// use kcache::store::{Indexer, LABEL_INDEX, StoreConfig, store};
    ///
    /// let (reader, mut writer) = store(StoreConfig::default().indexer(Indexer::labels()));
    /// writer.upsert(pod("default", "web-0", "1", &[("app", "web")]));
    /// assert_eq!(reader.index(LABEL_INDEX, "app=web").unwrap().len(), 1);
    /// ```
    pub fn labels() -> Self {
        Indexer { name: LABEL_INDEX.into(), kind: IndexKind::Label }
    }

    /// The owner index, [`OWNER_INDEX`]: each object under the uid of each of its
    /// `ownerReferences` (the lookup a controller makes for "what does this object
    /// own"). Not in the default store, for the write cost [`Indexer::labels`] gives.
    pub fn owners() -> Self {
        Indexer { name: OWNER_INDEX.into(), kind: IndexKind::Owner }
    }

    /// The index name passed to [`crate::store::Store::index`].
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Indexer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            IndexKind::Namespace => "namespace".to_owned(),
            IndexKind::Label => "label".to_owned(),
            IndexKind::Owner => "owner".to_owned(),
            IndexKind::Field(i) => format!("field({i})"),
            IndexKind::Custom(_) => "custom".to_owned(),
        };
        f.debug_struct("Indexer").field("name", &self.name).field("kind", &kind).finish()
    }
}

/// Configuration for [`crate::store::store`].
///
/// ```
/// use kcache::store::{Indexer, StoreConfig};
/// let config = StoreConfig::default().shards(4).indexer(Indexer::field("spec.nodeName", 0));
/// assert_eq!(config.shard_count(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub(crate) shards: usize,
    pub(crate) indexers: Vec<Indexer>,
}

impl Default for StoreConfig {
    /// One shard per available core and the namespace index, the one index
    /// client-go's informers keep by default. [`Indexer::labels`] and
    /// [`Indexer::owners`] are built in and added with [`StoreConfig::indexer`].
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        StoreConfig { shards: cores, indexers: vec![Indexer::namespace()] }
    }
}

impl StoreConfig {
    /// Sets the number of shards (clamped to at least 1).
    #[must_use]
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n.max(1);
        self
    }

    /// The configured number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards
    }

    /// Adds a user index. A later indexer with the same name replaces the earlier one.
    #[must_use]
    pub fn indexer(mut self, indexer: Indexer) -> Self {
        self.indexers.retain(|i| i.name != indexer.name);
        self.indexers.push(indexer);
        self
    }

    /// Drops the built-in indexes (namespace, and label and owner if added), keeping
    /// field and user indexes: saves their memory and write cost when no caller
    /// lists by them.
    #[must_use]
    pub fn without_builtin_indexes(mut self) -> Self {
        self.indexers.retain(|i| matches!(i.kind, IndexKind::Field(_) | IndexKind::Custom(_)));
        self
    }
}
