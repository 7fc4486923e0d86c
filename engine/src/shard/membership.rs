//! [`ShardMembership`]: this replica's seat on a ring — the loop that renews its own
//! Lease and lists the ring's Leases every retry period, feeding [`Assignment`], and
//! the handle a controller asks whether a hash is its to reconcile now.
//!
//! # Guarantees
//! * Coordination goes through the API server only: the replica writes only its own
//!   Lease (`<ring>-<identity>`, label `kcache.io/ring=<ring>`), always with the
//!   resourceVersion it read, and reads the others with a LIST by label.
//! * Renew and list are timed from when they were sent; a request that has not
//!   answered by the renew deadline does not delay the replica stopping: the loop
//!   publishes a change at every deadline of [`Assignment::next_wakeup`], also while
//!   a request is pending.
//! * [`ShardMembership::leave`] stops admitting, waits for the reconciles running
//!   under [`ShardMembership::enter`] to end, then releases the lease (empty holder,
//!   as client-go's `ReleaseOnCancel`), so the others take its hashes at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use tokio::sync::{Notify, watch};

use super::assignment::{Assignment, Decision, MemberLease, Timing, TimingError};
use super::gc::{self, DeadLeases};
use super::key::ShardBy;
use super::ring::{DEFAULT_VNODES, HashRange, shard_selector};
use crate::reflector::{InvalidShardRange, ShardSelector};
use crate::lease::{LeaseClient, LeaseError, LeaseRecord};

/// The label every Lease of a ring carries, valued with the ring's name.
pub const RING_LABEL: &str = "kcache.io/ring";

/// Which ring to join, as whom, and with which durations.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// The ring's name: the label value and the prefix of its Leases' names.
    pub ring: String,
    /// This replica's identity (unique in the ring; a pod name is the usual choice).
    pub identity: String,
    /// Lease duration, renew deadline, retry period.
    pub timing: Timing,
    /// Virtual nodes per member; every replica of a ring must use the same number.
    pub vnodes: usize,
    /// Deletes another member's Lease once it was seen unchanged for this many times
    /// its lease duration (see `gc.rs`: a resourceVersion precondition guards the
    /// DELETE); `None` or 0 keeps dead Leases. Default [`DEFAULT_LEASE_GC_AFTER`].
    pub lease_gc_after: Option<u32>,
}

/// Lease durations a ring's Lease stays unchanged before its members delete it.
pub const DEFAULT_LEASE_GC_AFTER: u32 = 10;

impl MembershipConfig {
    /// Joins `ring` as `identity` with client-go's default durations and
    /// [`DEFAULT_VNODES`].
    pub fn new(ring: impl Into<String>, identity: impl Into<String>) -> Self {
        MembershipConfig { ring: ring.into(), identity: identity.into(), timing: Timing::default(), vnodes: DEFAULT_VNODES, lease_gc_after: Some(DEFAULT_LEASE_GC_AFTER) }
    }

    /// Uses `timing` (checked by [`ShardMembership::start`]).
    #[must_use]
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Deletes dead members' Leases after `durations` lease durations unchanged
    /// (`None` or 0: never).
    #[must_use]
    pub fn lease_gc_after(mut self, durations: Option<u32>) -> Self {
        self.lease_gc_after = durations;
        self
    }

    /// The name of this replica's Lease: `<ring>-<identity>`.
    pub fn lease_name(&self) -> String {
        format!("{}-{}", self.ring, self.identity)
    }
}

/// Why a membership cannot start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// See [`TimingError`].
    #[error(transparent)]
    Timing(#[from] TimingError),
    /// `<ring>-<identity>` is not a DNS subdomain (lowercase alphanumerics, `-` and
    /// `.`, at most 253 characters), so the API server would refuse the Lease.
    #[error("lease name {0:?} is not a DNS subdomain: use a lowercase ring name and identity")]
    LeaseName(String),
}

/// apimachinery's `IsDNS1123Subdomain` (k8s.io/apimachinery/pkg/util/validation/validation.go).
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

