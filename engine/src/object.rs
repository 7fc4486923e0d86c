//! Immutable cached objects and the references that name them.
//!
//! An [`Obj`] is a cheap handle (one `Arc`) to an object's JSON bytes plus the
//! metadata the decoder found in them. The bytes never change once stored, so a
//! reader can hold an `Obj` for as long as it likes and share it across threads:
//! there is no "mutated the cache" bug class, and no deep copy is ever needed.
//!
//! # Guarantees
//! * Every metadata accessor returns a view into bytes the `Obj` owns: no
//!   allocation, no parse.
//! * Typed access ([`Obj::decode`]) and JSON pointer lookups ([`Obj::pointer`]) are
//!   lazy: they cost nothing until a caller asks.
//! * A compressed object ([`crate::compress`]) keeps its metadata uncompressed (its
//!   spans all point into the spill buffer): only [`Obj::json`], [`Obj::decode`],
//!   [`Obj::pointer`] and [`Obj::bytes`] decompress, each into a buffer of its own
//!   (~1-3 µs and one allocation for a 4-5 KB pod).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::arena::SegmentGuard;
use crate::compress::{CorruptBody, Dictionary};
pub use crate::compress::Json;

/// A byte range inside an object's bytes, its spill buffer, or the text of the
/// [`SharedMeta`] it shares with other objects (see [`Meta`]).
///
/// `start`'s top bit is set when the range refers to the spill buffer (strings the
/// decoder had to unescape, or the metadata of a compressed object); its top two
/// bits when it refers to the shared text. Offsets are therefore under 1 GiB, far
/// above any object the API server accepts (3 MiB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    start: u32,
    len: u32,
}

const SPILL_BIT: u32 = 1 << 31;
const SHARED_BITS: u32 = SPILL_BIT | (1 << 30);

impl Span {
    /// A range `[start, start + len)` of the object's JSON bytes.
    pub const fn new(start: u32, len: u32) -> Self {
        Span { start, len }
    }

    /// A range of the object's spill buffer (strings that contained escapes).
    pub const fn spill(start: u32, len: u32) -> Self {
        Span { start: start | SPILL_BIT, len }
    }

    /// A range of the text of the object's [`SharedMeta`].
    pub const fn shared(start: u32, len: u32) -> Self {
        Span { start: start | SHARED_BITS, len }
    }

    /// The empty span; reads as `""`.
    pub const EMPTY: Span = Span { start: 0, len: 0 };

    /// Whether the span is empty.
    pub const fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Length in bytes.
    pub const fn len(self) -> u32 {
        self.len
    }

    /// Start offset, in the object's bytes, the spill buffer ([`Span::is_spill`]) or
    /// the shared text ([`Span::is_shared`]).
    pub const fn offset(self) -> u32 {
        self.start & !SHARED_BITS
    }

    /// Whether the span refers to the spill buffer.
    pub const fn is_spill(self) -> bool {
        self.start & SHARED_BITS == SPILL_BIT
    }

    /// Whether the span refers to the text of the object's [`SharedMeta`].
    pub const fn is_shared(self) -> bool {
        self.start & SHARED_BITS == SHARED_BITS
    }

    /// The buffer the span refers to, of the three an object has.
    fn buffer<'a>(self, bytes: &'a [u8], spill: &'a str, shared: &'a str) -> &'a [u8] {
        match self.start & SHARED_BITS {
            0 => bytes,
            SPILL_BIT => spill.as_bytes(),
            SHARED_BITS => shared.as_bytes(),
            _ => &[],
        }
    }

    /// The span's bytes; empty when it does not lie within its buffer.
    pub(crate) fn bytes_in<'a>(self, bytes: &'a [u8], spill: &'a str, shared: &'a str) -> &'a [u8] {
        let start = self.offset() as usize;
        self.buffer(bytes, spill, shared).get(start..start + self.len as usize).unwrap_or_default()
    }

    fn resolve<'a>(self, bytes: &'a [u8], spill: &'a str, shared: &'a str) -> &'a str {
        if self.len == 0 {
            return "";
        }
        std::str::from_utf8(self.bytes_in(bytes, spill, shared)).unwrap_or("")
    }
}

