//! A zstd dictionary: trained from a contiguous sample, prepared for both
//! directions, and the per-thread contexts that use it.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use zstd::zstd_safe::zstd_sys::{ZDICT_fastCover_params_t, ZDICT_getErrorName, ZDICT_isError, ZDICT_optimizeTrainFromBuffer_fastCover, ZDICT_params_t};
use zstd::zstd_safe::{CCtx, CDict, CParameter, DCtx, DDict};

use super::codec::Counters;

/// A compressed body that did not decompress to the object it was made from
/// (a corrupted frame, a checksum or length mismatch).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("compressed object body is corrupt (dictionary v{dictionary}): {reason}")]
pub struct CorruptBody {
    /// Version of the dictionary the frame was made with.
    pub dictionary: u64,
    /// What zstd or the length check reported.
    pub reason: String,
}

/// A trained dictionary, prepared for compression (at one level) and decompression.
///
/// Objects compressed with it hold it in an `Arc`: an old version stays alive for as
/// long as an object needs it, whatever was trained since.
pub struct Dictionary {
    version: u64,
    cdict: CDict<'static>,
    ddict: DDict<'static>,
    /// The dictionary's own bytes.
    raw_bytes: usize,
    /// Memory of both prepared forms, as zstd reports it.
    prepared_bytes: usize,
    /// Uncompressed / compressed bytes over the sample it was trained on.
    trained_ratio: f64,
    /// Bytes in and out of every compression made with it, for the running ratio.
    pub(super) raw_in: AtomicU64,
    pub(super) frames_out: AtomicU64,
    pub(super) compressions: AtomicU64,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("version", &self.version)
            .field("raw_bytes", &self.raw_bytes)
            .field("trained_ratio", &self.trained_ratio)
            .finish_non_exhaustive()
    }
}

impl Drop for Dictionary {
    fn drop(&mut self) {
        self.counters.live_dictionaries.fetch_sub(1, Relaxed);
        self.counters.dictionary_bytes.fetch_sub(self.prepared_bytes as u64, Relaxed);
    }
}

thread_local! {
    /// One compression and one decompression context per thread that uses them:
    /// creating a context costs more than compressing a pod.
    static CCTX: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

fn with_cctx<R>(f: impl FnOnce(&mut CCtx<'static>) -> R) -> R {
    CCTX.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = c.get_or_insert_with(|| {
            let mut ctx = CCtx::create();
            // The checksum lets a corrupted frame fail instead of decoding into other
            // bytes; the dictionary id is known from the object, so not written.
            let _ = ctx.set_parameter(CParameter::ChecksumFlag(true));
            let _ = ctx.set_parameter(CParameter::ContentSizeFlag(true));
            let _ = ctx.set_parameter(CParameter::DictIdFlag(false));
            ctx
        });
        f(ctx)
    })
}

fn with_dctx<R>(f: impl FnOnce(&mut DCtx<'static>) -> R) -> R {
    DCTX.with(|c| f(c.borrow_mut().get_or_insert_with(DCtx::create)))
}

/// How zstd's fastCover trainer builds a dictionary.
///
/// It tries `steps + 1` segment sizes between 50 and 2,000 bytes, each dictionary
/// built from the first three quarters of the sample and scored by compressing the
/// last quarter, and keeps the best: what zstd's default trainer
/// (`ZDICT_trainFromBuffer`) does, with a smaller frequency table. Its work memory
/// is `10 * 2^f` bytes (a `u32` per bucket counting `d`-byte windows, a copy of it
/// per trial and a `u16` per bucket), plus two dictionaries and the contexts that
/// score them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct TrainParams {
    /// log2 of the buckets counting `d`-byte windows (zstd: 1 to 31).
    pub f: u32,
    /// Bytes of the window whose frequency scores a segment (zstd: 6 or 8).
    pub d: u32,
    /// Segment sizes tried, minus one.
    pub steps: u32,
}

