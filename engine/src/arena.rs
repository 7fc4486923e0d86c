//! Per-shard segment arenas that hold object bytes.
//!
//! The decoder copies each object's bytes out of the HTTP chunk exactly once,
//! into the tail of the arena's current segment (1 MiB by default). The copy is
//! a [`Bytes`] view sharing that segment: `BytesMut::with_capacity(SEGMENT)`,
//! `extend_from_slice`, `split().freeze()`, so no `unsafe` is needed and the
//! segment's memory is returned to the allocator when its last view drops.
//! Objects larger than a quarter of a segment get their own allocation, so a big
//! object never wastes the tail of a nearly-full segment.
//!
//! # Guarantees
//! * Every byte of an object lives in exactly one allocation; readers keep old
//!   segments alive for as long as they hold an [`Obj`] from them.
//! * [`Arena::stats`] counts `live_bytes` (bytes of objects whose [`Obj`] is
//!   still alive) and `segment_bytes` (capacity of segments some [`Obj`] still
//!   references, plus the open segment). A [`Bytes`] cloned out of an `Obj` with
//!   [`Obj::bytes`] keeps its segment's memory alive without being counted.
//! * Compaction is the owner's job and never moves an object behind a reader's
//!   back: [`Arena::relocate`] returns a *new* `Obj` with the same bytes and
//!   metadata in the open segment; once the owner swaps it in and every reader
//!   drops the old handle, the sparse segment is freed.
//!
//! # Compression
//! An arena given a [`Codec`] ([`Arena::with_codec`]) stores each object as the
//! codec encodes it: a zstd frame beside an uncompressed copy of the metadata once
//! the codec has a dictionary, the JSON itself before (counted in
//! [`ArenaStats::waiting_bytes`] until compaction compresses it, see
//! [`Arena::relocate`]) or when compression does not pay.
//!
//! # Compaction
//! A segment is *sparse* when it is sealed (the arena has moved on to a newer
//! segment) and fewer than `sparse_ratio` (default 0.5) of the bytes written to
//! it are still live. [`Obj::segment_is_sparse`] tells the store which objects to
//! pass to [`Arena::relocate`].
//!
//! ```
//! use kcache::arena::Arena;
//! use kcache::object::Meta;
//!
//! let mut arena = Arena::with_segment_bytes(4096);
//! let objs: Vec<_> = (0..16).map(|_| arena.store(&[b'x'; 1000], Meta::default())).collect();
//! let before = arena.stats();
//! assert_eq!(before.live_bytes, 16_000);
//! // Keep every fourth object, relocating those that sit in sparse segments.
//! let old: Vec<_> = objs.into_iter().step_by(4).collect();
//! let kept: Vec<_> = old.iter().map(|o| if o.segment_is_sparse() { arena.relocate(o) } else { o.clone() }).collect();
//! drop(old); // the store swaps in the relocated handles; readers drop the old ones
//! assert_eq!(arena.stats().live_bytes, 4_000);
//! assert!(arena.stats().segment_bytes < before.segment_bytes);
//! # drop(kept);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::{Bytes, BytesMut};

use crate::compress::{Codec, CompressionStats, Dictionary, Encoded, InternStats, Interner, detach_meta};
use crate::object::{Body, Meta, Obj};

/// Default segment size: 1 MiB.
pub const DEFAULT_SEGMENT_BYTES: usize = 1 << 20;

/// Default live ratio under which a sealed segment counts as sparse.
pub const DEFAULT_SPARSE_RATIO: f64 = 0.5;

/// Counters shared by an arena, its clones and every segment they created.
#[derive(Debug)]
struct Shared {
    live_bytes: AtomicUsize,
    segment_bytes: AtomicUsize,
    segments: AtomicUsize,
    next_id: AtomicU64,
    sparse_ratio: f64,
    compressed_bytes: AtomicUsize,
    uncompressed_bytes: AtomicUsize,
    waiting_bytes: AtomicUsize,
    /// The metadata compressed objects share (see [`crate::compress`]).
    interner: Interner,
}

