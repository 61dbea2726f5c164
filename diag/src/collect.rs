//! `diag collect`: a live, read-only snapshot of one node (or one network namespace) into a
//! [`Bundle`] in memory; the caller writes it out or traces it directly.
//!
//! ```text
//!   Runner(Target::Here | Netns) ── ReadCommand allow-list ──> stdout per part
//!     iptables-{nft,legacy}-save, ip6tables-{nft,legacy}-save, nft -j list ruleset, ipset save,
//!     ipvsadm -Sn (only with IPVS loaded), ip -j link/addr/route/rule/neigh,
//!     sysctl -e KEYS (keys for every interface), conntrack -L -o extended (bounded),
//!     bgpd show neighbors|routes --json (when its control socket exists), tool versions
//!   + /proc/sys/kernel/{hostname,osrelease} and the clock
//!   ──> Bundle { manifest (command, status, exit code, size, sha256 per part), files }
//! ```
//! A missing tool or a failing command is recorded in the manifest, never fatal. Nothing here
//! writes to the node: see [`crate::command`].

use std::path::PathBuf;

use dataplane::Family;
use dataplane::node::Sysctls;
use dataplane::route::Link;

use crate::bundle::{Bundle, FileEntry, FileStatus, Manifest, Part, Truncated};
use crate::command::{BgpdShow, CmdOutput, ReadCommand, RunError, Runner, SysctlKey, Target, Tool};

/// Default bound on conntrack entries kept.
pub const CONNTRACK_LIMIT: usize = 10_000;

/// Where bgpd's control socket is looked for by default, in order; the first that exists is
/// read. bgpd's own default (`bgpd::config::DEFAULT_CONTROL_SOCKET`), then where deploy/'s
/// DaemonSet puts it (`control_socket: /run/bgpd/bgpd.sock`, the hostPath directory
/// `/run/bgpd`, so the host sees it). system-tests' `bgpd_socket` test keeps this list in
/// step with both.
pub const BGPD_SOCKETS: [&str; 2] = ["/run/bgpd.sock", "/run/bgpd/bgpd.sock"];

/// What to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Where to run the commands.
    pub target: Target,
    /// The node name to record (default: the netns name, else the host name).
    pub node_name: Option<String>,
    /// At most this many conntrack entries (both families together).
    pub conntrack_limit: usize,
    /// Where bgpd's control socket may be, in order (the first that exists is read).
    pub bgpd_sockets: Vec<PathBuf>,
}

