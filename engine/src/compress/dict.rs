//! A trained zstd dictionary, prepared for both directions, and the per-thread
//! contexts that use it.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