/// One entry of `metadata.ownerReferences`, as spans.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OwnerSpans {
    /// `apiVersion` of the owner.
    pub api_version: Span,
    /// `kind` of the owner.
    pub kind: Span,
    /// `name` of the owner.
    pub name: Span,
    /// `uid` of the owner.
    pub uid: Span,
    /// `controller: true` was set.
    pub controller: bool,
}

/// The metadata the decoder extracted from an object, as spans into its bytes.
///
/// Built by [`crate::wire`]; read through [`Obj`]'s accessors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `metadata.namespace`; empty for cluster-scoped objects.
    pub namespace: Span,
    /// `metadata.name`.
    pub name: Span,
    /// `metadata.uid`.
    pub uid: Span,
    /// `metadata.resourceVersion`.
    pub resource_version: Span,
    /// `metadata.generation`, when present.
    pub generation: Option<i64>,
    /// `metadata.deletionTimestamp`, when present.
    pub deletion_timestamp: Option<Span>,
    /// `metadata.labels`, in document order (empty when [`Meta::shared`] holds them).
    pub labels: Box<[(Span, Span)]>,
    /// `metadata.ownerReferences`, in document order (empty when [`Meta::shared`]
    /// holds them).
    pub owners: Box<[OwnerSpans]>,
    /// Values of the registered index fields, in registration order; `None`
    /// when the pointer did not resolve to a string, number or boolean.
    pub fields: Box<[Option<Span>]>,
    /// Unescaped copies of strings that contained JSON escapes.
    pub spill: Box<str>,
    /// The labels, owner references and namespace this object shares with others
    /// (a compressed object's, interned per informer: see [`crate::compress`]).
    pub shared: Option<Arc<SharedMeta>>,
}

/// Metadata many objects of a kind have in common: the pods of one ReplicaSet have
/// the same namespace, labels and owner references. A compressed object keeps them
/// here, interned, instead of in a spill buffer of its own: one copy per set
/// rather than one per object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SharedMeta {
    /// `metadata.labels`, in document order; the spans are shared spans.
    pub labels: Box<[(Span, Span)]>,
    /// `metadata.ownerReferences`, in document order; the spans are shared spans.
    pub owners: Box<[OwnerSpans]>,
    /// The strings the spans refer to.
    pub text: Box<str>,
}

impl SharedMeta {
    /// Heap bytes of the set, besides the `Arc` that holds it.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val::<[(Span, Span)]>(&self.labels) + std::mem::size_of_val::<[OwnerSpans]>(&self.owners) + self.text.len()
    }
}

impl Meta {
    /// The label spans, wherever they are kept.
    pub fn label_spans(&self) -> &[(Span, Span)] {
        match &self.shared {
            Some(shared) => &shared.labels,
            None => &self.labels,
        }
    }

    /// The owner reference spans, wherever they are kept.
    pub fn owner_spans(&self) -> &[OwnerSpans] {
        match &self.shared {
            Some(shared) => &shared.owners,
            None => &self.owners,
        }
    }

    /// The text shared spans refer to (empty without a [`SharedMeta`]).
    pub fn shared_text(&self) -> &str {
        self.shared.as_ref().map_or("", |s| &s.text)
    }
}

/// Bytes of a key kept in the object itself; longer keys go to the heap. 38 keeps
/// the key in 40 bytes and an object's header (with its `Arc` counts) in 256, one of
/// mimalloc's size classes: a byte more would cost 64 per object.
const KEY_INLINE: usize = 38;

/// An object's client-go key, `namespace/name` (or `name`), as [`Obj::name`] and
/// [`Obj::namespace`] read: built once with the object, so that a store lookup
/// checks a key on the cache line it reads anyway for the reference count, where
/// reading the name and namespace would touch the metadata spans and the JSON bytes
/// (two to three more cache misses per lookup under writes).
enum KeyBuf {
    Inline { len: u8, bytes: [u8; KEY_INLINE] },
    Heap(Box<[u8]>),
}

