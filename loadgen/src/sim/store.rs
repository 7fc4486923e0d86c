//! The in-memory object store: one resourceVersion counter, per-resource sorted
//! maps of serialized objects, a bounded event history and the live event fan-out.
//!
//! # Guarantees
//! * Every write does its JSON work (parse, patch, serialise) outside the state
//!   lock against the version it read, then takes the lock, checks that version
//!   is still current (else redoes the work: optimistic concurrency, as etcd's
//!   guaranteed update does), bumps the one global resourceVersion and splices
//!   it into the serialised bytes; history append and broadcast happen under
//!   the same lock, so a watcher that subscribes under the lock sees every later
//!   event exactly once and in resourceVersion order.
//! * Objects are kept as serialized JSON (`Bytes`); a `serde_json::Value` exists
//!   only while a write builds the next version, and a merge patch that leaves
//!   `spec` and the server-owned fields alone parses only what it reaches
//!   ([`super::lazy`]; same bytes out as the full path). Each event's wire frame
//!   is built once and shared by every watcher.
//! * Keys (`namespace/name`, or `name` when cluster-scoped) are kept in a
//!   `BTreeMap`, so pagination order is stable and a namespace is one key range.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use super::lazy::{Field, LazyObject, write_key};
use super::resource::ResourceDef;
use super::selector::{FieldSelector, FieldValues, LabelSelector};
use super::status::{ApiError, write_json};
use super::time::{new_uid, now_rfc3339};
use super::token;

/// Index of a registered resource.
pub(crate) type ResourceId = usize;

/// One stored object version: its bytes and what selectors need from it.
#[derive(Debug)]
pub struct Stored {
    /// `namespace/name`, or `name` when cluster-scoped.
    pub key: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (empty when cluster-scoped).
    pub namespace: String,
    /// The resourceVersion this version was written at.
    pub rv: u64,
    /// `metadata.labels`.
    pub labels: Vec<(String, String)>,
    /// `spec.nodeName` (empty when unset).
    pub node_name: String,
    /// `status.phase` (empty when unset).
    pub phase: String,
    /// The object JSON, `{"kind":…,"apiVersion":…,"metadata":…,…}`.
    pub body: Bytes,
    /// Offset of `"metadata":` in `body`: `{` + `body[rest..]` is the object without
    /// kind/apiVersion, as LIST items are sent.
    rest: usize,
    /// Byte range of the `metadata` object in `body`.
    meta: (usize, usize),
}

impl Stored {
    /// Field values for field selectors.
    pub fn fields(&self) -> FieldValues<'_> {
        FieldValues {
            name: &self.name,
            namespace: &self.namespace,
            node_name: &self.node_name,
            phase: &self.phase,
        }
    }

    /// Whether the object passes both selectors.
    pub fn matches(&self, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        labels.matches(&self.labels) && fields.matches(&self.fields())
    }

    /// Appends the object as a LIST item (no kind/apiVersion).
    pub fn write_item(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        out.extend_from_slice(&self.body[self.rest..]);
    }

    /// The `metadata` object's JSON.
    pub fn metadata_json(&self) -> &[u8] {
        &self.body[self.meta.0..self.meta.1]
    }

    /// Appends the object as a `PartialObjectMetadata`.
    pub fn write_partial(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#,
        );
        out.extend_from_slice(self.metadata_json());
        out.push(b'}');
    }

    /// Parses the stored bytes back into a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`
    Added,
    /// `MODIFIED`
    Modified,
    /// `DELETED`
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed write, as history and live watchers see it.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub resource: ResourceId,
    pub ty: EventType,
    /// The new version (for DELETED: the last version, stamped with the delete's RV).
    pub obj: Arc<Stored>,
    /// The version before this write (None for creates).
    pub prev: Option<Arc<Stored>>,
    /// `{"type":…,"object":…}\n`, built once and shared.
    pub frame: Bytes,
}

/// Builds a watch frame `{"type":TY,"object":BODY}\n`.
pub(crate) fn frame(ty: &str, body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(br#"{"type":""#);
    out.extend_from_slice(ty.as_bytes());
    out.extend_from_slice(br#"","object":"#);
    out.extend_from_slice(body);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

struct State {
    rv: u64,
    resources: Vec<Arc<ResourceDef>>,
    objects: Vec<BTreeMap<String, Arc<Stored>>>,
    history: VecDeque<Arc<Event>>,
    /// Every event with `rv <= compacted` may be gone from history: reads and
    /// watches at an older resourceVersion answer 410 Expired.
    compacted: u64,
}

/// How a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// From the current state, with no initial events.
    Now,
    /// Synthetic ADDED events for the current state, then live events.
    InitialState,
    /// Every event after this resourceVersion.
    From(u64),
}

/// What a new watch starts with.
pub(crate) struct WatchSeed {
    pub initial: Vec<Arc<Stored>>,
    pub backlog: Vec<Arc<Event>>,
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// All events up to here are in `initial`/`backlog`; later ones arrive on `rx`.
    pub rv: u64,
}

/// LIST parameters, already parsed from the query.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Restrict to one namespace.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0 or None: no limit).
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// Answer with a `PartialObjectMetadataList`.
    pub metadata_only: bool,
}

/// DELETE options the simulator honours.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds` (recorded as `deletionGracePeriodSeconds`; deletion is immediate).
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// The kind of PATCH body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
}

