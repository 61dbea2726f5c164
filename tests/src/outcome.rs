//! The one place that says what a trace predicts a real client sees, and how a real attempt
//! is classified, so the two can be compared.
//!
//! ```text
//!   trace verdict (per path)                 what the sender observes
//!   Delivered to the DUT, port open    ->    Answered { host: "dut", client: final source }
//!   Delivered, port closed             ->    Refused (TCP RST / ICMP port unreachable)
//!   Forwarded, next hop owns the dst   ->    Answered { that host, client: final source } (or Refused)
//!   Forwarded, next hop does not       ->    Timeout (a plain host drops it)
//!   Rejected --reject-with X           ->    Refused / HostUnreachable / NetUnreachable / Prohibited
//!   Dropped (rule, policy, conntrack)  ->    Timeout; sent by the DUT itself: Prohibited (EPERM)
//!   NoRoute / unreachable / prohibit   ->    NetUnreachable / HostUnreachable (IPv6: Net...) / Prohibited
//!   blackhole route                    ->    Timeout; sent by the DUT itself: Blackhole (EINVAL)
//!   rp_filter, forwarding off, martian ->    Timeout
//!   MtuExceeded                        ->    FragNeeded (EMSGSIZE from the ICMP error)
//! ```
//! `icmp` says whether an ICMP error came back (a remote refusal) or the error was local.

use std::collections::BTreeMap;
use std::net::IpAddr;

use dataplane::trace::{Trace, Verdict};
use lab::{ConnError, Greeting};

use crate::topo::DutLab;

/// What a request can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP connect, read the greeting.
    Tcp,
    /// One UDP datagram, read the reply.
    Udp,
    /// ICMP echo.
    Ping,
    /// A raw TCP SYN-ACK out of the blue (conntrack INVALID); a reachable host answers RST.
    SynAck,
}

/// What the sender observed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Observed {
    /// An echo server answered: its host name and the client address it saw.
    Answered {
        /// Host name.
        host: String,
        /// Client address seen (after SNAT).
        client: IpAddr,
    },
    /// An ICMP echo reply came back.
    EchoReply,
    /// Connection refused: TCP RST (`icmp: false`) or ICMP port unreachable.
    Refused {
        /// Whether an ICMP error came back.
        icmp: bool,
    },
    /// Host unreachable.
    HostUnreachable {
        /// Whether an ICMP error came back (else a local route error).
        icmp: bool,
    },
    /// Network unreachable.
    NetUnreachable {
        /// Whether an ICMP error came back.
        icmp: bool,
    },
    /// Administratively prohibited (ICMP), or EACCES/EPERM locally.
    Prohibited {
        /// Whether an ICMP error came back.
        icmp: bool,
    },
    /// A local blackhole route (EINVAL).
    Blackhole,
    /// Silence.
    Timeout,
    /// ICMP fragmentation needed / packet too big (EMSGSIZE).
    FragNeeded,
    /// Anything else (the text says what).
    Other(String),
}

/// Classifies the result of one attempt.
pub fn classify(r: Result<String, ConnError>) -> Observed {
    match r {
        Ok(line) => match Greeting::parse(&line) {
            Some(g) => Observed::Answered {
                host: g.host,
                client: g.client.ip(),
            },
            None => Observed::Other(format!("unexpected reply {line:?}")),
        },
        Err(e) => classify_err(&e),
    }
}

/// Classifies a failed attempt.
pub fn classify_err(e: &ConnError) -> Observed {
    match e {
        ConnError::Refused { icmp } => Observed::Refused {
            icmp: icmp.is_some(),
        },
        ConnError::HostUnreachable { icmp } => Observed::HostUnreachable {
            icmp: icmp.is_some(),
        },
        ConnError::NetUnreachable { icmp } => Observed::NetUnreachable {
            icmp: icmp.is_some(),
        },
        ConnError::Prohibited { icmp } => Observed::Prohibited {
            icmp: icmp.is_some(),
        },
        ConnError::Blackhole => Observed::Blackhole,
        ConnError::Timeout | ConnError::NoReply => Observed::Timeout,
        ConnError::Io { source, .. } if source.raw_os_error() == Some(libc::EMSGSIZE) => {
            Observed::FragNeeded
        }
        other => Observed::Other(other.to_string()),
    }
}

