//! The only code that touches the kernel's iptables: a small [`RuleWriter`] trait, the real
//! writer running the iptables binaries ([`exec::IptablesExec`]), backend detection
//! ([`backend`]) and a stateful fake ([`fake::FakeWriter`]) for tests without root.
//!
//! ```text
//!   sync::Proxier ──restore(text)──────────> iptables-restore --noflush --counters -w
//!                 ──save(table)────────────> iptables-save -t nat       (stale chains)
//!                 ──ensure_chain/ensure_rule_first──> iptables -N / -C / -I  (full syncs)
//!                 ──chain_exists───────────> iptables -S KUBE-PROXY-CANARY (canaries)
//!   --cleanup     ──cleanup(writer)────────> -D jumps, flush + -X every KUBE-* chain of ours
//!   sync::NftProxier ──nftables::NftWriter──> nft -f - / nft -j list table (nftables mode)
//! ```
//! Each writer serves one family (`iptables` or `ip6tables`) of one backend, in the network
//! namespace of the calling thread ([`netns::in_netns`] runs work in another one).

pub mod backend;
pub mod exec;
pub mod fake;
pub mod ipvs;
pub mod netns;
pub mod nftables;

use std::fmt;

use dataplane::Family;

use crate::render::iptables::{
    CANARY_CHAIN, CANARY_TABLES, JUMP_RULES, JumpRule, is_service_chain,
};

pub use backend::{Backend, BackendChoice, detect_backend};
pub use exec::IptablesExec;
pub use fake::FakeWriter;

/// A restore the kernel (or the fake) refused, with the offending line of our input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreFailure {
    /// The program (`iptables-nft-restore`, or `fake` for the fake).
    pub program: String,
    /// The 1-based line of the input the error names, when it names one.
    pub line: Option<usize>,
    /// That line's text.
    pub line_text: Option<String>,
    /// What the program said (its stderr, trimmed), or the fake's error.
    pub message: String,
}

impl fmt::Display for RestoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refused the input", self.program)?;
        if let Some(l) = self.line {
            write!(f, " at line {l}")?;
        }
        if let Some(t) = &self.line_text {
            write!(f, " ({t:?})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl RestoreFailure {
    /// Fills in `line_text` from the input that was restored.
    pub fn with_input(mut self, input: &str) -> RestoreFailure {
        if self.line_text.is_none()
            && let Some(l) = self.line
            && let Some(text) = input.lines().nth(l.saturating_sub(1))
        {
            self.line_text = Some(text.to_string());
        }
        self
    }
}

/// Why a kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The program could not be started (not installed, no permission).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error from exec.
        source: std::io::Error,
    },
    /// A command exited with an error (other than a restore's refusal).
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// The exit status as text (`exit status 2`, `signal 9`).
        status: String,
        /// Its stderr, trimmed.
        stderr: String,
    },
    /// `iptables-restore` (or `nft -f`) refused the input; nothing of the refused table was
    /// changed.
    #[error("{0}")]
    Restore(RestoreFailure),
    /// A listing could not be parsed (`nft -j list table …`).
    #[error("cannot parse the output of `{command}`: {message}")]
    Parse {
        /// The command line.
        command: String,
        /// What the parser said.
        message: String,
    },
}

/// Writes one family's iptables rules (upstream `utiliptables.Interface`, the calls
/// kube-proxy's iptables mode makes).
pub trait RuleWriter {
    /// The family this writer serves.
    fn family(&self) -> Family;

    /// `iptables-save -t TABLE`.
    fn save(&mut self, table: &str) -> Result<String, ApplyError>;

    /// `iptables-restore --noflush --counters` with `input` on stdin: chains declared in the
    /// input are replaced, others are left alone; each table is committed atomically.
    fn restore(&mut self, input: &str) -> Result<(), ApplyError>;

