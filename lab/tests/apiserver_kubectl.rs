//! The real `kubectl` against the API server double: a second, independent client proving the
//! double speaks the protocol (discovery, Table printing, watch, apply/create/delete). Skipped
//! with a message when kubectl is not installed. Loopback only; no root needed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use lab::apiserver::{ApiServer, ApiServerOpts, Verb};
use serde_json::{Value, json};

/// `kubectl` from PATH (or /usr/bin), if installed.
fn kubectl_path() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/kubectl")])
        .find(|p| p.is_file())
}

/// A double with the fixture objects, a kubeconfig and a kubectl cache dir in a temp dir.
struct Fixture {
    api: ApiServer,
    dir: tempfile::TempDir,
    kubectl: PathBuf,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        let Some(kubectl) = kubectl_path() else {
            eprintln!("SKIP: kubectl is not installed (looked in PATH and /usr/bin)");
            return None;
        };
        let api = ApiServer::start(ApiServerOpts {
            objects: objects(),
            ..Default::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        api.kubeconfig(&dir.path().join("kubeconfig")).unwrap();
        Some(Fixture { api, dir, kubectl })
    }

    fn cmd(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"));
        c.arg("--cache-dir").arg(self.dir.path().join(format!(
            "cache-{}",
            bin.file_name().unwrap().to_string_lossy()
        )));
        c.args(args).env_remove("KUBECONFIG");
        c
    }

    fn run_with(&self, bin: &Path, args: &[&str]) -> Output {
        self.cmd(bin, args).output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(&self.kubectl, args)
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}{}",
            args.join(" "),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"clusterIP": "198.19.0.10", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns", "namespace": "kube-system"},
               "spec": {"type": "NodePort", "clusterIP": "198.19.0.11", "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
               "endpoints": [{"addresses": ["198.18.65.2"], "conditions": {"ready": true}, "nodeName": "node1"}]}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1", "labels": {"node-role.kubernetes.io/worker": ""}},
               "spec": {"podCIDR": "198.18.65.0/24", "podCIDRs": ["198.18.65.0/24"]},
               "status": {"conditions": [{"type": "Ready", "status": "True"}],
                          "addresses": [{"type": "InternalIP", "address": "198.18.0.11"}],
                          "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                                       "containerRuntimeVersion": "containerd://1.7.0", "machineID": "", "systemUUID": "", "bootID": "",
                                       "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"nodeName": "node1", "containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
               "status": {"phase": "Running", "podIP": "198.18.65.2",
                          "containerStatuses": [{"name": "web", "ready": true, "restartCount": 1, "image": "registry.invalid/web:1", "imageID": ""}]}}),
    ]
}

