//! The move protocol's decision, without I/O: from this replica's renews and lists of
//! the ring's Leases, and a clock the caller passes in, whether a hash is this
//! replica's to reconcile now.
//!
//! # Guarantees
//! * Nothing is admitted unless the last successful renew and the last applied list
//!   were both sent less than `renew_deadline` ago, this replica's own lease is in
//!   the live set, and [`Assignment::leave`] has not been called.
//! * A hash is admitted only if the ring of the current live set assigns it to this
//!   replica, and for every membership transition observed less than
//!   [`Timing::hold`] ago, its owner before the transition is this replica or is no
//!   longer live (expired or released).
//! * Liveness follows client-go's observedTime rule: a member is live while its lease
//!   record changes within its own `leaseDurationSeconds`, measured from when this
//!   replica first saw each record, on this replica's monotonic clock. No timestamp
//!   written by another process is compared with the local clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ring::{DEFAULT_VNODES, Ring};

/// The protocol's durations. `lease_duration` is written into each replica's own
/// lease (whole seconds, as `leaseDurationSeconds` is); the others are local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a member stays live after its record last changed (observed locally).
    pub lease_duration: Duration,
    /// How long after sending its last successful renew, or its last applied list, a
    /// replica goes on reconciling. Less than `lease_duration`.
    pub renew_deadline: Duration,
    /// How often a replica renews and lists; also the margin added to holds for
    /// clock-rate differences.
    pub retry_period: Duration,
}

impl Default for Timing {
    /// client-go's leader-election defaults (kube-controller-manager's flags):
    /// 15 s lease, 10 s renew deadline, 2 s retry period.
    fn default() -> Self {
        Timing { lease_duration: Duration::from_secs(15), renew_deadline: Duration::from_secs(10), retry_period: Duration::from_secs(2) }
    }
}

/// Why a [`Timing`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// `leaseDurationSeconds` holds whole seconds, at least one.
    #[error("lease duration {0:?} is not a whole number of seconds >= 1")]
    LeaseNotWholeSeconds(Duration),
    /// The renew deadline must end before the lease can expire, or a replica could
    /// still reconcile when another takes its keys.
    #[error("renew deadline {renew_deadline:?} is not less than lease duration {lease_duration:?}")]
    DeadlineNotBeforeExpiry {
        /// The renew deadline.
        renew_deadline: Duration,
        /// The lease duration.
        lease_duration: Duration,
    },
    /// A renew deadline within one retry period stops a healthy replica between ticks.
    #[error("retry period {retry_period:?} is not less than renew deadline {renew_deadline:?}")]
    RetryNotBeforeDeadline {
        /// The retry period.
        retry_period: Duration,
        /// The renew deadline.
        renew_deadline: Duration,
    },
}

impl Timing {
    /// Checks the durations: `lease_duration` in whole seconds, `retry_period <
    /// renew_deadline < lease_duration` (client-go's `NewLeaderElector` checks the same
    /// order, k8s.io/client-go/tools/leaderelection/leaderelection.go).
    pub fn validate(self) -> Result<Timing, TimingError> {
        let lease = self.lease_duration;
        if lease.subsec_nanos() != 0 || lease.as_secs() == 0 {
            return Err(TimingError::LeaseNotWholeSeconds(lease));
        }
        if self.renew_deadline >= lease {
            return Err(TimingError::DeadlineNotBeforeExpiry { renew_deadline: self.renew_deadline, lease_duration: lease });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(TimingError::RetryNotBeforeDeadline { retry_period: self.retry_period, renew_deadline: self.renew_deadline });
        }
        Ok(self)
    }

    /// How long a gained hash waits when its previous owner is still live: the renew
    /// deadline (by then the previous owner has seen the change or stopped) plus one
    /// retry period of margin for clocks that run at different rates.
    pub fn hold(&self) -> Duration {
        self.renew_deadline + self.retry_period
    }
}

/// One lease of the ring, as a list returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberLease {
    /// The member the lease belongs to.
    pub identity: String,
    /// Whatever identifies this version of the record (holder, renew time, duration):
    /// any change counts as a renew. Never parsed as a time.
    pub fingerprint: String,
    /// The lease's own `leaseDurationSeconds`.
    pub duration: Duration,
    /// The member gave the lease up (empty holder) after stopping every reconcile:
    /// its keys move at once.
    pub released: bool,
}

/// What [`Assignment::decide`] says about one hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This replica reconciles it now.
    Mine,
    /// This replica gained it from a member that is still live: it waits until then.
    Held {
        /// When the hold ends (unless membership changes again).
        until: Instant,
        /// The member that owned it before.
        from: Arc<str>,
    },
    /// Another member owns it.
    Other(Arc<str>),
    /// This replica reconciles nothing: its renew or list is older than the renew
    /// deadline, its own lease is not live, or it is leaving.
    Stopped,
}