impl KeyBuf {
    fn new(namespace: &str, name: &str) -> KeyBuf {
        let len = if namespace.is_empty() { name.len() } else { namespace.len() + 1 + name.len() };
        let mut key = Vec::with_capacity(if len <= KEY_INLINE { 0 } else { len });
        let mut bytes = [0u8; KEY_INLINE];
        let mut at = 0;
        let mut put = |part: &[u8]| {
            if len <= KEY_INLINE {
                bytes[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            } else {
                key.extend_from_slice(part);
            }
        };
        if !namespace.is_empty() {
            put(namespace.as_bytes());
            put(b"/");
        }
        put(name.as_bytes());
        match u8::try_from(len) {
            Ok(len) if usize::from(len) <= KEY_INLINE => KeyBuf::Inline { len, bytes },
            _ => KeyBuf::Heap(key.into_boxed_slice()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyBuf::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBuf::Heap(b) => b,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            KeyBuf::Inline { .. } => 0,
            KeyBuf::Heap(b) => b.len(),
        }
    }
}

fn key_of(bytes: &Bytes, meta: &Meta) -> KeyBuf {
    let shared = meta.shared_text();
    KeyBuf::new(meta.namespace.resolve(bytes, &meta.spill, shared), meta.name.resolve(bytes, &meta.spill, shared))
}

/// `repr(C)` with the key first: behind the `Arc`'s reference counts, it shares their
/// cache line, which is all a store lookup reads of an object.
#[repr(C)]
struct Inner {
    key: KeyBuf,
    bytes: Bytes,
    meta: Meta,
    /// Present when the bytes live in an [`crate::arena::Arena`] segment: keeps
    /// them counted as live there until the last handle drops.
    seg: Option<SegmentGuard>,
    body: Body,
}

/// How the bytes hold the object's JSON. The arena guard says the rest: whether plain
/// bytes wait for compression, and how long a frame's JSON is (one word here).
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// The bytes are the JSON.
    Plain,
    /// The bytes are a zstd frame made with this dictionary; no span of the metadata
    /// points into them.
    Zstd(Arc<Dictionary>),
}

/// An immutable cached Kubernetes object.
///
/// Cloning is one atomic increment. The JSON bytes are exactly what the store
/// holds (after any decode-time transform such as stripping `managedFields`).
///
/// ```
/// use kcache::Obj;
/// let pod = kcache::object::testing::pod("default", "web-0", "42", &[("app", "web")]);
/// assert_eq!(pod.name(), "web-0");
/// assert_eq!(pod.namespace(), Some("default"));
/// assert_eq!(pod.resource_version(), "42");
/// assert_eq!(pod.label("app"), Some("web"));
/// assert_eq!(pod.pointer("/metadata/name").and_then(|v| v.as_str().map(str::to_owned)).as_deref(), Some("web-0"));
/// ```
#[derive(Clone)]
pub struct Obj(Arc<Inner>);

/// Which object a handle was, without keeping the object alive: its bytes, metadata
/// and arena segment are freed with its last [`Obj`] as usual. It keeps only the
/// object's header allocation, so no other object can be allocated at the same
/// address while it exists: [`ObjIdentity::is`] never takes another object (a later
/// version at a reused address, say) for this one.
pub(crate) struct ObjIdentity(std::sync::Weak<Inner>);

impl ObjIdentity {
    /// Whether `obj` is a handle of the object this identity was taken from.
    pub(crate) fn is(&self, obj: &Obj) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&obj.0))
    }
}

impl Obj {
    /// Wraps bytes and the metadata decoded from them.
    ///
    /// The spans in `meta` must lie within `bytes` (or `meta.spill`); a span that
    /// does not reads as `""` rather than panicking.
    pub fn from_parts(bytes: Bytes, meta: Meta) -> Self {
        Obj(Arc::new(Inner { key: key_of(&bytes, &meta), bytes, meta, seg: None, body: Body::Plain }))
    }

