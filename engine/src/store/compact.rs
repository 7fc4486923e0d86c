//! Arena compaction of one store shard, run by that shard's writer.
//!
//! Object bytes live in arena segments ([`crate::arena`]); a segment is freed
//! only when every object in it is gone, so a few long-lived objects can pin
//! segments of otherwise dead bytes. A [`ShardCompactor`] moves the live
//! objects of its shard out of sparse segments into an arena of its own and
//! swaps the stored handles, with the shard's [`ShardWriter`]: the thread that
//! already owns every write to the shard, so a move never races an update of
//! the same key and needs no message to anyone.
//!
//! # Guarantees
//! * A move is invisible: the copy has the same bytes and metadata, so readers
//!   and handlers cannot tell (handlers are not called).
//! * A step copies at most what the time since the previous step earned
//!   ([`step_budget`]: 25 MiB/s, 4–512 KiB a step), plus the object that
//!   crosses the budget; the caller runs steps between keys, so an event waits
//!   for at most one step.
//! * Finding the candidates (every object of the shard) runs on a thread of its
//!   own, at most once per [`SCAN_INTERVAL`] and only while the arena's live
//!   share is under [`CompactionConfig::compact_below`]: milliseconds at 10k
//!   objects that no event waits for.
//! * An object replaced or deleted since the scan is skipped: only the handle
//!   the shard still holds is moved.
//! * With a compressing arena ([`crate::compress`]), objects stored before its
//!   dictionary existed are candidates too, once it exists: the move compresses
//!   them, at the same pace.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use super::{ShardWriter, Store};
use crate::arena::{Arena, ArenaStats};
use crate::Obj;

/// When and how fast a store's shards compact their arena.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompactionConfig {
    /// Compact when the arena's live bytes fall under this share of its segment
    /// bytes (default 0.7, clamped to `0.0..=1.0`; 0 turns compaction off).
    pub compact_below: f64,
    /// Least time between two steps of a shard (default 2.5 ms). A step copies
    /// what the time since the previous one earned, so the rate does not depend
    /// on this; a shorter interval makes each step, and the wait of an event
    /// behind it, smaller.
    pub interval: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig { compact_below: 0.7, interval: Duration::from_micros(2_500) }
    }
}

/// Least time between two scans of a shard for objects in sparse segments.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(500);
/// Object bytes compaction copies out of sparse segments per second, per shard.
/// At the default interval (2.5 ms) a step is 64 KiB, about a dozen pods.
const RELOCATE_BYTES_PER_SECOND: usize = 25 << 20;
/// Least a step copies (when it is called more often than it earns a pod).
const MIN_STEP_BYTES: usize = 4 << 10;
/// Most a step copies, whatever time passed: the stall it may cause is bounded.
const MAX_STEP_BYTES: usize = 512 << 10;

/// Bytes a compaction step may copy, `since` the previous step.
pub fn step_budget(since: Duration) -> usize {
    let earned = since.as_secs_f64() * RELOCATE_BYTES_PER_SECOND as f64;
    (earned as usize).clamp(MIN_STEP_BYTES, MAX_STEP_BYTES)
}

/// Stored objects to move out of sparse segments, with their keys.
type Candidates = Vec<(Arc<str>, Obj)>;

/// Compacts one shard's share of an arena: moves the shard's live objects out
/// of sparse segments into an arena of its own and swaps the stored handles,
/// on the shard's writer thread.
///
/// # Guarantees
/// * A move is invisible: the copy has the same bytes and metadata, and
///   handlers are not called.
/// * A step copies at most what the time since the previous step earned
///   ([`step_budget`]), plus the object that crosses the budget.
/// * Candidates are found on a thread of its own, at most once per
///   [`SCAN_INTERVAL`], only while the arena's live share is under
///   [`CompactionConfig::compact_below`], and not again until the arena's
///   accounting changes after a scan that found nothing.
/// * An object replaced or deleted since the scan is skipped.
///
/// Owned by the shard's writer thread: [`ShardCompactor::due`] says when the
/// next step is wanted, [`ShardCompactor::step`] moves stored objects and
/// [`ShardCompactor::relocate`] copies an object the caller holds elsewhere
/// (the fifo's queued objects).
pub struct ShardCompactor {
    config: CompactionConfig,
    /// Relocated objects land in this arena's open segment; it shares the
    /// accounting of the arena the decoder writes to.
    arena: Arena,
    store: Store,
    shard: usize,
    /// Objects found in sparse segments by the last scan, not yet moved.
    pending: Candidates,
    /// The caller's own objects (the fifo's queue) still need a pass.
    held_pending: bool,
    last_scan: Option<Instant>,
    last_step: Option<Instant>,
    /// When the compactor was made: what [`ShardCompactor::due`] answers for
    /// "at once", so that it is never later than a `now` the caller took before.
    created: Instant,
    /// The arena's accounting when a scan last found nothing to move: no scan
    /// runs again until it changes, so an idle informer's threads stay asleep.
    quiet_at: Option<(ArenaStats, u64)>,
    /// The running scan's result, when one runs, and the arena's accounting
    /// when it started.
    scanning: Option<(Receiver<Candidates>, (ArenaStats, u64))>,
}

