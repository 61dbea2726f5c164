//! Running kernel work inside another network namespace: a scoped thread joins the namespace
//! (`setns(CLONE_NEWNET)`, as `ip netns exec` does for a process), runs the closure, ends.
//! Programs it starts (`iptables-restore`) and sockets it opens (ctnetlink) belong to that
//! namespace. For benches and tools that sync into a namespace they created; the daemon
//! itself runs inside the node's namespace and needs none of this.
//!
//! ```text
//!   in_netns("/run/netns/NAME", || proxier.sync(..)) ──thread──> setns ──> f() ──> result
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// Why the namespace could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// The path (`/run/netns/NAME` or `/proc/PID/ns/net`).
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `setns` refused (not root, not a network namespace).
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// The path.
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },
    /// The thread could not be started.
    #[error("cannot start a thread for network namespace {path}: {source}")]
    Thread {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The path of a namespace named by `ip netns add NAME`.
pub fn named(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Runs `f` on a new thread inside the network namespace at `path` and returns its result;
/// a panic in `f` is resumed on the caller. The calling thread's namespace is untouched.
pub fn in_netns<T, F>(path: &Path, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let file = File::open(path).map_err(|source| NetnsError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(s, move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
                    path: path.to_path_buf(),
                    source,
                })?;
                Ok(f())
            })
            .map_err(|source| NetnsError::Thread {
                path: path.to_path_buf(),
                source,
            })?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
