//! The only way diag runs a program: an allow-list of read-only commands ([`ReadCommand`]),
//! each a fixed argument vector, run here or inside a named network namespace.
//!
//! ```text
//!   ReadCommand::IptablesSave(Nft, V4) --argv()--> ["iptables-nft-save"]
//!   Target::Netns("ns1")               --prefix--> ["ip", "netns", "exec", "ns1", ...]
//!   Runner::run(&ReadCommand) -> Ran { code, stdout, stderr } | MissingTool
//! ```
//! There is no constructor for an arbitrary command line: every variant prints state (`-save`,
//! `list`, `show`, `-L`, `--version`, `sysctl` without `-w`), and sysctl keys and namespace
//! names are checked so that they cannot smuggle in a write (`=`, `-w`, a path). `ipvsadm` is
//! run only when the kernel has IPVS loaded (it would otherwise `modprobe ip_vs`), which the
//! collector checks first. The test `every_command_is_a_read` pins the list.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dataplane::Family;
use dataplane::node::Backend;

/// Where commands run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// In diag's own network namespace.
    Here,
    /// Inside a named network namespace (`ip netns exec NAME ...`).
    Netns(String),
}

/// A name that is not usable as a network namespace name or a sysctl key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not allowed: {why}")]
pub struct NameError {
    /// `netns name` or `sysctl key`.
    pub what: &'static str,
    /// The value.
    pub value: String,
    /// Why.
    pub why: &'static str,
}

impl Target {
    /// A netns target, refusing names `ip netns` would not accept or that look like options.
    pub fn netns(name: &str) -> Result<Target, NameError> {
        let ok = !name.is_empty()
            && !name.starts_with('-')
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Target::Netns(name.to_string()))
        } else {
            Err(NameError {
                what: "netns name",
                value: name.to_string(),
                why: "expected letters, digits, '-', '_' or '.', not starting with '-'",
            })
        }
    }
}

/// A sysctl key to read (`net.ipv4.ip_forward`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlKey(String);

impl SysctlKey {
    /// Checks a key: dotted words of letters, digits, `_`, `-` and `/` (interface names with
    /// dots), under `net.`.
    pub fn new(key: &str) -> Result<SysctlKey, NameError> {
        let ok = key.starts_with("net.")
            && !key.contains("..")
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if ok {
            Ok(SysctlKey(key.to_string()))
        } else {
            Err(NameError {
                what: "sysctl key",
                value: key.to_string(),
                why: "expected a net.* key",
            })
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `bgpd show` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BgpdShow {
    /// `bgpd show neighbors --json`.
    Neighbors,
    /// `bgpd show routes --json`.
    Routes,
}

/// A tool whose version the manifest records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `iptables-nft-save --version`.
    IptablesNft,
    /// `iptables-legacy-save --version`.
    IptablesLegacy,
    /// `nft --version`.
    Nft,
    /// `ipset --version`.
    Ipset,
    /// `ip -V`.
    Ip,
    /// `conntrack --version`.
    Conntrack,
    /// `ipvsadm --version` (only with IPVS loaded).
    Ipvsadm,
    /// `sysctl --version`.
    Sysctl,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 8] = [
        Tool::IptablesNft,
        Tool::IptablesLegacy,
        Tool::Nft,
        Tool::Ipset,
        Tool::Ip,
        Tool::Conntrack,
        Tool::Ipvsadm,
        Tool::Sysctl,
    ];

    /// The program.
    pub fn program(self) -> &'static str {
        match self {
            Tool::IptablesNft => "iptables-nft-save",
            Tool::IptablesLegacy => "iptables-legacy-save",
            Tool::Nft => "nft",
            Tool::Ipset => "ipset",
            Tool::Ip => "ip",
            Tool::Conntrack => "conntrack",
            Tool::Ipvsadm => "ipvsadm",
            Tool::Sysctl => "sysctl",
        }
    }
}

/// A read-only command from the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadCommand {
    /// `iptables-nft-save`, `ip6tables-legacy-save`, ...
    IptablesSave(Backend, Family),
    /// `nft -j list ruleset`.
    NftListRuleset,
    /// `ipset save`.
    IpsetSave,
    /// `ipvsadm -Sn`.
    IpvsadmSave,
    /// `ip -j -d link show`.
    IpLink,
    /// `ip -j addr show`.
    IpAddr,
    /// `ip -j -4|-6 route show table all`.
    IpRoute(Family),
    /// `ip -j -4|-6 rule show`.
    IpRule(Family),
    /// `ip -j neigh show`.
    IpNeigh,
    /// `sysctl -e KEY...` (read only: no `-w`, keys checked).
    Sysctl(Vec<SysctlKey>),
    /// `conntrack -L -o extended -f ipv4|ipv6`.
    ConntrackList(Family),
    /// `bgpd --socket PATH show neighbors|routes --json`.
    Bgpd(BgpdShow, PathBuf),
    /// A tool's version.
    Version(Tool),
}

