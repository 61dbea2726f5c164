//! `iptables-restore` scripts and the kernel's merge of them into a ruleset.
//!
//! ```text
//!   *nat                         RestoreTable { name, line, commands, commit_line }
//!   :KUBE-SVC-X - [0:0]          Declare   (create, or flush if it exists)
//!   -A KUBE-SVC-X …              Append
//!   -I CHAIN [n] … / -D CHAIN …  Insert / Delete (by spec or number)
//!   -N / -X / -F / -P            NewChain / DeleteChain / Flush / Policy
//!   COMMIT
//! ```
//! `Ruleset::apply_restore` is the stateful fake of `iptables-restore [--noflush]`: each table
//! is committed atomically at its `COMMIT` (tables before a failing one stay committed, as with
//! the real tool), and what the kernel refuses is refused here with the line it was on. Rules
//! are stored in their canonical form, so `to_save()` afterwards prints what `iptables-save`
//! would. Checked against iptables 1.8.9 (nft and legacy) in a throwaway netns; where the two
//! differ this follows iptables-nft, the default: without `--noflush` a table's built-in
//! policies are reset to ACCEPT unless declared.
//!
//! One difference: the whole script is parsed before anything is applied, so a syntax error in
//! a later table leaves earlier tables unchanged (the real tool would have committed them).

use super::model::{Chain, Counters, Policy, Rule, Ruleset, Table, builtin_chains};
use super::parse::{
    ParseError, lex, line_error, parse_chain_decl, parse_rule_words, split_rule_counters,
};
use super::targets::TARGET_NAMES;
use crate::packet::Family;

/// One command of a restore script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOp {
    /// `:CHAIN POLICY [p:b]`: set a built-in chain's policy, or create/flush a user chain.
    Declare {
        /// Chain name.
        chain: String,
        /// Policy (`-` for user chains, or to leave a built-in's policy alone).
        policy: Policy,
        /// Counters, if written.
        counters: Option<Counters>,
    },
    /// `-A CHAIN rule`.
    Append {
        /// Chain name.
        chain: String,
        /// The rule.
        rule: Rule,
    },
    /// `-I CHAIN [n] rule` (1-based position, default 1).
    Insert {
        /// Chain name.
        chain: String,
        /// Position.
        index: usize,
        /// The rule.
        rule: Rule,
    },
    /// `-D CHAIN rule`: delete the first rule equal to this one.
    Delete {
        /// Chain name.
        chain: String,
        /// The rule.
        rule: Rule,
    },
    /// `-D CHAIN n`.
    DeleteNum {
        /// Chain name.
        chain: String,
        /// 1-based position.
        index: usize,
    },
    /// `-F [CHAIN]`: flush one chain or all.
    Flush {
        /// Chain name; `None` for all chains.
        chain: Option<String>,
    },
    /// `-X CHAIN`: delete an empty, unreferenced user chain.
    DeleteChain {
        /// Chain name.
        chain: String,
    },
    /// `-N CHAIN`: create a user chain (fails if it exists).
    NewChain {
        /// Chain name.
        chain: String,
    },
    /// `-P CHAIN POLICY`.
    Policy {
        /// Built-in chain name.
        chain: String,
        /// ACCEPT or DROP.
        policy: Policy,
    },
}

/// A command with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreCommand {
    /// 1-based line number.
    pub line: usize,
    /// The command.
    pub op: RestoreOp,
}

/// `*TABLE` … `COMMIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTable {
    /// Table name.
    pub name: String,
    /// Line of `*TABLE`.
    pub line: usize,
    /// Commands in order.
    pub commands: Vec<RestoreCommand>,
}

/// A parsed `iptables-restore` script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreScript {
    /// Address family of the rules.
    pub family: Family,
    /// Tables in order.
    pub tables: Vec<RestoreTable>,
}

/// Options of `iptables-restore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreMode {
    /// `--noflush`: merge into the tables instead of replacing them.
    pub noflush: bool,
}

