//! What the handlers observed during a run: event latency and counts.
//!
//! Writers stamp every update and create with the send time (nanoseconds since
//! the Unix epoch) in the [`SENT_AT`] annotation; handlers read it back through
//! an index field (no parse of the whole object) and record now - sent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// The annotation that carries a write's send time.
pub const SENT_AT: &str = "loadgen.kcache.io/sent-at";

/// The JSON pointer of [`SENT_AT`] (RFC 6901: `/` in a key is `~1`).
pub const SENT_AT_POINTER: &str = "/metadata/annotations/loadgen.kcache.io~1sent-at";

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Shared by the handlers of one run.
pub struct Recorder {
    latency_us: Mutex<Histogram<u64>>,
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

impl Recorder {
    /// A recorder whose every `observe*` call then works (sleeps) for `cost`.
    pub fn with_handler_cost(cost: std::time::Duration) -> Self {
        Recorder {
            latency_us: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")),
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
    /// Starts counting stamps sent at or after `nanos` (the write phase's start).
    pub fn start_at(&self, nanos: u64) {
        self.since.store(nanos, Ordering::SeqCst);
    }

    /// Records an add or update whose [`SENT_AT`] stamp is `stamp` (if any).
    pub fn observe(&self, stamp: Option<&str>) {
        self.record(stamp);
        self.work();
    }

    fn record(&self, stamp: Option<&str>) {
        self.events.fetch_add(1, Ordering::Relaxed);
        let Some(sent) = stamp.and_then(|s| s.parse::<u64>().ok()) else { return };
        if sent < self.since.load(Ordering::Relaxed) {
            return;
        }
        self.stamped_events.fetch_add(1, Ordering::Relaxed);
        let us = now_nanos().saturating_sub(sent) / 1000;
        let mut h = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record(us.max(1));
    }

    /// Records a resync delivery (no latency: its stamp is an old write's).
    pub fn observe_resync(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        self.work();
    }

    /// Records a delete.
    pub fn observe_delete(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.deletes.fetch_add(1, Ordering::Relaxed);
        self.work();
    }

    /// A copy of the latency histogram (microseconds).
    pub fn latency(&self) -> Histogram<u64> {
        self.latency_us.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stamps_from_the_write_phase_count() {
        let r = Recorder::default();
        r.start_at(1_000);
        r.observe(Some("999"));
        r.observe(None);
        r.observe(Some(&now_nanos().to_string()));
        r.observe_delete();
        r.observe_resync();
        assert_eq!(r.events.load(Ordering::Relaxed), 5);
        assert_eq!(r.resyncs.load(Ordering::Relaxed), 1);
        assert_eq!(r.stamped_events.load(Ordering::Relaxed), 1);
        assert_eq!(r.deletes.load(Ordering::Relaxed), 1);
        assert_eq!(r.latency().len(), 1);
    }

    #[test]
    fn a_handler_cost_is_spent_on_every_event_after_recording_it() {
        let r = Recorder::with_handler_cost(std::time::Duration::from_millis(20));
        let t = std::time::Instant::now();
        r.observe(None);
        r.observe_delete();
        r.observe_resync();
        assert!(t.elapsed() >= std::time::Duration::from_millis(60), "{:?}", t.elapsed());
        assert_eq!(r.events.load(Ordering::Relaxed), 3);
        let free = Recorder::default();
        assert!(free.handler_cost().is_zero());
    }
}
