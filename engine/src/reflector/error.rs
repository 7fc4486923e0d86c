//! Why a list or watch attempt failed, and the hook that hears of it.

use std::sync::Arc;
use std::time::Duration;

use super::SourceError;
use crate::wire::{DecodeError, FrameError};

/// Why one watch or list attempt failed (the watcher recovers from all of them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatcherError {
    /// The LIST request failed.
    #[error("list failed")]
    List(#[source] SourceError),
    /// The WATCH request failed.
    #[error("watch failed")]
    Watch(#[source] SourceError),
    /// The watch stream broke mid-body.
    #[error("watch stream broke")]
    Stream(#[source] SourceError),
    /// A watch frame or a list body could not be decoded.
    #[error("could not decode {}", match key { Some(k) => format!("object key={k}"), None => "a response".to_owned() })]
    Decode {
        /// `namespace/name` (or `name`) of the object that failed, when its
        /// metadata could still be read; `None` when the document is not JSON
        /// or names no object.
        key: Option<String>,
        /// What was wrong.
        #[source]
        source: DecodeError,
    },
    /// A watch frame was over the size limit.
    #[error("watch frame rejected")]
    Frame(#[source] FrameError),
    /// The server sent an ERROR event.
    #[error("watch error event {code} {reason}: {message}")]
    ErrorEvent {
        /// HTTP-style status code from the Status object.
        code: u16,
        /// Status reason.
        reason: String,
        /// Status message.
        message: String,
    },
    /// The watch ended without delivering a single event, sooner than a second
    /// after it opened; the next watch waits for the backoff.
    #[error("watch closed after {lasted:?} without an event")]
    ShortWatch {
        /// How long the watch was open.
        lasted: Duration,
    },
    /// A streaming list sent no `k8s.io/initial-events-end` bookmark within
    /// [`WatcherConfig::initial_events_timeout`](super::WatcherConfig::initial_events_timeout): the server ignores
    /// `sendInitialEvents`; the watcher lists with LIST from now on.
    #[error("no initial-events-end bookmark within {after:?}: the server ignores sendInitialEvents; falling back to paginated LIST")]
    InitialEventsTimeout {
        /// How long the watcher waited.
        after: Duration,
    },
    /// The collection holds more objects than [`WatcherConfig::max_objects`](super::WatcherConfig::max_objects):
    /// the list or watch was abandoned and the cache left as it was.
    #[error(
        "collection has at least {seen} objects, over the limit of {limit}: raise WatcherConfig::max_objects or narrow the label/field selector"
    )]
    TooManyObjects {
        /// The configured limit.
        limit: usize,
        /// Objects counted (or announced by the server's `remainingItemCount`)
        /// when reading stopped: the collection holds at least this many.
        seen: usize,
    },
}

/// A hook called with every error a watcher recovers from
/// ([`WatcherConfig::on_error`](super::WatcherConfig::on_error)).
pub type ErrorCallback = Arc<dyn Fn(&WatcherError) + Send + Sync>;
