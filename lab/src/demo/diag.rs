//! Running `diag` on the demo's nodes: `diag collect` inside each node's namespace (with the
//! kubeconfig, so names resolve, and bgpd's socket), then `diag trace` and `diag check` over
//! the bundles, as text to show and as JSON to decide on.
//!
//! ```text
//!   ip netns exec lab-ID-nodeK diag collect --out DIR/TAG/nodeK --node-name nodeK ...
//!   diag trace SRC DST --bundle DIR/TAG/node1 --bundle ... [--json]
//!   diag check --bundle ... [--json]
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::DemoError;
use super::cluster::{Binaries, Node};
use super::router::path_str;

/// Collects a bundle of every node into `dir/tag/NODE`; the bundle paths.
pub fn collect(
    bins: &Binaries,
    nodes: &[Node],
    dir: &Path,
    tag: &str,
    kubeconfig: &Path,
) -> Result<Vec<PathBuf>, DemoError> {
    let base = dir.join(tag);
    std::fs::create_dir_all(&base).map_err(|e| DemoError::io("create", &base, e))?;
    let mut out = Vec::new();
    for n in nodes {
        let b = base.join(&n.info.name);
        let o = n.host.output(&[
            &path_str(&bins.diag),
            "collect",
            "--out",
            &path_str(&b),
            "--node-name",
            &n.info.name,
            "--kubeconfig",
            &path_str(kubeconfig),
            "--bgpd-socket",
            &path_str(&n.sock),
        ])?;
        if !o.status.success() {
            return Err(DemoError::Failed {
                what: format!(
                    "diag collect on {}: {}",
                    n.info.name,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            });
        }
        out.push(b);
    }
    Ok(out)
}

fn run(bins: &Binaries, args: &[String]) -> Result<(i32, String, String), DemoError> {
    let o = std::process::Command::new(&bins.diag)
        .args(args)
        .output()
        .map_err(|source| DemoError::Io {
            op: "run",
            path: bins.diag.clone(),
            source,
        })?;
    Ok((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

fn bundle_args(bundles: &[PathBuf]) -> Vec<String> {
    bundles
        .iter()
        .flat_map(|b| ["--bundle".to_string(), path_str(b)])
        .collect()
}

/// What a `diag trace` or `diag check` printed: the command, the text, the JSON report.
#[derive(Debug, Clone)]
pub struct DiagRun {
    /// The command line as a user would type it (bundles abbreviated).
    pub command: String,
    /// The text output.
    pub text: String,
    /// The `--json` report.
    pub json: Value,
}

fn both(
    bins: &Binaries,
    cmd: &[String],
    bundles: &[PathBuf],
    shown: String,
) -> Result<DiagRun, DemoError> {
    let mut args = cmd.to_vec();
    args.extend(bundle_args(bundles));
    let (code, text, err) = run(bins, &args)?;
    if code == 2 {
        return Err(DemoError::Failed {
            what: format!("{shown}: {}", err.trim()),
        });
    }
    args.push("--json".into());
    let (_, js, _) = run(bins, &args)?;
    let json = serde_json::from_str(&js).map_err(|e| DemoError::Failed {
        what: format!("{shown} --json: {e}"),
    })?;
    Ok(DiagRun {
        command: shown,
        text,
        json,
    })
}

/// `diag trace SRC DST [--port P]` over the bundles (names resolve from the objects the
/// bundles hold: `--no-k8s`).
pub fn trace(
    bins: &Binaries,
    bundles: &[PathBuf],
    src: &str,
    dst: &str,
    port: Option<u16>,
) -> Result<DiagRun, DemoError> {
    let mut cmd: Vec<String> = ["trace", src, dst, "--no-k8s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut shown = format!("diag trace {src} {dst}");
    if let Some(p) = port {
        cmd.extend(["--port".to_string(), p.to_string()]);
        shown += &format!(" --port {p}");
    }
    shown += " --bundle <each node's>";
    both(bins, &cmd, bundles, shown)
}

/// `diag check` over the bundles.
pub fn check(bins: &Binaries, bundles: &[PathBuf]) -> Result<DiagRun, DemoError> {
    both(
        bins,
        &["check".to_string()],
        bundles,
        "diag check --bundle <each node's>".into(),
    )
}

/// The first step of a trace report's paths that a rule decided with a drop or reject: the
/// rule as `iptables-save` prints it.
pub fn dropping_rule(report: &Value) -> Option<String> {
    let text = report["verdict"]["text"].as_str().unwrap_or("");
    let paths = report["paths"].as_array()?;
    for p in paths {
        for h in p["hops"].as_array().into_iter().flatten() {
            for s in h["steps"].as_array().into_iter().flatten() {
                let st = s.to_string();
                if st.contains("REJECT") || st.contains("DROP") {
                    // the rule text, wherever the step keeps it
                    if let Some(r) = find_rule(s) {
                        return Some(r);
                    }
                }
            }
        }
    }
    (!text.is_empty()).then(|| text.to_string())
}

fn find_rule(v: &Value) -> Option<String> {
    match v {
        Value::String(s)
            if s.starts_with("-A ") && (s.contains("REJECT") || s.contains("DROP")) =>
        {
            Some(s.clone())
        }
        Value::Array(a) => a.iter().find_map(find_rule),
        Value::Object(o) => o.values().find_map(find_rule),
        _ => None,
    }
}