/// What the kernel refuses in a restore; each names the script line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The script does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// `*NAME` is not a table of the kernel.
    #[error("line {line}: unknown table {table:?}")]
    UnknownTable {
        /// Line.
        line: usize,
        /// Table name.
        table: String,
    },
    /// A rule, `-F`, `-X`, `-P`, `-I` or `-D` names a chain that does not exist.
    #[error("line {line}: chain {chain:?} does not exist in table {table}")]
    NoSuchChain {
        /// Line.
        line: usize,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
    },
    /// `-j CHAIN` / `-g CHAIN` to a chain that does not exist.
    #[error("line {line}: rule jumps to chain {target:?}, which does not exist in table {table}")]
    DanglingJump {
        /// Line.
        line: usize,
        /// Table.
        table: String,
        /// The missing chain.
        target: String,
    },
    /// `-N` of an existing chain.
    #[error("line {line}: chain {chain:?} already exists")]
    ChainExists {
        /// Line.
        line: usize,
        /// Chain.
        chain: String,
    },
    /// `-X` of a chain still referenced by a rule.
    #[error("line {line}: cannot delete chain {chain:?}: referenced by a rule in {from}")]
    ChainReferenced {
        /// Line.
        line: usize,
        /// Chain.
        chain: String,
        /// The chain holding a referencing rule.
        from: String,
    },
    /// `-X` of a chain that still has rules.
    #[error("line {line}: cannot delete chain {chain:?}: it is not empty")]
    ChainNotEmpty {
        /// Line.
        line: usize,
        /// Chain.
        chain: String,
    },
    /// `-X` of a built-in chain.
    #[error("line {line}: cannot delete built-in chain {chain:?}")]
    BuiltinChain {
        /// Line.
        line: usize,
        /// Chain.
        chain: String,
    },
    /// A chain name the kernel refuses (too long, or a target's name).
    #[error("line {line}: invalid chain name {chain:?}: {why}")]
    BadChainName {
        /// Line.
        line: usize,
        /// Chain.
        chain: String,
        /// Why.
        why: &'static str,
    },
    /// A policy on a user chain, or `-`/other on `-P`.
    #[error("line {line}: cannot set policy {policy} on chain {chain:?}")]
    BadPolicy {
        /// Line.
        line: usize,
        /// Chain.
        chain: String,
        /// Policy text.
        policy: &'static str,
    },
    /// `-I n` beyond the end, `-D n` out of range.
    #[error("line {line}: rule index {index} out of range for chain {chain:?} ({len} rules)")]
    BadIndex {
        /// Line.
        line: usize,
        /// Chain.
        chain: String,
        /// Index given.
        index: usize,
        /// Rules in the chain.
        len: usize,
    },
    /// `-D CHAIN rule` with no equal rule.
    #[error("line {line}: no rule in chain {chain:?} matches the one to delete")]
    NoSuchRule {
        /// Line.
        line: usize,
        /// Chain.
        chain: String,
    },
}

const MAX_CHAIN_NAME: usize = 28;

impl RestoreOp {
    /// The chain the command names, if any.
    pub fn chain(&self) -> Option<&str> {
        match self {
            RestoreOp::Declare { chain, .. }
            | RestoreOp::Append { chain, .. }
            | RestoreOp::Insert { chain, .. }
            | RestoreOp::Delete { chain, .. }
            | RestoreOp::DeleteNum { chain, .. }
            | RestoreOp::DeleteChain { chain }
            | RestoreOp::NewChain { chain }
            | RestoreOp::Policy { chain, .. } => Some(chain),
            RestoreOp::Flush { chain } => chain.as_deref(),
        }
    }
}

impl RestoreScript {
    /// Parses `iptables-restore` input.
    pub fn parse(family: Family, text: &str) -> Result<RestoreScript, ParseError> {
        let mut tables = Vec::new();
        let mut open: Option<RestoreTable> = None;
        for (n, line) in text.lines().enumerate() {
            let lineno = n + 1;
            let line = line.trim_end_matches('\r'); // CRLF, or CRs before it (as Ruleset::parse)
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('*') {
                if open.is_some() {
                    return Err(line_error(
                        lineno,
                        None,
                        "COMMIT before the next table",
                        line,
                    ));
                }
                if name.is_empty() || name.contains(' ') {
                    return Err(line_error(lineno, None, "a table name after \"*\"", line));
                }
                open = Some(RestoreTable {
                    name: name.to_string(),
                    line: lineno,
                    commands: Vec::new(),
                });
                continue;
            }
            let Some(t) = open.as_mut() else {
                return Err(line_error(lineno, None, "a table \"*NAME\"", line));
            };
            if trimmed == "COMMIT" {
                tables.extend(open.take());
                continue;
            }
            let op = if trimmed.starts_with(':') {
                let (chain, policy, counters) = parse_chain_decl(trimmed, lineno)?;
                RestoreOp::Declare {
                    chain,
                    policy,
                    counters,
                }
            } else {
                parse_command(trimmed, lineno, family)?
            };
            t.commands.push(RestoreCommand { line: lineno, op });
        }
        if let Some(t) = open {
            return Err(line_error(
                text.lines().count().max(1),
                None,
                "COMMIT",
                &format!("end of input in table {}", t.name),
            ));
        }
        Ok(RestoreScript { family, tables })
    }
}

