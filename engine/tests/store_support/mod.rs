//! Helpers shared by the store and fifo tests (objects come from `kcache::object::testing`).
#![allow(dead_code)]

/// A name in namespace `ns` whose key lands on shard `shard` of `n`, distinct per `i`.
pub fn name_on_shard(ns: &str, shard: usize, n: usize, i: usize) -> String {
    (0..)
        .map(|j| format!("p{i}-{j}"))
        .find(|name| kcache::store::shard_for_key(&format!("{ns}/{name}"), n) == shard)
        .unwrap_or_default()
}
