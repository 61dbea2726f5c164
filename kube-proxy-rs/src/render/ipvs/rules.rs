//! The helper iptables rules of IPVS mode as `iptables-restore --noflush` input: nat
//! (masquerade decisions by ipset) and filter (REJECT / DROP of what has no virtual service,
//! health check ports, source ranges, the IPVS access filter).

use std::fmt::Write as _;
use std::net::IpAddr;

use dataplane::Family;

use super::sets::{SetName, SetPlan};
use super::{FILTER_CHAINS, IpvsOptions, NAT_CHAINS, PortPlan, Refusal, proto_name};
use crate::model::{LocalTraffic, ProxyState};

struct Chains {
    chains: Vec<(&'static str, String)>,
}

impl Chains {
    fn new(names: &[&'static str]) -> Chains {
        Chains {
            chains: names.iter().map(|n| (*n, String::new())).collect(),
        }
    }

    /// Appends `-A CHAIN REST`.
    fn rule(&mut self, chain: &'static str, rest: &str) {
        if let Some((_, buf)) = self.chains.iter_mut().find(|(n, _)| *n == chain) {
            let _ = writeln!(buf, "-A {chain} {rest}");
        }
    }

    fn write(&self, table: &str, out: &mut String) {
        let _ = writeln!(out, "*{table}");
        for (n, _) in &self.chains {
            let _ = writeln!(out, ":{n} - [0:0]");
        }
        for (_, b) in &self.chains {
            out.push_str(b);
        }
        out.push_str("COMMIT\n");
    }
}

fn set_match(sets: &[SetPlan], set: SetName, dirs: &str) -> String {
    let name = sets
        .iter()
        .find(|s| s.set == set)
        .map_or_else(|| set.name(Family::V4), |s| s.name.clone());
    format!("-m set --match-set {name} {dirs}")
}

fn has(sets: &[SetPlan], set: SetName) -> bool {
    sets.iter().any(|s| s.set == set && !s.entries.is_empty())
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

/// The nat and filter tables' input.
pub(super) fn render_rules(
    state: &ProxyState,
    opts: &IpvsOptions,
    ports: &[PortPlan<'_>],
    node_ips: &[IpAddr],
    sets: &[SetPlan],
) -> String {
    let mark = format!("{:#x}", opts.masquerade_mark);
    let mut nat = Chains::new(&NAT_CHAINS);
    let mut filter = Chains::new(&FILTER_CHAINS);
    let m = |set: SetName, dirs: &str| set_match(sets, set, dirs);

    // nat KUBE-POSTROUTING / KUBE-MARK-MASQ.
    nat.rule(
        "KUBE-POSTROUTING",
        &format!(
            "-m comment --comment \"{}\" {} -j MASQUERADE",
            SetName::LoopBack.comment(),
            m(SetName::LoopBack, "dst,dst,src")
        ),
    );
    nat.rule(
        "KUBE-POSTROUTING",
        &format!("-m mark ! --mark {mark}/{mark} -j RETURN"),
    );
    nat.rule("KUBE-POSTROUTING", &format!("-j MARK --xor-mark {mark}"));
    let random = if opts.random_fully {
        " --random-fully"
    } else {
        ""
    };
    nat.rule(
        "KUBE-POSTROUTING",
        &format!(
            "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE{random}"
        ),
    );
    nat.rule("KUBE-MARK-MASQ", &format!("-j MARK --or-mark {mark}"));

    // nat KUBE-SERVICES: connections from loopback leave first (upstream: "dismiss connects
    // to localhost early"; IPVS mode has no localhost node ports), then masquerade decisions
    // by set, then the node ports.
    let loopback = match state.family {
        Family::V4 => "127.0.0.0/8",
        Family::V6 => "::1/128",
    };
    nat.rule("KUBE-SERVICES", &format!("-s {loopback} -j RETURN"));
    let cluster_comment = format!("-m comment --comment \"{}\"", SetName::ClusterIp.comment());
    if has(sets, SetName::ClusterIp) {
        let rest = if opts.masquerade_all {
            format!(
                "{cluster_comment} {} -j KUBE-MARK-MASQ",
                m(SetName::ClusterIp, "dst,dst")
            )
        } else {
            match &state.node.local_traffic {
                LocalTraffic::Cidr(c) => format!(
                    "! -s {c} {cluster_comment} {} -j KUBE-MARK-MASQ",
                    m(SetName::ClusterIp, "dst,dst")
                ),
                LocalTraffic::BridgeInterface(b) => format!(
                    "! -i {b} {cluster_comment} {} -j KUBE-MARK-MASQ",
                    m(SetName::ClusterIp, "dst,dst")
                ),
                LocalTraffic::InterfaceNamePrefix(p) => format!(
                    "! -i {p}+ {cluster_comment} {} -j KUBE-MARK-MASQ",
                    m(SetName::ClusterIp, "dst,dst")
                ),
                // No local detector: masquerade what the node sends from a VIP.
                LocalTraffic::Undetected(_) => format!(
                    "{cluster_comment} {} -j KUBE-MARK-MASQ",
                    m(SetName::ClusterIp, "src,dst")
                ),
            }
        };
        nat.rule("KUBE-SERVICES", &rest);
    }
    if has(sets, SetName::ExternalIp) {
        nat.rule(
            "KUBE-SERVICES",
            &format!(
                "-m comment --comment \"{}\" {} -j KUBE-MARK-MASQ",
                SetName::ExternalIp.comment(),
                m(SetName::ExternalIp, "dst,dst")
            ),
        );
    }
    if has(sets, SetName::LoadBalancer) {
        nat.rule(
            "KUBE-SERVICES",
            &format!(
                "-m comment --comment \"{}\" {} -j KUBE-LOAD-BALANCER",
                SetName::LoadBalancer.comment(),
                m(SetName::LoadBalancer, "dst,dst")
            ),
        );
        if has(sets, SetName::LoadBalancerLocal) {
            nat.rule(
                "KUBE-LOAD-BALANCER",
                &format!(
                    "-m comment --comment \"{}\" {} -j RETURN",
                    SetName::LoadBalancerLocal.comment(),
                    m(SetName::LoadBalancerLocal, "dst,dst")
                ),
            );
        }
        nat.rule("KUBE-LOAD-BALANCER", "-j KUBE-MARK-MASQ");
    }
    let node_port_sets = [
        (
            "tcp",
            SetName::NodePortLocalTcp,
            SetName::NodePortTcp,
            "dst",
        ),
        (
            "udp",
            SetName::NodePortLocalUdp,
            SetName::NodePortUdp,
            "dst",
        ),
        (
            "sctp",
            SetName::NodePortLocalSctp,
            SetName::NodePortSctp,
            "dst,dst",
        ),
    ];
    let mut any_node_port = false;
    for (p, local, all, dirs) in node_port_sets {
        if has(sets, local) {
            nat.rule(
                "KUBE-NODE-PORT",
                &format!(
                    "-p {p} -m comment --comment \"{}\" {} -j RETURN",
                    local.comment(),
                    m(local, dirs)
                ),
            );
        }
        if has(sets, all) {
            any_node_port = true;
            nat.rule(
                "KUBE-NODE-PORT",
                &format!(
                    "-p {p} -m comment --comment \"{}\" {} -j KUBE-MARK-MASQ",
                    all.comment(),
                    m(all, dirs)
                ),
            );
        }
    }
    if any_node_port {
        if state.node.node_port_addresses.match_all {
            nat.rule(
                "KUBE-SERVICES",
                "-m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
            );
        } else {
            for ip in node_ips {
                nat.rule(
                    "KUBE-SERVICES",
                    &format!("-d {} -j KUBE-NODE-PORT", host(*ip)),
                );
            }
        }
    }
    for set in [SetName::ClusterIp, SetName::LoadBalancer] {
        if has(sets, set) {
            nat.rule("KUBE-SERVICES", &format!("{} -j ACCEPT", m(set, "dst,dst")));
        }
    }

    // filter KUBE-FORWARD.
    if !opts.conntrack_tcp_be_liberal {
        filter.rule("KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP");
    }
    filter.rule(
        "KUBE-FORWARD",
        &format!(
            "-m comment --comment \"kubernetes forwarding rules\" -m mark --mark {mark}/{mark} -j ACCEPT"
        ),
    );
    filter.rule(
        "KUBE-FORWARD",
        "-m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    );

    // filter: what has no virtual service is refused (REJECT no endpoints, DROP no local ones).
    for p in ports {
        let svc = p.svc;
        let pn = proto_name(svc.protocol);
        let matcher = |dst: String, port: u16| format!("-m {pn} -p {pn} {dst} --dport {port}");
        for r in &p.refusals {
            let (why, target, internal, external) = match r {
                Refusal::Reject => ("has no endpoints", "REJECT", true, true),
                Refusal::DropInternal => ("has no local endpoints", "DROP", true, false),
                Refusal::DropExternal => ("has no local endpoints", "DROP", false, true),
            };
            let c = format!("-m comment --comment \"{} {why}\"", p.name);
            if internal {
                filter.rule(
                    "KUBE-SERVICES",
                    &format!(
                        "{c} {} -j {target}",
                        matcher(format!("-d {}", host(svc.cluster_ip)), svc.port)
                    ),
                );
            }
            if !external {
                continue;
            }
            for ip in svc.external_ips.iter().chain(&svc.load_balancer_ips) {
                filter.rule(
                    "KUBE-EXTERNAL-SERVICES",
                    &format!(
                        "{c} {} -j {target}",
                        matcher(format!("-d {}", host(*ip)), svc.port)
                    ),
                );
            }
            if let Some(np) = svc.node_port {
                filter.rule(
                    "KUBE-EXTERNAL-SERVICES",
                    &format!(
                        "{c} -m addrtype --dst-type LOCAL {} -j {target}",
                        matcher(String::new(), np).replace("  ", " ")
                    ),
                );
            }
        }
    }

    // filter KUBE-NODE-PORT: health check node ports.
    if has(sets, SetName::HealthCheckNodePort) {
        filter.rule(
            "KUBE-NODE-PORT",
            &format!(
                "-m comment --comment \"{}\" {} -j ACCEPT",
                SetName::HealthCheckNodePort.comment(),
                m(SetName::HealthCheckNodePort, "dst")
            ),
        );
    }

    // filter KUBE-PROXY-FIREWALL: loadBalancerSourceRanges.
    if has(sets, SetName::LoadBalancerFw) {
        filter.rule(
            "KUBE-PROXY-FIREWALL",
            &format!(
                "-m comment --comment \"{}\" {} -j KUBE-SOURCE-RANGES-FIREWALL",
                SetName::LoadBalancerFw.comment(),
                m(SetName::LoadBalancerFw, "dst,dst")
            ),
        );
        for set in [
            SetName::LoadBalancerSourceCidr,
            SetName::LoadBalancerSourceIp,
        ] {
            if has(sets, set) {
                filter.rule(
                    "KUBE-SOURCE-RANGES-FIREWALL",
                    &format!("{} -j RETURN", m(set, "dst,dst,src")),
                );
            }
        }
        filter.rule("KUBE-SOURCE-RANGES-FIREWALL", "-j DROP");
    }

    // filter KUBE-IPVS-OUT-FILTER: the node's own connections to an LB IP whose source
    // ranges leave the node out (upstream #119656). IPVS schedules them at LOCAL_OUT,
    // before filter OUTPUT and without INPUT's firewall, so the match is on the connection's
    // original destination (upstream: `-m ipvs --vaddr --vport`; with `vs/conntrack=1`
    // conntrack's original tuple holds the same) and the source the LB IP's local route
    // gives (the LB IP itself).
    for p in ports {
        let svc = p.svc;
        if svc.load_balancer_source_ranges.is_empty() || super::node_allowed(state, svc) {
            continue;
        }
        let pn = proto_name(svc.protocol);
        for ip in &svc.load_balancer_ips {
            filter.rule(
                "KUBE-IPVS-OUT-FILTER",
                &format!(
                    "-s {h} -p {pn} -m comment --comment \"{} node not in loadBalancerSourceRanges\" -m conntrack --ctorigdst {h} --ctorigdstport {} -j DROP",
                    p.name,
                    svc.port,
                    h = host(*ip)
                ),
            );
        }
    }

    // filter KUBE-IPVS-FILTER: new connections to a VIP on a port no service has.
    for (set, dirs) in [
        (SetName::LoadBalancer, "dst,dst"),
        (SetName::ClusterIp, "dst,dst"),
        (SetName::ExternalIp, "dst,dst"),
        (SetName::ExternalIpLocal, "dst,dst"),
        (SetName::HealthCheckNodePort, "dst"),
    ] {
        if has(sets, set) {
            filter.rule("KUBE-IPVS-FILTER", &format!("{} -j RETURN", m(set, dirs)));
        }
    }
    if has(sets, SetName::IpvsIps) {
        let reject = match state.family {
            Family::V4 => "icmp-port-unreachable",
            Family::V6 => "icmp6-port-unreachable",
        };
        filter.rule(
            "KUBE-IPVS-FILTER",
            &format!(
                "-m conntrack --ctstate NEW {} -j REJECT --reject-with {reject}",
                m(SetName::IpvsIps, "dst")
            ),
        );
    }

    let mut out = String::new();
    nat.write("nat", &mut out);
    filter.write("filter", &mut out);
    out
}
