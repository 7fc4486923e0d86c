//! Load generation and a simulated Kubernetes API server for kcache.
//!
//! * [`sim`]: an embedded, wire-compatible API server (127.0.0.1 only).
//! * [`run`]: the main job (`loadgen run`), with [`report`], [`guard`] and [`procstat`];
//!   [`cleanup`]: removing what it created on a cluster (`loadgen cleanup`).
//! * [`profile`]: CPU profiles of a run (flamegraph, pprof) and their diff.
//! * [`podgen`]: realistic, seeded pod objects, and bulk loading into the sim.
//! * [`alloc`]: the allocator setting every loadgen process runs under.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod alloc;
pub mod cleanup;
pub mod guard;
pub mod podgen;
pub mod procstat;
pub mod profile;
pub mod report;
pub mod run;
pub mod sim;
