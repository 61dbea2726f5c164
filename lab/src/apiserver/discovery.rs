//! Discovery documents: what `kubectl` and kube-rs read before anything else to learn which
//! groups, versions and resources exist.
//!
//! ```text
//!   /version                     version.Info (reported as v1.33)
//!   /api, /apis                  APIVersions, APIGroupList; or, when the client asks for
//!                                `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`,
//!                                the aggregated APIGroupDiscoveryList (kubectl >= 1.30 asks first)
//!   /apis/discovery.k8s.io       APIGroup
//!   /api/v1, /apis/{g}/{v}       APIResourceList: verbs, namespaced, kind, shortNames
//! ```
//! Only the served kinds appear. Pure: in a group/version, out a JSON document.

use serde_json::{Value, json};

use super::resource::{Kind, STATUS_VERBS, VERBS};

/// The Kubernetes version the double claims (`kubectl version` shows it).
pub const MAJOR: &str = "1";
/// Minor version claimed.
pub const MINOR: &str = "33";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-lab"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`: the core group's versions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The named (non-core) groups served, in order.
fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = Kind::ALL
        .iter()
        .map(|k| k.info().group)
        .filter(|g| !g.is_empty())
        .collect();
    g.dedup();
    g
}

fn group_doc(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `/apis`: the named groups.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().into_iter().map(group_doc).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, if the group is served.
pub fn api_group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let mut g = group_doc(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

fn kinds_in(group: &str, version: &str) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.info().group == group && k.info().version == version)
        .collect();
    kinds.sort_by_key(|k| k.info().plural);
    kinds
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds = kinds_in(group, version);
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for k in kinds {
        let i = k.info();
        let mut r = json!({
            "name": i.plural,
            "singularName": i.singular,
            "namespaced": i.namespaced,
            "kind": i.kind,
            "verbs": VERBS,
        });
        if !i.short_names.is_empty() {
            r["shortNames"] = json!(i.short_names);
        }
        if !i.categories.is_empty() {
            r["categories"] = json!(i.categories);
        }
        resources.push(r);
        if i.status {
            resources.push(json!({
                "name": format!("{}/status", i.plural),
                "singularName": "",
                "namespaced": i.namespaced,
                "kind": i.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// The aggregated discovery document for `/api` (`core`) or `/apis`: an
/// `apidiscovery.k8s.io/v2` APIGroupDiscoveryList with every resource of every version.
pub fn aggregated(core: bool) -> Value {
    let groups: Vec<&str> = if core { vec![""] } else { groups() };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|group| {
            let resources: Vec<Value> = kinds_in(group, "v1")
                .into_iter()
                .map(|k| {
                    let i = k.info();
                    let response_kind = json!({"group": group, "version": i.version, "kind": i.kind});
                    let mut r = json!({
                        "resource": i.plural,
                        "responseKind": response_kind,
                        "scope": if i.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": i.singular,
                        "verbs": VERBS,
                    });
                    if !i.short_names.is_empty() {
                        r["shortNames"] = json!(i.short_names);
                    }
                    if !i.categories.is_empty() {
                        r["categories"] = json!(i.categories);
                    }
                    if i.status {
                        r["subresources"] = json!([{"subresource": "status", "responseKind": response_kind, "verbs": STATUS_VERBS}]);
                    }
                    r
                })
                .collect();
            let mut meta = json!({"creationTimestamp": null});
            if !group.is_empty() {
                meta["name"] = json!(group);
            }
            json!({"metadata": meta, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// The `Content-Type` of an aggregated discovery answer.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

    #[test]
    fn documents_decode_as_the_upstream_types() {
        let _: meta::APIVersions = serde_json::from_value(api_versions("127.0.0.1:1")).unwrap();
        let groups: meta::APIGroupList = serde_json::from_value(api_group_list()).unwrap();
        assert_eq!(groups.groups.len(), 1);
        assert_eq!(groups.groups[0].name, "discovery.k8s.io");
        let _: meta::APIGroup =
            serde_json::from_value(api_group("discovery.k8s.io").unwrap()).unwrap();
        assert!(api_group("apps").is_none());
        let core: meta::APIResourceList =
            serde_json::from_value(api_resource_list("", "v1").unwrap()).unwrap();
        let names: Vec<&str> = core.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "namespaces",
                "namespaces/status",
                "nodes",
                "nodes/status",
                "pods",
                "pods/status",
                "services",
                "services/status"
            ]
        );
        let svc = &core.resources[6];
        assert_eq!((svc.kind.as_str(), svc.namespaced), ("Service", true));
        assert_eq!(svc.short_names.as_deref(), Some(&["svc".to_string()][..]));
        assert!(svc.verbs.contains(&"watch".to_string()));
        let disc: meta::APIResourceList =
            serde_json::from_value(api_resource_list("discovery.k8s.io", "v1").unwrap()).unwrap();
        assert_eq!(disc.group_version, "discovery.k8s.io/v1");
        assert_eq!(disc.resources.len(), 1);
        assert!(api_resource_list("", "v2").is_none());
    }

    #[test]
    fn aggregated_discovery_lists_every_resource() {
        let core = aggregated(true);
        let res = &core["items"][0]["versions"][0]["resources"];
        assert_eq!(res.as_array().unwrap().len(), 4);
        assert_eq!(res[3]["resource"], "services");
        assert_eq!(res[3]["scope"], "Namespaced");
        assert_eq!(res[1]["scope"], "Cluster");
        let named = aggregated(false);
        assert_eq!(named["items"][0]["metadata"]["name"], "discovery.k8s.io");
        assert_eq!(
            named["items"][0]["versions"][0]["resources"][0]["responseKind"]["kind"],
            "EndpointSlice"
        );
    }
}
