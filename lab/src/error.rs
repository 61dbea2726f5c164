//! The lab's error type: what failed (a command, a name, the plan, a topology line), with the
//! context needed to fix it. Flows out of every fallible lab call.

use std::path::PathBuf;

use crate::plan::PlanError;
use crate::topology::TopologyError;

/// Errors of the lab crate.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab needs root (network namespaces, veths, bridges).
    #[error(
        "the lab needs root (it creates network namespaces): run as root, e.g. `sudo -E cargo test`"
    )]
    NotRoot,
    /// A command could not be started.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command ran and exited non-zero.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status, as text (`exit status: 2`, `signal: 9`).
        status: String,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`create`, `write`, `open netns`).
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        /// The call (`setns`, `kill`).
        op: &'static str,
        /// The errno.
        source: nix::Error,
    },
    /// A socket operation of the lab's own servers failed.
    #[error("{op} {addr}: {source}")]
    Socket {
        /// The call (`bind`, `listen`).
        op: &'static str,
        /// The address concerned.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A name is malformed.
    #[error("bad {what} name `{name}`: {why}")]
    BadName {
        /// host, segment, lab, interface.
        what: &'static str,
        /// The name given.
        name: String,
        /// What is expected.
        why: &'static str,
    },
    /// A name is already used in this lab.
    #[error("{what} `{name}` already exists in lab {lab}")]
    Duplicate {
        /// host, segment, lab.
        what: &'static str,
        /// The name.
        name: String,
        /// The lab's id.
        lab: String,
    },
    /// A name is unknown in this lab.
    #[error("no {what} `{name}` in lab {lab}")]
    Unknown {
        /// host, segment, interface, lab.
        what: &'static str,
        /// The name.
        name: String,
        /// The lab's id.
        lab: String,
    },
    /// No lab with that id is up.
    #[error("no lab `{id}` is up (see `lab list`)")]
    NoLab {
        /// The id asked for.
        id: String,
    },
    /// The host cannot play that part (a pod's node must be a node, a pod joins no segment).
    #[error("{host} is a {kind}: {why}")]
    WrongKind {
        /// The host.
        host: String,
        /// Its kind.
        kind: &'static str,
        /// What was asked of it.
        why: &'static str,
    },
    /// The host has no address of that family.
    #[error("{host} has no {family} address")]
    NoAddress {
        /// The host.
        host: String,
        /// IPv4 or IPv6.
        family: &'static str,
    },
    /// An address or index outside the address plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A route or address given as text is malformed.
    #[error("bad {what} `{text}`: {why}")]
    BadSpec {
        /// route, address, sysctl.
        what: &'static str,
        /// The text.
        text: String,
        /// What is expected.
        why: String,
    },
    /// A topology file is invalid.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The state file of a lab is unreadable.
    #[error("state file {path}: {why}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The build was interrupted (Ctrl-C) and torn down.
    #[error("interrupted; everything created so far was removed")]
    Interrupted,
    /// A closure run inside a host's network namespace could not start.
    #[error("thread in netns {netns}: {source}")]
    Thread {
        /// The namespace.
        netns: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl LabError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The lab's result type.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
