//! The render pass: one walk over the service ports, each rule written once into the
//! buffer of the chain it belongs to.
//!
//! ```text
//!   top-level chains (KUBE-SERVICES, KUBE-NODEPORTS, …)  one ChainBuf each, filled by every port
//!   per-service chains (KUBE-SVC/SVL/EXT/FW/SEP-…)       one shared String, a byte range per chain
//!        └──────────────── finish() ────────────────> Rendered (chains sorted for output)
//! ```

use std::net::IpAddr;

use dataplane::Family;

use super::options::RenderOptions;
use super::output::{ChainText, Rendered, RuleCounts, Table};
use super::service::{Scratch, write_port};
use super::text::{ChainName, LocalMatch, Probabilities, comment_quoted, jump_end};
use crate::model::{EndpointSet, NodeInfo, ProxyState, ServiceName, ServicePort, ServicePortName};

/// The nfacct counter of packets accepted on localhost NodePorts (upstream metrics name).
pub const NFACCT_LOCALHOST_NODEPORTS: &str = "localhost_nps_accepted_pkts";
/// The nfacct counter of conntrack-INVALID packets dropped in `KUBE-FORWARD`.
pub const NFACCT_CT_INVALID: &str = "ct_state_invalid_dropped_pkts";

/// The chains every sync rewrites in full, with their table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Top {
    NatServices,
    NatNodePorts,
    NatPostrouting,
    NatMarkMasq,
    FilterServices,
    FilterExternalServices,
    FilterForward,
    FilterNodePorts,
    FilterProxyFirewall,
    FilterKubeletFirewall,
}

impl Top {
    pub(super) const ALL: [Top; 10] = [
        Top::NatServices,
        Top::NatNodePorts,
        Top::NatPostrouting,
        Top::NatMarkMasq,
        Top::FilterServices,
        Top::FilterExternalServices,
        Top::FilterForward,
        Top::FilterNodePorts,
        Top::FilterProxyFirewall,
        Top::FilterKubeletFirewall,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Top::NatServices | Top::FilterServices => "KUBE-SERVICES",
            Top::NatNodePorts | Top::FilterNodePorts => "KUBE-NODEPORTS",
            Top::NatPostrouting => "KUBE-POSTROUTING",
            Top::NatMarkMasq => "KUBE-MARK-MASQ",
            Top::FilterExternalServices => "KUBE-EXTERNAL-SERVICES",
            Top::FilterForward => "KUBE-FORWARD",
            Top::FilterProxyFirewall => "KUBE-PROXY-FIREWALL",
            Top::FilterKubeletFirewall => "KUBE-FIREWALL",
        }
    }

    pub(super) fn table(self) -> Table {
        match self {
            Top::NatServices | Top::NatNodePorts | Top::NatPostrouting | Top::NatMarkMasq => {
                Table::Nat
            }
            _ => Table::Filter,
        }
    }
}

/// Rules of one top-level chain.
#[derive(Debug, Default)]
pub(super) struct ChainBuf {
    pub text: String,
    pub rules: u32,
}

/// What one service port's rules need besides the port.
pub(super) struct Cx<'a> {
    pub family: Family,
    pub opts: &'a RenderOptions,
    pub node: &'a NodeInfo,
    /// The masquerade mark as written (`0x00004000`).
    pub mark: String,
    /// Per-endpoint comments are left out.
    pub large: bool,
    /// IPv4 localhost NodePorts are on (flag, family and `--nodeport-addresses` agree).
    pub localhost_node_ports: bool,
    pub local: LocalMatch<'a>,
    pub probabilities: Probabilities,
    /// Ports with no local endpoints for internal / external traffic (upstream
    /// `sync_proxy_rules_no_local_endpoints_total`).
    pub no_local_internal: usize,
    pub no_local_external: usize,
    pub scratch: Scratch,
}

/// The chain buffers being filled.
pub(super) struct Builder {
    top: Vec<ChainBuf>,
    /// Rules of every per-service chain, chain after chain.
    pub text: String,
    pub chains: Vec<ChainText>,
    open: Option<(ChainName, usize, u32)>,
    pub services: Vec<ServiceName>,
}

