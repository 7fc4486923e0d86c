//! Controllers: informer events become keys in a [`WorkQueue`](crate::queue::WorkQueue);
//! workers reconcile each key and act on the [`Action`] it returns.
//!
//! # Guarantees
//! * One key is reconciled by at most one worker at a time, and a change that
//!   arrives during a reconcile is reconciled again afterwards (workqueue rules).
//! * `Err` and [`Action::Requeue`] retry through the queue's rate limiter;
//!   [`Action::Done`] and [`Action::RequeueAfter`] forget the key's failures.
//! * A panicking reconcile is caught, counted and retried like an error.
//! * Shutdown stops new work, lets in-flight reconciles finish, then returns.

#[allow(clippy::module_inception)] // the file holds the `Controller` type, as store/store.rs holds `Store`
mod controller;
mod enqueue;

pub use controller::{Action, Controller, ControllerStats};
pub use enqueue::{Mapper, owner_ref, self_ref};

pub mod events;
pub mod finalizer;
