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
    /// A resource definition; `group` is `""` for the core group. Fits a
    /// custom resource as it is: a real server's BOOKMARK for one is an
    /// unstructured object with metadata only, which an empty
    /// [`ResourceDef::bookmark_tail`] gives.
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

    /// apps/v1 Deployments (namespaced), served at `/apis/apps/v1/...`.
    pub fn deployments() -> Self {
        // The BOOKMARK object is the Go zero value of apps/v1 Deployment
        // (k8s.io/api/apps/v1/types.go: `selector` and `template` carry no
        // omitempty, `strategy` and `status` are structs), serialized as the
        // captured pod bookmark is (fixtures/real-apiserver/watch-events.jsonl:
        // no null creationTimestamp).
        ResourceDef::new("apps", "v1", "Deployment", "deployments", true).with_bookmark_tail(
            r#","spec":{"selector":null,"template":{"metadata":{},"spec":{"containers":null}},"strategy":{}},"status":{}"#,
        )
    }

    /// events.k8s.io/v1 Events (namespaced), served at `/apis/events.k8s.io/v1/...`.
    ///
    /// Not among [`ResourceDef::defaults`]: a default group would come first in
    /// `/apis`, ahead of the groups a test registers. The simulator stores these
    /// apart from the core [`ResourceDef::core_events`], where a real server keeps
    /// one collection served in both versions.
    pub fn events() -> Self {
        // The bookmark tail of a real v1.36 server (a watch with
        // sendInitialEvents=true on /apis/events.k8s.io/v1/namespaces/NS/events):
        // the Go zero value of events/v1 Event, whose eventTime, regarding and
        // deprecated* fields carry no omitempty that applies to structs.
        ResourceDef::new("events.k8s.io", "v1", "Event", "events", true).with_bookmark_tail(
            r#","eventTime":null,"regarding":{},"deprecatedSource":{},"deprecatedFirstTimestamp":null,"deprecatedLastTimestamp":null"#,
        )
    }

    /// Core v1 Events (namespaced), served at `/api/v1/.../events`.
    pub fn core_events() -> Self {
        // The bookmark tail of a real v1.36 server on /api/v1/namespaces/NS/events.
        ResourceDef::new("", "v1", "Event", "events", true).with_bookmark_tail(
            r#","involvedObject":{},"source":{},"firstTimestamp":null,"lastTimestamp":null,"eventTime":null,"reportingComponent":"","reportingInstance":"""#,
        )
    }

    /// coordination.k8s.io/v1 Leases (namespaced), served at
    /// `/apis/coordination.k8s.io/v1/...`: what leader election writes.
    pub fn leases() -> Self {
        // The Go zero value of coordination/v1 Lease: `spec` is a struct without
        // omitempty that applies (k8s.io/api/coordination/v1/types.go).
        ResourceDef::new("coordination.k8s.io", "v1", "Lease", "leases", true).with_bookmark_tail(r#","spec":{}"#)
    }

    /// The resources served by default: pods, nodes, namespaces, configmaps,
    /// core events and leases.
    pub fn defaults() -> Vec<ResourceDef> {
        vec![
            ResourceDef::new("", "v1", "Pod", "pods", true)
                .with_bookmark_tail(r#","spec":{"containers":null},"status":{}"#),
            ResourceDef::new("", "v1", "Node", "nodes", false),
            ResourceDef::new("", "v1", "Namespace", "namespaces", false),
            ResourceDef::new("", "v1", "ConfigMap", "configmaps", true),
            ResourceDef::core_events(),
            ResourceDef::leases(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_live_in_the_apps_group() {
        let d = ResourceDef::deployments();
        assert_eq!((d.api_version(), d.name(), d.list_kind()), ("apps/v1".into(), "deployments.apps".into(), "DeploymentList".into()));
        assert!(d.namespaced);
        let bookmark = format!(r#"{{"kind":"Deployment","apiVersion":"apps/v1","metadata":{{"resourceVersion":"1"}}{}}}"#, d.bookmark_tail);
        let v: serde_json::Value = serde_json::from_str(&bookmark).expect("the tail completes a JSON object");
        assert_eq!(v["spec"]["template"]["spec"]["containers"], serde_json::Value::Null);
    }

    #[test]
    fn leases_are_served_by_default_in_the_coordination_group() {
        let l = ResourceDef::leases();
        assert_eq!((l.api_version(), l.name(), l.list_kind()), ("coordination.k8s.io/v1".into(), "leases.coordination.k8s.io".into(), "LeaseList".into()));
        assert!(l.namespaced);
        assert!(ResourceDef::defaults().contains(&l));
    }

    #[test]
    fn both_event_kinds_are_named_apart_and_their_bookmarks_parse() {
        let (e, core) = (ResourceDef::events(), ResourceDef::core_events());
        assert_eq!((e.api_version(), e.name()), ("events.k8s.io/v1".into(), "events.events.k8s.io".into()));
        assert_eq!((core.api_version(), core.name()), ("v1".into(), "events".into()));
        assert!(e.namespaced && core.namespaced);
        assert!(ResourceDef::defaults().contains(&core));
        for d in [e, core] {
            let bookmark = format!(r#"{{"kind":"Event","metadata":{{}}{}}}"#, d.bookmark_tail);
            let v: serde_json::Value = serde_json::from_str(&bookmark).expect("the tail completes a JSON object");
            assert_eq!(v["eventTime"], serde_json::Value::Null);
        }
    }
}
