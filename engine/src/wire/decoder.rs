//! The decoder and its configuration: what is extracted from each object, where
//! objects are stored, and the single-object entry point.

use std::fmt;
use std::sync::Arc;

use super::error::DecodeError;
use super::fields::Trie;
use super::metadata::Work;
use super::scan::{R, Scanner};
use super::transform::Transform;
use crate::arena::Arena;
use crate::object::Obj;

/// Default [`DecoderConfig::max_object_bytes`]: 16 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 16 << 20;

/// Spans are `u32` with the top bit marking the spill buffer: objects must stay under 2 GiB.
const SPAN_LIMIT: usize = (1 << 31) - 1;

/// What the decoder extracts and how it stores objects.
///
/// ```
/// use kcache::wire::{Decoder, DecoderConfig};
/// let cfg = DecoderConfig {
///     index_fields: vec!["/spec/nodeName".into(), "/status/phase".into()],
///     strip_managed_fields: true,
///     ..DecoderConfig::default()
/// };
/// let mut dec = Decoder::new(cfg);
/// let pod = dec.decode_object(br#"{"metadata":{"name":"a","managedFields":[{}]},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}"#).unwrap();
/// assert_eq!(pod.field(0), Some("n1"));
/// assert_eq!(pod.field(1), Some("Running"));
/// assert_eq!(pod.json(), br#"{"metadata":{"name":"a"},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}"#);
/// ```
#[derive(Clone)]
pub struct DecoderConfig {
    /// RFC 6901 JSON pointers (e.g. `/spec/nodeName`) whose values are extracted
    /// into [`Obj::field`], in this order. A pointer that resolves to a string,
    /// number or boolean yields its text (strings unescaped, numbers and booleans
    /// as written); anything else, or an invalid pointer (not starting with `/`),
    /// yields `None`. Numeric tokens also index arrays (`/spec/containers/0/image`).
    pub index_fields: Vec<String>,
    /// Remove `metadata.managedFields` from the stored bytes (often 30-40% of a pod).
    pub strip_managed_fields: bool,
    /// Optional hook on each object's bytes before they are stored; see [`Transform`].
    pub transform: Option<Transform>,
    /// Largest object (as stored) accepted; bigger ones are [`DecodeError::ObjectTooLarge`].
    /// Values above 2 GiB are clamped (spans are 31-bit).
    pub max_object_bytes: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            index_fields: Vec::new(),
            strip_managed_fields: false,
            transform: None,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        }
    }
}

impl fmt::Debug for DecoderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecoderConfig")
            .field("index_fields", &self.index_fields)
            .field("strip_managed_fields", &self.strip_managed_fields)
            .field("transform", &self.transform.as_ref().map(|_| "Fn(&mut Vec<u8>)"))
            .field("max_object_bytes", &self.max_object_bytes)
            .finish()
    }
}

pub(super) struct Compiled {
    pub(super) config: DecoderConfig,
    pub(super) trie: Trie,
    pub(super) max_object_bytes: usize,
}

/// Decodes documents into [`Obj`]s stored in its [`Arena`]. See the [module docs](crate::wire).
///
/// `Clone` gives a decoder with the same configuration and a clone of the arena
/// (its own open segment, shared statistics); it is `Send`, so each shard or
/// stream can own one.
pub struct Decoder {
    pub(super) dc: Arc<Compiled>,
    pub(super) arena: Arena,
    pub(super) work: Work,
}

impl Clone for Decoder {
    fn clone(&self) -> Self {
        Decoder { dc: self.dc.clone(), arena: self.arena.clone(), work: Work::default() }
    }
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder").field("config", &self.dc.config).field("arena", &self.arena.stats()).finish()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DecoderConfig::default())
    }
}

impl Decoder {
    /// A decoder with its own arena (1 MiB segments).
    pub fn new(config: DecoderConfig) -> Self {
        Decoder::with_arena(config, Arena::new())
    }

    /// A decoder that stores objects in `arena`.
    pub fn with_arena(config: DecoderConfig, arena: Arena) -> Self {
        let trie = Trie::build(&config.index_fields);
        let max_object_bytes = config.max_object_bytes.min(SPAN_LIMIT);
        Decoder { dc: Arc::new(Compiled { config, trie, max_object_bytes }), arena, work: Work::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.dc.config
    }

    /// The position of `pointer` among the registered index fields (for [`Obj::field`]).
    pub fn index_field(&self, pointer: &str) -> Option<usize> {
        self.dc.config.index_fields.iter().position(|p| p == pointer)
    }

    /// The arena objects are stored in.
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The arena, for compaction ([`Arena::relocate`]).
    pub fn arena_mut(&mut self) -> &mut Arena {
        &mut self.arena
    }

    /// Decodes a single object (a GET, create, update or delete response).
    pub fn decode_object(&mut self, doc: &[u8]) -> Result<Obj, DecodeError> {
        self.decode_object_with(doc, true)
    }

    pub(super) fn decode_object_with(&mut self, doc: &[u8], transform: bool) -> R<Obj> {
        let dc = self.dc.clone();
        let mut sc = Scanner::new(doc);
        let (a, b) = self.work.object(&mut sc, &dc, 0)?;
        sc.end()?;
        self.store(doc, a, b, transform)
    }
}
