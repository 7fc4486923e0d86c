//! Garbage collection of a ring's dead Leases: a replica that crashed for good leaves
//! its Lease behind, and every member would list it forever.
//!
//! # Guarantees
//! * A Lease is due only once its resourceVersion was seen unchanged, on the local
//!   monotonic clock, for [`MembershipConfig::lease_gc_after`] times its lease duration
//!   (the larger of its own and the ring's): its holder, if any, has been expired for
//!   all but one of those durations. Timestamps other processes wrote are never read.
//! * The DELETE carries the resourceVersion that was observed as a precondition, so a
//!   Lease renewed (or released, or taken over) in between is never deleted: the
//!   server answers 409 and the observation starts again.
//! * A replica never collects its own Lease.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;

use super::MembershipConfig;
use crate::lease::{LeaseClient, LeaseError, LeaseRecord};

/// When each Lease of the ring was first seen at its current resourceVersion.
#[derive(Debug, Default)]
pub(super) struct DeadLeases {
    seen: BTreeMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    resource_version: String,
    since: Instant,
}

impl DeadLeases {
    /// Feeds one list of the ring's Leases, observed at `now`; returns the
    /// `(name, resourceVersion)` of those due for deletion.
    pub(super) fn observe(&mut self, leases: &[Lease], config: &MembershipConfig, now: Instant) -> Vec<(String, String)> {
        let Some(factor) = config.lease_gc_after.filter(|f| *f > 0) else {
            self.seen.clear();
            return Vec::new();
        };
        let own = config.lease_name();
        let mut listed = BTreeMap::new();
        let mut due = Vec::new();
        for lease in leases {
            let (Some(name), Some(rv)) = (lease.metadata.name.as_deref(), lease.metadata.resource_version.as_deref()) else { continue };
            if name == own {
                continue;
            }
            let seen = match self.seen.remove(name) {
                Some(seen) if seen.resource_version == rv => seen,
                _ => Seen { resource_version: rv.to_owned(), since: now },
            };
            let duration = LeaseRecord::of(lease).effective_duration(config.timing.lease_duration);
            if now.saturating_duration_since(seen.since) >= duration.saturating_mul(factor) {
                due.push((name.to_owned(), rv.to_owned()));
            }
            listed.insert(name.to_owned(), seen);
        }
        // Leases gone from the list (deleted by another member) are forgotten.
        self.seen = listed;
        due
    }

    /// Forgets `name` (deleted, or found changed): its next sighting starts afresh.
    pub(super) fn forget(&mut self, name: &str) {
        self.seen.remove(name);
    }
}

/// Deletes `name` if it is still at `resource_version`; whether it was deleted.
pub(super) async fn collect(client: &LeaseClient, config: &MembershipConfig, name: &str, resource_version: &str) -> bool {
    match client.delete_unchanged(name, resource_version).await {
        Ok(deleted) => {
            if deleted {
                tracing::info!(ring = %config.ring, identity = %config.identity, lease = name, "deleted a ring lease unchanged for {}x its duration", config.lease_gc_after.unwrap_or(0));
            }
            deleted
        }
        Err(LeaseError::Conflict { .. }) => {
            tracing::debug!(ring = %config.ring, lease = name, "ring lease changed since it was seen: kept");
            false
        }
        Err(e) => {
            tracing::warn!(ring = %config.ring, identity = %config.identity, lease = name, error = %e, "deleting a dead ring lease failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn lease(name: &str, rv: &str) -> Lease {
        Lease {
            metadata: ObjectMeta { name: Some(name.into()), resource_version: Some(rv.into()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec { holder_identity: Some("x".into()), lease_duration_seconds: Some(2), ..LeaseSpec::default() }),
        }
    }

    #[test]
    fn only_leases_unchanged_for_the_whole_period_are_due() {
        let mut config = MembershipConfig::new("r", "me");
        config.timing.lease_duration = Duration::from_secs(2);
        config.lease_gc_after = Some(10);
        let mut dead = DeadLeases::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert!(dead.observe(&[lease("r-me", "1"), lease("r-a", "5"), lease("r-b", "6")], &config, t0).is_empty());
        // b renews at 15 s: its clock starts again.
        assert!(dead.observe(&[lease("r-me", "1"), lease("r-a", "5"), lease("r-b", "9")], &config, t0 + 15 * s).is_empty());
        assert_eq!(dead.observe(&[lease("r-me", "1"), lease("r-a", "5"), lease("r-b", "9")], &config, t0 + 20 * s), [("r-a".to_owned(), "5".to_owned())]);
        // Never one's own lease, however old its version.
        assert!(dead.observe(&[lease("r-me", "1")], &config, t0 + 100 * s).is_empty());
        // a vanished from that list: seen again, its clock starts again.
        assert!(dead.observe(&[lease("r-a", "5")], &config, t0 + 101 * s).is_empty());
        dead.forget("r-a");
        config.lease_gc_after = None;
        assert!(dead.observe(&[lease("r-a", "5")], &config, t0 + 1000 * s).is_empty(), "disabled");
    }
}
