//! Leases (`coordination.k8s.io/v1`): leader election with client-go's semantics,
//! and the primitives it is built from.
//!
//! [`LeaseClient`] reads and writes Leases with optimistic concurrency;
//! [`ObservedLease`] tells when a Lease expires on the local monotonic clock.
//!
//! # Guarantees
//! * Coordination goes through the API server only: every write carries the
//!   resourceVersion it was based on, so of two writers of one version one gets 409.
//! * No timestamp written by another process is compared with the local clock.

mod client;
mod observed;

pub use client::{LeaseClient, LeaseError};
pub use observed::{LeaseRecord, MAX_LEASE_DURATION, ObservedLease};
