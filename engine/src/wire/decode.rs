//! One-pass decoding of watch events, LIST bodies, single objects and Status bodies.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::error::DecodeError;
use super::scan::{R, Scanner, Str, invalid, unescape};
use crate::arena::Arena;
use crate::object::{Meta, Obj, OwnerSpans, Span};

/// A user hook run on each object's bytes (after `managedFields` stripping),
/// before they are stored. If it changes the bytes, the object is scanned again.
pub type Transform = Arc<dyn Fn(&mut Vec<u8>) + Send + Sync>;

/// Default [`DecoderConfig::max_object_bytes`]: 16 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 16 << 20;

/// Spans are `u32` with the top bit marking the spill buffer: objects must stay under 2 GiB.
const SPAN_LIMIT: usize = (1 << 31) - 1;

/// What the decoder extracts and how it stores objects.
///
/// ```
/// use kcache::wire::{Decoder, DecoderConfig};
/// let cfg = DecoderConfig {
///     index_fields: vec!["/spec/nodeName".into(), "/status/phase".into()],
///     strip_managed_fields: true,
///     ..DecoderConfig::default()
/// };
/// let mut dec = Decoder::new(cfg);
/// let pod = dec.decode_object(br#"{"metadata":{"name":"a","managedFields":[{}]},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}"#).unwrap();
/// assert_eq!(pod.field(0), Some("n1"));
/// assert_eq!(pod.field(1), Some("Running"));
/// assert_eq!(pod.json(), br#"{"metadata":{"name":"a"},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}"#);
/// ```
#[derive(Clone)]
pub struct DecoderConfig {
    /// RFC 6901 JSON pointers (e.g. `/spec/nodeName`) whose values are extracted
    /// into [`Obj::field`], in this order. A pointer that resolves to a string,
    /// number or boolean yields its text (strings unescaped, numbers and booleans
    /// as written); anything else, or an invalid pointer (not starting with `/`),
    /// yields `None`. Numeric tokens also index arrays (`/spec/containers/0/image`).
    pub index_fields: Vec<String>,
    /// Remove `metadata.managedFields` from the stored bytes (often 30-40% of a pod).
    pub strip_managed_fields: bool,
    /// Optional hook on each object's bytes before they are stored; see [`Transform`].
    pub transform: Option<Transform>,
    /// Largest object (as stored) accepted; bigger ones are [`DecodeError::ObjectTooLarge`].
    /// Values above 2 GiB are clamped (spans are 31-bit).
    pub max_object_bytes: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            index_fields: Vec::new(),
            strip_managed_fields: false,
            transform: None,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        }
    }
}

impl fmt::Debug for DecoderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecoderConfig")
            .field("index_fields", &self.index_fields)
            .field("strip_managed_fields", &self.strip_managed_fields)
            .field("transform", &self.transform.as_ref().map(|_| "Fn(&mut Vec<u8>)"))
            .field("max_object_bytes", &self.max_object_bytes)
            .finish()
    }
}

/// One decoded watch event (the body line `{"type":…,"object":…}`).
#[derive(Clone, Debug)]
pub enum WatchEvent {
    /// `ADDED`: the object was created (or is part of the initial events).
    Added(Obj),
    /// `MODIFIED`: the object's new state.
    Modified(Obj),
    /// `DELETED`: the object's last state.
    Deleted(Obj),
    /// `BOOKMARK`: the watch has seen everything up to `resource_version`.
    Bookmark {
        /// `object.metadata.resourceVersion`.
        resource_version: String,
        /// The bookmark carries `k8s.io/initial-events-end: "true"`: the initial
        /// events of a streaming list (`sendInitialEvents=true`) are complete.
        initial_events_end: bool,
    },
    /// `ERROR`: the server ended the watch with a Status (410 Expired: relist).
    Error(ApiStatus),
}

/// A decoded LIST response page.
#[derive(Clone, Debug, Default)]
pub struct ObjectList {
    /// The items, in order.
    pub items: Vec<Obj>,
    /// `metadata.resourceVersion` of the list (empty if the server sent none).
    pub resource_version: String,
    /// `metadata.continue`, when non-empty: fetch the next page with it.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount`, when present.
    pub remaining_item_count: Option<i64>,
}

