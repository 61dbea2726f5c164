//! `nft -f` transactions: from what the kernel's table holds to the rendered table, in one
//! atomic batch.
//!
//! ```text
//!   full    (old = None, existing = names the kernel holds):
//!             flush chain … / flush set|map … (all that exist; affinity sets keep their members)
//!             table ip kube-proxy { every set, map, element, chain and rule }
//!             delete chain … / delete set … (what exists and is no longer rendered)
//!   partial (old = the table the last sync loaded):
//!             delete element … { keys gone or changed }
//!             flush chain … (chains whose rules changed, chains that go)
//!             table ip kube-proxy { new sets, added elements, new and changed chains }
//!             delete chain … / delete set … (gone)
//! ```
//! A partial transaction costs what changed plus one in-memory comparison of the two
//! tables: nothing is listed from the kernel.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use dataplane::nft::{Chain, Expr, Rule, Set, SetElem, Stmt, Table, TextError};

/// A transaction that could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// A part of the rendered table has no `nft` text form.
    #[error("nft text: {0}")]
    Text(#[from] TextError),
}

/// What the kernel's table holds, by name: chains, and sets with whether each is a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Chain names.
    pub chains: BTreeSet<String>,
    /// Set and map names, `true` for maps.
    pub sets: BTreeMap<String, bool>,
}

impl Existing {
    /// The names a table holds (`nft -j list table` parsed, or the last rendered table).
    pub fn of(t: &Table) -> Existing {
        Existing {
            chains: t.chains.iter().map(|c| c.name.clone()).collect(),
            sets: t
                .sets
                .iter()
                .map(|s| (s.name.clone(), s.is_map()))
                .collect(),
        }
    }
}

/// One `nft -f` input and what it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The `nft -f -` input.
    pub text: String,
    /// Rules written.
    pub rules_written: usize,
    /// Elements added plus elements deleted.
    pub elements_written: usize,
    /// Chains deleted (stale).
    pub deleted_chains: Vec<String>,
    /// Chains flushed and rewritten, or created.
    pub written_chains: usize,
}

fn is_affinity(name: &str) -> bool {
    name.starts_with("affinity-")
}

fn kind(is_map: bool) -> &'static str {
    if is_map { "map" } else { "set" }
}

/// The transaction that makes the kernel's table equal to `new`: a full one from
/// `existing` when `old` is `None`, else a partial one from `old` (the table the last
/// successful transaction left).
pub fn transaction(
    old: Option<&Table>,
    existing: &Existing,
    new: &Table,
) -> Result<Transaction, TxError> {
    match old {
        None => full(existing, new),
        Some(old) => partial(old, new),
    }
}

fn head(t: &Table) -> String {
    format!("{} {}", t.family, t.name)
}

fn full(existing: &Existing, new: &Table) -> Result<Transaction, TxError> {
    let h = head(new);
    let mut text = String::with_capacity(1 << 16);
    for c in &existing.chains {
        let _ = writeln!(text, "flush chain {h} {c}");
    }
    for (s, is_map) in &existing.sets {
        if !is_affinity(s) {
            let _ = writeln!(text, "flush {} {h} {s}", kind(*is_map));
        }
    }
    // Affinity sets that exist keep their members (clients stay with their endpoints).
    let mut block = new.clone();
    block
        .sets
        .retain(|s| !is_affinity(&s.name) || !existing.sets.contains_key(&s.name));
    text.push_str(&block.to_text()?);
    let mut deleted = Vec::new();
    let new_chains: HashSet<&str> = new.chains.iter().map(|c| c.name.as_str()).collect();
    for c in &existing.chains {
        if !new_chains.contains(c.as_str()) {
            let _ = writeln!(text, "delete chain {h} {c}");
            deleted.push(c.clone());
        }
    }
    let new_sets: HashSet<&str> = new.sets.iter().map(|s| s.name.as_str()).collect();
    for (s, is_map) in &existing.sets {
        if !new_sets.contains(s.as_str()) {
            let _ = writeln!(text, "delete {} {h} {s}", kind(*is_map));
        }
    }
    Ok(Transaction {
        text,
        rules_written: new.rule_count(),
        elements_written: new.sets.iter().map(|s| s.elements.len()).sum(),
        deleted_chains: deleted,
        written_chains: new.chains.len(),
    })
}

/// A set's declaration without its elements.
fn declaration(s: &Set) -> Set {
    Set {
        elements: Vec::new(),
        handle: None,
        ..s.clone()
    }
}

