//! Resource versions and the cross-shard barrier that decides the store's version.
//!
//! # Guarantees
//! * The store's resource version only names a point that **every** shard has passed:
//!   it is the version of the highest sequence number `W` such that every delta with a
//!   sequence number `<= W` has been applied, whichever shard it went to.
//! * Idle shards never hold the barrier back.
//!
//! # Protocol
//! The producer (the fifo) numbers every delta with a global sequence number and knows
//! the resource version the stream had reached at each number. It publishes the last
//! pushed `(seq, rv)` with [`Barrier::advance`]. Each shard publishes a *low mark*: the
//! `(seq - 1, rv)` just before its oldest unapplied delta, or "idle" when it has nothing
//! pending ([`Barrier::set_shard_low`]). The store version is the minimum of the pushed
//! mark and every busy shard's low mark. A producer that hands work to an idle shard must
//! set that shard's low mark *before* it advances the pushed mark, so that a reader that
//! sees the new pushed mark also sees the shard as busy.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam::utils::CachePadded;

/// A `metadata.resourceVersion`: compared as an integer when it parses as one,
/// otherwise an opaque string that only equals itself.
///
/// Resource versions are opaque by API contract; etcd-backed servers use integers,
/// which is what makes ordering them meaningful in practice.
///
/// ```
/// use kcache::store::ResourceVersion;
/// let a = ResourceVersion::new("41");
/// assert!(a.is_reached_by(&ResourceVersion::new("42")));
/// assert!(!ResourceVersion::new("43").is_reached_by(&ResourceVersion::new("42")));
/// assert!(ResourceVersion::new("abc").is_reached_by(&ResourceVersion::new("abc")));
/// assert!(!ResourceVersion::new("abc").is_reached_by(&ResourceVersion::new("42")));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResourceVersion(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Num(u64),
    Opaque(Arc<str>),
}

impl ResourceVersion {
    /// Parses `rv`; allocates only when it is not a canonical unsigned integer.
    pub fn new(rv: &str) -> Self {
        // "007" is not canonical: it would print back as "7", so keep it opaque.
        let canonical = !rv.is_empty() && (rv == "0" || !rv.starts_with('0')) && rv.bytes().all(|b| b.is_ascii_digit());
        match rv.parse::<u64>() {
            Ok(n) if canonical => ResourceVersion(Repr::Num(n)),
            _ => ResourceVersion(Repr::Opaque(rv.into())),
        }
    }

