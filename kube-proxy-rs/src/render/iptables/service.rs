//! The rules of one service port, in the order upstream's `syncProxyRules` writes them
//! (pkg/proxy/iptables/proxier.go), with its comment texts.
//!
//! ```text
//!   nat KUBE-SERVICES   cluster IP → SVC|SVL; external IP → EXT; loadbalancer IP → EXT|FW
//!   nat KUBE-NODEPORTS  node port → EXT
//!   filter              no endpoints → REJECT; no local endpoints → DROP; FW leftovers → DROP;
//!                       health check node port → ACCEPT
//!   KUBE-EXT-  masquerade / short-circuit local traffic → SVC, then → SVC|SVL
//!   KUBE-FW-   allowed source ranges → EXT
//!   KUBE-SVC-, KUBE-SVL-  [masquerade off-cluster sources] affinity checks, random split → SEP
//!   KUBE-SEP-  hairpin masquerade, DNAT to ip:port [remember client for affinity]
//! ```

use std::fmt::Write as _;
use std::net::IpAddr;

use super::build::{Builder, Cx, NFACCT_LOCALHOST_NODEPORTS, Top};
use super::text::{
    ChainName, comment_bare, comment_quoted, dport, dst, jump_end, proto, push_host_port, push_ip,
};
use crate::model::{EndpointSet, ServicePort, ServicePortName, SessionAffinity};
use crate::names::{
    EXT_PREFIX, FW_PREFIX, SEP_PREFIX, SVC_PREFIX, SVL_PREFIX, SepHasher, port_proto_hash_bytes,
};

/// Buffers reused from one service port to the next.
#[derive(Default)]
pub(super) struct Scratch {
    name: String,
    cluster: Vec<usize>,
    local: Vec<usize>,
    reachable: Vec<Target>,
}

/// One endpoint a policy chain dispatches to.
struct Target {
    ip: IpAddr,
    port: u16,
    chain: ChainName,
}

/// Writes every rule of one service port.
pub(super) fn write_port(
    b: &mut Builder,
    cx: &mut Cx<'_>,
    name: &ServicePortName,
    svc: &ServicePort,
    eps: &EndpointSet,
) {
    let mut scratch = std::mem::take(&mut cx.scratch);
    write_port_with(b, cx, name, svc, eps, &mut scratch);
    cx.scratch = scratch;
}