/// A `meta/v1` Status: an API error body or an ERROR watch event's object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiStatus {
    /// `status`: `"Success"` or `"Failure"`.
    pub status: String,
    /// `code`: the HTTP status code (0 when absent).
    pub code: u16,
    /// `reason`: machine-readable, e.g. `"Expired"`, `"NotFound"`, `"Conflict"`.
    pub reason: String,
    /// `message`: human-readable description.
    pub message: String,
    /// `metadata.continue`, when non-empty (a 410 on a LIST may carry a fresh token).
    pub continue_token: Option<String>,
}

impl ApiStatus {
    /// A 410 Gone / `Expired` status: the requested resourceVersion is too old; relist.
    pub fn is_expired(&self) -> bool {
        self.code == 410 || self.reason == "Expired" || self.reason == "Gone"
    }
}

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
struct Trie {
    nodes: Vec<Node>,
    metadata: Option<u32>,
}

impl Trie {
    fn build(pointers: &[String]) -> Trie {
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
    fn child(&self, node: u32, key: &[u8]) -> Option<u32> {
        self.nodes.get(node as usize)?.children.iter().find(|c| *c.key == *key).map(|c| c.node)
    }

    #[inline]
    fn child_index(&self, node: u32, i: usize) -> Option<u32> {
        self.nodes.get(node as usize)?.children.iter().find(|c| c.index == Some(i)).map(|c| c.node)
    }
}

/// A member name as bytes: borrowed from the document unless it had escapes.
#[inline]
fn key_bytes<'a>(sc: &Scanner<'a>, k: Str) -> Cow<'a, [u8]> {
    let raw = sc.raw(k);
    if !k.escaped {
        return Cow::Borrowed(raw);
    }
    let mut s = String::new();
    if unescape(raw, &mut s) { Cow::Owned(s.into_bytes()) } else { Cow::Borrowed(raw) }
}

/// A string value as an owned `String`.
fn owned(sc: &Scanner<'_>, s: Str) -> R<String> {
    let raw = sc.raw(s);
    if s.escaped {
        let mut out = String::with_capacity(raw.len());
        if !unescape(raw, &mut out) {
            return Err(invalid(s.start, "lone surrogate escape in string"));
        }
        Ok(out)
    } else {
        std::str::from_utf8(raw).map(str::to_owned).map_err(|_| invalid(s.start, "invalid utf-8 in string"))
    }
}

/// A string or `null` value at the cursor as an owned string (`null` -> empty).
fn owned_or_null(sc: &mut Scanner<'_>, shape: &'static str) -> R<String> {
    match sc.peek() {
        Some(b'"') => {
            let s = sc.string()?;
            owned(sc, s)
        }
        Some(b'n') => {
            null(sc, shape)?;
            Ok(String::new())
        }
        _ => Err(DecodeError::WrongShape(shape)),
    }
}

fn null(sc: &mut Scanner<'_>, shape: &'static str) -> R<()> {
    match sc.literal()? {
        b"null" => Ok(()),
        _ => Err(DecodeError::WrongShape(shape)),
    }
}

/// An integer value at the cursor (`null` -> `None`).
fn int_or_null(sc: &mut Scanner<'_>, shape: &'static str) -> R<Option<i64>> {
    match sc.peek() {
        Some(b'-' | b'0'..=b'9') => {
            let (a, b) = sc.number()?;
            let raw = sc.buf.get(a..b).unwrap_or_default();
            std::str::from_utf8(raw).ok().and_then(|s| s.parse::<i64>().ok()).map(Some).ok_or(DecodeError::WrongShape(shape))
        }
        Some(b'n') => null(sc, shape).map(|()| None),
        _ => Err(DecodeError::WrongShape(shape)),
    }
}

