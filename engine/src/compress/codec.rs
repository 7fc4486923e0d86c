//! A codec shared by an informer's arenas: sampling, training and retraining of the
//! dictionary, and the counters of what compression did.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::ZstdConfig;
use super::dict::Dictionary;

/// Counters shared by a codec, its clones and its dictionaries.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) live_dictionaries: AtomicU64,
    pub(super) dictionary_bytes: AtomicU64,
    pub(super) corrupt_frames: AtomicU64,
    pub(super) decompressions: AtomicU64,
    compressed: AtomicU64,
    incompressible: AtomicU64,
    too_large: AtomicU64,
    trainings: AtomicU64,
    train_failures: AtomicU64,
    rejected_dictionaries: AtomicU64,
    retrains: AtomicU64,
}

/// What a codec did, summed over the clones of its arena.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompressionStats {
    /// Version of the dictionary new objects are compressed with; 0 before the first.
    pub dictionary_version: u64,
    /// Dictionaries still alive (the current one and older ones objects still use).
    pub live_dictionaries: u64,
    /// Memory of the live dictionaries, prepared for compression and decompression.
    pub dictionary_bytes: u64,
    /// Uncompressed over compressed bytes of the current dictionary on held-out
    /// objects of its sample.
    pub trained_ratio: f64,
    /// Uncompressed over compressed bytes of the objects compressed with the current
    /// dictionary so far.
    pub running_ratio: f64,
    /// Objects compressed.
    pub compressed_objects: u64,
    /// Objects stored uncompressed because their frame was not small enough.
    pub incompressible_objects: u64,
    /// Objects stored uncompressed because they exceed `max_object_bytes`.
    pub too_large_objects: u64,
    /// Frames that failed to decompress (checksum, length or format).
    pub corrupt_frames: u64,
    /// Bodies decompressed (every read of a compressed body is one).
    pub decompressions: u64,
    /// Dictionaries trained and taken into use.
    pub trainings: u64,
    /// Trainings zstd refused (too few or too small samples).
    pub train_failures: u64,
    /// Dictionaries trained but not used because they compressed their sample by
    /// less than `min_trained_ratio`: the codec then stops compressing.
    pub rejected_dictionaries: u64,
    /// Retrainings started because the running ratio fell under `retrain_below` of
    /// the trained one.
    pub retrains: u64,
}

#[derive(Debug, Default)]
struct Sampler {
    samples: Vec<Vec<u8>>,
    collecting: bool,
    training: bool,
    failures: u32,
}

/// Trainings zstd refuses before the codec gives up on compressing.
const MAX_TRAIN_FAILURES: u32 = 3;
/// Every this many compressions with a dictionary its running ratio is checked.
const RATIO_CHECK_EVERY: u64 = 256;

#[derive(Debug)]
struct Shared {
    config: ZstdConfig,
    counters: Arc<Counters>,
    current: RwLock<Option<Arc<Dictionary>>>,
    /// Version of `current` (0: none), read on every store to see a new dictionary.
    version: AtomicU64,
    /// A trained dictionary did not pay: compress nothing more.
    disabled: AtomicBool,
    sampler: Mutex<Sampler>,
}

/// What [`Codec::encode`] made of an object's bytes.
#[derive(Debug)]
pub enum Encoded {
    /// A frame, made with this dictionary.
    Frame(Vec<u8>, Arc<Dictionary>),
    /// Keep the bytes as they are; `waiting` when a later dictionary may compress
    /// them (none existed yet), false when they were refused (too large, or not
    /// smaller compressed).
    Plain {
        /// A dictionary trained later may compress the object.
        waiting: bool,
    },
}

/// A handle on an informer's compression state; clones share it.
///
/// Each clone caches the current dictionary and looks for a newer one with one
/// atomic load per object.
#[derive(Clone, Debug)]
pub struct Codec {
    shared: Arc<Shared>,
    cached: Option<Arc<Dictionary>>,
}

