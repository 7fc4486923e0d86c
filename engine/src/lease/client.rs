//! [`LeaseClient`]: the reads and writes of `coordination.k8s.io/v1` Leases that
//! leader election and ring membership make, with the API server's answers told apart.
//!
//! # Guarantees
//! * `replace` always sends `metadata.resourceVersion`: the server answers a stale
//!   one with [`LeaseError::Conflict`], so two writers never both win one version.
//! * 409 `AlreadyExists` (a create of a name that exists) and 409 `Conflict` (a stale
//!   resourceVersion) are different variants, as client-go's `errors.IsAlreadyExists`
//!   and `errors.IsConflict` tell them apart (apimachinery `pkg/api/errors/errors.go`).
//! * A Lease edited by hand with fields of the wrong shape (a `renewTime` that is not
//!   a time, a `leaseDurationSeconds` that is not a number) still decodes: each spec
//!   field that does not parse is dropped (read as absent) instead of failing the read.
//! * Every error names the lease (`namespace/name`).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::core::{Request, Resource};
use serde_json::Value;

/// Why a Lease request failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// 409 Conflict: the lease changed since the resourceVersion the write carried.
    #[error("lease {namespace}/{name}: conflict (stale resourceVersion): {message}")]
    Conflict {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
        /// The server's message.
        message: String,
    },
    /// 409 AlreadyExists: a create named a lease that exists.
    #[error("lease {namespace}/{name} already exists")]
    AlreadyExists {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
    },
    /// 404 on a write (a read of a missing lease is `Ok(None)`).
    #[error("lease {namespace}/{name} not found")]
    NotFound {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
    },
    /// The request did not finish within the client's timeout.
    #[error("lease {namespace}/{name}: no answer within {timeout:?}")]
    Timeout {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name (empty for a list).
        name: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The lease to write has no name, or a replace has no resourceVersion.
    #[error("lease {namespace}/{name}: {problem}")]
    Invalid {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name (may be empty).
        name: String,
        /// What is missing.
        problem: &'static str,
    },
    /// Any other failure: another status code, the transport, a body that is not a Lease.
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name (empty for a list).
        name: String,
        /// What kube-client reported.
        #[source]
        source: kube::Error,
    },
}

impl LeaseError {
    /// A 409 of either kind: someone else wrote first.
    pub fn is_conflict(&self) -> bool {
        matches!(self, LeaseError::Conflict { .. } | LeaseError::AlreadyExists { .. })
    }
}

/// Reads and writes the Leases of one namespace through a `kube::Client`.
#[derive(Clone)]
pub struct LeaseClient {
    client: kube::Client,
    namespace: String,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for LeaseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseClient").field("namespace", &self.namespace).field("timeout", &self.timeout).finish()
    }
}

