//! Cache reads timed while the writes run: `readers` threads, each timing Gets of
//! sampled keys and, now and then, a List of one namespace, as a busy controller's
//! workers read the cache while its informer applies 2,000 events a second.
//!
//! Each thread reads in short bursts and sleeps between them, so that the readers
//! do not take the cores the engine, the simulator and the writer need (on a
//! 2-core machine two spinning readers would slow the write phase itself). A
//! timing covers one call (`Instant` on both sides, about 20 ns of it the clock),
//! so a reader preempted mid-call shows in the tail, as it would in production.
//! The key's bytes are read just before the clock starts, as a worker holds the
//! key it was handed: the readers' 10,000 key strings are otherwise a cache miss
//! of the harness's own in every timing, the same for every engine.
//!
//! [`ReadLoad::finish`] keeps the threads reading (without the writer, then) until
//! each has its minimum of samples, so a run with a short or no write phase
//! still reports read latencies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::engines::CacheReader;

/// Gets timed per burst.
const GETS_PER_BURST: usize = 64;
/// One List is timed every this many bursts.
const BURSTS_PER_LIST: usize = 4;
/// Pause between bursts.
const PAUSE: Duration = Duration::from_millis(1);
/// Gets each thread times at least, writer or not.
const MIN_GETS: u64 = 20_000;
/// Lists each thread times at least.
const MIN_LISTS: u64 = 250;
/// Gets each thread times at most (the histogram stays small either way; this
/// bounds the readers' CPU on long write phases).
const MAX_GETS: u64 = 500_000;

/// Read-timing threads running against one cache.
pub struct ReadLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<CacheReads>>,
}

/// What one reader measured, or all of them merged.
pub struct CacheReads {
    /// Get latencies, nanoseconds.
    pub gets: Histogram<u64>,
    /// List latencies, nanoseconds.
    pub lists: Histogram<u64>,
    /// Timed Gets that found their object.
    pub get_hits: u64,
}

impl CacheReads {
    /// No reads.
    pub fn empty() -> CacheReads {
        CacheReads { gets: histogram(), lists: histogram(), get_hits: 0 }
    }

    /// The share of timed Gets that found their object; `None` without Gets.
    pub fn hit_rate(&self) -> Option<f64> {
        (!self.gets.is_empty()).then(|| self.get_hits as f64 / self.gets.len() as f64)
    }
}

impl ReadLoad {
    /// Starts `readers` threads reading `keys` (Gets) and `namespace` (Lists).
    /// With no keys or no readers, nothing is started and [`ReadLoad::finish`]
    /// returns no reads.
    pub fn start(reader: &CacheReader, keys: Arc<[String]>, namespace: Arc<str>, readers: usize) -> ReadLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = if keys.is_empty() {
            Vec::new()
        } else {
            (0..readers)
                .filter_map(|i| {
                    let (reader, keys, namespace, stop) =
                        (reader.clone(), Arc::clone(&keys), Arc::clone(&namespace), Arc::clone(&stop));
                    std::thread::Builder::new()
                        .name(format!("cache-reader-{i}"))
                        .spawn(move || read(&reader, &keys, &namespace, &stop, i))
                        .inspect_err(|e| tracing::warn!("cannot start cache reader {i}: {e}; timing with fewer readers"))
                        .ok()
                })
                .collect()
        };
        ReadLoad { stop, threads }
    }

    /// Stops the readers once each has its minimum of samples; what they
    /// measured, merged.
    pub fn finish(self) -> CacheReads {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = CacheReads::empty();
        for t in self.threads {
            match t.join() {
                Ok(one) => {
                    let _ = all.gets.add(&one.gets);
                    let _ = all.lists.add(&one.lists);
                    all.get_hits += one.get_hits;
                }
                Err(_) => tracing::warn!("a cache reader panicked; its timings are lost"),
            }
        }
        all
    }
}

/// Reads every byte of `key` and returns it: called just before a Get's clock
/// starts, so the timing begins with the key in the cache, as a worker holds the
/// key it was handed (see the module docs).
pub fn key_in_hand(key: &str) -> &str {
    std::hint::black_box(key.bytes().fold(0u8, |acc, b| acc ^ b));
    key
}

/// A histogram of nanoseconds up to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static histogram bounds are valid")
}

fn read(reader: &CacheReader, keys: &[String], namespace: &str, stop: &AtomicBool, seed: usize) -> CacheReads {
    let mut t = CacheReads::empty();
    // Each reader walks the keys with its own stride and start, so the two do
    // not read the same object at the same moment.
    let stride = [7919, 104_729][seed % 2];
    let mut idx = seed * keys.len() / 2;
    let mut bursts = 0usize;
    loop {
        let done = t.gets.len() >= MIN_GETS && t.lists.len() >= MIN_LISTS;
        if (done && stop.load(Ordering::Relaxed)) || t.gets.len() >= MAX_GETS {
            break;
        }
        for _ in 0..GETS_PER_BURST {
            idx = (idx + stride) % keys.len();
            let key = key_in_hand(&keys[idx]);
            let start = Instant::now();
            let found = reader.get(key);
            let ns = start.elapsed().as_nanos() as u64;
            t.get_hits += u64::from(std::hint::black_box(found));
            let _ = t.gets.record(ns.max(1));
        }
        bursts += 1;
        if bursts.is_multiple_of(BURSTS_PER_LIST) {
            let start = Instant::now();
            let n = reader.list_namespace(namespace);
            let ns = start.elapsed().as_nanos() as u64;
            std::hint::black_box(n);
            let _ = t.lists.record(ns.max(1));
        }
        std::thread::sleep(PAUSE);
    }
    // Past MAX_GETS the thread idles until told to stop, so `finish` sees it
    // done at the same moment as the others.
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
    }
    t
}
