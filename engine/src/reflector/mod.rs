//! The reflector: LIST then WATCH one collection and turn the bytes into events.
//!
//! * [`Source`]: where bytes come from — [`KubeSource`] (kube-client, raw
//!   streaming requests) or, in tests, [`crate::testing::MemorySource`], behind
//!   one trait so the engine's own tests exercise the same code without a network.
//! * [`Watcher`]: list then watch with bookmarks, rewatch, relist on 410, and
//!   [`Backoff`] between failures; it hands [`Event`]s to an [`EventSink`] (the
//!   informer's, normally).
//! * [`RelistTrigger`]: lets a source's owner ask for a relist at once, whole or
//!   scoped to the part of the collection that changed ([`RelistScope`]: LIST
//!   only a shard selector's slice at the watch's resourceVersion, replace only
//!   what the scope covers).
//! * [`ShardSelector`]: a KEP-5866 server-side shard selector, which
//!   [`KubeSource::shard_selector`] sends on every LIST and WATCH, and
//!   [`fnv1a64`], the hash its ranges are over.
//!
//! # Guarantees
//! * Events reach the sink in the order the server sent them, on the watcher's
//!   task; a list's objects arrive between [`Event::Init`] and
//!   [`Event::InitDone`], or the list is abandoned with
//!   [`EventSink::init_aborted`] and the sink keeps its last complete state (the
//!   informer's sink hands a first list on as it arrives: what it handed on stays,
//!   unsynced, until the next list replaces it).
//! * The watcher recovers from every failure (see [`Watcher`]'s protocol) and
//!   never hammers a failing server: each failure waits for the backoff.
//!
//! The reflector knows nothing of stores, fifos or arenas beyond the decoder it
//! is given: what happens to the events is the sink's business.

mod backoff;
mod config;
mod error;
mod relist;
mod shard_selector;
mod source;
mod watcher;

pub use backoff::Backoff;
pub use source::{BodyStream, KubeSource, Source, SourceError};
pub use config::WatcherConfig;
pub use error::{ErrorCallback, WatcherError};
pub use shard_selector::{HASH_SPACE_END, InvalidShardRange, ShardField, ShardRange, ShardSelector, fnv1a64};
pub use relist::{RelistScope, RelistTrigger};
pub use watcher::{Event, EventSink, Watcher, WatcherStats};