/// A running membership: cheap to clone, shared by the controller's workers. Its loop
/// runs until [`ShardMembership::leave`] or [`ShardMembership::stop`] (or until its
/// runtime shuts down), whether or not handles remain.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use kcache::lease::LeaseClient;
/// use kcache::shard::{MembershipConfig, ShardBy, ShardMembership};
///
/// let pod_name = std::env::var("POD_NAME")?;
/// let membership = ShardMembership::start(
///     LeaseClient::new(client, "default"),
///     MembershipConfig::new("configmap-controller", pod_name),
/// )?;
/// // Later: the ranges this replica owns, as a server-side shard selector.
/// if let Ok(selector) = membership.selector(ShardBy::Namespace) {
///     println!("{}", selector.expression());
/// }
/// membership.leave().await; // on shutdown: hand the keys over at once
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ShardMembership {
    inner: Arc<Inner>,
}

struct Inner {
    config: MembershipConfig,
    state: Mutex<Assignment>,
    changes: watch::Sender<u64>,
    active: AtomicUsize,
    idle: Notify,
    /// `Some(release)` asks the loop to stop, releasing the lease or not.
    stop: watch::Sender<Option<bool>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The ring's Leases by how long each has been unchanged.
    dead: Mutex<DeadLeases>,
}

impl std::fmt::Debug for ShardMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardMembership")
            .field("ring", &self.inner.config.ring)
            .field("identity", &self.inner.config.identity)
            .field("members", &self.members())
            .finish()
    }
}

impl ShardMembership {
    /// Starts renewing and listing on the current tokio runtime. Each request is cut
    /// off at the renew deadline (`client`'s own timeout is replaced).
    ///
    /// # Errors
    /// The timing is invalid ([`Timing::validate`]), or `<ring>-<identity>` is not a
    /// valid Lease name.
    pub fn start(client: LeaseClient, config: MembershipConfig) -> Result<ShardMembership, MembershipError> {
        let timing = config.timing.validate()?;
        let name = config.lease_name();
        if !is_dns_subdomain(&name) {
            return Err(MembershipError::LeaseName(name));
        }
        let client = client.with_timeout(timing.renew_deadline);
        let state = Assignment::with_vnodes(&config.identity, timing, config.vnodes);
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(state),
            changes: watch::channel(0).0,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            stop: watch::channel(None).0,
            task: Mutex::new(None),
            dead: Mutex::new(DeadLeases::default()),
        });
        let task = tokio::spawn(run(Arc::clone(&inner), client));
        *lock(&inner.task) = Some(task);
        Ok(ShardMembership { inner })
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.inner.config.identity
    }

    /// The ring's name.
    pub fn ring_name(&self) -> &str {
        &self.inner.config.ring
    }

    /// The durations the ring runs with.
    pub fn timing(&self) -> Timing {
        self.inner.config.timing
    }

    /// Whose `hash` is now, from this replica's view.
    pub fn decide(&self, hash: u64) -> Decision {
        lock(&self.inner.state).decide(hash, Instant::now())
    }

    /// Whether this replica may reconcile the object at `hash` now.
    pub fn admits(&self, hash: u64) -> bool {
        lock(&self.inner.state).admits(hash, Instant::now())
    }

    /// The live members, sorted.
    pub fn members(&self) -> Vec<String> {
        lock(&self.inner.state).ring().members().iter().map(ToString::to_string).collect()
    }

    /// The hash ranges the current ring gives this replica (holds aside).
    pub fn ranges(&self) -> Vec<HashRange> {
        lock(&self.inner.state).ring().ranges(self.identity())
    }

    /// [`ShardMembership::ranges`] as a server-side shard selector on `by`'s field
    /// (see [`shard_selector`] for owned kinds under [`ShardBy::Uid`]).
    ///
    /// # Errors
    /// [`InvalidShardRange`] while this replica owns no range (not on the ring yet).
    pub fn selector(&self, by: ShardBy) -> Result<ShardSelector, InvalidShardRange> {
        shard_selector(by, &self.ranges())
    }

    /// A copy of the protocol's state, to compare decisions before and after a change.
    pub fn snapshot(&self) -> Assignment {
        lock(&self.inner.state).clone()
    }

    /// Changes whenever decisions may have changed: a new live set, a hold that ended,
    /// the renew deadline passing. Wait on it, then ask again.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Marks a reconcile of `hash` as running, if `hash` is admitted now; the guard
    /// ends it. [`ShardMembership::leave`] waits for every guard to drop.
    pub fn enter(&self, hash: u64) -> Option<Reconciling> {
        let state = lock(&self.inner.state);
        if !state.admits(hash, Instant::now()) {
            return None;
        }
        self.inner.active.fetch_add(1, Ordering::SeqCst);
        Some(Reconciling { inner: Arc::clone(&self.inner) })
    }

    /// Leaves the ring gracefully: admits nothing from now on, waits for the
    /// reconciles under [`ShardMembership::enter`] to end (they are aborted by the
    /// controller's fence), releases the lease and stops the loop.
    pub async fn leave(&self) {
        lock(&self.inner.state).leave();
        self.inner.changes.send_modify(|g| *g += 1);
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.active.load(Ordering::SeqCst) == 0 {
                break;
            }
            idle.await;
        }
        self.finish(true).await;
    }

    /// Stops the loop without releasing the lease (the others take this replica's
    /// hashes once the lease expires, as after a crash); this replica stops admitting
    /// at its renew deadline.
    pub async fn stop(&self) {
        self.finish(false).await;
    }

    async fn finish(&self, release: bool) {
        let _ = self.inner.stop.send(Some(release));
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// A reconcile running under [`ShardMembership::enter`]; dropping it ends it.
pub struct Reconciling {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reconciling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciling").field("identity", &self.inner.config.identity).finish()
    }
}

