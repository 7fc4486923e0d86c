//! Why a typed read or wait failed.

/// A stored object that does not decode as the view's type.
#[derive(Debug, thiserror::Error)]
#[error("cached object {key} does not decode as {kind}: {source}")]
pub struct DecodeError {
    /// The object's client-go key (`namespace/name` or `name`).
    pub key: String,
    /// The kind the view decodes into.
    pub kind: String,
    /// serde's reason, with the line and column in the object's JSON.
    #[source]
    pub source: serde_json::Error,
}

/// The informer shut down before its first list was applied: the store will never
/// be ready. kube-rs's name for the same outcome of `wait_until_ready`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the informer shut down before its store synced")]
pub struct WriterDropped;
