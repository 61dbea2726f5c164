//! What the checks read, derived once from the snapshots: the pods each node routes to (its
//! host routes), the Service ports kube-proxy programmed (`KUBE-SERVICES` rules), every
//! iptables rule with its place, and probe traces through [`crate::cluster::trace`]. Pure.
//!
//! ```text
//!   Cluster ──Facts::new──> pods:     [PodAddr { node, addr, dev }]   (/32, /128 via a device)
//!                           services: [ServicePort { node, vip, proto, port, name, kind }]
//!                           probes:   extra outside addresses (--probe)
//!   rules(node) ──> RuleAt { backend, table, chain, index, spec, words }  (iptables-save order)
//!   probe_from_pod(pod, dst, proto, port) ──> ClusterTrace
//! ```

use std::net::IpAddr;

use dataplane::iptables::{FREE_TEXT_OPTIONS, Rule};
use dataplane::node::{Backend, NodeState};
use dataplane::route::RouteType;
use dataplane::{Family, Packet, Protocol};

use crate::cluster::{self, Cluster, ClusterOptions, ClusterTrace};
use crate::explain::rule_comment;

/// The source port probe packets use.
pub const PROBE_SPORT: u16 = 40_000;

/// A pod address a node routes to through a device of its own (a CNI host route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddr {
    /// Index of the node.
    pub node: usize,
    /// The pod's address.
    pub addr: IpAddr,
    /// The node-side device (`cali…`).
    pub dev: String,
    /// `ns/name`, when a Pod object has the address.
    pub name: Option<String>,
}

impl PodAddr {
    /// `web/a (198.18.65.2)` or the address.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", self.addr),
            None => self.addr.to_string(),
        }
    }
}

/// How a Service port is reached (the comment kube-proxy writes on its `KUBE-SERVICES` rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// `cluster IP`.
    ClusterIp,
    /// `loadbalancer IP`.
    LoadBalancer,
    /// `external IP`.
    ExternalIp,
    /// `has no endpoints` (a REJECT in filter).
    NoEndpoints,
}

/// A Service port kube-proxy programmed on a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServicePort {
    /// Index of the node.
    pub node: usize,
    /// The virtual IP.
    pub vip: IpAddr,
    /// Protocol.
    pub proto: Protocol,
    /// Port.
    pub port: u16,
    /// `ns/svc:port` from the rule's comment.
    pub name: Option<String>,
    /// How it is reached.
    pub kind: ServiceKind,
    /// The chain its `KUBE-SERVICES` rule jumps to (`KUBE-SVC-…`, `KUBE-FW-…`).
    pub chain: Option<String>,
}

impl ServicePort {
    /// `web/front:http (198.19.0.10:80/tcp)`.
    pub fn label(&self) -> String {
        let at = format!("{}:{}/{}", self.vip, self.port, self.proto);
        match &self.name {
            Some(n) => format!("{n} ({at})"),
            None => at,
        }
    }
}

/// One iptables rule with where it sits.
#[derive(Debug, Clone)]
pub struct RuleAt<'a> {
    /// The back end holding it.
    pub backend: Backend,
    /// Its family.
    pub family: Family,
    /// Table.
    pub table: &'a str,
    /// Chain.
    pub chain: &'a str,
    /// 1-based position in the chain.
    pub index: usize,
    /// The rule.
    pub rule: &'a Rule,
    /// Its words as `iptables-save` prints them after `-A CHAIN`.
    pub words: Vec<String>,
}

