//! A codec shared by an informer's arenas: sampling, training and retraining of the
//! dictionary, and the counters of what compression did.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::ZstdConfig;
use super::dict::{self, Dictionary, TrainParams};

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

/// Objects sampled for training, laid end to end so that zstd trains on them
/// without another copy. Every fifth object is held out of training: the trained
/// ratio is measured on objects the dictionary has not seen (it compresses its own
/// sample far better).
#[derive(Debug, Default)]
struct Sample {
    /// In the order the objects came; after [`Sample::hold_out`], the held-out ones
    /// follow the others.
    bytes: Vec<u8>,
    sizes: Vec<usize>,
    /// Objects and bytes at the start that zstd trains on, once held out.
    training_objects: usize,
    training_bytes: usize,
}

impl Sample {
    /// Appends `src`. The buffer doubles as a `Vec` does, but not past `cap_bytes`
    /// and the object that reaches it: a sample that the byte cap ends does not hold
    /// up to twice its bytes until training ends.
    fn push(&mut self, src: &[u8], cap_bytes: usize) {
        let needed = self.bytes.len().saturating_add(src.len());
        if needed > self.bytes.capacity() {
            let capacity = needed.max(self.bytes.capacity().saturating_mul(2).min(cap_bytes.saturating_add(src.len())));
            self.bytes.reserve_exact(capacity - self.bytes.len());
        }
        self.bytes.extend_from_slice(src);
        self.sizes.push(src.len());
    }

    /// Objects sampled.
    fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Bytes of the objects sampled.
    fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Moves every fifth object (the 5th, the 10th, ...) after the others, in place
    /// but for a copy of the held-out fifth.
    fn hold_out(&mut self) {
        let mut held_out = Vec::with_capacity(self.bytes.len() / 4);
        let mut held_out_sizes = Vec::with_capacity(self.sizes.len() / 5);
        let mut sizes = Vec::with_capacity(self.sizes.len());
        let (mut read, mut write) = (0, 0);
        for (i, &n) in self.sizes.iter().enumerate() {
            if i % 5 == 4 {
                held_out.extend_from_slice(&self.bytes[read..read + n]);
                held_out_sizes.push(n);
            } else {
                self.bytes.copy_within(read..read + n, write);
                sizes.push(n);
                write += n;
            }
            read += n;
        }
        self.bytes[write..].copy_from_slice(&held_out);
        self.training_objects = sizes.len();
        self.training_bytes = write;
        sizes.extend_from_slice(&held_out_sizes);
        self.sizes = sizes;
    }

    /// The objects trained on, end to end, and their sizes.
    fn training(&self) -> (&[u8], &[usize]) {
        (&self.bytes[..self.training_bytes], &self.sizes[..self.training_objects])
    }

    /// The held-out objects, one slice each.
    fn held_out(&self) -> impl Iterator<Item = &[u8]> {
        self.sizes[self.training_objects..].iter().scan(self.training_bytes, |at, &n| {
            let object = self.bytes.get(*at..*at + n);
            *at += n;
            object
        })
    }
}