impl Builder {
    /// A builder writing into the buffers of a previous render, if any (reusing them saves
    /// the allocation and first-touch page faults of tens of megabytes per sync).
    fn new(capacity: usize, previous: Option<Rendered>) -> Builder {
        let (mut text, mut chains, mut services) = match previous {
            Some(r) => (r.text, r.nat, r.services),
            None => (String::new(), Vec::new(), Vec::new()),
        };
        text.clear();
        text.reserve(capacity);
        chains.clear();
        services.clear();
        Builder {
            top: Top::ALL.iter().map(|_| ChainBuf::default()).collect(),
            text,
            chains,
            open: None,
            services,
        }
    }

    /// Starts a rule of a top-level chain: writes `-A CHAIN` and returns the line to finish.
    pub(super) fn top_rule(&mut self, t: Top) -> &mut String {
        let buf = &mut self.top[t as usize];
        buf.rules += 1;
        buf.text.push_str("-A ");
        buf.text.push_str(t.name());
        &mut buf.text
    }

    /// Opens a per-service chain; its rules follow with [`Builder::rule`].
    pub(super) fn open_chain(&mut self, name: ChainName) {
        self.close_chain();
        self.open = Some((name, self.text.len(), 0));
    }

    /// Starts a rule of the open chain.
    pub(super) fn rule(&mut self) -> &mut String {
        if let Some((name, _, n)) = &mut self.open {
            *n += 1;
            self.text.push_str("-A ");
            self.text.push_str(name.as_str());
        }
        &mut self.text
    }

    /// Closes the open chain, recording it for `service`.
    pub(super) fn close_chain(&mut self) {
        if let Some((name, start, rules)) = self.open.take() {
            let service = u32::try_from(self.services.len().saturating_sub(1)).unwrap_or(0);
            self.chains.push(ChainText {
                name,
                start,
                end: self.text.len(),
                rules,
                service: Some(service),
            });
        }
    }
}

/// A service port with its endpoints.
type Port<'a> = (&'a ServicePortName, &'a ServicePort, &'a EndpointSet);

