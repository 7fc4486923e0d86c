//! The consistent-hash ring: members placed as virtual nodes on the 64-bit FNV-1a
//! space, each member's share as a list of half-open hash ranges.
//!
//! # Guarantees
//! * The ring of a non-empty member set covers the whole space `[0, 2^64)`: every hash
//!   has exactly one owner, and the members' ranges partition the space.
//! * The owner of a hash depends only on the member set (not on the order members were
//!   given in): every replica that sees the same set computes the same owners.
//! * Adding a member moves hashes only to it; removing one moves only its hashes (to the
//!   next vnode clockwise). For two sets `S ⊆ T`, a hash whose owner under `T` is in `S`
//!   has that same owner under `S` — the property the move protocol's safety argument
//!   (see [`crate::shard`]) rests on.

use std::fmt;
use std::sync::Arc;

use super::key::ShardBy;
use crate::reflector::{InvalidShardRange, ShardRange, ShardSelector};

/// Virtual nodes per member by default: with 128, each member's share of the space is
/// within about ±25% of `1/N` for the member counts a controller runs (see the tests).
pub const DEFAULT_VNODES: usize = 128;

/// A half-open range `[start, end)` of the 64-bit hash space; `end` may be `2^64`: the
/// reflector's [`ShardRange`], so a member's share goes into a selector unchanged.
pub type HashRange = ShardRange;

/// A server-side shard selector (Kubernetes' `shardRange(field, start, end)`,
/// KEP-5866, `k8s.io/apimachinery/pkg/sharding`) that selects exactly the objects whose
/// `by` field hashes into one of `ranges` ([`ShardBy::field`]).
///
/// With [`ShardBy::Uid`], owned objects are assigned by their controller owner's uid,
/// which a selector on the object's own uid cannot follow: slice owned kinds
/// server-side with [`ShardBy::Namespace`], and use `Uid` selectors only for the
/// owners' kind.
///
/// ```
/// use kcache::shard::{HashRange, ShardBy, shard_selector};
/// let ranges = [HashRange { start: 0, end: 1 << 63 }, HashRange { start: u64::MAX, end: 1 << 64 }];
/// assert_eq!(
///     shard_selector(ShardBy::Namespace, &ranges).unwrap().expression(),
///     "shardRange(object.metadata.namespace, '0x0000000000000000', '0x8000000000000000') || \
///      shardRange(object.metadata.namespace, '0xffffffffffffffff', '0x10000000000000000')"
/// );
/// assert!(shard_selector(ShardBy::Uid, &[]).is_err(), "a member that owns nothing has no selector");
/// ```
///
/// # Errors
/// [`InvalidShardRange`] when `ranges` is empty (the member owns nothing) or holds an
/// empty range.
pub fn shard_selector(by: ShardBy, ranges: &[HashRange]) -> Result<ShardSelector, InvalidShardRange> {
    ShardSelector::new(by.field(), ranges.to_vec())
}

/// The ring of one member set: each member's virtual nodes, sorted on the hash space.
///
/// A vnode at token `t` owns `[t, next token)`; the last vnode also owns the wrap-around
/// `[0, first token)`. A member's share is the union of its vnodes' ranges.
///
/// ```
/// use kcache::shard::Ring;
/// let ring = Ring::new(["a", "b", "c"], 128);
/// let owner = ring.owner(0x1234).unwrap();
/// assert!(ring.ranges(owner).iter().any(|r| r.contains(0x1234)));
/// let total: u128 = ring.members().iter().map(|m| ring.ranges(m).iter().map(|r| r.len()).sum::<u128>()).sum();
/// assert_eq!(total, 1 << 64);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Ring {
    /// Sorted member identities; vnodes name members by index into it.
    members: Vec<Arc<str>>,
    /// `(token, member index)`, sorted by token then member name.
    vnodes: Vec<(u64, u32)>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring").field("members", &self.members).field("vnodes", &self.vnodes.len()).finish()
    }
}

