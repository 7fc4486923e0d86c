//! [`ObservedLease`]: a Lease as this process last read it, and the local monotonic
//! time at which its record last changed — the only clock a lease's expiry is read on.
//!
//! # Guarantees
//! * Expiry never compares another process's timestamps (`renewTime`, `acquireTime`)
//!   with the local clock: a lease expires [`ObservedLease::duration`] after this
//!   process saw its record change, as client-go's `isLeaseValid` measures it from
//!   `observedTime` (tools/leaderelection/leaderelection.go). Clocks that disagree
//!   by any amount change nothing; only clock *rates* matter.
//! * The duration read from the record is bounded below by the caller's floor (its
//!   own lease duration) and above by [`MAX_LEASE_DURATION`]: a missing, zero or
//!   negative `leaseDurationSeconds` counts as the floor, a huge one as the cap.
//! * A change is a change of the record (holder, duration, acquire and renew times,
//!   transitions), as client-go compares the raw record: a write that touches only
//!   metadata (labels, annotations) says nothing about the holder being alive.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

/// The longest `leaseDurationSeconds` honoured (one hour): a hand-edited lease
/// with a huge duration and a dead holder is taken over after this long at most.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(3600);

/// The election fields of a Lease's spec (client-go's `LeaderElectionRecord`,
/// tools/leaderelection/resourcelock/interface.go), read leniently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `holderIdentity`; `None` when missing or empty (the lease is free).
    pub holder: Option<String>,
    /// `leaseDurationSeconds` as written (possibly missing, zero or negative).
    pub lease_duration_seconds: Option<i32>,
    /// `acquireTime` as written (another process's clock: informational only).
    pub acquire_time: Option<MicroTime>,
    /// `renewTime` as written (another process's clock: informational only).
    pub renew_time: Option<MicroTime>,
    /// `leaseTransitions`; a missing or negative value reads as 0.
    pub transitions: i32,
}

impl LeaseRecord {
    /// The record of `lease` (an empty record when it has no spec).
    pub fn of(lease: &Lease) -> Self {
        let Some(spec) = &lease.spec else { return LeaseRecord::default() };
        LeaseRecord {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            lease_duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time.clone(),
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions.unwrap_or(0).max(0),
        }
    }

    /// The duration to wait before the lease counts as expired: the written
    /// duration, at least `floor` and at most `max(floor, MAX_LEASE_DURATION)`.
    pub fn effective_duration(&self, floor: Duration) -> Duration {
        let written = self
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(Duration::ZERO, Duration::from_secs);
        written.clamp(floor, floor.max(MAX_LEASE_DURATION))
    }
}

/// A Lease, its record, and when this process saw that record change.
#[derive(Clone, Debug)]
pub struct ObservedLease {
    lease: Lease,
    record: LeaseRecord,
    observed_at: Instant,
    floor: Duration,
}

impl ObservedLease {
    /// `lease` as read at `now` (its record counts as changed at `now`). `floor` is
    /// the shortest duration a record's `leaseDurationSeconds` may stand for: pass
    /// your own lease duration, so that a record edited to a shorter (or zero, or
    /// negative) duration never makes its holder's lease expire sooner than the
    /// holder itself stops acting on it.
    pub fn new(lease: Lease, now: Instant, floor: Duration) -> Self {
        ObservedLease { record: LeaseRecord::of(&lease), lease, observed_at: now, floor }
    }

    /// Takes a newer read of the lease. The observed time moves to `now` only when
    /// the record changed; the stored Lease (its resourceVersion for the next
    /// write) is always the newer one. Returns whether the record changed.
    pub fn observe(&mut self, lease: Lease, now: Instant) -> bool {
        let record = LeaseRecord::of(&lease);
        let changed = record != self.record;
        if changed {
            self.record = record;
            self.observed_at = now;
        }
        self.lease = lease;
        changed
    }

    /// The Lease as last read or written.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Its election record.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// The holder, `None` when the lease is free (no or an empty `holderIdentity`).
    pub fn holder(&self) -> Option<&str> {
        self.record.holder.as_deref()
    }

