//! Where our own prefixes come from besides the static `prefixes`: this Node's
//! `spec.podCIDRs`, from a manifest file (`manifests:`) or from the Kubernetes API (a
//! kube-runtime watcher on the Node named `node_name`).
//!
//! ```text
//!   manifests file ──poll, parse (kind: Node / NodeList / List)──┐
//!   API server ──watcher(Node, fieldSelector metadata.name=N)─────┼──> BTreeSet<IpNet> ──> speaker
//!                                                                 │   (sent when it changes;
//!                                                                 │    empty when the Node goes)
//! ```
//! A file that stops parsing keeps the last good prefixes (and logs why): a half-written
//! file must not withdraw the node's pod CIDRs. Service addresses and the node mesh come from
//! [`cluster`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
#[cfg(feature = "daemon")]
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;
#[cfg(feature = "daemon")]
use tokio::sync::mpsc;

#[cfg(feature = "daemon")]
pub mod client;
pub mod cluster;

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A document does not parse.
    #[error("{path}: document {document}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based document number.
        document: usize,
        /// serde_yaml's message (with line and column).
        message: String,
    },
    /// A pod CIDR is not a prefix.
    #[error("Node {node}: spec.podCIDRs: {value:?} is not a prefix")]
    BadCidr {
        /// The Node.
        node: String,
        /// The value.
        value: String,
    },
    /// A Service address is not an IP address.
    #[error("Service {service}: {field}: {value:?} is not an IP address")]
    BadServiceAddress {
        /// `namespace/name`.
        service: String,
        /// The field (`spec.externalIPs`, `status.loadBalancer.ingress.ip`).
        field: String,
        /// The value.
        value: String,
    },
    /// The Kubernetes client could not be set up.
    #[error("kubernetes client: {0}")]
    Kube(String),
}

/// The Node's pod CIDRs (`spec.podCIDRs`, or the older single `spec.podCIDR`).
pub fn pod_cidrs(node: &Node) -> Result<BTreeSet<IpNet>, SourceError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &node.spec else {
        return Ok(BTreeSet::new());
    };
    let mut values: Vec<&String> = spec.pod_cidrs.iter().flatten().collect();
    if values.is_empty()
        && let Some(one) = &spec.pod_cidr
    {
        values.push(one);
    }
    values
        .into_iter()
        .map(|v| {
            v.parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| SourceError::BadCidr {
                    node: name.clone(),
                    value: v.clone(),
                })
        })
        .collect()
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    items: Option<Vec<serde_yaml::Value>>,
}