fn write_port_with(
    b: &mut Builder,
    cx: &mut Cx<'_>,
    name: &ServicePortName,
    svc: &ServicePort,
    eps: &EndpointSet,
    scratch: &mut Scratch,
) {
    let Scratch {
        name: s,
        cluster,
        local,
        reachable,
    } = scratch;
    s.clear();
    let _ = write!(s, "{name}");
    let s = s.as_str();
    cluster.clear();
    local.clear();
    reachable.clear();
    let p = svc.protocol;
    let hash = port_proto_hash_bytes(name);
    let svc_chain = ChainName::hashed(SVC_PREFIX, &hash);
    let svl_chain = ChainName::hashed(SVL_PREFIX, &hash);
    let ext_chain = ChainName::hashed(EXT_PREFIX, &hash);
    let fw_chain = ChainName::hashed(FW_PREFIX, &hash);

    // Every endpoint reachable under some policy gets a KUBE-SEP chain; the policy chains
    // point at them in endpoint order.
    let sep = SepHasher::new(name);
    for e in &eps.entries {
        let (c, l) = (e.cluster.is_used(), e.local.is_used());
        if !(c || l) {
            continue;
        }
        let ep = &e.endpoint;
        let chain = ChainName::hashed(SEP_PREFIX, &sep.hash(ep.ip, ep.port));
        let t = Target {
            ip: ep.ip,
            port: ep.port,
            chain,
        };
        if c {
            cluster.push(reachable.len());
        }
        if l {
            local.push(reachable.len());
        }
        reachable.push(t);
    }

    let has_endpoints = eps.has_endpoints;
    let uses_cluster_chain = !cluster.is_empty() && svc.uses_cluster_endpoints();
    let uses_local_chain = !local.is_empty() && svc.uses_local_endpoints();
    let internal_local = svc.internal_policy_local();
    let external_local = svc.external_policy_local();
    let internal_chain = if internal_local { svl_chain } else { svc_chain };
    let has_internal = has_endpoints && !(internal_local && local.is_empty());
    let external_policy_chain = if external_local { svl_chain } else { svc_chain };
    let has_external = has_endpoints && !(external_local && local.is_empty());
    let uses_ext_chain = has_endpoints && svc.externally_accessible();
    let uses_fw_chain = has_endpoints
        && !svc.load_balancer_ips.is_empty()
        && !svc.load_balancer_source_ranges.is_empty();
    let lb_chain = if uses_fw_chain { fw_chain } else { ext_chain };

    // What the filter table does with traffic that finds no endpoint.
    let (internal_target, internal_why) = if has_endpoints {
        ("DROP", " has no local endpoints")
    } else {
        ("REJECT", " has no endpoints")
    };
    let (external_target, external_why) = (internal_target, internal_why);
    if has_endpoints && !has_internal {
        cx.no_local_internal += 1;
    }
    if has_endpoints && !has_external {
        cx.no_local_external += 1;
    }

    // Cluster IP.
    if has_internal {
        let l = b.top_rule(Top::NatServices);
        comment_quoted(l, s, " cluster IP");
        proto(l, p);
        dst(l, svc.cluster_ip);
        dport(l, svc.port);
        jump_end(l, internal_chain.as_str());
    } else {
        let l = b.top_rule(Top::FilterServices);
        comment_quoted(l, s, internal_why);
        proto(l, p);
        dst(l, svc.cluster_ip);
        dport(l, svc.port);
        jump_end(l, internal_target);
    }

    // External IPs.
    for &ip in &svc.external_ips {
        if has_endpoints {
            let l = b.top_rule(Top::NatServices);
            comment_quoted(l, s, " external IP");
            proto(l, p);
            dst(l, ip);
            dport(l, svc.port);
            jump_end(l, ext_chain.as_str());
        }
        if !has_external {
            let l = b.top_rule(Top::FilterExternalServices);
            comment_quoted(l, s, external_why);
            proto(l, p);
            dst(l, ip);
            dport(l, svc.port);
            jump_end(l, external_target);
        }
    }

    // Load-balancer ingress IPs.
    for &ip in &svc.load_balancer_ips {
        if has_endpoints {
            let l = b.top_rule(Top::NatServices);
            comment_quoted(l, s, " loadbalancer IP");
            proto(l, p);
            dst(l, ip);
            dport(l, svc.port);
            jump_end(l, lb_chain.as_str());
        }
        if uses_fw_chain {
            let l = b.top_rule(Top::FilterProxyFirewall);
            let _ = write!(
                l,
                " -m comment --comment \"{s} traffic not accepted by {fw_chain}\""
            );
            proto(l, p);
            dst(l, ip);
            dport(l, svc.port);
            jump_end(l, "DROP");
        }
    }
    if !has_external {
        for &ip in &svc.load_balancer_ips {
            let l = b.top_rule(Top::FilterExternalServices);
            comment_quoted(l, s, external_why);
            proto(l, p);
            dst(l, ip);
            dport(l, svc.port);
            jump_end(l, external_target);
        }
    }

    // Node port (not subject to loadBalancerSourceRanges, as upstream).
    if let Some(np) = svc.node_port {
        if has_endpoints {
            if cx.localhost_node_ports && cx.opts.nfacct {
                let l = b.top_rule(Top::NatNodePorts);
                comment_bare(l, s);
                proto(l, p);
                l.push_str(" -d 127.0.0.0/8");
                dport(l, np);
                l.push_str(" -m nfacct --nfacct-name ");
                l.push_str(NFACCT_LOCALHOST_NODEPORTS);
                jump_end(l, ext_chain.as_str());
            }
            let l = b.top_rule(Top::NatNodePorts);
            comment_bare(l, s);
            proto(l, p);
            dport(l, np);
            jump_end(l, ext_chain.as_str());
        }
        if !has_external {
            let l = b.top_rule(Top::FilterExternalServices);
            comment_quoted(l, s, external_why);
            l.push_str(" -m addrtype --dst-type LOCAL");
            proto(l, p);
            dport(l, np);
            jump_end(l, external_target);
        }
    }

    // Health check node port: accepted whether or not there are local endpoints.
    if let Some(hc) = svc.health_check_node_port {
        let l = b.top_rule(Top::FilterNodePorts);
        comment_quoted(l, s, " health check node port");
        l.push_str(" -m tcp -p tcp");
        dport(l, hc);
        jump_end(l, "ACCEPT");
    }

    // External destinations.
    if uses_ext_chain {
        b.open_chain(ext_chain);
        if !external_local {
            // Endpoints may be on other nodes: masquerade so replies come back here.
            let l = b.rule();
            let _ = write!(
                l,
                " -m comment --comment \"masquerade traffic for {s} external destinations\""
            );
            jump_end(l, "KUBE-MARK-MASQ");
        } else {
            // Pods and the node itself reach the service as if from outside and back in:
            // both go to the cluster endpoints; the node's traffic is masqueraded because
            // its source would be the external IP itself.
            if cx.local.implemented() {
                let l = b.rule();
                let _ = write!(
                    l,
                    " -m comment --comment \"pod traffic for {s} external destinations\""
                );
                cx.local.if_local(l);
                jump_end(l, svc_chain.as_str());
            }
            let l = b.rule();
            let _ = write!(
                l,
                " -m comment --comment \"masquerade LOCAL traffic for {s} external destinations\""
            );
            l.push_str(" -m addrtype --src-type LOCAL");
            jump_end(l, "KUBE-MARK-MASQ");
            let l = b.rule();
            let _ = write!(
                l,
                " -m comment --comment \"route LOCAL traffic for {s} external destinations\""
            );
            l.push_str(" -m addrtype --src-type LOCAL");
            jump_end(l, svc_chain.as_str());
        }
        if has_external {
            let l = b.rule();
            jump_end(l, external_policy_chain.as_str());
        }
    }

    // loadBalancerSourceRanges.
    if uses_fw_chain {
        b.open_chain(fw_chain);
        let mut allow_from_node = false;
        for cidr in &svc.load_balancer_source_ranges {
            let l = b.rule();
            comment_quoted(l, s, " loadbalancer IP");
            let _ = write!(l, " -s {cidr}");
            jump_end(l, ext_chain.as_str());
            if cx.node.primary_ip.is_some_and(|ip| cidr.contains(&ip)) {
                allow_from_node = true;
            }
        }
        // A VIP-like load balancer often puts the VIP on the node: the node's requests then
        // loop back with the VIP as source.
        if allow_from_node {
            for &ip in &svc.load_balancer_ips {
                let l = b.rule();
                comment_quoted(l, s, " loadbalancer IP");
                let _ = write!(l, " -s {ip}");
                jump_end(l, ext_chain.as_str());
            }
        }
        let l = b.rule();
        let _ = write!(
            l,
            " -m comment --comment \"other traffic to {s} will be dropped by KUBE-PROXY-FIREWALL\""
        );
        l.push('\n');
    }

    // Policy chains.
    for (used, chain, members) in [
        (uses_cluster_chain, svc_chain, &*cluster),
        (uses_local_chain, svl_chain, &*local),
    ] {
        if !used {
            continue;
        }
        b.open_chain(chain);
        if has_internal && chain == internal_chain {
            write_internal_masquerade(b, cx, s, svc);
        }
        write_dispatch(b, cx, s, svc, members, reachable);
    }

    // Endpoint chains.
    for t in reachable.iter() {
        b.open_chain(t.chain);
        let l = b.rule();
        if !cx.large {
            comment_bare(l, s);
        }
        l.push_str(" -s ");
        push_ip(l, t.ip);
        jump_end(l, "KUBE-MARK-MASQ");
        let l = b.rule();
        if !cx.large {
            comment_bare(l, s);
        }
        if matches!(svc.session_affinity, SessionAffinity::ClientIp { .. }) {
            l.push_str(" -m recent --name ");
            l.push_str(t.chain.as_str());
            l.push_str(" --set");
        }
        proto(l, p);
        l.push_str(" -j DNAT --to-destination ");
        push_host_port(l, t.ip, t.port);
        l.push('\n');
    }
    b.close_chain();
}

