//! Prometheus metrics: registration helpers and the text renderer.
//!
//! * Work queues register theirs through [`crate::queue::WorkQueueBuilder::metrics`]
//!   (client-go's `workqueue_*` names).
//! * Informers register theirs with [`register_informer`] (`kcache_informer_*`).
//! * [`render`] turns a registry into the Prometheus text format.

pub use crate::queue::render;
pub use crate::informer::register_informer;
