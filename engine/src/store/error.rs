//! Errors of the store.

/// What can go wrong reading from or writing to a store.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// No indexer with that name was registered at construction.
    #[error("unknown index {index:?}")]
    UnknownIndex {
        /// The name asked for.
        index: String,
    },
    /// A shard writer was handed an object whose key another shard owns.
    #[error("key {key:?} belongs to shard {owner}, not shard {shard}")]
    WrongShard {
        /// The object's key.
        key: String,
        /// The writer's shard.
        shard: usize,
        /// The shard that owns the key.
        owner: usize,
    },
    /// `wait_for` gave up after its timeout.
    #[error("timed out waiting for resource version {want:?} (store is at {have:?})")]
    Timeout {
        /// The version waited for.
        want: String,
        /// The store's version when the wait gave up.
        have: Option<String>,
    },
    /// The writer side shut down before the store reached the version.
    #[error("store closed before reaching resource version {want:?}")]
    Closed {
        /// The version waited for.
        want: String,
    },
}
