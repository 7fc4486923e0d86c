//! Errors of the work queue.

use std::fmt;

/// Why [`WorkQueue::try_add`](super::WorkQueue::try_add) refused a key; the key is
/// handed back.
///
/// [`WorkQueue::add`](super::WorkQueue::add) drops the key silently instead, as
/// client-go's `Add` does after `ShutDown`.
#[derive(thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddError<K> {
    /// The queue is shutting down; it accepts no new keys.
    #[error("work queue is shutting down; the key was not added")]
    ShuttingDown(K),
}

impl<K> AddError<K> {
    /// The key that was not added.
    pub fn into_inner(self) -> K {
        match self {
            AddError::ShuttingDown(k) => k,
        }
    }
}

impl<K> fmt::Debug for AddError<K> {
    // Keys need not be Debug; the variant says what went wrong.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::ShuttingDown(_) => f.write_str("ShuttingDown(..)"),
        }
    }
}