impl Codec {
    /// A codec with no dictionary yet: it samples the objects it is given.
    pub fn new(config: ZstdConfig) -> Codec {
        let config = ZstdConfig {
            sample_objects: config.sample_objects.max(1),
            min_sample_objects: config.min_sample_objects.max(2),
            keep_below: if config.keep_below.is_nan() { 0.9 } else { config.keep_below.clamp(0.0, 1.0) },
            ..config
        };
        Codec {
            shared: Arc::new(Shared {
                config,
                counters: Arc::default(),
                current: RwLock::new(None),
                version: AtomicU64::new(0),
                disabled: AtomicBool::new(false),
                sampler: Mutex::new(Sampler { collecting: true, ..Sampler::default() }),
            }),
            cached: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ZstdConfig {
        &self.shared.config
    }

    /// The dictionary new objects are compressed with, once trained.
    pub fn current(&self) -> Option<Arc<Dictionary>> {
        self.shared.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The current dictionary through this clone's cache.
    fn dictionary(&mut self) -> Option<Arc<Dictionary>> {
        let version = self.shared.version.load(Relaxed);
        if self.cached.as_ref().map_or(0, |d| d.version()) != version {
            self.cached = self.current();
        }
        self.cached.clone()
    }

    /// Whether a dictionary exists that objects stored while waiting for one can be
    /// compressed with.
    pub fn has_dictionary(&self) -> bool {
        self.shared.version.load(Relaxed) > 0 && !self.shared.disabled.load(Relaxed)
    }

    /// Compresses `src` with the current dictionary when there is one and it pays;
    /// before the first dictionary, samples `src` for training.
    pub fn encode(&mut self, src: &[u8]) -> Encoded {
        let c = Arc::clone(&self.shared.counters);
        if self.shared.disabled.load(Relaxed) {
            return Encoded::Plain { waiting: false };
        }
        if src.len() > self.shared.config.max_object_bytes {
            c.too_large.fetch_add(1, Relaxed);
            return Encoded::Plain { waiting: false };
        }
        let Some(dict) = self.dictionary() else {
            self.offer(src);
            return Encoded::Plain { waiting: true };
        };
        let keep = src.len() as f64 * self.shared.config.keep_below;
        let encoded = match dict.compress(src) {
            Ok(frame) if (frame.len() as f64) < keep => {
                c.compressed.fetch_add(1, Relaxed);
                Encoded::Frame(frame, Arc::clone(&dict))
            }
            Ok(_) => {
                c.incompressible.fetch_add(1, Relaxed);
                Encoded::Plain { waiting: false }
            }
            Err(e) => {
                tracing::debug!(error = %e, "zstd could not compress an object; stored uncompressed");
                c.incompressible.fetch_add(1, Relaxed);
                Encoded::Plain { waiting: false }
            }
        };
        self.check_ratio(&dict, src);
        encoded
    }

    /// Starts sampling for a new dictionary when the running ratio of `dict` fell
    /// well under its trained one; feeds the sample while one is collected.
    fn check_ratio(&self, dict: &Dictionary, src: &[u8]) {
        let n = dict.compressions.load(Relaxed);
        if n >= self.shared.config.retrain_window && n.is_multiple_of(RATIO_CHECK_EVERY) {
            let running = ratio(dict.raw_in.load(Relaxed), dict.frames_out.load(Relaxed));
            if running < dict.trained_ratio() * self.shared.config.retrain_below {
                let mut s = self.shared.sampler.lock().unwrap_or_else(PoisonError::into_inner);
                let current = self.shared.version.load(Relaxed) == dict.version();
                if current && !s.collecting && !s.training {
                    self.shared.counters.retrains.fetch_add(1, Relaxed);
                    tracing::info!(version = dict.version(), running, trained = dict.trained_ratio(), "compression ratio fell: retraining the dictionary");
                    s.collecting = true;
                    s.samples.clear();
                }
            }
        }
        self.offer(src);
    }

    /// Adds `src` to the sample when one is collected; trains once it is full.
    fn offer(&self, src: &[u8]) {
        let mut s = self.shared.sampler.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.collecting {
            return;
        }
        s.samples.push(src.to_vec());
        if s.samples.len() >= self.shared.config.sample_objects
            && let Some(samples) = self.start_training(&mut s)
        {
            drop(s);
            train_and_publish(&self.shared, &samples);
        }
    }

    /// The initial list is complete: train from what was sampled, even when it is
    /// fewer than `sample_objects` (but not fewer than `min_sample_objects`).
    pub fn list_done(&self) {
        let mut s = self.shared.sampler.lock().unwrap_or_else(PoisonError::into_inner);
        if s.collecting
            && self.shared.version.load(Relaxed) == 0
            && let Some(samples) = self.start_training(&mut s)
        {
            drop(s);
            train_and_publish(&self.shared, &samples);
        }
    }

    /// Takes the sample for training: returns it when the caller trains inline
    /// ([`ZstdConfig::train_inline`]), else trains on a thread of its own.
    fn start_training(&self, s: &mut Sampler) -> Option<Vec<Vec<u8>>> {
        if s.training || s.samples.len() < self.shared.config.min_sample_objects {
            return None;
        }
        s.collecting = false;
        s.training = true;
        let samples = std::mem::take(&mut s.samples);
        if self.shared.config.train_inline {
            return Some(samples);
        }
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("kcache-zstd-train".to_owned())
            .spawn(move || train_and_publish(&shared, &samples));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the dictionary training thread");
            s.training = false;
            s.collecting = true;
        }
        None
    }

    /// Whether a dictionary is being trained.
    pub fn is_training(&self) -> bool {
        self.shared.sampler.lock().unwrap_or_else(PoisonError::into_inner).training
    }

    /// Blocks until no training runs (tests and benches: a deterministic point
    /// after which the dictionary, if any, is in use). Gives up after `timeout`.
    pub fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if !self.shared.sampler.lock().unwrap_or_else(PoisonError::into_inner).training {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Counters and the current dictionary's figures.
    pub fn stats(&self) -> CompressionStats {
        let c = &self.shared.counters;
        let current = self.current();
        CompressionStats {
            dictionary_version: current.as_ref().map_or(0, |d| d.version()),
            live_dictionaries: c.live_dictionaries.load(Relaxed),
            dictionary_bytes: c.dictionary_bytes.load(Relaxed),
            trained_ratio: current.as_ref().map_or(0.0, |d| d.trained_ratio()),
            running_ratio: current.as_ref().map_or(0.0, |d| ratio(d.raw_in.load(Relaxed), d.frames_out.load(Relaxed))),
            compressed_objects: c.compressed.load(Relaxed),
            incompressible_objects: c.incompressible.load(Relaxed),
            too_large_objects: c.too_large.load(Relaxed),
            corrupt_frames: c.corrupt_frames.load(Relaxed),
            decompressions: c.decompressions.load(Relaxed),
            trainings: c.trainings.load(Relaxed),
            train_failures: c.train_failures.load(Relaxed),
            rejected_dictionaries: c.rejected_dictionaries.load(Relaxed),
            retrains: c.retrains.load(Relaxed),
        }
    }
}

fn ratio(raw: u64, frames: u64) -> f64 {
    if frames == 0 { 0.0 } else { raw as f64 / frames as f64 }
}

/// Trains on four of every five samples and measures the ratio on the fifth, so the
/// trained ratio is what unseen objects get (a dictionary compresses its own sample
/// far better), then publishes the dictionary when it pays.
fn train_and_publish(shared: &Shared, samples: &[Vec<u8>]) {
    let c = &shared.counters;
    let version = shared.version.load(Relaxed) + 1;
    let result = train(shared, samples, version);
    let mut s = shared.sampler.lock().unwrap_or_else(PoisonError::into_inner);
    s.training = false;
    match result {
        Ok(dict) if dict.trained_ratio() >= shared.config.min_trained_ratio => {
            tracing::info!(version, ratio = dict.trained_ratio(), bytes = dict.raw_bytes(), samples = samples.len(), "zstd dictionary trained");
            c.trainings.fetch_add(1, Relaxed);
            s.failures = 0;
            *shared.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(dict));
            shared.version.store(version, Relaxed);
        }
        Ok(dict) => {
            tracing::info!(version, ratio = dict.trained_ratio(), "zstd dictionary does not pay: objects stay uncompressed");
            c.rejected_dictionaries.fetch_add(1, Relaxed);
            if shared.version.load(Relaxed) == 0 {
                shared.disabled.store(true, Relaxed);
            }
        }
        Err(e) => {
            c.train_failures.fetch_add(1, Relaxed);
            s.failures += 1;
            tracing::info!(error = %e, samples = samples.len(), failures = s.failures, "zstd dictionary training failed");
            if s.failures < MAX_TRAIN_FAILURES {
                s.collecting = true;
            } else if shared.version.load(Relaxed) == 0 {
                shared.disabled.store(true, Relaxed);
            }
        }
    }
}

fn train(shared: &Shared, samples: &[Vec<u8>], version: u64) -> Result<Dictionary, String> {
    let (held_out, training): (Vec<_>, Vec<_>) = samples.iter().enumerate().partition(|(i, _)| i % 5 == 4);
    let training: Vec<&[u8]> = training.into_iter().map(|(_, s)| s.as_slice()).collect();
    let raw = zstd::dict::from_samples(&training, shared.config.dict_bytes).map_err(|e| e.to_string())?;
    let mut dict = Dictionary::prepare(version, &raw, shared.config.level, Arc::clone(&shared.counters))
        .ok_or_else(|| "zstd refused the trained dictionary".to_owned())?;
    let (mut raw_in, mut out) = (0u64, 0u64);
    for (_, s) in held_out {
        raw_in += s.len() as u64;
        out += dict.compress(s)?.len() as u64;
    }
    dict.raw_in.store(0, Relaxed);
    dict.frames_out.store(0, Relaxed);
    dict.compressions.store(0, Relaxed);
    dict.set_trained_ratio(ratio(raw_in, out));
    Ok(dict)
}