impl TrainParams {
    /// What the codec trains with. zstd's default trainer has `f` = 20: 11 MiB of
    /// work memory for a 2 MiB sample, that the C allocator mostly keeps. `f` = 17
    /// needs 1.3 MiB; on generated pods its dictionaries compress as well (frames
    /// within 2% either way over four pod sets), and training is faster.
    pub(super) const DEFAULT: TrainParams = TrainParams { f: 17, d: 8, steps: 4 };
}

/// A raw dictionary of at most `capacity` bytes trained on `samples`, the objects of
/// a sample laid end to end, `sizes` the length of each; its entropy tables are
/// tuned for `level`. An error when zstd refuses the sample (fewer than 7 objects,
/// or too small) or the parameters, or when the sizes do not add up to `samples`.
pub(super) fn train(samples: &[u8], sizes: &[usize], capacity: usize, level: i32, params: TrainParams) -> Result<Vec<u8>, String> {
    if sizes.iter().try_fold(0usize, |total, &n| total.checked_add(n)) != Some(samples.len()) {
        return Err("sample sizes do not add up to the sample".to_owned());
    }
    let count = u32::try_from(sizes.len()).map_err(|_| "too many samples".to_owned())?;
    if count == 0 || samples.is_empty() {
        return Err("empty sample".to_owned());
    }
    let mut fast_cover = ZDICT_fastCover_params_t {
        // 0: tried from 50 to 2,000 bytes.
        k: 0,
        d: params.d,
        f: params.f,
        steps: params.steps,
        // One thread: training runs on the thread that filled the sample.
        nbThreads: 1,
        // 0: zstd's split, three quarters to build, one to score.
        splitPoint: 0.0,
        accel: 1,
        shrinkDict: 0,
        shrinkDictMaxRegression: 0,
        zParams: ZDICT_params_t { compressionLevel: level, notificationLevel: 0, dictID: 0 },
    };
    let mut dict = vec![0u8; capacity];
    // SAFETY: `dict` is `capacity` writable bytes; `samples` is exactly the sum of the
    // `count` lengths in `sizes` (checked above), so zstd reads no byte outside it;
    // `fast_cover` is a parameter block zstd writes the chosen parameters into. zstd
    // keeps no pointer to any of them after the call, which allocates and frees its
    // own tables.
    let written = unsafe {
        ZDICT_optimizeTrainFromBuffer_fastCover(dict.as_mut_ptr().cast(), dict.len(), samples.as_ptr().cast(), sizes.as_ptr(), count, &mut fast_cover)
    };
    // SAFETY: both take a return code; the name is a static C string.
    if unsafe { ZDICT_isError(written) } != 0 {
        let name = unsafe { std::ffi::CStr::from_ptr(ZDICT_getErrorName(written)) };
        return Err(name.to_string_lossy().into_owned());
    }
    dict.truncate(written);
    dict.shrink_to_fit();
    Ok(dict)
}

/// Worst-case frame size for `len` input bytes (zstd's `ZSTD_COMPRESSBOUND`).
fn bound(len: usize) -> usize {
    zstd::zstd_safe::compress_bound(len)
}

impl Dictionary {
    /// Prepares `raw` (a dictionary from zstd's trainer) at `level`; `None` when zstd
    /// refuses it.
    pub(super) fn prepare(version: u64, raw: &[u8], level: i32, counters: Arc<Counters>) -> Option<Dictionary> {
        let cdict = CDict::try_create(raw, level)?;
        let ddict = DDict::create(raw);
        let prepared_bytes = cdict.sizeof() + ddict.sizeof();
        counters.live_dictionaries.fetch_add(1, Relaxed);
        counters.dictionary_bytes.fetch_add(prepared_bytes as u64, Relaxed);
        Some(Dictionary {
            version,
            cdict,
            ddict,
            raw_bytes: raw.len(),
            prepared_bytes,
            trained_ratio: 0.0,
            raw_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            compressions: AtomicU64::new(0),
            counters,
        })
    }

    pub(super) fn set_trained_ratio(&mut self, ratio: f64) {
        self.trained_ratio = ratio;
    }

