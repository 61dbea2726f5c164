//! The rules kube-proxy keeps outside its restore input: jumps from the built-in chains into
//! its own chains, and the canary chains. Upstream writes these with `iptables -N` /
//! `iptables -C` / `iptables -I` (`EnsureChain`, `EnsureRule(Prepend)`) on every full
//! sync, because a restore may not replace the built-in chains other software also uses.
//!
//! ```text
//!   filter INPUT   ─┬─> KUBE-FIREWALL (kubelet's)         nat PREROUTING ──> KUBE-SERVICES
//!                   ├─> KUBE-PROXY-FIREWALL  (ct NEW)     nat OUTPUT     ──> KUBE-SERVICES
//!                   ├─> KUBE-NODEPORTS                    nat POSTROUTING ─> KUBE-POSTROUTING
//!                   └─> KUBE-EXTERNAL-SERVICES (ct NEW)
//!   filter FORWARD ──> KUBE-PROXY-FIREWALL, KUBE-FORWARD, KUBE-SERVICES, KUBE-EXTERNAL-SERVICES
//!   filter OUTPUT  ──> KUBE-FIREWALL, KUBE-PROXY-FIREWALL, KUBE-SERVICES
//!   mangle, nat, filter: KUBE-PROXY-CANARY (empty; gone = someone flushed: full resync)
//! ```
//! The list is in upstream's order; each rule is inserted at position 1 when missing, so on
//! a fresh node a built-in chain holds them in reverse list order (see
//! [`JumpRule::in_chain`]).

use std::fmt::Write as _;

/// One jump from a built-in chain into a kube-proxy chain (upstream `iptablesJumpChain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JumpRule {
    /// `filter` or `nat`.
    pub table: &'static str,
    /// The built-in chain holding the rule.
    pub from: &'static str,
    /// The kube-proxy chain jumped to (created first with `iptables -N` if missing).
    pub to: &'static str,
    /// `-m comment --comment TEXT`; empty for none (kubelet's `KUBE-FIREWALL` jumps).
    pub comment: &'static str,
    /// Preceded by `-m conntrack --ctstate NEW`.
    pub new_only: bool,
}

const fn jump(
    table: &'static str,
    from: &'static str,
    to: &'static str,
    comment: &'static str,
    new_only: bool,
) -> JumpRule {
    JumpRule {
        table,
        from,
        to,
        comment,
        new_only,
    }
}

/// Upstream `iptablesJumpChains` followed by `iptablesKubeletJumpChains`, in order.
pub const JUMP_RULES: [JumpRule; 14] = [
    jump(
        "filter",
        "INPUT",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        true,
    ),
    jump(
        "filter",
        "FORWARD",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        true,
    ),
    jump(
        "filter",
        "INPUT",
        "KUBE-NODEPORTS",
        "kubernetes health check service ports",
        false,
    ),
    jump(
        "filter",
        "FORWARD",
        "KUBE-SERVICES",
        "kubernetes service portals",
        true,
    ),
    jump(
        "filter",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        true,
    ),
    jump(
        "filter",
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
        false,
    ),
    jump(
        "filter",
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        true,
    ),
    jump(
        "filter",
        "OUTPUT",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        true,
    ),
    jump(
        "filter",
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        true,
    ),
    jump(
        "nat",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        false,
    ),
    jump(
        "nat",
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
        false,
    ),
    jump(
        "nat",
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "kubernetes postrouting rules",
        false,
    ),
    jump("filter", "INPUT", "KUBE-FIREWALL", "", false),
    jump("filter", "OUTPUT", "KUBE-FIREWALL", "", false),
];

/// The chain whose disappearance means someone flushed the tables (upstream
/// `kubeProxyCanaryChain`, watched by `ipt.Monitor`).
pub const CANARY_CHAIN: &str = "KUBE-PROXY-CANARY";

/// The tables holding a canary chain, in the order upstream's monitor checks them.
pub const CANARY_TABLES: [&str; 3] = ["mangle", "nat", "filter"];

impl JumpRule {
    /// The arguments after `iptables -t TABLE -I CHAIN`, one per element, as upstream passes
    /// them (`-m conntrack --ctstate NEW -m comment --comment TEXT -j TARGET`).
    pub fn args(&self) -> Vec<&'static str> {
        let mut a = Vec::with_capacity(8);
        if self.new_only {
            a.extend(["-m", "conntrack", "--ctstate", "NEW"]);
        }
        if !self.comment.is_empty() {
            a.extend(["-m", "comment", "--comment", self.comment]);
        }
        a.extend(["-j", self.to]);
        a
    }

    /// The rule as a restore line (`-A CHAIN …`, the comment quoted).
    pub fn restore_line(&self) -> String {
        let mut s = format!("-A {}", self.from);
        if self.new_only {
            s.push_str(" -m conntrack --ctstate NEW");
        }
        if !self.comment.is_empty() {
            let _ = write!(s, " -m comment --comment \"{}\"", self.comment);
        }
        let _ = write!(s, " -j {}", self.to);
        s
    }

    /// The jump rules of one built-in chain in the order they end up on a fresh node (each
    /// was inserted at position 1, so the last in the list comes first).
    pub fn in_chain(table: &str, chain: &str) -> impl Iterator<Item = &'static JumpRule> {
        let (table, chain) = (table.to_string(), chain.to_string());
        JUMP_RULES
            .iter()
            .rev()
            .filter(move |j| j.table == table && j.from == chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_rules_read_like_upstream() {
        assert_eq!(
            JUMP_RULES[0].restore_line(),
            "-A INPUT -m conntrack --ctstate NEW -m comment --comment \
             \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"
        );
        assert_eq!(JUMP_RULES[13].args(), ["-j", "KUBE-FIREWALL"]);
        let input: Vec<&str> = JumpRule::in_chain("filter", "INPUT")
            .map(|j| j.to)
            .collect();
        assert_eq!(
            input,
            [
                "KUBE-FIREWALL",
                "KUBE-PROXY-FIREWALL",
                "KUBE-NODEPORTS",
                "KUBE-EXTERNAL-SERVICES"
            ]
        );
    }
}
