//! The IPVS render: one family's [`ProxyState`] in, everything kube-proxy's IPVS mode
//! programs out, as plain values: the virtual services with their real servers, the
//! addresses of the `kube-ipvs0` dummy interface, the ipsets, and the helper iptables rules
//! (upstream `pkg/proxy/ipvs/proxier.go` layout, chain and set names, comments).
//!
//! ```text
//!   ProxyState + IpvsOptions ──render_ipvs──> IpvsPlan {
//!       ipvs:  IpvsState   one virtual service per ClusterIP:port, externalIP:port,
//!                          LB IP:port and node IP:NodePort; masquerading servers, weight 1;
//!                          `-p T` for ClientIP affinity; scheduler from --ipvs-scheduler
//!       vips:  addresses for kube-ipvs0 (cluster, external and LB IPs)
//!       sets:  KUBE-CLUSTER-IP, KUBE-LOOP-BACK, KUBE-NODE-PORT-TCP, … (KUBE-6-… for IPv6)
//!       rules: iptables-restore input for the nat and filter chains below }
//!
//!   nat    PREROUTING, OUTPUT ─> KUBE-SERVICES ─┬─ KUBE-CLUSTER-IP (not from pods) ─> KUBE-MARK-MASQ
//!                                               ├─ KUBE-EXTERNAL-IP ─> KUBE-MARK-MASQ
//!                                               ├─ KUBE-LOAD-BALANCER ─> KUBE-LOAD-BALANCER
//!                                               └─ dst LOCAL ─> KUBE-NODE-PORT (sets per proto)
//!          POSTROUTING ─> KUBE-POSTROUTING (hairpin KUBE-LOOP-BACK, marked traffic: MASQUERADE)
//!   filter INPUT/FORWARD/OUTPUT ─> KUBE-SERVICES, KUBE-EXTERNAL-SERVICES (REJECT / DROP),
//!          INPUT ─> KUBE-IPVS-FILTER, KUBE-NODE-PORT (health checks), KUBE-PROXY-FIREWALL
//!          OUTPUT ─> KUBE-IPVS-OUT-FILTER (the node to an LB IP whose source ranges leave
//!                    it out: DROP, upstream #119656)
//! ```
//! Every address and port gets its virtual service, also without real servers (so servers
//! that leave can drain, see `apply::ipvs`). Better than upstream, on purpose: new
//! connections to a port without endpoints are REJECTed by a filter rule (`"ns/svc:p has no
//! endpoints"`, before IPVS sees them at LOCAL_IN); with externalTrafficPolicy Local and no
//! endpoint on this node the external virtual services have no real servers and new
//! connections are DROPped (`"… has no local endpoints"`) instead of falling back to every
//! endpoint. IPVS has one virtual service per address and port, so unlike iptables mode the
//! external services use local endpoints whoever the client is (pods on this node included).

mod rules;
mod sets;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use dataplane::ipvs::{
    IpvsState, Netmask, Persistence, RealServer, SchedFlags, Scheduler, Service, ServiceKey,
    svc_flags,
};
use dataplane::{Family, Protocol};

use crate::config::Config;
use crate::model::{Endpoint, ProxyState, ServicePort, SessionAffinity};
use crate::render::iptables::JumpRule;

pub use sets::{MAX_SET_NAME, SetName, SetPlan, save_text};

/// The name of the dummy interface holding the virtual addresses.
pub const DUMMY_INTERFACE: &str = "kube-ipvs0";

/// Options of [`render_ipvs`]: kube-proxy's flags and the host facts the sync layer detects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsOptions {
    /// `--ipvs-scheduler` (rr when empty).
    pub scheduler: Scheduler,
    /// `--ipvs-strict-arp`: `arp_ignore=1`, `arp_announce=2` (applied by the sync layer).
    pub strict_arp: bool,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// The masquerade mark (default `0x4000`).
    pub masquerade_mark: u32,
    /// `MASQUERADE --random-fully` is supported.
    pub random_fully: bool,
    /// `nf_conntrack_tcp_be_liberal` is set: no DROP of conntrack-INVALID packets.
    pub conntrack_tcp_be_liberal: bool,
    /// This node's interface addresses (not those of `kube-ipvs0`): the node IPs that get
    /// a NodePort virtual service. Empty: the Node object's addresses.
    pub local_addresses: Vec<IpAddr>,
}

impl Default for IpvsOptions {
    fn default() -> Self {
        IpvsOptions {
            scheduler: Scheduler::Rr,
            strict_arp: false,
            masquerade_all: false,
            masquerade_mark: 1 << 14,
            random_fully: true,
            conntrack_tcp_be_liberal: false,
            local_addresses: Vec::new(),
        }
    }
}