/// The in-memory API state. See the module docs for its guarantees.
pub struct Store {
    state: Mutex<State>,
    history_cap: usize,
    tx: broadcast::Sender<Arc<Event>>,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn key_of(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_owned()
    } else {
        format!("{ns}/{name}")
    }
}

/// A top-level field value, from a parsed object or a lazily patched one.
#[derive(Clone, Copy)]
enum FieldRef<'x, 'a> {
    Json(&'x Value),
    Lazy(&'x Field<'a>),
}

impl FieldRef<'_, '_> {
    fn write(self, out: &mut Vec<u8>) {
        match self {
            FieldRef::Json(v) => write_json(out, v),
            FieldRef::Lazy(f) => f.write(out),
        }
    }
}

/// Serialises an object as `{"kind","apiVersion","metadata",spec,status,rest…}`
/// (the rest in key order) and records where metadata sits. `fields` are the
/// object's top-level fields; its own `kind`/`apiVersion` give way to `def`'s.
fn encode<'x, 'a>(
    def: &ResourceDef,
    fields: impl Iterator<Item = (&'x str, FieldRef<'x, 'a>)>,
) -> (Vec<u8>, usize, (usize, usize))
where
    'a: 'x,
{
    let mut metadata = None;
    let mut rest: Vec<(u8, &str, FieldRef<'_, '_>)> = Vec::with_capacity(8);
    for (k, v) in fields {
        match k {
            "kind" | "apiVersion" => {}
            "metadata" => metadata = Some(v),
            "spec" => rest.push((0, k, v)),
            "status" => rest.push((1, k, v)),
            _ => rest.push((2, k, v)),
        }
    }
    rest.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(br#"{"kind":"#);
    write_json(&mut out, &Value::String(def.kind.clone()));
    out.extend_from_slice(br#","apiVersion":"#);
    write_json(&mut out, &Value::String(def.api_version()));
    out.push(b',');
    let rest_at = out.len();
    out.extend_from_slice(br#""metadata":"#);
    let meta_start = out.len();
    match metadata {
        Some(m) => m.write(&mut out),
        None => out.extend_from_slice(b"{}"),
    }
    let meta_end = out.len();
    for (_, k, v) in rest {
        out.push(b',');
        write_key(&mut out, k);
        v.write(&mut out);
    }
    out.push(b'}');
    (out, rest_at, (meta_start, meta_end))
}

/// Placeholder stamped into `metadata.resourceVersion` before the real value is
/// known; serde_json writes U+0001 as `\u0001`.
const RV_PLACEHOLDER: &str = "\u{1}";
const RV_PLACEHOLDER_JSON: &[u8] = br#""resourceVersion":"\u0001""#;

/// An object serialised outside the state lock, waiting for its resourceVersion.
pub(crate) struct Prepared {
    key: String,
    body: Vec<u8>,
    /// Offset of the placeholder's escaped text (`\u0001`, 6 bytes) in `body`.
    rv_at: usize,
    rest: usize,
    meta: (usize, usize),
    name: String,
    namespace: String,
    labels: Vec<(String, String)>,
    node_name: String,
    phase: String,
}

/// Serialises `obj` with a placeholder resourceVersion and extracts what
/// selectors need: all the per-write CPU work, done without the lock.
fn prepare(def: &ResourceDef, key: String, mut obj: Map<String, Value>) -> Prepared {
    meta_mut(&mut obj).insert(
        "resourceVersion".into(),
        Value::String(RV_PLACEHOLDER.to_owned()),
    );
    let (body, rest, meta) = encode(def, obj.iter().map(|(k, v)| (k.as_str(), FieldRef::Json(v))));
    let field = |top: &str, ptr: &str| obj.get(top).map_or("", |v| str_at(v, ptr)).to_owned();
    let labels = obj
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .map(label_pairs)
        .unwrap_or_default();
    Prepared::new(
        key,
        (body, rest, meta),
        field("metadata", "/name"),
        field("metadata", "/namespace"),
        labels,
        field("spec", "/nodeName"),
        field("status", "/phase"),
    )
}

/// The pairs of a `metadata.labels` value (none when it is not an object).
fn label_pairs(labels: &Value) -> Vec<(String, String)> {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Metadata fields every write carries over from the version before it
/// (`generation` is the server's too, but computed: see [`merge_server_fields`]).
const CARRIED_METADATA: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "name",
    "namespace",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// `patch` (a JSON patch when `json_patch` is given, else a merge patch) of
/// `cur`, prepared by parsing the whole object: every patch the lazy path
/// declines, and the reference the lazy path is tested against.
fn prepare_patch_full(
    def: &ResourceDef,
    name: &str,
    cur: &Stored,
    patch: &Value,
    json_patch: Option<&json_patch::Patch>,
    status_only: bool,
) -> Result<Prepared, ApiError> {
    let old = into_object(cur.to_value(), &def.kind)?;
    let mut doc = Value::Object(old.clone());
    match json_patch {
        Some(p) => json_patch::patch(&mut doc, p).map_err(|e| {
            ApiError::invalid(
                &def.kind,
                name,
                "patch",
                "FieldValueInvalid",
                &format!("the patch could not be applied: {e}"),
            )
        })?,
        None => json_patch::merge(&mut doc, patch),
    }
    let patched = into_object(doc, &def.kind)?;
    let patched_rv = patched
        .get("metadata")
        .map(|m| str_at(m, "/resourceVersion"))
        .unwrap_or("");
    if !patched_rv.is_empty() && patched_rv != cur.rv.to_string() {
        return Err(ApiError::conflict(&def.plural, name));
    }
    let next = merge_server_fields(&old, patched, status_only);
    Ok(prepare(def, cur.key.clone(), next))
}

/// The merge patch `patch` of `cur`, prepared without parsing what the patch
/// does not reach (see [`super::lazy`]). `None` when this patch or object needs
/// the full path: one that may change `spec` (the generation then depends on a
/// comparison), sets `kind`/`apiVersion` or a server-owned metadata field, or
/// meets a stored key with an escape. The result is byte for byte the full
/// path's.
fn prepare_merge_lazy(
    def: &ResourceDef,
    name: &str,
    cur: &Stored,
    patch: &Map<String, Value>,
) -> Option<Result<Prepared, ApiError>> {
    if ["spec", "kind", "apiVersion"].iter().any(|k| patch.contains_key(*k)) {
        return None;
    }
    let meta_patch = match patch.get("metadata") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return None,
    };
    if let Some(m) = meta_patch {
        // The full path restores these; the lazy one takes only patches that leave them alone.
        if m.contains_key("generation") || CARRIED_METADATA.iter().any(|k| m.contains_key(*k)) {
            return None;
        }
        let want_rv = m.get("resourceVersion").and_then(Value::as_str).unwrap_or("");
        if !want_rv.is_empty() && want_rv != cur.rv.to_string() {
            return Some(Err(ApiError::conflict(&def.plural, name)));
        }
    }
    let stored = std::str::from_utf8(&cur.body).ok()?;
    let mut obj = LazyObject::parse(stored).ok()?;
    obj.merge(patch).ok()?;
    let meta = obj.object_mut("metadata").ok()?;
    // The full path writes the generation back as an integer (1 when absent).
    let generation_is_integer = matches!(
        meta.get("generation"),
        Some(Field::Raw(g)) if !g.get().is_empty() && g.get().len() < 19 && g.get().bytes().all(|b| b.is_ascii_digit())
    );
    if !generation_is_integer {
        return None;
    }
    meta.set(
        "resourceVersion",
        Field::Value(Value::String(RV_PLACEHOLDER.to_owned())),
    );
    let labels = match meta.get("labels") {
        Some(Field::Raw(_)) => cur.labels.clone(),
        Some(f) => label_pairs(&f.to_value()),
        None => Vec::new(),
    };
    let phase = match obj.get("status") {
        Some(Field::Raw(_)) => cur.phase.clone(),
        Some(Field::Object(o)) => o.get("phase").and_then(Field::as_string).unwrap_or_default(),
        Some(Field::Value(v)) => str_at(v, "/phase").to_owned(),
        None => String::new(),
    };
    let encoded = encode(def, obj.fields().map(|(k, v)| (k, FieldRef::Lazy(v))));
    Some(Ok(Prepared::new(
        cur.key.clone(),
        encoded,
        cur.name.clone(),
        cur.namespace.clone(),
        labels,
        cur.node_name.clone(),
        phase,
    )))
}

impl Prepared {
    /// An encoded object (see [`encode`]) and its selector fields.
    fn new(
        key: String,
        (body, rest, meta): (Vec<u8>, usize, (usize, usize)),
        name: String,
        namespace: String,
        labels: Vec<(String, String)>,
        node_name: String,
        phase: String,
    ) -> Prepared {
        let rv_at = body[meta.0..meta.1]
            .windows(RV_PLACEHOLDER_JSON.len())
            .position(|w| w == RV_PLACEHOLDER_JSON)
            .map_or(0, |p| meta.0 + p + RV_PLACEHOLDER_JSON.len() - 7);
        Prepared { key, body, rv_at, rest, meta, name, namespace, labels, node_name, phase }
    }

    /// Splices the resourceVersion in (one copy of the bytes).
    fn finish(self, rv: u64) -> Stored {
        let rv_s = rv.to_string();
        let mut body = Vec::with_capacity(self.body.len() + rv_s.len());
        body.extend_from_slice(&self.body[..self.rv_at]);
        body.extend_from_slice(rv_s.as_bytes());
        body.extend_from_slice(&self.body[self.rv_at + 6..]);
        let grow = rv_s.len();
        Stored {
            key: self.key,
            name: self.name,
            namespace: self.namespace,
            rv,
            labels: self.labels,
            node_name: self.node_name,
            phase: self.phase,
            body: Bytes::from(body),
            rest: self.rest,
            meta: (self.meta.0, self.meta.1 + grow - 6),
        }
    }
}

fn meta_mut(obj: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn into_object(v: Value, kind: &str) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request(format!(
            "the body of the request is not a JSON object (expected a {kind})"
        ))),
    }
}

fn check_type(def: &ResourceDef, obj: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            def.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
        && av != def.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    Ok(())
}

fn gen_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(CHARS[rand::random_range(0..CHARS.len())]))
        .collect()
}

impl Store {
    /// A store serving `resources`, keeping the last `history_cap` events and a
    /// live fan-out buffer of `watch_buffer` events per watcher.
    pub fn new(resources: Vec<ResourceDef>, history_cap: usize, watch_buffer: usize) -> Self {
        let n = resources.len();
        let (tx, _) = broadcast::channel(watch_buffer.max(16));
        Store {
            state: Mutex::new(State {
                rv: 1,
                resources: resources.into_iter().map(Arc::new).collect(),
                objects: (0..n).map(|_| BTreeMap::new()).collect(),
                history: VecDeque::with_capacity(history_cap.min(1 << 16)),
                compacted: 0,
            }),
            history_cap: history_cap.max(1),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way later reads would trip over (each write is one insert), so keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers one more resource type; a type already served is left as it is.
    pub fn register(&self, def: ResourceDef) -> ResourceId {
        let mut st = self.lock();
        if let Some(i) = st.resources.iter().position(|r| {
            r.group == def.group && r.version == def.version && r.plural == def.plural
        }) {
            return i;
        }
        st.resources.push(Arc::new(def));
        st.objects.push(BTreeMap::new());
        st.resources.len() - 1
    }

    /// Looks a resource up by group, version and plural.
    pub(crate) fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<(ResourceId, Arc<ResourceDef>)> {
        let st = self.lock();
        st.resources
            .iter()
            .position(|r| r.group == group && r.version == version && r.plural == plural)
            .map(|i| (i, st.resources[i].clone()))
    }

    /// Looks a resource up by kubectl-style name (`pods`, `deployments.apps`).
    pub(crate) fn lookup_name(&self, name: &str) -> Option<(ResourceId, Arc<ResourceDef>)> {
        let st = self.lock();
        st.resources
            .iter()
            .position(|r| r.name() == name)
            .map(|i| (i, st.resources[i].clone()))
    }

    /// All served resource types.
    pub fn resources(&self) -> Vec<Arc<ResourceDef>> {
        self.lock().resources.clone()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Number of objects of one resource.
    pub(crate) fn count(&self, res: ResourceId) -> usize {
        self.lock().objects.get(res).map_or(0, BTreeMap::len)
    }

    /// Total number of objects.
    pub fn total_objects(&self) -> usize {
        self.lock().objects.iter().map(BTreeMap::len).sum()
    }

    /// The current objects of one resource (optionally one namespace), in key order.
    pub(crate) fn snapshot(&self, res: ResourceId, ns: Option<&str>) -> Vec<Arc<Stored>> {
        let st = self.lock();
        let Some(map) = st.objects.get(res) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => {
                let prefix = format!("{ns}/");
                map.range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, v)| v.clone())
                    .collect()
            }
            None => map.values().cloned().collect(),
        }
    }