/// Per-object scratch state, reused across objects so decoding allocates only
/// the boxes that end up in [`Meta`].
#[derive(Default)]
struct Work {
    base: usize,
    has_metadata: bool,
    name: Option<Span>,
    namespace: Span,
    uid: Span,
    resource_version: Span,
    generation: Option<i64>,
    deletion_timestamp: Option<Span>,
    labels: Vec<(Span, Span)>,
    owners: Vec<OwnerSpans>,
    fields: Vec<Option<Span>>,
    spill: String,
    /// Absolute byte range of `"managedFields":[…]` plus one separator.
    cut: Option<(usize, usize)>,
}

impl Work {
    fn reset(&mut self, base: usize, nfields: usize) {
        self.base = base;
        self.has_metadata = false;
        self.name = None;
        self.namespace = Span::EMPTY;
        self.uid = Span::EMPTY;
        self.resource_version = Span::EMPTY;
        self.generation = None;
        self.deletion_timestamp = None;
        self.labels.clear();
        self.owners.clear();
        self.fields.clear();
        self.fields.resize(nfields, None);
        self.spill.clear();
        self.cut = None;
    }

    /// A span for a scanned string: into the object, or into the spill buffer
    /// (unescaped) when it had escapes.
    #[inline]
    fn span(&mut self, sc: &Scanner<'_>, s: Str) -> R<Span> {
        if !s.escaped {
            return Ok(Span::new((s.start - self.base) as u32, (s.end - s.start) as u32));
        }
        let off = self.spill.len();
        if !unescape(sc.raw(s), &mut self.spill) {
            return Err(invalid(s.start, "lone surrogate escape in string"));
        }
        Ok(Span::spill(off as u32, (self.spill.len() - off) as u32))
    }

