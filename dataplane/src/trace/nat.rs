//! NAT targets applied to a path: DNAT / REDIRECT rewrite the destination, SNAT / MASQUERADE
//! the source; each sets up the connection's binding (its reply tuple), so later packets and
//! later hooks see the mapping.
//!
//! ```text
//!   DNAT --to-destination A[-B][:P[-Q]]   first address, first port (the range is reported)
//!   SNAT --to-source A[-B][:P[-Q]]        first address; the port is kept unless a range says
//!   MASQUERADE [--to-ports P[-Q]]         the output device's address toward the next hop
//!                                         (inet_select_addr / ipv6_dev_get_saddr)
//!   REDIRECT [--to-ports P[-Q]]           PREROUTING: the input device's first address;
//!                                         OUTPUT: 127.0.0.1 / ::1
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::iptables::{NatRange, PortRange, Target};
use crate::packet::Family;
use crate::route::Scope;

use super::engine::Tracer;
use super::model::{AssumptionCode, Effect};
use super::program::Hook;
use super::state::PathState;

/// Notes (assumptions) a NAT target produced.
pub(crate) type Notes = Vec<(AssumptionCode, String)>;

fn range_text(r: &NatRange) -> Option<String> {
    let many_addrs = r.addrs.is_some_and(|(lo, hi)| lo != hi);
    let many_ports = r.ports.is_some_and(|p| p.lo != p.hi);
    if !many_addrs && !many_ports {
        return None;
    }
    let mut s = match r.addrs {
        Some((lo, hi)) if lo != hi => format!("{lo}-{hi}"),
        Some((lo, _)) => lo.to_string(),
        None => String::new(),
    };
    if let Some(p) = r.ports {
        s.push(':');
        s.push_str(&p.to_string_sep('-'));
    }
    Some(s)
}

fn first_port(ports: Option<PortRange>, keep: u16) -> u16 {
    ports.map(|p| p.lo).unwrap_or(keep)
}

/// The address MASQUERADE picks on `dev` toward `near`.
fn masquerade_addr(tr: &Tracer<'_>, dev: &str, near: IpAddr, family: Family) -> Option<IpAddr> {
    let routes = &tr.node.routes;
    match (family, near) {
        (Family::V4, IpAddr::V4(n)) => routes.select_v4(dev, Some(n), Scope::GLOBAL).0,
        (Family::V6, dst) => routes.select_v6(Some(dev), dst, None).0,
        _ => None,
    }
}

/// The first address of `dev` that REDIRECT uses.
fn redirect_addr(tr: &Tracer<'_>, dev: &str, family: Family) -> Option<IpAddr> {
    tr.node
        .routes
        .addresses
        .iter()
        .find(|i| i.ifname == dev)?
        .addrs
        .iter()
        .filter(|a| a.family == family && !a.is_secondary())
        .map(|a| a.local)
        .find(|a| match a {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => true,
        })
}

/// Applies a NAT target; `Err` says why the kernel would drop the packet instead.
pub(crate) fn apply_target(
    tr: &Tracer<'_>,
    hook: Hook,
    target: &Target,
    family: Family,
    st: &mut PathState,
) -> Result<(Effect, Notes), String> {
    let mut notes: Notes = Vec::new();
    let ports = st.pkt.proto.has_ports();
    let note_range = |r: &Option<String>, notes: &mut Notes| {
        if let Some(r) = r {
            notes.push((
                AssumptionCode::NatRangeFirst,
                format!("NAT range {r}: the first address and port were taken (the kernel hashes the connection onto the range)"),
            ));
        }
    };
    match target {
        Target::Dnat(n) => {
            let r = n.to.unwrap_or_default();
            let range = range_text(&r);
            note_range(&range, &mut notes);
            let from = st.dst();
            let addr = r.addrs.map(|(lo, _)| lo).unwrap_or(st.pkt.dst);
            let port = first_port(r.ports, st.pkt.dport);
            st.set_dst(addr, port);
            st.ct.dst_init = true;
            Ok((
                Effect::Dnat {
                    from,
                    to: st.dst(),
                    range,
                },
                notes,
            ))
        }
        Target::Snat(n) => {
            let r = n.to.unwrap_or_default();
            let range = range_text(&r);
            note_range(&range, &mut notes);
            if (n.random || n.random_fully) && ports {
                notes.push((
                    AssumptionCode::NatPortRandom,
                    "SNAT --random: the source port is chosen at random; the original port is shown".to_string(),
                ));
            }
            let from = st.src();
            let addr = r.addrs.map(|(lo, _)| lo).unwrap_or(st.pkt.src);
            let port = first_port(r.ports, st.pkt.sport);
            st.set_src(addr, port);
            st.ct.src_init = true;
            Ok((
                Effect::Snat {
                    from,
                    to: st.src(),
                    range,
                    masquerade: false,
                },
                notes,
            ))
        }
        Target::Masquerade(p) => {
            let Some(route) = st.route.clone() else {
                return Err("MASQUERADE before a route was chosen".to_string());
            };
            let near = route.gateway.unwrap_or(st.pkt.dst);
            let Some(addr) = masquerade_addr(tr, &route.dev, near, family) else {
                return Err(format!(
                    "MASQUERADE finds no {family} address to use on {}: the kernel drops the packet",
                    route.dev
                ));
            };
            if (p.random || p.random_fully) && ports {
                notes.push((
                    AssumptionCode::NatPortRandom,
                    "MASQUERADE --random(-fully): the source port is chosen at random; the original port is shown".to_string(),
                ));
            }
            let range = p
                .to_ports
                .filter(|r| r.lo != r.hi)
                .map(|r| format!(":{}", r.to_string_sep('-')));
            note_range(&range, &mut notes);
            let from = st.src();
            let port = first_port(p.to_ports, st.pkt.sport);
            st.set_src(addr, port);
            st.ct.src_init = true;
            Ok((
                Effect::Snat {
                    from,
                    to: st.src(),
                    range,
                    masquerade: true,
                },
                notes,
            ))
        }
        Target::Redirect(p) => {
            let addr = if hook == Hook::Output {
                match family {
                    Family::V4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
                }
            } else {
                let dev = st.pkt.iif.clone().unwrap_or_default();
                redirect_addr(tr, &dev, family).ok_or_else(|| {
                    format!(
                        "REDIRECT finds no {family} address on {dev}: the kernel drops the packet"
                    )
                })?
            };
            let range = p
                .to_ports
                .filter(|r| r.lo != r.hi)
                .map(|r| format!(":{}", r.to_string_sep('-')));
            note_range(&range, &mut notes);
            let from = st.dst();
            let port = first_port(p.to_ports, st.pkt.dport);
            st.set_dst(addr, port);
            st.ct.dst_init = true;
            Ok((
                Effect::Dnat {
                    from,
                    to: st.dst(),
                    range,
                },
                notes,
            ))
        }
        _ => Err("not a NAT target".to_string()),
    }
}