/// The first rule of the internal-traffic chain: masquerade what does not come from a
/// local pod (or everything with `--masquerade-all`), so replies from endpoints on other
/// nodes return through this node.
fn write_internal_masquerade(b: &mut Builder, cx: &Cx<'_>, s: &str, svc: &ServicePort) {
    if !cx.opts.masquerade_all && !cx.local.implemented() {
        return;
    }
    let l = b.rule();
    comment_quoted(l, s, " cluster IP");
    proto(l, svc.protocol);
    dst(l, svc.cluster_ip);
    dport(l, svc.port);
    if !cx.opts.masquerade_all {
        cx.local.if_not_local(l);
    }
    jump_end(l, "KUBE-MARK-MASQ");
}

/// Affinity checks, then one rule per endpoint taking `1/(n-i)` of what is left.
fn write_dispatch(
    b: &mut Builder,
    cx: &mut Cx<'_>,
    s: &str,
    svc: &ServicePort,
    members: &[usize],
    reachable: &[Target],
) {
    let comment = |l: &mut String, t: &Target, large: bool| {
        if !large {
            l.push_str(" -m comment --comment \"");
            l.push_str(s);
            l.push_str(" -> ");
            push_host_port(l, t.ip, t.port);
            l.push('"');
        }
    };
    if let SessionAffinity::ClientIp { timeout_seconds } = svc.session_affinity {
        for &i in members {
            let t = &reachable[i];
            let l = b.rule();
            comment(l, t, cx.large);
            let _ = write!(
                l,
                " -m recent --name {} --rcheck --seconds {timeout_seconds} --reap",
                t.chain
            );
            jump_end(l, t.chain.as_str());
        }
    }
    let n = members.len();
    for (i, &m) in members.iter().enumerate() {
        let t = &reachable[m];
        let large = cx.large;
        let prob = if i + 1 < n {
            Some(cx.probabilities.get(n - i))
        } else {
            None
        };
        let l = b.rule();
        comment(l, t, large);
        if let Some(prob) = prob {
            l.push_str(" -m statistic --mode random --probability ");
            l.push_str(prob);
        }
        jump_end(l, t.chain.as_str());
    }
}
