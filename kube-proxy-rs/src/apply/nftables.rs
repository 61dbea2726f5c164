//! The only code that touches the kernel's nftables for nftables mode: a small
//! [`NftWriter`] trait, the real writer running `nft` ([`NftExec`]) and a recording fake
//! ([`FakeNft`]) for tests without root.
//!
//! ```text
//!   sync::NftProxier ──apply(script)──> nft -f -                    (one atomic transaction)
//!                    ──list_table()──> nft -j list table ip kube-proxy ──> dataplane::nft::Table
//!                    ──table_exists()> nft list chain ip kube-proxy mark-for-masquerade (canary)
//!   cleanup          ──delete_table()> nft delete table ip kube-proxy
//! ```
//! Each writer serves one family (`ip` or `ip6` table), in the network namespace of the
//! calling thread.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use dataplane::Family;
use dataplane::nft::{Ruleset, Table};

use super::{ApplyError, RestoreFailure};
use crate::render::nftables::{TABLE, names, nft_family};

/// Writes one family's kube-proxy nftables table.
pub trait NftWriter: Send {
    /// The family this writer serves.
    fn family(&self) -> Family;

    /// `nft -f -` with `script` on stdin: all of it or nothing.
    fn apply(&mut self, script: &str) -> Result<(), ApplyError>;

    /// `nft -j list table FAMILY kube-proxy`, parsed; `None` when the table does not exist.
    fn list_table(&mut self) -> Result<Option<Table>, ApplyError>;

    /// Whether the table and its `mark-for-masquerade` chain exist (`nft list chain …`; the
    /// canary of nftables mode, cheap at any table size).
    fn table_exists(&mut self) -> Result<bool, ApplyError>;

    /// `nft delete table FAMILY kube-proxy` when it exists; whether it existed.
    fn delete_table(&mut self) -> Result<bool, ApplyError>;
}

/// Runs `/usr/sbin/nft` (from `$PATH`).
#[derive(Debug, Clone)]
pub struct NftExec {
    family: Family,
}

impl NftExec {
    /// A writer of `family`'s table.
    pub fn new(family: Family) -> NftExec {
        NftExec { family }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, ApplyError> {
        let spawn = |source| ApplyError::Spawn {
            program: "nft".into(),
            source,
        };
        let mut child = Command::new("nft")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn)?;
        if let Some(input) = stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            // nft exits early on a syntax error and closes the pipe; its stderr says why.
            let _ = pipe.write_all(input.as_bytes());
        }
        child.wait_with_output().map_err(spawn)
    }

    fn fam(&self) -> &'static str {
        nft_family(self.family).as_str()
    }
}

fn failed(args: &[&str], o: &Output) -> ApplyError {
    ApplyError::Command {
        command: format!("nft {}", args.join(" ")),
        status: match o.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".into(),
        },
        stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
    }
}

/// The 1-based input line an `nft -f` error names (`/dev/stdin:12:5-9: Error: …`).
pub fn nft_error_line(stderr: &str) -> Option<usize> {
    stderr.lines().find_map(|l| {
        let rest = l.split_once("stdin:").map(|(_, r)| r)?;
        rest.split(':').next()?.parse().ok()
    })
}

fn missing(o: &Output) -> bool {
    let e = String::from_utf8_lossy(&o.stderr);
    e.contains("No such file or directory") || e.contains("does not exist")
}

impl NftWriter for NftExec {
    fn family(&self) -> Family {
        self.family
    }

    fn apply(&mut self, script: &str) -> Result<(), ApplyError> {
        let o = self.run(&["-f", "-"], Some(script))?;
        if o.status.success() {
            return Ok(());
        }
        let message = String::from_utf8_lossy(&o.stderr).trim().to_string();
        Err(ApplyError::Restore(
            RestoreFailure {
                program: "nft -f -".into(),
                line: nft_error_line(&message),
                line_text: None,
                message,
            }
            .with_input(script),
        ))
    }

    fn list_table(&mut self) -> Result<Option<Table>, ApplyError> {
        let args = ["-j", "list", "table", self.fam(), TABLE];
        let o = self.run(&args, None)?;
        if !o.status.success() {
            if missing(&o) {
                return Ok(None);
            }
            return Err(failed(&args, &o));
        }
        let text = String::from_utf8_lossy(&o.stdout);
        let rs = Ruleset::from_json(&text).map_err(|e| ApplyError::Parse {
            command: args.join(" "),
            message: e.to_string(),
        })?;
        Ok(rs.tables.into_iter().next())
    }

    fn table_exists(&mut self) -> Result<bool, ApplyError> {
        let args = [
            "list",
            "chain",
            self.fam(),
            TABLE,
            names::MARK_FOR_MASQUERADE,
        ];
        let o = self.run(&args, None)?;
        match o.status.success() {
            true => Ok(true),
            false if missing(&o) => Ok(false),
            false => Err(failed(&args, &o)),
        }
    }

    fn delete_table(&mut self) -> Result<bool, ApplyError> {
        let args = ["delete", "table", self.fam(), TABLE];
        let o = self.run(&args, None)?;
        match o.status.success() {
            true => Ok(true),
            false if missing(&o) => Ok(false),
            false => Err(failed(&args, &o)),
        }
    }
}

/// A fake [`NftWriter`] that records each script and can refuse the next one.
#[derive(Debug, Clone, Default)]
pub struct FakeNft {
    /// The family.
    pub family: Option<Family>,
    /// Every script applied (refused ones too), in order.
    pub scripts: Vec<String>,
    /// What `list_table` returns.
    pub listed: Option<Table>,
    /// How many times the table was listed.
    pub lists: usize,
    /// Refuse the next `apply` with this message.
    pub fail_next: Option<String>,
}

impl FakeNft {
    /// A fake of `family`.
    pub fn new(family: Family) -> FakeNft {
        FakeNft {
            family: Some(family),
            ..FakeNft::default()
        }
    }
}

impl NftWriter for FakeNft {
    fn family(&self) -> Family {
        self.family.unwrap_or(Family::V4)
    }

    fn apply(&mut self, script: &str) -> Result<(), ApplyError> {
        self.scripts.push(script.to_string());
        match self.fail_next.take() {
            Some(message) => Err(ApplyError::Restore(RestoreFailure {
                program: "fake nft".into(),
                line: None,
                line_text: None,
                message,
            })),
            None => Ok(()),
        }
    }

    fn list_table(&mut self) -> Result<Option<Table>, ApplyError> {
        self.lists += 1;
        Ok(self.listed.clone())
    }

    fn table_exists(&mut self) -> Result<bool, ApplyError> {
        Ok(!self.scripts.is_empty())
    }

    fn delete_table(&mut self) -> Result<bool, ApplyError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_of_nft_stderr() {
        let e = "/dev/stdin:3:11-19: Error: No such file or directory; did you mean chain 'x'?\n\
                 add rule ip kube-proxy y ip daddr 1.2.3.4\n          ^^^^^^^^^";
        assert_eq!(nft_error_line(e), Some(3));
        assert_eq!(nft_error_line("Error: Could not process rule"), None);
    }
}
