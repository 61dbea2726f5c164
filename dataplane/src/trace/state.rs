//! The state of one path of a trace: the packet as it is now, its conntrack view, the route
//! chosen so far, the steps taken and the phase of the walk. A path is cloned when a
//! `statistic` rule or a multipath route forks it.

use std::net::IpAddr;

use crate::conntrack::{Direction, IcmpKey, Tuple};
use crate::iptables::{CtInfo, CtStatus, CtTuple};
use crate::packet::{CtState, Packet, Protocol};

use super::model::{Effect, Endpoint, Step, Verdict};

/// Where a path is in the kernel's receive / send path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Arrived on an interface: PREROUTING hook.
    Prerouting,
    /// The input routing decision.
    RouteInput,
    /// INPUT hook, then delivery.
    Input,
    /// MTU check, FORWARD hook.
    Forward,
    /// Sent locally: the output routing decision.
    RouteOutput,
    /// OUTPUT hook (with re-routes).
    Output,
    /// POSTROUTING hook, then out (or loop back through `lo`).
    Postrouting,
    /// Looped back: PREROUTING on `lo` without conntrack lookup, nat or route lookup.
    LoopbackIn,
    /// Stolen by IPVS at LOCAL_IN or LOCAL_OUT and sent on: the route to the real server,
    /// then the OUTPUT hook again (`ip_vs_nat_send_or_cont`).
    IpvsXmit,
}

/// The route a path took.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteChoice {
    /// Delivered locally (through `lo` for a locally sent packet).
    pub(crate) local: bool,
    /// Output device.
    pub(crate) dev: String,
    /// Gateway, if any.
    pub(crate) gateway: Option<IpAddr>,
    /// The route's MTU metric.
    pub(crate) mtu: Option<u32>,
}

/// The conntrack view of a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ct {
    /// `NOTRACK` / `CT --notrack` was hit: the packet stays untracked.
    pub(crate) notrack: bool,
    /// The zone (`CT --zone`).
    pub(crate) zone: u16,
    /// Whether the conntrack hook has run.
    pub(crate) looked_up: bool,
    /// The state the packet has.
    pub(crate) state: CtState,
    /// The existing entry found (its index in the node's table).
    pub(crate) entry: Option<usize>,
    /// Direction of the packet in its connection.
    pub(crate) dir: Direction,
    /// The connection's original tuple.
    pub(crate) orig: Option<Tuple>,
    /// The connection's reply tuple (NAT bindings change it).
    pub(crate) reply: Option<Tuple>,
    /// Destination NAT set up (by a rule, a null binding, or an existing entry).
    pub(crate) dst_init: bool,
    /// Source NAT set up.
    pub(crate) src_init: bool,
    /// The connection mark.
    pub(crate) mark: u32,
    /// The entry's seconds left.
    pub(crate) expire: Option<u32>,
    /// `[ASSURED]`, `SEEN_REPLY` of an existing entry.
    pub(crate) assured: bool,
    /// Whether a reply was seen.
    pub(crate) seen_reply: bool,
}

impl Ct {
    pub(crate) fn new() -> Ct {
        Ct {
            notrack: false,
            zone: 0,
            looked_up: false,
            state: CtState::New,
            entry: None,
            dir: Direction::Original,
            orig: None,
            reply: None,
            dst_init: false,
            src_init: false,
            mark: 0,
            expire: None,
            assured: false,
            seen_reply: false,
        }
    }

    /// Whether NAT can apply (a tracked, valid connection).
    pub(crate) fn nat_capable(&self) -> bool {
        self.looked_up
            && !self.notrack
            && !matches!(self.state, CtState::Invalid | CtState::Untracked)
            && self.orig.is_some()
    }