/// What a guard's bytes are, for the compression accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Plain,
    /// Uncompressed, stored by a compressing arena before it had a dictionary.
    Waiting,
    /// A frame of this many bytes of JSON (`u32`: the guard fits in 24 bytes, and
    /// an object's header in mimalloc's 256-byte class).
    Frame(u32),
}

/// One allocation objects are carved from.
#[derive(Debug)]
struct Segment {
    id: u64,
    capacity: usize,
    /// Bytes handed out from this segment so far.
    used: AtomicUsize,
    /// Bytes of objects whose guard is still alive; `live <= used`.
    live: AtomicUsize,
    /// Set once the arena stops appending here; only sealed segments are sparse.
    sealed: AtomicBool,
    shared: Arc<Shared>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.shared.segment_bytes.fetch_sub(self.capacity, Relaxed);
        self.shared.segments.fetch_sub(1, Relaxed);
    }
}

/// Keeps one object's bytes counted as live in its segment until dropped.
///
/// Stored inside [`Obj`]; dropping the last clone of the `Obj` drops the guard.
#[derive(Debug)]
pub struct SegmentGuard {
    seg: Arc<Segment>,
    len: usize,
    form: Form,
}

impl SegmentGuard {
    /// The id of the segment holding the object (unique within an arena and its clones).
    pub fn segment_id(&self) -> u64 {
        self.seg.id
    }

    /// Whether the bytes are an object stored uncompressed by a compressing arena
    /// before it had a dictionary.
    pub(crate) fn is_waiting(&self) -> bool {
        self.form == Form::Waiting
    }

    /// The length of the JSON the bytes are a zstd frame of, when they are one.
    pub(crate) fn frame_json_len(&self) -> Option<usize> {
        match self.form {
            Form::Frame(raw) => Some(raw as usize),
            Form::Plain | Form::Waiting => None,
        }
    }

    /// Whether the segment is sealed and less than the arena's sparse ratio of it is live.
    pub fn segment_is_sparse(&self) -> bool {
        let s = &self.seg;
        if !s.sealed.load(Relaxed) {
            return false;
        }
        let used = s.used.load(Relaxed);
        (s.live.load(Relaxed) as f64) < used as f64 * s.shared.sparse_ratio
    }
}

impl Drop for SegmentGuard {
    fn drop(&mut self) {
        self.seg.live.fetch_sub(self.len, Relaxed);
        let shared = &self.seg.shared;
        shared.live_bytes.fetch_sub(self.len, Relaxed);
        match self.form {
            Form::Plain => {}
            Form::Waiting => {
                shared.waiting_bytes.fetch_sub(self.len, Relaxed);
            }
            Form::Frame(raw) => {
                shared.compressed_bytes.fetch_sub(self.len, Relaxed);
                shared.uncompressed_bytes.fetch_sub(raw as usize, Relaxed);
            }
        }
    }
}

/// A snapshot of an arena's memory accounting (shared by its clones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Bytes of objects that still have a live [`Obj`].
    pub live_bytes: usize,
    /// Capacity of all segments still allocated (including the open one).
    pub segment_bytes: usize,
    /// Number of segments still allocated.
    pub segments: usize,
    /// Of `live_bytes`, bytes of zstd frames.
    pub compressed_bytes: usize,
    /// JSON bytes those frames decompress to.
    pub uncompressed_bytes: usize,
    /// Of `live_bytes`, uncompressed objects a compressing arena stored before it had
    /// a dictionary: compaction compresses them once it has one.
    pub waiting_bytes: usize,
}

/// A segment arena for object bytes. See the [module docs](self).
///
/// Cloning gives a new arena with its own open segment that shares the
/// statistics of the original, so per-shard arenas can report one total.
#[derive(Debug)]
pub struct Arena {
    segment_bytes: usize,
    /// The unused tail of the open segment.
    tail: BytesMut,
    open: Option<Arc<Segment>>,
    shared: Arc<Shared>,
    codec: Option<Codec>,
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

impl Clone for Arena {
    fn clone(&self) -> Self {
        Arena {
            segment_bytes: self.segment_bytes,
            tail: BytesMut::new(),
            open: None,
            shared: self.shared.clone(),
            codec: self.codec.clone(),
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        self.seal();
    }
}

impl Arena {
    /// An arena with 1 MiB segments and a 0.5 sparse ratio.
    pub fn new() -> Self {
        Arena::with_config(DEFAULT_SEGMENT_BYTES, DEFAULT_SPARSE_RATIO)
    }

