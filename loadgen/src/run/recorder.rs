//! What the handlers observed during a run: every event of the write phase,
//! with its key, resourceVersion and (for a stamped add or update) latency.
//!
//! Writers stamp every update and create with the send time (nanoseconds since
//! the Unix epoch) in the [`SENT_AT`] annotation; handlers read it back through
//! an index field (no parse of the whole object). Which events were caused by
//! the run's own writes is decided after the writes, by resourceVersion
//! ([`super::verify::account`]): another writer's update of a pod keeps the
//! pod's last stamp, so a stamp alone does not say whose event it is.
//!
//! # Guarantees
//! * Events before [`Recorder::start_at`] (the initial sync) are counted, not
//!   logged, so a 100k-pod sync costs the log nothing.
//! * [`Recorder::max_resource_version`] is the highest resourceVersion any
//!   handler has seen: a version the cache has reached.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The annotation that carries a write's send time.
pub const SENT_AT: &str = "loadgen.kcache.io/sent-at";

/// The JSON pointer of [`SENT_AT`] (RFC 6901: `/` in a key is `~1`).
pub const SENT_AT_POINTER: &str = "/metadata/annotations/loadgen.kcache.io~1sent-at";

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One event a handler saw during the write phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `namespace/name`.
    pub key: String,
    /// The object's resourceVersion (0: unknown, e.g. a workqueue worker's delete).
    pub rv: u64,
    /// A delete.
    pub deleted: bool,
    /// Microseconds from the object's [`SENT_AT`] stamp to this event, when it
    /// carries one sent during the write phase.
    pub latency_us: Option<u64>,
}

/// Shared by the handlers of one run.
pub struct Recorder {
    log: Mutex<Vec<Seen>>,
    logging: AtomicBool,
    max_rv: AtomicU64,
    /// Stamped events seen (adds and updates carrying a stamp from this run).
    pub stamped_events: AtomicU64,
    /// Delete events seen.
    pub deletes: AtomicU64,
    /// Every handler event.
    pub events: AtomicU64,
    /// Resync deliveries (also counted in `events`).
    pub resyncs: AtomicU64,
    since: AtomicU64,
    /// Work per event (a sleep after recording it): the overload scenario's slow handler.
    cost: std::time::Duration,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::with_handler_cost(std::time::Duration::ZERO)
    }
}

fn parse_rv(rv: &str) -> u64 {
    rv.parse().unwrap_or(0)
}

impl Recorder {
    /// A recorder whose every `observe*` call then works (sleeps) for `cost`.
    pub fn with_handler_cost(cost: std::time::Duration) -> Self {
        Recorder {
            log: Mutex::new(Vec::new()),
            logging: AtomicBool::new(false),
            max_rv: AtomicU64::new(0),
            stamped_events: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            events: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            since: AtomicU64::new(u64::MAX),
            cost,
        }
    }

    /// The work per event.
    pub fn handler_cost(&self) -> std::time::Duration {
        self.cost
    }

    fn work(&self) {
        if !self.cost.is_zero() {
            std::thread::sleep(self.cost);
        }
    }

    /// Starts logging events and timing stamps sent at or after `nanos` (the
    /// write phase's start).
    pub fn start_at(&self, nanos: u64) {
        self.since.store(nanos, Ordering::SeqCst);
        self.logging.store(true, Ordering::SeqCst);
    }

    /// Records an add or update of the object `key()` at resourceVersion `rv`
    /// whose [`SENT_AT`] stamp is `stamp` (if any).
    pub fn observe(&self, stamp: Option<&str>, rv: &str, key: impl FnOnce() -> String) {
        self.events.fetch_add(1, Ordering::Relaxed);
        let rv = parse_rv(rv);
        self.max_rv.fetch_max(rv, Ordering::Relaxed);
        let latency_us = stamp.and_then(|s| s.parse::<u64>().ok()).filter(|&sent| sent >= self.since.load(Ordering::Relaxed)).map(|sent| {
            self.stamped_events.fetch_add(1, Ordering::Relaxed);
            (now_nanos().saturating_sub(sent) / 1000).max(1)
        });
        if self.logging.load(Ordering::Relaxed) {
            let seen = Seen { key: key(), rv, deleted: false, latency_us };
            self.log.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
        }
        self.work();
    }

    /// Records a resync delivery (not logged: it is no write's event).
    pub fn observe_resync(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        self.work();
    }

    /// Records the delete of `key()` (its resourceVersion `rv`, if known).
    pub fn observe_delete(&self, rv: Option<&str>, key: impl FnOnce() -> String) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.deletes.fetch_add(1, Ordering::Relaxed);
        let rv = rv.map_or(0, parse_rv);
        self.max_rv.fetch_max(rv, Ordering::Relaxed);
        if self.logging.load(Ordering::Relaxed) {
            let seen = Seen { key: key(), rv, deleted: true, latency_us: None };
            self.log.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
        }
        self.work();
    }

    /// The highest resourceVersion a handler has seen (0: none).
    pub fn max_resource_version(&self) -> u64 {
        self.max_rv.load(Ordering::Relaxed)
    }

    /// A copy of the events logged so far, in the order they were recorded.
    pub fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_of_the_write_phase_are_logged_and_only_its_stamps_timed() {
        let r = Recorder::default();
        r.observe(Some("1"), "5", || "ns/sync".into());
        r.start_at(1_000);
        r.observe(Some("999"), "6", || "ns/old-stamp".into());
        r.observe(None, "7", || "ns/unstamped".into());
        r.observe(Some(&now_nanos().to_string()), "9", || "ns/new".into());
        r.observe_delete(Some("8"), || "ns/gone".into());
        r.observe_delete(None, || "ns/worker".into());
        r.observe_resync();
        assert_eq!(r.events.load(Ordering::Relaxed), 7);
        assert_eq!(r.resyncs.load(Ordering::Relaxed), 1);
        assert_eq!(r.stamped_events.load(Ordering::Relaxed), 1);
        assert_eq!(r.deletes.load(Ordering::Relaxed), 2);
        assert_eq!(r.max_resource_version(), 9);
        let log = r.log();
        let keys: Vec<&str> = log.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["ns/old-stamp", "ns/unstamped", "ns/new", "ns/gone", "ns/worker"]);
        assert_eq!(log.iter().filter(|s| s.latency_us.is_some()).count(), 1);
        assert!(log[1].latency_us.is_none() && log[3].deleted && log[4].rv == 0);
    }

    #[test]
    fn a_handler_cost_is_spent_on_every_event_after_recording_it() {
        let r = Recorder::with_handler_cost(std::time::Duration::from_millis(20));
        let t = std::time::Instant::now();
        r.observe(None, "1", String::new);
        r.observe_delete(None, String::new);
        r.observe_resync();
        assert!(t.elapsed() >= std::time::Duration::from_millis(60), "{:?}", t.elapsed());
        assert_eq!(r.events.load(Ordering::Relaxed), 3);
        let free = Recorder::default();
        assert!(free.handler_cost().is_zero());
    }
}
