//! Manifest files for the double's initial objects (`lab apiserver --manifests PATH`): a YAML
//! or JSON file, or a directory of them (`*.yaml`, `*.yml`, `*.json`, in name order), with
//! multi-document YAML and `kind: List` (or `ServiceList`...) expanded.
//!
//! In: a path. Out: the objects in file order, each of a served kind, or a [`ManifestError`]
//! naming the file, the document and what is wrong.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::object::kind_of;

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file or directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A document is not valid YAML/JSON.
    #[error("{path}: document {doc}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based document number in the file.
        doc: usize,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// A document is not an object of a served kind.
    #[error("{path}: document {doc}{item}: {detail}", item = item.map(|i| format!(", item {i}")).unwrap_or_default())]
    Object {
        /// The file.
        path: PathBuf,
        /// 1-based document number in the file.
        doc: usize,
        /// 0-based index in a `List`'s items, if inside one.
        item: Option<usize>,
        /// What is wrong.
        detail: String,
    },
}

/// Reads every object from a file or a directory of files.
pub fn load(path: &Path) -> Result<Vec<Value>, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        return load_file(path);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(load_file(&f)?);
    }
    Ok(out)
}

/// Reads every object from one file.
pub fn load_file(path: &Path) -> Result<Vec<Value>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses manifest text; `path` only names the source in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Value>, ManifestError> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = i + 1;
        let v = Value::deserialize(de).map_err(|e| ManifestError::Parse {
            path: path.into(),
            doc,
            detail: e.to_string(),
        })?;
        if v.is_null() {
            continue;
        }
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind.ends_with("List") && v.get("items").is_some() {
            let items = v["items"].as_array().ok_or_else(|| ManifestError::Object {
                path: path.into(),
                doc,
                item: None,
                detail: "`items` must be a list".into(),
            })?;
            for (n, item) in items.iter().enumerate() {
                out.push(check(item, path, doc, Some(n))?);
            }
        } else {
            out.push(check(&v, path, doc, None)?);
        }
    }
    Ok(out)
}

fn check(v: &Value, path: &Path, doc: usize, item: Option<usize>) -> Result<Value, ManifestError> {
    let err = |detail: String| ManifestError::Object {
        path: path.into(),
        doc,
        item,
        detail,
    };
    kind_of(v).map_err(|e| err(e.to_string()))?;
    if v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(err("metadata.name is required".into()));
    }
    Ok(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_lists() {
        let text = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 198.19.0.10, ports: [{port: 80}]}
---
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Node, metadata: {name: node1}}
- {apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: web-1, namespace: default}, addressType: IPv4, endpoints: []}
";
        let objs = parse(text, Path::new("m.yaml")).unwrap();
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Service", "Node", "EndpointSlice"]);
    }

    #[test]
    fn errors_name_the_document_and_item() {
        let e = parse(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            Path::new("a.yaml"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("a.yaml: document 1: no kind \"Deployment\""),
            "{e}"
        );
        let e = parse("---\nkind: List\napiVersion: v1\nitems:\n- {apiVersion: v1, kind: Node, metadata: {}}\n", Path::new("b.yaml"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.yaml: document 1, item 0: metadata.name is required"
        );
        let e = parse("a: [\n", Path::new("c.yaml")).unwrap_err();
        assert!(matches!(e, ManifestError::Parse { doc: 1, .. }), "{e}");
    }

    #[test]
    fn directories_load_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        let names: Vec<String> = load(dir.path())
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["node1", "node2"]);
        assert!(matches!(
            load(&dir.path().join("missing")),
            Err(ManifestError::Read { .. })
        ));
    }
}
