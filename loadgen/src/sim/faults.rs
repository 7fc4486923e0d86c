//! Fault injection switches and request/watch counters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Faults to inject, as the admin endpoint `POST /_sim/faults` takes them (every
/// field optional; absent fields leave the current setting alone).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct FaultRequest {
    /// Close every watch (cleanly) after it has sent this many events; 0 turns it off.
    pub close_watches_every: Option<u64>,
    /// Expire every resourceVersion older than now.
    pub expire_history: bool,
    /// While true, answer every WATCH with one ERROR event carrying a 410
    /// Expired Status (a compaction outrunning every watch), so clients relist
    /// each time; `false` turns it off.
    pub expire_every_watch: Option<bool>,
    /// Send one malformed frame on every open watch.
    pub inject_malformed_frame: bool,
    /// Delay every response by this many milliseconds; 0 turns it off.
    pub latency_ms: Option<u64>,
    /// Drop every open connection and watch, keeping the data.
    pub restart: bool,
}

/// The live fault switches.
pub(crate) struct Faults {
    pub close_every: AtomicU64,
    pub latency_us: AtomicU64,
    /// Every watch gets 410 Expired while set.
    pub expire_every_watch: AtomicBool,
    /// Bumped once per `inject_malformed_frame`; watchers send one bad frame per bump.
    pub malformed: tokio::sync::watch::Sender<u64>,
    /// Cancelled (and replaced) by `restart`: every connection holds a child.
    pub generation: Mutex<CancellationToken>,
}

impl Faults {
    pub fn new() -> Self {
        Faults {
            close_every: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            expire_every_watch: AtomicBool::new(false),
            malformed: tokio::sync::watch::channel(0).0,
            generation: Mutex::new(CancellationToken::new()),
        }
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Relaxed))
    }

    pub fn set_latency(&self, d: Duration) {
        self.latency_us
            .store(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn current_generation(&self) -> CancellationToken {
        self.generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn restart(&self) {
        let mut g = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.cancel();
        *g = CancellationToken::new();
    }
}

/// Counters, readable at any time.
#[derive(Default)]
pub(crate) struct Counters {
    pub get: AtomicU64,
    pub list: AtomicU64,
    pub watch: AtomicU64,
    pub create: AtomicU64,
    pub update: AtomicU64,
    pub patch: AtomicU64,
    pub delete: AtomicU64,
    pub other: AtomicU64,
    pub errors: AtomicU64,
    pub watches_active: AtomicU64,
    pub watches_closed_lagging: AtomicU64,
    pub watches_closed_by_fault: AtomicU64,
    pub events_sent: AtomicU64,
    pub bookmarks_sent: AtomicU64,
    pub connections: AtomicU64,
    pub restarts: AtomicU64,
}

/// A snapshot of the simulator's counters (`GET /_sim/stats`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// GET of one object.
    pub get: u64,
    /// LIST requests.
    pub list: u64,
    /// WATCH requests (= watches opened).
    pub watch: u64,
    /// POST (create) requests.
    pub create: u64,
    /// PUT (update) requests.
    pub update: u64,
    /// PATCH requests.
    pub patch: u64,
    /// DELETE requests.
    pub delete: u64,
    /// Discovery, admin and unroutable requests.
    pub other: u64,
    /// Responses with a non-2xx status.
    pub errors: u64,
    /// Watches open now.
    pub watches_active: u64,
    /// Watches closed because they fell more than the fan-out buffer behind.
    pub watches_closed_lagging: u64,
    /// Watches closed by `close_watches_every`.
    pub watches_closed_by_fault: u64,
    /// Watch events sent (ADDED/MODIFIED/DELETED/ERROR), bookmarks not included.
    pub events_sent: u64,
    /// BOOKMARK events sent.
    pub bookmarks_sent: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// `restart` faults performed.
    pub restarts: u64,
    /// The current resourceVersion.
    pub resource_version: u64,
    /// Objects stored, all resources.
    pub objects: u64,
}

impl Counters {
    pub fn snapshot(&self, resource_version: u64, objects: u64) -> Stats {
        Stats {
            get: self.get.load(Relaxed),
            list: self.list.load(Relaxed),
            watch: self.watch.load(Relaxed),
            create: self.create.load(Relaxed),
            update: self.update.load(Relaxed),
            patch: self.patch.load(Relaxed),
            delete: self.delete.load(Relaxed),
            other: self.other.load(Relaxed),
            errors: self.errors.load(Relaxed),
            watches_active: self.watches_active.load(Relaxed),
            watches_closed_lagging: self.watches_closed_lagging.load(Relaxed),
            watches_closed_by_fault: self.watches_closed_by_fault.load(Relaxed),
            events_sent: self.events_sent.load(Relaxed),
            bookmarks_sent: self.bookmarks_sent.load(Relaxed),
            connections: self.connections.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            resource_version,
            objects,
        }
    }
}