    /// What `-m conntrack` sees.
    pub(crate) fn info(&self) -> Option<CtInfo> {
        if !self.looked_up || matches!(self.state, CtState::Invalid | CtState::Untracked) {
            return None;
        }
        let t = |t: &Tuple| CtTuple {
            src: t.src,
            dst: t.dst,
            sport: t.sport,
            dport: t.dport,
        };
        let mut status = 0;
        if self.entry.is_some() {
            status |= CtStatus::CONFIRMED;
        }
        if self.seen_reply {
            status |= CtStatus::SEEN_REPLY;
        }
        if self.assured {
            status |= CtStatus::ASSURED;
        }
        if status == 0 {
            status = CtStatus::NONE;
        }
        Some(CtInfo {
            orig: self.orig.as_ref().map(t),
            reply: self.reply.as_ref().map(t),
            status: Some(CtStatus(status)),
            mark: Some(self.mark),
            expire: self.expire,
            dir: Some(match self.dir {
                Direction::Original => crate::iptables::CtDir::Original,
                Direction::Reply => crate::iptables::CtDir::Reply,
            }),
        })
    }
}

/// The conntrack tuple of a packet (ICMP: type and code, id unknown).
pub(crate) fn tuple_of(p: &Packet) -> Tuple {
    let icmp = match p.proto {
        Protocol::Icmp | Protocol::Icmpv6 => p.icmp.map(|h| IcmpKey {
            icmp_type: h.icmp_type,
            code: h.code,
            id: 0,
        }),
        _ => None,
    };
    let ports = p.proto.has_ports();
    Tuple {
        src: p.src,
        dst: p.dst,
        sport: if ports { p.sport } else { 0 },
        dport: if ports { p.dport } else { 0 },
        icmp,
    }
}

/// One path being walked.
#[derive(Debug, Clone)]
pub(crate) struct PathState {
    pub(crate) pkt: Packet,
    pub(crate) prob: f64,
    pub(crate) steps: Vec<Step>,
    pub(crate) ct: Ct,
    pub(crate) route: Option<RouteChoice>,
    pub(crate) phase: Phase,
    pub(crate) verdict: Option<Verdict>,
    /// A program took the packet out of its hook (`NF_STOLEN`): the phase it goes on in.
    pub(crate) leave: Option<Phase>,
    /// IPVS scheduled the packet (`skb->ipvs_property`): IPVS leaves it alone from now on.
    pub(crate) ipvs_done: bool,
    /// IPVS direct routing: the real server, as next hop (the destination is unchanged).
    pub(crate) ipvs_via: Option<IpAddr>,
}

impl PathState {
    pub(crate) fn new(pkt: Packet) -> PathState {
        let phase = if pkt.iif.is_some() {
            Phase::Prerouting
        } else {
            Phase::RouteOutput
        };
        PathState {
            pkt,
            prob: 1.0,
            steps: Vec::new(),
            ct: Ct::new(),
            route: None,
            phase,
            verdict: None,
            leave: None,
            ipvs_done: false,
            ipvs_via: None,
        }
    }

    /// Records a step without rule.
    pub(crate) fn note(&mut self, stage: &str, effect: Effect) {
        self.steps.push(Step {
            stage: stage.to_string(),
            backend: None,
            table: None,
            chain: None,
            rule: None,
            probability: None,
            effect,
        });
    }

    /// Ends the path.
    pub(crate) fn finish(&mut self, v: Verdict) {
        self.verdict = Some(v);
    }

    pub(crate) fn dst(&self) -> Endpoint {
        Endpoint::dst_of(&self.pkt)
    }

    pub(crate) fn src(&self) -> Endpoint {
        Endpoint::src_of(&self.pkt)
    }

    /// Rewrites the destination (DNAT) and keeps the connection's reply tuple in step.
    pub(crate) fn set_dst(&mut self, addr: IpAddr, port: u16) {
        self.pkt.dst = addr;
        if self.pkt.proto.has_ports() {
            self.pkt.dport = port;
        }
        if self.ct.dir == Direction::Original
            && let Some(r) = self.ct.reply.as_mut()
        {
            r.src = addr;
            if self.pkt.proto.has_ports() {
                r.sport = port;
            }
        }
    }

    /// Rewrites the source (SNAT) and keeps the reply tuple in step.
    pub(crate) fn set_src(&mut self, addr: IpAddr, port: u16) {
        self.pkt.src = addr;
        if self.pkt.proto.has_ports() {
            self.pkt.sport = port;
        }
        if self.ct.dir == Direction::Original
            && let Some(r) = self.ct.reply.as_mut()
        {
            r.dst = addr;
            if self.pkt.proto.has_ports() {
                r.dport = port;
            }
        }
    }
}