/// Each element of `set` with its text.
fn element_texts(
    set: &Set,
    family: dataplane::nft::NftFamily,
) -> Result<Vec<(String, &SetElem)>, TextError> {
    set.elements
        .iter()
        .map(|e| Ok((set.element_text(e, family)?, e)))
        .collect()
}

fn refers_to(rule: &Rule, set: &str) -> bool {
    rule.stmts.iter().any(|st| match st {
        Stmt::Set(s) => s.set == set,
        Stmt::Match(m) => matches!(&m.right, Expr::SetRef(n) if n == set),
        Stmt::Vmap { data, .. } => matches!(data, Expr::SetRef(n) if n == set),
        _ => false,
    })
}

fn partial(old: &Table, new: &Table) -> Result<Transaction, TxError> {
    let h = head(new);
    let mut text = String::new();
    let mut elements_written = 0;

    let old_sets: HashMap<&str, &Set> = old.sets.iter().map(|s| (s.name.as_str(), s)).collect();
    let new_sets: HashSet<&str> = new.sets.iter().map(|s| s.name.as_str()).collect();
    let mut block = Table::new(new.family, new.name.clone());
    // Sets whose declaration changed are deleted and declared again; the chains using them
    // are rewritten too.
    let mut redeclared: Vec<&str> = Vec::new();
    let mut set_deletes = String::new();
    for s in &new.sets {
        match old_sets.get(s.name.as_str()) {
            Some(o) if declaration(o) == declaration(s) => {
                let family = new.family;
                let old_e = element_texts(o, family)?;
                let new_e = element_texts(s, family)?;
                let old_t: HashSet<&str> = old_e.iter().map(|(t, _)| t.as_str()).collect();
                let new_t: HashSet<&str> = new_e.iter().map(|(t, _)| t.as_str()).collect();
                let mut gone = Vec::new();
                for (t, e) in &old_e {
                    if !new_t.contains(t.as_str()) {
                        gone.push(s.element_text(&SetElem::key(e.key.clone()), family)?);
                    }
                }
                if !gone.is_empty() {
                    elements_written += gone.len();
                    let _ = writeln!(
                        text,
                        "delete element {h} {} {{ {} }}",
                        s.name,
                        gone.join(", ")
                    );
                }
                let added: Vec<SetElem> = new_e
                    .iter()
                    .filter(|(t, _)| !old_t.contains(t.as_str()))
                    .map(|(_, e)| (*e).clone())
                    .collect();
                if !added.is_empty() {
                    elements_written += added.len();
                    block.sets.push(Set {
                        elements: added,
                        ..declaration(s)
                    });
                }
            }
            Some(o) => {
                let _ = writeln!(set_deletes, "delete {} {h} {}", kind(o.is_map()), o.name);
                redeclared.push(&s.name);
                elements_written += s.elements.len();
                block.sets.push(s.clone());
            }
            None => {
                elements_written += s.elements.len();
                block.sets.push(s.clone());
            }
        }
    }

    let old_chains: HashMap<&str, &Chain> =
        old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_chains: HashSet<&str> = new.chains.iter().map(|c| c.name.as_str()).collect();
    let mut flushes = String::new();
    let mut rules_written = 0;
    for c in &new.chains {
        let uses_redeclared = || {
            redeclared
                .iter()
                .any(|s| c.rules.iter().any(|r| refers_to(r, s)))
        };
        match old_chains.get(c.name.as_str()) {
            Some(o) if o.base == c.base && o.rules == c.rules && !uses_redeclared() => continue,
            Some(_) => {
                let _ = writeln!(flushes, "flush chain {h} {}", c.name);
            }
            None => {}
        }
        rules_written += c.rules.len();
        block.chains.push(c.clone());
    }
    let mut deleted = Vec::new();
    for c in &old.chains {
        if !new_chains.contains(c.name.as_str()) {
            let _ = writeln!(flushes, "flush chain {h} {}", c.name);
            deleted.push(c.name.clone());
        }
    }
    // Redeclared sets are deleted after the chains using them are flushed.
    text.push_str(&flushes);
    text.push_str(&set_deletes);
    let written_chains = block.chains.len();
    if !block.sets.is_empty() || !block.chains.is_empty() {
        text.push_str(&block.to_text()?);
    }
    for c in &deleted {
        let _ = writeln!(text, "delete chain {h} {c}");
    }
    for s in &old.sets {
        if !new_sets.contains(s.name.as_str()) {
            let _ = writeln!(text, "delete {} {h} {}", kind(s.is_map()), s.name);
        }
    }
    Ok(Transaction {
        text,
        rules_written,
        elements_written,
        deleted_chains: deleted,
        written_chains,
    })
}
