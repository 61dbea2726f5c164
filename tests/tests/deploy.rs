//! The deployment in `deploy/` (no root, no cluster needed).
//!
//! ```text
//!   deploy/helm/k8s-dataplane ──gotmpl (values.yaml [+ overrides])──> rendered templates
//!      default render == deploy/{kube-proxy-rs,bgpd,diag}/*.yaml (generated; UPDATE_GOLDEN=1)
//!   every manifest + rendered variants ──manifest::typed──> k8s-openapi objects, unknown fields refused
//!   ClusterRoleBindings ──grants_of(ServiceAccount of each DaemonSet)──> == what the program's source reads
//!   ConfigMaps ──KubeProxyConfiguration::parse + Config::from_args_and_file / bgpd's Config::parse
//!   container commands ──kube-proxy-rs's clap flags / bgpd's clap flags (from bgpd/src/main.rs)
//! ```
//! Each check has a negative case beside it that breaks one thing and expects the failure.
//! The image and the kubectl plugin have their own files (image.rs, kubectl_plugin.rs).

#![allow(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde_json::{Value, json};
use system_tests::chart::{
    CHART, NAMESPACE, daemonset, files_under, objects_of, plain_objects, pod_spec, read,
    render_chart, repo,
};
use system_tests::gotmpl;
use system_tests::manifest::{self, Grant, KindRef, ManifestError, Object};
/// Sample downward-API values the checks substitute, as a kubelet would on node-1.
const NODE_NAME: &str = "node-1";
const NODE_IPS: &str = "2001:db8::11,198.18.0.11";

// ---------------------------------------------------------------------------------------
// The chart, rendered without Helm

fn generated_header(rel: &str) -> String {
    format!(
        "# Generated from {CHART}/templates/{rel}\n\
         # with the chart's default values (namespace {NAMESPACE}). Edit the template, then run\n\
         #   UPDATE_GOLDEN=1 cargo test -p system-tests --test deploy\n"
    )
}

const GENERATED: &str = "# Generated from ";

/// Variants of the chart's values every check runs on: the default and each branch of the
/// templates' `if`s.
fn variants() -> Vec<(&'static str, Value)> {
    vec![
        ("default", json!({})),
        (
            "unprivileged nftables, API server address",
            json!({"kubeProxy": {"privileged": false, "mode": "nftables"},
                   "apiServer": {"host": "198.18.0.2"}}),
        ),
        (
            "ipvs, bgpd config in a Secret with an MD5 password, fixed router ID",
            json!({"kubeProxy": {"mode": "ipvs"},
                   "bgpd": {"configInSecret": true, "routerId": "198.18.0.11", "asn": 4200000001u64,
                            "peers": [{"address": "198.18.0.1", "asn": 65000, "password": "s3cret",
                                       "ttl_security": true}]}}),
        ),
        (
            "bgpd and diag off",
            json!({"bgpd": {"enabled": false}, "diag": {"rbac": false}}),
        ),
    ]
}

