//! An informer whose cache follows the ring: each replica lists and watches only the
//! hash ranges its [`ShardMembership`] gives it, through the server-side shard
//! selector (KEP-5866), and moves to the new ranges when the membership changes.
//!
//! # Guarantees
//! * Support is probed once, at start ([`KubeSource::supports_shard_selector`]). With
//!   support ([`CacheMode::ServerSide`]) every LIST and WATCH carries the selector of
//!   this replica's current ranges; without it ([`CacheMode::Everything`]) the
//!   informer caches the whole collection and says why once, at info level (the
//!   controller's [`shard`](crate::controller::Controller::shard) filter still admits
//!   only this replica's keys).
//! * After a change of ranges the informer re-lists only what moved: it asks the
//!   watcher for a scoped relist ([`RelistTrigger::request_scoped`]) that LISTs the
//!   gained ranges alone, at exactly the resourceVersion the open watch had reached,
//!   drops the lost ranges' objects, and watches on from that version with the new
//!   selector. Handlers get an add for every gained object and a delete
//!   (`final_state_unknown`) for every lost one, and nothing for the objects kept.
//!   Between the change and that relist the cache still holds the old slice.
//! * When the scoped relist cannot be used (no watch open, a LIST in progress, a
//!   410 on the exact LIST, any error; see [`crate::reflector::RelistScope`]) the
//!   watcher relists the whole new slice at once instead, without the backoff a
//!   failure would wait for; either way no event is lost.
//! * A replica that owns no range (not on the ring yet, or leaving) keeps its last
//!   selector: a selector cannot be empty, and the membership admits nothing then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use kube::api::{ListParams, WatchParams};

use super::{HashRange, ShardBy, ShardMembership, ranges, shard_selector};
use crate::informer::{Informer, InformerConfig, InformerError};
use crate::Obj;
use crate::reflector::{BodyStream, HASH_SPACE_END, KubeSource, RelistScope, RelistTrigger, ShardField, ShardSelector, Source, SourceError, fnv1a64};

/// How a [`ShardedInformer`] holds its slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheMode {
    /// The server filters by this replica's ranges: the cache holds about `1/N`.
    ServerSide,
    /// The server does not support the shard selector: the cache holds everything.
    Everything,
    /// The server does not support the shard selector and the caller chose labels
    /// ([`CacheModePreference::LabelWhenUnsupported`](super::CacheModePreference)):
    /// the cache holds the objects a [`Sharder`](super::Sharder) labelled with this
    /// replica, about `1/N`.
    Label,
}

