//! Typed views: kube-rs's `Store<K>` and `ObjectRef<K>` over kcache's untyped store.
//!
//! A kube-rs controller reads `Arc<K>` from `kube::runtime::reflector::Store<K>`,
//! which holds every object decoded. kcache's [`crate::Store`] holds each object's
//! JSON bytes ([`crate::Obj`]); [`Store<K>`] is the typed view over it, with kube-rs's
//! names where the concept is the same (`get`, `state`, `state_filter`, `find`,
//! `len`, `is_empty`, `wait_until_ready`, [`ObjectRef<K>`]), so that moving a reader
//! from kube-rs takes a change of `use` line and of the store's construction.
//!
//! # Guarantees
//! * Lazy: an object is decoded when it is read, never when it is written, and only
//!   a bounded number of recently read decodes are kept ([`DEFAULT_CACHE_CAPACITY`]:
//!   one per ten stored objects; [`Store::with_cache`]), never a decoded copy of
//!   every object.
//! * Never stale: every read looks the object up in the store first and returns a
//!   kept decode only when it was made from that same version (resourceVersion and
//!   length); otherwise it decodes again. A deleted object reads as `None`.
//! * Never a panic on bad data: an object that does not decode as `K` is a
//!   [`DecodeError`] from `try_get`, a `None` (logged) from `get`, and left out of
//!   `state`/`find`.
//! * `wait_until_ready` resolves once the informer's first list is in the store, and
//!   fails with [`WriterDropped`] if the informer shuts down first.
//!
//! How decodes are kept was decided from the `typed_get` bench; the figures are in
//! docs/ARCHITECTURE.md, "Typed views".

mod cache;
mod error;
mod object_ref;
mod store;

pub use cache::{CacheStats, Capacity};
pub use error::{DecodeError, WriterDropped};
pub use object_ref::ObjectRef;
pub use store::{DEFAULT_CACHE_CAPACITY, Store};