    /// The integer value, when the version is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            Repr::Num(n) => Some(n),
            Repr::Opaque(_) => None,
        }
    }

    /// Whether a store at version `current` has applied everything up to `self`:
    /// `current >= self` when both are integers, `current == self` otherwise.
    pub fn is_reached_by(&self, current: &ResourceVersion) -> bool {
        match (&self.0, &current.0) {
            (Repr::Num(want), Repr::Num(have)) => have >= want,
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for ResourceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Num(n) => write!(f, "{n}"),
            Repr::Opaque(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for ResourceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceVersion({self})")
    }
}

impl From<&str> for ResourceVersion {
    fn from(s: &str) -> Self {
        ResourceVersion::new(s)
    }
}

/// `u64::MAX` in a low mark means "idle: nothing pending".
const IDLE: u64 = u64::MAX;
/// `u64::MAX` in `synced_seq` means "not marked yet".
const UNSET: u64 = u64::MAX;

struct Mark {
    /// Mirror of `slot.0` for the lock-free synced check.
    seq: AtomicU64,
    slot: Mutex<(u64, Option<ResourceVersion>)>,
}

impl Mark {
    fn new(seq: u64) -> Self {
        Mark { seq: AtomicU64::new(seq), slot: Mutex::new((seq, None)) }
    }

    fn set(&self, seq: u64, rv: Option<ResourceVersion>) {
        let mut g = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        *g = (seq, rv);
        self.seq.store(seq, SeqCst);
    }

    fn get(&self) -> (u64, Option<ResourceVersion>) {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

pub(crate) struct BarrierState {
    pushed: Mark,
    shards: Box<[CachePadded<Mark>]>,
    synced_seq: AtomicU64,
    synced: AtomicBool,
    closed: AtomicBool,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    notify: tokio::sync::Notify,
}

impl BarrierState {
    pub(crate) fn new(shards: usize) -> Self {
        BarrierState {
            pushed: Mark::new(0),
            shards: (0..shards).map(|_| CachePadded::new(Mark::new(IDLE))).collect(),
            synced_seq: AtomicU64::new(UNSET),
            synced: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// The applied resource version: see the module docs.
    pub(crate) fn current(&self) -> Option<ResourceVersion> {
        // Read the pushed mark first: a shard that was handed work before that mark was
        // published is then seen busy below.
        let (mut w, mut rv) = self.pushed.get();
        for s in &self.shards {
            let (seq, srv) = s.get();
            if seq < w {
                w = seq;
                rv = srv;
            }
        }
        rv
    }

    /// The barrier sequence number from atomics only.
    fn watermark(&self) -> u64 {
        let mut w = self.pushed.seq.load(SeqCst);
        for s in &self.shards {
            w = w.min(s.seq.load(SeqCst));
        }
        w
    }

    pub(crate) fn has_synced(&self) -> bool {
        if self.synced.load(SeqCst) {
            return true;
        }
        let at = self.synced_seq.load(SeqCst);
        if at != UNSET && self.watermark() >= at {
            self.synced.store(true, SeqCst);
            return true;
        }
        false
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    fn wake(&self) {
        if self.waiters.load(SeqCst) > 0 {
            drop(self.lock.lock().unwrap_or_else(PoisonError::into_inner));
            self.cv.notify_all();
            self.notify.notify_waiters();
        }
    }

    fn reached(&self, want: &ResourceVersion) -> bool {
        self.current().is_some_and(|cur| want.is_reached_by(&cur))
    }

    pub(crate) async fn wait_for(&self, want: &ResourceVersion) -> Result<(), super::StoreError> {
        self.waiters.fetch_add(1, SeqCst);
        let _dec = Dec(&self.waiters);
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.reached(want) {
                return Ok(());
            }
            if self.closed.load(SeqCst) {
                return Err(super::StoreError::Closed { want: want.to_string() });
            }
            notified.await;
        }
    }

    pub(crate) fn wait_for_blocking(&self, want: &ResourceVersion, timeout: Duration) -> Result<(), super::StoreError> {
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, SeqCst);
        let _dec = Dec(&self.waiters);
        let mut g = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.reached(want) {
                return Ok(());
            }
            if self.closed.load(SeqCst) {
                return Err(super::StoreError::Closed { want: want.to_string() });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(super::StoreError::Timeout { want: want.to_string(), have: self.current().map(|r| r.to_string()) });
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn wait_synced_blocking(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, SeqCst);
        let _dec = Dec(&self.waiters);
        let mut g = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.has_synced() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || self.closed.load(SeqCst) {
                return false;
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

struct Dec<'a>(&'a AtomicUsize);
impl Drop for Dec<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// The writer side of the resource-version barrier, shared by the producer and the
/// shard threads (see the module docs for the protocol).
///
/// Obtained from [`crate::store::Writer::into_parts`]; the fifo drives it. Cheap to
/// clone; every method takes `&self` because the producer and each shard thread publish
/// their own marks.
#[derive(Clone)]
pub struct Barrier {
    pub(crate) state: Arc<super::store::Inner>,
}

impl Barrier {
    fn b(&self) -> &BarrierState {
        &self.state.barrier
    }

    /// Publishes that every delta up to sequence number `seq` has been handed to its
    /// shard, and that the stream was at `rv` after it. `seq` must not decrease.
    pub fn advance(&self, seq: u64, rv: Option<ResourceVersion>) {
        self.b().pushed.set(seq, rv);
        self.b().wake();
    }

    /// Publishes shard `shard`'s low mark: `Some((seq, rv))` when its oldest unapplied
    /// delta has sequence number `seq + 1` and the stream was at `rv` just before it;
    /// `None` when the shard has nothing unapplied. Out-of-range shards are ignored.
    pub fn set_shard_low(&self, shard: usize, low: Option<(u64, Option<ResourceVersion>)>) {
        if let Some(m) = self.b().shards.get(shard) {
            match low {
                Some((seq, rv)) => m.set(seq, rv),
                None => m.set(IDLE, None),
            }
            self.b().wake();
        }
    }

    /// Marks the store synced once every delta up to `seq` has been applied (the end of
    /// the initial list).
    pub fn mark_synced_at(&self, seq: u64) {
        self.b().synced_seq.store(seq, SeqCst);
        self.b().wake();
    }

    /// Wakes every waiter with an error: no more writes will come.
    pub fn close(&self) {
        self.b().closed.store(true, SeqCst);
        self.b().waiters.fetch_add(1, SeqCst);
        self.b().wake();
        self.b().waiters.fetch_sub(1, SeqCst);
    }

    /// Whether the store has synced (see [`crate::store::Store::has_synced`]).
    pub fn has_synced(&self) -> bool {
        self.b().has_synced()
    }

    /// Blocks until [`Barrier::has_synced`] or `timeout`; returns whether synced.
    pub fn wait_synced_blocking(&self, timeout: Duration) -> bool {
        self.b().wait_synced_blocking(timeout)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").field("resource_version", &self.b().current()).finish()
    }
}
