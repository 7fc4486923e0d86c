//! The controller's side of sharding across replicas: a key is reconciled only while
//! the ring's [`ShardMembership`] admits it, in-flight reconciles of a key that is
//! lost are aborted, and keys that are gained are enqueued from the store.
//!
//! # Guarantees
//! * A key the membership does not admit when a worker takes it is dropped from the
//!   queue without a reconcile (its owner reconciles it).
//! * Admission is checked again before every poll of a running reconcile, so one
//!   whose key was lost (or whose replica went stale, or was paused past its renew
//!   deadline) is dropped at its next `.await` without running further.
//! * When the membership changes, every object of the main kind that is admitted now
//!   but was not at the previous change is enqueued; after the replica was stopped
//!   (renew deadline passed), every admitted one is.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::key::{Kind, ReconcileKey};
use super::runner::Outcome;
use super::untyped::KeyController;
use crate::queue::WorkQueue;
use crate::shard::{ShardBy, ShardMembership};
use crate::store::Store;

impl KeyController {
    /// Reconciles only the keys `membership` admits, as
    /// [`Controller::shard`](super::Controller::shard): keys of `kind` are placed by
    /// `by` ([`ShardBy`]), reading the object from `store` when placed by uid; a key not
    /// admitted is dropped without a reconcile, a running reconcile whose key is lost
    /// (or whose replica stops) is aborted at its next `.await`, and the objects of
    /// `store` gained at a ring change are enqueued as keys of `kind`. Keys of other
    /// kinds are placed by their namespace under [`ShardBy::Namespace`] and skipped
    /// under a uid placement when `store` does not hold them.
    #[must_use]
    pub fn shard(mut self, membership: ShardMembership, by: ShardBy, store: Store, kind: Kind) -> Self {
        self.shard = Some(Sharding { membership, by, store, kind });
        self
    }
}

/// A controller's membership, the field it shards by, and its main kind and store.
#[derive(Clone)]
pub(crate) struct Sharding {
    pub(crate) membership: ShardMembership,
    pub(crate) by: ShardBy,
    pub(crate) store: Store,
    pub(crate) kind: Kind,
}

impl Sharding {
    /// The key's hash; `None` when sharding by uid and the object is gone (the
    /// reconcile would be skipped anyway).
    fn hash_of(&self, key: &ReconcileKey) -> Option<u64> {
        match self.by {
            ShardBy::Namespace => Some(ShardBy::namespace_hash(key.namespace.as_deref())),
            ShardBy::Uid | ShardBy::ObjectUid => self.store.get(&key.object_ref()).map(|obj| self.by.hash(&obj)),
        }
    }

    /// Runs `reconcile(key)` if the key is admitted, aborting it when it stops being.
    async fn run<F, Fut>(self, key: ReconcileKey, reconcile: Arc<F>) -> Outcome
    where
        F: Fn(ReconcileKey) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let Some(hash) = self.hash_of(&key) else { return Outcome::Skipped };
        let Some(running) = self.membership.enter(hash) else {
            tracing::debug!(object = %key, decision = ?self.membership.decide(hash), "not this replica's key now; dropped");
            return Outcome::Skipped;
        };
        let mut changes = self.membership.subscribe();
        let finished = {
            let mut reconcile = pin!(reconcile(key.clone()));
            let mut changed = pin!(async move {
                loop {
                    if changes.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            });
            let membership = &self.membership;
            std::future::poll_fn(|cx| {
                // Before every poll: a replica resumed after a pause runs nothing of a
                // reconcile it may no longer own.
                if !membership.admits(hash) {
                    return Poll::Ready(None);
                }
                if let Poll::Ready(outcome) = reconcile.as_mut().poll(cx) {
                    return Poll::Ready(Some(outcome));
                }
                // Never ready: it registers the task to be woken by a membership change,
                // so that the check above runs again.
                let _ = changed.as_mut().poll(cx);
                Poll::Pending
            })
            .await
        };
        drop(running);
        finished.unwrap_or_else(|| {
            tracing::info!(object = %key, decision = ?self.membership.decide(hash), "key lost during its reconcile; aborted");
            Outcome::Skipped
        })
    }

    /// Enqueues the main kind's objects that each membership change makes admitted,
    /// and all admitted ones when the replica became fresh again (what it dropped
    /// while stopped is due). The first state is read now, before any worker runs.
    pub(crate) fn enqueue_gained(self, queue: WorkQueue<ReconcileKey>) -> impl Future<Output = ()> + Send + 'static {
        let mut changes = self.membership.subscribe();
        let mut before = (self.membership.snapshot(), Instant::now());
        async move {
            while changes.changed().await.is_ok() {
                let after = (self.membership.snapshot(), Instant::now());
                let all = after.0.epoch() != before.0.epoch();
                for obj in self.store.list() {
                    let hash = self.by.hash(&obj);
                    if after.0.admits(hash, after.1) && (all || !before.0.admits(hash, before.1)) {
                        queue.add(ReconcileKey::new(self.kind.clone(), obj.namespace(), obj.name()));
                    }
                }
                before = after;
            }
        }
    }
}

/// `reconcile` behind the sharding check (unchanged without sharding).
pub(crate) fn fence<F, Fut>(sharding: Option<Sharding>, reconcile: Arc<F>) -> impl Fn(ReconcileKey) -> BoxFuture<'static, Outcome> + Send + Sync + 'static
where
    F: Fn(ReconcileKey) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    move |key: ReconcileKey| match &sharding {
        None => reconcile(key).boxed(),
        Some(sharding) => sharding.clone().run(key, Arc::clone(&reconcile)).boxed(),
    }
}
