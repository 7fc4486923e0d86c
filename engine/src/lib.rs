//! kcache keeps a Kubernetes controller's view of the cluster in memory.
//!
//! The data path runs in one direction:
//!
//! ```text
//! HTTP body -> wire::Framer -> wire::decode -> arena -> fifo (per-shard thread)
//!           -> store + indexes -> handlers / workqueue -> controller reconcile
//! ```
//!
//! * [`wire`] turns a streaming HTTP body into documents and decodes each object's
//!   metadata in one pass, without building a DOM or a typed struct.
//! * [`arena`] holds object bytes in per-shard segments; [`Obj`] is the cheap,
//!   immutable handle readers keep.
//! * [`fifo`] applies deltas on one owner thread per shard, in per-key order, and
//!   coalesces under backlog so memory stays O(keys).
//! * [`store`] is the lock-free readable cache with copy-on-write indexes.
//! * [`runtime`] holds the watcher, reflector and shared informers.
//! * [`queue`] is a client-go compatible workqueue with rate limiters.
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod arena;
pub mod client;
pub mod fifo;
pub mod metrics;
pub mod object;
pub mod queue;
pub mod runtime;
pub mod selector;
pub mod store;
pub(crate) mod sync;
pub mod wire;

pub use object::{Obj, ObjectRef};
