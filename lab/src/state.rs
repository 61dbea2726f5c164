//! The per-lab state file under `/run/lab/` and the stale-lab sweeper.
//!
//! ```text
//!   Lab (owner pid, start time) --write--> /run/lab/<id>.json { netns[], pids[], hosts[], kept }
//!   sweep_stale(): for each file whose owner is dead and that is not kept:
//!       kill its recorded pids (start time must match), kill what still lives in its
//!       namespaces, ip netns del each, remove its temp dir and the file
//! ```
//! A namespace is only ever deleted when its name starts with `lab-<id>-` of the file that
//! lists it, so a damaged file cannot reach namespaces that are not ours.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::host::{HostKind, Iface};
use crate::netns;

/// Where state files live.
pub const STATE_DIR: &str = "/run/lab";

/// What a lab writes about itself so another process can list, enter or remove it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabState {
    /// The lab's id (part of every namespace name: `lab-<id>-<host>`).
    pub id: String,
    /// Its human name (the test's or the topology's).
    pub name: String,
    /// The process that owns it; when it is dead and the lab is not kept, the lab is stale.
    pub owner_pid: i32,
    /// The owner's start time (`/proc/PID/stat` field 22), against PID reuse.
    pub owner_start: u64,
    /// Left up on purpose (`lab up`): only `lab down` removes it.
    pub kept: bool,
    /// The lab's temp dir (process logs).
    pub dir: PathBuf,
    /// Every namespace created (or about to be), in order.
    pub netns: Vec<String>,
    /// Processes started in the lab and not yet reaped.
    pub pids: Vec<PidRecord>,
    /// The hosts, their namespaces and interfaces.
    pub hosts: Vec<HostRecord>,
}

/// A process started in a lab.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PidRecord {
    /// Its PID (also its process group: it was started as a group leader).
    pub pid: i32,
    /// Its start time, to never signal a reused PID.
    pub start: u64,
    /// The host it runs in.
    pub host: String,
    /// A short name for logs.
    pub name: String,
}

/// A host as listed in the state file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostRecord {
    /// Host name.
    pub name: String,
    /// Its kind.
    pub kind: HostKind,
    /// Its namespace.
    pub netns: String,
    /// Its interfaces and addresses.
    pub ifaces: Vec<Iface>,
}

impl LabState {
    /// The state file of lab `id`.
    pub fn path(id: &str) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{id}.json"))
    }

    /// Writes the file atomically (temp file, then rename).
    pub fn write(&self) -> Result<()> {
        let path = Self::path(&self.id);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| LabError::State {
            path: path.clone(),
            why: e.to_string(),
        })?;
        fs::write(&tmp, text).map_err(|e| LabError::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| LabError::io("rename", &path, e))
    }

    /// Reads one state file.
    pub fn read(path: &Path) -> Result<LabState> {
        let text = fs::read_to_string(path).map_err(|e| LabError::io("read", path, e))?;
        serde_json::from_str(&text).map_err(|e| LabError::State {
            path: path.to_path_buf(),
            why: e.to_string(),
        })
    }

    /// Reads the state of lab `id`.
    pub fn load(id: &str) -> Result<LabState> {
        let path = Self::path(id);
        if !path.exists() {
            return Err(LabError::NoLab { id: id.to_string() });
        }
        Self::read(&path)
    }

    /// Whether the owning process still runs (same PID and same start time).
    pub fn owner_alive(&self) -> bool {
        start_time(self.owner_pid) == Some(self.owner_start)
    }

    /// Stale: not kept, and its owner is gone (crashed or killed without cleanup).
    pub fn is_stale(&self) -> bool {
        !self.kept && !self.owner_alive()
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&HostRecord> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

/// Every state file under /run/lab, sorted by id; unreadable ones come with their error.
pub fn list_labs() -> Vec<(PathBuf, Result<LabState>)> {
    let Ok(dir) = fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let st = LabState::read(&p);
            (p, st)
        })
        .collect()
}

/// `/proc/PID/stat` field 22 (start time in clock ticks since boot), or None if no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and parentheses: split after the last ')'
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The state dir, created if missing (root only).
pub(crate) fn ensure_dir() -> Result<()> {
    fs::create_dir_all(STATE_DIR).map_err(|e| LabError::io("create", STATE_DIR, e))
}

