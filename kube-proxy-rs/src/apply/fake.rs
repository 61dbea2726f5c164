//! The stateful fake of one family's iptables: a [`Ruleset`] changed only through
//! [`Ruleset::apply_restore`], so it keeps what the kernel keeps and refuses what the kernel
//! refuses (a jump to a chain that does not exist, `-X` of a referenced chain, ...), naming
//! the line. Not a call recorder: tests look at the rules it holds.
//!
//! ```text
//!   restore(text)  ─parse─> RestoreScript ─apply_restore(noflush)─> Ruleset (or refused)
//!   -N / -C / -I / -D / -S   as one-command restore scripts on the same Ruleset
//!   fail_next_restores(n)    the next n restores are refused (an injected fault)
//! ```

use dataplane::Family;
use dataplane::iptables::{RestoreError, RestoreMode, RestoreScript, Rule, Ruleset};

use super::{ApplyError, RestoreFailure, RuleWriter};

/// One family's rules in memory.
#[derive(Debug, Clone)]
pub struct FakeWriter {
    /// The rules, as `iptables-save` would show them.
    pub ruleset: Ruleset,
    /// Every restore input accepted, in order.
    pub restores: Vec<String>,
    /// Restores refused so far.
    pub refused: usize,
    fail_next: usize,
}

fn line_of(e: &RestoreError) -> Option<usize> {
    Some(match e {
        RestoreError::Parse(p) => p.line,
        RestoreError::UnknownTable { line, .. }
        | RestoreError::NoSuchChain { line, .. }
        | RestoreError::DanglingJump { line, .. }
        | RestoreError::ChainExists { line, .. }
        | RestoreError::ChainReferenced { line, .. }
        | RestoreError::ChainNotEmpty { line, .. }
        | RestoreError::BuiltinChain { line, .. }
        | RestoreError::BadChainName { line, .. }
        | RestoreError::BadPolicy { line, .. }
        | RestoreError::BadIndex { line, .. }
        | RestoreError::NoSuchRule { line, .. } => *line,
    })
}

/// Quotes one argument the way a shell (and the restore lexer) reads it back.
fn quote(arg: &str) -> String {
    if arg.is_empty() || arg.contains([' ', '"', '\'']) {
        format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        arg.to_string()
    }
}

impl FakeWriter {
    /// An empty ruleset of this family (no tables loaded yet, as in a fresh namespace).
    pub fn new(family: Family) -> FakeWriter {
        FakeWriter {
            ruleset: Ruleset::new(family),
            restores: Vec::new(),
            refused: 0,
            fail_next: 0,
        }
    }

    /// Refuses the next `n` restores (as a kernel would refuse a rule it cannot load).
    pub fn fail_next_restores(&mut self, n: usize) {
        self.fail_next = n;
    }

    /// The ruleset as `iptables-save` prints it.
    pub fn save_all(&self) -> String {
        self.ruleset.to_save()
    }

    /// Runs a script as `iptables-restore --noflush` would.
    fn run(&mut self, input: &str) -> Result<(), RestoreError> {
        let script = RestoreScript::parse(self.ruleset.family, input)?;
        self.ruleset
            .apply_restore(&script, RestoreMode { noflush: true })
    }

    fn failure(e: &RestoreError, input: &str) -> ApplyError {
        ApplyError::Restore(
            RestoreFailure {
                program: "fake iptables-restore".into(),
                line: line_of(e),
                line_text: None,
                message: e.to_string(),
            }
            .with_input(input),
        )
    }

    fn command(&mut self, table: &str, line: &str) -> Result<(), RestoreError> {
        self.run(&format!("*{table}\n{line}\nCOMMIT\n"))
    }

    fn rule(&self, args: &[&str]) -> Result<Rule, ApplyError> {
        let spec: Vec<String> = args.iter().map(|a| quote(a)).collect();
        Rule::parse_spec(self.ruleset.family, &spec.join(" "))
            .map(|r| r.canonical(self.ruleset.family))
            .map_err(|e| ApplyError::Command {
                command: format!("iptables {}", spec.join(" ")),
                status: "exit status 2".into(),
                stderr: e.to_string(),
            })
    }

    fn has_rule(&self, table: &str, chain: &str, rule: &Rule) -> bool {
        self.ruleset
            .chain(table, chain)
            .is_some_and(|c| c.rules.iter().any(|r| r == rule))
    }
}

impl RuleWriter for FakeWriter {
    fn family(&self) -> Family {
        self.ruleset.family
    }

    fn save(&mut self, table: &str) -> Result<String, ApplyError> {
        let mut only = Ruleset::new(self.ruleset.family);
        only.tables.extend(self.ruleset.table(table).cloned());
        Ok(only.to_save())
    }

    fn restore(&mut self, input: &str) -> Result<(), ApplyError> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            self.refused += 1;
            return Err(ApplyError::Restore(
                RestoreFailure {
                    program: "fake iptables-restore".into(),
                    line: Some(1),
                    line_text: None,
                    message: "injected failure".into(),
                }
                .with_input(input),
            ));
        }
        match self.run(input) {
            Ok(()) => {
                self.restores.push(input.to_string());
                Ok(())
            }
            Err(e) => {
                self.refused += 1;
                Err(Self::failure(&e, input))
            }
        }
    }

    fn ensure_chain(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError> {
        if self.ruleset.chain(table, chain).is_some() {
            return Ok(true);
        }
        let line = format!("-N {chain}");
        self.command(table, &line)
            .map_err(|e| Self::failure(&e, &line))?;
        Ok(false)
    }

    fn ensure_rule_first(
        &mut self,
        table: &str,
        chain: &str,
        args: &[&str],
    ) -> Result<bool, ApplyError> {
        let rule = self.rule(args)?;
        if self.has_rule(table, chain, &rule) {
            return Ok(true);
        }
        let spec: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let line = format!("-I {chain} 1 {}", spec.join(" "));
        self.command(table, &line)
            .map_err(|e| Self::failure(&e, &line))?;
        Ok(false)
    }

    fn delete_rule(&mut self, table: &str, chain: &str, args: &[&str]) -> Result<bool, ApplyError> {
        let rule = self.rule(args)?;
        if !self.has_rule(table, chain, &rule) {
            return Ok(false);
        }
        let spec: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let line = format!("-D {chain} {}", spec.join(" "));
        self.command(table, &line)
            .map_err(|e| Self::failure(&e, &line))?;
        Ok(true)
    }

    fn chain_exists(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError> {
        Ok(self.ruleset.chain(table, chain).is_some())
    }
}
