//! Long-lived programs inside a host: started with `ip netns exec` as the leader of a new
//! process group, stdout/stderr captured to files in the lab dir, stopped by PID (SIGTERM to
//! the group, SIGKILL after a grace period) when their [`Process`] or their lab is dropped.
//!
//! ```text
//!   Host::spawn(argv) -> Process { pid } ...... lab registry { pid -> Child, PidRecord }
//!   drop(Process) | drop(Lab) -> take the Child out of the registry -> TERM .. grace .. KILL -> wait
//! ```
//! The `Child` lives in the registry, so exactly one party reaps it and no PID is signalled
//! after it was reaped (and possibly reused).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;

use crate::error::{LabError, Result};
use crate::lab::Shared;
use crate::netns;
use crate::state::{self, PidRecord};

/// Options for [`crate::Host::spawn_with`].
#[derive(Debug, Clone)]
pub struct SpawnOpts {
    /// A short name for logs and the state file (default: the program's file name).
    pub name: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory (default: the lab dir).
    pub cwd: Option<PathBuf>,
    /// How long to wait after SIGTERM before SIGKILL.
    pub grace: Duration,
}

impl Default for SpawnOpts {
    fn default() -> Self {
        SpawnOpts {
            name: None,
            env: Vec::new(),
            cwd: None,
            grace: Duration::from_secs(2),
        }
    }
}

pub(crate) struct ProcEntry {
    pub(crate) child: Child,
    pub(crate) record: PidRecord,
    pub(crate) grace: Duration,
}

/// A program running in a host. Dropping it stops it.
pub struct Process {
    sh: Arc<Shared>,
    pid: i32,
    name: String,
    host: String,
    out: PathBuf,
    err: PathBuf,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("name", &self.name)
            .field("host", &self.host)
            .finish()
    }
}

pub(crate) fn spawn(
    sh: &Arc<Shared>,
    host: &str,
    ns: &str,
    argv: &[&str],
    opts: &SpawnOpts,
) -> Result<Process> {
    let Some(prog) = argv.first() else {
        return Err(LabError::BadSpec {
            what: "command",
            text: String::new(),
            why: "empty argv".into(),
        });
    };
    let name = opts.name.clone().unwrap_or_else(|| {
        Path::new(prog)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| prog.to_string())
    });
    let n = sh.lock().logs.len();
    let out = sh.dir.join(format!("{host}.{name}.{n}.out"));
    let err = sh.dir.join(format!("{host}.{name}.{n}.err"));
    let fo = File::create(&out).map_err(|e| LabError::io("create", &out, e))?;
    let fe = File::create(&err).map_err(|e| LabError::io("create", &err, e))?;
    let mut cmd = netns::exec_cmd(ns, argv);
    cmd.stdin(Stdio::null())
        .stdout(fo)
        .stderr(fe)
        .process_group(0);
    cmd.current_dir(opts.cwd.as_deref().unwrap_or(&sh.dir));
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    let line = netns::cmdline(&cmd);
    let child = cmd
        .spawn()
        .map_err(|source| LabError::Spawn { cmd: line, source })?;
    let pid = child.id() as i32;
    let record = PidRecord {
        pid,
        start: state::start_time(pid).unwrap_or(0),
        host: host.to_string(),
        name: name.clone(),
    };
    {
        let mut st = sh.lock();
        st.logs
            .push((format!("{host}/{name} (pid {pid}) stdout"), out.clone()));
        st.logs
            .push((format!("{host}/{name} (pid {pid}) stderr"), err.clone()));
        st.procs.insert(
            pid,
            ProcEntry {
                child,
                record,
                grace: opts.grace,
            },
        );
    }
    sh.save()?;
    Ok(Process {
        sh: Arc::clone(sh),
        pid,
        name,
        host: host.to_string(),
        out,
        err,
    })
}

impl Process {
    /// The PID (also the process group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The short name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host it runs in.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The file its stdout goes to.
    pub fn stdout_path(&self) -> &Path {
        &self.out
    }

    /// The file its stderr goes to.
    pub fn stderr_path(&self) -> &Path {
        &self.err
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Both outputs with headers, for an assertion message.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stdout\n{}--- {} stderr\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    /// Its exit status if it has ended (the lab reaps it), None while it runs.
    pub fn try_status(&self) -> Option<ExitStatus> {
        let mut st = self.sh.lock();
        let entry = st.procs.get_mut(&self.pid)?;
        entry.child.try_wait().ok().flatten()
    }

    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        let mut st = self.sh.lock();
        match st.procs.get_mut(&self.pid) {
            Some(e) => matches!(e.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits up to `timeout` for it to end by itself.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal to its process group (only while it has not been reaped).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        let mut st = self.sh.lock();
        let Some(e) = st.procs.get_mut(&self.pid) else {
            return Ok(());
        };
        if matches!(e.child.try_wait(), Ok(None)) {
            killpg(Pid::from_raw(self.pid), sig)
                .map_err(|source| LabError::Sys { op: "kill", source })?;
        }
        Ok(())
    }

    /// Stops it now (SIGTERM, SIGKILL after the grace period) and returns how it ended.
    pub fn stop(self) -> Option<ExitStatus> {
        self.stop_inner()
    }

    fn stop_inner(&self) -> Option<ExitStatus> {
        let entry = self.sh.lock().procs.remove(&self.pid)?;
        let status = terminate(vec![entry]).pop().and_then(|(_, s)| s);
        let _ = self.sh.save();
        status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// SIGTERM to every group still running, SIGKILL to those left after their grace period,
/// then reap all. Returns each PID with its exit status.
pub(crate) fn terminate(mut procs: Vec<ProcEntry>) -> Vec<(i32, Option<ExitStatus>)> {
    let mut done: Vec<(i32, Option<ExitStatus>)> = Vec::new();
    let start = Instant::now();
    for p in &mut procs {
        if matches!(p.child.try_wait(), Ok(None)) {
            let _ = killpg(Pid::from_raw(p.record.pid), Signal::SIGTERM);
        }
    }
    while !procs.is_empty() {
        let mut still = Vec::new();
        for mut p in procs {
            match p.child.try_wait() {
                Ok(Some(s)) => done.push((p.record.pid, Some(s))),
                Ok(None) if start.elapsed() >= p.grace => {
                    let _ = killpg(Pid::from_raw(p.record.pid), Signal::SIGKILL);
                    done.push((p.record.pid, p.child.wait().ok()));
                }
                Ok(None) => still.push(p),
                Err(_) => done.push((p.record.pid, None)),
            }
        }
        procs = still;
        if !procs.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    done
}

/// Prints the last lines of every captured output, for a test that is failing.
pub(crate) fn print_logs(lab: &str, logs: &[(String, PathBuf)]) {
    for (label, path) in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.trim().is_empty() {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        eprintln!("---- lab {lab}: {label} (last {} lines)", tail.len());
        for l in tail {
            eprintln!("{l}");
        }
    }
}
