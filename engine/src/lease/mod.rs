//! Leases (`coordination.k8s.io/v1`): leader election with client-go's semantics,
//! and the primitives it is built from.
//!
//! [`LeaseClient`] reads and writes Leases with optimistic concurrency;
//! [`ObservedLease`] tells when a Lease expires on the local monotonic clock;
//! [`LeaderElector`] runs client-go's election on them and hands out
//! [`Leadership`] handles (e.g. to `Controller::leader_election`).
//!
//! # Guarantees
//! * Coordination goes through the API server only: every write carries the
//!   resourceVersion it was based on, so of two writers of one version one gets 409.
//! * No timestamp written by another process is compared with the local clock.
//! * A process leads only until the start of its last successful renew plus the
//!   renew deadline, which is shorter than the lease duration others wait: two
//!   processes never both see [`Leadership::is_leading`] true at the same instant
//!   (clock rates agreeing within the margin `lease_duration - renew_deadline`).

mod client;
mod config;
mod elector;
mod leadership;
mod metrics;
mod observed;

pub use client::{LeaseClient, LeaseError};
pub use config::{ConfigError, JITTER_FACTOR, LeaderElectionConfig};
pub use elector::LeaderElector;
pub use leadership::{Leadership, LeadingWork};
pub use metrics::LeaderElectionMetrics;
pub use observed::{LeaseRecord, MAX_LEASE_DURATION, ObservedLease};