    /// `iptables -t TABLE -N CHAIN` unless the chain exists; whether it existed.
    fn ensure_chain(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError>;

    /// `iptables -t TABLE -C CHAIN ARGS`, then `-I CHAIN ARGS` (insert first) when missing;
    /// whether it existed.
    fn ensure_rule_first(
        &mut self,
        table: &str,
        chain: &str,
        args: &[&str],
    ) -> Result<bool, ApplyError>;

    /// `iptables -t TABLE -D CHAIN ARGS`; whether a rule was deleted (false: none matched).
    fn delete_rule(&mut self, table: &str, chain: &str, args: &[&str]) -> Result<bool, ApplyError>;

    /// Whether `CHAIN` exists in `TABLE` (`iptables -t TABLE -S CHAIN`).
    fn chain_exists(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError>;
}

/// Creates the kube-proxy chains the built-in chains jump to and inserts each jump rule at
/// the top of its built-in chain when missing (upstream does this on every full sync).
/// Returns how many rules were inserted.
pub fn ensure_jump_rules(w: &mut dyn RuleWriter) -> Result<usize, ApplyError> {
    let mut inserted = 0;
    for j in &JUMP_RULES {
        w.ensure_chain(j.table, j.to)?;
        if !w.ensure_rule_first(j.table, j.from, &j.args())? {
            inserted += 1;
        }
    }
    Ok(inserted)
}

/// What a full sync of iptables mode needs before its restore, with one `iptables-save` per
/// table (mangle, filter, nat) instead of one `iptables` process per chain and rule (`-N`,
/// `-C` / `-I`, `-S`: about thirty, each of which reads the whole table with the legacy
/// backend): the jump rules and canaries are looked up in the saves, and only what is
/// missing there goes through [`RuleWriter::ensure_chain`] / [`RuleWriter::ensure_rule_first`]
/// (which check again, so a rule the save prints differently is never inserted twice).
/// Returns how many jump rules were inserted, and the nat table's save as it was before
/// (its chains tell the stale per-service chains).
pub fn ensure_jumps_and_canaries(w: &mut dyn RuleWriter) -> Result<(usize, String), ApplyError> {
    let family = w.family();
    let mut inserted = 0;
    let mut nat = String::new();
    for table in ["mangle", "filter", "nat"] {
        let save = w.save(table)?;
        let mut chains: std::collections::HashSet<&str> =
            declared_chains(&save).into_iter().collect();
        let missing = missing_jump_rules(family, table, &save);
        for j in JUMP_RULES.iter().filter(|j| j.table == table) {
            if !chains.contains(j.to) {
                w.ensure_chain(table, j.to)?;
                chains.insert(j.to);
            }
            if missing.contains(&j) && !w.ensure_rule_first(table, j.from, &j.args())? {
                inserted += 1;
            }
        }
        if CANARY_TABLES.contains(&table) && !chains.contains(CANARY_CHAIN) {
            w.ensure_chain(table, CANARY_CHAIN)?;
        }
        if table == "nat" {
            nat = save;
        }
    }
    Ok((inserted, nat))
}

/// The jump rules of `table` that `save` (that table's `iptables-save -t TABLE`) does not
/// hold in their built-in chains, compared as rules (canonical forms), as `iptables -C`
/// compares them.
pub fn missing_jump_rules(family: Family, table: &str, save: &str) -> Vec<&'static JumpRule> {
    JUMP_RULES
        .iter()
        .filter(|j| j.table == table && !saved_rule(family, save, j))
        .collect()
}

fn saved_rule(family: Family, save: &str, j: &JumpRule) -> bool {
    use dataplane::iptables::Rule;
    let prefix = format!("-A {} ", j.from);
    let line = j.restore_line();
    let Some(want) = line
        .strip_prefix(&prefix)
        .and_then(|spec| Rule::parse_spec(family, spec).ok())
        .map(|r| r.canonical(family))
    else {
        return false;
    };
    save.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|spec| Rule::parse_spec(family, spec).ok())
        .any(|r| r.canonical(family) == want)
}

/// Creates the canary chains (mangle, nat, filter) when missing.
pub fn ensure_canaries(w: &mut dyn RuleWriter) -> Result<(), ApplyError> {
    for t in CANARY_TABLES {
        w.ensure_chain(t, CANARY_CHAIN)?;
    }
    Ok(())
}

/// The tables whose canary chain is gone (someone flushed them: firewalld, `iptables -F -X`).
pub fn missing_canaries(w: &mut dyn RuleWriter) -> Result<Vec<&'static str>, ApplyError> {
    let mut missing = Vec::new();
    for t in CANARY_TABLES {
        if !w.chain_exists(t, CANARY_CHAIN)? {
            missing.push(t);
        }
    }
    Ok(missing)
}

/// The chain names declared in `iptables-save` output (`:NAME POLICY [p:b]` lines).
pub fn declared_chains(save: &str) -> Vec<&str> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// Whether a chain is one kube-proxy-rs creates in iptables mode: a top-level chain, a
/// per-service chain or the canary.
pub fn is_our_chain(name: &str) -> bool {
    const TOP: [&str; 8] = [
        "KUBE-SERVICES",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
        "KUBE-FORWARD",
        "KUBE-PROXY-FIREWALL",
        "KUBE-FIREWALL",
    ];
    name == CANARY_CHAIN || TOP.contains(&name) || is_service_chain(name)
}

/// What [`cleanup`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Jump rules deleted from built-in chains.
    pub jump_rules: usize,
    /// Chains flushed and deleted, as `table/CHAIN`.
    pub chains: Vec<String>,
}

/// Removes everything iptables mode creates (upstream `CleanupLeftovers`): the jump rules
/// from the built-in chains, then every chain of ours (see [`is_our_chain`]) in mangle, nat
/// and filter, flushed and deleted in one restore per table. Other software's chains and
/// rules are left alone.
pub fn cleanup(w: &mut dyn RuleWriter) -> Result<Cleanup, ApplyError> {
    cleanup_chains(w, JUMP_RULES.iter(), is_our_chain)
}

/// Deletes `jumps` from the built-in chains (every copy), then flushes and deletes (`-X`)
/// the chains `ours` accepts in mangle, nat and filter, one restore per table: the shared
/// part of each mode's cleanup.
pub fn cleanup_chains<'a>(
    w: &mut dyn RuleWriter,
    jumps: impl Iterator<Item = &'a JumpRule>,
    ours: impl Fn(&str) -> bool,
) -> Result<Cleanup, ApplyError> {
    let mut done = Cleanup::default();
    for j in jumps {
        // A rule may have been inserted more than once (e.g. by a buggy iptables -C).
        while w.delete_rule(j.table, j.from, &j.args())? {
            done.jump_rules += 1;
        }
    }
    for table in ["mangle", "nat", "filter"] {
        let save = w.save(table)?;
        let found: Vec<&str> = declared_chains(&save)
            .into_iter()
            .filter(|c| ours(c))
            .collect();
        if found.is_empty() {
            continue;
        }
        // Declaring a chain flushes it; once all are empty, none references another.
        let mut input = format!("*{table}\n");
        for c in &found {
            input.push_str(&format!(":{c} - [0:0]\n"));
        }
        for c in &found {
            input.push_str(&format!("-X {c}\n"));
        }
        input.push_str("COMMIT\n");
        w.restore(&input)?;
        done.chains
            .extend(found.iter().map(|c| format!("{table}/{c}")));
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
