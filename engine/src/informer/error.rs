//! Errors of informers and the shared factory.

use crate::fifo::FifoError;

/// What can go wrong starting an informer or managing its handlers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InformerError {
    /// A shard thread could not be started (the threads already started were stopped).
    #[error("cannot start the informer's shard thread {shard}: raise the process's thread limit or lower StoreConfig::shards")]
    Spawn {
        /// The shard number.
        shard: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The informer was shut down: it takes no new handler.
    #[error("the informer was shut down")]
    ShutDown,
    /// No handler is registered under that id (never added, or already removed).
    #[error("no handler is registered under id {id}")]
    UnknownHandler {
        /// The id asked for.
        id: u64,
    },
}

impl From<FifoError> for InformerError {
    fn from(e: FifoError) -> Self {
        match e {
            FifoError::Spawn { shard, source } => InformerError::Spawn { shard, source },
            FifoError::UnknownHandler { id } => InformerError::UnknownHandler { id },
            // The informer owns its fifo: it is closed only by a shutdown.
            _ => InformerError::ShutDown,
        }
    }
}