    /// An arena with the given segment size (at least 64 bytes).
    pub fn with_segment_bytes(segment_bytes: usize) -> Self {
        Arena::with_config(segment_bytes, DEFAULT_SPARSE_RATIO)
    }

    /// An arena with the given segment size and sparse ratio (clamped to `0.0..=1.0`).
    pub fn with_config(segment_bytes: usize, sparse_ratio: f64) -> Self {
        let sparse_ratio = if sparse_ratio.is_nan() { DEFAULT_SPARSE_RATIO } else { sparse_ratio.clamp(0.0, 1.0) };
        Arena {
            segment_bytes: segment_bytes.max(64),
            tail: BytesMut::new(),
            open: None,
            shared: Arc::new(Shared {
                live_bytes: AtomicUsize::new(0),
                segment_bytes: AtomicUsize::new(0),
                segments: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                sparse_ratio,
                compressed_bytes: AtomicUsize::new(0),
                uncompressed_bytes: AtomicUsize::new(0),
                waiting_bytes: AtomicUsize::new(0),
                interner: Interner::new(),
            }),
            codec: None,
        }
    }

    /// This arena (and the clones made from it afterwards) compressing with `codec`.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// The codec, when the arena compresses.
    pub fn codec(&self) -> Option<&Codec> {
        self.codec.as_ref()
    }

    /// The metadata sets the arena's compressed objects share: how many, and their bytes.
    pub fn interned_meta(&self) -> InternStats {
        self.shared.interner.stats()
    }

    /// The codec's counters, when the arena compresses.
    pub fn compression_stats(&self) -> Option<CompressionStats> {
        self.codec.as_ref().map(Codec::stats)
    }

    /// Current accounting, summed over this arena and its clones.
    pub fn stats(&self) -> ArenaStats {
        ArenaStats {
            live_bytes: self.shared.live_bytes.load(Relaxed),
            segment_bytes: self.shared.segment_bytes.load(Relaxed),
            segments: self.shared.segments.load(Relaxed),
            compressed_bytes: self.shared.compressed_bytes.load(Relaxed),
            uncompressed_bytes: self.shared.uncompressed_bytes.load(Relaxed),
            waiting_bytes: self.shared.waiting_bytes.load(Relaxed),
        }
    }

    fn new_segment(&self, capacity: usize) -> Arc<Segment> {
        self.shared.segment_bytes.fetch_add(capacity, Relaxed);
        self.shared.segments.fetch_add(1, Relaxed);
        Arc::new(Segment {
            id: self.shared.next_id.fetch_add(1, Relaxed),
            capacity,
            used: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            sealed: AtomicBool::new(false),
            shared: self.shared.clone(),
        })
    }

    fn seal(&mut self) {
        if let Some(seg) = self.open.take() {
            seg.sealed.store(true, Relaxed);
        }
        self.tail = BytesMut::new();
    }

    /// Copies the concatenation of `parts` into the arena once.
    ///
    /// Taking several parts lets the decoder store an object minus a cut range
    /// (for example `metadata.managedFields`) without an intermediate buffer.
    pub fn alloc(&mut self, parts: &[&[u8]]) -> (Bytes, SegmentGuard) {
        self.alloc_as(parts, Form::Plain)
    }

    fn alloc_as(&mut self, parts: &[&[u8]], form: Form) -> (Bytes, SegmentGuard) {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if n > self.segment_bytes / 4 {
            // A big object gets an allocation of its own, sealed at once: it is
            // freed as soon as its last reader lets go.
            let seg = self.new_segment(n);
            seg.sealed.store(true, Relaxed);
            let mut buf = Vec::with_capacity(n);
            for p in parts {
                buf.extend_from_slice(p);
            }
            return (Bytes::from(buf), self.account(seg, n, form));
        }
        let seg = match &self.open {
            // `tail` is empty after every split, so its capacity is what is left.
            Some(s) if self.tail.capacity() >= n => s.clone(),
            _ => {
                self.seal();
                let s = self.new_segment(self.segment_bytes);
                self.open = Some(s.clone());
                self.tail = BytesMut::with_capacity(self.segment_bytes);
                s
            }
        };
        // Never reallocates: the capacity was checked above, so the bytes land in
        // the segment and `split` hands out a view sharing it.
        for p in parts {
            self.tail.extend_from_slice(p);
        }
        let bytes = self.tail.split().freeze();
        (bytes, self.account(seg, n, form))
    }