    /// A string or `null` at the cursor.
    #[inline]
    fn string_or_null(&mut self, sc: &mut Scanner<'_>, shape: &'static str) -> R<Option<Span>> {
        match sc.peek() {
            Some(b'"') => {
                let s = sc.string()?;
                self.span(sc, s).map(Some)
            }
            Some(b'n') => null(sc, shape).map(|()| None),
            _ => Err(DecodeError::WrongShape(shape)),
        }
    }

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
    fn walk(&mut self, sc: &mut Scanner<'_>, trie: &Trie, node: u32, depth: usize) -> R<()> {
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

    /// Scans one object (cursor on `{`, after whitespace); returns its absolute span.
    fn object(&mut self, sc: &mut Scanner<'_>, dc: &Compiled, depth: usize) -> R<(usize, usize)> {
        sc.ws();
        let start = sc.pos;
        self.reset(start, dc.config.index_fields.len());
        if sc.peek() != Some(b'{') {
            sc.skip_value(depth)?;
            return Err(DecodeError::WrongShape("object is not a json object"));
        }
        if sc.object_begin(depth)? {
            loop {
                let k = sc.key()?;
                let key = key_bytes(sc, k);
                if *key == *b"metadata" {
                    self.metadata(sc, dc, depth + 1)?;
                } else if let Some(c) = dc.trie.child(0, &key) {
                    self.walk(sc, &dc.trie, c, depth + 1)?;
                } else {
                    sc.skip_value(depth + 1)?;
                }
                if !sc.object_next()? {
                    break;
                }
            }
        }
        Ok((start, sc.pos))
    }

    fn metadata(&mut self, sc: &mut Scanner<'_>, dc: &Compiled, depth: usize) -> R<()> {
        if sc.peek() == Some(b'n') {
            return null(sc, "metadata is not an object");
        }
        if sc.peek() != Some(b'{') {
            return Err(DecodeError::WrongShape("metadata is not an object"));
        }
        self.has_metadata = true;
        if !sc.object_begin(depth)? {
            return Ok(());
        }
        let d = depth + 1;
        let mut prev_end: Option<usize> = None;
        loop {
            let member_start = sc.pos;
            let k = sc.key()?;
            let key = key_bytes(sc, k);
            let value_start = sc.pos;
            let special = match &*key {
                b"name" => {
                    self.name = self.string_or_null(sc, "metadata.name is not a string")?;
                    true
                }
                b"namespace" => {
                    self.namespace = self.string_or_null(sc, "metadata.namespace is not a string")?.unwrap_or_default();
                    true
                }
                b"uid" => {
                    self.uid = self.string_or_null(sc, "metadata.uid is not a string")?.unwrap_or_default();
                    true
                }
                b"resourceVersion" => {
                    self.resource_version =
                        self.string_or_null(sc, "metadata.resourceVersion is not a string")?.unwrap_or_default();
                    true
                }
                b"deletionTimestamp" => {
                    self.deletion_timestamp = self.string_or_null(sc, "metadata.deletionTimestamp is not a string")?;
                    true
                }
                b"generation" => {
                    self.generation = int_or_null(sc, "metadata.generation is not an int64")?;
                    true
                }
                b"labels" => {
                    self.labels(sc, d)?;
                    true
                }
                b"ownerReferences" => {
                    self.owners(sc, d)?;
                    true
                }
                b"managedFields" if dc.config.strip_managed_fields => {
                    sc.skip_value(d)?;
                    let value_end = sc.pos;
                    self.cut = Some(match prev_end {
                        Some(p) => (p, value_end),
                        None => {
                            // First member: take the separator after it instead.
                            let save = sc.pos;
                            sc.ws();
                            let end = if sc.peek() == Some(b',') {
                                sc.pos += 1;
                                sc.ws();
                                sc.pos
                            } else {
                                value_end
                            };
                            sc.pos = save;
                            (member_start, end)
                        }
                    });
                    true
                }
                _ => false,
            };
            let child = dc.trie.metadata.and_then(|m| dc.trie.child(m, &key));
            match child {
                Some(c) => {
                    if special {
                        // Rare: an index field under a member parsed above. Walk it again.
                        let end = sc.pos;
                        sc.pos = value_start;
                        self.walk(sc, &dc.trie, c, d)?;
                        sc.pos = end;
                    } else {
                        self.walk(sc, &dc.trie, c, d)?;
                    }
                }
                None if !special => sc.skip_value(d)?,
                None => {}
            }
            prev_end = Some(sc.pos);
            if !sc.object_next()? {
                return Ok(());
            }
        }
    }

    fn labels(&mut self, sc: &mut Scanner<'_>, depth: usize) -> R<()> {
        if sc.peek() == Some(b'n') {
            return null(sc, "metadata.labels is not an object");
        }
        if sc.peek() != Some(b'{') {
            return Err(DecodeError::WrongShape("metadata.labels is not an object"));
        }
        if sc.object_begin(depth)? {
            loop {
                let k = sc.key()?;
                let ks = self.span(sc, k)?;
                if sc.peek() != Some(b'"') {
                    return Err(DecodeError::WrongShape("a label value is not a string"));
                }
                let v = sc.string()?;
                let vs = self.span(sc, v)?;
                self.labels.push((ks, vs));
                if !sc.object_next()? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn owners(&mut self, sc: &mut Scanner<'_>, depth: usize) -> R<()> {
        if sc.peek() == Some(b'n') {
            return null(sc, "metadata.ownerReferences is not an array");
        }
        if sc.peek() != Some(b'[') {
            return Err(DecodeError::WrongShape("metadata.ownerReferences is not an array"));
        }
        if !sc.array_begin(depth)? {
            return Ok(());
        }
        const SHAPE: &str = "an owner reference is not an object of strings";
        loop {
            if sc.peek() != Some(b'{') {
                return Err(DecodeError::WrongShape(SHAPE));
            }
            let mut o = OwnerSpans::default();
            if sc.object_begin(depth + 1)? {
                loop {
                    let k = sc.key()?;
                    match &*key_bytes(sc, k) {
                        b"apiVersion" => o.api_version = self.string_or_null(sc, SHAPE)?.unwrap_or_default(),
                        b"kind" => o.kind = self.string_or_null(sc, SHAPE)?.unwrap_or_default(),
                        b"name" => o.name = self.string_or_null(sc, SHAPE)?.unwrap_or_default(),
                        b"uid" => o.uid = self.string_or_null(sc, SHAPE)?.unwrap_or_default(),
                        b"controller" => {
                            o.controller = match sc.peek() {
                                Some(b't' | b'f' | b'n') => sc.literal()? == b"true",
                                _ => return Err(DecodeError::WrongShape("ownerReferences.controller is not a boolean")),
                            }
                        }
                        _ => sc.skip_value(depth + 2)?,
                    }
                    if !sc.object_next()? {
                        break;
                    }
                }
            }
            self.owners.push(o);
            if !sc.array_next()? {
                return Ok(());
            }
        }
    }

    /// Builds the [`Meta`], shifting spans past the cut range (relative) left.
    fn meta(&self, cut: Option<(usize, usize)>) -> Meta {
        let shift = |s: Span| -> Option<Span> {
            match cut {
                Some((cs, ce)) if !s.is_spill() && !s.is_empty() => {
                    let off = s.offset() as usize;
                    if off >= ce {
                        Some(Span::new((off - (ce - cs)) as u32, s.len()))
                    } else if off >= cs {
                        None
                    } else {
                        Some(s)
                    }
                }
                _ => Some(s),
            }
        };
        let sh = |s: Span| shift(s).unwrap_or_default();
        Meta {
            namespace: sh(self.namespace),
            name: sh(self.name.unwrap_or_default()),
            uid: sh(self.uid),
            resource_version: sh(self.resource_version),
            generation: self.generation,
            deletion_timestamp: self.deletion_timestamp.and_then(shift),
            labels: self.labels.iter().map(|&(k, v)| (sh(k), sh(v))).collect(),
            owners: self
                .owners
                .iter()
                .map(|o| OwnerSpans {
                    api_version: sh(o.api_version),
                    kind: sh(o.kind),
                    name: sh(o.name),
                    uid: sh(o.uid),
                    controller: o.controller,
                })
                .collect(),
            fields: self.fields.iter().map(|f| f.and_then(shift)).collect(),
            spill: self.spill.as_str().into(),
        }
    }
}

/// A bookmark's object: only `metadata.resourceVersion` and the initial-events-end annotation.
fn bookmark(sc: &mut Scanner<'_>, depth: usize) -> R<(String, bool)> {
    let mut rv = String::new();
    let mut end = false;
    if sc.object_begin(depth)? {
        loop {
            let k = sc.key()?;
            if *key_bytes(sc, k) == *b"metadata" && sc.peek() == Some(b'{') {
                if sc.object_begin(depth + 1)? {
                    loop {
                        let k = sc.key()?;
                        match &*key_bytes(sc, k) {
                            b"resourceVersion" => rv = owned_or_null(sc, "bookmark resourceVersion is not a string")?,
                            b"annotations" if sc.peek() == Some(b'{') => {
                                if sc.object_begin(depth + 2)? {
                                    loop {
                                        let k = sc.key()?;
                                        if *key_bytes(sc, k) == *b"k8s.io/initial-events-end" && sc.peek() == Some(b'"') {
                                            let v = sc.string()?;
                                            end = sc.raw(v) == b"true";
                                        } else {
                                            sc.skip_value(depth + 3)?;
                                        }
                                        if !sc.object_next()? {
                                            break;
                                        }
                                    }
                                }
                            }
                            _ => sc.skip_value(depth + 2)?,
                        }
                        if !sc.object_next()? {
                            break;
                        }
                    }
                }
            } else {
                sc.skip_value(depth + 1)?;
            }
            if !sc.object_next()? {
                break;
            }
        }
    }
    Ok((rv, end))
}

/// A Status object at the cursor.
fn status(sc: &mut Scanner<'_>, depth: usize) -> R<ApiStatus> {
    let mut st = ApiStatus::default();
    if sc.peek() != Some(b'{') {
        sc.skip_value(depth)?;
        return Err(DecodeError::WrongShape("status is not a json object"));
    }
    if sc.object_begin(depth)? {
        loop {
            let k = sc.key()?;
            match &*key_bytes(sc, k) {
                b"kind" => {
                    let kind = owned_or_null(sc, "status kind is not a string")?;
                    if !kind.is_empty() && kind != "Status" {
                        return Err(DecodeError::WrongShape("document is not a Status"));
                    }
                }
                b"status" => st.status = owned_or_null(sc, "status.status is not a string")?,
                b"reason" => st.reason = owned_or_null(sc, "status.reason is not a string")?,
                b"message" => st.message = owned_or_null(sc, "status.message is not a string")?,
                b"code" => {
                    let code = int_or_null(sc, "status.code is not an integer")?.unwrap_or(0);
                    st.code = u16::try_from(code).map_err(|_| DecodeError::WrongShape("status.code is out of range"))?;
                }
                b"metadata" if sc.peek() == Some(b'{') => {
                    if sc.object_begin(depth + 1)? {
                        loop {
                            let k = sc.key()?;
                            if *key_bytes(sc, k) == *b"continue" {
                                let c = owned_or_null(sc, "status metadata.continue is not a string")?;
                                st.continue_token = (!c.is_empty()).then_some(c);
                            } else {
                                sc.skip_value(depth + 2)?;
                            }
                            if !sc.object_next()? {
                                break;
                            }
                        }
                    }
                }
                _ => sc.skip_value(depth + 1)?,
            }
            if !sc.object_next()? {
                break;
            }
        }
    }
    Ok(st)
}

/// Decodes a `meta/v1` Status body (an API error response).
///
/// ```
/// let st = kcache::wire::decode_status(br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#).unwrap();
/// assert_eq!((st.code, st.reason.as_str()), (404, "NotFound"));
/// ```
pub fn decode_status(doc: &[u8]) -> Result<ApiStatus, DecodeError> {
    let mut sc = Scanner::new(doc);
    sc.ws();
    let st = status(&mut sc, 0)?;
    sc.end()?;
    Ok(st)
}

struct Compiled {
    config: DecoderConfig,
    trie: Trie,
    max_object_bytes: usize,
}

/// Decodes documents into [`Obj`]s stored in its [`Arena`]. See the [module docs](crate::wire).
///
/// `Clone` gives a decoder with the same configuration and a clone of the arena
/// (its own open segment, shared statistics); it is `Send`, so each shard or
/// stream can own one.
pub struct Decoder {
    dc: Arc<Compiled>,
    arena: Arena,
    work: Work,
}

impl Clone for Decoder {
    fn clone(&self) -> Self {
        Decoder { dc: self.dc.clone(), arena: self.arena.clone(), work: Work::default() }
    }
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder").field("config", &self.dc.config).field("arena", &self.arena.stats()).finish()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DecoderConfig::default())
    }
}

enum Pending {
    /// `work` holds the metadata of the object at this absolute span.
    Scanned(usize, usize),
    /// The object's span, seen before `type`.
    Raw(usize, usize),
    Bookmark(String, bool),
    Status(ApiStatus),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl Decoder {
    /// A decoder with its own arena (1 MiB segments).
    pub fn new(config: DecoderConfig) -> Self {
        Decoder::with_arena(config, Arena::new())
    }

    /// A decoder that stores objects in `arena`.
    pub fn with_arena(config: DecoderConfig, arena: Arena) -> Self {
        let trie = Trie::build(&config.index_fields);
        let max_object_bytes = config.max_object_bytes.min(SPAN_LIMIT);
        Decoder { dc: Arc::new(Compiled { config, trie, max_object_bytes }), arena, work: Work::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.dc.config
    }

    /// The position of `pointer` among the registered index fields (for [`Obj::field`]).
    pub fn index_field(&self, pointer: &str) -> Option<usize> {
        self.dc.config.index_fields.iter().position(|p| p == pointer)
    }

    /// The arena objects are stored in.
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The arena, for compaction ([`Arena::relocate`]).
    pub fn arena_mut(&mut self) -> &mut Arena {
        &mut self.arena
    }

    /// Decodes one watch event document (`{"type":…,"object":…}`, keys in any order).
    ///
    /// ```
    /// use kcache::wire::{Decoder, WatchEvent};
    /// let mut dec = Decoder::default();
    /// let ev = dec.decode_event(br#"{"type":"ADDED","object":{"metadata":{"name":"a","namespace":"ns","resourceVersion":"5"}}}"#).unwrap();
    /// let WatchEvent::Added(pod) = ev else { panic!() };
    /// assert_eq!((pod.key().as_str(), pod.resource_version()), ("ns/a", "5"));
    /// ```
    pub fn decode_event(&mut self, doc: &[u8]) -> Result<WatchEvent, DecodeError> {
        let dc = self.dc.clone();
        let mut sc = Scanner::new(doc);
        sc.ws();
        if sc.peek() != Some(b'{') {
            sc.skip_value(0)?;
            return Err(DecodeError::WrongShape("watch event is not a json object"));
        }
        let mut ty = None;
        let mut pending = None;
        if sc.object_begin(0)? {
            loop {
                let k = sc.key()?;
                match &*key_bytes(&sc, k) {
                    b"type" => {
                        // A second `type` would pair the object scanned under the
                        // first type with another one (a MODIFIED object returned as
                        // DELETED, a BOOKMARK as an object event): refuse it.
                        if ty.is_some() {
                            return Err(DecodeError::WrongShape("watch event has more than one type"));
                        }
                        if sc.peek() != Some(b'"') {
                            return Err(DecodeError::WrongShape("watch event type is not a string"));
                        }
                        let s = sc.string()?;
                        ty = Some(match &*key_bytes(&sc, s) {
                            b"ADDED" => EventType::Added,
                            b"MODIFIED" => EventType::Modified,
                            b"DELETED" => EventType::Deleted,
                            b"BOOKMARK" => EventType::Bookmark,
                            b"ERROR" => EventType::Error,
                            _ => return Err(DecodeError::UnknownEventType(owned(&sc, s)?)),
                        });
                    }
                    b"object" => {
                        sc.ws();
                        pending = Some(match ty {
                            Some(EventType::Bookmark) => {
                                let (rv, end) = bookmark(&mut sc, 1)?;
                                Pending::Bookmark(rv, end)
                            }
                            Some(EventType::Error) => Pending::Status(status(&mut sc, 1)?),
                            Some(_) => {
                                let (a, b) = self.work.object(&mut sc, &dc, 1)?;
                                Pending::Scanned(a, b)
                            }
                            None => {
                                let a = sc.pos;
                                sc.skip_value(1)?;
                                Pending::Raw(a, sc.pos)
                            }
                        });
                    }
                    _ => sc.skip_value(1)?,
                }
                if !sc.object_next()? {
                    break;
                }
            }
        }
        sc.end()?;
        let ty = ty.ok_or(DecodeError::WrongShape("watch event has no type"))?;
        let obj = match pending {
            None => return Err(DecodeError::WrongShape("watch event has no object")),
            Some(Pending::Bookmark(resource_version, initial_events_end)) => {
                return Ok(WatchEvent::Bookmark { resource_version, initial_events_end });
            }
            Some(Pending::Status(st)) => return Ok(WatchEvent::Error(st)),
            Some(Pending::Scanned(a, b)) => self.store(doc, a, b, true)?,
            Some(Pending::Raw(a, b)) => {
                // `object` came before `type`: scan it again now that we know what it is.
                let mut sc = Scanner { buf: doc, pos: a };
                match ty {
                    EventType::Bookmark => {
                        let (resource_version, initial_events_end) = bookmark(&mut sc, 1)?;
                        return Ok(WatchEvent::Bookmark { resource_version, initial_events_end });
                    }
                    EventType::Error => return Ok(WatchEvent::Error(status(&mut sc, 1)?)),
                    _ => {
                        self.work.object(&mut sc, &dc, 1)?;
                        self.store(doc, a, b, true)?
                    }
                }
            }
        };
        Ok(match ty {
            EventType::Added => WatchEvent::Added(obj),
            EventType::Modified => WatchEvent::Modified(obj),
            _ => WatchEvent::Deleted(obj),
        })
    }

    /// Decodes a LIST response body (`{"kind":"…List","metadata":{…},"items":[…]}`).
    ///
    /// ```
    /// let mut dec = kcache::wire::Decoder::default();
    /// let list = dec.decode_list(br#"{"kind":"PodList","metadata":{"resourceVersion":"9","continue":"c1","remainingItemCount":3},"items":[{"metadata":{"name":"a"}}]}"#).unwrap();
    /// assert_eq!(list.items[0].name(), "a");
    /// assert_eq!((list.resource_version.as_str(), list.continue_token.as_deref(), list.remaining_item_count), ("9", Some("c1"), Some(3)));
    /// ```
    pub fn decode_list(&mut self, doc: &[u8]) -> Result<ObjectList, DecodeError> {
        let dc = self.dc.clone();
        let mut sc = Scanner::new(doc);
        let mut list = ObjectList::default();
        sc.ws();
        if sc.peek() != Some(b'{') {
            sc.skip_value(0)?;
            return Err(DecodeError::WrongShape("list is not a json object"));
        }
        if sc.object_begin(0)? {
            loop {
                let k = sc.key()?;
                match &*key_bytes(&sc, k) {
                    b"metadata" if sc.peek() == Some(b'{') => {
                        if sc.object_begin(1)? {
                            loop {
                                let k = sc.key()?;
                                match &*key_bytes(&sc, k) {
                                    b"resourceVersion" => {
                                        list.resource_version = owned_or_null(&mut sc, "list resourceVersion is not a string")?;
                                    }
                                    b"continue" => {
                                        let c = owned_or_null(&mut sc, "list continue is not a string")?;
                                        list.continue_token = (!c.is_empty()).then_some(c);
                                    }
                                    b"remainingItemCount" => {
                                        list.remaining_item_count =
                                            int_or_null(&mut sc, "list remainingItemCount is not an integer")?;
                                    }
                                    _ => sc.skip_value(2)?,
                                }
                                if !sc.object_next()? {
                                    break;
                                }
                            }
                        }
                    }
                    b"items" if sc.peek() == Some(b'n') => null(&mut sc, "list items is not an array")?,
                    b"items" => {
                        if sc.peek() != Some(b'[') {
                            return Err(DecodeError::WrongShape("list items is not an array"));
                        }
                        if sc.array_begin(1)? {
                            loop {
                                let (a, b) = self.work.object(&mut sc, &dc, 2)?;
                                list.items.push(self.store(doc, a, b, true)?);
                                if !sc.array_next()? {
                                    break;
                                }
                            }
                        }
                    }
                    _ => sc.skip_value(1)?,
                }
                if !sc.object_next()? {
                    break;
                }
            }
        }
        sc.end()?;
        Ok(list)
    }

    /// Decodes a single object (a GET, create, update or delete response).
    pub fn decode_object(&mut self, doc: &[u8]) -> Result<Obj, DecodeError> {
        self.decode_object_with(doc, true)
    }

    fn decode_object_with(&mut self, doc: &[u8], transform: bool) -> R<Obj> {
        let dc = self.dc.clone();
        let mut sc = Scanner::new(doc);
        let (a, b) = self.work.object(&mut sc, &dc, 0)?;
        sc.end()?;
        self.store(doc, a, b, transform)
    }

    /// Stores the object at `doc[a..b]` (just scanned into `work`) in the arena.
    fn store(&mut self, doc: &[u8], a: usize, b: usize, transform: bool) -> R<Obj> {
        let w = &self.work;
        if !w.has_metadata {
            return Err(DecodeError::MissingMetadata);
        }
        if w.name.is_none_or(Span::is_empty) {
            return Err(DecodeError::MissingName);
        }
        let obj = doc.get(a..b).unwrap_or_default();
        let (parts, cut) = match w.cut {
            Some((cs, ce)) if a <= cs && cs <= ce && ce <= b => {
                ([&doc[a..cs], &doc[ce..b]], Some((cs - a, ce - a)))
            }
            _ => ([obj, &[][..]], None),
        };
        let size = parts[0].len() + parts[1].len();
        if size > self.dc.max_object_bytes {
            return Err(DecodeError::ObjectTooLarge { size, limit: self.dc.max_object_bytes });
        }
        if transform && let Some(t) = self.dc.config.transform.clone() {
            let mut v = Vec::with_capacity(size);
            v.extend_from_slice(parts[0]);
            v.extend_from_slice(parts[1]);
            t(&mut v);
            let same = v.len() == size && v[..parts[0].len()] == *parts[0] && v[parts[0].len()..] == *parts[1];
            if !same {
                return self.decode_object_with(&v, false);
            }
        }
        let meta = w.meta(cut);
        Ok(self.arena.store_parts(&parts, meta))
    }
}
