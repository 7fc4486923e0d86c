//! The multi-kind example's two controllers, run together by [`run`]:
//! * the `WebApp` controller keeps one `WebAppRevision` per image (creating it,
//!   copying `replicas` into it, retiring the previous image's revision once the new
//!   one runs all its pods), reports the revision's pods in the app's status, and,
//!   through a finalizer, deletes the app's revisions before the app goes;
//! * the `WebAppRevision` controller keeps pods `<revision>-0` .. `<revision>-<n-1>`
//!   with controller references to it and reports how many exist.
//!
//! Revisions created and retired and finished cleanups are recorded as Events
//! (`events.k8s.io/v1`) about the app.
//!
//! Names are deterministic (the revision from the image, pods by index), so a
//! reconcile that reads a cache which has not yet seen its previous writes retries
//! the same creates, which the server refuses, instead of creating more objects.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use kcache::client::ListOptions;
use kcache::controller::events::{self, Recorder, Reporter};
use kcache::controller::finalizer::{Event, FinalizerError, finalizer};
use kcache::{Action, CachedClient, ClientError, Controller, typed};
use kube::{Resource, ResourceExt};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::types::{APP_LABEL, REVISION_LABEL, RevisionStatus, WebApp, WebAppRevision, WebAppStatus, revision_name};

/// The finalizer that holds a `WebApp` until its revisions are deleted.
pub const FINALIZER: &str = "example.kcache.dev/cleanup";

/// What the controllers did, for logs and tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Cleanups of deleted `WebApp`s that completed.
    pub cleanups: AtomicUsize,
}

