//! Writes of dynamic kinds (`DynamicObject` described by an `ApiResource`,
//! e.g. a custom resource), on the same paths as the typed ones.

use std::fmt::Debug;

use kube::api::{Patch, PostParams};
use kube::core::{ApiResource, DynamicObject, Request, Resource, TypeMeta};
use serde::Serialize;

use super::cached::{CachedClient, ClientError};
use super::write::{apply_params, encode, named};
use crate::informer::InformerKey;

/// `obj` with its `apiVersion`/`kind` filled from `resource` when absent (an
/// applied configuration must carry them).
fn typed(resource: &ApiResource, obj: &DynamicObject) -> DynamicObject {
    let mut obj = obj.clone();
    if obj.types.is_none() {
        obj.types = Some(TypeMeta { api_version: resource.api_version.clone(), kind: resource.kind.clone() });
    }
    obj
}

impl CachedClient {
    /// [`CachedClient::create`] of a dynamic `resource`.
    pub async fn create_dynamic(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        obj: &DynamicObject,
    ) -> Result<DynamicObject, ClientError> {
        let req = Request::new(DynamicObject::url_path(resource, namespace))
            .create(&PostParams::default(), encode(&typed(resource, obj))?)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::new(resource), req).await
    }

    /// [`CachedClient::replace`] of a dynamic `resource`.
    pub async fn replace_dynamic(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        obj: &DynamicObject,
    ) -> Result<DynamicObject, ClientError> {
        let req = Request::new(DynamicObject::url_path(resource, namespace))
            .replace(name, &PostParams::default(), encode(&typed(resource, obj))?)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::new(resource), req).await
    }

    /// [`CachedClient::patch`] of a dynamic `resource`.
    pub async fn patch_dynamic<P: Serialize + Debug>(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch<P>,
    ) -> Result<DynamicObject, ClientError> {
        let req = Request::new(DynamicObject::url_path(resource, namespace))
            .patch(name, &self.patch_params(patch), patch)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::new(resource), req).await
    }

    /// [`CachedClient::delete`] of a dynamic `resource`.
    pub async fn delete_dynamic(&self, resource: &ApiResource, namespace: Option<&str>, name: &str) -> Result<(), ClientError> {
        self.delete_at(&InformerKey::new(resource), DynamicObject::url_path(resource, namespace), namespace, name).await
    }

    /// [`CachedClient::apply`] of a dynamic `resource`; `apiVersion` and
    /// `kind` are filled from `resource` when `obj` has none.
    ///
    /// ```no_run
    /// # async fn demo(client: kcache::CachedClient) -> Result<(), kcache::ClientError> {
    /// use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    /// // A cluster-scoped custom resource: no namespace anywhere.
    /// let gvk = GroupVersionKind::gvk("example.com", "v1", "Tenant");
    /// let tenants = ApiResource::from_gvk_with_plural(&gvk, "tenants");
    /// let mut tenant = DynamicObject::new("acme", &tenants);
    /// tenant.data = serde_json::json!({"spec": {"tier": "gold"}});
    /// client.apply_dynamic(&tenants, &tenant, "tenant-operator", false).await?;
    /// # Ok(()) }
    /// ```
    pub async fn apply_dynamic(
        &self,
        resource: &ApiResource,
        obj: &DynamicObject,
        field_manager: &str,
        force: bool,
    ) -> Result<DynamicObject, ClientError> {
        let obj = typed(resource, obj);
        let (namespace, name) = named(&obj)?;
        let req = Request::new(DynamicObject::url_path(resource, namespace))
            .patch(name, &apply_params(field_manager, force), &Patch::Apply(&obj))
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::new(resource), req).await
    }

    /// [`CachedClient::replace_status`] of a dynamic `resource`.
    pub async fn replace_status_dynamic(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        obj: &DynamicObject,
    ) -> Result<DynamicObject, ClientError> {
        let req = Request::new(DynamicObject::url_path(resource, namespace))
            .replace_subresource("status", name, &PostParams::default(), encode(&typed(resource, obj))?)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::new(resource), req).await
    }

    /// [`CachedClient::patch_status`] of a dynamic `resource`.
    pub async fn patch_status_dynamic<P: Serialize + Debug>(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch<P>,
    ) -> Result<DynamicObject, ClientError> {
        let req = Request::new(DynamicObject::url_path(resource, namespace))
            .patch_subresource("status", name, &self.patch_params(patch), patch)
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::new(resource), req).await
    }

    /// [`CachedClient::apply_status`] of a dynamic `resource`.
    pub async fn apply_status_dynamic(
        &self,
        resource: &ApiResource,
        obj: &DynamicObject,
        field_manager: &str,
        force: bool,
    ) -> Result<DynamicObject, ClientError> {
        let obj = typed(resource, obj);
        let (namespace, name) = named(&obj)?;
        let req = Request::new(DynamicObject::url_path(resource, namespace))
            .patch_subresource("status", name, &apply_params(field_manager, force), &Patch::Apply(&obj))
            .map_err(kube::Error::BuildRequest)?;
        self.write(&InformerKey::new(resource), req).await
    }
}