impl ReadCommand {
    /// The argument vector.
    pub fn argv(&self) -> Vec<String> {
        let fam = |f: &Family| match f {
            Family::V4 => "-4",
            Family::V6 => "-6",
        };
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            ReadCommand::IptablesSave(b, f) => vec![format!("{}-save", b.command(*f))],
            ReadCommand::NftListRuleset => v(&["nft", "-j", "list", "ruleset"]),
            ReadCommand::IpsetSave => v(&["ipset", "save"]),
            ReadCommand::IpvsadmSave => v(&["ipvsadm", "-Sn"]),
            ReadCommand::IpLink => v(&["ip", "-j", "-d", "link", "show"]),
            ReadCommand::IpAddr => v(&["ip", "-j", "addr", "show"]),
            ReadCommand::IpRoute(f) => v(&["ip", "-j", fam(f), "route", "show", "table", "all"]),
            ReadCommand::IpRule(f) => v(&["ip", "-j", fam(f), "rule", "show"]),
            ReadCommand::IpNeigh => v(&["ip", "-j", "neigh", "show"]),
            ReadCommand::Sysctl(keys) => {
                let mut a = v(&["sysctl", "-e"]);
                a.extend(keys.iter().map(|k| k.0.clone()));
                a
            }
            ReadCommand::ConntrackList(f) => {
                let f = match f {
                    Family::V4 => "ipv4",
                    Family::V6 => "ipv6",
                };
                v(&["conntrack", "-L", "-o", "extended", "-f", f])
            }
            ReadCommand::Bgpd(what, sock) => {
                let w = match what {
                    BgpdShow::Neighbors => "neighbors",
                    BgpdShow::Routes => "routes",
                };
                vec![
                    "bgpd".into(),
                    "--socket".into(),
                    sock.display().to_string(),
                    "show".into(),
                    w.into(),
                    "--json".into(),
                ]
            }
            ReadCommand::Version(t) => match t {
                Tool::Ip => v(&["ip", "-V"]),
                t => vec![t.program().to_string(), "--version".into()],
            },
        }
    }

    /// The program run.
    pub fn program(&self) -> String {
        self.argv().into_iter().next().unwrap_or_default()
    }
}

/// How a command came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdOutput {
    /// It ran.
    Ran {
        /// Exit code (`None`: killed by a signal, e.g. after the line bound).
        code: Option<i32>,
        /// Standard output.
        stdout: Vec<u8>,
        /// Standard error.
        stderr: String,
        /// Whether stdout was cut at the line bound.
        truncated: bool,
    },
    /// The program is not installed.
    MissingTool,
}

/// Running a command failed at the OS level (not a non-zero exit).
#[derive(Debug, thiserror::Error)]
#[error("{cmd}: {source}")]
pub struct RunError {
    /// The command line.
    pub cmd: String,
    /// The error.
    pub source: std::io::Error,
}

/// Directories searched for tools besides `PATH` (the tools live in sbin).
const SBIN: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Runs allow-listed commands in one target.
#[derive(Debug, Clone)]
pub struct Runner {
    target: Target,
    path: String,
}

