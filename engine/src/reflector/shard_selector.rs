//! Server-side shard selectors (KEP-5866 `shardSelector`, Kubernetes 1.36
//! alpha behind the `ShardedListAndWatch` feature gate): the hash, the typed
//! selector and the expression the API server parses.
//!
//! # Guarantees
//! * [`fnv1a64`] is the hash the server uses (Go's `hash/fnv` `New64a` over
//!   the field's bytes, k8s.io/apimachinery/pkg/sharding/hash.go), so an
//!   object the server puts in a range is one [`ShardSelector::matches_value`]
//!   puts there too.
//! * [`ShardSelector::expression`] is a valid selector for the server's parser
//!   (k8s.io/apiserver/pkg/sharding/parser.go) and is exactly the canonical form
//!   the server echoes in a list's `metadata.shardInfo.selector`: bounds are
//!   `'0x'` plus 16 lowercase hex digits, or `'0x10000000000000000'` (2^64) as
//!   an end; ranges are `start` inclusive, `end` exclusive, joined by ` || `.
//! * A [`ShardSelector`] holds at least one range, every range non-empty and
//!   within `[0, 2^64]`: [`ShardSelector::new`] refuses anything else, so the
//!   server never answers a selector built here with its 500
//!   `invalid shard selector`.

use std::fmt;

/// The top of the hash space, `2^64`: the exclusive end of the last range.
pub const HASH_SPACE_END: u128 = 1 << 64;

/// 64-bit FNV-1a of `bytes` (Go's `fnv.New64a`), the hash KEP-5866 ranges are over.
///
/// ```
/// use kcache::reflector::fnv1a64;
/// assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The object field a shard selector hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShardField {
    /// `object.metadata.uid`: spreads objects evenly.
    Uid,
    /// `object.metadata.namespace`: keeps a namespace on one shard.
    Namespace,
}

impl ShardField {
    /// The CEL path the server takes (`object.metadata.uid`, ...).
    pub fn path(self) -> &'static str {
        match self {
            ShardField::Uid => "object.metadata.uid",
            ShardField::Namespace => "object.metadata.namespace",
        }
    }
}

/// One range `[start, end)` of the hash space; `end` is at most [`HASH_SPACE_END`].
/// The shard ring's ranges are this type too (`shard::HashRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardRange {
    /// Inclusive lower bound.
    pub start: u64,
    /// Exclusive upper bound; [`HASH_SPACE_END`] for the top of the space.
    pub end: u128,
}

impl ShardRange {
    /// The whole hash space.
    pub const ALL: ShardRange = ShardRange { start: 0, end: HASH_SPACE_END };

    /// Whether `hash` lies in the range.
    pub fn contains(&self, hash: u64) -> bool {
        self.start <= hash && u128::from(hash) < self.end
    }

    /// How many hashes the range holds.
    pub fn len(&self) -> u128 {
        self.end.saturating_sub(u128::from(self.start))
    }

    /// Whether the range holds no hash.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for ShardRange {
    /// `[0x…, 0x…)` in the selector's 16-digit form (17 digits for `2^64`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[0x{:016x}, 0x{:016x})", self.start, self.end)
    }
}

/// A shard selector was asked for with no range, or an empty or out-of-space one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard range [{start:#x}, {end:#x}): a selector needs at least one range with start < end <= 2^64")]
pub struct InvalidShardRange {
    /// The offending range's start (0 when there was no range).
    pub start: u64,
    /// The offending range's end (0 when there was no range).
    pub end: u128,
}

/// A KEP-5866 shard selector: one field and the ranges of its hash, OR'd.
///
/// ```
/// use kcache::reflector::{ShardField, ShardRange, ShardSelector};
/// let lower_half = ShardSelector::new(ShardField::Uid, vec![ShardRange { start: 0, end: 1 << 63 }])?;
/// assert_eq!(
///     lower_half.expression(),
///     "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')"
/// );
/// # Ok::<(), kcache::reflector::InvalidShardRange>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardSelector {
    field: ShardField,
    ranges: Vec<ShardRange>,
}

impl ShardSelector {
    /// A selector over `field` for the union of `ranges` (in the order given).
    ///
    /// # Errors
    /// [`InvalidShardRange`] when `ranges` is empty or one has `start >= end`
    /// or `end > 2^64`.
    pub fn new(field: ShardField, ranges: Vec<ShardRange>) -> Result<Self, InvalidShardRange> {
        if ranges.is_empty() {
            return Err(InvalidShardRange { start: 0, end: 0 });
        }
        if let Some(r) = ranges.iter().find(|r| u128::from(r.start) >= r.end || r.end > HASH_SPACE_END) {
            return Err(InvalidShardRange { start: r.start, end: r.end });
        }
        Ok(ShardSelector { field, ranges })
    }

    /// The hashed field.
    pub fn field(&self) -> ShardField {
        self.field
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[ShardRange] {
        &self.ranges
    }

    /// Whether a field value (a uid, a namespace) is in the selector's slice.
    pub fn matches_value(&self, value: &str) -> bool {
        let h = fnv1a64(value.as_bytes());
        self.ranges.iter().any(|r| r.contains(h))
    }

    /// The `shardSelector` query value, in the server's canonical form.
    pub fn expression(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ShardSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(" || ")?;
            }
            write!(f, "shardRange({}, '0x{:016x}', '0x{:016x}')", self.field.path(), r.start, r.end)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_of_the_space_is_written_with_17_digits() {
        let s = ShardSelector::new(
            ShardField::Namespace,
            vec![ShardRange { start: 0, end: 1 << 62 }, ShardRange { start: 0xc000_0000_0000_0000, end: HASH_SPACE_END }],
        )
        .expect("valid");
        assert_eq!(
            s.expression(),
            "shardRange(object.metadata.namespace, '0x0000000000000000', '0x4000000000000000') || \
             shardRange(object.metadata.namespace, '0xc000000000000000', '0x10000000000000000')"
        );
    }

    #[test]
    fn ranges_hold_their_start_and_not_their_end() {
        let h = fnv1a64(b"15009c9e-01d7-4a81-bfbb-d19beab2bb8a");
        // kube-apiserver v1.36 put this uid in the lower half of the space.
        assert_eq!(h, 0x6ee8_35bf_e0e8_e42a);
        assert!(ShardRange { start: h, end: u128::from(h) + 1 }.contains(h));
        assert!(!ShardRange { start: 0, end: u128::from(h) }.contains(h));
        assert!(ShardRange::ALL.contains(u64::MAX));
    }

    #[test]
    fn empty_and_inverted_ranges_are_refused() {
        assert!(ShardSelector::new(ShardField::Uid, vec![]).is_err());
        assert!(ShardSelector::new(ShardField::Uid, vec![ShardRange { start: 5, end: 5 }]).is_err());
        assert!(ShardSelector::new(ShardField::Uid, vec![ShardRange { start: 0, end: HASH_SPACE_END + 1 }]).is_err());
    }
}
