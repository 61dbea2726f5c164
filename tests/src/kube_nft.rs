//! kube-proxy-shaped `nft -f` scripts (nftables mode, upstream's table layout from
//! `pkg/proxy/nftables`), for the nftables differential cases.
//!
//! ```text
//!   table ip|ip6 kube-proxy
//!     filter-prerouting (dstnat-10)  ct state new -> firewall-check  (vmap @firewall-ips)
//!     filter-input/forward/output (-110) ct state new -> service-endpoints-check
//!                                   (vmap @no-endpoint-services: goto reject-chain), nodeports,
//!                                   cluster-ips-check (reject @cluster-ips, drop service CIDR)
//!     nat-prerouting / nat-output (dstnat) -> services: vmap @service-ips,
//!                                   fib daddr type local -> vmap @service-nodeports
//!       service-X: masquerade mark unless from the pod CIDR, numgen random mod N vmap
//!       endpoint-X-i: hairpin mark, dnat to endpoint
//!     nat-postrouting (srcnat) -> masquerading: mark 0x4000 set: clear it, masquerade
//! ```
//! Names are kept short (`service-ONE`, `endpoint-ONE-1`); upstream hashes them, which
//! changes nothing a packet sees.

use std::fmt::Write;
use std::net::IpAddr;

use crate::kube::Svc;

/// A LoadBalancer IP of a Service with `loadBalancerSourceRanges`.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    /// Index into [`Layout::services`].
    pub service: usize,
    /// The LoadBalancer IP.
    pub ip: IpAddr,
    /// The allowed source ranges.
    pub source_ranges: Vec<String>,
}

/// What to lay out.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Services; one without endpoints gets `goto reject-chain` elements instead of a chain.
    pub services: Vec<Svc>,
    /// The cluster CIDR (no masquerade from it).
    pub pod_cidr: String,
    /// The service CIDR (unallocated addresses in it are dropped).
    pub service_cidr: String,
    /// LoadBalancer IPs with source ranges.
    pub load_balancers: Vec<LoadBalancer>,
}

impl Layout {
    /// These services, with the default extras empty.
    pub fn new(services: Vec<Svc>, pod_cidr: &str, service_cidr: &str) -> Layout {
        Layout {
            services,
            pod_cidr: pod_cidr.to_string(),
            service_cidr: service_cidr.to_string(),
            load_balancers: Vec::new(),
        }
    }

    /// With a LoadBalancer IP for service `i`, open to `ranges`.
    pub fn load_balancer(mut self, i: usize, ip: IpAddr, ranges: &[&str]) -> Layout {
        self.load_balancers.push(LoadBalancer {
            service: i,
            ip,
            source_ranges: ranges.iter().map(|r| r.to_string()).collect(),
        });
        self
    }
}

fn ep(a: IpAddr, p: u16) -> String {
    match a {
        IpAddr::V4(v) => format!("{v}:{p}"),
        IpAddr::V6(v) => format!("[{v}]:{p}"),
    }
}

