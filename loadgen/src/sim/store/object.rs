//! What the store keeps and emits: one stored object version ([`Stored`]) and
//! one committed write ([`Event`]) with its prebuilt watch frame.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::sim::selector::{FieldSelector, FieldValues, LabelSelector, ShardField, ShardSelector};

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
    pub(super) rest: usize,
    /// Byte range of the `metadata` object in `body`.
    pub(super) meta: (usize, usize),
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

    /// Whether the object is in a shard selector's ranges. The uid is read
    /// from the metadata bytes (it never changes after the create, so it is
    /// not kept apart as the selector fields are).
    pub fn in_shard(&self, shards: &ShardSelector) -> bool {
        match shards.field() {
            ShardField::Namespace => shards.matches_value(&self.namespace),
            ShardField::Uid => {
                #[derive(serde::Deserialize)]
                struct Uid<'a> {
                    #[serde(borrow, default)]
                    uid: Option<std::borrow::Cow<'a, str>>,
                }
                let uid = serde_json::from_slice::<Uid<'_>>(self.metadata_json()).ok().and_then(|m| m.uid);
                shards.matches_value(uid.as_deref().unwrap_or(""))
            }
        }
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

/// The map key of an object: `namespace/name`, or `name` when cluster-scoped.
pub(super) fn key_of(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_owned()
    } else {
        format!("{ns}/{name}")
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
