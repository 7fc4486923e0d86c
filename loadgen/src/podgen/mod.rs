//! Realistic pod objects for the simulator, `loadgen run` and the criterion benches.
//!
//! Two generators, for two kinds of caller:
//! * [`PodGen`] (`seeded.rs`): every field drawn from a seed, so pods differ in
//!   containers, probes, phase and status as well as in identity. What
//!   `loadgen` creates and the simulator bulk-loads ([`load_pods`]).
//! * [`realistic_pods`] (`captured.rs`): the pod captured from a real API
//!   server with a new identity each (name, uid, labels, owner, node), as
//!   compact JSON bytes. What the decode and store benches feed the engine,
//!   wrapped by [`list_body`] and [`watch_body`] (`bodies.rs`), with
//!   [`store_memory`] measuring what storing them costs.
//!
//! # Guarantees
//! * Both are deterministic: the same seed (and index) gives the same bytes.
//! * [`realistic_pods`] keeps its exact output, since benchmark baselines
//!   compare runs over it: a test pins it.
//! * Both spread pods over [`NODES`] nodes named by [`node_name`], in [`APPS`] apps.

mod bodies;
mod captured;
mod seeded;
mod store_memory;

pub use bodies::{list_body, watch_body};
pub use captured::{POD_JSON, realistic_pods, realistic_pods_in_namespaces};
pub use seeded::{APPS, NODES, PodGen, load_pods, node_name};
pub use store_memory::{StoreMemory, store_memory};