impl Runner {
    /// A runner for `target`.
    pub fn new(target: Target) -> Runner {
        let mut dirs: Vec<String> = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect();
        for d in SBIN {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_string());
            }
        }
        Runner {
            target,
            path: dirs.join(":"),
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Whether `program` is installed (in `PATH` or an sbin directory).
    pub fn has(&self, program: &str) -> bool {
        self.path
            .split(':')
            .any(|d| is_executable(&Path::new(d).join(program)))
    }

    /// The full argument vector run for `cmd` (with `ip netns exec NS` for a netns).
    pub fn full_argv(&self, cmd: &ReadCommand) -> Vec<String> {
        let mut argv = match &self.target {
            Target::Here => Vec::new(),
            Target::Netns(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
        };
        argv.extend(cmd.argv());
        argv
    }

    /// The command line as a shell shows it, for the manifest.
    pub fn command_line(&self, cmd: &ReadCommand) -> String {
        self.full_argv(cmd).join(" ")
    }

    /// Runs `cmd` to completion.
    pub fn run(&self, cmd: &ReadCommand) -> Result<CmdOutput, RunError> {
        self.run_bounded(cmd, None)
    }

    /// Runs `cmd`, keeping at most `max_lines` lines of stdout (the process is killed when
    /// there are more, and the output is marked truncated).
    pub fn run_bounded(
        &self,
        cmd: &ReadCommand,
        max_lines: Option<usize>,
    ) -> Result<CmdOutput, RunError> {
        if !self.has(&cmd.program()) {
            return Ok(CmdOutput::MissingTool);
        }
        let argv = self.full_argv(cmd);
        let err = |source| RunError {
            cmd: argv.join(" "),
            source,
        };
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .env("PATH", &self.path)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(err)?;
        let mut stderr_pipe = child.stderr.take();
        let stderr_thread = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = stderr_pipe.as_mut() {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                s = String::from_utf8_lossy(&buf).into_owned();
            }
            s
        });
        let mut stdout = Vec::new();
        let mut truncated = false;
        if let Some(out) = child.stdout.take() {
            let mut reader = BufReader::new(out);
            let mut lines = 0usize;
            loop {
                let mut line = Vec::new();
                let n = reader.read_until(b'\n', &mut line).map_err(err)?;
                if n == 0 {
                    break;
                }
                if max_lines.is_some_and(|m| lines >= m) {
                    truncated = true;
                    // our own child, by its handle
                    let _ = child.kill();
                    break;
                }
                stdout.extend_from_slice(&line);
                lines += 1;
            }
        }
        let status = child.wait().map_err(err)?;
        let stderr = stderr_thread.join().unwrap_or_default();
        Ok(CmdOutput::Ran {
            code: status.code(),
            stdout,
            stderr,
            truncated,
        })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command of the allow-list, with its words checked against what writes state.
    #[test]
    fn every_command_is_a_read() {
        let keys = vec![SysctlKey::new("net.ipv4.ip_forward").unwrap()];
        let mut all = vec![
            ReadCommand::NftListRuleset,
            ReadCommand::IpsetSave,
            ReadCommand::IpvsadmSave,
            ReadCommand::IpLink,
            ReadCommand::IpAddr,
            ReadCommand::IpNeigh,
            ReadCommand::Sysctl(keys),
            ReadCommand::Bgpd(BgpdShow::Neighbors, "/run/bgpd.sock".into()),
            ReadCommand::Bgpd(BgpdShow::Routes, "/run/bgpd.sock".into()),
        ];
        for f in [Family::V4, Family::V6] {
            all.push(ReadCommand::IpRoute(f));
            all.push(ReadCommand::IpRule(f));
            all.push(ReadCommand::ConntrackList(f));
            for b in [Backend::Nft, Backend::Legacy] {
                all.push(ReadCommand::IptablesSave(b, f));
            }
        }
        all.extend(Tool::ALL.map(ReadCommand::Version));
        let writes = [
            "-w", "-F", "-X", "-D", "-I", "-A", "-R", "-Z", "-E", "-C", "-U", "add", "del",
            "delete", "flush", "replace", "change", "append", "set", "restore", "insert", "create",
            "destroy", "swap", "rename", "-f", "-N", "--flush", "--delete",
        ];
        for c in &all {
            let argv = c.argv();
            let words: &[String] = &argv[1..];
            for w in words {
                // `-f ipv4` selects conntrack's family; `-L` lists
                if w == "-f" && argv[0] == "conntrack" {
                    continue;
                }
                assert!(!writes.contains(&w.as_str()), "{argv:?} has {w}");
                assert!(!w.contains('='), "{argv:?}");
            }
            let reads = [
                "-save",
                "show",
                "list",
                "save",
                "-Sn",
                "-L",
                "--version",
                "-V",
                "-e",
            ];
            assert!(
                argv.iter().any(|w| reads.iter().any(|r| w.ends_with(r))),
                "{argv:?} does not say it reads"
            );
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(Target::netns("lab-1a2b-node1").is_ok());
        for bad in ["-n", "", "a/b", "..", "x y"] {
            assert!(Target::netns(bad).is_err(), "{bad}");
        }
        assert!(SysctlKey::new("net.ipv4.conf.eth0/100.rp_filter").is_ok());
        for bad in ["net.ipv4.ip_forward=1", "-w", "kernel.hostname", "net..x"] {
            assert!(SysctlKey::new(bad).is_err(), "{bad}");
        }
        let r = Runner::new(Target::netns("ns1").unwrap());
        assert_eq!(
            r.command_line(&ReadCommand::IpRoute(Family::V6)),
            "ip netns exec ns1 ip -j -6 route show table all"
        );
    }

    #[test]
    fn bounded_output_is_cut() {
        // `ip -V` is one line: a bound of 0 keeps nothing and says so
        let r = Runner::new(Target::Here);
        if !r.has("ip") {
            return;
        }
        match r
            .run_bounded(&ReadCommand::Version(Tool::Ip), Some(0))
            .unwrap()
        {
            CmdOutput::Ran {
                stdout, truncated, ..
            } => {
                assert!(stdout.is_empty());
                assert!(truncated);
            }
            CmdOutput::MissingTool => panic!("ip is installed"),
        }
    }
}
