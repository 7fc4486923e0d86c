//! The in-memory cache: lock-free reads, one writer per shard, copy-on-write indexes.
//!
//! [`store()`] returns a cloneable reader ([`Store`]) and the exclusive [`Writer`]. The
//! store is split into shards (default: one per core); a key always lives in shard
//! [`shard_for_key`]`(key, shards)`, and each shard has exactly one mutator, a
//! [`ShardWriter`], normally owned by that shard's fifo thread ([`crate::fifo`]).
//!
//! # Contents
//! * [Consistency](#consistency): what a read sees.
//! * [Index snapshots](#index-snapshots): how `index()` stays O(1) and cheap to update.
//! * [Resource versions](#resource-versions): `resource_version()`, `wait_for(rv)`.
//! * [Memory](#memory): what [`Store::stats`] counts.
//!
//! # Consistency
//! * **Reads see the latest applied write.** `get`, `get_by_key` and `list` read the
//!   shard's object table (`table`, lock-free: a slot, then the object): a read
//!   happens-after the write whose value it returns, with no lock.
//! * **Index lists are point-in-time snapshots.** [`Store::index`] returns a
//!   [`Snapshot`] that never changes. Each shard's part is exact for that shard at one
//!   instant; the parts of different shards are taken one after another (N is small),
//!   so two writes on two shards may be seen one without the other — exactly as if the
//!   snapshot had been taken between them on a single-threaded store, since the writes
//!   of different keys are unordered anyway. A `get` right after may already return a
//!   newer version than the snapshot holds.
//! * **`list()` is a weak snapshot**: each object is returned at some version it had
//!   during the call.
//! * **Reads may be stale with respect to the API server**: the store shows what the
//!   watch has delivered and the shards have applied. To read your own write, call
//!   [`Store::wait_for`] with the resourceVersion the API server returned.
//! * **Objects are immutable**: every read hands out an [`Obj`](crate::Obj) handle
//!   (one `Arc`), never a copy, and nobody can mutate what the cache holds.
//!
//! # Index snapshots
//! Built-in indexes: [`NAMESPACE_INDEX`] (in the default [`StoreConfig`]),
//! [`LABEL_INDEX`] (`key=value`, [`Indexer::labels`]) and [`OWNER_INDEX`] (owner uid,
//! [`Indexer::owners`]); user indexes are [`Indexer`]s registered in [`StoreConfig`].
//! The label and owner indexes are opt-in because of the write cost below. Each shard owns its own index maps (index value -> member set), so
//! shard writers never contend; a query merges the N shard sets.
//!
//! A member set is a persistent hash trie (8-way branches, leaves of up to 8 members,
//! one allocation per node): an update copies one root-to-leaf path, about
//! `8 * log8(n)` pointers, and publishes the new root; readers that took the old root
//! keep it. The work per update grows with `log8(n)`, where an `Arc<HashSet>` clone per
//! write would be O(n); what grows in practice from 1k to 100k members is cache misses
//! on the reference counts a path copy touches (the `store` bench, group `index_update`,
//! and its `update curve` printout next to the same loop without indexes).
//!
//! The sets hold the `Obj` handles, not keys. An entry is then 16 bytes (the handle
//! plus its hash) where a key would be a 16-byte `Arc<str>` plus its hash, and a list
//! needs no lookup per member: iterating a 1,000-member snapshot is a walk over
//! contiguous leaves. The price: a write of an object re-files its handle in every set
//! it belongs to, even when its index values did not change (a path copy per set), and
//! a snapshot keeps the versions it captured alive until dropped.
//!
//! # Resource versions
//! [`Store::resource_version`] is the version up to which **every** shard has applied
//! every event. Events are applied on N shard threads, so the fifo numbers each delta
//! with a global sequence number and the store version only advances to the version of
//! the highest sequence number that all shards have passed (see [`Barrier`]); idle
//! shards do not hold it back.
//!
//! resourceVersions are opaque strings by API contract. [`Store::wait_for`] compares
//! them as integers when both parse as `u64` (true for etcd-backed servers) and
//! otherwise only accepts equality; see [`ResourceVersion`].
//!
//! # Memory
//! [`Store::stats`] reports objects, the JSON bytes they hold, and an estimate of the
//! overhead (map entries, keys, decoded metadata, index values and entries) computed
//! from counters the shard writers keep, so it costs O(shards) to read.

mod compact;
mod config;
mod cow;
mod error;
mod rv;
mod shard;
mod table;
#[allow(clippy::module_inception)] // the file holds the `Store` type, as tokio's sync/mutex.rs holds `Mutex`
mod store;

pub use compact::{CompactionConfig, SCAN_INTERVAL, ShardCompactor, step_budget};
pub use config::{IndexFunc, Indexer, LABEL_INDEX, NAMESPACE_INDEX, OWNER_INDEX, StoreConfig};
pub use error::StoreError;
pub use rv::{Barrier, ResourceVersion};
pub use shard::{ShardWriter, shard_for_key};
pub use store::{Snapshot, SnapshotIter, Store, StoreStats, Writer, store};

pub(crate) use shard::write_key;