impl Ring {
    /// The ring of `members` (duplicates collapse) with `vnodes` virtual nodes each
    /// (at least one).
    pub fn new<I, S>(members: I, vnodes: usize) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<Arc<str>> = members.into_iter().map(|m| Arc::from(m.as_ref())).collect();
        names.sort();
        names.dedup();
        let per_member = vnodes.max(1);
        let mut tokens = Vec::with_capacity(names.len() * per_member);
        for (index, name) in names.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 members");
            for v in 0..per_member {
                tokens.push((vnode_token(name, v), index));
            }
        }
        // Ties between members (a 2^-64 event) break by name: members are sorted, so
        // the index order is the name order, the same on every replica.
        tokens.sort_unstable();
        Ring { members: names, vnodes: tokens }
    }

    /// A ring without members: owns nothing.
    pub fn empty() -> Ring {
        Ring { members: Vec::new(), vnodes: Vec::new() }
    }

    /// The members, sorted.
    pub fn members(&self) -> &[Arc<str>] {
        &self.members
    }

    /// Whether `member` is on the ring.
    pub fn contains(&self, member: &str) -> bool {
        self.members.binary_search_by(|m| m.as_ref().cmp(member)).is_ok()
    }

    /// Whether the ring has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member that owns `hash`; `None` only for an empty ring.
    pub fn owner(&self, hash: u64) -> Option<&str> {
        if self.vnodes.is_empty() {
            return None;
        }
        // The vnode with the greatest token <= hash, or the last one (wrap-around).
        let after = self.vnodes.partition_point(|&(token, _)| token <= hash);
        let vnode = if after == 0 { self.vnodes.len() - 1 } else { after - 1 };
        Some(&self.members[self.vnodes[vnode].1 as usize])
    }

    /// The hash ranges `member` owns, sorted and merged (adjacent ranges joined); empty
    /// for a member not on the ring.
    pub fn ranges(&self, member: &str) -> Vec<HashRange> {
        let Ok(index) = self.members.binary_search_by(|m| m.as_ref().cmp(member)) else {
            return Vec::new();
        };
        let index = index as u32;
        let mut out: Vec<HashRange> = Vec::new();
        let mut push = |start: u64, end: u128| {
            if u128::from(start) >= end {
                return;
            }
            match out.last_mut() {
                Some(last) if last.end == u128::from(start) => last.end = end,
                _ => out.push(HashRange { start, end }),
            }
        };
        let last = self.vnodes.len() - 1;
        if self.vnodes[last].1 == index {
            push(0, u128::from(self.vnodes[0].0));
        }
        for (i, &(token, owner)) in self.vnodes.iter().enumerate() {
            if owner == index {
                let end = if i == last { 1u128 << 64 } else { u128::from(self.vnodes[i + 1].0) };
                push(token, end);
            }
        }
        out
    }

    /// The fraction of the hash space `member` owns.
    pub fn share(&self, member: &str) -> f64 {
        let owned: u128 = self.ranges(member).iter().map(HashRange::len).sum();
        owned as f64 / (1u128 << 64) as f64
    }
}