impl Drop for Reconciling {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The renew-and-list loop.
async fn run(inner: Arc<Inner>, client: LeaseClient) {
    let config = inner.config.clone();
    let name = config.lease_name();
    let selector = format!("{RING_LABEL}={}", config.ring);
    let mut stop = inner.stop.subscribe();
    let mut own: Option<Lease> = None;
    let mut published = lock(&inner.state).version();
    let publish = |force: bool, published: &mut u64| {
        let version = lock(&inner.state).version();
        if force || version != *published {
            *published = version;
            inner.changes.send_modify(|g| *g += 1);
        }
    };
    loop {
        let tick_at = tokio::time::Instant::now() + config.timing.retry_period;
        {
            let tick = tick_once(&inner, &client, &name, &selector, own.take());
            tokio::pin!(tick);
            // The tick races the protocol's deadlines: a hung request must not keep
            // the controller from hearing that this replica stopped.
            loop {
                let wakeup = lock(&inner.state).next_wakeup(Instant::now());
                let sleep = async {
                    match wakeup {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    renewed = &mut tick => {
                        own = renewed;
                        break;
                    }
                    () = sleep => {
                        lock(&inner.state).advance(Instant::now());
                        publish(true, &mut published);
                    }
                    _ = stop.changed() => break,
                }
            }
        }
        publish(false, &mut published);
        while stop.borrow().is_none() {
            let wakeup = lock(&inner.state).next_wakeup(Instant::now()).map(tokio::time::Instant::from_std);
            let until = wakeup.map_or(tick_at, |w| w.min(tick_at));
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                _ = stop.changed() => break,
            }
            if tokio::time::Instant::now() >= tick_at {
                break;
            }
            lock(&inner.state).advance(Instant::now());
            publish(true, &mut published);
        }
        let stopping = *stop.borrow();
        if let Some(release) = stopping {
            if release {
                release_lease(&client, &config, &name, own).await;
            }
            return;
        }
    }
}

/// One renew and one list, fed to the state; returns the lease as written (`None`
/// when the renew failed: the next one reads it first).
async fn tick_once(inner: &Inner, client: &LeaseClient, name: &str, selector: &str, own: Option<Lease>) -> Option<Lease> {
    let config = &inner.config;
    let sent = Instant::now();
    let own = match renew(client, config, name, own).await {
        Ok(lease) => {
            lock(&inner.state).renewed(sent, Instant::now());
            Some(lease)
        }
        Err(e) => {
            tracing::warn!(ring = %config.ring, identity = %config.identity, error = %e, "ring lease renew failed");
            None
        }
    };
    let sent = Instant::now();
    match client.list(selector).await {
        Ok(leases) => {
            let members = member_leases(&leases, config);
            let now = Instant::now();
            {
                let mut state = lock(&inner.state);
                state.listed(sent, now, members);
                state.advance(now);
            }
            let due = lock(&inner.dead).observe(&leases, config, now);
            for (name, resource_version) in due {
                gc::collect(client, config, &name, &resource_version).await;
                // Deleted, changed or failed: its next sighting starts afresh (a failed
                // DELETE waits another whole period, never less).
                lock(&inner.dead).forget(&name);
            }
        }
        Err(e) => tracing::warn!(ring = %config.ring, identity = %config.identity, error = %e, "ring lease list failed"),
    }
    own
}

/// The ring's members from a list: the identity is the lease name after `<ring>-`.
fn member_leases(leases: &[Lease], config: &MembershipConfig) -> Vec<MemberLease> {
    let prefix = format!("{}-", config.ring);
    let floor = config.timing.lease_duration;
    leases
        .iter()
        .filter_map(|lease| {
            let identity = lease.metadata.name.as_deref()?.strip_prefix(&prefix)?;
            let record = LeaseRecord::of(lease);
            Some(MemberLease {
                identity: identity.to_owned(),
                fingerprint: format!("{record:?}"),
                duration: record.effective_duration(floor),
                released: record.holder.is_none(),
            })
        })
        .collect()
}

/// Writes this replica's lease: replaces the one it last wrote (or reads it first;
/// creates it when missing).
async fn renew(client: &LeaseClient, config: &MembershipConfig, name: &str, own: Option<Lease>) -> Result<Lease, LeaseError> {
    let base = match own {
        Some(lease) => lease,
        None => match client.get(name).await? {
            Some(lease) => lease,
            None => return client.create(&held(config, name, None)).await,
        },
    };
    client.replace(&held(config, name, Some(base))).await
}

/// `base` (or a new lease) held by this replica, renewed now.
fn held(config: &MembershipConfig, name: &str, base: Option<Lease>) -> Lease {
    let mut lease = base.unwrap_or_else(|| Lease {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
        spec: None,
    });
    lease.metadata.labels.get_or_insert_with(BTreeMap::new).insert(RING_LABEL.to_owned(), config.ring.clone());
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).max(0) + 1);
    }
    spec.lease_duration_seconds = Some(i32::try_from(config.timing.lease_duration.as_secs()).unwrap_or(i32::MAX));
    spec.renew_time = Some(now);
    lease
}

