//! A persistent (copy-on-write) hash set of objects: the member set of one index value.
//!
//! # Guarantees
//! * A [`CowSet`] never changes once built: [`CowSet::insert`] and [`CowSet::remove`]
//!   return a new set that shares every untouched node with the old one, so a reader
//!   holding the old set keeps a consistent point-in-time view for free.
//! * An update copies one root-to-leaf path: at most `ceil(64 / BITS)` branch nodes of
//!   `WIDTH` child pointers plus one leaf of at most `LEAF_CAP` entries (more only on a
//!   full 64-bit hash collision). With `BITS = 4` a 100k-member set has 3-4 levels, so the
//!   cost grows with `log16(n)`, not with `n` (a cloned `Arc<HashSet>` would copy all `n`).
//!
//! The structure is a hash array mapped trie (Bagwell, "Ideal Hash Trees", 2001) with
//! dense 16-way branches and small leaf vectors instead of one-entry leaves: leaves keep
//! iteration cache-friendly and halve the number of nodes.

use std::sync::Arc;

use crate::Obj;

/// Hash bits consumed per trie level.
const BITS: u32 = 4;
/// Children per branch node.
const WIDTH: usize = 1 << BITS;
/// Entries a leaf holds before it splits into a branch.
const LEAF_CAP: usize = 16;
/// Deepest level that still has hash bits to split on.
const MAX_DEPTH: u32 = 64 / BITS;

/// One member: the object and the trie hash of its key.
#[derive(Clone)]
struct Entry {
    hash: u64,
    obj: Obj,
}

enum Node {
    /// Members whose hashes share the path to this leaf. `len <= LEAF_CAP` unless the
    /// leaf sits at `MAX_DEPTH` (full-hash collisions).
    Leaf(Vec<Entry>),
    /// Children indexed by the next `BITS` bits of the hash.
    Branch(Box<[Option<Arc<Node>>; WIDTH]>),
}

/// An immutable set of objects, cheap to clone (one `Arc` increment) and to update
/// persistently.
#[derive(Clone, Default)]
pub(crate) struct CowSet {
    root: Option<Arc<Node>>,
    len: usize,
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
        let (root, replaced) = match &self.root {
            None => (Arc::new(Node::Leaf(vec![Entry { hash, obj }])), false),
            Some(n) => insert_node(n, 0, Entry { hash, obj }, &same),
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

fn insert_node(node: &Node, depth: u32, e: Entry, same: &dyn Fn(&Obj) -> bool) -> (Arc<Node>, bool) {
    match node {
        Node::Leaf(entries) => {
            if let Some(i) = entries.iter().position(|x| x.hash == e.hash && same(&x.obj)) {
                let mut v = entries.clone();
                v[i] = e;
                return (Arc::new(Node::Leaf(v)), true);
            }
            if entries.len() < LEAF_CAP || depth >= MAX_DEPTH {
                let mut v = Vec::with_capacity(entries.len() + 1);
                v.extend(entries.iter().cloned());
                v.push(e);
                return (Arc::new(Node::Leaf(v)), false);
            }
            // Split: distribute the full leaf plus the newcomer one level down.
            let mut groups: [Vec<Entry>; WIDTH] = Default::default();
            for x in entries.iter().cloned().chain(std::iter::once(e)) {
                groups[slot(x.hash, depth)].push(x);
            }
            let mut children: Box<[Option<Arc<Node>>; WIDTH]> = Box::default();
            for (i, g) in groups.into_iter().enumerate() {
                if g.is_empty() {
                    continue;
                }
                children[i] = Some(if g.len() <= LEAF_CAP || depth + 1 >= MAX_DEPTH {
                    Arc::new(Node::Leaf(g))
                } else {
                    // All LEAF_CAP + 1 entries share the next slot too: split again.
                    let mut it = g.into_iter();
                    let first = it.next().map(|x| Arc::new(Node::Leaf(vec![x])));
                    let mut n = first.unwrap_or_else(|| Arc::new(Node::Leaf(Vec::new())));
                    for x in it {
                        n = insert_node(&n, depth + 1, x, &|_| false).0;
                    }
                    n
                });
            }
            (Arc::new(Node::Branch(children)), false)
        }
        Node::Branch(children) => {
            let i = slot(e.hash, depth);
            let (child, replaced) = match &children[i] {
                Some(c) => insert_node(c, depth + 1, e, same),
                None => (Arc::new(Node::Leaf(vec![e])), false),
            };
            let mut c = children.clone();
            c[i] = Some(child);
            (Arc::new(Node::Branch(c)), replaced)
        }
    }
}

/// `None` when absent; `Some(None)` when the node became empty.
fn remove_node(node: &Node, depth: u32, hash: u64, same: &dyn Fn(&Obj) -> bool) -> Option<Option<Arc<Node>>> {
    match node {
        Node::Leaf(entries) => {
            let i = entries.iter().position(|x| x.hash == hash && same(&x.obj))?;
            if entries.len() == 1 {
                return Some(None);
            }
            let mut v = Vec::with_capacity(entries.len() - 1);
            v.extend(entries[..i].iter().cloned());
            v.extend(entries[i + 1..].iter().cloned());
            Some(Some(Arc::new(Node::Leaf(v))))
        }
        Node::Branch(children) => {
            let i = slot(hash, depth);
            let child = children[i].as_ref()?;
            let new_child = remove_node(child, depth + 1, hash, same)?;
            let mut c = children.clone();
            c[i] = new_child;
            // Collapse a branch that shrank to a single leaf child so that sets that
            // grow and shrink do not keep long chains of one-child branches.
            let mut live = c.iter().flatten();
            match (live.next(), live.next()) {
                (None, _) => Some(None),
                (Some(only), None) if matches!(**only, Node::Leaf(_)) => Some(Some(Arc::clone(only))),
                _ => Some(Some(Arc::new(Node::Branch(c)))),
            }
        }
    }
}

/// Iterator over a [`CowSet`]'s members; depth-first, no allocation.
pub(crate) struct Iter<'a> {
    stack: [(Option<&'a Node>, usize); MAX_DEPTH as usize + 1],
    depth: usize,
    leaf: std::slice::Iter<'a, Entry>,
}

impl<'a> Iter<'a> {
    fn push(&mut self, node: &'a Node) {
        match node {
            Node::Leaf(v) => self.leaf = v.iter(),
            Node::Branch(_) => {
                self.stack[self.depth] = (Some(node), 0);
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
            let Some(Node::Branch(children)) = node else {
                return None;
            };
            let children: &'a [Option<Arc<Node>>; WIDTH] = children;
            match children[*next..].iter().position(Option::is_some) {
                Some(off) => {
                    let i = *next + off;
                    *next = i + 1;
                    if let Some(child) = children[i].as_deref() {
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
