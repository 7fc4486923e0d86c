//! Arithmetic on sets of hash ranges: what a membership change moved.
//!
//! # Guarantees
//! * [`difference`] returns sorted, merged, non-empty ranges holding exactly the hashes
//!   in the first set and not in the second, whatever the order or overlap of either.

use super::HashRange;

/// Sorts `ranges` and merges the ones that overlap or touch; empty ones are dropped.
pub fn normalize(ranges: &[HashRange]) -> Vec<HashRange> {
    let mut sorted: Vec<HashRange> = ranges.iter().copied().filter(|r| !r.is_empty()).collect();
    sorted.sort_unstable();
    let mut out: Vec<HashRange> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if last.end >= u128::from(r.start) => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The hashes in `a` and not in `b`: with `a` the new ranges and `b` the old, what was
/// gained; the other way round, what was lost.
///
/// ```
/// use kcache::shard::{HashRange, ranges::difference};
/// let old = [HashRange { start: 0, end: 100 }];
/// let new = [HashRange { start: 50, end: 200 }];
/// assert_eq!(difference(&new, &old), vec![HashRange { start: 100, end: 200 }]);
/// assert_eq!(difference(&old, &new), vec![HashRange { start: 0, end: 50 }]);
/// ```
pub fn difference(a: &[HashRange], b: &[HashRange]) -> Vec<HashRange> {
    let b = normalize(b);
    let mut out = Vec::new();
    for r in normalize(a) {
        let mut start = u128::from(r.start);
        for cut in &b {
            if cut.end <= start || u128::from(cut.start) >= r.end {
                continue;
            }
            if u128::from(cut.start) > start {
                push(&mut out, start, u128::from(cut.start));
            }
            start = start.max(cut.end);
        }
        if start < r.end {
            push(&mut out, start, r.end);
        }
    }
    out
}

/// How many hashes `ranges` hold, overlaps counted once.
pub fn size(ranges: &[HashRange]) -> u128 {
    normalize(ranges).iter().map(HashRange::len).sum()
}

fn push(out: &mut Vec<HashRange>, start: u128, end: u128) {
    // `start < end <= 2^64`, so `start` fits a u64.
    let start = u64::try_from(start).expect("a range start below 2^64");
    out.push(HashRange { start, end });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{DEFAULT_VNODES, Ring};

    fn r(start: u64, end: u128) -> HashRange {
        HashRange { start, end }
    }

    #[test]
    fn difference_cuts_holes_and_keeps_edges() {
        let a = [r(0, 100), r(200, 300)];
        let b = [r(10, 20), r(90, 210), r(250, 1 << 64)];
        assert_eq!(difference(&a, &b), vec![r(0, 10), r(20, 90), r(210, 250)]);
        assert_eq!(difference(&b, &a), vec![r(100, 200), r(300, 1 << 64)]);
        assert!(difference(&a, &a).is_empty());
        assert_eq!(difference(&a, &[]), a.to_vec());
        assert!(difference(&[], &a).is_empty());
        assert_eq!(difference(&[r(u64::MAX, 1 << 64)], &[r(0, u128::from(u64::MAX))]), vec![r(u64::MAX, 1 << 64)]);
    }

    #[test]
    fn normalize_merges_touching_and_overlapping_ranges() {
        assert_eq!(normalize(&[r(5, 10), r(0, 5), r(8, 12), r(20, 20), r(30, 40)]), vec![r(0, 12), r(30, 40)]);
        assert_eq!(size(&[r(0, 10), r(5, 15)]), 15);
    }

    #[test]
    fn a_join_moves_to_the_newcomer_exactly_what_the_others_lose() {
        let before = Ring::new(["a", "b", "c"], DEFAULT_VNODES);
        let after = Ring::new(["a", "b", "c", "d"], DEFAULT_VNODES);
        let mut lost_by_others = Vec::new();
        for m in ["a", "b", "c"] {
            let (old, new) = (before.ranges(m), after.ranges(m));
            assert!(difference(&new, &old).is_empty(), "{m} gains nothing when d joins");
            let lost = difference(&old, &new);
            assert_eq!(size(&old) - size(&lost), size(&new));
            lost_by_others.extend(lost);
        }
        assert_eq!(normalize(&lost_by_others), after.ranges("d"), "d gains exactly what the others lost");
        // And back: when d leaves, the others regain exactly their old ranges.
        for m in ["a", "b", "c"] {
            assert_eq!(normalize(&[after.ranges(m), difference(&before.ranges(m), &after.ranges(m))].concat()), before.ranges(m));
        }
    }
}
