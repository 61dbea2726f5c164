//! The real [`RuleWriter`]: runs `iptables(-legacy|-nft)`, `…-save` and `…-restore` (or the
//! `ip6tables` ones) as kube-proxy does, one process per call, waiting on the xtables lock.
//!
//! ```text
//!   restore(text) ──stdin──> {ip,ip6}tables-{legacy,nft}-restore -w 5 --noflush --counters
//!                 <─stderr── "… Error occurred at line: 4" ──> RestoreFailure { line, text }
//!   save(table)   ─────────> …-save -t TABLE
//!   ensure_chain  ─────────> … -w 5 -t TABLE -N CHAIN     (exit 1: it exists)
//!   ensure_rule_first ─────> … -C CHAIN ARGS (exit 1: missing) ──> … -I CHAIN ARGS
//! ```
//! The legacy backend serialises writers with a file lock (`/run/xtables.lock`, or
//! `$XTABLES_LOCKFILE`); before each write we try that lock once without blocking, so that
//! a wait caused by another program is logged, then let the tool wait for it (`-w`).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dataplane::Family;
use nix::fcntl::{Flock, FlockArg};

use super::backend::Backend;
use super::{ApplyError, RestoreFailure, RuleWriter};

/// Runs one family's iptables binaries of one backend.
#[derive(Debug, Clone)]
pub struct IptablesExec {
    family: Family,
    backend: Backend,
    wait: Duration,
    lock_file: PathBuf,
}

/// How long the tools wait for the xtables lock (upstream passes `-w 5`).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);

fn status_text(o: &Output) -> String {
    match o.status.code() {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".into(),
    }
}

fn stderr_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// The line of the input an `iptables-restore` error is about. The tools print `Error
/// occurred at line: N` (nft may name the `COMMIT` that failed) or `line N failed`
/// (legacy); when the message names a missing chain, the first line jumping to it is the
/// better answer.
pub fn locate_failed_line(input: &str, stderr: &str) -> Option<usize> {
    let reported = stderr.lines().find_map(|l| {
        let rest = l
            .split_once("Error occurred at line: ")
            .map(|(_, r)| r)
            .or_else(|| l.split_once(": line ").map(|(_, r)| r))?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse::<usize>()
            .ok()
    });
    // Names quoted as `NAME' or 'NAME' in "Couldn't load target `X'" / "Chain 'X' does not exist".
    let named = stderr.lines().find_map(|l| {
        ["target `", "Chain '", "chain '"].iter().find_map(|open| {
            let rest = &l[l.find(open)? + open.len()..];
            let name = &rest[..rest.find('\'')?];
            name.starts_with("KUBE-").then_some(name)
        })
    });
    if let Some(name) = named {
        let jump = format!("-j {name}");
        let goto = format!("-g {name}");
        let hit = input.lines().position(|l| {
            l.starts_with("-A ")
                && (l.ends_with(&jump)
                    || l.contains(&format!("{jump} "))
                    || l.ends_with(&goto)
                    || l.contains(&format!("{goto} ")))
        });
        if let Some(i) = hit {
            return Some(i + 1);
        }
    }
    reported
}

