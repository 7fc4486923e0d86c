//! `CachedClient`: reads from informer caches, writes straight to the API server.
//!
//! # Guarantees
//! * `get`/`list` are answered from the store once the resource's informer has
//!   synced, and from the API server before that (so the first calls are
//!   correct, just slower).
//! * Writes (`create`, `replace`, `patch`, `delete`, `apply`, and the `status`
//!   subresource's `replace_status`, `patch_status`, `apply_status`) always go
//!   to the API server; the cache catches up through the watch. Every write of
//!   a kind whose informer this client started and that has synced returns
//!   only once that informer's store holds the write's resourceVersion (or,
//!   for a delete that removed the object, no longer holds the key), so a read
//!   right after a write sees it: read-your-writes, bounded by
//!   [`CachedClient::with_write_wait`].
//! * Every verb works for namespaced and cluster-scoped kinds: the namespace
//!   is an `Option` (a plain `&str` is accepted too), and `None` addresses a
//!   cluster-scoped object.
//! * Typed kinds (k8s-openapi) and dynamic ones (`DynamicObject` with an
//!   `ApiResource`, e.g. a custom resource) take the same paths.

mod cached;
mod dynamic;
mod write;

pub use cached::{CachedClient, ClientError, ListOptions};