impl RuleAt<'_> {
    /// `iptables-nft nat/KUBE-SERVICES rule 3: -A KUBE-SERVICES ...`.
    pub fn evidence(&self) -> String {
        format!(
            "{} {}/{} rule {}: -A {} {}",
            self.backend.command(self.family),
            self.table,
            self.chain,
            self.index,
            self.chain,
            self.words.join(" ")
        )
    }

    /// The value after `flag` (`-d`, `--dport`, `--to-destination`), skipping a `!` negation
    /// (a negated option yields `None`). A free-text value that reads like the flag
    /// (`--comment -j`, printed unquoted by iptables-save) is not the flag.
    pub fn opt(&self, flag: &str) -> Option<&str> {
        let at = (0..self.words.len()).find(|&i| {
            self.words[i] == flag
                && !(i > 0 && FREE_TEXT_OPTIONS.contains(&self.words[i - 1].as_str()))
        })?;
        if at > 0 && self.words[at - 1] == "!" {
            return None;
        }
        self.words.get(at + 1).map(String::as_str)
    }

    /// The target (`-j X`).
    pub fn target(&self) -> Option<&str> {
        self.opt("-j")
    }

    /// The comment.
    pub fn comment(&self) -> Option<String> {
        rule_comment(&self.words.join(" "))
    }

    /// The protocol (`-p`).
    pub fn proto(&self) -> Option<Protocol> {
        match self.opt("-p")? {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The destination port (`--dport N`).
    pub fn dport(&self) -> Option<u16> {
        self.opt("--dport")?.parse().ok()
    }

    /// The destination address (`-d A/32` or `-d A`), when it is one host.
    pub fn dst_host(&self) -> Option<IpAddr> {
        let d = self.opt("-d")?;
        let (a, len) = d.split_once('/').unwrap_or((d, ""));
        let addr: IpAddr = a.parse().ok()?;
        let host = match addr {
            IpAddr::V4(_) => "32",
            IpAddr::V6(_) => "128",
        };
        (len.is_empty() || len == host).then_some(addr)
    }

    /// Whether the rule matches only packets to the node's own addresses
    /// (`-m addrtype --dst-type LOCAL`).
    pub fn dst_type_local(&self) -> bool {
        self.opt("--dst-type") == Some("LOCAL")
    }
}

/// Splits an `iptables-save` rule into words, keeping a double-quoted comment as one word
/// (quotes kept, as written).
pub fn words(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                cur.extend(chars.next());
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Every iptables rule of a node (both back ends, both families), in save order.
pub fn rules(node: &NodeState) -> Vec<RuleAt<'_>> {
    let mut out = Vec::new();
    for st in &node.iptables {
        let family = st.ruleset.family;
        for t in &st.ruleset.tables {
            for c in t.chains() {
                for (i, r) in c.rules.iter().enumerate() {
                    out.push(RuleAt {
                        backend: st.backend,
                        family,
                        table: &t.name,
                        chain: &c.name,
                        index: i + 1,
                        rule: r,
                        words: words(&r.spec(family)),
                    });
                }
            }
        }
    }
    out
}

/// What the checks know about the cluster.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// Every iptables rule, per node (index as in the cluster), in save order.
    pub rules: Vec<Vec<RuleAt<'a>>>,
    /// Pods, by node.
    pub pods: Vec<PodAddr>,
    /// Service ports, by node.
    pub services: Vec<ServicePort>,
    /// Outside addresses to probe (`--probe`).
    pub probes: Vec<IpAddr>,
}

