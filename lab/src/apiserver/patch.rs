//! The three PATCH bodies kube-apiserver accepts for built-in kinds, applied to a JSON object.
//!
//! ```text
//!   application/merge-patch+json            RFC 7386: maps merge, null deletes, lists replace
//!   application/json-patch+json             RFC 6902: add/remove/replace/move/copy/test ops
//!   application/strategic-merge-patch+json  merge patch, plus lists merged by their
//!                                           patchMergeKey ($patch, $setElementOrder/...,
//!                                           $retainKeys, $deleteFromPrimitiveList/...)
//! ```
//! In: the current object, the patch body, and (for strategic merge) the kind whose merge keys
//! apply. Out: the patched object or a [`PatchError`] saying what in the patch is wrong.

use serde_json::{Map, Value};

use super::resource::Kind;

/// A patch that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document has the wrong shape.
    #[error("invalid patch: {0}")]
    Invalid(String),
    /// A JSON patch `test` operation failed or a path does not exist.
    #[error("the patch could not be applied: {0}")]
    Failed(String),
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes a member, anything
/// else (lists included) replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// RFC 6902 JSON patch: applies every operation in order, or none (the target is untouched on
/// error).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError::Invalid("a JSON patch must be an array of operations".into()))?;
    let mut doc = target.clone();
    for (i, op) in ops.iter().enumerate() {
        let field = |name: &str| -> Result<&str, PatchError> {
            op.get(name).and_then(Value::as_str).ok_or_else(|| {
                PatchError::Invalid(format!("operation {i}: missing string member `{name}`"))
            })
        };
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::Invalid(format!("operation {i}: missing `value`")))
        };
        let path = field("path")?;
        match field("op")? {
            "add" => pointer_add(&mut doc, path, value()?)?,
            "remove" => {
                pointer_remove(&mut doc, path)?;
            }
            "replace" => {
                pointer_remove(&mut doc, path)?;
                pointer_add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = pointer_remove(&mut doc, field("from")?)?;
                pointer_add(&mut doc, path, v)?;
            }
            "copy" => {
                let from = field("from")?;
                let v = doc.pointer(from).cloned().ok_or_else(|| {
                    PatchError::Failed(format!("`from` path {from} does not exist"))
                })?;
                pointer_add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(PatchError::Failed(format!("test at {path} failed")));
                }
            }
            other => {
                return Err(PatchError::Invalid(format!(
                    "operation {i}: unknown op `{other}` (expected add, remove, replace, move, copy or test)"
                )));
            }
        }
    }
    *target = doc;
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), PatchError> {
    if !path.starts_with('/') {
        return Err(PatchError::Invalid(format!(
            "path `{path}` must start with `/`"
        )));
    }
    let at = path.rfind('/').unwrap_or(0);
    let last = path[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..at].to_string(), last))
}

fn pointer_add(doc: &mut Value, path: &str, v: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let missing = || PatchError::Failed(format!("parent of {path} does not exist"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| PatchError::Failed(format!("bad array index in {path}")))?
            };
            a.insert(idx, v);
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn pointer_remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split_pointer(path)?;
    let missing = || PatchError::Failed(format!("path {path} does not exist"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let idx = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(idx))
        }
        _ => Err(missing()),
    }
}

/// How strategic merge treats a list field (its `patchStrategy`/`patchMergeKey` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: elements are maps merged by `key`.
    ByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of scalars: the union.
    Primitive,
}

/// The merge strategy of the list at `path` (field names joined by `.`), from the Go types'
/// struct tags for the kinds served. Lists not named here are atomic (replaced).
fn list_strategy(kind: Kind, path: &str) -> Option<ListStrategy> {
    use ListStrategy::*;
    let common = match path {
        "metadata.ownerReferences" => Some(ByKey("uid")),
        "metadata.finalizers" => Some(Primitive),
        _ => None,
    };
    common.or(match (kind, path) {
        (Kind::Service, "spec.ports") => Some(ByKey("port")),
        (Kind::Node, "spec.podCIDRs") => Some(Primitive),
        (Kind::Node, "spec.taints") => Some(ByKey("key")),
        (Kind::Node, "status.addresses" | "status.conditions") => Some(ByKey("type")),
        (Kind::Pod, p) => {
            let container = [
                "spec.containers",
                "spec.initContainers",
                "spec.ephemeralContainers",
            ]
            .into_iter()
            .find(|c| p.starts_with(c));
            match container.map(|c| &p[c.len()..]) {
                Some("") => Some(ByKey("name")),
                Some(".ports") => Some(ByKey("containerPort")),
                Some(".env") => Some(ByKey("name")),
                Some(".volumeMounts") => Some(ByKey("mountPath")),
                Some(".volumeDevices") => Some(ByKey("devicePath")),
                Some(_) => None,
                None => match p {
                    "spec.volumes" | "spec.imagePullSecrets" | "spec.resourceClaims" => {
                        Some(ByKey("name"))
                    }
                    "spec.schedulingGates" => Some(ByKey("name")),
                    "spec.hostAliases" | "status.podIPs" | "status.hostIPs" => Some(ByKey("ip")),
                    "status.conditions" => Some(ByKey("type")),
                    _ => None,
                },
            }
        }
        _ => None,
    })
}

