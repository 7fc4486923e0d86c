//! A persistent (copy-on-write) hash set of objects: the member set of one index value.
//!
//! # Guarantees
//! * A [`CowSet`] never changes once built: [`CowSet::insert`] and [`CowSet::remove`]
//!   return a new set that shares every untouched node with the old one, so a reader
//!   holding the old set keeps a consistent point-in-time view for free.
//! * An update copies one root-to-leaf path: at most `ceil(64 / BITS)` branch nodes of
//!   `WIDTH` child pointers plus one leaf of at most `LEAF_CAP` entries (more only on a
//!   full 64-bit hash collision). With `BITS = 3` a 100k-member set has about 5 levels,
//!   so the work grows with `log8(n)`, not with `n` (a cloned `Arc<HashSet>` would copy
//!   all `n`).
//!
//! The structure is a hash array mapped trie (Bagwell, "Ideal Hash Trees", 2001) with
//! dense branches and small leaf slices instead of one-entry leaves: leaves keep
//! iteration cache-friendly and divide the number of nodes.
//!
//! # Cost model
//! A path copy is bound by memory, not by instructions: copying a node increments the
//! reference count of every child (or, in a leaf, of every member object), and in a big
//! set those counts sit in cold cache lines, one per child. Two choices keep that in
//! check: narrow nodes (8 children, leaves of at most 8), which bound the cold lines per
//! level, and [`warm_children`] / [`warm_entries`], which load all the counts of a node
//! before the first locked increment so that the misses overlap instead of queueing
//! behind one another. The remaining growth from 1k to 100k members is cache misses on
//! the copied path (see the `store` bench's `update curve`), not extra work.

use std::hint::black_box;
use std::sync::Arc;

use crate::Obj;

/// Hash bits consumed per trie level.
const BITS: u32 = 3;
/// Children per branch node.
const WIDTH: usize = 1 << BITS;
/// Entries a leaf holds before it splits into a branch.
const LEAF_CAP: usize = 8;
/// Deepest level that still has hash bits to split on.
const MAX_DEPTH: u32 = 64 / BITS;

/// One member: the object and the trie hash of its key.
#[derive(Clone)]
struct Entry {
    hash: u64,
    obj: Obj,
}

/// A subtree. Each node is one allocation (the `Arc` header next to the data), so a
/// descent costs one dependent load per level, not two as with a boxed array behind
/// an `Arc<enum>`.
#[derive(Clone)]
enum Child {
    /// Members whose hashes share the path to this leaf. `len <= LEAF_CAP` unless the
    /// leaf sits at `MAX_DEPTH` (full-hash collisions); never empty.
    Leaf(Arc<[Entry]>),
    /// Children indexed by the next `BITS` bits of the hash.
    Branch(Arc<Branch>),
}

struct Branch {
    children: [Option<Child>; WIDTH],
}

impl Clone for Branch {
    fn clone(&self) -> Self {
        warm_children(&self.children);
        Branch { children: self.children.clone() }
    }
}

impl Drop for Branch {
    fn drop(&mut self) {
        // The children are decremented right after this: warm their counts first.
        warm_children(&self.children);
    }
}

/// An immutable set of objects, cheap to clone (one `Arc` increment) and to update
/// persistently.
#[derive(Clone, Default)]
pub(crate) struct CowSet {
    root: Option<Child>,
    len: usize,
}

/// Loads the reference counts that cloning (or dropping) `children` is about to
/// change, all before the first change. A locked increment waits for its cache line
/// and orders everything around it, so cold counts would be fetched one after another
/// (one memory latency per child in a 100k-member set); plain loads are issued
/// together and overlap, leaving the increments to hit in L1.
fn warm_children(children: &[Option<Child>; WIDTH]) {
    let mut sum = 0usize;
    for c in children.iter().flatten() {
        sum = sum.wrapping_add(match c {
            Child::Leaf(l) => Arc::strong_count(l),
            Child::Branch(b) => Arc::strong_count(b),
        });
    }
    black_box(sum);
}

/// [`warm_children`] for the object handles a leaf copy clones.
fn warm_entries(entries: &[Entry]) {
    let mut sum = 0usize;
    for e in entries {
        sum = sum.wrapping_add(e.obj.ref_count());
    }
    black_box(sum);
}

