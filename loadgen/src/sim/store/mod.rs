//! The in-memory object store: one resourceVersion counter, per-resource sorted
//! maps of serialized objects, a bounded event history and the live event fan-out.
//!
//! # Guarantees
//! * Every write does its JSON work (parse, patch, serialise) outside the state
//!   lock against the version it read, then takes the lock, checks that version
//!   is still current (else redoes the work: optimistic concurrency, as etcd's
//!   guaranteed update does), bumps the one global resourceVersion and splices
//!   it into the serialised bytes; history append and broadcast happen under
//!   the same lock, so a watcher that subscribes under the lock sees every later
//!   event exactly once and in resourceVersion order.
//! * Objects are kept as serialized JSON (`Bytes`); a `serde_json::Value` exists
//!   only while a write builds the next version, and a merge patch that leaves
//!   `spec` and the server-owned fields alone parses only what it reaches
//!   ([`super::lazy`]; same bytes out as the full path). Each event's wire frame
//!   is built once and shared by every watcher.
//! * Keys (`namespace/name`, or `name` when cluster-scoped) are kept in a
//!   `BTreeMap`, so pagination order is stable and a namespace is one key range.
//!
//! Each verb has a file of its own; the object model, write preparation, the
//! shared state and the history are the pieces they share. The watch cache
//! (what `resourceVersion=0` and not-older-than reads see, trailing the writes
//! when a lag is set) is a view of that history.

mod apply;
mod create;
mod controllers;
mod delete;
mod finalize;
mod history;
mod list;
mod managed;
mod object;
mod patch;
mod prepare;
mod state;
mod strategy;
mod update;
mod watch_cache;

pub use controllers::{Collector, Controllers};
pub(crate) use apply::ApplyRequest;
pub use delete::{
    DEFAULT_POD_GRACE_SECONDS, DeleteOptions, DeleteOutcome, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
    returns_deleted_object,
};
pub(crate) use history::{WatchSeed, WatchStart};
pub use list::ListQuery;
pub(crate) use object::{Event, ResourceId, frame};
pub use object::{EventType, Stored};
pub use patch::PatchKind;
pub use state::Store;
pub use watch_cache::WATCH_CACHE_BLOCK_TIMEOUT;
