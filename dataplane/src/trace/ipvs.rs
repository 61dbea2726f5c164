//! IPVS as a tracer program: the virtual-server table of [`crate::ipvs`] hooked where the
//! kernel hooks it (`ip_vs_ops4` / `ip_vs_ops6` in `ip_vs_core.c`):
//!
//! ```text
//!   LOCAL_IN  priority 99  (NF_IP_PRI_NAT_SRC - 1)  ip_vs_remote_request: received packets to
//!                          an address of this host (a VIP bound on kube-ipvs0, a node IP)
//!   LOCAL_OUT priority -98 (NF_IP_PRI_NAT_DST + 2)  ip_vs_local_request: locally sent packets
//!
//!   service lookup (fwmark, proto+addr+port, port 0) -> scheduler shares (Service::select)
//!     each real server with its share forks the path; no server available: ICMP port
//!     unreachable + drop (ip_vs_leave)
//!   Masq: DNAT to the server (conntrack's reply tuple follows with vs/conntrack=1);
//!     a local server: the packet goes on through the hook (NF_ACCEPT);
//!     else stolen (NF_STOLEN): route to the server, the whole LOCAL_OUT hook again
//!     (ip_vs_nat_send_or_cont), POSTROUTING (SNAT / MASQUERADE there), out
//!   Route (DR): the packet unchanged, sent to the server as next hop, same way out
//!   Tunnel, Bypass: not modelled
//! ```
//! The packet then carries `ipvs_property`: IPVS leaves it alone on the way out. The reply
//! hooks (`ip_vs_reply4` at LOCAL_IN 98 / FORWARD 100) and `ip_vs_forward_icmp` act on
//! replies and ICMP errors only and are not walked.

use crate::ipvs::{Forward, IpvsState, RealServer, Service};
use crate::packet::{Family, Protocol, TcpFlags};

use super::engine::Tracer;
use super::model::{AssumptionCode, Effect, Endpoint, RejectKind, RuleRef, Step, Verdict};
use super::program::{Hook, Program, Registration};
use super::state::{PathState, Phase};

/// `NF_IP_PRI_NAT_SRC - 1` (`NF_IP6_PRI_NAT_SRC - 1`): after filter and security INPUT,
/// before nat INPUT.
pub(crate) const PRIORITY_LOCAL_IN: i32 = 99;
/// `NF_IP_PRI_NAT_DST + 2`: after nat OUTPUT, before filter OUTPUT.
pub(crate) const PRIORITY_LOCAL_OUT: i32 = -98;

/// The IPVS table of a node, for one family.
pub(crate) struct IpvsProgram<'a> {
    pub(crate) table: &'a IpvsState,
    pub(crate) family: Family,
}

/// The stage name of IPVS steps.
const STAGE: &str = "ipvs";

/// The service as a rule of the `ipvs` table (`-A -t 198.19.0.10:80 -s rr`).
fn service_ref(svc: &Service, index: usize) -> RuleRef {
    RuleRef {
        backend: None,
        table: "ipvs".to_string(),
        chain: svc.key.to_ipvsadm(),
        index,
        text: svc.to_save_line(),
        handle: None,
    }
}

fn step(rule: &RuleRef, probability: Option<f64>, effect: Effect) -> Step {
    Step {
        stage: STAGE.to_string(),
        backend: None,
        table: Some("ipvs".to_string()),
        chain: Some(rule.chain.clone()),
        rule: Some(rule.clone()),
        probability,
        effect,
    }
}

impl IpvsProgram<'_> {
    fn has_services(&self) -> bool {
        self.table
            .services
            .iter()
            .any(|s| s.key.family() == self.family)
    }

    /// Whether IPVS' connection tracking is on (`net.ipv4.vs.conntrack`, which kube-proxy
    /// sets to 1): then the packet keeps its conntrack entry (and can be masqueraded in
    /// POSTROUTING); off, IPVS makes it untracked (`ip_vs_notrack`).
    fn conntrack(&self, tr: &Tracer<'_>, rule: &RuleRef) -> bool {
        match tr.node.sysctls.get("net.ipv4.vs.conntrack") {
            Some(v) => v.trim() != "0",
            None => {
                tr.assume(
                    AssumptionCode::Ipvs,
                    STAGE,
                    Some(rule),
                    "net.ipv4.vs.conntrack unknown: assumed 1 (kube-proxy's setting), the \
                     connection stays tracked"
                        .to_string(),
                );
                true
            }
        }
    }

    /// Sends one scheduled path to `server` (its `forward` method), `p` its share.
    #[allow(clippy::too_many_arguments)] // the path and everything the step names
    fn forward(
        &self,
        tr: &Tracer<'_>,
        svc: &Service,
        rule: &RuleRef,
        server: &RealServer,
        p: f64,
        tracked: bool,
        mut st: PathState,
    ) -> PathState {
        let port = if server.port == 0 {
            st.pkt.dport
        } else {
            server.port
        };
        let prob = (p < 1.0).then_some(p);
        st.steps.push(step(
            rule,
            prob,
            Effect::Ipvs {
                service: svc.key.to_ipvsadm(),
                scheduler: svc.scheduler.name().to_string(),
                server: Endpoint {
                    addr: server.addr,
                    port,
                },
                forward: server.forward.label().to_string(),
            },
        ));
        st.ipvs_done = true;
        if !tracked {
            st.ct.notrack = true;
            st.ct.state = crate::packet::CtState::Untracked;
            st.pkt.ct_state = crate::packet::CtState::Untracked;
        }
        match server.forward {
            Forward::Masq | Forward::Local => {
                let local = tr.node.routes.is_local_address(server.addr);
                st.set_dst(server.addr, port);
                if tracked {
                    // the connection now maps to the server (ip_vs_update_conntrack)
                    st.ct.dst_init = true;
                }
                if !local {
                    st.leave = Some(Phase::IpvsXmit);
                    st.ipvs_via = None;
                }
            }
            Forward::Route => {
                st.leave = Some(Phase::IpvsXmit);
                st.ipvs_via = Some(server.addr);
            }
            other => st.finish(Verdict::NotModelled {
                stage: STAGE.to_string(),
                what: format!(
                    "IPVS forwarding method {} to {}",
                    other.label(),
                    server.addr
                ),
            }),
        }
        st
    }
}