    fn account(&self, seg: Arc<Segment>, n: usize, form: Form) -> SegmentGuard {
        seg.used.fetch_add(n, Relaxed);
        seg.live.fetch_add(n, Relaxed);
        self.shared.live_bytes.fetch_add(n, Relaxed);
        match form {
            Form::Plain => {}
            Form::Waiting => {
                self.shared.waiting_bytes.fetch_add(n, Relaxed);
            }
            Form::Frame(raw) => {
                self.shared.compressed_bytes.fetch_add(n, Relaxed);
                self.shared.uncompressed_bytes.fetch_add(raw as usize, Relaxed);
            }
        }
        SegmentGuard { seg, len: n, form }
    }

    /// Copies `bytes` into the arena and wraps them with `meta` (spans relative to `bytes`).
    pub fn store(&mut self, bytes: &[u8], meta: Meta) -> Obj {
        self.store_parts(&[bytes], meta)
    }

    /// Like [`Arena::store`] for bytes given as consecutive parts. With a codec, the
    /// object is compressed when the codec has a dictionary and the frame pays.
    pub fn store_parts(&mut self, parts: &[&[u8]], meta: Meta) -> Obj {
        let Some(codec) = self.codec.as_mut() else {
            let (bytes, guard) = self.alloc(parts);
            return Obj::from_arena(bytes, meta, guard, Body::Plain);
        };
        let joined;
        let src: &[u8] = match parts {
            [one] => one,
            _ => {
                joined = parts.concat();
                &joined
            }
        };
        match (codec.encode(src), u32::try_from(src.len())) {
            (Encoded::Frame(frame, dict), Ok(json_len)) => {
                let meta = detach_meta(src, &meta, &self.shared.interner);
                let (bytes, guard) = self.alloc_as(&[&frame], Form::Frame(json_len));
                Obj::from_arena(bytes, meta, guard, Body::Zstd(dict))
            }
            (encoded, _) => {
                let waiting = matches!(encoded, Encoded::Plain { waiting: true });
                let (bytes, guard) = self.alloc_as(&[src], if waiting { Form::Waiting } else { Form::Plain });
                Obj::from_arena(bytes, meta, guard, Body::Plain)
            }
        }
    }

    /// Stores a zstd `frame` of `json_len` bytes of JSON made with `dict`; `meta`'s
    /// spans must not point into the frame.
    pub(crate) fn store_frame(&mut self, frame: &[u8], json_len: usize, meta: Meta, dict: Arc<Dictionary>) -> Obj {
        let form = u32::try_from(json_len).map_or(Form::Plain, Form::Frame);
        let (bytes, guard) = self.alloc_as(&[frame], form);
        Obj::from_arena(bytes, meta, guard, Body::Zstd(dict))
    }