    /// Wraps bytes carved from an arena segment; `guard` accounts for them. A
    /// [`Body::Zstd`] object's spans must all be spill spans.
    pub(crate) fn from_arena(bytes: Bytes, meta: Meta, guard: SegmentGuard, body: Body) -> Self {
        Obj(Arc::new(Inner { key: key_of(&bytes, &meta), bytes, meta, seg: Some(guard), body }))
    }

    /// How the bytes hold the JSON.
    pub(crate) fn body(&self) -> &Body {
        &self.0.body
    }

    /// Whether the body is stored as a zstd frame.
    pub fn is_compressed(&self) -> bool {
        matches!(self.0.body, Body::Zstd(_))
    }

    /// Whether a compressing arena stored the object before it had a dictionary:
    /// compaction compresses it once there is one.
    pub fn awaits_compression(&self) -> bool {
        matches!(self.0.body, Body::Plain) && self.0.seg.as_ref().is_some_and(SegmentGuard::is_waiting)
    }

    /// Version of the dictionary the body was compressed with.
    pub fn dictionary_version(&self) -> Option<u64> {
        match &self.0.body {
            Body::Zstd(dict) => Some(dict.version()),
            Body::Plain => None,
        }
    }

    /// Length of the object's JSON, without decompressing it.
    pub fn json_len(&self) -> usize {
        match &self.0.body {
            Body::Zstd(_) => self.frame_json_len().unwrap_or(0),
            Body::Plain => self.0.bytes.len(),
        }
    }

    /// The length of the JSON a compressed object's frame holds, as its arena
    /// recorded it.
    pub(crate) fn frame_json_len(&self) -> Option<usize> {
        self.0.seg.as_ref().and_then(SegmentGuard::frame_json_len)
    }

    /// The bytes the object holds: its JSON, or the zstd frame of a compressed one.
    pub fn stored_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The bytes the metadata spans that are not spill spans point into (empty for
    /// a compressed object, whose spans are all spill spans).
    pub(crate) fn span_bytes(&self) -> &[u8] {
        match &self.0.body {
            Body::Zstd(_) => &[],
            Body::Plain => &self.0.bytes,
        }
    }

    /// The id of the arena segment holding the bytes, or `None` when the object
    /// was built with [`Obj::from_parts`].
    pub fn segment_id(&self) -> Option<u64> {
        self.0.seg.as_ref().map(SegmentGuard::segment_id)
    }

    /// Whether the bytes sit in a sealed arena segment whose live ratio fell
    /// under the arena's sparse ratio: the store should swap this handle for
    /// [`crate::arena::Arena::relocate`]'s copy. See [`crate::arena`].
    pub fn segment_is_sparse(&self) -> bool {
        self.0.seg.as_ref().is_some_and(SegmentGuard::segment_is_sparse)
    }

    /// Heap bytes this handle owns besides the JSON bytes: the shared header
    /// and the boxed metadata (labels, owners, index fields, spill). Used for
    /// memory accounting; allocator overhead is not included, nor is a
    /// [`SharedMeta`], which other objects share (the arena counts those).
    pub fn meta_heap_bytes(&self) -> usize {
        let m = &self.0.meta;
        // Arc header (two counters) + Inner.
        2 * std::mem::size_of::<usize>()
            + std::mem::size_of::<Inner>()
            + std::mem::size_of_val::<[(Span, Span)]>(&m.labels)
            + std::mem::size_of_val::<[OwnerSpans]>(&m.owners)
            + std::mem::size_of_val::<[Option<Span>]>(&m.fields)
            + m.spill.len()
            + self.0.key.heap_bytes()
    }

    /// This very object's identity (not its content), for a cache that remembers
    /// which object it read: see [`ObjIdentity`].
    pub(crate) fn identity(&self) -> ObjIdentity {
        ObjIdentity(Arc::downgrade(&self.0))
    }

    /// Gives up the handle as a raw pointer, keeping its reference: the store's
    /// object table holds objects this way (see `store::table`).
    pub(crate) fn into_raw(self) -> *mut () {
        Arc::into_raw(self.0).cast_mut().cast()
    }

    /// Takes back a reference given up by [`Obj::into_raw`].
    ///
    /// # Safety
    /// `p` came from [`Obj::into_raw`], and the reference it stands for is either
    /// not yet taken back, or this handle is never dropped (a `ManuallyDrop` view
    /// while another holder keeps the reference).
    pub(crate) unsafe fn from_raw(p: *mut ()) -> Obj {
        // SAFETY: per the contract, `p` is `Arc::into_raw` of an `Arc<Inner>` with a
        // reference to spare.
        Obj(unsafe { Arc::from_raw(p.cast_const().cast::<Inner>()) })
    }

    /// The client-go key ([`Obj::key`]) as bytes, kept in the object: comparing it
    /// reads no metadata span and no JSON byte.
    pub(crate) fn key_bytes(&self) -> &[u8] {
        self.0.key.as_bytes()
    }

    /// The client-go key the object keeps, as a string. It was built from `&str`s, so
    /// the UTF-8 check cannot fail; it costs a pass over ~30 bytes where deriving the
    /// key again would check the name and namespace and read the JSON bytes.
    pub(crate) fn key_str(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).unwrap_or("")
    }