impl std::fmt::Debug for ShardCompactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCompactor")
            .field("shard", &self.shard)
            .field("pending", &self.pending.len())
            .field("scanning", &self.scanning.is_some())
            .finish_non_exhaustive()
    }
}

impl ShardCompactor {
    /// A compactor for shard `shard` of `store`, moving objects into `arena`
    /// (a clone of the arena objects are decoded into: it shares its accounting
    /// and has an open segment of its own).
    pub fn new(config: CompactionConfig, arena: Arena, store: Store, shard: usize) -> Self {
        let compact_below = if config.compact_below.is_nan() { 0.0 } else { config.compact_below.clamp(0.0, 1.0) };
        ShardCompactor {
            config: CompactionConfig { compact_below, ..config },
            arena,
            store,
            shard,
            pending: Vec::new(),
            held_pending: false,
            last_scan: None,
            last_step: None,
            created: Instant::now(),
            quiet_at: None,
            scanning: None,
        }
    }

    /// Whether a scan's candidates, or the caller's own objects, wait to be moved.
    fn has_work(&self) -> bool {
        !self.pending.is_empty() || self.held_pending || self.scanning.is_some()
    }

    /// Whether the arena's live share is under the threshold, or objects wait to
    /// be compressed with a dictionary that now exists.
    fn arena_is_sparse(&self) -> bool {
        let stats = self.arena.stats();
        self.quiet_at != Some(self.quiet_key())
            && ((stats.segment_bytes > 0
                && (stats.live_bytes as f64) < self.config.compact_below * stats.segment_bytes as f64)
                || self.converts(&stats))
    }

    /// What must change after a scan that found nothing for another to run: the
    /// arena's accounting, or the dictionary objects can be compressed with.
    fn quiet_key(&self) -> (ArenaStats, u64) {
        (self.arena.stats(), self.arena.compression_stats().map_or(0, |s| s.dictionary_version))
    }

    /// Objects stored uncompressed wait for a dictionary being trained: the thread
    /// looks again after a scan interval (nothing else wakes it when training ends).
    fn awaits_dictionary(&self) -> bool {
        self.arena.stats().waiting_bytes > 0 && self.arena.codec().is_some_and(crate::compress::Codec::is_training)
    }

    /// Whether objects stored uncompressed wait for a dictionary that now exists.
    fn converts(&self, stats: &ArenaStats) -> bool {
        stats.waiting_bytes > 0 && self.arena.codec().is_some_and(crate::compress::Codec::has_dictionary)
    }

    /// When the next step should run: `None` when there is nothing to do until
    /// the arena changes (a write wakes the shard's thread anyway).
    pub fn due(&self) -> Option<Instant> {
        if self.has_work() {
            return Some(self.last_step.map_or(self.created, |t| t + self.config.interval));
        }
        if !self.arena_is_sparse() && !self.awaits_dictionary() {
            return None;
        }
        Some(self.last_scan.map_or(self.created, |t| t + SCAN_INTERVAL))
    }

    /// One step at `now`: starts a scan when the arena is sparse, takes a
    /// finished scan's candidates, and moves what the time since the last step
    /// earned. `relocate_held` is then given the budget left to move the
    /// caller's own objects (with [`ShardCompactor::relocate`]) and returns the
    /// bytes it copied and whether it visited all of them. Returns how many
    /// stored objects moved.
    pub fn step(
        &mut self,
        writer: &mut ShardWriter,
        now: Instant,
        relocate_held: impl FnOnce(&mut Self, usize) -> (usize, bool),
    ) -> usize {
        if self.due().is_none_or(|at| at > now) {
            return 0;
        }
        // A pass that starts after a quiet stretch earns one interval, not a burst.
        let starting = !self.has_work();
        let since = match self.last_step.replace(now) {
            Some(t) if !starting => now.saturating_duration_since(t),
            _ => self.config.interval,
        };
        if self.pending.is_empty() && !self.held_pending {
            self.scan(now);
            if self.pending.is_empty() && !self.held_pending {
                return 0;
            }
        }
        let mut budget = step_budget(since);
        let mut moved = 0;
        while budget > 0 {
            let Some((key, obj)) = self.pending.pop() else { break };
            // Replaced or deleted since the scan: its segment frees itself once
            // this handle drops.
            let current = writer.get(&key).is_some_and(|cur| std::ptr::eq(cur.stored_bytes(), obj.stored_bytes()));
            if !current {
                continue;
            }
            budget = budget.saturating_sub(obj.stored_bytes().len());
            let copy = self.arena.relocate(&obj);
            if let Err(e) = writer.upsert(copy) {
                tracing::error!(error = %e, "compaction moved an object of another shard");
            }
            moved += 1;
        }
        if self.pending.is_empty() && self.held_pending && budget > 0 {
            let (_, done) = relocate_held(self, budget);
            self.held_pending = !done;
        }
        if !self.has_work() {
            let stats = self.arena.stats();
            tracing::debug!(shard = self.shard, live = stats.live_bytes, segments = stats.segment_bytes, "arena compaction pass done");
        }
        moved
    }