/// The token of `member`'s `v`-th virtual node: FNV-1a of `member/v`, then murmur3's
/// 64-bit finalizer. FNV-1a alone barely moves the high bits when only a string's last
/// bytes differ (the last byte is multiplied by the prime once), which would cluster a
/// member's vnodes; the finalizer spreads them. Keys are hashed with plain FNV-1a, as
/// the server-side selector does.
fn vnode_token(member: &str, v: usize) -> u64 {
    let mut h = crate::reflector::fnv1a64(format!("{member}/{v}").as_bytes());
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("replica-{i}")).collect()
    }

    /// A deterministic stream of well-spread hashes (splitmix64).
    fn hashes(n: usize) -> impl Iterator<Item = u64> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n).map(move |_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    #[test]
    fn ranges_partition_the_space_and_agree_with_lookup() {
        for n in [1, 2, 3, 7] {
            let ring = Ring::new(names(n), 32);
            let mut all: Vec<(HashRange, String)> = Vec::new();
            for m in ring.members() {
                for r in ring.ranges(m) {
                    assert!(!r.is_empty());
                    assert_eq!(ring.owner(r.start), Some(m.as_ref()), "{r} starts in {m}'s share");
                    let last = u64::try_from(r.end - 1).unwrap();
                    assert_eq!(ring.owner(last), Some(m.as_ref()), "{r} ends in {m}'s share");
                    all.push((r, m.to_string()));
                }
            }
            all.sort();
            assert_eq!(all[0].0.start, 0, "{n} members: the space starts covered");
            assert_eq!(all.last().unwrap().0.end, 1 << 64, "{n} members: the space ends covered");
            for pair in all.windows(2) {
                assert_eq!(pair[0].0.end, u128::from(pair[1].0.start), "no gap or overlap between {} and {}", pair[0].0, pair[1].0);
                assert_ne!(pair[0].1, pair[1].1, "adjacent ranges of one member are merged");
            }
            for h in hashes(2000) {
                let owner = ring.owner(h).unwrap();
                assert!(ring.ranges(owner).iter().any(|r| r.contains(h)));
            }
        }
    }

    #[test]
    fn owners_do_not_depend_on_the_order_members_are_given_in() {
        let forward = Ring::new(["a", "b", "c", "d"], 16);
        let backward = Ring::new(["d", "c", "b", "a", "b"], 16);
        assert_eq!(forward, backward);
        assert!(Ring::empty().owner(5).is_none());
        assert!(Ring::empty().ranges("a").is_empty());
    }

    #[test]
    fn shares_stay_near_one_nth_with_128_vnodes() {
        for n in [2, 3, 5, 8, 16] {
            let ring = Ring::new(names(n), DEFAULT_VNODES);
            let ideal = 1.0 / n as f64;
            for m in ring.members() {
                let share = ring.share(m);
                assert!((share / ideal - 1.0).abs() < 0.25, "{n} members: {m} owns {share:.4}, ideal {ideal:.4}");
            }
            let total: f64 = ring.members().iter().map(|m| ring.share(m)).sum();
            assert!((total - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn a_join_moves_about_one_nth_and_only_to_the_new_member() {
        for n in [2, 4, 9] {
            let before = Ring::new(names(n), DEFAULT_VNODES);
            let mut grown = names(n);
            grown.push("newcomer".to_owned());
            let after = Ring::new(&grown, DEFAULT_VNODES);
            let total = 20_000;
            let mut moved = 0;
            for h in hashes(total) {
                let (old, new) = (before.owner(h).unwrap(), after.owner(h).unwrap());
                if old != new {
                    assert_eq!(new, "newcomer", "a join moves keys only to the newcomer");
                    moved += 1;
                }
            }
            let fraction = moved as f64 / total as f64;
            let ideal = 1.0 / (n + 1) as f64;
            assert!((fraction / ideal - 1.0).abs() < 0.3, "{n}+1 members: {fraction:.3} of keys moved, ideal {ideal:.3}");
        }
    }

    #[test]
    fn a_leave_moves_only_the_leavers_keys() {
        let all = names(5);
        let before = Ring::new(&all, DEFAULT_VNODES);
        let after = Ring::new(all.iter().filter(|m| *m != "replica-2"), DEFAULT_VNODES);
        for h in hashes(20_000) {
            let (old, new) = (before.owner(h).unwrap(), after.owner(h).unwrap());
            if old != "replica-2" {
                assert_eq!(old, new, "a hash not owned by the leaver stays put");
            } else {
                assert_ne!(new, "replica-2");
            }
        }
    }

    #[test]
    fn subsets_agree_on_owners_that_they_contain() {
        // The protocol's lemma: for S ⊆ T, owner_T(h) ∈ S implies owner_S(h) = owner_T(h).
        let t = Ring::new(names(6), 64);
        let s = Ring::new(["replica-0", "replica-3", "replica-5"], 64);
        for h in hashes(20_000) {
            let owner = t.owner(h).unwrap();
            if s.contains(owner) {
                assert_eq!(s.owner(h), Some(owner));
            }
        }
    }

    #[test]
    fn a_single_member_owns_everything() {
        let ring = Ring::new(["only"], 8);
        assert_eq!(ring.ranges("only"), vec![HashRange { start: 0, end: 1 << 64 }]);
        assert_eq!(
            shard_selector(ShardBy::Uid, &ring.ranges("only")).unwrap().expression(),
            "shardRange(object.metadata.uid, '0x0000000000000000', '0x10000000000000000')"
        );
        assert!(ring.ranges("other").is_empty());
    }
}
