//! Compressed object bodies: zstd frames made with a dictionary trained per informer.
//!
//! Objects of one kind are nearly identical, so a dictionary trained on a sample of
//! them lets zstd compress each object on its own by 10-40x, and decompress it in a
//! couple of microseconds. A compressing [`crate::arena::Arena`] carries a [`Codec`]:
//! it samples the first objects it stores, trains a [`Dictionary`] from them on a
//! thread of its own, and compresses every object it stores after that. Objects stored
//! before the dictionary existed are converted by the store's compaction
//! ([`crate::store::ShardCompactor`]).
//!
//! # Guarantees
//! * Only the body is compressed: an object's metadata (key, name, namespace, uid,
//!   resourceVersion, generation, labels, ownerReferences, deletionTimestamp, index
//!   fields) is kept uncompressed beside the frame, so the store, its indexes and every
//!   metadata accessor never decompress. Its namespace, labels and owner references
//!   are interned ([`Interner`]): the objects that share them (the pods of one
//!   ReplicaSet) hold one copy.
//! * A frame carries a content checksum and its content size; a frame that does not
//!   decompress to exactly the bytes it was made from is reported as
//!   [`CorruptBody`] and counted, never returned as another object.
//! * An object whose frame is not smaller than [`ZstdConfig::keep_below`] of its size,
//!   or larger than [`ZstdConfig::max_object_bytes`], is stored uncompressed (counted).
//! * A dictionary lives as long as an object compressed with it: objects hold its
//!   `Arc`, so retraining never invalidates a stored object.
//! * Nothing here panics on any input: training failures, sample too small, corrupt
//!   frames are counted in [`CompressionStats`].

mod body;
mod codec;
mod config;
mod dict;
mod intern;

pub use body::Json;
pub(crate) use body::detach_meta;
pub use codec::{Codec, CompressionStats, Encoded};
pub use config::{Compression, ZstdConfig};
pub use dict::{CorruptBody, Dictionary, compress_plain, decompress_plain};
pub use intern::{InternStats, Interner};