    /// The version: 1 for the first dictionary of a codec, +1 per retraining.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Bytes of the trained dictionary.
    pub fn raw_bytes(&self) -> usize {
        self.raw_bytes
    }

    /// Memory of the dictionary prepared for compression and decompression.
    pub fn prepared_bytes(&self) -> usize {
        self.prepared_bytes
    }

    /// Uncompressed over compressed bytes on the sample it was trained from.
    pub fn trained_ratio(&self) -> f64 {
        self.trained_ratio
    }

    /// A zstd frame of `src` (with content size and checksum), or the zstd error.
    pub fn compress(&self, src: &[u8]) -> Result<Vec<u8>, String> {
        let mut dst = Vec::with_capacity(bound(src.len()));
        with_cctx(|ctx| {
            ctx.ref_cdict(&self.cdict).map_err(zstd_error)?;
            let r = ctx.compress2(&mut dst, src).map_err(zstd_error);
            // The context must not keep a pointer to a dictionary that may be freed.
            let _ = ctx.disable_dictionary();
            r
        })?;
        self.raw_in.fetch_add(src.len() as u64, Relaxed);
        self.frames_out.fetch_add(dst.len() as u64, Relaxed);
        self.compressions.fetch_add(1, Relaxed);
        Ok(dst)
    }

    /// The `raw_len` bytes `frame` was made from. Counts and reports a frame that
    /// fails its checksum or decodes to another length.
    pub fn decompress(&self, frame: &[u8], raw_len: usize) -> Result<Vec<u8>, CorruptBody> {
        // One spare byte: a frame that decodes to more than `raw_len` fails instead of
        // being cut to the expected length.
        self.counters.decompressions.fetch_add(1, Relaxed);
        let mut dst = Vec::with_capacity(raw_len + 1);
        let r = with_dctx(|ctx| ctx.decompress_using_ddict(&mut dst, frame, &self.ddict));
        let reason = match r {
            Ok(n) if n == raw_len && dst.len() == raw_len => return Ok(dst),
            Ok(n) => format!("decoded {n} bytes, expected {raw_len}"),
            Err(code) => zstd_error(code),
        };
        self.counters.corrupt_frames.fetch_add(1, Relaxed);
        tracing::warn!(dictionary = self.version, %reason, "compressed object body failed to decompress");
        Err(CorruptBody { dictionary: self.version, reason })
    }
}

fn zstd_error(code: usize) -> String {
    zstd::zstd_safe::get_error_name(code).to_owned()
}

/// A frame of `src` without a dictionary, with this thread's reused context (for
/// comparisons; the store never uses it).
pub fn compress_plain(src: &[u8], level: i32) -> Result<Vec<u8>, String> {
    let mut dst = Vec::with_capacity(bound(src.len()));
    with_cctx(|ctx| {
        ctx.set_parameter(CParameter::CompressionLevel(level)).map_err(zstd_error)?;
        ctx.compress2(&mut dst, src).map_err(zstd_error)
    })?;
    Ok(dst)
}