/// The Nodes in a manifest text (multi-document YAML or JSON; `kind: List` / `NodeList`
/// items included; other kinds skipped).
pub fn nodes_in(text: &str, path: &Path) -> Result<Vec<Node>, SourceError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let err = |e: serde_yaml::Error| SourceError::Parse {
            path: path.to_path_buf(),
            document: i + 1,
            message: e.to_string(),
        };
        let value = serde_yaml::Value::deserialize(doc).map_err(err)?;
        if value.is_null() {
            continue;
        }
        let header: Header = serde_yaml::from_value(value.clone()).map_err(err)?;
        match header.kind.as_deref() {
            Some("Node") => out.push(serde_yaml::from_value(value).map_err(err)?),
            Some("List" | "NodeList") => {
                for item in header.items.unwrap_or_default() {
                    if item.get("kind").and_then(|k| k.as_str()) == Some("Node")
                        || header.kind.as_deref() == Some("NodeList")
                    {
                        out.push(serde_yaml::from_value(item).map_err(err)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The manifest files at `path`: the file itself, or the `*.yaml`, `*.yml` and `*.json` files
/// of a directory (sorted, dot files skipped).
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| SourceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            let fname = e.file_name().to_string_lossy().into_owned();
            let ext_ok = ["yaml", "yml", "json"]
                .iter()
                .any(|x| p.extension().is_some_and(|e| e == *x));
            if ext_ok && !fname.starts_with('.') {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    Ok(files)
}

/// Every object in the manifests at `path` (`kind: List` items included) as (kind, value,
/// file, 1-based document number).
pub(crate) fn manifest_objects(
    path: &Path,
) -> Result<Vec<(String, serde_yaml::Value, PathBuf, usize)>, SourceError> {
    let mut out = Vec::new();
    for f in manifest_files(path)? {
        let text = std::fs::read_to_string(&f).map_err(|source| SourceError::Read {
            path: f.clone(),
            source,
        })?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let err = |e: serde_yaml::Error| SourceError::Parse {
                path: f.clone(),
                document: i + 1,
                message: e.to_string(),
            };
            let value = serde_yaml::Value::deserialize(doc).map_err(err)?;
            if value.is_null() {
                continue;
            }
            let header: Header = serde_yaml::from_value(value.clone()).map_err(err)?;
            let kind = header.kind.clone().unwrap_or_default();
            if let Some(list_kind) = kind.strip_suffix("List") {
                for item in header.items.unwrap_or_default() {
                    let k = item
                        .get("kind")
                        .and_then(|k| k.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| list_kind.to_string());
                    out.push((k, item, f.clone(), i + 1));
                }
            } else {
                out.push((kind, value, f.clone(), i + 1));
            }
        }
    }
    Ok(out)
}

/// The pod CIDRs of Node `name` in the file or directory `path` (`*.yaml`, `*.yml`, `*.json`);
/// empty when the Node is not there.
pub fn read_manifests(path: &Path, name: &str) -> Result<BTreeSet<IpNet>, SourceError> {
    for f in manifest_files(path)? {
        let text = std::fs::read_to_string(&f).map_err(|source| SourceError::Read {
            path: f.clone(),
            source,
        })?;
        for n in nodes_in(&text, &f)? {
            if n.metadata.name.as_deref() == Some(name) {
                return pod_cidrs(&n);
            }
        }
    }
    Ok(BTreeSet::new())
}

#[cfg(feature = "daemon")]
/// Watch the manifests: send the Node's pod CIDRs at start and whenever they change.
pub fn spawn_manifests(
    path: PathBuf,
    name: String,
    poll: Duration,
    tx: mpsc::Sender<BTreeSet<IpNet>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<BTreeSet<IpNet>> = None;
        let mut last_error: Option<String> = None;
        loop {
            let (p, n) = (path.clone(), name.clone());
            let r = tokio::task::spawn_blocking(move || read_manifests(&p, &n)).await;
            match r {
                Ok(Ok(set)) => {
                    last_error = None;
                    if last.as_ref() != Some(&set) {
                        tracing::info!(node = %name, prefixes = ?set, "pod CIDRs from {}", path.display());
                        if tx.send(set.clone()).await.is_err() {
                            return;
                        }
                        last = Some(set);
                    }
                }
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    if last_error.as_ref() != Some(&msg) {
                        tracing::warn!(error = %msg, "manifests unreadable, keeping the last pod CIDRs");
                        last_error = Some(msg);
                    }
                }
                Err(_) => return,
            }
            tokio::time::sleep(poll).await;
        }
    })
}

#[cfg(feature = "daemon")]
/// Watch Node `name` in the API (kubeconfig file, or in-cluster / `KUBECONFIG` when `None`).
pub async fn spawn_kube(
    kubeconfig: Option<PathBuf>,
    name: String,
    tx: mpsc::Sender<BTreeSet<IpNet>>,
) -> Result<tokio::task::JoinHandle<()>, SourceError> {
    use kube::runtime::watcher;
    let client = client::kube_client(kubeconfig).await?;
    let api: kube::Api<Node> = kube::Api::all(client);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    Ok(tokio::spawn(watch_node(api, cfg, name, tx)))
}

#[cfg(feature = "daemon")]
async fn watch_node(
    api: kube::Api<Node>,
    cfg: kube::runtime::watcher::Config,
    name: String,
    tx: mpsc::Sender<BTreeSet<IpNet>>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    {
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        let mut last: Option<BTreeSet<IpNet>> = None;
        // a relist collects the Node in `init` and publishes at InitDone
        let mut init: Option<BTreeSet<IpNet>> = None;
        while let Some(ev) = stream.next().await {
            let set = match ev {
                Ok(watcher::Event::Init) => {
                    init = Some(BTreeSet::new());
                    continue;
                }
                Ok(watcher::Event::InitApply(n)) => {
                    match pod_cidrs(&n) {
                        Ok(s) => init = Some(s),
                        Err(e) => tracing::warn!(error = %e, "Node skipped"),
                    }
                    continue;
                }
                Ok(watcher::Event::InitDone) => init.take().unwrap_or_default(),
                Ok(watcher::Event::Apply(n)) => match pod_cidrs(&n) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "Node skipped");
                        continue;
                    }
                },
                Ok(watcher::Event::Delete(_)) => BTreeSet::new(),
                Err(e) => {
                    tracing::warn!(error = %e, "Node watch failed, retrying");
                    continue;
                }
            };
            if last.as_ref() != Some(&set) {
                tracing::info!(node = %name, prefixes = ?set, "pod CIDRs from the API");
                if tx.send(set.clone()).await.is_err() {
                    return;
                }
                last = Some(set);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
apiVersion: v1
kind: Service
metadata: { name: x }
---
apiVersion: v1
kind: Node
metadata: { name: node1 }
spec:
  podCIDR: 198.18.65.0/24
  podCIDRs: [198.18.65.0/24, \"2001:db8:64:1::/64\"]
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Node
    metadata: { name: node2 }
    spec: { podCIDR: 198.18.66.0/24 }
";

    #[test]
    fn the_nodes_pod_cidrs_are_read_from_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nodes.yaml");
        std::fs::write(&f, NODES).unwrap();
        let got = read_manifests(&f, "node1").unwrap();
        let want: BTreeSet<IpNet> = ["198.18.65.0/24", "2001:db8:64:1::/64"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        // the older single podCIDR, inside a List; a directory
        let got = read_manifests(dir.path(), "node2").unwrap();
        assert_eq!(got.len(), 1);
        assert!(read_manifests(&f, "node9").unwrap().is_empty());
        // errors name the document
        std::fs::write(
            &f,
            "kind: Node\nmetadata: { name: node1 }\nspec: { podCIDRs: 5 }\n",
        )
        .unwrap();
        let e = read_manifests(&f, "node1").unwrap_err().to_string();
        assert!(e.contains("document 1"), "{e}");
        std::fs::write(
            &f,
            "kind: Node\nmetadata: { name: node1 }\nspec: { podCIDRs: [nonsense] }\n",
        )
        .unwrap();
        let e = read_manifests(&f, "node1").unwrap_err().to_string();
        assert!(e.contains("\"nonsense\" is not a prefix"), "{e}");
    }
}
