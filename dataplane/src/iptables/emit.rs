//! Writing a [`Ruleset`] as `iptables-save` text (exactly what was parsed, comments and
//! counters included) or as `iptables-restore` input (tables, `:CHAIN POLICY [0:0]`, `-A`
//! rules, `COMMIT`).

use std::fmt::Write;

use super::model::{Counters, Ruleset, Table};

impl Ruleset {
    /// The ruleset as iptables-save prints it; canonical input comes back byte for byte.
    pub fn to_save(&self) -> String {
        let mut out = String::with_capacity(self.rule_count() * 120 + 256);
        for t in &self.tables {
            for c in &t.header {
                out.push_str(c);
                out.push('\n');
            }
            self.write_table(&mut out, t, false);
            for c in &t.footer {
                out.push_str(c);
                out.push('\n');
            }
        }
        for c in &self.trailing_comments {
            out.push_str(c);
            out.push('\n');
        }
        out
    }

    /// The ruleset as `iptables-restore` input: no comments, chain counters `[0:0]`, no rule
    /// counters. Loading it with `iptables-restore` (without `--noflush`) recreates the ruleset.
    pub fn to_restore(&self) -> String {
        let mut out = String::with_capacity(self.rule_count() * 120 + 256);
        for t in &self.tables {
            self.write_table(&mut out, t, true);
        }
        out
    }

    fn write_table(&self, out: &mut String, t: &Table, restore: bool) {
        let _ = writeln!(out, "*{}", t.name);
        if !restore {
            for c in &t.body_comments {
                out.push_str(c);
                out.push('\n');
            }
        }
        for c in t.chains() {
            let counters = if restore {
                Counters::default()
            } else {
                c.counters.unwrap_or_default()
            };
            if restore || c.counters.is_some() {
                let _ = writeln!(
                    out,
                    ":{} {} {}",
                    c.name,
                    c.policy_or_dash().as_str(),
                    counters
                );
            } else {
                let _ = writeln!(out, ":{} {}", c.name, c.policy_or_dash().as_str());
            }
        }
        for c in t.chains() {
            for r in &c.rules {
                if !restore && let Some(k) = r.counters {
                    let _ = write!(out, "{k} ");
                }
                out.push_str("-A ");
                out.push_str(&c.name);
                r.write_spec(out, self.family);
                out.push('\n');
            }
        }
        out.push_str("COMMIT\n");
    }
}