#[test]
fn plain_manifests_are_the_charts_default_rendering() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let deploy = repo().join("deploy");
    let rendered = render_chart(&json!({}));
    let mut failures = Vec::new();
    for (rel, text) in &rendered {
        let want = format!("{}{text}", generated_header(rel));
        let path = deploy.join(rel);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            continue;
        }
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let diff = similar::TextDiff::from_lines(&have, &want)
            .unified_diff()
            .header(&format!("deploy/{rel}"), "rendered")
            .to_string();
        failures.push(diff);
    }
    // a generated file whose template is gone is stale
    for path in files_under(&deploy, "yaml") {
        let rel = path
            .strip_prefix(&deploy)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if read(&path).starts_with(GENERATED) && !rendered.contains_key(&rel) {
            failures.push(format!(
                "deploy/{rel}: generated, but no template renders it"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "deploy/ differs from the chart (UPDATE_GOLDEN=1 rewrites it):\n{}",
        failures.join("\n")
    );
    assert!(rendered.contains_key("kube-proxy-rs/daemonset.yaml"));
    assert!(rendered.contains_key("bgpd/daemonset.yaml"));
    // negative: other values render something the checked-in file is not
    let rel = "kube-proxy-rs/configmap.yaml";
    let other = render_chart(&json!({"kubeProxy": {"mode": "nftables"}}));
    assert_ne!(
        format!("{}{}", generated_header(rel), other[rel]),
        read(&deploy.join(rel))
    );
}

#[test]
fn chart_variants_render_and_switch_what_they_say() {
    for (name, over) in variants() {
        let objects = objects_of(&render_chart(&over)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let has = |kind: &str, n: &str| objects.iter().any(|o| o.kind() == kind && o.name() == n);
        let bgpd_on = over["bgpd"]["enabled"] != json!(false);
        assert_eq!(has("DaemonSet", "bgpd"), bgpd_on, "{name}");
        assert_eq!(
            has("ClusterRole", "kubectl-diag"),
            over["diag"]["rbac"] != json!(false)
        );
        if bgpd_on {
            let secret = over["bgpd"]["configInSecret"] == json!(true);
            assert_eq!(has("Secret", "bgpd"), secret, "{name}");
            assert_eq!(has("ConfigMap", "bgpd"), !secret, "{name}");
        }
        let kp = daemonset(&objects, "kube-proxy-rs");
        let sc = kp.spec.template.spec.as_ref().unwrap().containers[0]
            .security_context
            .clone()
            .unwrap();
        let privileged = over["kubeProxy"]["privileged"] != json!(false);
        assert_eq!(sc.privileged.unwrap_or(false), privileged, "{name}");
        if !privileged {
            let caps = sc.capabilities.unwrap();
            assert_eq!(caps.add.unwrap(), ["NET_ADMIN", "NET_RAW"]);
            assert_eq!(caps.drop.unwrap(), ["ALL"]);
        }
    }
}

#[test]
fn renderer_refuses_what_helm_would_print_wrongly() {
    // negative: a 4-byte ASN printed directly would be 4.200000001e+09 under Helm
    let e = gotmpl::render(
        "t",
        "asn: {{ .Values.bgpd.asn }}",
        &json!({"Values": {"bgpd": {"asn": 4200000001u64}}}),
    )
    .unwrap_err();
    assert!(e.message.contains("%g"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Kubernetes types, unknown fields

#[test]
fn every_manifest_is_a_kubernetes_object_without_unknown_fields() {
    let plain = plain_objects().unwrap_or_else(|e| panic!("{e}"));
    let kinds: BTreeSet<&str> = plain.iter().map(|o| o.kind()).collect();
    for k in [
        "DaemonSet",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
    ] {
        assert!(kinds.contains(k), "no {k} in deploy/");
    }
    for (name, over) in variants() {
        objects_of(&render_chart(&over)).unwrap_or_else(|e| panic!("variant {name}: {e}"));
    }
}

#[test]
fn unknown_fields_and_wrong_types_are_reported_with_file_and_path() {
    let rel = Path::new("deploy/kube-proxy-rs/daemonset.yaml");
    let text = read(&repo().join(rel));
    let typo = text.replacen(
        "hostNetwork: true",
        "hostNetwork: true\n      hostNetwrok: true",
        1,
    );
    let (i, v) = manifest::documents(rel, &typo).unwrap().remove(0);
    let e = manifest::typed(rel, i, &v).unwrap_err();
    assert!(
        matches!(&e, ManifestError::UnknownField { path, .. } if path == "spec.template.spec.hostNetwrok"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("deploy/kube-proxy-rs/daemonset.yaml: document 1"),
        "{e}"
    );

    let bad = text.replacen("containerPort: 10256", "containerPort: ten", 1);
    let (i, v) = manifest::documents(rel, &bad).unwrap().remove(0);
    let e = manifest::typed(rel, i, &v).unwrap_err();
    assert!(
        matches!(&e, ManifestError::Invalid { path, .. }
            if path == "spec.template.spec.containers[0].ports[0].containerPort"),
        "{e}"
    );

    let v = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
    assert!(matches!(
        manifest::typed(rel, 1, &v),
        Err(ManifestError::Kind { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// RBAC

/// What one program may do: the kinds its source names (at least `minimum`), with `verbs`;
/// plus `extra` grants it needs besides reading.
struct Program {
    name: &'static str,
    src: &'static str,
    minimum: &'static [(&'static str, &'static str)],
    needed_verbs: &'static [&'static str],
    allowed_verbs: &'static [&'static str],
    extra: Vec<Grant>,
}

fn programs() -> Vec<Program> {
    vec![
        Program {
            name: "kube-proxy-rs",
            src: "kube-proxy-rs/src",
            // design.md: Services, EndpointSlices, Nodes (watch)
            minimum: &[
                ("core::v1", "Service"),
                ("discovery::v1", "EndpointSlice"),
                ("core::v1", "Node"),
            ],
            // kube-runtime watchers: list and watch, nothing else (daemon_faults.rs checks
            // this against the requests the daemon sends)
            needed_verbs: &["list", "watch"],
            allowed_verbs: &["list", "watch"],
            extra: Vec::new(),
        },
        Program {
            name: "bgpd",
            src: "bgpd/src",
            // bgpd/src/source.rs: a watcher on this Node
            minimum: &[("core::v1", "Node")],
            needed_verbs: &["list", "watch"],
            allowed_verbs: &["list", "watch"],
            extra: Vec::new(),
        },
        Program {
            name: "diag",
            src: "diag/src",
            // diag/src/kubeapi.rs: list-only reads of Pods, Services, EndpointSlices, Nodes
            // (hard-coded too, for checkouts where diag is not there yet)
            minimum: &[
                ("core::v1", "Pod"),
                ("core::v1", "Service"),
                ("discovery::v1", "EndpointSlice"),
                ("core::v1", "Node"),
            ],
            needed_verbs: &["list"],
            allowed_verbs: &["get", "list"],
            extra: Vec::new(),
        },
    ]
}

/// The resources a program reads: from its source when present, and at least `minimum`.
fn resources_read(p: &Program) -> BTreeSet<(&'static str, &'static str)> {
    let mut kinds: BTreeSet<KindRef> = p
        .minimum
        .iter()
        .map(|(m, k)| KindRef {
            module: m.to_string(),
            kind: k.to_string(),
        })
        .collect();
    let dir = repo().join(p.src);
    if dir.is_dir() {
        kinds.extend(manifest::kinds_used(&dir).unwrap());
    }
    kinds.iter().filter_map(manifest::resource_of).collect()
}

/// Missing and excess grants of `have` for program `p`.
fn rbac_problems(p: &Program, have: &BTreeSet<Grant>) -> Vec<String> {
    let read = resources_read(p);
    let mut problems = Vec::new();
    for (group, res) in &read {
        for v in p.needed_verbs {
            let g = Grant::new(group, res, v);
            if !have.contains(&g) {
                problems.push(format!("{}: missing {g}", p.name));
            }
        }
    }
    for g in have {
        let reading = read.contains(&(g.group.as_str(), g.resource.as_str()))
            && p.allowed_verbs.contains(&g.verb.as_str());
        if !reading && !p.extra.contains(g) {
            problems.push(format!("{}: more than it needs: {g}", p.name));
        }
    }
    problems
}

fn service_account_of(ds: &DaemonSet) -> (String, String) {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let sa = ds.spec.template.spec.as_ref().unwrap();
    (ns, sa.service_account_name.clone().unwrap_or_default())
}

fn check_rbac(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    for p in programs() {
        let (ns, sa) = match p.name {
            "diag" => (NAMESPACE.to_string(), "diag".to_string()),
            n => service_account_of(daemonset(objects, n)),
        };
        match manifest::grants_of(objects, &ns, &sa) {
            Ok(have) => problems.extend(rbac_problems(&p, &have)),
            Err(e) => problems.push(e.to_string()),
        }
        if p.name == "diag" {
            // the ClusterRole people bind to use kubectl diag
            match manifest::cluster_role(objects, "kubectl-diag")
                .ok_or_else(|| "no ClusterRole kubectl-diag".to_string())
                .and_then(|r| {
                    manifest::rule_grants("kubectl-diag", &r.rules.clone().unwrap_or_default())
                        .map_err(|e| e.to_string())
                }) {
                Ok(have) => problems.extend(rbac_problems(&p, &have)),
                Err(e) => problems.push(e),
            }
        }
    }
    problems
}

#[test]
fn rbac_grants_exactly_what_each_program_reads() {
    let mut objects = plain_objects().unwrap();
    let problems = check_rbac(&objects);
    assert!(problems.is_empty(), "{problems:#?}");
    // the collector DaemonSet runs as the ServiceAccount the diag RBAC binds
    assert_eq!(
        service_account_of(daemonset(&objects, "diag-collector")),
        (NAMESPACE.to_string(), "diag".to_string())
    );
    for (name, over) in variants() {
        if over["bgpd"]["enabled"] == json!(false) {
            continue;
        }
        let problems = check_rbac(&objects_of(&render_chart(&over)).unwrap());
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    }

    // negative: bgpd trades nodes for secrets, kube-proxy-rs gains secrets, diag gets a wildcard
    for o in &mut objects {
        if let Object::ClusterRole(r) = o {
            let rules = r.rules.as_mut().unwrap();
            match r.metadata.name.as_deref() {
                Some("bgpd") => rules[0].resources = Some(vec!["secrets".into()]),
                Some("kube-proxy-rs") => {
                    rules[0].resources.as_mut().unwrap().push("secrets".into())
                }
                Some("kubectl-diag") => rules[0].verbs.push("*".into()),
                _ => {}
            }
        }
    }
    let problems = check_rbac(&objects);
    let want = [
        "bgpd: missing list nodes.core",
        "bgpd: more than it needs: list secrets.core",
        "kube-proxy-rs: more than it needs: list secrets.core",
        "ClusterRole kubectl-diag: wildcard `*` in verbs",
    ];
    for w in want {
        assert!(
            problems.iter().any(|p| p == w),
            "{w:?} not in {problems:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Embedded configurations and command lines

/// The container's environment as the kubelet would give it on node-1.
fn env_of(c: &Container) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for EnvVar {
        name,
        value,
        value_from,
    } in c.env.iter().flatten()
    {
        let v = match (
            value,
            value_from.as_ref().and_then(|f| f.field_ref.as_ref()),
        ) {
            (Some(v), _) => v.clone(),
            (None, Some(f)) => match f.field_path.as_str() {
                "spec.nodeName" => NODE_NAME.to_string(),
                "status.hostIPs" => NODE_IPS.to_string(),
                "status.hostIP" => "198.18.0.11".to_string(),
                other => panic!("{name}: no sample value for fieldRef {other}"),
            },
            (None, None) => panic!("{name}: only values and fieldRefs are modelled"),
        };
        out.insert(name.clone(), v);
    }
    out
}

/// The kubelet's `$(VAR)` expansion in command and args: defined variables are replaced,
/// `$$` is a `$`, anything else stays as written.
fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(v) = env.get(&inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// command + args of a container, expanded.
fn argv(c: &Container) -> Vec<String> {
    let env = env_of(c);
    c.command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(|a| expand(a, &env))
        .collect()
}

fn config_data<'a>(objects: &'a [Object], name: &str, key: &str) -> &'a str {
    objects
        .iter()
        .find_map(|o| match o {
            Object::ConfigMap(c) if c.metadata.name.as_deref() == Some(name) => {
                c.data.as_ref()?.get(key).map(String::as_str)
            }
            Object::Secret(s) if s.metadata.name.as_deref() == Some(name) => {
                s.string_data.as_ref()?.get(key).map(String::as_str)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {key} in ConfigMap or Secret {name}"))
}

/// Checks kube-proxy-rs's DaemonSet command line and ConfigMap with kube-proxy-rs's own
/// parsers; returns the configuration.
fn check_kube_proxy(objects: &[Object]) -> Result<kube_proxy_rs::config::Config, String> {
    use kube_proxy_rs::config::Config;
    let ds = daemonset(objects, "kube-proxy-rs");
    let c = &pod_spec(ds).containers[0];
    let args = argv(c);
    if !args[0].ends_with("/kube-proxy-rs") {
        return Err(format!("runs {}, not kube-proxy-rs", args[0]));
    }
    let path = args
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .ok_or("no --config=")?;
    // the file is the ConfigMap's key of that name, mounted at the file's directory
    let (dir, key) = path.rsplit_once('/').unwrap();
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .ok_or(format!("nothing mounted at {dir}"))?;
    let volume = pod_spec(ds)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let cm = &volume
        .config_map
        .as_ref()
        .ok_or("config volume is not a ConfigMap")?
        .name;
    let text = config_data(objects, cm, key);
    let file = Config::parse_file(Path::new(path), text).map_err(|e| e.to_string())?;
    let cfg = Config::from_args_and_file(&args, Some(&file)).map_err(|e| e.to_string())?;
    if cfg.hostname_override.as_deref() != Some(NODE_NAME) {
        return Err(format!(
            "node name {:?}, not from spec.nodeName",
            cfg.hostname_override
        ));
    }
    // the probes reach the health server
    let port = cfg.healthz_bind_address.ok_or("health server off")?.port();
    for (what, probe) in [
        ("liveness", &c.liveness_probe),
        ("readiness", &c.readiness_probe),
    ] {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref());
        let p = get.map(|g| &g.port);
        if p != Some(&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port.into())) {
            return Err(format!("{what} probe {p:?}, health server on {port}"));
        }
    }
    Ok(cfg)
}

#[test]
fn kube_proxy_config_and_flags_pass_kube_proxy_rs_parsers() {
    use kube_proxy_rs::config::ProxyMode;
    let objects = plain_objects().unwrap();
    let cfg = check_kube_proxy(&objects).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.mode, ProxyMode::Iptables);
    assert_eq!(cfg.cluster_cidrs, ["198.18.64.0/18".parse().unwrap()]);
    for (name, over) in variants() {
        let objects = objects_of(&render_chart(&over)).unwrap();
        let cfg = check_kube_proxy(&objects).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mode = over["kubeProxy"]["mode"].as_str().unwrap_or("iptables");
        assert_eq!(cfg.mode.to_string(), mode, "{name}");
        if over["kubeProxy"]["privileged"] == json!(false) {
            assert_eq!(
                cfg.conntrack.max_per_core, 0,
                "{name}: would write a sysctl"
            );
            assert!(!cfg.localhost_node_ports, "{name}: needs route_localnet");
        }
    }
}

#[test]
fn kube_proxy_checks_fail_on_an_unknown_flag_or_field() {
    let mut objects = plain_objects().unwrap();
    let orig = objects.clone();
    // negative: a flag kube-proxy-rs does not have
    for o in &mut objects {
        if let Object::DaemonSet(d) = o
            && d.metadata.name.as_deref() == Some("kube-proxy-rs")
        {
            let c = &mut d.spec.template.spec.as_mut().unwrap().containers[0];
            c.command
                .as_mut()
                .unwrap()
                .push("--masquerade-everything".into());
        }
    }
    let e = check_kube_proxy(&objects).unwrap_err();
    assert!(e.contains("--masquerade-everything"), "{e}");
    // negative: a configuration field upstream's v1alpha1 does not define
    let mut objects = orig;
    for o in &mut objects {
        if let Object::ConfigMap(c) = o
            && c.metadata.name.as_deref() == Some("kube-proxy-rs")
        {
            let data = c.data.as_mut().unwrap();
            let text = data["config.conf"].replace("masqueradeBit: 14", "masqueradeBits: 14");
            data.insert("config.conf".into(), text);
        }
    }
    let e = check_kube_proxy(&objects).unwrap_err();
    assert!(e.contains("masqueradeBits"), "{e}");
}

/// bgpd's command-line vocabulary from its clap definition in bgpd/src/main.rs: the long
/// (and short) flags of `struct Cli` and the variants of its subcommand enums, lowercased.
fn bgpd_cli_words() -> (BTreeSet<String>, BTreeSet<String>) {
    let src = read(&repo().join("bgpd/src/main.rs"));
    let mut flags = BTreeSet::new();
    let mut subcommands = BTreeSet::new();
    let cli = src
        .split("struct Cli {")
        .nth(1)
        .and_then(|s| s.split("\n}").next())
        .expect("struct Cli in bgpd/src/main.rs");
    let mut pending: Option<&str> = None;
    for line in cli.lines().map(str::trim) {
        if line.starts_with("#[arg(") {
            pending = Some(line);
        } else if line.starts_with("///") || line.starts_with("#[") {
            continue;
        } else if let Some(attr) = pending.take()
            && let Some((field, _)) = line.split_once(':')
        {
            let field = field.trim().trim_start_matches("pub ").trim();
            if attr.contains("long") {
                flags.insert(format!("--{}", field.replace('_', "-")));
            }
            if attr.contains("short") {
                flags.insert(format!("-{}", &field[..1]));
            }
        }
    }
    for part in src.split("#[derive(Subcommand)]").skip(1) {
        let body = part.split("\n}").next().unwrap_or("");
        for line in body.lines().skip(2).map(str::trim) {
            let ident: String = line.chars().take_while(|c| c.is_alphanumeric()).collect();
            if ident.starts_with(|c: char| c.is_ascii_uppercase()) {
                subcommands.insert(ident.to_lowercase());
            }
        }
    }
    (flags, subcommands)
}

/// Every word of a bgpd command line is one of bgpd's flags (with its value), a subcommand,
/// or a subcommand's `--json`.
fn check_bgpd_argv(argv: &[String]) -> Result<(), String> {
    let (flags, subs) = bgpd_cli_words();
    if !argv[0].ends_with("bgpd") {
        return Err(format!("runs {}, not bgpd", argv[0]));
    }
    let mut words = argv[1..].iter();
    while let Some(w) = words.next() {
        let flag = w.split('=').next().unwrap();
        if w.starts_with('-') {
            if w == "--json" {
                continue;
            }
            if !flags.contains(flag) {
                return Err(format!("bgpd has no flag {flag} (it has {flags:?})"));
            }
            if !w.contains('=') && words.next().is_none() {
                return Err(format!("{w} without a value"));
            }
        } else if !subs.contains(w.as_str()) {
            return Err(format!("bgpd has no subcommand {w} (it has {subs:?})"));
        }
    }
    Ok(())
}

/// Runs the bgpd DaemonSet's init container script as the kubelet would on node-1, with
/// the paths moved into `dir` and a stand-in `bgpd` that records its arguments; returns the
/// rendered config text and the recorded arguments.
fn run_bgpd_init(objects: &[Object], dir: &Path, node_ips: &str) -> (String, Vec<String>) {
    let ds = daemonset(objects, "bgpd");
    let init = &pod_spec(ds).init_containers.as_ref().unwrap()[0];
    let mut env = env_of(init);
    env.insert("NODE_IPS".into(), node_ips.into());
    // the template comes from the config volume, as mounted
    let template_path = &env["BGPD_TEMPLATE"];
    let (_, key) = template_path.rsplit_once('/').unwrap();
    std::fs::write(dir.join("template.yaml"), config_data(objects, "bgpd", key)).unwrap();
    env.insert(
        "BGPD_TEMPLATE".into(),
        dir.join("template.yaml").display().to_string(),
    );
    env.insert(
        "BGPD_CONFIG".into(),
        dir.join("bgpd.yaml").display().to_string(),
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("bgpd");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$0\" \"$@\"; do printf '%s\\n' \"$a\"; done > {}/args\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let argv: Vec<String> = init
        .command
        .iter()
        .flatten()
        .chain(init.args.iter().flatten())
        .map(|a| expand(a, &env))
        .collect();
    assert_eq!(
        argv[..2],
        ["/bin/sh", "-c"],
        "the init container runs a shell script"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&argv[2])
        .env_clear()
        .envs(&env)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = read(&dir.join("args"))
        .lines()
        .map(str::to_string)
        .collect();
    (read(&dir.join("bgpd.yaml")), args)
}

fn check_bgpd(objects: &[Object], node_ips: &str) -> Result<bgpd::config::Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let (text, init_argv) = run_bgpd_init(objects, dir.path(), node_ips);
    let mut init_argv = init_argv;
    init_argv[0] = "bgpd".into();
    check_bgpd_argv(&init_argv)?;
    let cfg =
        bgpd::config::Config::parse(&text, Path::new("bgpd.yaml")).map_err(|e| e.to_string())?;
    let ds = daemonset(objects, "bgpd");
    let c = &pod_spec(ds).containers[0];
    let run = argv(c);
    check_bgpd_argv(&run)?;
    let probe = c
        .liveness_probe
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.clone())
        .ok_or("no exec liveness probe")?;
    check_bgpd_argv(&probe)?;
    if !probe.iter().any(|a| Path::new(a) == cfg.control_socket) {
        return Err(format!(
            "liveness probe {probe:?} misses {:?}",
            cfg.control_socket
        ));
    }
    let ready = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .ok_or("no HTTP readiness probe")?;
    let metrics = cfg
        .metrics_bind_address
        .ok_or("no metrics server for the readiness probe")?;
    if ready.port
        != k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(metrics.port().into())
    {
        return Err(format!(
            "readiness probe on {:?}, metrics on {metrics}",
            ready.port
        ));
    }
    if cfg.node_name.as_deref() != Some(NODE_NAME) {
        return Err(format!("node_name {:?}", cfg.node_name));
    }
    Ok(cfg)
}

#[test]
fn bgpd_config_and_flags_pass_bgpds_parsers() {
    let objects = plain_objects().unwrap();
    let cfg = check_bgpd(&objects, NODE_IPS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.router_id.to_string(),
        "198.18.0.11",
        "first IPv4 of status.hostIPs"
    );
    assert_eq!(cfg.asn, 64512);
    assert_eq!(cfg.peers.len(), 1);
    for (name, over) in variants() {
        if over["bgpd"]["enabled"] == json!(false) {
            continue;
        }
        let objects = objects_of(&render_chart(&over)).unwrap();
        let cfg = check_bgpd(&objects, NODE_IPS).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(asn) = over["bgpd"]["asn"].as_u64() {
            assert_eq!(u64::from(cfg.asn), asn, "{name}");
        }
        if let Some(r) = over["bgpd"]["routerId"].as_str() {
            assert_eq!(cfg.router_id.to_string(), r, "{name}");
        }
    }
}

#[test]
fn bgpd_checks_fail_on_bad_config_flags_and_ipv6_only_nodes() {
    let objects = plain_objects().unwrap();
    // negative: no IPv4 address for the router ID
    let e = check_bgpd(&objects, "2001:db8::11").unwrap_err();
    assert!(e.contains("router_id"), "{e}");
    // negative: a key bgpd does not know
    let mut bad = objects.clone();
    for o in &mut bad {
        if let Object::ConfigMap(c) = o
            && c.metadata.name.as_deref() == Some("bgpd")
        {
            let data = c.data.as_mut().unwrap();
            let text = data["bgpd.yaml"].replace("install_routes:", "install_route:");
            data.insert("bgpd.yaml".into(), text);
        }
    }
    let e = check_bgpd(&bad, NODE_IPS).unwrap_err();
    assert!(e.contains("install_route"), "{e}");
    // negative: a flag bgpd does not have
    let e = check_bgpd_argv(&["bgpd".into(), "--node-name".into(), "x".into()]).unwrap_err();
    assert!(e.contains("no flag --node-name"), "{e}");
    let e = check_bgpd_argv(&["bgpd".into(), "status".into()]).unwrap_err();
    assert!(e.contains("no subcommand status"), "{e}");
    let (flags, subs) = bgpd_cli_words();
    assert!(
        flags.contains("--config") && flags.contains("--socket"),
        "{flags:?}"
    );
    assert!(
        subs.contains("check") && subs.contains("neighbors"),
        "{subs:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The node-agent rules both DaemonSets follow

fn node_agent_problems(ds: &DaemonSet) -> Vec<String> {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let spec = &ds.spec;
    let pod = spec.template.spec.as_ref().unwrap();
    let mut p = Vec::new();
    if pod.host_network != Some(true) {
        p.push(format!("{name}: not hostNetwork"));
    }
    if pod.priority_class_name.as_deref() != Some("system-node-critical") {
        p.push(format!("{name}: not system-node-critical"));
    }
    if !pod
        .tolerations
        .iter()
        .flatten()
        .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none())
    {
        p.push(format!("{name}: does not tolerate every taint"));
    }
    let strategy = spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) != Some("RollingUpdate")
        || strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref())
            .is_none()
    {
        p.push(format!("{name}: no RollingUpdate with maxUnavailable"));
    }
    p
}

#[test]
fn daemonsets_are_node_agents_with_the_mounts_and_capabilities_they_need() {
    let objects = plain_objects().unwrap();
    for name in ["kube-proxy-rs", "bgpd"] {
        let problems = node_agent_problems(daemonset(&objects, name));
        assert!(problems.is_empty(), "{problems:?}");
    }
    let kp = pod_spec(daemonset(&objects, "kube-proxy-rs"));
    let mounts: BTreeMap<&str, bool> = kp.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.mount_path.as_str(), m.read_only.unwrap_or(false)))
        .collect();
    assert_eq!(mounts.get("/run/xtables.lock"), Some(&false));
    assert_eq!(mounts.get("/lib/modules"), Some(&true));
    let bgpd = pod_spec(daemonset(&objects, "bgpd"));
    let sc = bgpd.containers[0].security_context.clone().unwrap();
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.unwrap();
    assert_eq!(caps.add.unwrap(), ["NET_ADMIN", "NET_BIND_SERVICE"]);
    assert_eq!(caps.drop.unwrap(), ["ALL"]);

    // negative: a DaemonSet that forgot hostNetwork and the tolerations
    let mut broken = daemonset(&objects, "bgpd").clone();
    let pod = broken.spec.template.spec.as_mut().unwrap();
    pod.host_network = None;
    pod.tolerations = None;
    assert_eq!(
        node_agent_problems(&broken),
        [
            "bgpd: not hostNetwork",
            "bgpd: does not tolerate every taint"
        ]
    );
}