/// kubectl's table output as cells (columns are separated by runs of 2+ spaces), with AGE
/// values (`5s`, `2m3s`) replaced by `<age>` so the rest compares exactly.
fn cells(out: &str) -> Vec<Vec<String>> {
    let is_age = |c: &str| {
        c.starts_with(|ch: char| ch.is_ascii_digit())
            && c.ends_with(|ch: char| "smhdy".contains(ch))
            && c.chars()
                .all(|ch| ch.is_ascii_digit() || "smhdy".contains(ch))
    };
    out.lines()
        .map(|l| {
            l.trim()
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    if is_age(c) {
                        "<age>".to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect()
}

fn rows(spec: &[&[&str]]) -> Vec<Vec<String>> {
    spec.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[test]
fn get_prints_every_kind_like_a_real_cluster() {
    let Some(f) = Fixture::new() else { return };
    let out = f.ok(&["get", "svc,endpointslices,nodes,pods", "-A"]);
    let want = rows(&[
        &[
            "NAMESPACE",
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        &[
            "default",
            "service/web",
            "ClusterIP",
            "198.19.0.10",
            "<none>",
            "80/TCP",
            "<age>",
        ],
        &[
            "kube-system",
            "service/dns",
            "NodePort",
            "198.19.0.11",
            "<none>",
            "53:30053/UDP",
            "<age>",
        ],
        &[],
        &[
            "NAMESPACE",
            "NAME",
            "ADDRESSTYPE",
            "PORTS",
            "ENDPOINTS",
            "AGE",
        ],
        &[
            "default",
            "endpointslice.discovery.k8s.io/web-abc",
            "IPv4",
            "8080",
            "198.18.65.2",
            "<age>",
        ],
        &[],
        &["NAMESPACE", "NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        &["node/node1", "Ready", "worker", "<age>", "v1.33.0"],
        &[],
        &["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        &["default", "pod/web-1", "1/1", "Running", "1", "<age>"],
    ]);
    assert_eq!(cells(&out), want, "{out}");
    let wide = f.ok(&["get", "nodes", "-o", "wide"]);
    assert_eq!(
        cells(&wide)[1],
        [
            "node1",
            "Ready",
            "worker",
            "<age>",
            "v1.33.0",
            "198.18.0.11",
            "<none>",
            "Debian GNU/Linux 12",
            "6.1.0",
            "containerd://1.7.0"
        ],
        "{wide}"
    );
    let pods = f.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        cells(&pods),
        rows(&[
            &[
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES"
            ],
            &[
                "web-1",
                "1/1",
                "Running",
                "1",
                "<age>",
                "198.18.65.2",
                "node1",
                "<none>",
                "<none>"
            ],
        ]),
        "{pods}"
    );
    let sel = f.ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName=node1",
        "-l",
        "app=web",
        "-o",
        "name",
    ]);
    assert_eq!(sel.trim(), "pod/web-1");
    let none = f.ok(&["get", "svc", "-l", "!app", "-n", "default"]);
    assert!(none.is_empty());
    let missing = f.run(&["get", "svc", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("Error from server (NotFound): services \"nope\" not found"),
        "{}",
        text(&missing.stderr)
    );
    let resources = f.ok(&["api-resources", "--no-headers", "-o", "name"]);
    let mut names: Vec<&str> = resources.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "endpointslices.discovery.k8s.io",
            "namespaces",
            "nodes",
            "pods",
            "services"
        ]
    );
    // kubectl >= 1.30 reads the aggregated discovery documents: /api and /apis only.
    assert!(
        f.api.requests().iter().all(|r| r.path != "/api/v1"),
        "aggregated discovery was used"
    );
}

#[test]
fn get_json_parses_back() {
    let Some(f) = Fixture::new() else { return };
    let out = f.ok(&["get", "svc", "-A", "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["kind"], "List");
    let services: Vec<Service> = serde_json::from_value(list["items"].clone()).unwrap();
    let names: Vec<String> = services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["web", "dns"]);
    assert_eq!(
        services[0].spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("198.19.0.10")
    );
    let one: Service = serde_json::from_str(&f.ok(&["get", "svc", "web", "-o", "json"])).unwrap();
    assert_eq!(
        one.metadata.resource_version,
        f.api
            .get::<Service>("default", "web")
            .unwrap()
            .metadata
            .resource_version
    );
}

#[test]
fn get_watch_shows_an_added_service() {
    let Some(f) = Fixture::new() else { return };
    let mut child = f
        .cmd(&f.kubectl, &["get", "svc", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let wait_for = |needle: &str, lines: &mut Vec<String>| -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    lines.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    };
    let listed = wait_for("web", &mut lines);
    let watching = listed && f.api.wait_for_watches(1, Duration::from_secs(30));
    if watching {
        f.api
            .apply(&json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "default"},
                           "spec": {"clusterIP": "198.19.0.20", "ports": [{"port": 443, "targetPort": 6443}]}}))
            .unwrap();
    }
    let added = watching && wait_for("api", &mut lines);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(added, "kubectl get --watch printed: {lines:?}");
    let c = cells(&lines.join("\n"));
    assert_eq!(
        c[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(
        c.last().unwrap(),
        &[
            "api",
            "ClusterIP",
            "198.19.0.20",
            "<none>",
            "443/TCP",
            "<age>"
        ]
    );
}

#[test]
fn apply_create_patch_and_delete() {
    let Some(f) = Fixture::new() else { return };
    let manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: default}\n\
                    spec: {selector: {app: api}, ports: [{port: 443, targetPort: 6443}, {name: metrics, port: 9090}]}\n";
    let path = f.file("api.yaml", manifest);
    assert_eq!(f.ok(&["apply", "-f", &path]).trim(), "service/api created");
    let stored = f.api.get::<Service>("default", "api").unwrap();
    let ip = stored.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    assert!(ip.starts_with("198.19."), "allocated from the plan: {ip}");
    assert!(
        stored
            .metadata
            .annotations
            .unwrap()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration")
    );
    // A changed manifest is a strategic merge patch: the other port is kept, in order.
    let changed = f.file("api.yaml", &manifest.replace("6443", "7443"));
    assert_eq!(
        f.ok(&["apply", "-f", &changed]).trim(),
        "service/api configured"
    );
    assert_eq!(
        f.ok(&["apply", "-f", &changed]).trim(),
        "service/api unchanged"
    );
    let ports = f
        .api
        .get::<Service>("default", "api")
        .unwrap()
        .spec
        .unwrap()
        .ports
        .unwrap();
    let got: Vec<(i32, String)> = ports
        .iter()
        .map(|p| (p.port, format!("{:?}", p.target_port)))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, 443);
    assert!(got[0].1.contains("7443") && got[1].0 == 9090, "{got:?}");
    assert_eq!(
        f.api
            .get::<Service>("default", "api")
            .unwrap()
            .spec
            .unwrap()
            .cluster_ip,
        Some(ip)
    );
    assert_eq!(
        f.ok(&["label", "svc", "api", "tier=front"]).trim(),
        "service/api labeled"
    );
    assert_eq!(
        f.ok(&[
            "patch",
            "svc",
            "api",
            "--type=merge",
            "-p",
            r#"{"spec":{"sessionAffinity":"ClientIP"}}"#
        ])
        .trim(),
        "service/api patched"
    );
    assert_eq!(
        f.ok(&["delete", "-f", &changed]).trim(),
        "service \"api\" deleted"
    );
    assert!(f.api.get::<Service>("default", "api").is_none());
    assert_eq!(f.ok(&["create", "-f", &path]).trim(), "service/api created");
    let again = f.run(&["create", "-f", &path]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("(AlreadyExists)"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        f.ok(&["delete", "svc", "api"]).trim(),
        "service \"api\" deleted"
    );
    assert!(f.api.request_count(Verb::Patch, None) >= 3);
}

#[test]
fn older_kubectl_versions_use_legacy_discovery() {
    let Some(f) = Fixture::new() else { return };
    let dir = std::fs::canonicalize(&f.kubectl)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let versioned: Vec<PathBuf> = (27..=33)
        .filter_map(|minor| dir.as_ref().map(|d| d.join(format!("kubectl.1.{minor}"))))
        .filter(|p| p.is_file())
        .collect();
    if versioned.is_empty() {
        eprintln!(
            "SKIP: no versioned kubectl binaries (kubectl.1.NN) next to {}",
            f.kubectl.display()
        );
        return;
    }
    for bin in versioned {
        f.api.clear_requests();
        let out = f.run_with(
            &bin,
            &["get", "svc,endpointslices,nodes,pods", "-A", "-o", "name"],
        );
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            bin.display(),
            text(&out.stderr)
        );
        let mut names: Vec<&str> = stdout.lines().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "endpointslice.discovery.k8s.io/web-abc",
                "node/node1",
                "pod/web-1",
                "service/dns",
                "service/web"
            ],
            "{}",
            bin.display()
        );
        let legacy = f.api.requests().iter().any(|r| r.path == "/api/v1");
        let name = bin.file_name().unwrap().to_string_lossy().into_owned();
        // kubectl 1.27-1.29 ask for aggregated discovery v2beta1 only and fall back.
        let minor: u32 = name.rsplit('.').next().unwrap().parse().unwrap();
        assert_eq!(
            legacy,
            minor < 30,
            "{name}: legacy discovery used = {legacy}"
        );
    }
}
