//! Errors of the fifo.

use super::Delta;

/// What can go wrong pushing into or running a fifo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FifoError {
    /// The fifo was closed; the refused delta is handed back.
    #[error("fifo closed: delta for {key:?} refused")]
    Closed {
        /// The key of the refused delta.
        key: String,
        /// The refused delta, when the call carried one.
        delta: Option<Box<Delta>>,
    },
    /// A shard thread could not be started.
    #[error("cannot spawn fifo shard thread {shard}")]
    Spawn {
        /// The shard number.
        shard: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No handler is registered under that id.
    #[error("unknown handler id {id}")]
    UnknownHandler {
        /// The id asked for.
        id: u64,
    },
}