/// Strategic merge patch for the built-in `kind`: a merge patch whose lists with a merge key
/// are merged element by element, honouring the `$patch`, `$retainKeys`,
/// `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` directives.
pub fn strategic_merge_patch(
    kind: Kind,
    target: &mut Value,
    patch: &Value,
) -> Result<(), PatchError> {
    let Value::Object(_) = patch else {
        return Err(PatchError::Invalid(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let mut doc = target.clone();
    smp_map(kind, "", &mut doc, patch)?;
    *target = doc;
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn smp_map(kind: Kind, path: &str, target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").map(|v| v.as_str()) {
        None => {}
        Some(Some("replace")) => {
            let mut m = p.clone();
            m.remove("$patch");
            *target = Value::Object(m);
            return Ok(());
        }
        Some(Some("delete")) => {
            *target = Value::Null;
            return Ok(());
        }
        Some(Some("merge")) => {}
        Some(other) => {
            return Err(PatchError::Invalid(format!(
                "unknown $patch directive {other:?} at `{path}` (expected replace, delete or merge)"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    if let Some(keep) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .ok_or_else(|| {
                PatchError::Invalid(format!("$retainKeys at `{path}` must be a list"))
            })?;
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop = v
                .as_array()
                .ok_or_else(|| PatchError::Invalid(format!("{k} at `{path}` must be a list")))?;
            if let Some(Value::Array(list)) = t.get_mut(field) {
                list.retain(|x| !drop.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(PatchError::Invalid(format!(
                "unknown directive `{k}` at `{path}`"
            )));
        }
        let sub = join(path, k);
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match (v, list_strategy(kind, &sub)) {
            (Value::Array(items), Some(strategy)) => smp_list(kind, &sub, slot, items, strategy)?,
            (Value::Object(_), _) => {
                smp_map(kind, &sub, slot, v)?;
                if slot.is_null() {
                    t.remove(k);
                }
            }
            _ => *slot = v.clone(),
        }
    }
    for (k, order) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            let key = match list_strategy(kind, &join(path, field)) {
                Some(ListStrategy::ByKey(key)) => Some(key),
                _ => None,
            };
            if let (Some(Value::Array(list)), Some(order)) = (t.get_mut(field), order.as_array()) {
                reorder(list, order, key);
            }
        }
    }
    Ok(())
}

fn smp_list(
    kind: Kind,
    path: &str,
    target: &mut Value,
    items: &[Value],
    strategy: ListStrategy,
) -> Result<(), PatchError> {
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace {
        let kept = items.iter().filter(|i| i.get("$patch").is_none()).cloned();
        *target = Value::Array(kept.collect());
        return Ok(());
    }
    if !target.is_array() {
        *target = Value::Array(Vec::new());
    }
    let Value::Array(list) = target else {
        return Ok(());
    };
    match strategy {
        ListStrategy::Primitive => {
            for i in items {
                if !list.contains(i) {
                    list.push(i.clone());
                }
            }
        }
        ListStrategy::ByKey(key) => {
            for item in items {
                let k = item.get(key).ok_or_else(|| {
                    PatchError::Invalid(format!(
                        "an element of `{path}` has no merge key `{key}`: {item}"
                    ))
                })?;
                let pos = list.iter().position(|e| e.get(key) == Some(k));
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(pos) = pos {
                        list.remove(pos);
                    }
                    continue;
                }
                match pos {
                    Some(pos) => smp_map(kind, path, &mut list[pos], item)?,
                    None => {
                        let mut fresh = Value::Object(Map::new());
                        smp_map(kind, path, &mut fresh, item)?;
                        list.push(fresh);
                    }
                }
            }
        }
    }
    Ok(())
}

/// `$setElementOrder`: elements named in `order` first, in that order; the rest after, in their
/// current order. Keyed lists name elements by `{key: value}`, primitive lists by value.
fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let id = |v: &Value| match key {
        Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
        None => v.clone(),
    };
    let wanted: Vec<Value> = order.iter().map(id).collect();
    list.sort_by_key(|v| {
        let v = id(v);
        wanted.iter().position(|w| *w == v).unwrap_or(usize::MAX)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7386_examples() {
        // RFC 7386 appendix A, a selection.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        ];
        for (mut t, p, want) in cases {
            merge_patch(&mut t, &p);
            assert_eq!(t, want, "patch {p}");
        }
    }

    #[test]
    fn json_patch_ops() {
        let mut doc =
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}});
        let patch = json!([
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/labels/app~1name", "value": "web"},
            {"op": "replace", "path": "/spec/ports/0/port", "value": 81},
            {"op": "add", "path": "/spec/ports/-", "value": {"port": 443}},
            {"op": "copy", "from": "/spec/ports/1", "path": "/spec/first"},
            {"op": "move", "from": "/spec/first", "path": "/spec/moved"},
            {"op": "remove", "path": "/metadata/labels/a"}
        ]);
        json_patch(&mut doc, &patch).unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"labels": {"app/name": "web"}},
                   "spec": {"ports": [{"port": 81}, {"port": 443}], "moved": {"port": 443}}})
        );
        let before = doc.clone();
        let failing = json!([
            {"op": "remove", "path": "/metadata/labels"},
            {"op": "test", "path": "/spec/moved/port", "value": 1}
        ]);
        assert!(matches!(
            json_patch(&mut doc, &failing),
            Err(PatchError::Failed(_))
        ));
        assert_eq!(doc, before, "a failed patch changes nothing");
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "frob", "path": "/a"}])),
            Err(PatchError::Invalid(_))
        ));
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }

    #[test]
    fn strategic_merge_merges_service_ports_by_port() {
        let mut svc = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
                                      "externalIPs": ["198.19.255.1"]}});
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 443}, {"port": 80}, {"port": 8080}],
            "ports": [{"port": 80, "targetPort": 8080}, {"port": 8080, "name": "alt"}],
            "externalIPs": ["198.19.255.2"]
        }});
        strategic_merge_patch(Kind::Service, &mut svc, &patch).unwrap();
        assert_eq!(
            svc,
            json!({"spec": {"ports": [{"port": 443, "name": "https"},
                                      {"port": 80, "name": "http", "targetPort": 8080},
                                      {"port": 8080, "name": "alt"}],
                            "externalIPs": ["198.19.255.2"]}})
        );
        let del = json!({"spec": {"ports": [{"port": 443, "$patch": "delete"}]}});
        strategic_merge_patch(Kind::Service, &mut svc, &del).unwrap();
        let ports: Vec<i64> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        assert_eq!(ports, [80, 8080]);
        let replace = json!({"spec": {"ports": [{"port": 53}, {"$patch": "replace"}]}});
        strategic_merge_patch(Kind::Service, &mut svc, &replace).unwrap();
        assert_eq!(svc["spec"]["ports"], json!([{"port": 53}]));
    }

    #[test]
    fn strategic_merge_directives() {
        let mut node = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
                              "spec": {"podCIDRs": ["198.18.65.0/24"], "taints": [{"key": "k", "effect": "NoSchedule"}]}});
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"],
                         "labels": {"$retainKeys": ["y"], "y": "3"}},
            "spec": {"podCIDRs": ["2001:db8:1::/64"], "taints": [{"key": "k", "effect": "NoExecute"}]}
        });
        strategic_merge_patch(Kind::Node, &mut node, &patch).unwrap();
        assert_eq!(
            node,
            json!({"metadata": {"finalizers": ["b", "c"], "labels": {"y": "3"}},
                   "spec": {"podCIDRs": ["198.18.65.0/24", "2001:db8:1::/64"],
                            "taints": [{"key": "k", "effect": "NoExecute"}]}})
        );
        // Atomic lists (EndpointSlice endpoints) are replaced; `$patch: delete` removes a map.
        let mut eps =
            json!({"endpoints": [{"addresses": ["198.18.65.2"]}], "ports": [{"port": 80}]});
        let p =
            json!({"endpoints": [{"addresses": ["198.18.66.2"]}], "ports": {"$patch": "delete"}});
        strategic_merge_patch(Kind::EndpointSlice, &mut eps, &p).unwrap();
        assert_eq!(eps, json!({"endpoints": [{"addresses": ["198.18.66.2"]}]}));
        // Unknown directives and keyless elements are refused.
        assert!(strategic_merge_patch(Kind::Node, &mut node, &json!({"$frob": 1})).is_err());
        assert!(
            strategic_merge_patch(
                Kind::Service,
                &mut json!({}),
                &json!({"spec": {"ports": [{"name": "x"}]}})
            )
            .is_err()
        );
    }

    #[test]
    fn strategic_merge_pod_containers_nest() {
        let mut pod = json!({"spec": {"containers": [{"name": "app", "image": "a:1",
                                                       "env": [{"name": "A", "value": "1"}]}]}});
        let p = json!({"spec": {"containers": [{"name": "app", "image": "a:2",
                                                 "env": [{"name": "B", "value": "2"}]}]}});
        strategic_merge_patch(Kind::Pod, &mut pod, &p).unwrap();
        assert_eq!(
            pod,
            json!({"spec": {"containers": [{"name": "app", "image": "a:2",
                  "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}})
        );
    }
}
