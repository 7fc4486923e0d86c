//! One object's scan: its byte span, the metadata kcache keeps (name, namespace,
//! uid, resourceVersion, generation, deletionTimestamp, labels, ownerReferences)
//! and where `metadata.managedFields` lies, as spans in reusable scratch state.

use super::decoder::Compiled;
use super::error::DecodeError;
use super::scan::{R, Scanner, Str, invalid, unescape};
use super::values::{int_or_null, key_bytes, null};
use crate::object::{OwnerSpans, Span};

/// Per-object scratch state, reused across objects so decoding allocates only
/// the boxes that end up in [`Meta`](crate::object::Meta).
#[derive(Default)]
pub(super) struct Work {
    pub(super) base: usize,
    pub(super) has_metadata: bool,
    pub(super) name: Option<Span>,
    pub(super) namespace: Span,
    pub(super) uid: Span,
    pub(super) resource_version: Span,
    pub(super) generation: Option<i64>,
    pub(super) deletion_timestamp: Option<Span>,
    pub(super) labels: Vec<(Span, Span)>,
    pub(super) owners: Vec<OwnerSpans>,
    pub(super) fields: Vec<Option<Span>>,
    pub(super) spill: String,
    /// Absolute byte range of `"managedFields":[…]` plus one separator.
    pub(super) cut: Option<(usize, usize)>,
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
    pub(super) fn span(&mut self, sc: &Scanner<'_>, s: Str) -> R<Span> {
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

    /// Scans one object (cursor on `{`, after whitespace); returns its absolute span.
    pub(super) fn object(&mut self, sc: &mut Scanner<'_>, dc: &Compiled, depth: usize) -> R<(usize, usize)> {
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
}