/// A failed step of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading through the cached client failed.
    #[error("cache read failed: {0}")]
    Cache(#[from] ClientError),
    /// A write to the API server failed.
    #[error("api write failed: {0}")]
    Api(#[from] kube::Error),
    /// The object lacks a field every stored object has.
    #[error("object lacks {0}")]
    Missing(&'static str),
}

/// What the reconciles share.
struct Ctx {
    client: CachedClient,
    /// The `WebApp` cache, to see a finished cleanup arrive.
    webapps: kcache::Store,
    counters: Arc<Counters>,
    recorder: Recorder,
}

impl Ctx {
    fn kube(&self) -> kube::Client {
        self.client.kube_client().clone()
    }

    /// Records a `Normal` event about `app`.
    fn record(&self, app: &WebApp, reason: &str, note: &str) {
        self.recorder.publish(&events::Event::normal(reason, "Reconcile").note(note), &app.object_ref(&()));
    }
}

/// Runs both controllers until `shutdown` resolves.
///
/// # Errors
/// When an informer cannot be started.
pub async fn run(
    client: kube::Client,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ClientError> {
    let client = CachedClient::new(client);
    let webapps = client.informer::<WebApp>()?;
    let revisions = client.informer::<WebAppRevision>()?;
    let pods = client.informer::<Pod>()?;
    let recorder = Recorder::new(client.kube_client().clone(), Reporter::new("example.kcache.dev/webapp-controller"));
    let ctx = Arc::new(Ctx { client, webapps: webapps.store(), counters, recorder: recorder.clone() });
    let shutdown = shutdown.boxed().shared();

    let apps = Controller::<WebApp>::new(&webapps)
        .owns::<WebAppRevision>(&revisions)
        // Pods of every revision count in the app's status: a pod change reaches the
        // app directly, through the app label, not only through its revision.
        .watches(&pods, |pod: Pod| {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            pod.labels().get(APP_LABEL).map(|app| typed::ObjectRef::<WebApp>::new(app).within(&ns))
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_webapp, webapp_error_policy, Arc::clone(&ctx));
    let revs = Controller::<WebAppRevision>::new(&revisions)
        .owns::<Pod>(&pods)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_revision, revision_error_policy, ctx);
    tokio::join!(apps, revs);
    // Write the events recorded before the shutdown.
    recorder.flush().await;
    Ok(())
}

fn names(meta: &kube::core::ObjectMeta) -> Result<(String, String, String), Error> {
    Ok((
        meta.namespace.clone().ok_or(Error::Missing(".metadata.namespace"))?,
        meta.name.clone().ok_or(Error::Missing(".metadata.name"))?,
        meta.uid.clone().ok_or(Error::Missing(".metadata.uid"))?,
    ))
}

fn owned_by(meta: &kube::core::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
}

/// Takes the API's answer `code` (404 on a delete, 409 on a create) for `None`: the
/// object is already as wanted.
fn unless<T>(code: u16, result: Result<T, kube::Error>) -> Result<Option<T>, kube::Error> {
    match result {
        Err(kube::Error::Api(s)) if s.code == code => Ok(None),
        r => r.map(Some),
    }
}

async fn reconcile_webapp(app: Arc<WebApp>, ctx: Arc<Ctx>) -> Result<Action, FinalizerError<Error>> {
    let meta = &app.metadata;
    let (Some(ns), Some(uid)) = (meta.namespace.clone(), meta.uid.clone()) else {
        return Err(FinalizerError::UnnamedObject);
    };
    let key = format!("{ns}/{}", meta.name.as_deref().unwrap_or_default());
    let cleaning = meta.deletion_timestamp.is_some() && app.finalizers().iter().any(|f| f == FINALIZER);
    let api: Api<WebApp> = Api::namespaced(ctx.kube(), &ns);
    let action = finalizer(&api, FINALIZER, app, |event| async {
        match event {
            Event::Apply(app) => apply_webapp(&app, &ctx).await,
            Event::Cleanup(app) => cleanup_webapp(&app, &ctx).await,
        }
    })
    .await?;
    if cleaning {
        // The next reconcile must not read the app from before the finalizer went,
        // or it would clean up again: wait (bounded) for the cache to see it.
        settle(&ctx.webapps, &key, &uid).await;
    }
    Ok(action)
}

/// Waits up to 10 s until the cache no longer holds `key` with `uid` and the finalizer.
async fn settle(store: &kcache::Store, key: &str, uid: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let pending = store.get_by_key(key).is_some_and(|o| {
            o.uid() == uid && o.pointer("/metadata/finalizers").is_some_and(|f| f.as_array().is_some_and(|a| a.iter().any(|f| f == FINALIZER)))
        });
        if !pending {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn apply_webapp(app: &WebApp, ctx: &Ctx) -> Result<Action, Error> {
    let (ns, name, uid) = names(&app.metadata)?;
    let owner = app.controller_owner_ref(&()).ok_or(Error::Missing(".metadata.uid"))?;
    let wanted = revision_name(&name, &app.spec.image);
    let selector = Some(format!("{APP_LABEL}={name}"));
    let revisions: Vec<WebAppRevision> = ctx
        .client
        .list(&ListOptions { namespace: Some(ns.clone()), label_selector: selector.clone(), ..ListOptions::default() })
        .await?;
    let revisions: Vec<WebAppRevision> = revisions.into_iter().filter(|r| owned_by(&r.metadata, &uid)).collect();
    let current = revisions.iter().find(|r| r.metadata.name.as_deref() == Some(&wanted));
    let api: Api<WebAppRevision> = Api::namespaced(ctx.kube(), &ns);
    match current {
        None => {
            let mut rev = WebAppRevision::new(&wanted, app.spec.clone());
            rev.metadata.labels = Some([(APP_LABEL.to_owned(), name.clone())].into());
            rev.metadata.owner_references = Some(vec![owner]);
            if unless(409, api.create(&PostParams::default(), &rev).await)?.is_some() {
                ctx.record(app, "RevisionCreated", &format!("revision {wanted} runs {}", app.spec.image));
            }
        }
        Some(rev) if rev.spec != app.spec => {
            api.patch(&wanted, &PatchParams::default(), &Patch::Merge(json!({"spec": app.spec}))).await?;
        }
        Some(_) => {}
    }

    let running = current.and_then(|r| r.status.as_ref()).map_or(0, |s| s.replicas);
    // A roll: the previous images' revisions go once the new one runs all its pods.
    if current.is_some_and(|r| r.spec == app.spec && running == app.spec.replicas) {
        for old in revisions.iter().filter(|r| r.metadata.name.as_deref() != Some(&wanted)) {
            if old.metadata.deletion_timestamp.is_none() {
                let old_name = old.metadata.name.as_deref().unwrap_or_default();
                // Foreground: the garbage collector deletes its pods before it.
                let Some(deleted) = unless(404, api.delete(old_name, &DeleteParams::foreground()).await)? else {
                    continue;
                };
                // Until the cache sees it marked, a reconcile would retire it again.
                if let Some(rv) = deleted.left().and_then(|rev| rev.metadata.resource_version) {
                    ctx.client.wait_for_cache::<WebAppRevision>(&rv, Duration::from_secs(10)).await?;
                }
                ctx.record(app, "RevisionRetired", &format!("revision {old_name} replaced by {wanted}"));
            }
        }
    }

    let pods: Vec<Pod> =
        ctx.client.list(&ListOptions { namespace: Some(ns.clone()), label_selector: selector, ..ListOptions::default() }).await?;
    let pods = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count();
    let status = WebAppStatus { revision: wanted, replicas: running, pods: i32::try_from(pods).unwrap_or(i32::MAX) };
    if app.status.as_ref() != Some(&status) {
        let apps: Api<WebApp> = Api::namespaced(ctx.kube(), &ns);
        apps.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await?;
    }
    Ok(Action::await_change())
}

/// Deletes the app's revisions (their pods follow through the garbage collector).
/// Reads them from the server, not the cache: one created just now must not be missed.
async fn cleanup_webapp(app: &WebApp, ctx: &Ctx) -> Result<Action, Error> {
    let (ns, name, uid) = names(&app.metadata)?;
    let api: Api<WebAppRevision> = Api::namespaced(ctx.kube(), &ns);
    let revisions = api.list(&ListParams::default().labels(&format!("{APP_LABEL}={name}"))).await?;
    for rev in revisions.items.iter().filter(|r| owned_by(&r.metadata, &uid)) {
        if rev.metadata.deletion_timestamp.is_none() {
            let rev_name = rev.metadata.name.as_deref().unwrap_or_default();
            unless(404, api.delete(rev_name, &DeleteParams::foreground()).await)?;
        }
    }
    ctx.counters.cleanups.fetch_add(1, Ordering::Relaxed);
    ctx.record(app, "CleanedUp", &format!("revisions deleted: {}", revisions.items.len()));
    tracing::info!(app = %name, namespace = %ns, "cleaned up");
    Ok(Action::await_change())
}

fn webapp_error_policy(_app: Arc<WebApp>, error: &FinalizerError<Error>, _ctx: Arc<Ctx>) -> Action {
    if error.is_conflict() {
        // The object changed under the finalizer patch: the change reconciles it again.
        return Action::await_change();
    }
    tracing::warn!(error = %error, "webapp reconcile failed");
    Action::Requeue
}

async fn reconcile_revision(rev: Arc<WebAppRevision>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if rev.metadata.deletion_timestamp.is_some() {
        // Its pods go with it (garbage collector); none may be added now.
        return Ok(Action::await_change());
    }
    let (ns, name, uid) = names(&rev.metadata)?;
    let owner = rev.controller_owner_ref(&()).ok_or(Error::Missing(".metadata.uid"))?;
    let app = rev.labels().get(APP_LABEL).cloned().unwrap_or_default();
    let pods: Vec<Pod> = ctx
        .client
        .list(&ListOptions {
            namespace: Some(ns.clone()),
            label_selector: Some(format!("{REVISION_LABEL}={name}")),
            ..ListOptions::default()
        })
        .await?;
    let wanted: BTreeSet<String> = (0..rev.spec.replicas.max(0)).map(|i| format!("{name}-{i}")).collect();
    let api: Api<Pod> = Api::namespaced(ctx.kube(), &ns);

    let present: BTreeSet<&str> = pods.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
    for pod_name in wanted.iter().filter(|n| !present.contains(n.as_str())) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": pod_name,
                "labels": {APP_LABEL: app, REVISION_LABEL: name},
                "ownerReferences": [owner],
            },
            "spec": {"containers": [{"name": "web", "image": rev.spec.image}]},
        }))
        .unwrap_or_else(|e| unreachable!("a well-formed pod: {e}"));
        unless(409, api.create(&PostParams::default(), &pod).await)?;
    }
    let mut running = 0;
    for pod in pods.iter().filter(|p| owned_by(&p.metadata, &uid) && p.metadata.deletion_timestamp.is_none()) {
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        if wanted.contains(pod_name) {
            running += 1;
        } else {
            unless(404, api.delete(pod_name, &DeleteParams::default()).await)?;
        }
    }

    let status = RevisionStatus { replicas: running };
    if rev.status.as_ref() != Some(&status) {
        let revs: Api<WebAppRevision> = Api::namespaced(ctx.kube(), &ns);
        revs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await?;
    }
    Ok(Action::await_change())
}

fn revision_error_policy(_rev: Arc<WebAppRevision>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "revision reconcile failed");
    Action::Requeue
}