    /// One object.
    pub(crate) fn get(&self, res: ResourceId, ns: &str, name: &str) -> Option<Arc<Stored>> {
        self.lock()
            .objects
            .get(res)?
            .get(&key_of(ns, name))
            .cloned()
    }

    /// Forgets all history: every resourceVersion older than now is expired.
    pub(crate) fn expire_history(&self) {
        let mut st = self.lock();
        st.compacted = st.rv;
        st.history.clear();
    }

    /// Oldest resourceVersion still served from history.
    pub(crate) fn compacted(&self) -> u64 {
        self.lock().compacted
    }

    fn commit(
        &self,
        st: &mut State,
        res: ResourceId,
        prepared: Prepared,
        ty: EventType,
        prev: Option<Arc<Stored>>,
    ) -> Arc<Stored> {
        st.rv += 1;
        let rv = st.rv;
        let stored = Arc::new(prepared.finish(rv));
        if ty == EventType::Deleted {
            st.objects[res].remove(&stored.key);
        } else {
            st.objects[res].insert(stored.key.clone(), stored.clone());
        }
        let ev = Arc::new(Event {
            rv,
            resource: res,
            ty,
            obj: stored.clone(),
            prev,
            frame: frame(ty.as_str(), &stored.body),
        });
        st.history.push_back(ev.clone());
        while st.history.len() > self.history_cap {
            if let Some(old) = st.history.pop_front() {
                st.compacted = old.rv;
            }
        }
        // No receivers is not an error: nobody is watching.
        let _ = self.tx.send(ev);
        stored
    }