#[derive(Debug, Default)]
struct Sampler {
    sample: Sample,
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
                    s.sample = Sample::default();
                }
            }
        }
        self.offer(src);
    }

    /// Adds `src` to the sample when one is collected; trains once it is full
    /// ([`ZstdConfig::sample_objects`] objects or [`ZstdConfig::sample_bytes`] bytes).
    fn offer(&self, src: &[u8]) {
        let mut s = self.shared.sampler.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.collecting {
            return;
        }
        s.sample.push(src, self.shared.config.sample_bytes);
        let config = &self.shared.config;
        if (s.sample.len() >= config.sample_objects || s.sample.bytes() >= config.sample_bytes)
            && let Some(sample) = self.start_training(&mut s)
        {
            drop(s);
            train_and_publish(&self.shared, sample);
        }
    }

    /// The initial list is complete: train from what was sampled, even when it is
    /// fewer than `sample_objects` (but not fewer than `min_sample_objects`).
    pub fn list_done(&self) {
        let mut s = self.shared.sampler.lock().unwrap_or_else(PoisonError::into_inner);
        if s.collecting
            && self.shared.version.load(Relaxed) == 0
            && let Some(sample) = self.start_training(&mut s)
        {
            drop(s);
            train_and_publish(&self.shared, sample);
        }
    }

    /// Takes the sample for training: returns it when the caller trains inline
    /// ([`ZstdConfig::train_inline`]), else trains on a thread of its own.
    fn start_training(&self, s: &mut Sampler) -> Option<Sample> {
        if s.training || s.sample.len() < self.shared.config.min_sample_objects {
            return None;
        }
        s.collecting = false;
        s.training = true;
        let sample = std::mem::take(&mut s.sample);
        if self.shared.config.train_inline {
            return Some(sample);
        }
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("kcache-zstd-train".to_owned())
            .spawn(move || train_and_publish(&shared, sample));
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
fn train_and_publish(shared: &Shared, mut sample: Sample) {
    let c = &shared.counters;
    let version = shared.version.load(Relaxed) + 1;
    let (samples, sample_bytes) = (sample.len(), sample.bytes());
    let started = std::time::Instant::now();
    let result = train(shared, &mut sample, version);
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    drop(sample);
    let mut s = shared.sampler.lock().unwrap_or_else(PoisonError::into_inner);
    s.training = false;
    match result {
        Ok(dict) if dict.trained_ratio() >= shared.config.min_trained_ratio => {
            tracing::info!(version, ratio = dict.trained_ratio(), bytes = dict.raw_bytes(), samples, sample_bytes, millis, "zstd dictionary trained");
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
            tracing::info!(error = %e, samples, failures = s.failures, "zstd dictionary training failed");
            if s.failures < MAX_TRAIN_FAILURES {
                s.collecting = true;
            } else if shared.version.load(Relaxed) == 0 {
                shared.disabled.store(true, Relaxed);
            }
        }
    }
}

fn train(shared: &Shared, sample: &mut Sample, version: u64) -> Result<Dictionary, String> {
    let config = &shared.config;
    sample.hold_out();
    let (training, sizes) = sample.training();
    let raw = dict::train(training, sizes, config.dict_bytes, config.level, TrainParams::DEFAULT)?;
    let mut dict = Dictionary::prepare(version, &raw, config.level, Arc::clone(&shared.counters))
        .ok_or_else(|| "zstd refused the trained dictionary".to_owned())?;
    drop(raw);
    let (mut raw_in, mut out) = (0u64, 0u64);
    for s in sample.held_out() {
        raw_in += s.len() as u64;
        out += dict.compress(s)?.len() as u64;
    }
    dict.raw_in.store(0, Relaxed);
    dict.frames_out.store(0, Relaxed);
    dict.compressions.store(0, Relaxed);
    dict.set_trained_ratio(ratio(raw_in, out));
    Ok(dict)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects of one size (the numbers are fixed-width) sharing most of their bytes.
    fn object(i: usize) -> Vec<u8> {
        format!(
            r#"{{"metadata":{{"name":"web-{i:06}","namespace":"ns-{:02}","uid":"{:016x}"}},"spec":{{"nodeName":"node-{:03}","image":"registry.example.com/web:1.4.2","restartPolicy":"Always","dnsPolicy":"ClusterFirst"}},"status":{{"phase":"Running","podIP":"10.1.{:03}.{:03}"}}}}"#,
            i % 7,
            (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            i % 13,
            i / 250 % 1000,
            i % 250
        )
        .into_bytes()
    }

    fn codec(config: ZstdConfig) -> Codec {
        Codec::new(ZstdConfig { train_inline: true, ..config })
    }

    #[test]
    fn the_sample_is_laid_end_to_end_and_every_fifth_object_is_held_out() {
        let mut sample = Sample::default();
        // Objects of different sizes, so that a misplaced boundary shows.
        let objects: Vec<Vec<u8>> = (0..12).map(|i| [object(i), vec![b' '; i * 3]].concat()).collect();
        for o in &objects {
            sample.push(o, usize::MAX);
        }
        assert_eq!((sample.len(), sample.bytes()), (12, objects.iter().map(Vec::len).sum()));
        assert_eq!(sample.bytes, objects.concat(), "in the order they came");
        sample.hold_out();
        let (training, sizes) = sample.training();
        let expected: Vec<&Vec<u8>> = objects.iter().enumerate().filter(|(i, _)| i % 5 != 4).map(|(_, o)| o).collect();
        assert_eq!(training, expected.iter().flat_map(|o| o.iter().copied()).collect::<Vec<u8>>());
        assert_eq!(sizes, expected.iter().map(|o| o.len()).collect::<Vec<_>>());
        let held_out: Vec<&[u8]> = sample.held_out().collect();
        assert_eq!(held_out, vec![objects[4].as_slice(), objects[9].as_slice()]);
        assert_eq!(sample.bytes(), objects.iter().map(Vec::len).sum::<usize>(), "nothing lost");
    }

    #[test]
    fn the_trained_ratio_is_measured_on_held_out_objects_only() {
        // Every fifth object is noise: a ratio measured on the others would pass
        // `min_trained_ratio`, the one measured on the held-out fifth cannot.
        let noise = |_| -> Vec<u8> { (0..1500).map(|_| rand::random::<u8>()).collect() };
        let mut c = codec(ZstdConfig { sample_objects: 200, ..ZstdConfig::default() });
        for i in 0..200 {
            let src = if i % 5 == 4 { noise(i) } else { object(i) };
            assert!(matches!(c.encode(&src), Encoded::Plain { waiting: true }));
        }
        let s = c.stats();
        assert_eq!((s.rejected_dictionaries, s.dictionary_version), (1, 0), "{s:?}");
        // The same sample with ordinary objects in the held-out places trains a dictionary.
        let mut c = codec(ZstdConfig { sample_objects: 200, ..ZstdConfig::default() });
        for i in 0..200 {
            c.encode(&object(i));
        }
        let s = c.stats();
        assert_eq!((s.trainings, s.dictionary_version), (1, 1), "{s:?}");
        assert!(s.trained_ratio > 3.0, "{s:?}");
        assert!(matches!(c.encode(&object(500)), Encoded::Frame(..)));
    }

    #[test]
    fn a_byte_cap_ends_sampling_before_the_object_count() {
        let size = object(0).len();
        assert!((0..100).all(|i| object(i).len() == size));
        let cap = 40 * size + size / 2;
        let mut c = codec(ZstdConfig { sample_objects: 1_000, sample_bytes: cap, ..ZstdConfig::default() });
        for i in 0..40 {
            assert!(matches!(c.encode(&object(i)), Encoded::Plain { waiting: true }), "object {i}");
            assert_eq!(c.stats().dictionary_version, 0);
        }
        // The 41st object takes the sample past the cap: training starts.
        assert!(matches!(c.encode(&object(40)), Encoded::Plain { waiting: true }));
        assert_eq!(c.stats().dictionary_version, 1, "{:?}", c.stats());
        assert!(matches!(c.encode(&object(41)), Encoded::Frame(..)));
        assert!(c.shared.sampler.lock().unwrap().sample.bytes() == 0, "the sample is freed once trained");
    }

    #[test]
    fn the_sample_buffer_grows_past_the_byte_cap_by_one_object_at_most() {
        let cap = 100_000;
        let mut sample = Sample::default();
        let mut i = 0;
        while sample.bytes() < cap {
            sample.push(&object(i), cap);
            i += 1;
        }
        let size = object(0).len();
        assert!(sample.bytes.capacity() <= cap + size, "{} bytes for {}", sample.bytes.capacity(), sample.bytes());
    }

    #[test]
    fn the_object_count_still_ends_sampling_under_the_byte_cap() {
        let mut c = codec(ZstdConfig { sample_objects: 30, sample_bytes: 1 << 30, ..ZstdConfig::default() });
        for i in 0..29 {
            c.encode(&object(i));
        }
        assert_eq!(c.stats().dictionary_version, 0);
        c.encode(&object(29));
        assert_eq!(c.stats().dictionary_version, 1, "{:?}", c.stats());
    }
}