    /// A new handle to the same object (same JSON, same metadata) stored in this
    /// arena's open segment. The old handle stays valid; drop it (and let readers
    /// drop theirs) to free the old segment.
    ///
    /// A compressed object moves as its frame; an object waiting for compression is
    /// compressed when the arena's codec has a dictionary by now.
    pub fn relocate(&mut self, obj: &Obj) -> Obj {
        match (obj.body(), obj.frame_json_len()) {
            (Body::Zstd(dict), Some(json_len)) => {
                self.store_frame(obj.stored_bytes(), json_len, obj.meta().clone(), Arc::clone(dict))
            }
            (Body::Zstd(_), None) => {
                // Only a hand-made object is a frame without its length: it cannot be
                // read, and a copy of it would not be either.
                let (bytes, guard) = self.alloc_as(&[obj.stored_bytes()], Form::Plain);
                Obj::from_arena(bytes, obj.meta().clone(), guard, obj.body().clone())
            }
            (Body::Plain, _) if obj.awaits_compression() && self.codec.as_ref().is_some_and(Codec::has_dictionary) => {
                self.store(obj.stored_bytes(), obj.meta().clone())
            }
            (Body::Plain, _) => {
                let form = if obj.awaits_compression() { Form::Waiting } else { Form::Plain };
                let (bytes, guard) = self.alloc_as(&[obj.stored_bytes()], form);
                Obj::from_arena(bytes, obj.meta().clone(), guard, Body::Plain)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_objects_share_one_segment_and_count_as_live() {
        let mut a = Arena::with_segment_bytes(1024);
        let x = a.store(b"{\"a\":1}", Meta::default());
        let y = a.store(b"{\"b\":22}", Meta::default());
        assert_eq!(x.json(), b"{\"a\":1}");
        assert_eq!(y.json(), b"{\"b\":22}");
        assert_eq!(x.segment_id(), y.segment_id());
        assert_eq!(a.stats(), ArenaStats { live_bytes: 15, segment_bytes: 1024, segments: 1, ..ArenaStats::default() });
        drop(x);
        assert_eq!(a.stats().live_bytes, 8);
    }

    #[test]
    fn big_objects_get_their_own_allocation() {
        let mut a = Arena::with_segment_bytes(1024);
        let small = a.store(&[b'1'; 10], Meta::default());
        let big = a.store(&[b'2'; 600], Meta::default());
        assert_ne!(small.segment_id(), big.segment_id());
        assert_eq!(a.stats().segment_bytes, 1024 + 600);
        drop(big);
        assert_eq!(a.stats().segment_bytes, 1024, "a dropped big object frees its allocation");
    }

    #[test]
    fn a_full_segment_is_sealed_and_freed_when_its_objects_drop() {
        let mut a = Arena::with_segment_bytes(256);
        let first: Vec<_> = (0..4).map(|_| a.store(&[b'a'; 60], Meta::default())).collect();
        let next = a.store(&[b'b'; 60], Meta::default());
        assert_ne!(first[0].segment_id(), next.segment_id());
        assert_eq!(a.stats().segments, 2);
        assert!(!first[0].segment_is_sparse(), "a full live segment is not sparse");
        drop(first);
        assert_eq!(a.stats().segments, 1);
        assert_eq!(a.stats().live_bytes, 60);
    }

    #[test]
    fn relocating_live_objects_out_of_sparse_segments_frees_memory() {
        let mut a = Arena::with_segment_bytes(1024);
        let objs: Vec<_> = (0..400u32).map(|i| a.store(format!("{{\"i\":{i:08}}}").as_bytes(), Meta::default())).collect();
        let before = a.stats();
        assert!(before.segments >= 5, "{before:?}");
        // Keep one in ten: every sealed segment becomes sparse.
        let kept: Vec<_> = objs.into_iter().enumerate().filter(|(i, _)| i % 10 == 0).map(|(_, o)| o).collect();
        assert!(kept.iter().filter(|o| o.segment_is_sparse()).count() > 0);
        let moved: Vec<_> = kept.iter().map(|o| if o.segment_is_sparse() { a.relocate(o) } else { o.clone() }).collect();
        for (old, new) in kept.iter().zip(&moved) {
            assert_eq!(old.json(), new.json());
        }
        drop(kept);
        let after = a.stats();
        assert_eq!(after.live_bytes, moved.iter().map(|o| o.json().len()).sum::<usize>());
        assert!(after.segment_bytes < before.segment_bytes / 2, "{after:?} vs {before:?}");
    }

    #[test]
    fn clones_share_statistics_but_not_segments() {
        let mut a = Arena::with_segment_bytes(128);
        let mut b = a.clone();
        let x = a.store(b"aa", Meta::default());
        let y = b.store(b"bbb", Meta::default());
        assert_ne!(x.segment_id(), y.segment_id());
        assert_eq!(a.stats().live_bytes, 5);
        assert_eq!(b.stats().segments, 2);
    }
}
