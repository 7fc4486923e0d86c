//! The in-memory cache: lock-free reads, one writer per shard, copy-on-write indexes.