impl<'a> Facts<'a> {
    /// Derives the facts of a cluster.
    pub fn new(cluster: &'a Cluster, probes: &[IpAddr]) -> Facts<'a> {
        let mut f = Facts {
            rules: cluster.nodes.iter().map(|s| rules(&s.node)).collect(),
            probes: probes.to_vec(),
            ..Facts::default()
        };
        // the Service ports seen, for the duplicates (a Vec search was quadratic: a quarter
        // of `diag check`'s time on three nodes of 21k Services)
        let mut seen = std::collections::HashSet::new();
        for (i, s) in cluster.nodes.iter().enumerate() {
            for r in &s.node.routes.routes {
                let host = r.dst.prefix_len() == r.dst.max_prefix_len();
                let Some(dev) = r.dev() else { continue };
                if !host
                    || r.kind != RouteType::Unicast
                    || dev == "lo"
                    || r.nexthops.iter().any(|h| h.gateway.is_some())
                {
                    continue;
                }
                let addr = r.dst.addr();
                if f.pods.iter().any(|p| p.node == i && p.addr == addr) {
                    continue;
                }
                f.pods.push(PodAddr {
                    node: i,
                    addr,
                    dev: dev.to_string(),
                    name: cluster.pod_name(addr),
                });
            }
            for r in &f.rules[i] {
                if r.chain != "KUBE-SERVICES" {
                    continue;
                }
                let (Some(vip), Some(proto), Some(port)) = (r.dst_host(), r.proto(), r.dport())
                else {
                    continue;
                };
                let comment = r.comment().unwrap_or_default();
                let kind = if comment.ends_with("has no endpoints") {
                    ServiceKind::NoEndpoints
                } else if comment.ends_with("loadbalancer IP") {
                    ServiceKind::LoadBalancer
                } else if comment.ends_with("external IP") {
                    ServiceKind::ExternalIp
                } else if r.target().is_some_and(|t| t.starts_with("KUBE-SVC-")) {
                    ServiceKind::ClusterIp
                } else {
                    continue;
                };
                let name = comment.split_whitespace().next().map(String::from);
                let sp = ServicePort {
                    node: i,
                    chain: r.target().map(String::from),
                    vip,
                    proto,
                    port,
                    name,
                    kind,
                };
                if seen.insert(sp.clone()) {
                    f.services.push(sp);
                }
            }
        }
        f
    }

    /// The pods of node `i`.
    pub fn pods_of(&self, i: usize) -> impl Iterator<Item = &PodAddr> {
        self.pods.iter().filter(move |p| p.node == i)
    }

    /// The Service ports of node `i` whose chains lead to a DNAT to `addr` (walking jumps and
    /// gotos back from every nat `DNAT --to-destination ADDR[:PORT]` rule to `KUBE-SERVICES`).
    pub fn services_to(&self, i: usize, addr: IpAddr) -> Vec<&ServicePort> {
        let rules = &self.rules[i];
        let want = match addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let mut chains: std::collections::BTreeSet<&str> = rules
            .iter()
            .filter(|r| r.table == "nat" && r.target() == Some("DNAT"))
            .filter(|r| {
                r.opt("--to-destination").is_some_and(|d| {
                    d == want
                        || d.strip_prefix(want.as_str())
                            .is_some_and(|x| x.starts_with(':'))
                })
            })
            .map(|r| r.chain)
            .collect();
        // callers of those chains, a few levels up (SEP <- SVC <- EXT <- FW)
        for _ in 0..4 {
            let up: Vec<&str> = rules
                .iter()
                .filter(|r| r.table == "nat")
                .filter(|r| {
                    r.target()
                        .or_else(|| r.opt("-g"))
                        .is_some_and(|t| chains.contains(t))
                })
                .map(|r| r.chain)
                .collect();
            let before = chains.len();
            chains.extend(up);
            if chains.len() == before {
                break;
            }
        }
        self.services
            .iter()
            .filter(|sp| sp.node == i)
            .filter(|sp| sp.chain.as_deref().is_some_and(|c| chains.contains(c)))
            .collect()
    }

    /// Whether `addr` is a known pod (on any node).
    pub fn is_pod(&self, addr: IpAddr) -> bool {
        self.pods.iter().any(|p| p.addr == addr)
    }
}

/// Bounds of the probes a check sends.
pub fn probe_options() -> ClusterOptions {
    let mut o = ClusterOptions {
        max_paths: 64,
        ..ClusterOptions::default()
    };
    o.trace.max_paths = 64;
    o
}

/// The packet a pod sends to `dst` (`port` 0 for ICMP echo), as it arrives on its node.
pub fn pod_packet(pod: &PodAddr, dst: IpAddr, proto: Protocol, port: u16) -> Packet {
    let mut p = Packet::with_proto(pod.addr, dst, proto, port).arriving_on(pod.dev.clone());
    if proto.has_ports() {
        p = p.with_sport(PROBE_SPORT);
    }
    p
}

/// Traces what a pod sends to `dst`.
pub fn probe_from_pod(
    cluster: &Cluster,
    pod: &PodAddr,
    dst: IpAddr,
    proto: Protocol,
    port: u16,
) -> ClusterTrace {
    cluster::trace(
        cluster,
        pod.node,
        &pod_packet(pod, dst, proto, port),
        &probe_options(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_is_not_found_in_a_free_text_value() {
        let family = Family::V4;
        let rule =
            Rule::parse_spec(family, "-m comment --comment -j -d 198.19.0.10/32 -j DROP").unwrap();
        let at = RuleAt {
            backend: Backend::Legacy,
            family,
            table: "filter",
            chain: "INPUT",
            index: 1,
            rule: &rule,
            words: words(&rule.spec(family)),
        };
        assert_eq!(at.target(), Some("DROP"));
        assert_eq!(at.opt("-d"), Some("198.19.0.10/32"));
        assert_eq!(at.comment().as_deref(), Some("-j"));
    }

    #[test]
    fn words_keep_quoted_comments() {
        let w = words(r#"-d 198.19.0.10/32 -m comment --comment "a \"b\" c" -j X"#);
        assert_eq!(
            w,
            [
                "-d",
                "198.19.0.10/32",
                "-m",
                "comment",
                "--comment",
                r#""a \"b\" c""#,
                "-j",
                "X"
            ]
        );
    }
}
