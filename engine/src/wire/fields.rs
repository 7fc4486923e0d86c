//! Index fields: the registered JSON pointers as a trie, walked alongside an
//! object's scan to capture each pointer's value as a span.

use super::metadata::Work;
use super::scan::{R, Scanner};
use super::values::key_bytes;
use crate::object::Span;

#[derive(Debug)]
struct Child {
    key: Box<[u8]>,
    index: Option<usize>,
    node: u32,
}

#[derive(Debug, Default)]
struct Node {
    children: Vec<Child>,
    /// Index fields whose pointer ends at this node.
    leaves: Vec<u32>,
}

/// The registered pointers as a trie walked alongside the scan.
#[derive(Debug)]
pub(super) struct Trie {
    nodes: Vec<Node>,
    pub(super) metadata: Option<u32>,
}

impl Trie {
    pub(super) fn build(pointers: &[String]) -> Trie {
        let mut nodes = vec![Node::default()];
        for (i, p) in pointers.iter().enumerate() {
            let Some(rest) = p.strip_prefix('/') else { continue };
            let mut at = 0usize;
            for tok in rest.split('/') {
                let key = tok.replace("~1", "/").replace("~0", "~").into_bytes();
                let found = nodes[at].children.iter().find(|c| *c.key == *key).map(|c| c.node);
                at = match found {
                    Some(n) => n as usize,
                    None => {
                        let n = nodes.len();
                        let index = (!key.is_empty() && key.iter().all(u8::is_ascii_digit) && (key[0] != b'0' || key.len() == 1))
                            .then(|| std::str::from_utf8(&key).ok()?.parse().ok())
                            .flatten();
                        nodes.push(Node::default());
                        nodes[at].children.push(Child { key: key.into(), index, node: n as u32 });
                        n
                    }
                };
            }
            nodes[at].leaves.push(i as u32);
        }
        let metadata = nodes[0].children.iter().find(|c| &*c.key == b"metadata").map(|c| c.node);
        Trie { nodes, metadata }
    }

    #[inline]
    pub(super) fn child(&self, node: u32, key: &[u8]) -> Option<u32> {
        self.nodes.get(node as usize)?.children.iter().find(|c| *c.key == *key).map(|c| c.node)
    }

    #[inline]
    fn child_index(&self, node: u32, i: usize) -> Option<u32> {
        self.nodes.get(node as usize)?.children.iter().find(|c| c.index == Some(i)).map(|c| c.node)
    }
}

impl Work {
    /// The value of an index field: strings, numbers and booleans; else `None`.
    fn capture(&mut self, sc: &mut Scanner<'_>, depth: usize) -> R<Option<Span>> {
        match sc.peek() {
            Some(b'"') => {
                let s = sc.string()?;
                self.span(sc, s).map(Some)
            }
            Some(b'-' | b'0'..=b'9') => {
                let (a, b) = sc.number()?;
                Ok(Some(Span::new((a - self.base) as u32, (b - a) as u32)))
            }
            Some(b't' | b'f' | b'n') => {
                let at = sc.pos;
                let lit = sc.literal()?;
                Ok((lit != b"null").then(|| Span::new((at - self.base) as u32, lit.len() as u32)))
            }
            _ => sc.skip_value(depth).map(|()| None),
        }
    }

    /// Walks a value along the pointer trie from `node`, capturing leaves.
    pub(super) fn walk(&mut self, sc: &mut Scanner<'_>, trie: &Trie, node: u32, depth: usize) -> R<()> {
        let Some(n) = trie.nodes.get(node as usize) else { return sc.skip_value(depth) };
        match sc.peek() {
            Some(b'{') if !n.children.is_empty() => {
                if sc.object_begin(depth)? {
                    loop {
                        let k = sc.key()?;
                        match trie.child(node, &key_bytes(sc, k)) {
                            Some(c) => self.walk(sc, trie, c, depth + 1)?,
                            None => sc.skip_value(depth + 1)?,
                        }
                        if !sc.object_next()? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            Some(b'[') if !n.children.is_empty() => {
                if sc.array_begin(depth)? {
                    let mut i = 0;
                    loop {
                        match trie.child_index(node, i) {
                            Some(c) => self.walk(sc, trie, c, depth + 1)?,
                            None => sc.skip_value(depth + 1)?,
                        }
                        i += 1;
                        if !sc.array_next()? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            _ if !n.leaves.is_empty() => {
                let v = self.capture(sc, depth)?;
                for &l in &n.leaves {
                    if let Some(f) = self.fields.get_mut(l as usize) {
                        *f = v;
                    }
                }
                Ok(())
            }
            _ => sc.skip_value(depth),
        }
    }
}
