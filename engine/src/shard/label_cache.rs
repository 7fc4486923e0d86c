//! Choosing how a [`ShardedInformer`] caches on a server without the shard selector:
//! everything (the default) or, when the caller opted in, only the objects a
//! [`Sharder`](super::Sharder) labelled `shard.kcache.io/<ring>=<identity>`.
//!
//! # Guarantees
//! * With [`CacheModePreference::LabelWhenUnsupported`] on a server with the shard
//!   selector, the informer is exactly [`ShardedInformer::start`]'s
//!   ([`CacheMode::ServerSide`]): the label is only the fallback.
//! * In [`CacheMode::Label`] every LIST and WATCH carries the label selector
//!   `shard.kcache.io/<ring>=<identity>` (after the caller's own label selector, if
//!   any): an object relabelled away leaves the cache as a delete, one relabelled here
//!   arrives as an add. The label never changes for this replica, so the informer
//!   never relists because of the ring; the sharder moves objects instead.
//! * Nothing is cached until a sharder labels objects: run a [`Sharder`](super::Sharder)
//!   on every replica (one of them leads).

use super::cache::{CacheMode, ShardCacheError, ShardedInformer};
use super::key::ShardBy;
use super::labeler::ShardLabel;
use super::membership::ShardMembership;
use crate::informer::{Informer, InformerConfig};
use crate::reflector::KubeSource;

/// What a [`ShardedInformer`] does when the server ignores the shard selector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CacheModePreference {
    /// Cache the whole collection ([`CacheMode::Everything`]), as
    /// [`ShardedInformer::start`] does.
    #[default]
    EverythingWhenUnsupported,
    /// Cache by the shard label ([`CacheMode::Label`]); a [`Sharder`](super::Sharder)
    /// must label the collection.
    LabelWhenUnsupported,
}

/// The caller's label selector and the shard label's, both required.
fn combined_selector(own: Option<&str>, shard: &str) -> String {
    match own.map(str::trim) {
        Some(own) if !own.is_empty() => format!("{own},{shard}"),
        _ => shard.to_owned(),
    }
}

impl ShardedInformer {
    /// As [`ShardedInformer::start`], with `preference` deciding what to cache when the
    /// server does not support the shard selector.
    ///
    /// ```no_run
    /// # async fn demo(client: kube::Client, membership: kcache::shard::ShardMembership) -> Result<(), Box<dyn std::error::Error>> {
    /// use k8s_openapi::api::core::v1::ConfigMap;
    /// use kcache::informer::InformerConfig;
    /// use kcache::reflector::KubeSource;
    /// use kcache::shard::{CacheModePreference, ShardBy, ShardedInformer};
    /// let source = KubeSource::for_type::<ConfigMap>(client, None);
    /// let sharded = ShardedInformer::start_with(membership, source, ShardBy::Uid, InformerConfig::default(), CacheModePreference::LabelWhenUnsupported).await?;
    /// # let _ = sharded; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`ShardedInformer::start`]; [`ShardCacheError::Label`] when the ring name or
    /// identity cannot make the shard label (checked before the probe).
    pub async fn start_with(membership: ShardMembership, source: KubeSource, by: ShardBy, mut config: InformerConfig, preference: CacheModePreference) -> Result<ShardedInformer, ShardCacheError> {
        if preference == CacheModePreference::EverythingWhenUnsupported {
            return ShardedInformer::start(membership, source, by, config).await;
        }
        let shard = ShardLabel::new(membership.ring_name())?.selector(membership.identity())?;
        // `start` probes again: one more LIST with limit=1, once per start.
        if source.supports_shard_selector().await.map_err(ShardCacheError::Probe)? {
            return ShardedInformer::start(membership, source, by, config).await;
        }
        tracing::info!(
            ring = membership.ring_name(),
            selector = shard,
            "the api server ignores shardSelector (no ShardedListAndWatch gate): caching the objects the sharder labels with this replica"
        );
        config.watcher.label_selector = Some(combined_selector(config.watcher.label_selector.as_deref(), &shard));
        let informer = Informer::spawn(source, config)?;
        Ok(ShardedInformer::unsliced(informer, CacheMode::Label))
    }
}

#[cfg(test)]
mod tests {
    use super::combined_selector;

    #[test]
    fn the_shard_label_is_added_to_the_callers_selector() {
        assert_eq!(combined_selector(None, "shard.kcache.io/r=a"), "shard.kcache.io/r=a");
        assert_eq!(combined_selector(Some(" "), "shard.kcache.io/r=a"), "shard.kcache.io/r=a");
        assert_eq!(combined_selector(Some("app=x"), "shard.kcache.io/r=a"), "app=x,shard.kcache.io/r=a");
    }
}
