//! Removing what loadgen created on a cluster: `loadgen cleanup`, and the end
//! of a run against a shared server.
//!
//! # Guarantees
//! * Only namespaces labelled [`OWNED_LABEL`] are listed, and only those and
//!   the pods in them are deleted.
//! * A namespace's pods are deleted with `gracePeriodSeconds=0` before the
//!   namespace: loadgen's pods name nodes no kubelet serves, so the namespace
//!   controller's graceful deletes would wait for the pod garbage collector
//!   (about a minute on kind) before the namespace could go (docs/KIND.md).
//! * Deleting a namespace that is already terminating (409) or gone (404) is
//!   not an error: running cleanup twice is fine.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams};

/// The label on every namespace loadgen creates; `loadgen cleanup` deletes them.
pub const OWNED_LABEL: &str = "loadgen.kcache.io/owned";

/// What deleting one namespace did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleaned {
    /// Its pods and the namespace were deleted; it is terminating now.
    Deleted,
    /// It was already terminating (its pods were deleted again, at once).
    AlreadyTerminating,
    /// It no longer existed.
    Gone,
}

impl Cleaned {
    /// How `loadgen cleanup` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Cleaned::Deleted => "deleted",
            Cleaned::AlreadyTerminating => "already terminating",
            Cleaned::Gone => "already gone",
        }
    }
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Deletes the pods of `namespace` at once, then the namespace.
///
/// # Errors
/// Any API error but 404 (gone) and, for the namespace, 409 (terminating).
pub async fn delete_namespace(client: &kube::Client, namespace: &str) -> Result<Cleaned, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.delete_collection(&DeleteParams::default().grace_period(0), &ListParams::default()).await {
        Ok(_) => {}
        Err(e) if is_code(&e, 404) => return Ok(Cleaned::Gone),
        Err(e) => return Err(e),
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(namespace, &DeleteParams::default()).await {
        Ok(_) => Ok(Cleaned::Deleted),
        // namespace/storage.go: a second delete of a terminating namespace is a Conflict.
        Err(e) if is_code(&e, 409) => Ok(Cleaned::AlreadyTerminating),
        Err(e) if is_code(&e, 404) => Ok(Cleaned::Gone),
        Err(e) => Err(e),
    }
}

/// The names of the namespaces labelled [`OWNED_LABEL`].
///
/// # Errors
/// When the LIST fails.
pub async fn owned_namespaces(client: &kube::Client) -> Result<Vec<String>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let owned = api.list(&ListParams::default().labels(&format!("{OWNED_LABEL}=true"))).await?;
    Ok(owned.items.into_iter().filter_map(|ns| ns.metadata.name).collect())
}

/// Deletes every namespace labelled [`OWNED_LABEL`] and its pods (`loadgen
/// cleanup`); what happened to each, by name.
///
/// # Errors
/// The first API error, with the namespace it concerned.
pub async fn cleanup_owned(client: &kube::Client) -> Result<Vec<(String, Cleaned)>, (String, kube::Error)> {
    let names = owned_namespaces(client).await.map_err(|e| ("listing loadgen's namespaces".to_owned(), e))?;
    let mut out = Vec::new();
    for name in names {
        let cleaned = delete_namespace(client, &name).await.map_err(|e| (format!("deleting namespace {name}"), e))?;
        out.push((name, cleaned));
    }
    Ok(out)
}

/// Waits until none of `names` exists any more, polling once a second with a
/// spinner (hidden unless `progress`); the names still there at `timeout`.
///
/// # Errors
/// When a GET fails.
pub async fn wait_gone(
    client: &kube::Client,
    names: &[String],
    timeout: Duration,
    progress: bool,
) -> Result<Vec<String>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let bar = if progress { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + timeout;
    let mut left: Vec<String> = names.to_vec();
    loop {
        let mut still = Vec::new();
        for name in &left {
            if api.get_opt(name).await?.is_some() {
                still.push(name.clone());
            }
        }
        left = still;
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        bar.set_message(format!("waiting for {} terminating namespace(s) to go", left.len()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bar.finish_and_clear();
    Ok(left)
}