    /// The current version of `key`, under a brief lock.
    fn current(&self, res: ResourceId, key: &str) -> Option<Arc<Stored>> {
        self.lock().objects[res].get(key).cloned()
    }

    /// Commits `prepared` if `key` still holds `expected`; `Ok(None)` means it
    /// changed meanwhile and the caller must retry against the new version.
    fn commit_if_unchanged(
        &self,
        res: ResourceId,
        def: &ResourceDef,
        name: &str,
        expected: &Arc<Stored>,
        prepared: Prepared,
        ty: EventType,
    ) -> Result<Option<Arc<Stored>>, ApiError> {
        let mut st = self.lock();
        match st.objects[res].get(&prepared.key) {
            Some(now) if Arc::ptr_eq(now, expected) => Ok(Some(self.commit(
                &mut st,
                res,
                prepared,
                ty,
                Some(expected.clone()),
            ))),
            Some(_) => Ok(None),
            None => Err(ApiError::not_found(&def.plural, name)),
        }
    }

    /// Creates an object (POST). `path_ns` is the namespace from the URL.
    pub(crate) fn create(
        &self,
        res: ResourceId,
        path_ns: &str,
        obj: Value,
    ) -> Result<Arc<Stored>, ApiError> {
        let def = self.lock().resources[res].clone();
        let mut obj = into_object(obj, &def.kind)?;
        check_type(&def, &obj)?;
        let ts = now_rfc3339();
        let meta = meta_mut(&mut obj);
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if name.is_empty() {
            let generate = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required",
                ));
            }
            name = format!("{generate}{}", gen_suffix());
            meta.insert("name".into(), Value::String(name.clone()));
        }
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let ns = if def.namespaced {
            if path_ns.is_empty() {
                return Err(ApiError::method_not_allowed());
            }
            if !body_ns.is_empty() && body_ns != path_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), Value::String(path_ns.to_owned()));
            path_ns.to_owned()
        } else {
            meta.remove("namespace");
            String::new()
        };
        meta.insert("uid".into(), Value::String(new_uid()));
        meta.insert("generation".into(), Value::from(1));
        meta.insert("creationTimestamp".into(), Value::String(ts));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        let prepared = prepare(&def, key_of(&ns, &name), obj);
        let mut st = self.lock();
        if st.objects[res].contains_key(&prepared.key) {
            return Err(ApiError::already_exists(&def.plural, &name));
        }
        Ok(self.commit(&mut st, res, prepared, EventType::Added, None))
    }

    /// Replaces an object (PUT). With `status_only`, only `.status` is taken from `obj`.
    pub(crate) fn update(
        &self,
        res: ResourceId,
        ns: &str,
        name: &str,
        obj: Value,
        status_only: bool,
    ) -> Result<Arc<Stored>, ApiError> {
        let def = self.lock().resources[res].clone();
        let mut obj = into_object(obj, &def.kind)?;
        check_type(&def, &obj)?;
        let meta = meta_mut(&mut obj);
        if let Some(n) = meta.get("name").and_then(Value::as_str)
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(n) = meta.get("namespace").and_then(Value::as_str)
            && !n.is_empty()
            && n != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let want_rv = meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let key = key_of(ns, name);
        loop {
            let cur = self
                .current(res, &key)
                .ok_or_else(|| ApiError::not_found(&def.plural, name))?;
            if !want_rv.is_empty() && want_rv != cur.rv.to_string() {
                return Err(ApiError::conflict(&def.plural, name));
            }
            let old = into_object(cur.to_value(), &def.kind)?;
            let next = merge_server_fields(&old, obj.clone(), status_only);
            let prepared = prepare(&def, key.clone(), next);
            if let Some(done) =
                self.commit_if_unchanged(res, &def, name, &cur, prepared, EventType::Modified)?
            {
                return Ok(done);
            }
        }
    }

    /// Patches an object (PATCH). With `status_only`, only `.status` is taken from the result.
    pub(crate) fn patch(
        &self,
        res: ResourceId,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: &[u8],
        status_only: bool,
    ) -> Result<Arc<Stored>, ApiError> {
        let def = self.lock().resources[res].clone();
        let patch_doc: Value = serde_json::from_slice(patch)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let json_patch: Option<json_patch::Patch> = match kind {
            PatchKind::Json => {
                Some(serde_json::from_value(patch_doc.clone()).map_err(|e| {
                    ApiError::bad_request(format!("error decoding json patch: {e}"))
                })?)
            }
            PatchKind::Merge => {
                if !patch_doc.is_object() {
                    return Err(ApiError::bad_request(
                        "error decoding merge patch: not a JSON object",
                    ));
                }
                None
            }
        };
        let key = key_of(ns, name);
        let lazy_patch = match (&patch_doc, status_only) {
            (Value::Object(p), false) if json_patch.is_none() => Some(p),
            _ => None,
        };
        loop {
            let cur = self
                .current(res, &key)
                .ok_or_else(|| ApiError::not_found(&def.plural, name))?;
            if let Some(prepared) = lazy_patch.and_then(|p| prepare_merge_lazy(&def, name, &cur, p)) {
                if let Some(done) =
                    self.commit_if_unchanged(res, &def, name, &cur, prepared?, EventType::Modified)?
                {
                    return Ok(done);
                }
                continue;
            }
            let prepared = prepare_patch_full(&def, name, &cur, &patch_doc, json_patch.as_ref(), status_only)?;
            if let Some(done) =
                self.commit_if_unchanged(res, &def, name, &cur, prepared, EventType::Modified)?
            {
                return Ok(done);
            }
        }
    }

    /// Deletes an object (DELETE): emits DELETED and returns the last version, with
    /// `deletionTimestamp` set. Deletion is immediate (no finalizers, no kubelet).
    pub(crate) fn delete(
        &self,
        res: ResourceId,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Arc<Stored>, ApiError> {
        let def = self.lock().resources[res].clone();
        let key = key_of(ns, name);
        loop {
            let cur = self
                .current(res, &key)
                .ok_or_else(|| ApiError::not_found(&def.plural, name))?;
            let mut obj = into_object(cur.to_value(), &def.kind)?;
            let meta = meta_mut(&mut obj);
            if let Some(uid) = &opts.uid
                && Some(uid.as_str()) != meta.get("uid").and_then(Value::as_str)
            {
                return Err(ApiError::conflict(&def.plural, name));
            }
            if let Some(rv) = &opts.resource_version
                && *rv != cur.rv.to_string()
            {
                return Err(ApiError::conflict(&def.plural, name));
            }
            meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            meta.insert(
                "deletionGracePeriodSeconds".into(),
                Value::from(opts.grace_period_seconds.unwrap_or(0).max(0)),
            );
            let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
            meta.insert("generation".into(), Value::from(generation + 1));
            let prepared = prepare(&def, key.clone(), obj);
            if let Some(done) =
                self.commit_if_unchanged(res, &def, name, &cur, prepared, EventType::Deleted)?
            {
                return Ok(done);
            }
        }
    }

    /// Inserts many objects at once under one lock, each as a create (ADDED event).
    /// Objects that already exist are skipped. Returns how many were created.
    pub(crate) fn create_many(
        &self,
        res: ResourceId,
        objs: impl IntoIterator<Item = Value>,
    ) -> Result<usize, ApiError> {
        let def = self.lock().resources[res].clone();
        let ts = now_rfc3339();
        let mut prepared = Vec::new();
        for obj in objs {
            let mut obj = into_object(obj, &def.kind)?;
            check_type(&def, &obj)?;
            let meta = meta_mut(&mut obj);
            let name = meta
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if name.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name is required",
                ));
            }
            let ns = if def.namespaced {
                let ns = meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned();
                meta.insert("namespace".into(), Value::String(ns.clone()));
                ns
            } else {
                String::new()
            };
            meta.entry("uid")
                .or_insert_with(|| Value::String(new_uid()));
            meta.entry("generation").or_insert_with(|| Value::from(1));
            meta.entry("creationTimestamp")
                .or_insert_with(|| Value::String(ts.clone()));
            prepared.push(prepare(&def, key_of(&ns, &name), obj));
        }
        let mut st = self.lock();
        let mut n = 0;
        for p in prepared {
            if !st.objects[res].contains_key(&p.key) {
                self.commit(&mut st, res, p, EventType::Added, None);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Serves a LIST: returns the response body.
    pub(crate) fn list(&self, res: ResourceId, q: &ListQuery) -> Result<Vec<u8>, ApiError> {
        enum At {
            Latest,
            Exact(u64),
            NotOlderThan(u64),
        }
        let mut start_key = String::new();
        let parse_rv = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))
        };
        let rv_param = q.resource_version.as_deref().unwrap_or("");
        let rv_match = q.resource_version_match.as_deref().unwrap_or("");
        let mut at = At::Latest;
        let mut token_rv = None;
        if let Some(tok) = q.continue_token.as_deref().filter(|t| !t.is_empty()) {
            if !rv_param.is_empty() && rv_param != "0" {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, start) = token::decode(tok).ok_or_else(|| {
                ApiError::bad_request(format!("continue key is not valid: {tok:?}"))
            })?;
            start_key = start;
            if let Ok(rv) = u64::try_from(rv) {
                at = At::Exact(rv);
                token_rv = Some(rv);
            }
        } else {
            match (rv_param, rv_match) {
                ("", "") => {}
                ("", _) => {
                    return Err(ApiError::invalid(
                        "ListOptions",
                        "",
                        "resourceVersionMatch",
                        "FieldValueForbidden",
                        "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                ("0", _) => {}
                (rv, "Exact") => at = At::Exact(parse_rv(rv)?),
                (rv, "NotOlderThan") => at = At::NotOlderThan(parse_rv(rv)?),
                (rv, "") => {
                    let rv = parse_rv(rv)?;
                    // Legacy semantics: a paginated list at an explicit RV is exact.
                    at = if q.limit.unwrap_or(0) > 0 {
                        At::Exact(rv)
                    } else {
                        At::NotOlderThan(rv)
                    };
                }
                (_, other) => {
                    return Err(ApiError::bad_request(format!(
                        "unsupported resourceVersionMatch: {other:?}"
                    )));
                }
            }
        }
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let prefix = q
            .namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        let lower = if start_key.is_empty() {
            prefix.clone()
        } else {
            start_key.clone().max(prefix.clone())
        };
        let selective = !q.labels.is_empty() || !q.fields.is_empty();

        let st = self.lock();
        let (snapshot_rv, overlay) = match at {
            At::Latest => (st.rv, BTreeMap::new()),
            At::NotOlderThan(rv) => {
                if rv > st.rv {
                    return Err(ApiError::too_large_resource_version(rv, st.rv));
                }
                (st.rv, BTreeMap::new())
            }
            At::Exact(rv) => {
                if rv > st.rv {
                    return Err(ApiError::too_large_resource_version(rv, st.rv));
                }
                if rv < st.compacted {
                    return Err(match token_rv {
                        Some(_) => ApiError::continue_expired(token::encode(-1, &start_key)),
                        None => ApiError::too_old_resource_version(rv, st.compacted + 1),
                    });
                }
                // State at `rv` = current state with every later write undone: for
                // each key, the version before the first write after `rv`.
                let mut overlay: BTreeMap<String, Option<Arc<Stored>>> = BTreeMap::new();
                for ev in st
                    .history
                    .iter()
                    .rev()
                    .take_while(|e| e.rv > rv)
                    .filter(|e| e.resource == res)
                {
                    overlay.insert(ev.obj.key.clone(), ev.prev.clone());
                }
                (rv, overlay)
            }
        };
        let map = &st.objects[res];
        let in_range = |k: &String| k.starts_with(&prefix);
        let mut cur = map
            .range::<String, _>((Bound::Included(&lower), Bound::Unbounded))
            .take_while(|(k, _)| in_range(k))
            .peekable();
        let mut ovl = overlay
            .range::<String, _>((Bound::Included(&lower), Bound::Unbounded))
            .take_while(|(k, _)| in_range(k))
            .peekable();
        let mut items: Vec<Arc<Stored>> = Vec::new();
        let mut more = false;
        let mut remaining = 0usize;
        loop {
            // Merge the two sorted key streams; the overlay wins on equal keys.
            let next: Option<Option<&Arc<Stored>>> = match (cur.peek(), ovl.peek()) {
                (None, None) => None,
                (Some(_), None) => cur.next().map(|(_, v)| Some(v)),
                (None, Some(_)) => ovl.next().map(|(_, v)| v.as_ref()),
                (Some((ck, _)), Some((ok, _))) => {
                    if ck < ok {
                        cur.next().map(|(_, v)| Some(v))
                    } else {
                        if ck == ok {
                            cur.next();
                        }
                        ovl.next().map(|(_, v)| v.as_ref())
                    }
                }
            };
            let Some(entry) = next else { break };
            let Some(obj) = entry else { continue };
            if selective && !obj.matches(&q.labels, &q.fields) {
                continue;
            }
            if items.len() < limit {
                items.push(obj.clone());
            } else {
                more = true;
                remaining += 1;
                if selective {
                    break;
                }
            }
        }
        drop(st);

        let def_kind;
        let def_av;
        {
            let st = self.lock();
            def_kind = st.resources[res].list_kind();
            def_av = st.resources[res].api_version();
        }
        let est: usize = items.iter().map(|i| i.body.len() + 2).sum();
        let mut out = Vec::with_capacity(est + 256);
        if q.metadata_only {
            out.extend_from_slice(br#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":""#);
        } else {
            out.extend_from_slice(br#"{"kind":""#);
            out.extend_from_slice(def_kind.as_bytes());
            out.extend_from_slice(br#"","apiVersion":""#);
            out.extend_from_slice(def_av.as_bytes());
            out.extend_from_slice(br#"","metadata":{"resourceVersion":""#);
        }
        out.extend_from_slice(snapshot_rv.to_string().as_bytes());
        out.push(b'"');
        if more && let Some(last) = items.last() {
            let next_start = format!("{}\u{0}", last.key);
            out.extend_from_slice(br#","continue":"#);
            write_json(
                &mut out,
                &Value::String(token::encode(
                    i64::try_from(snapshot_rv).unwrap_or(-1),
                    &next_start,
                )),
            );
            if !selective {
                out.extend_from_slice(br#","remainingItemCount":"#);
                out.extend_from_slice(remaining.to_string().as_bytes());
            }
        }
        out.extend_from_slice(br#"},"items":["#);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if q.metadata_only {
                item.write_partial(&mut out)
            } else {
                item.write_item(&mut out)
            }
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// Starts a watch: what to send first, and the live receiver.
    pub(crate) fn start_watch(
        &self,
        res: ResourceId,
        ns: Option<&str>,
        start: WatchStart,
    ) -> Result<WatchSeed, ApiError> {
        let st = self.lock();
        let rx = self.tx.subscribe();
        let prefix = ns.map(|n| format!("{n}/"));
        let mut initial = Vec::new();
        let mut backlog = Vec::new();
        match start {
            WatchStart::Now => {}
            WatchStart::InitialState => {
                let map = &st.objects[res];
                match &prefix {
                    Some(p) => initial.extend(
                        map.range(p.clone()..)
                            .take_while(|(k, _)| k.starts_with(p))
                            .map(|(_, v)| v.clone()),
                    ),
                    None => initial.extend(map.values().cloned()),
                }
            }
            WatchStart::From(rv) => {
                if rv < st.compacted {
                    return Err(ApiError::too_old_resource_version(rv, st.compacted + 1));
                }
                let skip = st.history.partition_point(|e| e.rv <= rv);
                backlog.extend(
                    st.history
                        .iter()
                        .skip(skip)
                        .filter(|e| e.resource == res)
                        .cloned(),
                );
            }
        }
        Ok(WatchSeed {
            initial,
            backlog,
            rx,
            rv: st.rv,
        })
    }
}

/// Carries the server-owned fields (uid, creationTimestamp, generation, name,
/// namespace) from `old` into the next version built from `new`.
fn merge_server_fields(
    old: &Map<String, Value>,
    mut new: Map<String, Value>,
    status_only: bool,
) -> Map<String, Value> {
    if status_only {
        let mut next = old.clone();
        match new.remove("status") {
            Some(s) => next.insert("status".into(), s),
            None => next.remove("status"),
        };
        return next;
    }
    let spec_changed = old.get("spec") != new.get("spec");
    let empty = Map::new();
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let meta = meta_mut(&mut new);
    for k in CARRIED_METADATA {
        match old_meta.get(k) {
            Some(v) => meta.insert(k.into(), v.clone()),
            None => meta.remove(k),
        };
    }
    let generation = old_meta
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    meta.insert(
        "generation".into(),
        Value::from(if spec_changed {
            generation + 1
        } else {
            generation
        }),
    );
    new.remove("kind");
    new.remove("apiVersion");
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podgen::PodGen;
    use serde_json::json;

    fn store_with_pods(n: usize) -> (Store, ResourceId, Arc<ResourceDef>) {
        let store = Store::new(ResourceDef::defaults(), 100, 100);
        let res = store.register(ResourceDef::new("", "v1", "Pod", "pods", true));
        let pods = PodGen::new(7, "ns");
        for i in 0..n {
            store.create(res, "ns", pods.pod(i)).expect("pod is created");
        }
        let def = store.lock().resources[res].clone();
        (store, res, def)
    }

    fn same(a: &Prepared, b: &Prepared) {
        assert_eq!(String::from_utf8_lossy(&a.body), String::from_utf8_lossy(&b.body));
        assert_eq!(
            (a.rv_at, a.rest, a.meta, &a.key, &a.name, &a.namespace),
            (b.rv_at, b.rest, b.meta, &b.key, &b.name, &b.namespace)
        );
        assert_eq!((&a.labels, &a.node_name, &a.phase), (&b.labels, &b.node_name, &b.phase));
    }

    /// The lazy merge path writes exactly what parsing the whole object writes,
    /// for the patches it takes, on realistic pods.
    #[test]
    fn lazy_merge_patch_equals_the_full_path() {
        let (store, res, def) = store_with_pods(5);
        let patches = [
            json!({"metadata": {"annotations": {"loadgen.kcache.io/sent-at": "123"}}}),
            json!({"metadata": {"annotations": null}}),
            json!({"metadata": {"labels": {"app": "other", "new": "x", "pod-template-hash": null}}}),
            json!({"metadata": {"finalizers": ["a/b"], "ownerReferences": null}}),
            json!({"status": {"phase": "Failed", "conditions": null}}),
            json!({"status": "gone"}),
            json!({"status": null}),
            json!({"aaa": {"b": 1}, "zzz": [1, 2], "metadata": {"resourceVersion": null}}),
            json!({}),
        ];
        for (i, patch) in patches.iter().enumerate() {
            let name = PodGen::name(i % 5);
            let cur = store.current(res, &key_of("ns", &name)).expect("pod exists");
            let p = patch.as_object().expect("patch is an object");
            let lazy = prepare_merge_lazy(&def, &name, &cur, p)
                .unwrap_or_else(|| panic!("lazy path declined {patch}"))
                .expect("patch applies");
            let full = prepare_patch_full(&def, &name, &cur, patch, None, false).expect("patch applies");
            same(&lazy, &full);
        }
    }

    #[test]
    fn lazy_merge_patch_declines_what_it_cannot_do_exactly() {
        let (store, res, def) = store_with_pods(1);
        let name = PodGen::name(0);
        let cur = store.current(res, &key_of("ns", &name)).expect("pod exists");
        for patch in [
            json!({"spec": {"nodeName": "n"}}),
            json!({"kind": "Pod"}),
            json!({"metadata": {"uid": "x"}}),
            json!({"metadata": {"generation": 5}}),
            json!({"metadata": null}),
        ] {
            assert!(prepare_merge_lazy(&def, &name, &cur, patch.as_object().unwrap()).is_none(), "{patch}");
        }
    }

    #[test]
    fn lazy_merge_patch_checks_the_resource_version_precondition() {
        let (store, res, def) = store_with_pods(1);
        let name = PodGen::name(0);
        let cur = store.current(res, &key_of("ns", &name)).expect("pod exists");
        let stale = json!({"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}});
        let r = prepare_merge_lazy(&def, &name, &cur, stale.as_object().unwrap()).expect("lazy path takes it");
        assert_eq!(r.err().map(|e| e.code), Some(409));
        let fresh = json!({"metadata": {"resourceVersion": cur.rv.to_string()}});
        assert!(prepare_merge_lazy(&def, &name, &cur, fresh.as_object().unwrap()).expect("taken").is_ok());
    }

    /// Through the public path: a patch commits, bumps the resourceVersion and
    /// keeps the server-owned fields.
    #[test]
    fn patched_object_keeps_server_fields_and_gets_a_new_version() {
        let (store, res, _) = store_with_pods(1);
        let name = PodGen::name(0);
        let before = store.current(res, &key_of("ns", &name)).expect("pod exists").to_value();
        let after = store
            .patch(res, "ns", &name, PatchKind::Merge, br#"{"metadata":{"annotations":{"k":"v"}}}"#, false)
            .expect("patch applies")
            .to_value();
        assert_eq!(after["metadata"]["annotations"]["k"], "v");
        for k in ["uid", "creationTimestamp", "generation", "name", "namespace"] {
            assert_eq!(after["metadata"][k], before["metadata"][k], "{k}");
        }
        let (b, a) = (&before["metadata"]["resourceVersion"], &after["metadata"]["resourceVersion"]);
        assert!(a.as_str().unwrap().parse::<u64>().unwrap() > b.as_str().unwrap().parse::<u64>().unwrap());
        assert_eq!(after["spec"], before["spec"]);
    }
}
