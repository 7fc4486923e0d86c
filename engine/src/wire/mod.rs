//! From HTTP body bytes to decoded objects: framing and one-pass metadata decoding.
//!
//! ```text
//! body chunks (Bytes) -> Framer -> documents (Bytes) -> Decoder -> WatchEvent / ObjectList / Obj
//!                                                          \-> object bytes copied once into the Arena
//! ```
//!
//! * [`Framer`] cuts a chunked body into complete documents: newline-delimited
//!   watch events, or one whole LIST/GET body. Size-capped, zero-copy when a
//!   document lies inside one chunk.
//! * [`Decoder`] scans a document once. For each object it finds the byte span,
//!   the metadata kcache needs (namespace, name, uid, resourceVersion,
//!   generation, labels, ownerReferences, deletionTimestamp) and the registered
//!   index fields (JSON pointers such as `/spec/nodeName`), then copies the
//!   object's bytes into its [`crate::arena::Arena`] and returns an [`Obj`]
//!   whose [`crate::object::Meta`] holds spans into those bytes. Strings with
//!   JSON escapes are unescaped into the `Meta`'s spill buffer.
//! * [`decode_status`] reads a `meta/v1` Status (API error bodies).
//!
//! # Guarantees
//! * No input panics, overflows the stack or reads out of bounds: every byte
//!   sequence either decodes or yields a typed [`DecodeError`] / [`FrameError`].
//!   Nesting is limited to 128 levels.
//! * The whole document is validated as JSON (RFC 8259 grammar and UTF-8), so
//!   a stored object's bytes are always valid JSON and [`Obj::decode`] only
//!   fails on a type mismatch. (Lone `\uD800`-style surrogate escapes are
//!   rejected where a string is extracted, but not inside skipped values.)
//! * No DOM and no typed struct per object: per object the decoder allocates
//!   only the arena copy, the boxed label/owner/field span slices and the
//!   `Obj` itself.
//! * An object's stored bytes are its wire bytes, minus `metadata.managedFields`
//!   when [`DecoderConfig::strip_managed_fields`] is set, then passed through
//!   [`DecoderConfig::transform`]; spans always refer to the stored bytes.
//! * Watch event keys may come in any order: an `object` seen before `type` is
//!   scanned a second time once the type is known (the API server sends `type`
//!   first, so this costs nothing in practice). An event with more than one
//!   `type` member is refused ([`DecodeError::WrongShape`]).
//!
//! # Why a hand-rolled scanner rather than simd-json
//! simd-json 0.19 parses into a tape of values (strings unescaped in place in a
//! mutable copy of the input) and since 0.19 exposes the stage-1 structural
//! indexes (`simd_json::Buffers::structural_indexes`), but only as a side
//! effect of a full parse: getting an object's byte span means running stage 1
//! and stage 2 over a copy of the document and then walking the index list in
//! step with the tape. That is more work than what kcache needs, which is
//! positions of a dozen members and the extent of everything else. The scanner
//! in `scan.rs` skips uninteresting values with an 8-bytes-at-a-time (SWAR) scan
//! of string bodies and a tight grammar check for the rest, in a single pass
//! with no allocation, and runs on any target without SIMD feature detection.
//! Throughput against serde_json and simd-json typed decoding is measured by
//! `bench/benches/decode.rs`.
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use kcache::wire::{Decoder, DecoderConfig, Framer, WatchEvent};
//!
//! let mut framer = Framer::watch();
//! let mut decoder = Decoder::new(DecoderConfig { index_fields: vec!["/spec/nodeName".into()], ..Default::default() });
//! framer.push(Bytes::from_static(b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"web-0\",\"namespace\":\"default\","));
//! framer.push(Bytes::from_static(b"\"resourceVersion\":\"7\"},\"spec\":{\"nodeName\":\"node-1\"}}}\n"));
//! let doc = framer.next_document().unwrap().unwrap();
//! match decoder.decode_event(&doc).unwrap() {
//!     WatchEvent::Added(pod) => {
//!         assert_eq!(pod.key(), "default/web-0");
//!         assert_eq!(pod.field(0), Some("node-1"));
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
//!
//! [`Obj`]: crate::Obj
//! [`Obj::decode`]: crate::Obj::decode

mod decoder;
pub mod error;
mod event;
mod fields;
mod framer;
mod list;
mod metadata;
mod scan;
mod status;
mod transform;
mod values;

pub use decoder::{DEFAULT_MAX_OBJECT_BYTES, Decoder, DecoderConfig};
pub use error::{DecodeError, FrameError};
pub use event::WatchEvent;
pub use framer::{DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_MAX_FRAME_BYTES, Framer};
pub use list::ObjectList;
pub use status::{ApiStatus, decode_status};
pub use transform::Transform;
