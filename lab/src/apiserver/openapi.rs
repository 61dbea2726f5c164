//! A minimal OpenAPI v3 description: just enough for `kubectl apply`/`create` to learn that the
//! server validates fields itself (`fieldValidation` on each PATCH operation, found by its
//! `x-kubernetes-group-version-kind`), so kubectl sends `fieldValidation=Strict` instead of
//! downloading schemas to validate client-side.
//!
//! ```text
//!   /openapi/v3                       {"paths": {"api/v1": {"serverRelativeURL": ...}, ...}}
//!   /openapi/v3/api/v1                OpenAPI 3.0 document: the served kinds' paths and
//!   /openapi/v3/apis/discovery.k8s.io/v1   operations, no schemas
//! ```
//! No PATCH operation declares a request body, so kubectl computes strategic merge patches
//! from its compiled-in types, as it does when a server publishes no schema. Pure.

use serde_json::{Map, Value, json};

use super::resource::Kind;

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut gvs: Vec<(&str, &str)> = Kind::ALL
        .iter()
        .map(|k| (k.info().group, k.info().version))
        .collect();
    gvs.dedup();
    gvs
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable hash of a document, for the `?hash=` kubectl caches by.
fn hash(doc: &Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha512::digest(doc.to_string().as_bytes());
    digest.iter().take(32).map(|b| format!("{b:02X}")).collect()
}

/// `/openapi/v3`: where each group version's document is.
pub fn index() -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions() {
        let p = gv_path(g, v);
        let doc = group_version(&p).unwrap_or(Value::Null);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

fn query(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn op(kind: Kind, action: &str, params: &[&str]) -> Value {
    let i = kind.info();
    let params: Vec<Value> = params.iter().map(|p| query(p)).collect();
    json!({
        "operationId": format!("{action}{}", i.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": i.group, "version": i.version, "kind": i.kind},
    })
}

/// The OpenAPI 3.0 document of one group version (`api/v1`, `apis/discovery.k8s.io/v1`), if
/// served.
pub fn group_version(path: &str) -> Option<Value> {
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| gv_path(k.info().group, k.info().version) == path)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let write = ["dryRun", "fieldManager", "fieldValidation"];
    let list = [
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "watch",
        "allowWatchBookmarks",
        "timeoutSeconds",
        "sendInitialEvents",
    ];
    let mut paths = Map::new();
    for k in kinds {
        let i = k.info();
        let base = if i.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}", i.plural)
        } else {
            format!("/{path}/{}", i.plural)
        };
        paths.insert(
            base.clone(),
            json!({"get": op(k, "list", &list), "post": op(k, "post", &write), "delete": op(k, "deletecollection", &["dryRun"])}),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"get": op(k, "get", &[]), "put": op(k, "put", &write), "patch": op(k, "patch", &write), "delete": op(k, "delete", &["dryRun"])}),
        );
        if i.status {
            paths.insert(
                format!("{base}/{{name}}/status"),
                json!({"get": op(k, "get", &[]), "put": op(k, "put", &write), "patch": op(k, "patch", &write)}),
            );
        }
        if i.namespaced {
            paths.insert(
                format!("/{path}/{}", i.plural),
                json!({"get": op(k, "list", &list)}),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (lab API server double)", "version": format!("v{}.{}.0", super::discovery::MAJOR, super::discovery::MINOR)},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_patch_operation_with_field_validation() {
        let idx = index();
        let urls: Vec<&str> = idx["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v["serverRelativeURL"].as_str().unwrap())
            .collect();
        assert_eq!(urls.len(), 2);
        assert!(urls[0].starts_with("/openapi/v3/api/v1?hash="));
        for k in Kind::ALL {
            let doc = group_version(&gv_path(k.info().group, k.info().version)).unwrap();
            let found = doc["paths"].as_object().unwrap().values().any(|p| {
                p["patch"]["x-kubernetes-group-version-kind"]["kind"] == k.info().kind
                    && p["patch"]["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|q| q["name"] == "fieldValidation" && q["in"] == "query")
            });
            assert!(found, "{k}");
        }
        assert!(group_version("apis/apps/v1").is_none());
    }
}