fn slot(hash: u64, depth: u32) -> usize {
    // Take bits from the top: the low bits of the key hash also pick the shard.
    ((hash >> (64 - BITS * (depth + 1))) as usize) & (WIDTH - 1)
}

impl CowSet {
    /// Number of members.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the set has no member.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A new set with `obj` added, or replacing the member `same` accepts (same key).
    /// Returns whether a member was replaced.
    pub(crate) fn insert(&self, hash: u64, obj: Obj, same: impl Fn(&Obj) -> bool) -> (CowSet, bool) {
        let e = Entry { hash, obj };
        let (root, replaced) = match &self.root {
            None => (Child::Leaf(Arc::from([e])), false),
            Some(n) => insert_node(n, 0, e, &same),
        };
        (CowSet { root: Some(root), len: self.len + usize::from(!replaced) }, replaced)
    }

    /// A new set without the member `same` accepts, or `None` when there is none.
    pub(crate) fn remove(&self, hash: u64, same: impl Fn(&Obj) -> bool) -> Option<CowSet> {
        let root = self.root.as_ref()?;
        let new_root = remove_node(root, 0, hash, &same)?;
        Some(CowSet { root: new_root, len: self.len - 1 })
    }

    /// Iterates the members in hash order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        let mut it = Iter { stack: [(None, 0); MAX_DEPTH as usize + 1], depth: 0, leaf: [].iter() };
        if let Some(root) = &self.root {
            it.push(root);
        }
        it
    }
}

/// A subtree holding `entries` (all sharing the hash path down to `depth`): a leaf when
/// they fit, else a branch that distributes them by the next hash bits.
fn build(entries: Vec<Entry>, depth: u32) -> Child {
    if entries.len() <= LEAF_CAP || depth >= MAX_DEPTH {
        return Child::Leaf(Arc::from(entries));
    }
    let mut groups: [Vec<Entry>; WIDTH] = Default::default();
    for x in entries {
        groups[slot(x.hash, depth)].push(x);
    }
    let mut children: [Option<Child>; WIDTH] = Default::default();
    for (c, g) in children.iter_mut().zip(groups) {
        if !g.is_empty() {
            *c = Some(build(g, depth + 1));
        }
    }
    Child::Branch(Arc::new(Branch { children }))
}

fn insert_node(node: &Child, depth: u32, e: Entry, same: &dyn Fn(&Obj) -> bool) -> (Child, bool) {
    match node {
        Child::Leaf(entries) => {
            warm_entries(entries);
            if let Some(i) = entries.iter().position(|x| x.hash == e.hash && same(&x.obj)) {
                // `Arc<[T]>: FromIterator` allocates once for exact-size iterators.
                let v: Arc<[Entry]> = entries.iter().enumerate().map(|(j, x)| if j == i { e.clone() } else { x.clone() }).collect();
                return (Child::Leaf(v), true);
            }
            if entries.len() < LEAF_CAP || depth >= MAX_DEPTH {
                let v: Arc<[Entry]> = entries.iter().cloned().chain(std::iter::once(e)).collect();
                return (Child::Leaf(v), false);
            }
            // Split: distribute the full leaf plus the newcomer one level down.
            let mut all = Vec::with_capacity(entries.len() + 1);
            all.extend(entries.iter().cloned());
            all.push(e);
            (build(all, depth), false)
        }
        Child::Branch(b) => {
            let i = slot(e.hash, depth);
            let (child, replaced) = match &b.children[i] {
                Some(c) => insert_node(c, depth + 1, e, same),
                None => (Child::Leaf(Arc::from([e])), false),
            };
            let mut c = Branch::clone(b);
            c.children[i] = Some(child);
            (Child::Branch(Arc::new(c)), replaced)
        }
    }
}