impl IpvsOptions {
    /// The options kube-proxy's configuration sets (host facts keep their defaults).
    pub fn from_config(cfg: &Config) -> IpvsOptions {
        let scheduler = match cfg.ipvs.scheduler.as_str() {
            "" => Scheduler::Rr,
            s => Scheduler::parse(s),
        };
        IpvsOptions {
            scheduler,
            strict_arp: cfg.ipvs.strict_arp,
            masquerade_all: cfg.masquerade_all,
            masquerade_mark: cfg.masquerade_mark(),
            conntrack_tcp_be_liberal: cfg.conntrack.tcp_be_liberal,
            ..IpvsOptions::default()
        }
    }
}

/// Everything one family's IPVS proxier programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsPlan {
    /// The family.
    pub family: Family,
    /// Virtual services and real servers, in `ipvsadm -Sn` order.
    pub ipvs: IpvsState,
    /// Addresses to bind on `kube-ipvs0` (`ip addr add VIP/32 dev kube-ipvs0`).
    pub vips: BTreeSet<IpAddr>,
    /// The ipsets with their entries.
    pub sets: Vec<SetPlan>,
    /// `iptables-restore --noflush` input for kube-proxy's nat and filter chains.
    pub rules: String,
    /// Whether strict ARP is asked for.
    pub strict_arp: bool,
}

impl IpvsPlan {
    /// The ipsets as `ipset save` text (`create` and `add` lines).
    pub fn ipset_text(&self) -> String {
        save_text(&self.sets)
    }

    /// The set `name`'s plan.
    pub fn set(&self, name: SetName) -> Option<&SetPlan> {
        self.sets.iter().find(|s| s.set == name)
    }

    /// The whole plan as one text (golden files): `# kube-ipvs0` addresses, `ipvsadm -Sn`,
    /// `ipset save`, then the rules.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# kube-ipvs0 addresses\n");
        for v in &self.vips {
            out.push_str(&format!("{v}\n"));
        }
        out.push_str("# ipvsadm -Sn\n");
        out.push_str(&self.ipvs.to_save());
        out.push_str("# ipset save\n");
        out.push_str(&self.ipset_text());
        out.push_str("# iptables-restore --noflush\n");
        out.push_str(&self.rules);
        out
    }
}

/// The jumps from the built-in chains into IPVS mode's chains, ensured with `iptables -I`
/// on every full sync (upstream `iptablesJumpChain` of the IPVS proxier, plus the filter
/// jumps our REJECT / DROP chains need: in IPVS mode a packet to a VIP is delivered locally,
/// so INPUT sees it with its original destination).
pub const IPVS_JUMP_RULES: [JumpRule; 12] = [
    jr(
        "nat",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        false,
    ),
    jr(
        "nat",
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
        false,
    ),
    jr(
        "nat",
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "kubernetes postrouting rules",
        false,
    ),
    jr(
        "filter",
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
        false,
    ),
    jr(
        "filter",
        "INPUT",
        "KUBE-NODE-PORT",
        "kubernetes health check rules",
        false,
    ),
    jr(
        "filter",
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        "kube-proxy firewall rules",
        false,
    ),
    jr(
        "filter",
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        "kube-proxy firewall rules",
        false,
    ),
    jr(
        "filter",
        "INPUT",
        "KUBE-IPVS-FILTER",
        "kubernetes ipvs access filter",
        false,
    ),
    jr(
        "filter",
        "OUTPUT",
        "KUBE-IPVS-OUT-FILTER",
        "kubernetes ipvs access filter",
        false,
    ),
    jr(
        "filter",
        "INPUT",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        true,
    ),
    jr(
        "filter",
        "FORWARD",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        true,
    ),
    jr(
        "filter",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        true,
    ),
];

/// The filter jumps into `KUBE-SERVICES` from INPUT and FORWARD (separate so the list stays
/// in upstream's order above).
pub const IPVS_SERVICE_JUMPS: [JumpRule; 2] = [
    jr(
        "filter",
        "INPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        true,
    ),
    jr(
        "filter",
        "FORWARD",
        "KUBE-SERVICES",
        "kubernetes service portals",
        true,
    ),
];

/// Every jump rule of IPVS mode, in insertion order.
pub fn jump_rules() -> impl Iterator<Item = &'static JumpRule> {
    IPVS_JUMP_RULES.iter().chain(IPVS_SERVICE_JUMPS.iter())
}

const fn jr(
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

/// The chains IPVS mode writes, per table (all rewritten on every sync).
pub const NAT_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
    "KUBE-NODE-PORT",
    "KUBE-LOAD-BALANCER",
];

