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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Obj;
    use bytes::Bytes;

    #[test]
    fn detached_metadata_reads_the_same_without_the_body() {
        let pod = crate::object::testing::pod("default", "web-0", "42", &[("app", "web"), ("tier", "front")]);
        let meta = detach_meta(pod.stored_bytes(), pod.meta());
        assert!(meta.name.is_spill() && meta.namespace.is_spill() && meta.labels.iter().all(|(k, v)| k.is_spill() && v.is_spill()));
        // Bytes that are not the body: every accessor must read the spill buffer only.
        let detached = Obj::from_parts(Bytes::from_static(b"{}"), meta);
        assert_eq!(detached.name(), "web-0");
        assert_eq!(detached.namespace(), Some("default"));
        assert_eq!(detached.resource_version(), "42");
        assert_eq!(detached.labels().collect::<Vec<_>>(), vec![("app", "web"), ("tier", "front")]);
        assert_eq!(detached.key(), pod.key());
    }

    #[test]
    fn json_compares_and_derefs_like_its_bytes() {
        let owned = Json::owned(b"{\"a\":1}".to_vec());
        let borrowed = Json::borrowed(b"{\"a\":1}");
        assert_eq!(owned, borrowed);
        assert_eq!(owned, b"{\"a\":1}");
        assert_eq!(borrowed.len(), 7);
        assert!(borrowed.is_borrowed() && !owned.is_borrowed());
        assert_eq!(owned.into_vec(), b"{\"a\":1}".to_vec());
    }
}
