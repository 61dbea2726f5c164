//! The ipsets of IPVS mode in the kernel: `ipset save` read back, the difference with the
//! plan written with one `ipset restore -exist` (create what is missing, delete what is no
//! longer wanted, add what is new). Sets not named in the plan are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::render::ipvs::SetPlan;

use super::IpvsError;

/// Reads and writes ipsets (`ipset save`, `ipset restore -exist`).
pub trait SetWriter {
    /// `ipset save` (every set).
    fn save(&mut self) -> Result<String, IpvsError>;
    /// `ipset restore -exist` with `input`.
    fn restore(&mut self, input: &str) -> Result<(), IpvsError>;
}

/// The `ipset` program.
#[derive(Debug, Default)]
pub struct IpsetExec;

impl SetWriter for IpsetExec {
    fn save(&mut self) -> Result<String, IpvsError> {
        let out = Command::new("ipset")
            .arg("save")
            .output()
            .map_err(|source| IpvsError::Spawn {
                program: "ipset".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(IpvsError::Command {
                cmd: "ipset save".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn restore(&mut self, input: &str) -> Result<(), IpvsError> {
        let mut child = Command::new("ipset")
            .args(["restore", "-exist"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| IpvsError::Spawn {
                program: "ipset".into(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|source| IpvsError::Io {
                    op: "write to ipset restore",
                    source,
                })?;
        }
        let out = child.wait_with_output().map_err(|source| IpvsError::Io {
            op: "wait for ipset restore",
            source,
        })?;
        if !out.status.success() {
            return Err(IpvsError::Command {
                cmd: "ipset restore -exist".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}

/// The sets of `ipset save` text: name -> (create options, entries as written).
pub fn parse_save(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("create"), Some(name)) => {
                let opts: Vec<&str> = words.collect();
                out.entry(name.to_string()).or_default().0 = opts.join(" ");
            }
            (Some("add"), Some(name)) => {
                if let Some(entry) = words.next() {
                    out.entry(name.to_string())
                        .or_default()
                        .1
                        .insert(entry.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// The `ipset restore -exist` input that makes the sets of `saved` hold `want`: creates
/// first, then deletions, then additions; empty when nothing differs.
pub fn restore_input(want: &[SetPlan], saved: &str) -> String {
    let have = parse_save(saved);
    let mut creates = String::new();
    let mut dels = String::new();
    let mut adds = String::new();
    for s in want {
        let empty = BTreeSet::new();
        let cur = match have.get(&s.name) {
            Some((_, e)) => e,
            None => {
                creates.push_str(&format!("create {} {}\n", s.name, s.create));
                &empty
            }
        };
        for e in cur.difference(&s.entries) {
            dels.push_str(&format!("del {} {e}\n", s.name));
        }
        for e in s.entries.difference(cur) {
            adds.push_str(&format!("add {} {e}\n", s.name));
        }
    }
    creates + &dels + &adds
}

/// A stateful fake of the ipset tool: keeps `ipset save` text's model and applies restore
/// input as the tool would (refusing an `add` or `del` on a set that does not exist, and a
/// `destroy` of a set in [`FakeSets::in_use`]; `-exist` lets a missing set's `destroy` pass).
#[derive(Debug, Default, Clone)]
pub struct FakeSets {
    /// name -> (create options, entries).
    pub sets: BTreeMap<String, (String, BTreeSet<String>)>,
    /// Sets a kernel component (an iptables `-m set` rule) still uses.
    pub in_use: BTreeSet<String>,
    /// Every restore input, in order.
    pub restores: Vec<String>,
}

impl SetWriter for FakeSets {
    fn save(&mut self) -> Result<String, IpvsError> {
        let mut out = String::new();
        for (name, (opts, entries)) in &self.sets {
            out.push_str(&format!("create {name} {opts}\n"));
            for e in entries {
                out.push_str(&format!("add {name} {e}\n"));
            }
        }
        Ok(out)
    }

    fn restore(&mut self, input: &str) -> Result<(), IpvsError> {
        let mut next = self.sets.clone();
        for (i, line) in input.lines().enumerate() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let refuse = |why: &str| IpvsError::Command {
                cmd: "ipset restore -exist (fake)".into(),
                stderr: format!("Error in line {}: {why}", i + 1),
            };
            match w.as_slice() {
                ["create", name, opts @ ..] => {
                    next.entry(name.to_string())
                        .or_insert_with(|| (opts.join(" "), BTreeSet::new()));
                }
                ["add", name, entry, ..] => {
                    next.get_mut(*name)
                        .ok_or_else(|| refuse("The set with the given name does not exist"))?
                        .1
                        .insert(entry.to_string());
                }
                ["del", name, entry, ..] => {
                    next.get_mut(*name)
                        .ok_or_else(|| refuse("The set with the given name does not exist"))?
                        .1
                        .remove(*entry);
                }
                ["destroy", name] => {
                    if self.in_use.contains(*name) {
                        return Err(refuse(
                            "Set cannot be destroyed: it is in use by a kernel component",
                        ));
                    }
                    next.remove(*name);
                }
                [] => {}
                _ => return Err(refuse("unknown command")),
            }
        }
        self.sets = next;
        self.restores.push(input.to_string());
        Ok(())
    }
}