    /// A copy of `obj` in this compactor's arena when `obj` sits in a sparse
    /// segment; `None` when it need not move.
    pub fn relocate(&mut self, obj: &Obj) -> Option<Obj> {
        let convert = obj.awaits_compression() && self.converts(&self.arena.stats());
        (convert || obj.segment_is_sparse()).then(|| self.arena.relocate(obj))
    }

    /// Starts a scan of the shard when the arena is sparse and the last one is
    /// old enough, or takes the running scan's result.
    fn scan(&mut self, now: Instant) {
        if let Some((rx, started_at)) = &self.scanning {
            match rx.try_recv() {
                Ok(found) => {
                    // Not the accounting now: what changed during the scan may
                    // have made a segment sparse that the scan had passed.
                    self.quiet_at = found.is_empty().then_some(*started_at);
                    self.scanning = None;
                    self.pending = found;
                    self.held_pending = true;
                    tracing::debug!(shard = self.shard, candidates = self.pending.len(), "arena compaction started");
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.scanning = None,
            }
            return;
        }
        if !self.arena_is_sparse() {
            if self.awaits_dictionary() {
                // Polled while a dictionary is trained: look again an interval later.
                self.last_scan = Some(now);
            }
            return;
        }
        if self.last_scan.is_some_and(|t| now.saturating_duration_since(t) < SCAN_INTERVAL) {
            return;
        }
        self.last_scan = Some(now);
        let started_at = self.quiet_key();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (reader, shard, convert) = (self.store.clone(), self.shard, self.converts(&started_at.0));
        let spawned = std::thread::Builder::new().name(format!("kcache-compact-scan-{shard}")).spawn(move || {
            // The receiver is gone only when the shard thread stopped.
            let _ = tx.send(sparse_objects(&reader, shard, convert));
        });
        match spawned {
            Ok(_) => self.scanning = Some((rx, started_at)),
            Err(e) => {
                tracing::debug!(error = %e, "cannot start a compaction scan thread; scanning on the shard thread");
                self.pending = sparse_objects(&self.store, self.shard, convert);
                self.held_pending = true;
            }
        }
    }
}

/// Every object of `shard` whose bytes sit in a sparse segment (or, when
/// `convert`, wait for compression), with its key.
fn sparse_objects(store: &Store, shard: usize, convert: bool) -> Candidates {
    let mut found = Vec::new();
    store.for_each_in_shard(shard, |key, obj| {
        if obj.segment_is_sparse() || (convert && obj.awaits_compression()) {
            found.push((Arc::from(key), obj.clone()));
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::testing::pod;
    use crate::store::{StoreConfig, store};

    /// Writes `n` pods into a small-segment arena and stores one of every
    /// three (the others' bytes die at once), so every sealed segment is sparse.
    fn sparse_shard(n: usize) -> (Store, ShardWriter, Arena) {
        let (store, writer) = store(StoreConfig::default().shards(1));
        let (_, mut writers) = writer.into_parts();
        let mut w = writers.pop().unwrap();
        let mut arena = Arena::with_segment_bytes(64 << 10);
        let labels: Vec<(String, String)> = (0..8).map(|i| (format!("label-{i}"), "x".repeat(40))).collect();
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for i in 0..n {
            let copy = arena.relocate(&pod("ns", &format!("pod-{i}"), "1", &labels));
            if i % 3 == 0 {
                w.upsert(copy).unwrap();
            }
        }
        (store, w, arena)
    }

    /// Runs steps until the compactor has nothing left; returns the step count.
    fn run_to_end(c: &mut ShardCompactor, w: &mut ShardWriter, mut now: Instant) -> usize {
        let mut steps = 0;
        while let Some(at) = c.due() {
            if !c.has_work() && steps > 0 {
                break;
            }
            now = now.max(at);
            c.step(w, now, |_, _| (0, true));
            steps += 1;
            assert!(steps < 100_000, "compaction did not finish");
            if c.scanning.is_some() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        steps
    }

    #[test]
    fn a_step_copies_at_most_its_budget_and_the_following_steps_move_the_rest() {
        let (store, mut w, arena) = sparse_shard(2_000);
        let mut c = ShardCompactor::new(CompactionConfig { compact_below: 1.0, ..Default::default() }, arena.clone(), store.clone(), 0);
        let t0 = Instant::now();
        // The first step starts the scan; wait for its result.
        c.step(&mut w, t0, |_, _| (0, true));
        while c.scanning.is_some() {
            std::thread::sleep(Duration::from_millis(1));
            c.scan(t0);
        }
        let candidates = c.pending.clone();
        let total: usize = candidates.iter().map(|(_, o)| o.json().len()).sum();
        let largest = candidates.iter().map(|(_, o)| o.json().len()).max().unwrap();
        let budget = step_budget(CompactionConfig::default().interval);
        assert!(total > 2 * budget, "{total} bytes are too few to need several steps");

        let moved = c.step(&mut w, t0 + CompactionConfig::default().interval, |_, _| (0, true));
        let copied: usize = candidates[candidates.len() - moved..].iter().map(|(_, o)| o.json().len()).sum();
        assert!(moved > 0 && copied <= budget + largest, "{moved} objects, {copied} bytes");
        assert!(copied >= budget, "a step stopped at {copied} bytes with work left");

        let steps = run_to_end(&mut c, &mut w, t0 + 2 * CompactionConfig::default().interval);
        assert!(steps >= total / (budget + largest), "{steps} steps for {total} bytes");
        // Every stored object now sits outside the old sparse segments, with
        // the same bytes.
        assert_eq!(store.len(), 667);
        for (key, old) in &candidates {
            let now = store.get_by_key(key).unwrap();
            assert!(!now.segment_is_sparse() && !std::ptr::eq(now.stored_bytes(), old.stored_bytes()));
            assert_eq!(now.json(), old.json());
        }
    }

    #[test]
    fn an_object_replaced_since_the_scan_is_not_moved_over_its_new_version() {
        let (store, mut w, arena) = sparse_shard(200);
        let mut c = ShardCompactor::new(CompactionConfig { compact_below: 1.0, ..Default::default() }, arena, store.clone(), 0);
        c.pending = sparse_objects(&store, 0, false);
        assert!(!c.pending.is_empty());
        let (key, _) = c.pending.last().unwrap().clone();
        let newer = pod("ns", key.rsplit('/').next().unwrap(), "2", &[]);
        w.upsert(newer).unwrap();
        c.step(&mut w, Instant::now(), |_, _| (0, true));
        assert_eq!(store.get_by_key(&key).unwrap().resource_version(), "2");
    }

    #[test]
    fn a_dense_arena_is_never_scanned() {
        let (store, writer) = store(StoreConfig::default().shards(1));
        let (_, mut writers) = writer.into_parts();
        let mut w = writers.pop().unwrap();
        let mut arena = Arena::with_segment_bytes(4 << 10);
        let labels = [("app", "x".repeat(200))];
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for i in 0..1_000 {
            w.upsert(arena.relocate(&pod("ns", &format!("p-{i}"), "1", &labels))).unwrap();
        }
        let c = ShardCompactor::new(CompactionConfig::default(), arena.clone(), store, 0);
        assert!(arena.stats().live_bytes as f64 > 0.7 * arena.stats().segment_bytes as f64, "{:?}", arena.stats());
        assert_eq!(c.due(), None);
    }

    #[test]
    fn a_step_copies_what_the_time_since_the_last_one_earned_within_bounds() {
        let ms = |m: f64| Duration::from_secs_f64(m / 1e3);
        // The default interval earns 64 KiB; a longer one proportionally more.
        assert_eq!(step_budget(ms(2.5)), 65_536);
        assert_eq!(step_budget(ms(5.0)), 131_072);
        assert_eq!(step_budget(ms(20.0)), MAX_STEP_BYTES);
        // A step after a long pause is capped; one right after another still moves something.
        assert_eq!(step_budget(Duration::from_secs(60)), MAX_STEP_BYTES);
        assert_eq!(step_budget(Duration::ZERO), MIN_STEP_BYTES);
        assert!(step_budget(ms(0.1)) >= MIN_STEP_BYTES && step_budget(ms(1.0)) > step_budget(ms(0.5)));
    }
}