    /// The handle's reference count; the store's index tries load it to pull the count's
    /// cache line in ahead of a batch of clones (see `store::cow`).
    pub(crate) fn ref_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    fn s(&self, span: Span) -> &str {
        let m = &self.0.meta;
        span.resolve(self.span_bytes(), &m.spill, m.shared_text())
    }

    /// The bytes of one of the object's spans, without a UTF-8 check (empty when
    /// the span does not lie within its buffer).
    pub(crate) fn span_raw(&self, span: Span) -> &[u8] {
        let m = &self.0.meta;
        span.bytes_in(self.span_bytes(), &m.spill, m.shared_text())
    }

    /// The object's JSON bytes: borrowed from the store for an uncompressed object;
    /// for a compressed one, decompressed into a buffer the returned [`Json`] owns
    /// (~1-3 µs and one allocation for a 4-5 KB pod, on every call: keep the `Json`
    /// rather than calling again). A corrupt frame reads as empty bytes, counted in
    /// the codec's `corrupt_frames`; [`Obj::try_json`] says why.
    pub fn json(&self) -> Json<'_> {
        self.try_json().unwrap_or_else(|_| Json::borrowed(&[]))
    }

    /// [`Obj::json`], with the error of a compressed body that does not decompress to
    /// the bytes it was made from (never other bytes).
    pub fn try_json(&self) -> Result<Json<'_>, CorruptBody> {
        match &self.0.body {
            Body::Plain => Ok(Json::borrowed(&self.0.bytes)),
            Body::Zstd(dict) => match self.frame_json_len() {
                Some(len) => dict.decompress(&self.0.bytes, len).map(Json::owned),
                None => Err(CorruptBody { dictionary: dict.version(), reason: "the frame's length was not recorded".to_owned() }),
            },
        }
    }

    /// The object's JSON bytes as a shared [`Bytes`] handle: no copy for an
    /// uncompressed object, a decompressed copy for a compressed one (empty when its
    /// frame is corrupt, as [`Obj::json`]).
    pub fn bytes(&self) -> Bytes {
        match &self.0.body {
            Body::Plain => self.0.bytes.clone(),
            Body::Zstd(_) => Bytes::from(self.json().into_vec()),
        }
    }

    /// The decoded metadata spans.
    pub fn meta(&self) -> &Meta {
        &self.0.meta
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.s(self.0.meta.name)
    }

    /// `metadata.namespace`, or `None` for a cluster-scoped object.
    pub fn namespace(&self) -> Option<&str> {
        let ns = self.s(self.0.meta.namespace);
        (!ns.is_empty()).then_some(ns)
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        self.s(self.0.meta.uid)
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> &str {
        self.s(self.0.meta.resource_version)
    }

    /// `metadata.generation`, when present.
    pub fn generation(&self) -> Option<i64> {
        self.0.meta.generation
    }

    /// `metadata.deletionTimestamp`, when present.
    pub fn deletion_timestamp(&self) -> Option<&str> {
        self.0.meta.deletion_timestamp.map(|s| self.s(s))
    }

    /// `metadata.labels` as `(key, value)` pairs in document order.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.meta.label_spans().iter().map(|&(k, v)| (self.s(k), self.s(v)))
    }

    /// The value of one label.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// `metadata.ownerReferences`.
    pub fn owner_references(&self) -> impl ExactSizeIterator<Item = OwnerRef<'_>> + '_ {
        self.0.meta.owner_spans().iter().map(|o| OwnerRef {
            api_version: self.s(o.api_version),
            kind: self.s(o.kind),
            name: self.s(o.name),
            uid: self.s(o.uid),
            controller: o.controller,
        })
    }

    /// The value of the `i`-th registered index field (see [`crate::wire`]).
    pub fn field(&self, i: usize) -> Option<&str> {
        self.0.meta.fields.get(i).copied().flatten().map(|s| self.s(s))
    }

    /// The client-go cache key: `namespace/name`, or `name` when cluster-scoped.
    pub fn key(&self) -> String {
        self.key_str().to_owned()
    }

    /// A reference naming this object.
    pub fn to_ref(&self) -> ObjectRef {
        ObjectRef { name: self.name().to_owned(), namespace: self.namespace().map(str::to_owned) }
    }

    /// Decodes the whole object into a typed value (for example
    /// `k8s_openapi::api::core::v1::Pod`). Costs a full parse: call it only
    /// when the raw accessors are not enough.
    ///
    /// A compressed object is decompressed first (see [`Obj::json`]); a corrupt frame
    /// is an error naming it, not a decode of other bytes.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let json = self.try_json().map_err(<serde_json::Error as serde::de::Error>::custom)?;
        serde_json::from_slice(&json)
    }

    /// Looks up an RFC 6901 JSON pointer (e.g. `/status/phase`). Parses the object
    /// (decompressing a compressed one first); `None` when its frame is corrupt.
    pub fn pointer(&self, pointer: &str) -> Option<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_slice(&self.try_json().ok()?).ok()?;
        v.pointer(pointer).cloned()
    }
}

