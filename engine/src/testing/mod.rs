//! Test support: an in-memory API server for one collection, and object builders.
//!
//! Nothing here is needed to run an informer against a cluster. It is public so
//! that tests and examples (the engine's own, and those of code built on it) can
//! drive the real reflector, fifo and store without a network:
//! [`MemorySource`] implements [`crate::reflector::Source`] over the same wire
//! format a server speaks, and can inject the failures a reflector must survive.

mod memory;

pub use crate::object::testing::{object, pod, pod_full};
pub use memory::MemorySource;
