//! Errors of framing and decoding.

/// Why a document could not be decoded.
///
/// None of these is fatal to the decoder: it stays usable for the next document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The document is not valid JSON (or not valid UTF-8) at `offset`.
    #[error("invalid json at byte {offset}: {reason}")]
    InvalidJson {
        /// Byte offset in the document where the problem was found.
        offset: usize,
        /// What was wrong there.
        reason: &'static str,
    },
    /// The document nests objects/arrays deeper than the decoder's limit.
    #[error("json nests deeper than {limit} levels at byte {offset}")]
    TooDeep {
        /// Byte offset of the container that went over the limit.
        offset: usize,
        /// The nesting limit.
        limit: usize,
    },
    /// An object has no `metadata` object.
    #[error("object has no metadata")]
    MissingMetadata,
    /// An object's metadata has no `name`.
    #[error("object metadata has no name")]
    MissingName,
    /// An object is bigger than [`crate::wire::DecoderConfig::max_object_bytes`].
    #[error("object of {size} bytes exceeds the {limit}-byte object limit")]
    ObjectTooLarge {
        /// The object's size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A watch event's `type` is none of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR.
    #[error("unknown watch event type {0:?}")]
    UnknownEventType(String),
    /// Valid JSON, but not the shape expected (for example a string `generation`).
    #[error("unexpected document shape: {0}")]
    WrongShape(&'static str),
}

/// Why the framer could not produce a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A document grew past the framer's size limit.
    ///
    /// A watch framer drops that document and carries on with the next line;
    /// a whole-document framer is poisoned until [`crate::wire::Framer::reset`].
    #[error("document of at least {size} bytes exceeds the {limit}-byte frame limit")]
    TooLarge {
        /// Bytes of the document seen so far (a lower bound on its size).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}