/// The observation a path's verdict predicts. `local`: the DUT itself sent the packet.
pub fn expect_verdict(
    lab: &DutLab,
    v: &Verdict,
    final_src: IpAddr,
    proto: Proto,
    local: bool,
) -> Observed {
    let tcp = matches!(proto, Proto::Tcp | Proto::SynAck);
    let v6 = final_src.is_ipv6();
    let at_host = |host: &str, port: u16| match proto {
        Proto::Ping => Observed::EchoReply,
        Proto::SynAck => Observed::Refused { icmp: false },
        _ if lab.world.listens(host, tcp, port) => Observed::Answered {
            host: host.to_string(),
            client: final_src,
        },
        _ => Observed::Refused { icmp: !tcp },
    };
    match v {
        Verdict::Delivered { to, .. } => at_host("dut", to.port),
        Verdict::Forwarded { next_hop, dst, .. } => {
            let Some(host) = lab.world.owner(*next_hop) else {
                return Observed::Timeout;
            };
            if lab.owns(host, dst.addr) {
                at_host(host, dst.port)
            } else {
                Observed::Timeout
            }
        }
        Verdict::Dropped { .. } if local && proto != Proto::Tcp => {
            Observed::Prohibited { icmp: false }
        }
        Verdict::Dropped { .. } => Observed::Timeout,
        Verdict::Rejected { with, .. } => {
            // iptables names (`tcp-reset`, `icmp-port-unreachable`) and nft's (`tcp reset`,
            // `icmpx port-unreachable`); a reset sends no ICMP
            let n = with.name.as_str();
            if with.icmp.is_none() || n.contains("port-unreach") {
                Observed::Refused {
                    icmp: with.icmp.is_some(),
                }
            } else if n.contains("host-unreach") || n.contains("addr-unreach") {
                Observed::HostUnreachable { icmp: true }
            } else if n.contains("net-unreach") || n.contains("no-route") {
                Observed::NetUnreachable { icmp: true }
            } else if n.contains("prohib")
                || n.contains("policy-fail")
                || n.contains("reject-route")
            {
                Observed::Prohibited { icmp: true }
            } else {
                Observed::Other(format!("reject with {n}"))
            }
        }
        Verdict::NoRoute { .. } => Observed::NetUnreachable { icmp: !local },
        // IPv6 answers an unreachable route with ICMPv6 "no route" (ENETUNREACH); IPv4 with
        // host unreachable for a route, net unreachable for a rule.
        Verdict::RouteUnreachable { cause } if cause.starts_with("rule") || v6 => {
            Observed::NetUnreachable { icmp: !local }
        }
        Verdict::RouteUnreachable { .. } => Observed::HostUnreachable { icmp: !local },
        Verdict::RouteProhibit { .. } => Observed::Prohibited { icmp: !local },
        Verdict::RouteBlackhole { .. } if local => Observed::Blackhole,
        Verdict::RouteBlackhole { .. }
        | Verdict::RpFilter { .. }
        | Verdict::ForwardingDisabled { .. }
        | Verdict::Martian { .. } => Observed::Timeout,
        Verdict::MtuExceeded { .. } => Observed::FragNeeded,
        Verdict::NotModelled { what, .. } => Observed::Other(format!("not modelled: {what}")),
    }
}

/// Every observation the trace allows, with its probability.
pub fn expect(lab: &DutLab, t: &Trace, proto: Proto, local: bool) -> BTreeMap<Observed, f64> {
    let mut m = BTreeMap::new();
    for p in &t.paths {
        let o = expect_verdict(lab, &p.verdict, p.final_packet.src, proto, local);
        *m.entry(o).or_insert(0.0) += p.probability;
    }
    m
}

/// Whether the observations agree with the prediction: each observation is predicted, and
/// every predicted outcome whose probability makes missing it in `n` tries unlikely
/// (`(1-p)^n < 1e-3`) was seen.
pub fn agrees(predicted: &BTreeMap<Observed, f64>, seen: &[Observed]) -> Result<(), String> {
    for o in seen {
        if !predicted.contains_key(o) {
            return Err(format!("observed {o:?}, not predicted"));
        }
    }
    let n = seen.len() as i32;
    for (o, p) in predicted {
        let miss = (1.0 - p).max(0.0).powi(n);
        if miss < 1e-3 && !seen.contains(o) {
            return Err(format!(
                "predicted {o:?} with p={p:.3} but not seen in {n} tries"
            ));
        }
    }
    Ok(())
}