/// Holds /run/lab/.lock exclusively while sweeping or tearing down from a state file.
pub(crate) fn lock() -> Result<Flock<File>> {
    ensure_dir()?;
    let path = Path::new(STATE_DIR).join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LabError::io("open", &path, e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| LabError::Sys {
        op: "flock /run/lab/.lock",
        source,
    })
}

/// Removes every stale lab (not kept, owner dead) and returns their ids. Labs whose owner
/// runs, and kept labs, are left alone.
pub fn sweep_stale() -> Result<Vec<String>> {
    let _guard = lock()?;
    let mut removed = Vec::new();
    // unreadable files (half written, foreign) are left alone: they may be someone's
    for (_, st) in list_labs() {
        if let Ok(st) = st
            && st.is_stale()
        {
            teardown(&st);
            removed.push(st.id);
        }
    }
    Ok(removed)
}

/// Removes lab `id` from its state file whatever its owner (for `lab down NAME`).
/// Refuses when its owner is alive and it is not kept, unless `force`.
pub fn down(id: &str, force: bool) -> Result<LabState> {
    let _guard = lock()?;
    let st = LabState::load(id)?;
    if !st.kept && st.owner_alive() && !force {
        return Err(LabError::State {
            path: LabState::path(id),
            why: format!("lab is in use by running process {}", st.owner_pid),
        });
    }
    teardown(&st);
    Ok(st)
}

/// Kills, deletes and removes everything a state file lists. Best effort: it goes on past
/// errors so that a half-built lab is still cleaned.
pub(crate) fn teardown(st: &LabState) {
    let ours = |ns: &str| ns.starts_with(&format!("lab-{}-", st.id));
    // 1. recorded process groups, only if the PID still is the process we started
    let live: Vec<i32> = st
        .pids
        .iter()
        .filter(|p| start_time(p.pid) == Some(p.start))
        .map(|p| p.pid)
        .collect();
    for pid in &live {
        let _ = killpg(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    wait_gone(&live, Duration::from_millis(500));
    for pid in &live {
        if pid_alive(*pid) {
            let _ = killpg(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
    // 2. whatever still lives inside our namespaces (daemons that forked away)
    for ns in st.netns.iter().filter(|n| ours(n)) {
        kill_all_in(ns);
    }
    // 3. the namespaces: their veths and bridges go with them
    for ns in st.netns.iter().filter(|n| ours(n)) {
        let _ = netns::delete(ns);
    }
    // 4. the temp dir, only if it is the lab's own
    if is_lab_dir(&st.dir, &st.id) {
        let _ = fs::remove_dir_all(&st.dir);
    }
    let _ = fs::remove_file(LabState::path(&st.id));
}

/// SIGKILLs every process living in namespace `ns` (a namespace this crate created).
pub(crate) fn kill_all_in(ns: &str) {
    let pids = netns::pids(ns);
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    wait_gone(&pids, Duration::from_millis(500));
}

fn wait_gone(pids: &[i32], max: Duration) {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if pids
            .iter()
            .all(|p| start_time(*p).is_none() || is_zombie(*p))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` is a running process (neither gone nor a zombie waiting to be reaped).
pub fn pid_alive(pid: i32) -> bool {
    start_time(pid).is_some() && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| {
            t.rfind(')')
                .map(|i| t[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The temp dir of lab `id`: `$TMPDIR/lab-<id>`.
pub(crate) fn lab_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lab-{id}"))
}

fn is_lab_dir(dir: &Path, id: &str) -> bool {
    dir == lab_dir(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_and_of_nobody() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(me), start_time(me));
        assert_eq!(start_time(0), None);
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn stale_means_not_kept_and_owner_dead() {
        let me = std::process::id() as i32;
        let mut st = LabState {
            id: "x".into(),
            name: "x".into(),
            owner_pid: me,
            owner_start: start_time(me).unwrap(),
            kept: false,
            dir: lab_dir("x"),
            netns: vec![],
            pids: vec![],
            hosts: vec![],
        };
        assert!(!st.is_stale());
        st.owner_start += 1; // same PID, another process: reused PID
        assert!(st.is_stale());
        st.kept = true;
        assert!(!st.is_stale());
    }
}
