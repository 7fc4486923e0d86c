//! Per-shard segment arenas that hold object bytes.