/// The bytes of a frame made by [`compress_plain`], at most `capacity` of them.
pub fn decompress_plain(frame: &[u8], capacity: usize) -> Result<Vec<u8>, String> {
    let mut dst = Vec::with_capacity(capacity);
    with_dctx(|ctx| ctx.decompress(&mut dst, frame)).map_err(zstd_error)?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod-shaped object: the same keys, different names, addresses and ids.
    pub(crate) fn pod(i: usize) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("api-5d8f7b-{i:05}"), "namespace": format!("team-{}", i % 9),
                "uid": format!("{:08x}-77aa-4c1e-9b2d-{:012x}", i * 2_654_435_761 % (1 << 32), i * 40_503),
                "resourceVersion": format!("{}", 52_000 + i * 3), "labels": { "app": "api", "shard": format!("{}", i % 4) } },
            "spec": { "nodeName": format!("worker-{}", i % 17), "containers": [{ "name": "api", "image": "registry.example.com/api:2.7.1",
                "env": [{ "name": "SHARD", "value": format!("{}", i % 4) }, { "name": "LOG_LEVEL", "value": "info" }],
                "resources": { "requests": { "cpu": "250m", "memory": "256Mi" } } }] },
            "status": { "phase": "Running", "podIP": format!("10.4.{}.{}", i / 200, i % 200),
                "containerStatuses": [{ "name": "api", "ready": true, "containerID": format!("containerd://{:064x}", i * 7_919) }] }
        }))
        .unwrap()
    }

    fn laid_out(range: std::ops::Range<usize>) -> (Vec<u8>, Vec<usize>) {
        let objects: Vec<Vec<u8>> = range.map(pod).collect();
        (objects.concat(), objects.iter().map(Vec::len).collect())
    }

    fn compressed_bytes(dict: &Dictionary, range: std::ops::Range<usize>) -> (usize, usize) {
        range.map(pod).fold((0, 0), |(raw, out), p| (raw + p.len(), out + dict.compress(&p).unwrap().len()))
    }

    #[test]
    fn a_trained_dictionary_round_trips_objects_it_never_saw() {
        let (samples, sizes) = laid_out(0..200);
        let raw = train(&samples, &sizes, 16 << 10, 3, TrainParams::DEFAULT).unwrap();
        assert!(!raw.is_empty() && raw.len() <= 16 << 10, "{} bytes", raw.len());
        let dict = Dictionary::prepare(1, &raw, 3, Arc::default()).expect("zstd takes its own dictionary");
        for i in 1_000..1_050 {
            let p = pod(i);
            assert_eq!(dict.decompress(&dict.compress(&p).unwrap(), p.len()).unwrap(), p);
        }
        let (raw_in, out) = compressed_bytes(&dict, 1_000..1_100);
        assert!(raw_in > 4 * out, "{raw_in} -> {out}");
    }

    #[test]
    fn the_small_table_compresses_as_well_as_zstds_default_trainer() {
        let (samples, sizes) = laid_out(0..300);
        let small = train(&samples, &sizes, 64 << 10, 3, TrainParams::DEFAULT).unwrap();
        let default = zstd::dict::from_continuous(&samples, &sizes, 64 << 10).unwrap();
        let small = Dictionary::prepare(1, &small, 3, Arc::default()).unwrap();
        let default = Dictionary::prepare(2, &default, 3, Arc::default()).unwrap();
        let (raw, small_out) = compressed_bytes(&small, 2_000..2_200);
        let (_, default_out) = compressed_bytes(&default, 2_000..2_200);
        // Within 10% of the frames zstd's default trainer (f = 20) gets.
        assert!(small_out * 10 <= default_out * 11, "{raw} bytes: {small_out} with the small table, {default_out} with the default trainer");
    }

    #[test]
    fn bad_samples_are_refused_with_an_error_never_a_crash() {
        let (samples, sizes) = laid_out(0..20);
        let p = TrainParams::DEFAULT;
        let mut short = sizes.clone();
        short[3] += 1;
        assert!(train(&samples, &short, 16 << 10, 3, p).unwrap_err().contains("add up"));
        assert!(train(&samples, &[usize::MAX, 2], 16 << 10, 3, p).is_err(), "sizes that overflow");
        assert!(train(&[], &[], 16 << 10, 3, p).is_err());
        assert!(train(&samples[..sizes[0] + sizes[1]], &sizes[..2], 16 << 10, 3, p).is_err(), "fewer than 7 objects");
        assert!(train(&samples, &sizes, 100, 3, p).is_err(), "a dictionary under zstd's 256 bytes");
        let bad = TrainParams { f: 40, ..p };
        assert!(train(&samples, &sizes, 16 << 10, 3, bad).is_err(), "f out of range");
        let bad = TrainParams { d: 7, ..p };
        assert!(train(&samples, &sizes, 16 << 10, 3, bad).is_err(), "d must be 6 or 8");
        // Segment sizes longer than the dictionary are skipped, the shorter ones tried.
        let raw = train(&samples, &sizes, 512, 3, p).unwrap();
        assert!(raw.len() <= 512 && Dictionary::prepare(1, &raw, 3, Arc::default()).is_some());
    }
}
