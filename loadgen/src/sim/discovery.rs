//! The simulator's discovery documents: `/apis` (an `APIGroupList` in the real
//! server's group order) and `/api/v1`, `/apis/{group}/{version}` (an
//! `APIResourceList` of every served resource and its `status` subresource).

use serde_json::{Value, json};

use super::server::Shared;

/// The `APIGroupList` of `/apis`: every group with a served resource, its versions
/// in registration order, sorted as the real server sorts them.
pub(crate) fn api_group_list(shared: &Shared) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in shared
        .store
        .resources()
        .iter()
        .filter(|r| !r.group.is_empty())
    {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version.clone()),
            Some(_) => {}
            None => groups.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    // A stable sort: groups the real server does not know keep their order.
    groups.sort_by_key(|(g, _)| std::cmp::Reverse(group_priority(g)));
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The order of a real server's `/apis`: by each group's `groupPriorityMinimum`
/// (k8s.io/kubernetes pkg/controlplane/apiserver/aggregator.go, `apiVersionPriorities`);
/// other groups (custom resources) get 1000, as the CRD registration controller
/// gives them.
fn group_priority(group: &str) -> u32 {
    match group {
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "batch" => 17400,
        "policy" => 17100,
        "coordination.k8s.io" => 16500,
        "discovery.k8s.io" => 16200,
        _ => 1000,
    }
}

/// The `APIResourceList` of one group version (`group` empty: the core group).
pub(crate) fn resource_list(shared: &Shared, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = shared
        .store
        .resources()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| {
            let verbs = ["create", "delete", "get", "list", "patch", "update", "watch"];
            [
                json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs}),
                json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            ]
        })
        .collect();
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}
