//! Controllers: informer events become keys in a [`WorkQueue`](crate::queue::WorkQueue);
//! workers reconcile each key and act on the [`Action`] it returns.
//!
//! [`Controller<K>`] is kube-rs's `Controller` shape (a main kind, `owns`, `watches`,
//! predicates, `run(reconcile, error_policy, ctx)`); [`KeyController`] is the untyped
//! loop under it, for reconcilers that read [`crate::Obj`]s.
//!
//! # Guarantees
//! * Queue keys ([`ReconcileKey`]) carry group and kind: objects of two kinds never
//!   share a key. Owner references map by apiVersion group and kind, and an owner's
//!   namespace follows its kind's [`Scope`].
//! * One key is reconciled by at most one worker at a time, and a change that
//!   arrives during a reconcile is reconciled again afterwards (workqueue rules).
//! * [`Action::Requeue`] retries through the queue's rate limiter (per-key
//!   exponential backoff, overall token bucket); [`Action::Done`] and
//!   [`Action::RequeueAfter`] forget the key's failures.
//! * A panicking reconcile is caught, counted and retried like an error.
//! * Shutdown stops new work, lets in-flight reconciles finish, then returns.
//! * Every reconcile's outcome is counted in the controller's [`ControllerStats`].

mod builder;
mod enqueue;
mod key;
mod leading;
mod owner;
pub mod predicates;
mod runner;
mod sharding;
mod untyped;

pub use builder::Controller;
pub use enqueue::{Mapper, owner_mapper, self_key};
pub use key::{Kind, ReconcileKey, Scope, kind_of};
pub use owner::{OwnerRefError, group_of, owner_keys};
pub use predicates::Predicate;
pub use runner::{Action, ControllerStats};
pub use untyped::KeyController;

pub mod events;
pub mod finalizer;