/// The `nft -f` script for `l` (family from the first service's address).
pub fn ruleset(l: &Layout) -> String {
    let v6 = l.services.first().is_some_and(|s| s.vip.is_ipv6());
    let (fam, ip, addr_ty, lo) = if v6 {
        ("ip6", "ip6", "ipv6_addr", "::1")
    } else {
        ("ip", "ip", "ipv4_addr", "127.0.0.0/8")
    };
    let mut chains = String::new();
    let mut cluster_ips = Vec::new();
    let mut service_ips = Vec::new();
    let mut service_nodeports = Vec::new();
    let mut no_ep_services = Vec::new();
    let mut no_ep_nodeports = Vec::new();
    let mut firewall_ips = Vec::new();
    for s in &l.services {
        let key = format!("{} . {} . {}", s.vip, s.proto, s.port);
        cluster_ips.push(s.vip.to_string());
        let svc = format!("service-{}", s.id);
        if s.endpoints.is_empty() {
            no_ep_services.push(format!("{key} : goto reject-chain"));
            if let Some(np) = s.node_port {
                no_ep_nodeports.push(format!("{} . {np} : goto reject-chain", s.proto));
            }
            continue;
        }
        service_ips.push(format!("{key} : goto {svc}"));
        let _ = writeln!(
            chains,
            "\tchain {svc} {{\n\t\t{ip} daddr {} {p} dport {} {ip} saddr != {} jump mark-for-masquerade",
            s.vip,
            s.port,
            l.pod_cidr,
            p = s.proto
        );
        let eps: Vec<String> = (0..s.endpoints.len())
            .map(|i| format!("{i} : goto endpoint-{}-{}", s.id, i + 1))
            .collect();
        let _ = writeln!(
            chains,
            "\t\tnumgen random mod {} vmap {{ {} }}\n\t}}",
            s.endpoints.len(),
            eps.join(", ")
        );
        for (i, (a, p)) in s.endpoints.iter().enumerate() {
            let _ = writeln!(
                chains,
                "\tchain endpoint-{}-{} {{\n\t\t{ip} saddr {a} jump mark-for-masquerade\n\t\tmeta l4proto {} dnat to {}\n\t}}",
                s.id,
                i + 1,
                s.proto,
                ep(*a, *p)
            );
        }
        if let Some(np) = s.node_port {
            service_nodeports.push(format!("{} . {np} : goto external-{}", s.proto, s.id));
        }
        if s.node_port.is_some() || l.load_balancers.iter().any(|b| b.service_is(l, s)) {
            let _ = writeln!(
                chains,
                "\tchain external-{id} {{\n\t\tjump mark-for-masquerade\n\t\tgoto {svc}\n\t}}",
                id = s.id
            );
        }
    }
    for b in &l.load_balancers {
        let s = &l.services[b.service];
        let key = format!("{} . {} . {}", b.ip, s.proto, s.port);
        service_ips.push(format!("{key} : goto external-{}", s.id));
        firewall_ips.push(format!("{key} : goto firewall-{}", s.id));
        let _ = writeln!(
            chains,
            "\tchain firewall-{} {{\n\t\t{ip} saddr != {{ {} }} drop\n\t}}",
            s.id,
            b.source_ranges.join(", ")
        );
    }
    let elems = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!("\t\telements = {{ {} }}\n", v.join(", "))
        }
    };
    let mut out = format!("table {fam} kube-proxy {{\n");
    let _ = write!(
        out,
        "\tset cluster-ips {{\n\t\ttype {addr_ty}\n{}\t}}\n",
        elems(&cluster_ips)
    );
    for (name, ty, v) in [
        (
            "no-endpoint-services",
            format!("{addr_ty} . inet_proto . inet_service"),
            &no_ep_services,
        ),
        (
            "no-endpoint-nodeports",
            "inet_proto . inet_service".to_string(),
            &no_ep_nodeports,
        ),
        (
            "firewall-ips",
            format!("{addr_ty} . inet_proto . inet_service"),
            &firewall_ips,
        ),
        (
            "service-ips",
            format!("{addr_ty} . inet_proto . inet_service"),
            &service_ips,
        ),
        (
            "service-nodeports",
            "inet_proto . inet_service".to_string(),
            &service_nodeports,
        ),
    ] {
        let _ = write!(
            out,
            "\tmap {name} {{\n\t\ttype {ty} : verdict\n{}\t}}\n",
            elems(v)
        );
    }
    let _ = write!(
        out,
        "\tchain filter-prerouting {{\n\t\ttype filter hook prerouting priority dstnat - 10; policy accept;\n\t\tct state new jump firewall-check\n\t}}\n\
         \tchain filter-input {{\n\t\ttype filter hook input priority -110; policy accept;\n\t\tct state new jump nodeport-endpoints-check\n\t\tct state new jump service-endpoints-check\n\t}}\n\
         \tchain filter-forward {{\n\t\ttype filter hook forward priority -110; policy accept;\n\t\tct state new jump service-endpoints-check\n\t\tct state new jump cluster-ips-check\n\t}}\n\
         \tchain filter-output {{\n\t\ttype filter hook output priority -110; policy accept;\n\t\tct state new jump service-endpoints-check\n\t\tct state new jump firewall-check\n\t}}\n\
         \tchain filter-output-post-dnat {{\n\t\ttype filter hook output priority -90; policy accept;\n\t\tct state new jump cluster-ips-check\n\t}}\n\
         \tchain nat-prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}}\n\
         \tchain nat-output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}}\n\
         \tchain nat-postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tjump masquerading\n\t}}\n\
         \tchain cluster-ips-check {{\n\t\t{ip} daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\"\n\t\t{ip} daddr {cidr} drop comment \"Drop traffic to unallocated ClusterIPs\"\n\t}}\n\
         \tchain firewall-check {{\n\t\t{ip} daddr . meta l4proto . th dport vmap @firewall-ips\n\t}}\n\
         \tchain reject-chain {{\n\t\treject\n\t}}\n\
         \tchain mark-for-masquerade {{\n\t\tmeta mark set meta mark | 0x4000\n\t}}\n\
         \tchain masquerading {{\n\t\tmeta mark & 0x4000 == 0 return\n\t\tmeta mark set meta mark ^ 0x4000\n\t\tmasquerade fully-random\n\t}}\n\
         \tchain services {{\n\t\t{ip} daddr . meta l4proto . th dport vmap @service-ips\n\t\tfib daddr type local {ip} daddr != {lo} meta l4proto . th dport vmap @service-nodeports\n\t}}\n\
         \tchain service-endpoints-check {{\n\t\t{ip} daddr . meta l4proto . th dport vmap @no-endpoint-services\n\t}}\n\
         \tchain nodeport-endpoints-check {{\n\t\tfib daddr type local {ip} daddr != {lo} meta l4proto . th dport vmap @no-endpoint-nodeports\n\t}}\n",
        cidr = l.service_cidr
    );
    out.push_str(&chains);
    out.push_str("}\n");
    out
}

impl LoadBalancer {
    fn service_is(&self, l: &Layout, s: &Svc) -> bool {
        l.services.get(self.service).is_some_and(|x| x.id == s.id)
    }
}