fn parse_command(line: &str, lineno: usize, family: Family) -> Result<RestoreOp, ParseError> {
    const EXPECTED: &str = "a command (-A, -I, -D, -F, -X, -N, -P), a chain declaration or COMMIT";
    let (_counters, rest) = split_rule_counters(line, lineno)?;
    let ws = lex(rest, lineno)?;
    let cmd = ws.first().map(|w| w.raw).unwrap_or("");
    let chain = ws.get(1).map(|w| w.value.to_string());
    let need_chain = || {
        chain
            .clone()
            .ok_or_else(|| line_error(lineno, Some(2), "a chain name", "end of line"))
    };
    let rule_at = |start: usize| {
        parse_rule_words(&ws[start.min(ws.len())..], family).map_err(|e| e.at_line(lineno, start))
    };
    let number = |i: usize| -> Option<usize> {
        ws.get(i)
            .filter(|w| !w.value.is_empty() && w.value.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|w| w.value.parse().ok())
    };
    let no_more = |i: usize| -> Result<(), ParseError> {
        match ws.get(i) {
            Some(w) => Err(line_error(lineno, Some(i + 1), "end of line", w.raw)),
            None => Ok(()),
        }
    };
    Ok(match cmd {
        "-A" | "--append" => RestoreOp::Append {
            chain: need_chain()?,
            rule: rule_at(2)?,
        },
        "-I" | "--insert" => {
            let chain = need_chain()?;
            match number(2) {
                Some(index) => RestoreOp::Insert {
                    chain,
                    index,
                    rule: rule_at(3)?,
                },
                None => RestoreOp::Insert {
                    chain,
                    index: 1,
                    rule: rule_at(2)?,
                },
            }
        }
        "-D" | "--delete" => {
            let chain = need_chain()?;
            match number(2) {
                Some(index) => {
                    no_more(3)?;
                    RestoreOp::DeleteNum { chain, index }
                }
                None => RestoreOp::Delete {
                    chain,
                    rule: rule_at(2)?,
                },
            }
        }
        "-F" | "--flush" => {
            no_more(2)?;
            RestoreOp::Flush { chain }
        }
        "-X" | "--delete-chain" => {
            no_more(2)?;
            RestoreOp::DeleteChain {
                chain: need_chain()?,
            }
        }
        "-N" | "--new-chain" => {
            no_more(2)?;
            RestoreOp::NewChain {
                chain: need_chain()?,
            }
        }
        "-P" | "--policy" => {
            let chain = need_chain()?;
            let policy = ws
                .get(2)
                .and_then(|w| Policy::parse(&w.value))
                .filter(|p| *p != Policy::None)
                .ok_or_else(|| {
                    line_error(
                        lineno,
                        Some(3),
                        "a policy ACCEPT or DROP",
                        ws.get(2).map_or("end of line", |w| w.raw),
                    )
                })?;
            no_more(3)?;
            RestoreOp::Policy { chain, policy }
        }
        _ => return Err(line_error(lineno, Some(1), EXPECTED, line)),
    })
}

