//! The deployment in `deploy/` as the deployment tests load it: the Helm chart rendered with
//! [`crate::gotmpl`] (no Helm here), the plain manifests, and lookups into the objects.
//!
//! ```text
//!   deploy/helm/k8s-dataplane/{Chart,values}.yaml + templates/** ──render_chart(overrides)──> {path: text}
//!   {path: text} ──objects_of──> [Object]        deploy/**/*.yaml (not helm/) ──plain_objects──> [Object]
//! ```
//! Test support: failures panic with the file named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::{Value, json};

use crate::gotmpl;
use crate::manifest::{self, ManifestError, Object};

/// The namespace the chart is rendered into (and the plain manifests use).
pub const NAMESPACE: &str = "kube-system";
/// The chart, relative to the repository.
pub const CHART: &str = "deploy/helm/k8s-dataplane";

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file's text (panics naming the file).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A YAML file as a JSON value.
pub fn yaml_value(path: &Path) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Files ending in `.ext` under `dir`, sorted.
pub fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The chart's templates rendered with `values.yaml` merged with `overrides`, by path below
/// `templates/` (templates that render to nothing are left out, as Helm does).
pub fn render_chart(overrides: &Value) -> BTreeMap<String, String> {
    let chart = repo().join(CHART);
    let mut values = yaml_value(&chart.join("values.yaml"));
    gotmpl::merge_values(&mut values, overrides);
    let meta = yaml_value(&chart.join("Chart.yaml"));
    let root = json!({
        "Values": values,
        "Release": {"Name": "dataplane", "Namespace": NAMESPACE, "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
    });
    let templates = chart.join("templates");
    let mut out = BTreeMap::new();
    for path in files_under(&templates, "yaml") {
        let rel = path
            .strip_prefix(&templates)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with('_') {
            continue;
        }
        let text = gotmpl::render(&format!("templates/{rel}"), &read(&path), &root)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = text.trim_start_matches('\n');
        if text.trim().is_empty() {
            continue;
        }
        out.insert(rel, format!("{}\n", text.trim_end()));
    }
    out
}

/// Every object of a rendered chart.
pub fn objects_of(rendered: &BTreeMap<String, String>) -> Result<Vec<Object>, ManifestError> {
    let mut out = Vec::new();
    for (rel, text) in rendered {
        let file = PathBuf::from(format!("{CHART}/templates/{rel} (rendered)"));
        for (i, v) in manifest::documents(&file, text)? {
            out.push(manifest::typed(&file, i, &v)?);
        }
    }
    Ok(out)
}

/// Every object of the plain manifests in deploy/ (the chart's directory excluded).
pub fn plain_objects() -> Result<Vec<Object>, ManifestError> {
    let deploy = repo().join("deploy");
    let mut out = Vec::new();
    for path in files_under(&deploy, "yaml") {
        // the chart's templates, and Prometheus rules (not Kubernetes objects)
        if path.starts_with(deploy.join("helm")) || path.starts_with(deploy.join("monitoring")) {
            continue;
        }
        let rel = path.strip_prefix(repo()).unwrap().to_path_buf();
        for (i, v) in manifest::documents(&rel, &read(&path))? {
            out.push(manifest::typed(&rel, i, &v)?);
        }
    }
    Ok(out)
}

/// The DaemonSet named `name` (panics if there is none).
pub fn daemonset<'a>(objects: &'a [Object], name: &str) -> &'a DaemonSet {
    objects
        .iter()
        .find_map(|o| match o {
            Object::DaemonSet(d) if d.metadata.name.as_deref() == Some(name) => Some(&**d),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no DaemonSet {name}"))
}

/// The pod spec of a DaemonSet.
pub fn pod_spec(ds: &DaemonSet) -> &k8s_openapi::api::core::v1::PodSpec {
    ds.spec.template.spec.as_ref().unwrap()
}