impl IptablesExec {
    /// A writer for `family` using `backend`'s binaries.
    pub fn new(family: Family, backend: Backend) -> IptablesExec {
        let lock_file = std::env::var_os("XTABLES_LOCKFILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/xtables.lock"));
        IptablesExec {
            family,
            backend,
            wait: DEFAULT_LOCK_WAIT,
            lock_file,
        }
    }

    /// Waits up to `wait` for the xtables lock (`-w SECONDS`, at least 1).
    pub fn with_lock_wait(mut self, wait: Duration) -> IptablesExec {
        self.wait = wait;
        self
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `iptables-nft`, `ip6tables-legacy-save`, ... (`suffix`: "", "-save", "-restore").
    pub fn program(&self, suffix: &str) -> String {
        let base = match self.family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        format!("{base}-{}{suffix}", self.backend.as_str())
    }

    fn wait_arg(&self) -> String {
        self.wait.as_secs().max(1).to_string()
    }

    /// Logs when another program holds the legacy xtables lock (we are about to wait).
    fn note_lock_holder(&self) {
        if self.backend != Backend::Legacy {
            return; // iptables-nft does not take the lock
        }
        let Ok(file) = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_file)
        else {
            return;
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => drop(lock), // free: released at once
            Err((_, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                tracing::warn!(
                    lock = %self.lock_file.display(),
                    wait_s = self.wait.as_secs(),
                    "another program holds the xtables lock; waiting for it"
                );
            }
            Err(_) => {}
        }
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, ApplyError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn = |source| ApplyError::Spawn {
            program: program.to_string(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn)?;
        if let Some(input) = stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            // A tool that exits early closes the pipe; its stderr says why.
            let _ = pipe.write_all(input.as_bytes());
        }
        child.wait_with_output().map_err(spawn)
    }

    /// Runs `iptables -w N -t TABLE ARGS…`.
    fn iptables(&self, table: &str, args: &[&str]) -> Result<Output, ApplyError> {
        let wait = self.wait_arg();
        let mut all = vec!["-w", &wait, "-t", table];
        all.extend_from_slice(args);
        self.run(&self.program(""), &all, None)
    }

    fn failed(&self, args: &[&str], o: &Output) -> ApplyError {
        ApplyError::Command {
            command: format!("{} {}", self.program(""), args.join(" ")),
            status: status_text(o),
            stderr: stderr_text(o),
        }
    }
}

impl RuleWriter for IptablesExec {
    fn family(&self) -> Family {
        self.family
    }

    fn save(&mut self, table: &str) -> Result<String, ApplyError> {
        let program = self.program("-save");
        let o = self.run(&program, &["-t", table], None)?;
        if !o.status.success() {
            return Err(ApplyError::Command {
                command: format!("{program} -t {table}"),
                status: status_text(&o),
                stderr: stderr_text(&o),
            });
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn restore(&mut self, input: &str) -> Result<(), ApplyError> {
        self.note_lock_holder();
        let program = self.program("-restore");
        let wait = self.wait_arg();
        let start = Instant::now();
        let o = self.run(
            &program,
            &["-w", &wait, "--noflush", "--counters"],
            Some(input),
        )?;
        let stderr = stderr_text(&o);
        if stderr.contains("xtables lock") {
            tracing::info!(
                waited_ms = start.elapsed().as_millis() as u64,
                "{program}: {stderr}"
            );
        }
        if o.status.success() {
            return Ok(());
        }
        Err(ApplyError::Restore(
            RestoreFailure {
                program,
                line: locate_failed_line(input, &stderr),
                line_text: None,
                message: stderr,
            }
            .with_input(input),
        ))
    }

    fn ensure_chain(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError> {
        let o = self.iptables(table, &["-N", chain])?;
        match o.status.code() {
            Some(0) => Ok(false),
            Some(1) if stderr_text(&o).contains("already exists") => Ok(true),
            _ => Err(self.failed(&["-t", table, "-N", chain], &o)),
        }
    }

    fn ensure_rule_first(
        &mut self,
        table: &str,
        chain: &str,
        args: &[&str],
    ) -> Result<bool, ApplyError> {
        let mut check = vec!["-C", chain];
        check.extend_from_slice(args);
        let o = self.iptables(table, &check)?;
        match o.status.code() {
            Some(0) => return Ok(true),
            Some(1) => {}
            _ => return Err(self.failed(&check, &o)),
        }
        let mut insert = vec!["-I", chain];
        insert.extend_from_slice(args);
        let o = self.iptables(table, &insert)?;
        if !o.status.success() {
            return Err(self.failed(&insert, &o));
        }
        Ok(false)
    }

    fn delete_rule(&mut self, table: &str, chain: &str, args: &[&str]) -> Result<bool, ApplyError> {
        let mut del = vec!["-D", chain];
        del.extend_from_slice(args);
        let o = self.iptables(table, &del)?;
        let err = stderr_text(&o);
        match o.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            // The jump's target chain is gone, so no such rule can exist.
            Some(2) if err.contains("load target") || err.contains("does not exist") => Ok(false),
            _ => Err(self.failed(&del, &o)),
        }
    }

    fn chain_exists(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError> {
        let o = self.iptables(table, &["-S", chain])?;
        match o.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failed(&["-t", table, "-S", chain], &o)),
        }
    }
}
