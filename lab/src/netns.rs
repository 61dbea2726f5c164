//! The only code that reaches the kernel's namespaces: `ip netns add|del|pids`, `ip -n NS ...`
//! (single commands and batches), `ip netns exec NS ...`, sysctl writes, and threads that
//! `setns(2)` into a namespace to run a Rust closure.
//!
//! ```text
//!   lab / host ---> ip netns add lab-<id>-<host>          (root context: namespace files only)
//!              ---> ip -n lab-<id>-<host> link|addr|route  (inside the namespace)
//!              ---> ip netns exec lab-<id>-<host> CMD      (a program inside the namespace)
//!              ---> thread: setns(/run/netns/NAME) -> closure (sockets, /proc/sys/net)
//! ```
//! Nothing here adds a link, address, route or rule in the root namespace: every configuring
//! command carries `-n <our namespace>`.

use std::fs::File;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use nix::sched::{CloneFlags, setns};

use crate::error::{LabError, Result};

/// Where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/run/netns";

/// Renders a command line for messages.
pub(crate) fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion, returning its output whatever its exit status.
pub(crate) fn output(mut cmd: Command) -> Result<Output> {
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|source| LabError::Spawn {
        cmd: cmdline(&cmd),
        source,
    })
}

/// Runs a command to completion and fails unless it exits 0.
pub(crate) fn checked(cmd: Command) -> Result<Output> {
    let line = cmdline(&cmd);
    let out = output(cmd)?;
    check_status(line, out)
}

pub(crate) fn check_status(cmd: String, out: Output) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `ip netns add NAME`.
pub(crate) fn add(name: &str) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "add", name]);
    checked(cmd).map(drop)
}

/// `ip netns del NAME`; a namespace that is already gone is not an error.
pub(crate) fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "del", name]);
    match checked(cmd) {
        Err(_) if !exists(name) => Ok(()),
        other => other.map(drop),
    }
}

/// Whether `/run/netns/NAME` exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new(NETNS_DIR).join(name).exists()
}

/// Every namespace name under /run/netns (what `ip netns list` shows).
pub fn list() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `ip netns pids NAME`: the processes living in a namespace.
pub(crate) fn pids(name: &str) -> Vec<i32> {
    if !exists(name) {
        return Vec::new();
    }
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "pids", name]);
    match output(cmd) {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `ip -n NS ARGS...`.
pub(crate) fn ip(ns: &str, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("ip");
    cmd.arg("-n").arg(ns).args(args);
    let out = checked(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n NS -batch -` with one command per line; stops at the first failing line and names it.
pub(crate) fn ip_batch(ns: &str, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    cmd.args(["-n", ns, "-batch", "-"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = cmdline(&cmd);
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
        cmd: line.clone(),
        source,
    })?;
    let text = lines.join("\n") + "\n";
    if let Some(mut stdin) = child.stdin.take() {
        // a write error shows up as the command's own failure below
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| LabError::Spawn { cmd: line, source })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // iproute2 says "Command failed -:N" for the failing line N
    let failed = stderr
        .rsplit_once("Command failed -:")
        .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        .and_then(|n| lines.get(n.wrapping_sub(1)));
    Err(LabError::Command {
        cmd: match failed {
            Some(l) => format!("ip -n {ns} {l}"),
            None => format!("ip -n {ns} -batch -"),
        },
        status: out.status.to_string(),
        stderr,
    })
}

/// `ip netns exec NS ARGV...` as a [`Command`] not yet started.
pub(crate) fn exec_cmd(ns: &str, argv: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(argv);
    cmd
}

/// Runs `f` on a fresh thread that has joined namespace `ns` with `setns(2)`; the thread ends
/// with the closure, so nothing else ever runs in that namespace by accident. A panic in `f`
/// is resumed in the caller.
pub(crate) fn run_in<F, T>(ns: &str, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let path = std::path::Path::new(NETNS_DIR).join(ns);
    let file = File::open(&path).map_err(|e| LabError::io("open netns", &path, e))?;
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name(format!("netns {ns}"))
            .spawn_scoped(s, move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| LabError::Sys {
                    op: "setns",
                    source,
                })?;
                Ok(f())
            })
            .map_err(|source| LabError::Thread {
                netns: ns.to_string(),
                source,
            })?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Joins namespace `ns` on the calling thread. Only for threads the lab spawned itself and that
/// stay in that namespace until they end (the echo server's).
pub(crate) fn enter(ns: &str) -> Result<()> {
    let path = std::path::Path::new(NETNS_DIR).join(ns);
    let file = File::open(&path).map_err(|e| LabError::io("open netns", &path, e))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| LabError::Sys {
        op: "setns",
        source,
    })
}

/// Writes network sysctls inside namespace `ns` (`sysctl -w net.x.y=v` there). Only `net.*`
/// keys are accepted: the others are not per namespace and would change the host.
pub(crate) fn sysctls(ns: &str, kv: &[(String, String)]) -> Result<()> {
    for (k, v) in kv {
        check_sysctl_key(k)?;
        if v.contains('\n') {
            return Err(LabError::BadSpec {
                what: "sysctl",
                text: format!("{k}={v}"),
                why: "one line expected".into(),
            });
        }
    }
    let kv = kv.to_vec();
    run_in(ns, move || -> Result<()> {
        for (k, v) in &kv {
            let path = std::path::PathBuf::from("/proc/sys").join(k.replace('.', "/"));
            std::fs::write(&path, v.as_bytes())
                .map_err(|e| LabError::io("write sysctl", &path, e))?;
        }
        Ok(())
    })?
}

/// Accepts `net.` keys made of `[A-Za-z0-9_-]` words separated by dots.
pub(crate) fn check_sysctl_key(k: &str) -> Result<()> {
    let words_ok = k.split('.').all(|w| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if k.starts_with("net.") && words_ok {
        Ok(())
    } else {
        Err(LabError::BadSpec {
            what: "sysctl",
            text: k.to_string(),
            why: "expected a per-namespace `net.` key such as net.ipv4.ip_forward".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_net_sysctls() {
        assert!(check_sysctl_key("net.ipv4.ip_forward").is_ok());
        assert!(check_sysctl_key("net.ipv4.conf.cali0123-4.proxy_arp").is_ok());
        assert!(check_sysctl_key("kernel.panic").is_err());
        assert!(check_sysctl_key("net.ipv4..x").is_err());
        assert!(check_sysctl_key("net/../kernel").is_err());
    }
}