/// A membership change this replica observed, kept for [`Timing::hold`].
#[derive(Clone, Debug)]
struct Transition {
    at: Instant,
    previous: Arc<Ring>,
}

/// What this replica knows of one member's lease.
#[derive(Clone, Debug)]
struct Seen {
    fingerprint: String,
    duration: Duration,
    observed_at: Instant,
    released: bool,
}

impl Seen {
    fn live(&self, now: Instant) -> bool {
        !self.released && now < self.observed_at + self.duration
    }
}

/// One replica's view of the ring and the protocol's state, fed with observations.
///
/// The membership loop calls [`Assignment::renewed`] after each successful renew,
/// [`Assignment::listed`] after each successful list and [`Assignment::advance`] at
/// [`Assignment::next_wakeup`]; workers ask [`Assignment::admits`]. Every method takes
/// the local monotonic time, so tests drive the clock.
///
/// ```
/// use std::time::{Duration, Instant};
/// use kcache::shard::{Assignment, MemberLease, Timing};
///
/// let timing = Timing::default();
/// let mut a = Assignment::new("a", timing);
/// let t0 = Instant::now();
/// let lease = |id: &str, v: u32| MemberLease { identity: id.into(), fingerprint: v.to_string(), duration: timing.lease_duration, released: false };
/// a.renewed(t0, t0);
/// a.listed(t0, t0, vec![lease("a", 1), lease("b", 1)]);
/// let h = (0u64..).map(|i| i << 48).find(|&h| a.ring().owner(h) == Some("a")).unwrap();
/// // a's first view is a join: b, still live, owned h before it, so h waits one hold
/// // (a replica cannot know what another has not yet seen).
/// assert!(!a.admits(h, t0));
/// let mut now = t0;
/// for version in 2..=7 {
///     now += timing.retry_period; // one tick: renew, then list
///     a.renewed(now, now);
///     a.listed(now, now, vec![lease("a", version), lease("b", version)]);
///     a.advance(now);
/// }
/// assert!(now >= t0 + timing.hold());
/// assert!(a.admits(h, now));
/// // Without a renew for `renew_deadline`, it stops on its own.
/// assert!(!a.admits(h, now + timing.renew_deadline));
/// ```
#[derive(Clone, Debug)]
pub struct Assignment {
    me: Arc<str>,
    timing: Timing,
    vnodes: usize,
    renew_sent: Option<Instant>,
    list_sent: Option<Instant>,
    seen: HashMap<String, Seen>,
    ring: Arc<Ring>,
    transitions: VecDeque<Transition>,
    leaving: bool,
    version: u64,
    epoch: u64,
}

impl Assignment {
    /// The state of replica `me` before any observation (it admits nothing), with
    /// [`DEFAULT_VNODES`] virtual nodes per member.
    pub fn new(me: &str, timing: Timing) -> Self {
        Assignment::with_vnodes(me, timing, DEFAULT_VNODES)
    }

    /// [`Assignment::new`] with `vnodes` virtual nodes per member (every replica of a
    /// ring must use the same number).
    pub fn with_vnodes(me: &str, timing: Timing, vnodes: usize) -> Self {
        Assignment {
            me: Arc::from(me),
            timing,
            vnodes,
            renew_sent: None,
            list_sent: None,
            seen: HashMap::new(),
            ring: Arc::new(Ring::empty()),
            transitions: VecDeque::new(),
            leaving: false,
            version: 0,
            epoch: 0,
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.me
    }

    /// The durations it runs with.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The ring of the current live set.
    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }

    /// Bumped by every change that may change a decision other than by the passing
    /// of time (a new live set, a new hold, leaving, regaining freshness).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many times this replica became fresh (its first view, then after each
    /// pause or outage): keys dropped while it was stopped are due again.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether this replica may reconcile at all at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        let recent = |sent: Option<Instant>| sent.is_some_and(|s| now < s + self.timing.renew_deadline);
        !self.leaving && recent(self.renew_sent) && recent(self.list_sent) && self.ring.contains(&self.me)
    }

    /// A renew sent at `sent` succeeded; its answer arrived at `now`.
    pub fn renewed(&mut self, sent: Instant, now: Instant) {
        let was_fresh = self.is_fresh(now);
        self.renew_sent = Some(self.renew_sent.map_or(sent, |s| s.max(sent)));
        self.rejoin_if_fresh_again(was_fresh, now);
    }

    /// A list of the ring's leases sent at `sent` succeeded; its answer, `leases`,
    /// arrived at `now`. Leases missing from it stay as they were last seen until they
    /// expire: only a released lease moves its keys at once.
    pub fn listed(&mut self, sent: Instant, now: Instant, leases: Vec<MemberLease>) {
        let was_fresh = self.is_fresh(now);
        if self.list_sent.is_some_and(|s| s > sent) {
            return; // an older list than the one applied: it says nothing newer
        }
        self.list_sent = Some(sent);
        // An expired record is kept while it is listed: the same record listed again is
        // still dead, not a renew. One gone from the list and expired is forgotten.
        let listed: std::collections::HashSet<&str> = leases.iter().map(|l| l.identity.as_str()).collect();
        self.seen.retain(|m, s| s.live(now) || listed.contains(m.as_str()));
        for lease in leases {
            match self.seen.get_mut(&lease.identity) {
                Some(seen) if seen.fingerprint == lease.fingerprint => {}
                Some(seen) => {
                    *seen = Seen { fingerprint: lease.fingerprint, duration: lease.duration, observed_at: now, released: lease.released };
                }
                None => {
                    let seen = Seen { fingerprint: lease.fingerprint, duration: lease.duration, observed_at: now, released: lease.released };
                    self.seen.insert(lease.identity, seen);
                }
            }
        }
        self.recompute(now);
        self.rejoin_if_fresh_again(was_fresh, now);
    }

    /// Expires members whose lease stopped changing and forgets holds that ended; call
    /// it at [`Assignment::next_wakeup`] so that keys move when a lease expires rather
    /// than at the next list.
    pub fn advance(&mut self, now: Instant) {
        self.recompute(now);
        let hold = self.timing.hold();
        while self.transitions.front().is_some_and(|t| t.at + hold <= now) {
            self.transitions.pop_front();
        }
    }

    /// From now on nothing is admitted: the first step of a graceful leave, before the
    /// lease is released.
    pub fn leave(&mut self) {
        if !self.leaving {
            self.leaving = true;
            self.version += 1;
        }
    }

    /// Whether this replica may reconcile the object at `hash` at `now`.
    pub fn admits(&self, hash: u64, now: Instant) -> bool {
        matches!(self.decide(hash, now), Decision::Mine)
    }

    /// Whose `hash` is at `now`, from this replica's view.
    pub fn decide(&self, hash: u64, now: Instant) -> Decision {
        if !self.is_fresh(now) {
            return Decision::Stopped;
        }
        let Some(owner) = self.ring.owner(hash) else { return Decision::Stopped };
        if owner != &*self.me {
            return Decision::Other(Arc::from(owner));
        }
        let hold = self.timing.hold();
        let mut held: Option<(Instant, &str)> = None;
        for t in self.transitions.iter().filter(|t| now < t.at + hold) {
            if let Some(previous) = t.previous.owner(hash)
                && previous != &*self.me
                && self.ring.contains(previous)
            {
                let until = t.at + hold;
                if held.is_none_or(|(u, _)| u < until) {
                    held = Some((until, previous));
                }
            }
        }
        match held {
            Some((until, from)) => Decision::Held { until, from: Arc::from(from) },
            None => Decision::Mine,
        }
    }

    /// When decisions next change by the passing of time alone: the freshness
    /// deadline, the end of a hold, or a member's expiry. `None` when nothing is pending.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| {
            if at > now && next.is_none_or(|n| at < n) {
                next = Some(at);
            }
        };
        if let (Some(r), Some(l)) = (self.renew_sent, self.list_sent) {
            consider(r.min(l) + self.timing.renew_deadline);
        }
        let hold = self.timing.hold();
        for t in &self.transitions {
            consider(t.at + hold);
        }
        for seen in self.seen.values().filter(|s| s.live(now)) {
            consider(seen.observed_at + seen.duration);
        }
        next
    }

    /// The live set at `now`; on a change, a transition from the old ring.
    fn recompute(&mut self, now: Instant) {
        let mut live: Vec<&str> = self.seen.iter().filter(|(_, s)| s.live(now)).map(|(m, _)| m.as_str()).collect();
        live.sort_unstable();
        if live.len() == self.ring.members().len() && live.iter().zip(self.ring.members()).all(|(a, b)| *a == &**b) {
            return;
        }
        let ring = Arc::new(Ring::new(live, self.vnodes));
        let previous = std::mem::replace(&mut self.ring, ring);
        self.transitions.push_back(Transition { at: now, previous });
        self.version += 1;
    }

    /// Regaining freshness (the first view, or after a pause or an outage) is a
    /// rejoin: while this replica was stopped others may have expired it and taken its
    /// hashes, so every hash is held as if gained from the ring without it.
    fn rejoin_if_fresh_again(&mut self, was_fresh: bool, now: Instant) {
        if !was_fresh && self.is_fresh(now) {
            let without_me = Ring::new(self.ring.members().iter().filter(|m| ***m != *self.me), self.vnodes);
            self.transitions.push_back(Transition { at: now, previous: Arc::new(without_me) });
            self.version += 1;
            self.epoch += 1;
        }
    }
}

#[cfg(test)]
mod tests;
