//! Resource types the simulator serves (pods, nodes, ...), and how they are named.

/// One served resource type: where it lives in the URL space and how its objects look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; empty for the core group (`/api/v1`).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Object kind (`Pod`).
    pub kind: String,
    /// URL plural (`pods`).
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// JSON members that follow `metadata` in a BOOKMARK object, with their leading
    /// comma, e.g. `,"spec":{"containers":null},"status":{}` for pods (what a real
    /// server sends: its bookmark is an empty typed object). Empty for none.
    pub bookmark_tail: String,
}

impl ResourceDef {
    /// A resource definition; `group` is `""` for the core group.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
            bookmark_tail: String::new(),
        }
    }

    /// Sets [`ResourceDef::bookmark_tail`].
    #[must_use]
    pub fn with_bookmark_tail(mut self, tail: &str) -> Self {
        self.bookmark_tail = tail.to_owned();
        self
    }

    /// `apiVersion` of the objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Kind of a LIST response (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The name tests and the admin API use for this resource: `pods` for the core
    /// group, `deployments.apps` otherwise (kubectl's spelling).
    pub fn name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The resources served by default: pods, nodes, namespaces, configmaps.
    pub fn defaults() -> Vec<ResourceDef> {
        vec![
            ResourceDef::new("", "v1", "Pod", "pods", true)
                .with_bookmark_tail(r#","spec":{"containers":null},"status":{}"#),
            ResourceDef::new("", "v1", "Node", "nodes", false),
            ResourceDef::new("", "v1", "Namespace", "namespaces", false),
            ResourceDef::new("", "v1", "ConfigMap", "configmaps", true),
        ]
    }
}