/// ICMP port unreachable, as `ip_vs_leave` sends it (`icmp_send` / `icmpv6_send`).
fn port_unreachable(family: Family) -> RejectKind {
    match family {
        Family::V4 => RejectKind {
            name: "icmp-port-unreachable".to_string(),
            icmp: Some((3, 3)),
        },
        Family::V6 => RejectKind {
            name: "icmp6-port-unreachable".to_string(),
            icmp: Some((1, 4)),
        },
    }
}

impl Program for IpvsProgram<'_> {
    fn name(&self) -> String {
        "ipvs".to_string()
    }

    fn priority(&self, hook: Hook) -> Option<i32> {
        match hook {
            Hook::Input => Some(PRIORITY_LOCAL_IN),
            Hook::Output => Some(PRIORITY_LOCAL_OUT),
            _ => None,
        }
    }

    fn is_nat(&self) -> bool {
        false
    }

    fn reroutes(&self) -> bool {
        false
    }

    fn registered(&self, _hook: Hook) -> Registration {
        Registration::Module
    }

    fn acts_at(&self, hook: Hook) -> bool {
        self.priority(hook).is_some() && self.has_services()
    }

    fn run(&self, tr: &Tracer<'_>, hook: Hook, st: PathState) -> Vec<PathState> {
        if st.ipvs_done || self.priority(hook).is_none() {
            return vec![st];
        }
        let Some(svc) = self.table.lookup(&st.pkt) else {
            return vec![st];
        };
        let index = self
            .table
            .services
            .iter()
            .position(|s| std::ptr::eq(s, svc))
            .unwrap_or(0);
        let rule = service_ref(svc, index + 1);
        // tcp_conn_schedule: only a SYN starts a connection; other segments without an IPVS
        // connection entry pass (sloppy_tcp off)
        if st.pkt.proto == Protocol::Tcp && !st.pkt.tcp_flags.has(TcpFlags::SYN) {
            tr.assume(
                AssumptionCode::Ipvs,
                STAGE,
                Some(&rule),
                "a TCP segment without SYN: IPVS schedules only SYNs; no IPVS connection entry \
                 is known, so the packet passes (sloppy_tcp off)"
                    .to_string(),
            );
            return vec![st];
        }
        let sel = svc.select(&st.pkt);
        for a in &sel.assumptions {
            tr.assume(AssumptionCode::Ipvs, STAGE, Some(&rule), a.to_string());
        }
        let tracked = self.conntrack(tr, &rule);
        let mut out = Vec::new();
        let mut shares: Vec<(&RealServer, f64)> =
            sel.chosen().map(|c| (c.server, c.share)).collect();
        if sel.unreachable > 0.0 && shares.is_empty() {
            let mut s = st;
            let with = port_unreachable(self.family);
            s.steps
                .push(step(&rule, None, Effect::Reject { with: with.clone() }));
            s.finish(Verdict::Rejected { by: rule, with });
            return vec![s];
        }
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut first = true;
        for (server, share) in shares {
            if !first && !tr.try_fork() {
                tr.unexplored(st.prob * share);
                continue;
            }
            first = false;
            let mut s = st.clone();
            s.prob *= share;
            out.push(self.forward(tr, svc, &rule, server, share, tracked, s));
        }
        if sel.unreachable > 0.0 {
            if tr.try_fork() {
                let mut s = st.clone();
                s.prob *= sel.unreachable;
                let with = port_unreachable(self.family);
                s.steps.push(step(
                    &rule,
                    Some(sel.unreachable),
                    Effect::Reject { with: with.clone() },
                ));
                s.finish(Verdict::Rejected { by: rule, with });
                out.push(s);
            } else {
                tr.unexplored(st.prob * sel.unreachable);
            }
        }
        out
    }
}