    /// The Lease's `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.lease.metadata.resource_version.as_deref()
    }

    /// The local time at which the record last changed.
    pub fn observed_at(&self) -> Instant {
        self.observed_at
    }

    /// The duration after [`ObservedLease::observed_at`] at which the lease expires
    /// (see [`LeaseRecord::effective_duration`]).
    pub fn duration(&self) -> Duration {
        self.record.effective_duration(self.floor)
    }

    /// When the lease expires, on the local monotonic clock.
    pub fn expires_at(&self) -> Instant {
        self.observed_at + self.duration()
    }

    /// Whether the record went unchanged for its whole duration by `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.expires_at()
    }

    /// Whether another process may take the lease at `now`: it is free or expired.
    pub fn is_free(&self, now: Instant) -> bool {
        self.holder().is_none() || self.expired(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::jiff::Timestamp;

    const FLOOR: Duration = Duration::from_secs(15);

    fn lease(holder: Option<&str>, seconds: Option<i32>, renew_offset_secs: i64, rv: &str) -> Lease {
        let mut l = Lease::default();
        l.metadata.name = Some("l".into());
        l.metadata.resource_version = Some(rv.into());
        let renew = Timestamp::now().checked_add(k8s_openapi::jiff::SignedDuration::from_secs(renew_offset_secs)).expect("in range");
        l.spec = Some(LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: seconds,
            renew_time: Some(MicroTime(renew)),
            ..LeaseSpec::default()
        });
        l
    }

    #[test]
    fn expires_its_own_duration_after_the_change_was_observed() {
        let t0 = Instant::now();
        let o = ObservedLease::new(lease(Some("a"), Some(20), 0, "1"), t0, FLOOR);
        assert_eq!(o.duration(), Duration::from_secs(20));
        assert!(!o.expired(t0 + Duration::from_secs(19)));
        assert!(o.expired(t0 + Duration::from_secs(20)));
        assert!(!o.is_free(t0) && o.is_free(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn renew_times_from_a_skewed_clock_do_not_move_the_expiry() {
        let t0 = Instant::now();
        let future = ObservedLease::new(lease(Some("a"), Some(15), 3600, "1"), t0, FLOOR);
        let past = ObservedLease::new(lease(Some("a"), Some(15), -3600, "1"), t0, FLOOR);
        assert_eq!(future.expires_at(), past.expires_at());
        assert_eq!(future.expires_at(), t0 + FLOOR);
    }

    #[test]
    fn garbage_durations_are_bounded_by_the_floor_and_the_cap() {
        let t0 = Instant::now();
        for bad in [None, Some(0), Some(-5), Some(1)] {
            let o = ObservedLease::new(lease(Some("a"), bad, 0, "1"), t0, FLOOR);
            assert_eq!(o.duration(), FLOOR, "{bad:?}");
            assert!(!o.expired(t0 + Duration::from_secs(14)), "{bad:?} must not expire early");
        }
        let huge = ObservedLease::new(lease(Some("a"), Some(i32::MAX), 0, "1"), t0, FLOOR);
        assert_eq!(huge.duration(), MAX_LEASE_DURATION);
        assert!(huge.expired(t0 + MAX_LEASE_DURATION));
        let long_floor = ObservedLease::new(lease(Some("a"), Some(5), 0, "1"), t0, Duration::from_secs(7200));
        assert_eq!(long_floor.duration(), Duration::from_secs(7200));
    }

    #[test]
    fn a_missing_or_empty_holder_is_free_at_once() {
        let t0 = Instant::now();
        for holder in [None, Some("")] {
            let o = ObservedLease::new(lease(holder, Some(15), 0, "1"), t0, FLOOR);
            assert_eq!(o.holder(), None);
            assert!(o.is_free(t0));
        }
        let mut no_spec = Lease::default();
        no_spec.metadata.resource_version = Some("1".into());
        assert!(ObservedLease::new(no_spec, t0, FLOOR).is_free(t0));
    }

    #[test]
    fn only_a_record_change_restarts_the_clock() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let mut o = ObservedLease::new(lease(Some("a"), Some(15), 0, "1"), t0, FLOOR);
        let same_record = {
            let mut l = o.lease().clone();
            l.metadata.resource_version = Some("2".into());
            l.metadata.labels = Some([("touched".to_owned(), "yes".to_owned())].into());
            l
        };
        assert!(!o.observe(same_record, t1), "a metadata-only write is no sign of life");
        assert_eq!((o.observed_at(), o.resource_version()), (t0, Some("2")));
        assert!(o.observe(lease(Some("a"), Some(15), 1, "3"), t1), "a renew is");
        assert_eq!(o.observed_at(), t1);
        assert!(o.observe(lease(Some("b"), Some(15), 1, "4"), t1 + Duration::from_secs(1)));
        assert_eq!(o.holder(), Some("b"));
    }

    #[test]
    fn negative_transitions_read_as_zero() {
        let mut l = lease(Some("a"), Some(15), 0, "1");
        l.spec.as_mut().expect("spec").lease_transitions = Some(-3);
        assert_eq!(LeaseRecord::of(&l).transitions, 0);
    }
}