/// Gives the lease up (client-go's release: empty holder, one-second duration).
async fn release_lease(client: &LeaseClient, config: &MembershipConfig, name: &str, own: Option<Lease>) {
    let base = match own {
        Some(lease) => Some(lease),
        None => client.get(name).await.ok().flatten(),
    };
    let Some(mut lease) = base else { return };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
    if let Err(e) = client.replace(&lease).await {
        tracing::warn!(ring = %config.ring, identity = %config.identity, error = %e, "ring lease release failed; the others wait for it to expire");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_must_be_dns_subdomains() {
        assert!(is_dns_subdomain("cm-controller-pod-0"));
        assert!(is_dns_subdomain("ring.example-a"));
        for bad in ["", "Ring-a", "ring-", "-ring", "ring..a", "ring_a", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_list_becomes_member_leases_named_after_the_ring_prefix() {
        let config = MembershipConfig::new("r", "me");
        let mut mine = held(&config, "r-me", None);
        mine.metadata.resource_version = Some("7".into());
        let mut released = held(&MembershipConfig::new("r", "gone"), "r-gone", None);
        released.spec.as_mut().unwrap().holder_identity = None;
        let foreign = held(&MembershipConfig::new("other", "x"), "other-x", None);
        let members = member_leases(&[mine.clone(), released, foreign], &config);
        let ids: Vec<(&str, bool)> = members.iter().map(|m| (m.identity.as_str(), m.released)).collect();
        assert_eq!(ids, [("me", false), ("gone", true)]);
        assert_eq!(members[0].duration, config.timing.lease_duration);
        assert_eq!(mine.metadata.labels.as_ref().unwrap()[RING_LABEL], "r");
        let spec = mine.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(1));
        // Renewing one's own lease changes the renew time only: same holder, same
        // transitions, the resourceVersion it was read at kept for the replace.
        let renewed = held(&config, "r-me", Some(mine));
        assert_eq!(renewed.spec.as_ref().unwrap().lease_transitions, Some(1));
        assert_eq!(renewed.metadata.resource_version.as_deref(), Some("7"));
    }
}