/// `None` when absent; `Some(None)` when the node became empty.
fn remove_node(node: &Child, depth: u32, hash: u64, same: &dyn Fn(&Obj) -> bool) -> Option<Option<Child>> {
    match node {
        Child::Leaf(entries) => {
            let i = entries.iter().position(|x| x.hash == hash && same(&x.obj))?;
            if entries.len() == 1 {
                return Some(None);
            }
            warm_entries(entries);
            let v: Arc<[Entry]> = entries[..i].iter().chain(&entries[i + 1..]).cloned().collect();
            Some(Some(Child::Leaf(v)))
        }
        Child::Branch(b) => {
            let i = slot(hash, depth);
            let child = b.children[i].as_ref()?;
            let new_child = remove_node(child, depth + 1, hash, same)?;
            let mut c = Branch::clone(b);
            c.children[i] = new_child;
            // Collapse a branch that shrank to a single leaf child so that sets that
            // grow and shrink do not keep long chains of one-child branches.
            let mut live = c.children.iter().flatten();
            match (live.next(), live.next()) {
                (None, _) => Some(None),
                (Some(only @ Child::Leaf(_)), None) => Some(Some(only.clone())),
                _ => Some(Some(Child::Branch(Arc::new(c)))),
            }
        }
    }
}

/// Iterator over a [`CowSet`]'s members; depth-first, no allocation.
pub(crate) struct Iter<'a> {
    stack: [(Option<&'a Branch>, usize); MAX_DEPTH as usize + 1],
    depth: usize,
    leaf: std::slice::Iter<'a, Entry>,
}

impl<'a> Iter<'a> {
    fn push(&mut self, node: &'a Child) {
        match node {
            Child::Leaf(v) => self.leaf = v.iter(),
            Child::Branch(b) => {
                self.stack[self.depth] = (Some(b), 0);
                self.depth += 1;
            }
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Obj;

    fn next(&mut self) -> Option<&'a Obj> {
        loop {
            if let Some(e) = self.leaf.next() {
                return Some(&e.obj);
            }
            if self.depth == 0 {
                return None;
            }
            let (node, next) = &mut self.stack[self.depth - 1];
            let b = (*node)?;
            let children: &'a [Option<Child>; WIDTH] = &b.children;
            match children[*next..].iter().position(Option::is_some) {
                Some(off) => {
                    let i = *next + off;
                    *next = i + 1;
                    if let Some(child) = children[i].as_ref() {
                        self.push(child);
                    }
                }
                None => self.depth -= 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::testing::pod;
    use std::collections::HashSet;

    fn h(i: u64) -> u64 {
        crate::store::shard::mix(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    #[test]
    fn insert_remove_and_iterate_agree_with_a_hash_set() {
        let objs: Vec<Obj> = (0..2000).map(|i| pod("ns", &format!("p{i}"), "1", &[])).collect();
        let mut set = CowSet::default();
        let mut model = HashSet::new();
        for (i, o) in objs.iter().enumerate() {
            let name = o.name().to_owned();
            let (s, replaced) = set.insert(h(i as u64), o.clone(), |x| x.name() == name);
            assert!(!replaced);
            set = s;
            model.insert(name);
        }
        assert_eq!(set.len(), 2000);
        let snapshot = set.clone();
        for (i, o) in objs.iter().enumerate().step_by(3) {
            let name = o.name().to_owned();
            set = set.remove(h(i as u64), |x| x.name() == name).expect("member present");
            model.remove(&name);
        }
        let got: HashSet<String> = set.iter().map(|o| o.name().to_owned()).collect();
        assert_eq!(got, model);
        assert_eq!(set.len(), model.len());
        // The old version is untouched.
        assert_eq!(snapshot.iter().count(), 2000);
        assert!(set.remove(h(0), |x| x.name() == "p0").is_none());
    }

    #[test]
    fn insert_of_an_existing_key_replaces_the_member() {
        let a1 = pod("ns", "a", "1", &[]);
        let a2 = pod("ns", "a", "2", &[]);
        let (s, _) = CowSet::default().insert(7, a1, |x| x.name() == "a");
        let (s, replaced) = s.insert(7, a2, |x| x.name() == "a");
        assert!(replaced);
        assert_eq!(s.len(), 1);
        assert_eq!(s.iter().next().map(Obj::resource_version), Some("2"));
    }

    #[test]
    fn full_hash_collisions_are_kept_apart_by_key() {
        let mut s = CowSet::default();
        for i in 0..40 {
            let name = format!("p{i}");
            s = s.insert(42, pod("ns", &name, "1", &[]), |x| x.name() == name).0;
        }
        assert_eq!(s.len(), 40);
        let s = s.remove(42, |x| x.name() == "p17").expect("present");
        assert_eq!(s.len(), 39);
        assert!(s.iter().all(|o| o.name() != "p17"));
    }
}