impl LeaseClient {
    /// A client of the Leases in `namespace`.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        LeaseClient { client, namespace: namespace.into(), timeout: None }
    }

    /// Fails each request that takes longer than `timeout` with [`LeaseError::Timeout`]
    /// (none by default: the `kube::Client`'s own timeouts apply).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The namespace this client addresses.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn request(&self) -> Request {
        Request::new(Lease::url_path(&(), Some(&self.namespace)))
    }

    async fn send(&self, name: &str, req: Result<http::Request<Vec<u8>>, kube::core::request::Error>) -> Result<Value, LeaseError> {
        let req = req.map_err(|e| self.api_error(name, kube::Error::BuildRequest(e)))?;
        let call = self.client.request::<Value>(req);
        let answer = match self.timeout {
            None => call.await,
            Some(timeout) => tokio::time::timeout(timeout, call).await.map_err(|_| LeaseError::Timeout {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                timeout,
            })?,
        };
        answer.map_err(|e| classify(&self.namespace, name, e))
    }

    /// The lease `name`, `None` when it does not exist.
    ///
    /// # Errors
    /// [`LeaseError::Timeout`] or [`LeaseError::Api`].
    pub async fn get(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        match self.send(name, self.request().get(name, &Default::default())).await {
            Ok(v) => Ok(Some(decode_lease(v).map_err(|e| self.api_error(name, e))?)),
            Err(LeaseError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates `lease` (named by its `metadata.name`) in this client's namespace.
    ///
    /// # Errors
    /// [`LeaseError::AlreadyExists`] when the name is taken; others as [`LeaseClient::get`].
    pub async fn create(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let name = self.name_of(lease)?;
        let body = serde_json::to_vec(lease).map_err(|e| self.api_error(name, kube::Error::SerdeError(e)))?;
        let v = self.send(name, self.request().create(&PostParams::default(), body)).await?;
        decode_lease(v).map_err(|e| self.api_error(name, e))
    }

    /// Replaces `lease` if it still is at its `metadata.resourceVersion` (optimistic
    /// concurrency: client-go's `LeaseLock.Update`, tools/leaderelection/resourcelock/leaselock.go).
    ///
    /// # Errors
    /// [`LeaseError::Conflict`] when the lease changed since; [`LeaseError::Invalid`]
    /// without a name or resourceVersion; [`LeaseError::NotFound`] when it is gone.
    pub async fn replace(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let name = self.name_of(lease)?;
        if lease.metadata.resource_version.as_deref().is_none_or(str::is_empty) {
            return Err(self.invalid(name, "a replace needs metadata.resourceVersion (optimistic concurrency)"));
        }
        let body = serde_json::to_vec(lease).map_err(|e| self.api_error(name, kube::Error::SerdeError(e)))?;
        let v = self.send(name, self.request().replace(name, &PostParams::default(), body)).await?;
        decode_lease(v).map_err(|e| self.api_error(name, e))
    }

    /// The leases whose labels match `label_selector` (`""` for all).
    ///
    /// # Errors
    /// As [`LeaseClient::get`].
    pub async fn list(&self, label_selector: &str) -> Result<Vec<Lease>, LeaseError> {
        let mut params = ListParams::default();
        if !label_selector.is_empty() {
            params = params.labels(label_selector);
        }
        let v = self.send("", self.request().list(&params)).await?;
        let items = match v {
            Value::Object(mut m) => match m.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        items.into_iter().map(|item| decode_lease(item).map_err(|e| self.api_error("", e))).collect()
    }

    /// Deletes the lease `name`; `Ok(false)` when it did not exist.
    ///
    /// # Errors
    /// As [`LeaseClient::get`].
    pub async fn delete(&self, name: &str) -> Result<bool, LeaseError> {
        match self.send(name, self.request().delete(name, &DeleteParams::default())).await {
            Ok(_) => Ok(true),
            Err(LeaseError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the lease `name` only if it is still at `resource_version` (a DELETE
    /// with a resourceVersion precondition); `Ok(false)` when it did not exist.
    ///
    /// # Errors
    /// [`LeaseError::Conflict`] when it changed since (the server answers 409), else
    /// as [`LeaseClient::get`].
    pub async fn delete_unchanged(&self, name: &str, resource_version: &str) -> Result<bool, LeaseError> {
        let params = DeleteParams { preconditions: Some(kube::api::Preconditions { resource_version: Some(resource_version.to_owned()), uid: None }), ..DeleteParams::default() };
        match self.send(name, self.request().delete(name, &params)).await {
            Ok(_) => Ok(true),
            Err(LeaseError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn name_of<'l>(&self, lease: &'l Lease) -> Result<&'l str, LeaseError> {
        lease.metadata.name.as_deref().filter(|n| !n.is_empty()).ok_or_else(|| self.invalid("", "metadata.name is missing"))
    }

    fn invalid(&self, name: &str, problem: &'static str) -> LeaseError {
        LeaseError::Invalid { namespace: self.namespace.clone(), name: name.to_owned(), problem }
    }

    fn api_error(&self, name: &str, source: kube::Error) -> LeaseError {
        LeaseError::Api { namespace: self.namespace.clone(), name: name.to_owned(), source }
    }
}

fn classify(namespace: &str, name: &str, e: kube::Error) -> LeaseError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    match &e {
        kube::Error::Api(s) if s.code == 404 => LeaseError::NotFound { namespace, name },
        // apimachinery errors.go: NewAlreadyExists and NewConflict are both 409,
        // told apart by `reason`.
        kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => LeaseError::AlreadyExists { namespace, name },
        kube::Error::Api(s) if s.code == 409 => LeaseError::Conflict { namespace, name, message: s.message.clone() },
        _ => LeaseError::Api { namespace, name, source: e },
    }
}

/// Decodes a Lease, dropping each spec field that does not parse rather than
/// failing: a lease edited by hand must not stop an elector from taking it over
/// once it expires.
fn decode_lease(v: Value) -> Result<Lease, kube::Error> {
    let Value::Object(mut m) = v else {
        return serde_json::from_value(v).map_err(kube::Error::SerdeError);
    };
    let spec = m.remove("spec");
    let mut lease: Lease = serde_json::from_value(Value::Object(m)).map_err(kube::Error::SerdeError)?;
    lease.spec = spec.map(lenient_spec);
    Ok(lease)
}

fn lenient_spec(spec: Value) -> LeaseSpec {
    fn field<T: serde::de::DeserializeOwned>(spec: &Value, key: &str) -> Option<T> {
        spec.get(key).and_then(|v| serde_json::from_value(v.clone()).ok())
    }
    LeaseSpec {
        acquire_time: field(&spec, "acquireTime"),
        holder_identity: field(&spec, "holderIdentity"),
        lease_duration_seconds: field(&spec, "leaseDurationSeconds"),
        lease_transitions: field(&spec, "leaseTransitions"),
        preferred_holder: field(&spec, "preferredHolder"),
        renew_time: field(&spec, "renewTime"),
        strategy: field(&spec, "strategy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_fields_that_do_not_parse_are_dropped_and_the_rest_kept() {
        let lease = decode_lease(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"namespace": "ns", "name": "l", "resourceVersion": "7"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": "fifteen", "renewTime": "yesterday",
                     "acquireTime": "2026-01-02T03:04:05.000006Z", "leaseTransitions": 3}
        }))
        .expect("decodes");
        let spec = lease.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, None);
        assert!(spec.renew_time.is_none());
        assert!(spec.acquire_time.is_some());
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(lease.metadata.resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn a_well_formed_lease_decodes_as_serde_would() {
        let v = json!({
            "metadata": {"namespace": "ns", "name": "l"},
            "spec": {"holderIdentity": "b", "leaseDurationSeconds": 15, "renewTime": "2026-01-02T03:04:05.123456Z"}
        });
        let strict: Lease = serde_json::from_value(v.clone()).expect("strict");
        assert_eq!(decode_lease(v).expect("lenient"), strict);
    }

    #[test]
    fn conflicts_and_already_exists_are_told_apart_and_name_the_lease() {
        let status = |code: u16, reason: &str| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                reason: reason.into(),
                message: "the object has been modified".into(),
                ..Default::default()
            }))
        };
        let conflict = classify("ns", "l", status(409, "Conflict"));
        assert!(matches!(conflict, LeaseError::Conflict { .. }));
        assert!(conflict.to_string().contains("lease ns/l"), "{conflict}");
        let exists = classify("ns", "l", status(409, "AlreadyExists"));
        assert!(matches!(exists, LeaseError::AlreadyExists { .. }));
        assert_eq!(exists.to_string(), "lease ns/l already exists");
        assert!(conflict.is_conflict() && exists.is_conflict());
        assert!(matches!(classify("ns", "l", status(404, "NotFound")), LeaseError::NotFound { .. }));
        assert!(matches!(classify("ns", "l", status(500, "InternalError")), LeaseError::Api { .. }));
    }
}
