//! The custom resources of the multi-kind example: a `WebApp` (what the user asks
//! for) and the `WebAppRevision`s it owns (one per image), both in
//! `example.kcache.dev/v1`, written out as kube's `CustomResource` derive would
//! generate them (the workspace builds kube without its `derive` feature).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Serialize};

/// The API group of both kinds.
pub const GROUP: &str = "example.kcache.dev";
/// Label on revisions and pods: the `WebApp` they belong to.
pub const APP_LABEL: &str = "example.kcache.dev/webapp";
/// Label on pods: the `WebAppRevision` that made them.
pub const REVISION_LABEL: &str = "example.kcache.dev/revision";

/// Implements `kube::Resource` for a namespaced kind of [`GROUP`]/v1.
macro_rules! namespaced_resource {
    ($ty:ty, $kind:literal, $plural:literal) => {
        impl Resource for $ty {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                GROUP.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A web application: `replicas` pods running `image`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebApp {
    /// `example.kcache.dev/v1` (LIST items may lack it).
    #[serde(default)]
    pub api_version: String,
    /// `WebApp` (LIST items may lack it).
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the user asks for.
    pub spec: WebAppSpec,
    /// What the controller reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WebAppStatus>,
}

/// A `WebApp`'s desired state.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct WebAppSpec {
    /// How many pods.
    pub replicas: i32,
    /// The container image they run.
    pub image: String,
}

/// A `WebApp`'s observed state, from its current revision and its pods.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebAppStatus {
    /// The revision that runs `spec.image`.
    pub revision: String,
    /// Pods of that revision (its `status.replicas`).
    pub replicas: i32,
    /// Pods of the app, of every revision (more than `replicas` during a roll).
    pub pods: i32,
}

impl WebApp {
    /// A `WebApp` named `name` (what kube's derive generates).
    #[cfg_attr(not(test), allow(dead_code))] // the end-to-end test creates them with it
    pub fn new(name: &str, spec: WebAppSpec) -> Self {
        WebApp {
            api_version: Self::api_version(&()).into_owned(),
            kind: Self::kind(&()).into_owned(),
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            spec,
            status: None,
        }
    }
}

namespaced_resource!(WebApp, "WebApp", "webapps");

/// One image of a `WebApp`: `replicas` pods running `image`, named
/// `<revision>-<index>`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebAppRevision {
    /// `example.kcache.dev/v1` (LIST items may lack it).
    #[serde(default)]
    pub api_version: String,
    /// `WebAppRevision` (LIST items may lack it).
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Copied from the owning `WebApp`.
    pub spec: WebAppSpec,
    /// What the revision controller reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RevisionStatus>,
}

/// A revision's observed state.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct RevisionStatus {
    /// Its pods that exist and are not being deleted.
    pub replicas: i32,
}

impl WebAppRevision {
    /// The revision of `app` for `spec`.
    pub fn new(name: &str, spec: WebAppSpec) -> Self {
        WebAppRevision {
            api_version: Self::api_version(&()).into_owned(),
            kind: Self::kind(&()).into_owned(),
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            spec,
            status: None,
        }
    }
}

namespaced_resource!(WebAppRevision, "WebAppRevision", "webapprevisions");

/// The revision name of `app` running `image`: the app's name and a hash of the
/// image (FNV-1a, stable across builds), so that each image gets its own revision
/// and a retried create names the same one.
pub fn revision_name(app: &str, image: &str) -> String {
    let hash = image.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{app}-{:08x}", hash as u32)
}