/// The filter chains IPVS mode writes.
pub const FILTER_CHAINS: [&str; 8] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODE-PORT",
    "KUBE-PROXY-FIREWALL",
    "KUBE-SOURCE-RANGES-FIREWALL",
    "KUBE-IPVS-FILTER",
    "KUBE-IPVS-OUT-FILTER",
];

/// What one service port needs beyond its virtual services: the filter verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No endpoint anywhere: REJECT every address of the port.
    Reject,
    /// Endpoints exist, none usable by internal (cluster IP) traffic: DROP the cluster IP.
    DropInternal,
    /// None usable by external traffic: DROP the external addresses and the node port.
    DropExternal,
}

/// One service port's decisions, shared by the IPVS table, the sets and the rules.
#[derive(Debug, Clone)]
pub(crate) struct PortPlan<'a> {
    pub(crate) name: String,
    pub(crate) svc: &'a ServicePort,
    pub(crate) internal: Vec<&'a Endpoint>,
    pub(crate) external: Vec<&'a Endpoint>,
    pub(crate) refusals: Vec<Refusal>,
}

fn plan_port<'a>(svc: &'a ServicePort, state: &'a ProxyState) -> PortPlan<'a> {
    let (cluster, local): (Vec<&'a Endpoint>, Vec<&'a Endpoint>) =
        match state.endpoints.get(&svc.name) {
            Some(eps) => (
                eps.cluster_endpoints().collect(),
                eps.local_endpoints().collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
    let internal = if svc.internal_policy_local() {
        local.clone()
    } else {
        cluster.clone()
    };
    let external = if svc.external_policy_local() {
        local
    } else {
        cluster
    };
    let mut refusals = Vec::new();
    let has_endpoints = state
        .endpoints
        .get(&svc.name)
        .is_some_and(|e| e.has_endpoints);
    if !has_endpoints {
        refusals.push(Refusal::Reject);
    } else {
        if internal.is_empty() {
            refusals.push(Refusal::DropInternal);
        }
        if external.is_empty() && svc.externally_accessible() {
            refusals.push(Refusal::DropExternal);
        }
    }
    let (internal, external) = if has_endpoints {
        (internal, external)
    } else {
        (Vec::new(), Vec::new())
    };
    PortPlan {
        name: svc.name.to_string(),
        svc,
        internal,
        external,
        refusals,
    }
}

/// The node IPs that get NodePort virtual services: this node's addresses of the family
/// (`local_addresses`, else the Node object's), not loopback or IPv6 link-local, within
/// `--nodeport-addresses`.
pub fn node_port_ips(state: &ProxyState, opts: &IpvsOptions) -> Vec<IpAddr> {
    let base: Vec<IpAddr> = if opts.local_addresses.is_empty() {
        state.node.addresses.iter().map(|a| a.ip).collect()
    } else {
        opts.local_addresses.clone()
    };
    let npa = &state.node.node_port_addresses;
    let mut out: Vec<IpAddr> = base
        .into_iter()
        .filter(|ip| Family::of(ip) == state.family)
        .filter(|ip| !ip.is_loopback())
        .filter(|ip| match ip {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => true,
        })
        .filter(|ip| npa.match_all || npa.cidrs.iter().any(|c| c.contains(ip)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether this node's IP (of the family) is in the service's `loadBalancerSourceRanges`
/// (upstream `allowFromNode`; no known node IP: not allowed).
pub(crate) fn node_allowed(state: &ProxyState, svc: &ServicePort) -> bool {
    state.node.primary_ip.is_some_and(|n| {
        svc.load_balancer_source_ranges
            .iter()
            .any(|c| c.contains(&n))
    })
}

fn virtual_service(
    key: ServiceKey,
    svc: &ServicePort,
    endpoints: &[&Endpoint],
    opts: &IpvsOptions,
) -> Service {
    let mut s = Service::new(key, opts.scheduler.clone());
    if opts.scheduler == Scheduler::Mh {
        // Upstream sets the source-hash flag (mh-port) for mh.
        s.sched_flags = SchedFlags(svc_flags::SCHED2);
    }
    if let SessionAffinity::ClientIp { timeout_seconds } = svc.session_affinity {
        s.persistence = Some(Persistence {
            timeout: timeout_seconds,
            netmask: Netmask::host(Family::of(&svc.cluster_ip)),
        });
    }
    let mut seen = BTreeSet::new();
    for e in endpoints {
        if seen.insert((e.ip, e.port)) {
            s.servers.push(RealServer::masq(e.ip, e.port));
        }
    }
    s
}

fn addr_key(proto: Protocol, addr: IpAddr, port: u16) -> ServiceKey {
    ServiceKey::Addr { proto, addr, port }
}

/// Renders one family's IPVS plan (upstream IPVS `syncProxyRules`, without the I/O).
pub fn render_ipvs(state: &ProxyState, opts: &IpvsOptions) -> IpvsPlan {
    let family = state.family;
    let node_ips = node_port_ips(state, opts);
    let ports: Vec<PortPlan<'_>> = state
        .services
        .values()
        .map(|svc| plan_port(svc, state))
        .collect();

    let mut services: BTreeMap<(u8, u8, IpAddr, u16), Service> = BTreeMap::new();
    let mut vips = BTreeSet::new();
    let mut entries: BTreeMap<SetName, BTreeSet<String>> = BTreeMap::new();
    let mut add = |set: SetName, e: String| {
        entries.entry(set).or_default().insert(e);
    };
    let mut push = |svc: Service| {
        if let ServiceKey::Addr { proto, addr, port } = svc.key {
            services.insert((0, proto.number(), addr, port), svc);
        }
    };

    for p in &ports {
        let svc = p.svc;
        let proto = svc.protocol;
        let pn = proto_name(proto);
        let ipport = |ip: IpAddr| format!("{ip},{pn}:{}", svc.port);
        vips.insert(svc.cluster_ip);
        add(SetName::ClusterIp, ipport(svc.cluster_ip));
        push(virtual_service(
            addr_key(proto, svc.cluster_ip, svc.port),
            svc,
            &p.internal,
            opts,
        ));
        for e in p.internal.iter().chain(&p.external) {
            add(
                SetName::LoopBack,
                format!("{},{pn}:{},{}", e.ip, e.port, e.ip),
            );
        }
        let local = svc.external_policy_local();
        for &ip in &svc.external_ips {
            vips.insert(ip);
            let set = if local {
                SetName::ExternalIpLocal
            } else {
                SetName::ExternalIp
            };
            add(set, ipport(ip));
            push(virtual_service(
                addr_key(proto, ip, svc.port),
                svc,
                &p.external,
                opts,
            ));
        }
        for &ip in &svc.load_balancer_ips {
            vips.insert(ip);
            add(SetName::LoadBalancer, ipport(ip));
            if local {
                add(SetName::LoadBalancerLocal, ipport(ip));
            }
            if !svc.load_balancer_source_ranges.is_empty() {
                add(SetName::LoadBalancerFw, ipport(ip));
                for c in &svc.load_balancer_source_ranges {
                    add(
                        SetName::LoadBalancerSourceCidr,
                        format!("{},{c}", ipport(ip)),
                    );
                }
                // The node reaches the LB IP from the LB IP itself (its local route's
                // source): allowed when the node's IP is in the ranges (upstream
                // `allowFromNode`); otherwise KUBE-IPVS-OUT-FILTER drops it (rules.rs).
                if node_allowed(state, svc) {
                    add(
                        SetName::LoadBalancerSourceIp,
                        format!("{},{ip}", ipport(ip)),
                    );
                }
            }
            push(virtual_service(
                addr_key(proto, ip, svc.port),
                svc,
                &p.external,
                opts,
            ));
        }
        if let Some(np) = svc.node_port {
            match proto {
                Protocol::Sctp => {
                    for &ip in &node_ips {
                        let e = format!("{ip},sctp:{np}");
                        add(SetName::NodePortSctp, e.clone());
                        if local {
                            add(SetName::NodePortLocalSctp, e);
                        }
                    }
                }
                Protocol::Udp => {
                    add(SetName::NodePortUdp, np.to_string());
                    if local {
                        add(SetName::NodePortLocalUdp, np.to_string());
                    }
                }
                _ => {
                    add(SetName::NodePortTcp, np.to_string());
                    if local {
                        add(SetName::NodePortLocalTcp, np.to_string());
                    }
                }
            }
            for &ip in &node_ips {
                push(virtual_service(
                    addr_key(proto, ip, np),
                    svc,
                    &p.external,
                    opts,
                ));
            }
        }
        if let Some(hc) = svc.health_check_node_port {
            add(SetName::HealthCheckNodePort, hc.to_string());
        }
    }
    for v in &vips {
        add(SetName::IpvsIps, v.to_string());
    }

    let mut ipvs = IpvsState {
        services: services.into_values().collect(),
    };
    ipvs.sort_like_ipvsadm();
    let sets = SetName::ALL
        .iter()
        .map(|&set| SetPlan {
            set,
            name: set.name(family),
            create: set.create_options(family),
            entries: entries.remove(&set).unwrap_or_default(),
        })
        .collect::<Vec<_>>();
    let rules = rules::render_rules(state, opts, &ports, &node_ips, &sets);
    IpvsPlan {
        family,
        ipvs,
        vips,
        sets,
        rules,
        strict_arp: opts.strict_arp,
    }
}

pub(crate) fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
        _ => "tcp",
    }
}