/// The order service ports are written in: as upstream's normalised output orders them,
/// by `namespace/name` as one string (the comment up to the first space or colon), then by
/// port name and protocol (the map's order, kept by the stable sort).
fn port_order(ports: &mut [Port<'_>]) {
    ports.sort_by_cached_key(|(n, _, _)| format!("{}/{}", n.namespace, n.name));
}

/// The node addresses NodePorts answer on when `--nodeport-addresses` names CIDRs
/// (upstream `GetNodeIPs`), sorted.
fn node_port_ips(family: Family, node: &NodeInfo, opts: &RenderOptions) -> Vec<IpAddr> {
    let mut candidates: Vec<IpAddr> = if opts.local_addresses.is_empty() {
        let lo: IpAddr = match family {
            Family::V4 => IpAddr::from([127, 0, 0, 1]),
            Family::V6 => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        };
        node.addresses.iter().map(|a| a.ip).chain([lo]).collect()
    } else {
        opts.local_addresses.clone()
    };
    candidates.retain(|ip| {
        Family::of(ip) == family
            && node
                .node_port_addresses
                .cidrs
                .iter()
                .any(|c| c.contains(ip))
    });
    candidates.sort();
    candidates.dedup();
    candidates
}

/// Renders one family's state (see [`render_iptables`](super::render_iptables)).
pub(super) fn render(
    state: &ProxyState,
    opts: &RenderOptions,
    previous: Option<Rendered>,
) -> Rendered {
    let family = state.family;
    let node = &state.node;
    let total_endpoints: usize = state
        .services
        .keys()
        .filter_map(|k| state.endpoints.get(k))
        .map(|e| e.entries.len())
        .sum();
    let mut cx = Cx {
        family,
        opts,
        node,
        mark: opts.mark_text(),
        large: total_endpoints > opts.large_cluster_threshold,
        localhost_node_ports: family == Family::V4
            && opts.localhost_node_ports
            && node.node_port_addresses.contains_ipv4_loopback,
        local: LocalMatch::of(&node.local_traffic),
        probabilities: Probabilities::default(),
        no_local_internal: 0,
        no_local_external: 0,
        scratch: Scratch::default(),
    };
    // About 130 bytes a rule, 3 rules an endpoint.
    let mut b = Builder::new(total_endpoints * 350 + state.services.len() * 300, previous);

    write_static_head(&mut b, &cx);

    // Services and endpoints have the same keys in the same order: pair them in one merge.
    let empty = crate::model::EndpointSet::default();
    let mut eps = state.endpoints.iter().peekable();
    let mut ports: Vec<Port<'_>> = Vec::with_capacity(state.services.len());
    for (name, svc) in &state.services {
        while eps.peek().is_some_and(|(k, _)| *k < name) {
            eps.next();
        }
        let set = match eps.peek() {
            Some((k, _)) if *k == name => eps.next().map_or(&empty, |(_, v)| v),
            _ => &empty,
        };
        ports.push((name, svc, set));
    }
    port_order(&mut ports);
    for (name, svc, eps) in ports {
        if !b
            .services
            .last()
            .is_some_and(|s| s.namespace == name.namespace && s.name == name.name)
        {
            b.services.push(name.service());
        }
        write_port(&mut b, &mut cx, name, svc, eps);
    }
    b.close_chain();

    write_static_tail(&mut b, &cx);
    finish(b, &cx)
}

/// `KUBE-POSTROUTING`, `KUBE-MARK-MASQ` and kubelet's `KUBE-FIREWALL` rule.
fn write_static_head(b: &mut Builder, cx: &Cx<'_>) {
    let mark = cx.mark.as_str();
    let l = b.top_rule(Top::NatPostrouting);
    l.push_str(" -m mark ! --mark ");
    l.push_str(mark);
    l.push('/');
    l.push_str(mark);
    jump_end(l, "RETURN");
    let l = b.top_rule(Top::NatPostrouting);
    l.push_str(" -j MARK --xor-mark ");
    l.push_str(mark);
    l.push('\n');
    let l = b.top_rule(Top::NatPostrouting);
    comment_quoted(l, "kubernetes service traffic requiring SNAT", "");
    l.push_str(" -j MASQUERADE");
    if cx.opts.random_fully {
        l.push_str(" --random-fully");
    }
    l.push('\n');
    let l = b.top_rule(Top::NatMarkMasq);
    l.push_str(" -j MARK --or-mark ");
    l.push_str(mark);
    l.push('\n');
    if cx.localhost_node_ports {
        // Kubelet's anti-martian rule, needed while route_localnet=1 (kubernetes#90259).
        let l = b.top_rule(Top::FilterKubeletFirewall);
        comment_quoted(l, "block incoming localnet connections", "");
        l.push_str(
            " -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT",
        );
        jump_end(l, "DROP");
    }
}

/// The `KUBE-SERVICES` → `KUBE-NODEPORTS` tail rule(s) and `KUBE-FORWARD`.
fn write_static_tail(b: &mut Builder, cx: &Cx<'_>) {
    const LAST: &str =
        "kubernetes service nodeports; NOTE: this must be the last rule in this chain";
    let npa = &cx.node.node_port_addresses;
    if npa.match_all {
        let l = b.top_rule(Top::NatServices);
        comment_quoted(l, LAST, "");
        l.push_str(" -m addrtype --dst-type LOCAL");
        match cx.family {
            Family::V6 => l.push_str(" ! -d ::1/128"),
            Family::V4 if !cx.localhost_node_ports => l.push_str(" ! -d 127.0.0.0/8"),
            Family::V4 => {}
        }
        jump_end(l, "KUBE-NODEPORTS");
    } else {
        for ip in node_port_ips(cx.family, cx.node, cx.opts) {
            if ip.is_loopback() && (cx.family == Family::V6 || !cx.localhost_node_ports) {
                continue;
            }
            let l = b.top_rule(Top::NatServices);
            comment_quoted(l, LAST, "");
            super::text::dst(l, ip);
            jump_end(l, "KUBE-NODEPORTS");
        }
    }

    if !cx.opts.conntrack_tcp_be_liberal {
        let l = b.top_rule(Top::FilterForward);
        l.push_str(" -m conntrack --ctstate INVALID");
        if cx.opts.nfacct {
            l.push_str(" -m nfacct --nfacct-name ");
            l.push_str(NFACCT_CT_INVALID);
        }
        jump_end(l, "DROP");
    }
    let mark = cx.mark.as_str();
    let l = b.top_rule(Top::FilterForward);
    comment_quoted(l, "kubernetes forwarding rules", "");
    l.push_str(" -m mark --mark ");
    l.push_str(mark);
    l.push('/');
    l.push_str(mark);
    jump_end(l, "ACCEPT");
    let l = b.top_rule(Top::FilterForward);
    comment_quoted(l, "kubernetes forwarding conntrack rule", "");
    l.push_str(" -m conntrack --ctstate RELATED,ESTABLISHED");
    jump_end(l, "ACCEPT");
}

/// Moves the top-level chains behind the per-service ones and sorts each table's chains
/// into output order.
fn finish(mut b: Builder, cx: &Cx<'_>) -> Rendered {
    let mut filter = Vec::new();
    let mut nat = Vec::new();
    let top = std::mem::take(&mut b.top);
    for (t, buf) in Top::ALL.into_iter().zip(top) {
        if t == Top::FilterKubeletFirewall && !cx.localhost_node_ports {
            continue; // not declared: kubelet (or the jump ensure) owns it then
        }
        let start = b.text.len();
        b.text.push_str(&buf.text);
        let c = ChainText {
            name: ChainName::fixed(t.name()),
            start,
            end: b.text.len(),
            rules: buf.rules,
            service: None,
        };
        match t.table() {
            Table::Filter => filter.push(c),
            Table::Nat => nat.push(c),
        }
    }
    filter.sort_unstable_by_key(|c| c.name.order_key());
    nat.sort_unstable_by_key(|c| c.name.order_key());
    let mut per_service = std::mem::take(&mut b.chains);
    per_service.sort_by_cached_key(|c| service_chain_key(c.name.as_bytes()));
    let nat = merge_sorted(nat, per_service);
    let count = |v: &[ChainText]| v.iter().map(|c| c.rules as usize).sum::<usize>();
    let counts = RuleCounts {
        filter_rules: count(&filter),
        filter_chains: filter.len(),
        nat_rules: count(&nat),
        nat_chains: nat.len(),
        no_local_endpoints_internal: cx.no_local_internal,
        no_local_endpoints_external: cx.no_local_external,
    };
    Rendered {
        family: cx.family,
        large_cluster_mode: cx.large,
        text: b.text,
        filter,
        nat,
        services: b.services,
        counts,
    }
}

/// A sort key for `KUBE-{EXT,FW,SEP,SVC,SVL}-` + 16 base32 characters that orders as the
/// names do: the prefix's rank, then 5 bits a character in ASCII order (`2`–`7` before
/// `A`–`Z`). One integer comparison instead of a string comparison.
fn service_chain_key(name: &[u8]) -> u128 {
    let prefix: u128 = match name.get(5..8) {
        Some(b"EXT") => 0,
        Some(b"FW-") => 1,
        Some(b"SEP") => 2,
        Some(b"SVC") => 3,
        _ => 4, // SVL
    };
    let hash = &name[name.len().saturating_sub(16)..];
    hash.iter().fold(prefix, |k, &c| {
        let v = if c <= b'7' {
            c.wrapping_sub(b'2')
        } else {
            c.wrapping_sub(b'A') + 6
        };
        (k << 5) | u128::from(v & 31)
    })
}

/// Merges two lists sorted by chain order.
fn merge_sorted(a: Vec<ChainText>, b: Vec<ChainText>) -> Vec<ChainText> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                super::text::chain_order_bytes(x.name.as_bytes(), y.name.as_bytes()).is_le()
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_chain_keys_order_like_names() {
        let mut names: Vec<String> = Vec::new();
        for p in [
            "KUBE-SVL-",
            "KUBE-EXT-",
            "KUBE-SEP-",
            "KUBE-FW-",
            "KUBE-SVC-",
        ] {
            for h in [
                "2222222222222222",
                "ZZZZZZZZZZZZZZZZ",
                "A7AAAAAAAAAAAAAA",
                "A2ZZZZZZZZZZZZZZ",
            ] {
                names.push(format!("{p}{h}"));
            }
        }
        let mut by_key = names.clone();
        by_key.sort_by_key(|n| service_chain_key(n.as_bytes()));
        names.sort();
        assert_eq!(by_key, names);
    }
}