fn check_chain_name(name: &str, line: usize) -> Result<(), RestoreError> {
    let why = if name.len() > MAX_CHAIN_NAME {
        Some("longer than 28 characters")
    } else if TARGET_NAMES.contains(&name) {
        Some("it is the name of a target")
    } else if name.starts_with('-') || name.starts_with('!') || name.is_empty() {
        Some("it must not start with - or !")
    } else {
        None
    };
    match why {
        Some(why) => Err(RestoreError::BadChainName {
            line,
            chain: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

impl Ruleset {
    /// Applies an `iptables-restore` script the way the kernel does (see the module docs).
    /// On error, the failing table is unchanged; tables committed before it stay committed.
    pub fn apply_restore(
        &mut self,
        script: &RestoreScript,
        mode: RestoreMode,
    ) -> Result<(), RestoreError> {
        for st in &script.tables {
            if builtin_chains(&st.name).is_none() {
                return Err(RestoreError::UnknownTable {
                    line: st.line,
                    table: st.name.clone(),
                });
            }
            let (pos, created) = match self.tables.iter().position(|t| t.name == st.name) {
                Some(p) => (p, false),
                None => {
                    self.tables.push(Table::with_builtins(&st.name));
                    (self.tables.len() - 1, true)
                }
            };
            if mode.noflush {
                // In place, with a journal of the chains touched so an error can roll back.
                let table = &mut self.tables[pos];
                let mut journal = Journal::default();
                let result = st
                    .commands
                    .iter()
                    .try_for_each(|cmd| apply_command(table, cmd, self.family, &mut journal));
                match result {
                    Ok(()) => {
                        if journal.added {
                            table.sort_chains();
                        }
                    }
                    Err(e) => {
                        journal.rollback(table);
                        if created {
                            self.tables.remove(pos);
                        }
                        return Err(e);
                    }
                }
            } else {
                // Replace the table: build a fresh one; the old one is kept until the commit.
                let old = &self.tables[pos];
                let mut work = Table::with_builtins(&st.name);
                work.header.clone_from(&old.header);
                work.footer.clone_from(&old.footer);
                let mut journal = Journal::default();
                let result = st
                    .commands
                    .iter()
                    .try_for_each(|cmd| apply_command(&mut work, cmd, self.family, &mut journal));
                if let Err(e) = result {
                    if created {
                        self.tables.remove(pos);
                    }
                    return Err(e);
                }
                work.sort_chains();
                self.tables[pos] = work;
            }
        }
        Ok(())
    }
}

/// What a table looked like before a restore touched it, chain by chain.
#[derive(Default)]
struct Journal {
    /// Original content of each chain touched (`None`: it did not exist), in touch order.
    saved: Vec<(String, Option<Chain>)>,
    seen: std::collections::HashSet<String>,
    /// Chain order before the first chain was added or deleted.
    order: Option<Vec<String>>,
    /// A chain was added (the table must be re-sorted on commit).
    added: bool,
}

impl Journal {
    fn touch(&mut self, t: &Table, chain: &str) {
        if self.seen.insert(chain.to_string()) {
            self.saved
                .push((chain.to_string(), t.chain(chain).cloned()));
        }
    }

    fn structural(&mut self, t: &Table) {
        if self.order.is_none() {
            self.order = Some(t.chains().iter().map(|c| c.name.clone()).collect());
        }
    }

    fn rollback(self, t: &mut Table) {
        for (name, saved) in self.saved.into_iter().rev() {
            match saved {
                Some(chain) => match t.chain_mut(&name) {
                    Some(c) => *c = chain,
                    None => {
                        let _ = t.add_chain(chain);
                    }
                },
                None => {
                    t.remove_chain(&name);
                }
            }
        }
        if let Some(order) = self.order {
            t.reorder(&order);
        }
    }
}

fn get_chain<'t>(
    t: &'t mut Table,
    chain: &str,
    line: usize,
) -> Result<&'t mut Chain, RestoreError> {
    let table = t.name.clone();
    t.chain_mut(chain).ok_or_else(|| RestoreError::NoSuchChain {
        line,
        table,
        chain: chain.to_string(),
    })
}

fn check_rule(t: &Table, rule: &Rule, line: usize) -> Result<(), RestoreError> {
    if let Some(target) = rule.target().and_then(|t| t.chain())
        && t.chain(target).is_none()
    {
        return Err(RestoreError::DanglingJump {
            line,
            table: t.name.clone(),
            target: target.to_string(),
        });
    }
    Ok(())
}

fn apply_command(
    t: &mut Table,
    cmd: &RestoreCommand,
    family: Family,
    j: &mut Journal,
) -> Result<(), RestoreError> {
    let line = cmd.line;
    if let Some(name) = cmd.op.chain() {
        j.touch(t, name);
    }
    match &cmd.op {
        RestoreOp::Declare { chain, policy, .. } => {
            if t.is_builtin(chain) {
                if *policy != Policy::None
                    && let Some(c) = t.chain_mut(chain)
                {
                    c.policy = Some(*policy);
                }
            } else {
                if *policy != Policy::None {
                    return Err(RestoreError::BadPolicy {
                        line,
                        chain: chain.clone(),
                        policy: policy.as_str(),
                    });
                }
                check_chain_name(chain, line)?;
                match t.chain_mut(chain) {
                    Some(c) => c.rules.clear(),
                    None => {
                        j.structural(t);
                        j.added = true;
                        let _ = t.add_chain(Chain::user(chain.clone()));
                    }
                }
            }
        }
        RestoreOp::Append { chain, rule } => {
            check_rule(t, rule, line)?;
            let canon = {
                let mut c = rule.canonical(family);
                c.counters = None;
                c
            };
            get_chain(t, chain, line)?.rules.push(canon);
        }
        RestoreOp::Insert { chain, index, rule } => {
            check_rule(t, rule, line)?;
            let canon = {
                let mut c = rule.canonical(family);
                c.counters = None;
                c
            };
            let c = get_chain(t, chain, line)?;
            if *index == 0 || *index > c.rules.len() + 1 {
                return Err(RestoreError::BadIndex {
                    line,
                    chain: chain.clone(),
                    index: *index,
                    len: c.rules.len(),
                });
            }
            c.rules.insert(index - 1, canon);
        }
        RestoreOp::Delete { chain, rule } => {
            let canon = {
                let mut c = rule.canonical(family);
                c.counters = None;
                c
            };
            let c = get_chain(t, chain, line)?;
            let pos = c
                .rules
                .iter()
                .position(|r| r.matches() == canon.matches() && r.target() == canon.target())
                .ok_or_else(|| RestoreError::NoSuchRule {
                    line,
                    chain: chain.clone(),
                })?;
            c.rules.remove(pos);
        }
        RestoreOp::DeleteNum { chain, index } => {
            let c = get_chain(t, chain, line)?;
            if *index == 0 || *index > c.rules.len() {
                return Err(RestoreError::BadIndex {
                    line,
                    chain: chain.clone(),
                    index: *index,
                    len: c.rules.len(),
                });
            }
            c.rules.remove(index - 1);
        }
        RestoreOp::Flush { chain: Some(chain) } => get_chain(t, chain, line)?.rules.clear(),
        RestoreOp::Flush { chain: None } => {
            let names: Vec<String> = t.chains().iter().map(|c| c.name.clone()).collect();
            for n in names {
                j.touch(t, &n);
                if let Some(c) = t.chain_mut(&n) {
                    c.rules.clear();
                }
            }
        }
        RestoreOp::DeleteChain { chain } => {
            if t.is_builtin(chain) {
                return Err(RestoreError::BuiltinChain {
                    line,
                    chain: chain.clone(),
                });
            }
            let c = get_chain(t, chain, line)?;
            if !c.rules.is_empty() {
                return Err(RestoreError::ChainNotEmpty {
                    line,
                    chain: chain.clone(),
                });
            }
            if let Some((from, _)) = t.references_to(chain).first() {
                return Err(RestoreError::ChainReferenced {
                    line,
                    chain: chain.clone(),
                    from: from.to_string(),
                });
            }
            j.structural(t);
            t.remove_chain(chain);
        }
        RestoreOp::NewChain { chain } => {
            check_chain_name(chain, line)?;
            if t.chain(chain).is_some() {
                return Err(RestoreError::ChainExists {
                    line,
                    chain: chain.clone(),
                });
            }
            j.structural(t);
            j.added = true;
            let _ = t.add_chain(Chain::user(chain.clone()));
        }
        RestoreOp::Policy { chain, policy } => {
            if !t.is_builtin(chain) {
                return Err(RestoreError::BadPolicy {
                    line,
                    chain: chain.clone(),
                    policy: policy.as_str(),
                });
            }
            get_chain(t, chain, line)?.policy = Some(*policy);
        }
    }
    Ok(())
}
