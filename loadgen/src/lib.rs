//! Load generation and a simulated Kubernetes API server for kcache.
//!
//! * [`sim`]: an embedded, wire-compatible API server (127.0.0.1 only).
//! * [`podgen`]: realistic, seeded pod objects, and bulk loading into the sim.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod podgen;
pub mod sim;
