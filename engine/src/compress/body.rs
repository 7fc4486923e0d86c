//! An object's JSON as a reader gets it, and the metadata a compressed object keeps
//! uncompressed.

use std::fmt;
use std::ops::Deref;

use crate::object::{Meta, OwnerSpans, Span};

/// An object's JSON bytes, as [`crate::Obj::json`] returns them: borrowed from the
/// store for an uncompressed object, decompressed into a buffer of its own for a
/// compressed one (freed when the `Json` drops). Dereferences to `[u8]`.
#[derive(Clone)]
pub struct Json<'a>(Inner<'a>);

#[derive(Clone)]
enum Inner<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl<'a> Json<'a> {
    pub(crate) fn borrowed(bytes: &'a [u8]) -> Self {
        Json(Inner::Borrowed(bytes))
    }

    pub(crate) fn owned(bytes: Vec<u8>) -> Self {
        Json(Inner::Owned(bytes))
    }

    /// Whether the bytes are the store's own (no decompression was needed).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Inner::Borrowed(_))
    }

    /// The bytes as an owned vector (a copy when borrowed).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Inner::Borrowed(b) => b.to_vec(),
            Inner::Owned(v) => v,
        }
    }
}

impl Deref for Json<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Inner::Borrowed(b) => b,
            Inner::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Json<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for Json<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}
impl Eq for Json<'_> {}

impl PartialEq<[u8]> for Json<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}
impl PartialEq<&[u8]> for Json<'_> {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}
impl<const N: usize> PartialEq<[u8; N]> for Json<'_> {
    fn eq(&self, other: &[u8; N]) -> bool {
        **self == other[..]
    }
}
impl<const N: usize> PartialEq<&[u8; N]> for Json<'_> {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == other[..]
    }
}
impl PartialEq<Vec<u8>> for Json<'_> {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

/// `meta` with every span moved into a spill buffer of its own, so that it reads the
/// same without `bytes` (the body it was decoded from, about to be compressed).
pub(crate) fn detach_meta(bytes: &[u8], meta: &Meta) -> Meta {
    let mut spill = String::new();
    let mut mv = |span: Span| -> Span {
        if span.is_empty() {
            return Span::EMPTY;
        }
        let (buf, start) = if span.is_spill() { (meta.spill.as_bytes(), span.offset()) } else { (bytes, span.offset()) };
        let s = buf
            .get(start as usize..start as usize + span.len() as usize)
            .and_then(|s| std::str::from_utf8(s).ok())
            .unwrap_or("");
        let at = spill.len() as u32;
        spill.push_str(s);
        Span::spill(at, s.len() as u32)
    };
    let namespace = mv(meta.namespace);
    let name = mv(meta.name);
    let uid = mv(meta.uid);
    let resource_version = mv(meta.resource_version);
    let deletion_timestamp = meta.deletion_timestamp.map(&mut mv);
    let labels = meta.labels.iter().map(|&(k, v)| (mv(k), mv(v))).collect();
    let owners = meta
        .owners
        .iter()
        .map(|o| OwnerSpans { api_version: mv(o.api_version), kind: mv(o.kind), name: mv(o.name), uid: mv(o.uid), controller: o.controller })
        .collect();
    let fields = meta.fields.iter().map(|f| f.map(&mut mv)).collect();
    Meta {
        namespace,
        name,
        uid,
        resource_version,
        generation: meta.generation,
        deletion_timestamp,
        labels,
        owners,
        fields,
        spill: spill.into_boxed_str(),
    }
}