impl Default for CollectOptions {
    fn default() -> CollectOptions {
        CollectOptions {
            target: Target::Here,
            node_name: None,
            conntrack_limit: CONNTRACK_LIMIT,
            bgpd_sockets: BGPD_SOCKETS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Collecting failed at the OS level (a command could not be started at all).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A command could not be spawned.
    #[error("collect: {0}")]
    Run(#[from] RunError),
    /// The network namespace does not exist.
    #[error("collect: network namespace {0:?} does not exist (see `ip netns list`)")]
    NoNetns(String),
}

fn read_proc(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn shorten(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let mut out: String = t.chars().take(400).collect();
    if out.len() < t.len() {
        out.push('…');
    }
    Some(out)
}

/// Collects a snapshot.
pub fn collect(opts: &CollectOptions) -> Result<Bundle, CollectError> {
    if let Target::Netns(ns) = &opts.target
        && !std::path::Path::new("/run/netns").join(ns).exists()
    {
        return Err(CollectError::NoNetns(ns.clone()));
    }
    let runner = Runner::new(opts.target.clone());
    let hostname = read_proc("/proc/sys/kernel/hostname");
    let node = opts
        .node_name
        .clone()
        .or_else(|| match &opts.target {
            Target::Netns(ns) => Some(ns.clone()),
            Target::Here => None,
        })
        .or_else(|| hostname.clone())
        .unwrap_or_else(|| "node".to_string());
    let mut manifest = Manifest::new(node, jiff::Timestamp::now().to_string());
    manifest.hostname = hostname;
    manifest.kernel = read_proc("/proc/sys/kernel/osrelease");
    if let Target::Netns(ns) = &opts.target {
        manifest.netns = Some(ns.clone());
    }
    let origin = match &opts.target {
        Target::Here => "live".to_string(),
        Target::Netns(ns) => format!("live netns {ns}"),
    };
    let mut b = Bundle::new(manifest, origin);
    let ipvs = std::path::Path::new("/sys/module/ip_vs").exists();

    for tool in Tool::ALL {
        let v = if tool == Tool::Ipvsadm && !ipvs {
            "not run (no IPVS in the kernel)".to_string()
        } else {
            match runner.run(&ReadCommand::Version(tool))? {
                CmdOutput::MissingTool => "missing".to_string(),
                CmdOutput::Ran { stdout, stderr, .. } => {
                    let s = String::from_utf8_lossy(&stdout);
                    let line = s.lines().chain(stderr.lines()).next().unwrap_or("");
                    line.trim().to_string()
                }
            }
        };
        b.manifest.tools.insert(tool.program().to_string(), v);
    }

    for part in [
        Part::IptablesNftSave,
        Part::Ip6tablesNftSave,
        Part::IptablesLegacySave,
        Part::Ip6tablesLegacySave,
    ] {
        let Some((backend, family)) = part.iptables() else {
            continue;
        };
        simple(
            &runner,
            &mut b,
            part,
            ReadCommand::IptablesSave(backend, family),
        )?;
    }
    simple(
        &runner,
        &mut b,
        Part::NftRuleset,
        ReadCommand::NftListRuleset,
    )?;
    simple(&runner, &mut b, Part::IpsetSave, ReadCommand::IpsetSave)?;
    if ipvs {
        simple(&runner, &mut b, Part::IpvsadmSave, ReadCommand::IpvsadmSave)?;
    } else {
        b.put(
            skipped(
                Part::IpvsadmSave,
                runner.command_line(&ReadCommand::IpvsadmSave),
                "the kernel has no IPVS loaded (/sys/module/ip_vs is absent); not run, as \
                 ipvsadm would load the module",
            ),
            None,
        );
    }
    simple(&runner, &mut b, Part::IpLink, ReadCommand::IpLink)?;
    simple(&runner, &mut b, Part::IpAddr, ReadCommand::IpAddr)?;
    simple(
        &runner,
        &mut b,
        Part::IpRoute4,
        ReadCommand::IpRoute(Family::V4),
    )?;
    simple(
        &runner,
        &mut b,
        Part::IpRoute6,
        ReadCommand::IpRoute(Family::V6),
    )?;
    simple(
        &runner,
        &mut b,
        Part::IpRule4,
        ReadCommand::IpRule(Family::V4),
    )?;
    simple(
        &runner,
        &mut b,
        Part::IpRule6,
        ReadCommand::IpRule(Family::V6),
    )?;
    simple(&runner, &mut b, Part::IpNeigh, ReadCommand::IpNeigh)?;

    // sysctls for every interface the link dump names
    let devs: Vec<String> = b
        .part(Part::IpLink)
        .and_then(|(_, c)| Link::parse_doc(&String::from_utf8_lossy(c)).ok())
        .map(|links| links.into_iter().map(|l| l.ifname).collect())
        .unwrap_or_default();
    let dev_refs: Vec<&str> = devs.iter().map(String::as_str).collect();
    let mut keys: Vec<SysctlKey> = Sysctls::keys_for(&dev_refs)
        .iter()
        .filter_map(|k| SysctlKey::new(k).ok())
        .collect();
    for k in [
        "net.ipv4.conf.default.forwarding",
        "net.ipv4.conf.default.route_localnet",
        "net.ipv4.conf.default.src_valid_mark",
    ] {
        if let Ok(k) = SysctlKey::new(k) {
            keys.push(k);
        }
    }
    let sysctl = ReadCommand::Sysctl(keys);
    simple(&runner, &mut b, Part::Sysctl, sysctl)?;

    conntrack(&runner, &mut b, opts.conntrack_limit)?;

    let socket = opts.bgpd_sockets.iter().find(|p| p.exists());
    for (part, what) in [
        (Part::BgpdNeighbors, BgpdShow::Neighbors),
        (Part::BgpdRoutes, BgpdShow::Routes),
    ] {
        match socket {
            Some(p) => simple(&runner, &mut b, part, ReadCommand::Bgpd(what, p.clone()))?,
            None => {
                let first = opts.bgpd_sockets.first().cloned().unwrap_or_default();
                let cmd = ReadCommand::Bgpd(what, first);
                let tried: Vec<String> = opts
                    .bgpd_sockets
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                let note = format!("no bgpd control socket at {}", tried.join(" or "));
                b.put(skipped(part, runner.command_line(&cmd), &note), None);
            }
        }
    }
    Ok(b)
}

fn skipped(part: Part, command: String, note: &str) -> FileEntry {
    FileEntry {
        part,
        file: None,
        command,
        status: FileStatus::Skipped,
        exit_code: None,
        note: Some(note.to_string()),
        bytes: None,
        sha256: None,
        truncated: None,
    }
}

/// Runs one command for one part and records it.
fn simple(
    runner: &Runner,
    b: &mut Bundle,
    part: Part,
    cmd: ReadCommand,
) -> Result<(), CollectError> {
    let command = runner.command_line(&cmd);
    let out = runner.run(&cmd)?;
    record(b, part, command, out, None);
    Ok(())
}

fn record(
    b: &mut Bundle,
    part: Part,
    command: String,
    out: CmdOutput,
    truncated: Option<Truncated>,
) {
    let mut entry = FileEntry {
        part,
        file: None,
        command,
        status: FileStatus::Ok,
        exit_code: None,
        note: None,
        bytes: None,
        sha256: None,
        truncated,
    };
    match out {
        CmdOutput::MissingTool => {
            entry.status = FileStatus::MissingTool;
            entry.note = Some("not installed".into());
            b.put(entry, None);
        }
        CmdOutput::Ran {
            code,
            stdout,
            stderr,
            truncated: cut,
        } => {
            entry.exit_code = code;
            entry.note = shorten(&stderr);
            if code == Some(0) || cut {
                b.put(entry, Some(stdout));
            } else {
                entry.status = FileStatus::Failed;
                b.put(entry, None);
            }
        }
    }
}

/// Both families of `conntrack -L -o extended` into one file, at most `limit` entries.
fn conntrack(runner: &Runner, b: &mut Bundle, limit: usize) -> Result<(), CollectError> {
    let mut text = Vec::new();
    let mut commands = Vec::new();
    let mut notes = Vec::new();
    let mut any_ok = false;
    let mut missing = false;
    let mut cut = false;
    let mut code = None;
    for f in [Family::V4, Family::V6] {
        let cmd = ReadCommand::ConntrackList(f);
        commands.push(runner.command_line(&cmd));
        let kept = text.iter().filter(|c| **c == b'\n').count();
        let left = limit.saturating_sub(kept);
        match runner.run_bounded(&cmd, Some(left))? {
            CmdOutput::MissingTool => missing = true,
            CmdOutput::Ran {
                code: c,
                stdout,
                stderr,
                truncated,
            } => {
                // conntrack prints a summary ("... flow entries have been shown.") on stderr
                let err: Vec<&str> = stderr
                    .lines()
                    .filter(|l| !l.contains("flow entries have been shown"))
                    .collect();
                if !err.is_empty() {
                    notes.push(err.join("; "));
                }
                if c == Some(0) || truncated {
                    any_ok = true;
                    code = code.or(c);
                } else {
                    code = c;
                }
                cut |= truncated;
                text.extend_from_slice(&stdout);
            }
        }
    }
    let command = commands.join("; ");
    if missing {
        record(b, Part::Conntrack, command, CmdOutput::MissingTool, None);
        return Ok(());
    }
    let total = b
        .part(Part::Sysctl)
        .and_then(|(_, c)| Sysctls::parse(&String::from_utf8_lossy(c)).ok())
        .and_then(|s| s.conntrack_count());
    let truncated = cut.then_some(Truncated {
        limit: limit as u64,
        total,
    });
    let out = CmdOutput::Ran {
        code: if any_ok { Some(0) } else { code },
        stdout: text,
        stderr: notes.join("; "),
        truncated: cut,
    };
    record(b, Part::Conntrack, command, out, truncated);
    Ok(())
}

/// Adds Kubernetes object lists (JSON `List` documents) read from the API to a bundle;
/// `command` says how they were read.
pub fn add_k8s(b: &mut Bundle, part: Part, command: String, list_json: Result<Vec<u8>, String>) {
    let entry = FileEntry {
        part,
        file: None,
        command,
        status: FileStatus::Ok,
        exit_code: None,
        note: None,
        bytes: None,
        sha256: None,
        truncated: None,
    };
    match list_json {
        Ok(bytes) => b.put(entry, Some(bytes)),
        Err(why) => b.put(
            FileEntry {
                status: FileStatus::Skipped,
                note: Some(why),
                ..entry
            },
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_an_error() {
        let opts = CollectOptions {
            target: Target::netns("diag-test-no-such-netns").unwrap(),
            ..CollectOptions::default()
        };
        let e = collect(&opts).unwrap_err().to_string();
        assert!(e.contains("diag-test-no-such-netns"), "{e}");
    }

    #[test]
    fn failures_and_missing_tools_are_recorded() {
        let mut b = Bundle::new(Manifest::new("n", "t"), "test");
        record(
            &mut b,
            Part::IpsetSave,
            "ipset save".into(),
            CmdOutput::MissingTool,
            None,
        );
        record(
            &mut b,
            Part::NftRuleset,
            "nft -j list ruleset".into(),
            CmdOutput::Ran {
                code: Some(1),
                stdout: Vec::new(),
                stderr: "Error: no permission\n".into(),
                truncated: false,
            },
            None,
        );
        let e = b.manifest.entry(Part::IpsetSave).unwrap();
        assert_eq!(e.status, FileStatus::MissingTool);
        let e = b.manifest.entry(Part::NftRuleset).unwrap();
        assert_eq!(e.status, FileStatus::Failed);
        assert_eq!(e.note.as_deref(), Some("Error: no permission"));
        assert!(b.files.is_empty());
    }
}
