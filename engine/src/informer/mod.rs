//! Informers: a watcher feeding a fifo feeding a store, with event handlers —
//! and the factory that shares one informer per (resource, namespace, selectors).
//!
//! ```text
//! reflector::Watcher -> fifo (one thread per shard) -> store + indexes -> Handler
//! ```
//!
//! # Guarantees
//! * One list+watch per [`InformerKey`], however many consumers ask the
//!   [`SharedInformerFactory`] for it.
//! * Handlers can be added and removed while the informer runs; a handler added
//!   late first receives every object already cached (`on_add` with
//!   `is_in_initial_list = true`) and then live events, and has its own synced flag.
//! * [`Informer::has_synced`] turns true once the first complete list has been
//!   applied to the store.
//! * Resync ([`InformerConfig::resync`]) re-delivers the cached objects to the
//!   handlers from memory: it never calls the API server.
//! * Arena compaction is scheduled here ([`InformerConfig::compaction`]) and run
//!   by the store's shard threads ([`crate::store::ShardCompactor`]); the watcher
//!   knows nothing of it.
//!
//! The [`Handler`] trait is defined by the fifo, which calls it on its shard
//! threads; it is re-exported here because a handler is written for an informer.

mod error;
mod factory;
#[allow(clippy::module_inception)] // the file holds the `Informer` type, as store/store.rs holds `Store`
mod informer;
mod metrics;

pub use crate::fifo::{Handler, HandlerId};
pub use error::InformerError;
pub use factory::{InformerKey, SharedInformerFactory};
pub use informer::{Informer, InformerConfig};
pub(crate) use metrics::InformerMetrics;