impl fmt::Debug for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Obj")
            .field("namespace", &self.namespace())
            .field("name", &self.name())
            .field("resource_version", &self.resource_version())
            .field("bytes", &self.json_len())
            .field("compressed", &self.is_compressed())
            .finish()
    }
}

impl PartialEq for Obj {
    /// Two handles are equal when their JSON is equal (decompressed only when one
    /// is compressed and the other is not, or they use different dictionaries).
    fn eq(&self, other: &Self) -> bool {
        if Arc::ptr_eq(&self.0, &other.0) {
            return true;
        }
        match (&self.0.body, &other.0.body) {
            (Body::Plain, Body::Plain) => self.0.bytes == other.0.bytes,
            (Body::Zstd(a), Body::Zstd(b)) if Arc::ptr_eq(a, b) && self.0.bytes == other.0.bytes => {
                self.frame_json_len() == other.frame_json_len()
            }
            _ => match (self.try_json(), other.try_json()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
        }
    }
}
impl Eq for Obj {}

/// A borrowed view of one owner reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerRef<'a> {
    /// `apiVersion` of the owner.
    pub api_version: &'a str,
    /// `kind` of the owner.
    pub kind: &'a str,
    /// `name` of the owner.
    pub name: &'a str,
    /// `uid` of the owner.
    pub uid: &'a str,
    /// Whether this owner is the managing controller.
    pub controller: bool,
}

/// Names an object: its namespace (for namespaced kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
}

impl ObjectRef {
    /// A reference to a namespaced object.
    pub fn new_namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectRef { name: name.into(), namespace: Some(namespace.into()) }
    }

    /// A reference to a cluster-scoped object.
    pub fn new_cluster(name: impl Into<String>) -> Self {
        ObjectRef { name: name.into(), namespace: None }
    }

    /// The client-go cache key: `namespace/name`, or `name`.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

