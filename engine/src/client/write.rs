//! Writes of typed kinds through the API server, each followed by the wait
//! that makes the next cached read see it.

use std::fmt::Debug;
use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Request, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cached::{CachedClient, ClientError};
use crate::informer::InformerKey;

/// How often a delete's wait looks whether the cache dropped the key: a
/// removal carries no resourceVersion to wait for.
const GONE_POLL: Duration = Duration::from_millis(5);

impl CachedClient {
    /// Creates an object through the API server (`namespace` is `None` for a
    /// cluster-scoped kind), then waits for the cache (see the module doc).
    ///
    /// ```no_run
    /// # async fn demo(client: kcache::CachedClient) -> Result<(), kcache::ClientError> {
    /// use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    /// let mut cm = ConfigMap::default();
    /// cm.metadata.name = Some("settings".into());
    /// client.create("default", &cm).await?;
    /// let mut ns = Namespace::default();
    /// ns.metadata.name = Some("team-a".into());
    /// client.create(None, &ns).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create<'n, K>(&self, namespace: impl Into<Option<&'n str>>, obj: &K) -> Result<K, ClientError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let req = Request::new(K::url_path(&(), namespace.into()))
            .create(&PostParams::default(), encode(obj)?)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::of::<K>(), req).await
    }

    /// Replaces an object through the API server (optimistic concurrency on its resourceVersion).
    pub async fn replace<'n, K>(&self, namespace: impl Into<Option<&'n str>>, name: &str, obj: &K) -> Result<K, ClientError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let req = Request::new(K::url_path(&(), namespace.into()))
            .replace(name, &PostParams::default(), encode(obj)?)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::of::<K>(), req).await
    }

    /// Patches an object through the API server: a merge or JSON patch, or
    /// `Patch::Apply` as [`CachedClient::with_field_manager`]'s manager
    /// without force (see [`CachedClient::apply`] to choose both).
    pub async fn patch<'n, K, P>(
        &self,
        namespace: impl Into<Option<&'n str>>,
        name: &str,
        patch: &Patch<P>,
    ) -> Result<K, ClientError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
        P: Serialize + Debug,
    {
        let req = Request::new(K::url_path(&(), namespace.into()))
            .patch(name, &self.patch_params(patch), patch)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::of::<K>(), req).await
    }

    /// Deletes an object through the API server; waits until the cache shows
    /// the deletion (the object marked for deletion, or its key gone).
    pub async fn delete<'n, K>(&self, namespace: impl Into<Option<&'n str>>, name: &str) -> Result<(), ClientError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    {
        let namespace = namespace.into();
        self.delete_at(&InformerKey::of::<K>(), K::url_path(&(), namespace), namespace, name).await
    }

    /// Server-side apply of `obj` (PATCH `application/apply-patch+yaml`) as
    /// `field_manager`; `force` takes over fields other managers own instead
    /// of failing with 409 Conflict. The namespace and name are `obj`'s.
    ///
    /// ```no_run
    /// # async fn demo(client: kcache::CachedClient) -> Result<(), kcache::ClientError> {
    /// use k8s_openapi::api::core::v1::ConfigMap;
    /// let mut cm = ConfigMap::default();
    /// cm.metadata.name = Some("settings".into());
    /// cm.metadata.namespace = Some("default".into());
    /// cm.data = Some([("mode".to_owned(), "fast".to_owned())].into());
    /// let applied: ConfigMap = client.apply(&cm, "my-controller", false).await?;
    /// // The cache already holds what the server answered.
    /// let cached: Option<ConfigMap> = client.get(Some("default"), "settings").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::MissingName`] without `metadata.name`; a 409 from the
    /// server as [`ClientError::Api`] on a conflict without `force`.
    pub async fn apply<K>(&self, obj: &K, field_manager: &str, force: bool) -> Result<K, ClientError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let (namespace, name) = named(obj)?;
        let req = Request::new(K::url_path(&(), namespace))
            .patch(name, &apply_params(field_manager, force), &Patch::Apply(obj))
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::of::<K>(), req).await
    }

    /// Replaces the `status` subresource (PUT `.../status`): only `.status`
    /// of `obj` is taken; the spec and metadata stay the server's.
    ///
    /// ```no_run
    /// # async fn demo(client: kcache::CachedClient) -> Result<(), kcache::ClientError> {
    /// use k8s_openapi::api::core::v1::Pod;
    /// let mut pod: Pod = client.get(Some("default"), "web-0").await?.expect("exists");
    /// pod.status.get_or_insert_with(Default::default).message = Some("warming up".into());
    /// client.replace_status("default", "web-0", &pod).await?;
    /// # Ok(()) }
    /// ```
    pub async fn replace_status<'n, K>(
        &self,
        namespace: impl Into<Option<&'n str>>,
        name: &str,
        obj: &K,
    ) -> Result<K, ClientError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let req = Request::new(K::url_path(&(), namespace.into()))
            .replace_subresource("status", name, &PostParams::default(), encode(obj)?)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::of::<K>(), req).await
    }

    /// Patches the `status` subresource: a merge or JSON patch, or
    /// `Patch::Apply` as [`CachedClient::with_field_manager`]'s manager.
    ///
    /// ```no_run
    /// # async fn demo(client: kcache::CachedClient) -> Result<(), kcache::ClientError> {
    /// use k8s_openapi::api::core::v1::Pod;
    /// use kube::api::Patch;
    /// let patch = Patch::Merge(serde_json::json!({"status": {"message": "warming up"}}));
    /// let pod: Pod = client.patch_status("default", "web-0", &patch).await?;
    /// # Ok(()) }
    /// ```
    pub async fn patch_status<'n, K, P>(
        &self,
        namespace: impl Into<Option<&'n str>>,
        name: &str,
        patch: &Patch<P>,
    ) -> Result<K, ClientError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
        P: Serialize + Debug,
    {
        let req = Request::new(K::url_path(&(), namespace.into()))
            .patch_subresource("status", name, &self.patch_params(patch), patch)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::of::<K>(), req).await
    }

    /// Server-side apply of `obj`'s `.status` to the `status` subresource as
    /// `field_manager` (see [`CachedClient::apply`]).
    ///
    /// ```no_run
    /// # async fn demo(client: kcache::CachedClient) -> Result<(), kcache::ClientError> {
    /// use k8s_openapi::api::core::v1::{Node, NodeStatus};
    /// let mut node = Node::default();
    /// node.metadata.name = Some("node-1".into());
    /// node.status = Some(NodeStatus { phase: Some("Running".into()), ..Default::default() });
    /// client.apply_status(&node, "node-agent", true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn apply_status<K>(&self, obj: &K, field_manager: &str, force: bool) -> Result<K, ClientError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let (namespace, name) = named(obj)?;
        let req = Request::new(K::url_path(&(), namespace))
            .patch_subresource("status", name, &apply_params(field_manager, force), &Patch::Apply(obj))
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::of::<K>(), req).await
    }

    /// The params of `patch`: an apply needs a field manager.
    pub(super) fn patch_params<P: Serialize>(&self, patch: &Patch<P>) -> PatchParams {
        match patch {
            Patch::Apply(_) => PatchParams::apply(&self.field_manager),
            _ => PatchParams::default(),
        }
    }

    /// Sends a write and waits for `key`'s cache to hold its answer.
    pub(super) async fn write<K>(&self, key: &InformerKey, req: http::Request<Vec<u8>>) -> Result<K, ClientError>
    where
        K: Resource + DeserializeOwned + Clone + Debug,
    {
        let obj: K = self.client.request::<K>(req).await?;
        if let Some(rv) = obj.meta().resource_version.as_deref() {
            self.catch_up(key, rv).await?;
        }
        Ok(obj)
    }

    /// Waits until the store of `key`'s informer holds `rv`, when this client
    /// started that informer and it has synced (before that, reads go to the
    /// API server and see the write anyway).
    async fn catch_up(&self, key: &InformerKey, rv: &str) -> Result<(), ClientError> {
        let Some(informer) = self.synced_informer(key).filter(|_| !self.write_wait.is_zero()) else {
            return Ok(());
        };
        match tokio::time::timeout(self.write_wait, informer.store().wait_for(rv)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ClientError::Timeout(rv.to_owned())),
        }
    }

    /// Deletes `name`, then waits for the cache: for the marked object's
    /// resourceVersion, or (the answer a `Status`) until the key is gone.
    pub(super) async fn delete_at(
        &self,
        key: &InformerKey,
        url: String,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ClientError> {
        let req = Request::new(url).delete(name, &DeleteParams::default()).map_err(kube::Error::BuildRequest)?;
        let answer: serde_json::Value = self.client.request(req).await?;
        if answer["kind"] != "Status" {
            return match answer.pointer("/metadata/resourceVersion").and_then(serde_json::Value::as_str) {
                Some(rv) => self.catch_up(key, rv).await,
                None => Ok(()),
            };
        }
        let Some(informer) = self.synced_informer(key).filter(|_| !self.write_wait.is_zero()) else {
            return Ok(());
        };
        let store_key = match namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        };
        let store = informer.store();
        let gone = async {
            while store.get_by_key(&store_key).is_some() {
                tokio::time::sleep(GONE_POLL).await;
            }
        };
        tokio::time::timeout(self.write_wait, gone)
            .await
            .map_err(|_| ClientError::Timeout(format!("deletion of {store_key}")))
    }
}

/// `obj` as a request body.
pub(super) fn encode<T: Serialize>(obj: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(obj).map_err(|e| ClientError::Api(kube::Error::SerdeError(e)))
}

/// The namespace and name of an object to apply.
pub(super) fn named<K: Resource>(obj: &K) -> Result<(Option<&str>, &str), ClientError> {
    let meta = obj.meta();
    let name = meta.name.as_deref().filter(|n| !n.is_empty()).ok_or(ClientError::MissingName)?;
    Ok((meta.namespace.as_deref().filter(|n| !n.is_empty()), name))
}

/// `fieldManager=…` and, with `force`, `force=true`.
pub(super) fn apply_params(field_manager: &str, force: bool) -> PatchParams {
    let params = PatchParams::apply(field_manager);
    if force { params.force() } else { params }
}
