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
    /// The [`crate::informer::SharedInformerFactory`] already runs an informer
    /// for this key with a different config: the request is refused rather
    /// than handing out an informer that is not configured as asked.
    #[error("informer {key} already runs with a different config: {} differ", differs.join(", "))]
    ConfigMismatch {
        /// The informer key (resource, namespace, selectors).
        key: String,
        /// The config fields that differ, e.g. `watcher.page_size (Some(500) != Some(100))`.
        differs: Vec<String>,
    },
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
