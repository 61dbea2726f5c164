//! Plain-text rendering of a trace: the verdict first, then one line per step, then the
//! assumptions.
//!
//! ```text
//!   node1: tcp 198.18.0.101:40000 -> 198.19.0.10:80 iif eth0
//!   verdict: forwarded 198.18.0.101:40000 -> 198.18.65.2:8080 out cali1 via 198.18.65.2 (p=0.500); ...
//!   path 1 (p=0.500): forwarded ...
//!     conntrack             NEW
//!     nat/PREROUTING        KUBE-SERVICES#1 -A KUBE-SERVICES -d 198.19.0.10/32 ... -j KUBE-SVC-X  => jump KUBE-SVC-X
//!   assumptions:
//!     - filter/INPUT: ...
//! ```

use std::fmt;

use super::model::{Effect, Step, Trace, Verdict};

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Delivered { dev, to } => write!(f, "delivered to {to} (in {dev})"),
            Verdict::Forwarded {
                out_dev,
                next_hop,
                via_gateway,
                src,
                dst,
            } => {
                write!(f, "forwarded {src} -> {dst} out {out_dev}")?;
                if *via_gateway {
                    write!(f, " via {next_hop}")?;
                }
                Ok(())
            }
            Verdict::Dropped { by, reason } => write!(f, "dropped ({reason}) by {by}"),
            Verdict::Rejected { by, with } => write!(f, "rejected with {} by {by}", with.name),
            Verdict::NoRoute { dst, local } => {
                let r = if *local {
                    "IP_OUTNOROUTES"
                } else {
                    "IP_INNOROUTES"
                };
                write!(f, "no route to {dst} ({r})")
            }
            Verdict::RouteBlackhole { cause } => write!(f, "blackholed by {cause}"),
            Verdict::RouteUnreachable { cause } => write!(f, "unreachable by {cause}"),
            Verdict::RouteProhibit { cause } => write!(f, "prohibited by {cause}"),
            Verdict::RpFilter {
                iif,
                src,
                mode,
                reason,
            } => write!(
                f,
                "dropped by rp_filter ({mode:?}) on {iif}: source {src}: {reason} (IP_RPFILTER)"
            ),
            Verdict::ForwardingDisabled { iif, sysctl } => {
                write!(f, "not forwarded: {sysctl} = 0 (arrived on {iif})")
            }
            Verdict::MtuExceeded { out_dev, mtu, len } => write!(
                f,
                "too big for {out_dev}: {len} bytes > MTU {mtu}, DF set (PKT_TOO_BIG)"
            ),
            Verdict::Martian {
                reason,
                drop_reason,
            } => write!(f, "martian: {reason} ({drop_reason})"),
            Verdict::NotModelled { stage, what } => write!(f, "not modelled at {stage}: {what}"),
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Jump { chain } => write!(f, "jump {chain}"),
            Effect::Goto { chain } => write!(f, "goto {chain}"),
            Effect::Return => f.write_str("return"),
            Effect::EndOfChain => f.write_str("end of chain, return"),
            Effect::Policy { policy } => write!(f, "policy {policy}"),
            Effect::Accept => f.write_str("ACCEPT"),
            Effect::Drop => f.write_str("DROP"),
            Effect::Reject { with } => write!(f, "REJECT with {}", with.name),
            Effect::Counted => f.write_str("counted (no target)"),
            Effect::Log => f.write_str("logged"),
            Effect::Mark { old, new } => write!(f, "mark {old:#x} -> {new:#x}"),
            Effect::Connmark { old, new } => write!(f, "ct mark {old:#x} -> {new:#x}"),
            Effect::Dnat { from, to, range } => {
                write!(f, "DNAT {from} -> {to}")?;
                if let Some(r) = range {
                    write!(f, " (first of {r})")?;
                }
                Ok(())
            }
            Effect::Snat {
                from,
                to,
                range,
                masquerade,
            } => {
                let what = if *masquerade { "MASQUERADE" } else { "SNAT" };
                write!(f, "{what} {from} -> {to}")?;
                if let Some(r) = range {
                    write!(f, " (first of {r})")?;
                }
                Ok(())
            }
            Effect::NoTrack => f.write_str("not tracked"),
            Effect::CtZone { zone } => write!(f, "conntrack zone {zone}"),
            Effect::BranchNotTaken { probability } => {
                write!(f, "not taken (p={probability:.3})")
            }
            Effect::Continue { target } => write!(f, "{target} not modelled, continues"),
            Effect::Conntrack { state, entry, dir } => {
                write!(f, "{state}")?;
                if let Some(e) = entry {
                    let d = match dir {
                        Some(crate::conntrack::Direction::Reply) => "reply direction of ",
                        _ => "",
                    };
                    write!(f, " ({d}entry: {e})")?;
                }
                Ok(())
            }
            Effect::NatFromConntrack { from, to } => {
                write!(f, "NAT from conntrack {from} -> {to}")
            }
            Effect::NatSkipped { reason } => write!(f, "nat table not consulted: {reason}"),
            Effect::Route {
                outcome,
                table,
                route,
                reroute,
                ..
            } => {
                if *reroute {
                    f.write_str("re-route: ")?;
                }
                f.write_str(outcome)?;
                match (route, table) {
                    (Some(r), _) => write!(f, " [route {r}]")?,
                    (None, Some(t)) => write!(f, " [table {t}]")?,
                    (None, None) => {}
                }
                Ok(())
            }
            Effect::RpFilter { mode } => write!(f, "rp_filter {mode:?}: pass"),
            Effect::Loopback => f.write_str("looped back through lo"),
            Effect::SetUpdate { set, op, elem } => {
                write!(f, "{op} @{set} {{ {elem} }} (for later packets)")
            }
            Effect::Ipvs {
                service,
                scheduler,
                server,
                forward,
            } => write!(f, "IPVS {service} ({scheduler}) -> {server} ({forward})"),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut stage = self.stage.clone();
        if let Some(b) = self.backend {
            stage = format!("{stage} ({b})");
        }
        write!(f, "{stage:<22} ")?;
        match (&self.rule, &self.chain) {
            (Some(r), _) => {
                write!(f, "{}#{} {}", r.chain, r.index, r.text)?;
                if let Some(h) = r.handle {
                    write!(f, " # handle {h}")?;
                }
                f.write_str("  => ")?;
            }
            (None, Some(c)) => write!(f, "{c}: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.effect)?;
        if let Some(p) = self.probability {
            write!(f, " (p={p:.3})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.node, self.packet)?;
        writeln!(f, "verdict: {}", self.verdict_summary())?;
        let many = self.paths.len() > 1;
        for (i, p) in self.paths.iter().enumerate() {
            if many {
                write!(f, "path {} (p={:.3}", i + 1, p.probability)?;
                if p.merged > 0 {
                    write!(f, ", {} more alike", p.merged)?;
                }
                writeln!(f, "): {}", p.verdict)?;
            }
            for s in &p.steps {
                writeln!(f, "  {s}")?;
            }
            if !many {
                writeln!(f, "  => {}", p.verdict)?;
            }
        }
        if !self.assumptions.is_empty() {
            writeln!(f, "assumptions:")?;
            for a in &self.assumptions {
                writeln!(f, "  - {a}")?;
            }
        }
        Ok(())
    }
}