/// Why a [`ShardedInformer`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardCacheError {
    /// The support probe failed (the server is unreachable, or refused the LIST).
    #[error("probing the api server for shard selector support failed")]
    Probe(#[source] SourceError),
    /// The informer could not start.
    #[error(transparent)]
    Informer(#[from] InformerError),
    /// The ring name or identity cannot make the shard label ([`CacheMode::Label`]).
    #[error(transparent)]
    Label(#[from] super::LabelError),
}

/// An informer that caches only this replica's shard of a collection, following a
/// [`ShardMembership`]; see [`crate::shard`] and docs/SCALING.md for how it moves between slices.
///
/// ```no_run
/// # async fn demo(client: kube::Client, membership: kcache::shard::ShardMembership) -> Result<(), Box<dyn std::error::Error>> {
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kcache::informer::InformerConfig;
/// use kcache::reflector::KubeSource;
/// use kcache::shard::{ShardBy, ShardedInformer};
/// let source = KubeSource::for_type::<ConfigMap>(client, None);
/// let sharded = ShardedInformer::start(membership, source, ShardBy::Uid, InformerConfig::default()).await?;
/// let informer = sharded.informer(); // hand it to Controller::new(..).shard(..)
/// # let _ = informer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ShardedInformer {
    informer: Informer,
    mode: CacheMode,
    state: Option<Arc<SelectorState>>,
    _follow: Arc<FollowGuard>,
}

/// Stops the task that follows the membership when the last clone is dropped.
struct FollowGuard(Option<tokio::task::JoinHandle<()>>);

impl Drop for FollowGuard {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The selector the source sends now, shared by the source and the follower task.
struct SelectorState {
    current: RwLock<ShardSelector>,
    /// Makes the watcher drop the watch open at a change and list the new slice.
    relist: RelistTrigger,
    reshards: AtomicU64,
}

impl SelectorState {
    fn current(&self) -> ShardSelector {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn install(&self, selector: ShardSelector) -> bool {
        let scope = {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            if *current == selector {
                return false;
            }
            let scope = moved(&current, &selector);
            *current = selector;
            scope
        };
        self.reshards.fetch_add(1, Ordering::Relaxed);
        // Requested after the new selector is in place: the watch that follows the
        // scoped list (or a whole list) sends the new selector.
        self.relist.request_scoped(scope);
        true
    }
}

/// The scoped relist from `old`'s slice to `new`'s: list the gained ranges, replace
/// every object outside the ranges both keep (the lost ones go, the gained ones come).
fn moved(old: &ShardSelector, new: &ShardSelector) -> RelistScope {
    let gained = ranges::difference(new.ranges(), old.ranges());
    let list = ShardSelector::new(new.field(), gained).ok();
    let kept = ranges::difference(old.ranges(), &ranges::difference(old.ranges(), new.ranges()));
    let field = new.field();
    RelistScope::new(list, move |obj: &Obj| {
        // The field the server hashes, as `shard_selector` exports it.
        let value = match field {
            ShardField::Uid => obj.uid(),
            ShardField::Namespace => obj.namespace().unwrap_or(""),
        };
        let hash = fnv1a64(value.as_bytes());
        !kept.iter().any(|r| r.contains(hash))
    })
}

/// A [`KubeSource`] whose shard selector follows [`SelectorState`].
struct ShardedSource {
    base: KubeSource,
    state: Arc<SelectorState>,
}

impl Source for ShardedSource {
    async fn list(&self, params: &ListParams) -> Result<Bytes, SourceError> {
        let source = self.base.clone().shard_selector(&self.state.current());
        source.list(params).await
    }

    async fn list_shard(&self, params: &ListParams, selector: &ShardSelector) -> Result<Bytes, SourceError> {
        self.base.list_shard(params, selector).await
    }

    async fn watch(&self, params: &WatchParams, resource_version: &str) -> Result<BodyStream, SourceError> {
        // A watch opened with the new selector from the old slice's resourceVersion
        // misses the gained objects that did not change since. It can open only in
        // the instant between a selector change and its trigger request; the watcher
        // then drops it at the request and lists the gained ranges at the version it
        // reached, which brings them.
        let source = self.base.clone().shard_selector(&self.state.current());
        source.watch(params, resource_version).await
    }
}

impl ShardedInformer {
    /// Probes `source`'s server for the shard selector once, then starts an informer
    /// over this replica's slice (waiting until the membership gives it a range) or,
    /// without support, over everything. `source` must carry no selector of its own.
    ///
    /// # Errors
    /// [`ShardCacheError::Probe`] when the probe fails, [`ShardCacheError::Informer`]
    /// when the informer cannot start.
    pub async fn start(membership: ShardMembership, source: KubeSource, by: ShardBy, config: InformerConfig) -> Result<ShardedInformer, ShardCacheError> {
        if !source.supports_shard_selector().await.map_err(ShardCacheError::Probe)? {
            tracing::info!(
                ring = membership.ring_name(),
                "the api server ignores shardSelector (no ShardedListAndWatch gate): caching the whole collection, the controller filters this replica's keys"
            );
            let informer = Informer::spawn(source, config)?;
            return Ok(ShardedInformer { informer, mode: CacheMode::Everything, state: None, _follow: Arc::new(FollowGuard(None)) });
        }
        let mut changes = membership.subscribe();
        let first = loop {
            if let Ok(selector) = shard_selector(by, &membership.ranges()) {
                break selector;
            }
            if changes.changed().await.is_err() {
                // The membership is gone without ever giving this replica a range.
                break shard_selector(by, &[HashRange::ALL]).expect("the whole space is a valid range");
            }
        };
        let state = Arc::new(SelectorState { current: RwLock::new(first), relist: RelistTrigger::new(), reshards: AtomicU64::new(0) });
        let mut config = config;
        config.watcher.relist_trigger = Some(state.relist.clone());
        let informer = Informer::spawn(ShardedSource { base: source, state: Arc::clone(&state) }, config)?;
        let follow_state = Arc::clone(&state);
        let follow = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let old = follow_state.current().ranges().to_vec();
                let new = membership.ranges();
                if let Ok(selector) = shard_selector(by, &new)
                    && follow_state.install(selector)
                {
                    let space = HASH_SPACE_END as f64;
                    tracing::info!(
                        gained = ranges::size(&ranges::difference(&new, &old)) as f64 / space,
                        lost = ranges::size(&ranges::difference(&old, &new)) as f64 / space,
                        share = ranges::size(&new) as f64 / space,
                        "shard ranges changed: listing the gained ranges, dropping the lost ones"
                    );
                }
            }
        });
        Ok(ShardedInformer { informer, mode: CacheMode::ServerSide, state: Some(state), _follow: Arc::new(FollowGuard(Some(follow))) })
    }

    /// A cache the server does not slice: [`CacheMode::Everything`] or [`CacheMode::Label`].
    pub(super) fn unsliced(informer: Informer, mode: CacheMode) -> ShardedInformer {
        ShardedInformer { informer, mode, state: None, _follow: Arc::new(FollowGuard(None)) }
    }

    /// The informer: its store holds this replica's slice ([`CacheMode::ServerSide`])
    /// or everything ([`CacheMode::Everything`]).
    pub fn informer(&self) -> &Informer {
        &self.informer
    }

    /// How the cache holds its slice.
    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    /// The selector sent now; `None` in [`CacheMode::Everything`] and [`CacheMode::Label`].
    pub fn selector(&self) -> Option<ShardSelector> {
        self.state.as_ref().map(|s| s.current())
    }

    /// How many times the selector changed since start (each one relists what moved).
    pub fn reshards(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.reshards.load(Ordering::Relaxed))
    }
}