pub mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testing_pod_reads_back_its_metadata() {
        let p = testing::pod("ns", "a", "7", &[("app", "x"), ("tier", "web")]);
        assert_eq!(p.key(), "ns/a");
        assert_eq!(p.uid(), "uid-ns-a");
        assert_eq!(p.labels().collect::<Vec<_>>(), vec![("app", "x"), ("tier", "web")]);
        let v: serde_json::Value = serde_json::from_slice(&p.json()).unwrap();
        assert_eq!(v["metadata"]["labels"]["tier"], "web");
    }

    #[test]
    fn testing_pod_full_reads_back_its_owners_and_node() {
        let p = testing::pod_full("ns", "a", "7", &[], &["rs-1", "x-2"], Some("node-3"));
        let v: serde_json::Value = serde_json::from_slice(&p.json()).unwrap();
        assert_eq!(v["metadata"]["ownerReferences"][1]["uid"], "x-2");
        assert_eq!(v["spec"]["nodeName"], "node-3");
        let owners: Vec<_> = p.owner_references().map(|o| (o.uid, o.controller)).collect();
        assert_eq!(owners, vec![("rs-1", true), ("x-2", false)]);
        assert_eq!(p.field(0), Some("node-3"));
        assert_eq!(p.key(), "ns/a");
        let bare = testing::pod_full("ns", "b", "1", &[("app", "x")], &[], None);
        assert!(serde_json::from_slice::<serde_json::Value>(&bare.json()).is_ok());
        assert_eq!((bare.field(0), bare.owner_references().len()), (None, 0));
    }

    #[test]
    fn the_kept_key_is_the_key_short_or_long_and_shares_the_counts_cache_line() {
        let long_name = "n".repeat(200);
        for (ns, name) in [("ns", "a"), ("", "node-1"), ("kube-system", long_name.as_str()), ("default", "web-0123456789-abcdefghij-klmnopqrstu")] {
            let p = testing::pod(ns, name, "1", &[]);
            assert_eq!(p.key_bytes(), p.key().as_bytes(), "{ns}/{name}");
        }
        assert_eq!(testing::pod("kube-system", &long_name, "1", &[]).meta_heap_bytes() - testing::pod("kube-system", "a", "1", &[]).meta_heap_bytes(), "kube-system/".len() + 200);
        // Two reference counts and the key: one 64-byte line.
        assert!(2 * std::mem::size_of::<usize>() + std::mem::size_of::<KeyBuf>() <= 64);
    }

    #[test]
    fn cluster_scoped_object_has_no_namespace_and_bare_key() {
        let n = testing::object("Node", "", "node-1", "3", &[]);
        assert_eq!(n.namespace(), None);
        assert_eq!(n.key(), "node-1");
        assert_eq!(n.to_ref(), ObjectRef::new_cluster("node-1"));
    }

    #[test]
    fn out_of_range_span_reads_empty_instead_of_panicking() {
        let meta = Meta { name: Span::new(100, 5), ..Meta::default() };
        let o = Obj::from_parts(Bytes::from_static(b"{}"), meta);
        assert_eq!(o.name(), "");
    }

    #[test]
    fn spill_spans_read_from_the_spill_buffer() {
        let meta = Meta { name: Span::spill(0, 3), spill: "a\"b".into(), ..Meta::default() };
        let o = Obj::from_parts(Bytes::from_static(b"{}"), meta);
        assert_eq!(o.name(), "a\"b");
    }
}
#[cfg(test)]
mod layout_tests {
    /// An object's header is allocated with its `Arc` counts: 256 bytes is one of
    /// mimalloc's size classes, the next is 320, so every field added past it costs 64
    /// bytes an object (64 MiB at a million).
    #[test]
    fn an_objects_header_with_its_counts_fits_256_bytes() {
        assert!(2 * std::mem::size_of::<usize>() + std::mem::size_of::<super::Inner>() <= 256);
    }
}
