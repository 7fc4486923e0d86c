//! The `configmapgen` controller: each `ConfigMapGenerator` (group `nullable.se`)
//! owns a ConfigMap of the same name whose `data.content` is the generator's
//! `spec.content` (kube-rs's `configmapgen_controller` example, on kcache).
//!
//! Shared by `engine/examples/configmapgen_controller.rs` and the end-to-end test
//! `loadgen/tests/example_configmapgen.rs`, which runs [`run`] against the simulator.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kcache::{Action, CachedClient, ClientError, Controller};
use kube::Resource;
use serde::{Deserialize, Serialize};

/// The custom resource, written out as `#[derive(CustomResource)]` would generate it
/// (the workspace builds kube without its `derive` feature).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapGenerator {
    /// `nullable.se/v1`; filled by [`ConfigMapGenerator::new`]. Items of a LIST may
    /// lack it (and `kind`), as the server leaves them out of built-in kinds' items.
    #[serde(default)]
    pub api_version: String,
    /// `ConfigMapGenerator`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the generated ConfigMap holds.
    pub spec: ConfigMapGeneratorSpec,
}

/// The generator's desired state.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ConfigMapGeneratorSpec {
    /// Becomes the ConfigMap's `data.content`.
    pub content: String,
}

impl ConfigMapGenerator {
    /// A generator named `name` whose ConfigMap holds `content` (what kube's
    /// `CustomResource` derive generates; the end-to-end test creates them with it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn new(name: &str, content: &str) -> Self {
        ConfigMapGenerator {
            api_version: Self::api_version(&()).into_owned(),
            kind: Self::kind(&()).into_owned(),
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            spec: ConfigMapGeneratorSpec { content: content.to_owned() },
        }
    }
}

impl Resource for ConfigMapGenerator {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "ConfigMapGenerator".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "nullable.se".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "configmapgenerators".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the ConfigMap or writing it failed.
    #[error("configmap write failed: {0}")]
    ConfigMap(#[from] ClientError),
    /// The generator lacks a field every stored object has.
    #[error("generator lacks {0}")]
    MissingObjectKey(&'static str),
}

/// What the reconciles share.
pub struct Data {
    /// Reads ConfigMaps from the cache, writes to the API server.
    pub client: CachedClient,
}

/// The field manager of the controller's server-side applies (kube-rs's example's).
pub const MANAGER: &str = "configmapgenerator.kube-rt.nullable.se";

/// Makes the generator's ConfigMap exist with its content and a controller
/// reference back to it, by server-side apply as kube-rs's example does. Reads the
/// ConfigMap from the cache first and applies only when it differs, so an unchanged
/// generator costs no API call.
pub async fn reconcile(generator: Arc<ConfigMapGenerator>, ctx: Arc<Data>) -> Result<Action, Error> {
    if generator.metadata.deletion_timestamp.is_some() {
        // Going away: the garbage collector is deleting the ConfigMap, which must
        // not come back (a foreground deletion waits for it to be gone).
        return Ok(Action::await_change());
    }
    let name = generator.metadata.name.as_deref().ok_or(Error::MissingObjectKey(".metadata.name"))?;
    let namespace = generator.metadata.namespace.as_deref().ok_or(Error::MissingObjectKey(".metadata.namespace"))?;
    let owner = generator.controller_owner_ref(&()).ok_or(Error::MissingObjectKey(".metadata.uid"))?;

    let cached = ctx.client.get::<ConfigMap>(Some(namespace), name).await?;
    let in_place = cached.is_some_and(|cm| {
        cm.data.as_ref().and_then(|d| d.get("content")) == Some(&generator.spec.content)
            && cm.metadata.owner_references.iter().flatten().any(|r| *r == owner)
    });
    if !in_place {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                owner_references: Some(vec![owner]),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("content".to_owned(), generator.spec.content.clone())])),
            ..ConfigMap::default()
        };
        // Creates the ConfigMap or sets the fields this manager owns; `force` takes
        // `data.content` back from whoever changed it. The cache holds the answer
        // when this returns (the cached client's writes wait for it).
        ctx.client.apply(&cm, MANAGER, true).await?;
    }
    // As kube-rs's example: look again every five minutes whatever happens.
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Retries a failed reconcile after a second.
pub fn error_policy(_generator: Arc<ConfigMapGenerator>, error: &Error, _ctx: Arc<Data>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(1))
}

/// Runs the controller until `shutdown` resolves: generators are reconciled when they
/// change, when a ConfigMap they own changes or goes away, and all of them each time
/// `reload` yields.
///
/// # Errors
/// When an informer cannot be started.
pub async fn run(
    client: kube::Client,
    reload: impl Stream<Item = ()> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ClientError> {
    let client = CachedClient::new(client);
    let generators = client.informer::<ConfigMapGenerator>()?;
    let configmaps = client.informer::<ConfigMap>()?;
    Controller::<ConfigMapGenerator>::new(&generators)
        .owns::<ConfigMap>(&configmaps)
        .reconcile_all_on(reload)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(Data { client }))
        .await;
    Ok(())
}
