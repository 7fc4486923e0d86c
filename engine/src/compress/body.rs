//! An object's JSON as a reader gets it, and the metadata a compressed object keeps
//! uncompressed.

use std::fmt;
use std::ops::Deref;

use super::Interner;
use crate::object::{Meta, OwnerSpans, SharedMeta, Span};

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

/// `meta` with every span moved out of `bytes` (the body it was decoded from, about
/// to be compressed), so that it reads the same without them: the namespace, labels
/// and owner references into a [`SharedMeta`] interned in `interner`, the rest
/// (name, uid, resourceVersion, deletionTimestamp, index fields) into a spill
/// buffer of its own.
pub(crate) fn detach_meta(bytes: &[u8], meta: &Meta, interner: &Interner) -> Meta {
    let read = |span: Span| -> &str { std::str::from_utf8(span.bytes_in(bytes, &meta.spill, meta.shared_text())).unwrap_or("") };
    let copy = |to: &mut String, span: Span, tag: fn(u32, u32) -> Span| -> Span {
        let s = read(span);
        if s.is_empty() {
            return Span::EMPTY;
        }
        let at = to.len() as u32;
        to.push_str(s);
        tag(at, s.len() as u32)
    };

    let mut text = String::new();
    let namespace = copy(&mut text, meta.namespace, Span::shared);
    let labels = meta.label_spans().iter().map(|&(k, v)| (copy(&mut text, k, Span::shared), copy(&mut text, v, Span::shared))).collect();
    let owners = meta
        .owner_spans()
        .iter()
        .map(|o| OwnerSpans {
            api_version: copy(&mut text, o.api_version, Span::shared),
            kind: copy(&mut text, o.kind, Span::shared),
            name: copy(&mut text, o.name, Span::shared),
            uid: copy(&mut text, o.uid, Span::shared),
            controller: o.controller,
        })
        .collect();
    let shared = interner.intern(SharedMeta { labels, owners, text: text.into_boxed_str() });

    let mut spill = String::new();
    let name = copy(&mut spill, meta.name, Span::spill);
    let uid = copy(&mut spill, meta.uid, Span::spill);
    let resource_version = copy(&mut spill, meta.resource_version, Span::spill);
    let deletion_timestamp = meta.deletion_timestamp.map(|s| copy(&mut spill, s, Span::spill));
    let fields = meta.fields.iter().map(|f| f.map(|s| copy(&mut spill, s, Span::spill))).collect();
    Meta {
        namespace,
        name,
        uid,
        resource_version,
        generation: meta.generation,
        deletion_timestamp,
        labels: Box::default(),
        owners: Box::default(),
        fields,
        spill: spill.into_boxed_str(),
        shared: Some(shared),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Obj;
    use bytes::Bytes;
    use std::sync::Arc;

    #[test]
    fn detached_metadata_reads_the_same_without_the_body() {
        let interner = Interner::new();
        let pod = crate::object::testing::pod("default", "web-0", "42", &[("app", "web"), ("tier", "front")]);
        let meta = detach_meta(pod.stored_bytes(), pod.meta(), &interner);
        assert!(meta.name.is_spill() && meta.namespace.is_shared());
        assert!(meta.label_spans().iter().all(|(k, v)| k.is_shared() && v.is_shared()));
        // Bytes that are not the body: every accessor must read the spill buffer and
        // the shared set only.
        let detached = Obj::from_parts(Bytes::from_static(b"{}"), meta);
        assert_eq!(detached.name(), "web-0");
        assert_eq!(detached.namespace(), Some("default"));
        assert_eq!(detached.resource_version(), "42");
        assert_eq!(detached.uid(), pod.uid());
        assert_eq!(detached.labels().collect::<Vec<_>>(), vec![("app", "web"), ("tier", "front")]);
        assert_eq!(detached.key(), pod.key());
        // Detaching again (compaction moves a detached object) changes nothing.
        let again = detach_meta(b"", detached.meta(), &interner);
        assert_eq!(&again, detached.meta());
    }

    #[test]
    fn pods_of_one_owner_share_their_labels_owners_and_namespace() {
        let interner = Interner::new();
        let pod = |name: &str, owner: &str| {
            let json = format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"ns","uid":"u-{name}","resourceVersion":"7","labels":{{"app":"web"}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"{owner}","uid":"u-{owner}","controller":true}}]}}}}"#
            );
            crate::wire::Decoder::default().decode_object(json.as_bytes()).expect("decodes")
        };
        let (a, b, c) = (pod("a", "rs-1"), pod("b", "rs-1"), pod("c", "rs-2"));
        let detach = |o: &Obj| Obj::from_parts(Bytes::new(), detach_meta(o.stored_bytes(), o.meta(), &interner));
        let (da, db, dc) = (detach(&a), detach(&b), detach(&c));
        let (sa, sb, sc) = (da.meta().shared.as_ref().unwrap(), db.meta().shared.as_ref().unwrap(), dc.meta().shared.as_ref().unwrap());
        assert!(Arc::ptr_eq(sa, sb) && !Arc::ptr_eq(sa, sc));
        for (orig, det) in [(&a, &da), (&b, &db), (&c, &dc)] {
            assert_eq!(det.name(), orig.name());
            assert_eq!(det.uid(), orig.uid());
            assert_eq!(det.owner_references().collect::<Vec<_>>(), orig.owner_references().collect::<Vec<_>>());
            assert_eq!(det.labels().collect::<Vec<_>>(), orig.labels().collect::<Vec<_>>());
        }
        assert_eq!(interner.stats().sets, 2);
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
