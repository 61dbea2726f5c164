//! kube-proxy-shaped iptables-restore text (iptables mode, chain names and rule layout as
//! upstream writes them), for the differential cases.
//!
//! ```text
//!   nat: PREROUTING/OUTPUT -> KUBE-SERVICES -> KUBE-SVC-x (mark-masq unless from the pod CIDR,
//!        statistic over endpoints) -> KUBE-SEP-y (hairpin mark-masq, DNAT);
//!        KUBE-SERVICES last rule: addrtype LOCAL -> KUBE-NODEPORTS -> KUBE-EXT-x -> KUBE-SVC-x;
//!        POSTROUTING -> KUBE-POSTROUTING (mark 0x4000: clear it, MASQUERADE)
//! ```

use std::fmt::Write;
use std::net::IpAddr;

/// One Service port.
#[derive(Debug, Clone)]
pub struct Svc {
    /// Chain suffix (`AAAA` -> `KUBE-SVC-AAAA`).
    pub id: &'static str,
    /// ClusterIP.
    pub vip: IpAddr,
    /// Service port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// Endpoints (address, target port).
    pub endpoints: Vec<(IpAddr, u16)>,
    /// NodePort, if any.
    pub node_port: Option<u16>,
}

fn host(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => format!("{v}/32"),
        IpAddr::V6(v) => format!("{v}/128"),
    }
}

fn ep(a: IpAddr, p: u16) -> String {
    match a {
        IpAddr::V4(v) => format!("{v}:{p}"),
        IpAddr::V6(v) => format!("[{v}]:{p}"),
    }
}

/// The nat table for these services; `pod_cidr` is the cluster CIDR (no masquerade from it).
pub fn nat(services: &[Svc], pod_cidr: &str) -> String {
    let mut decl = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         :KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n",
    );
    let mut rules = String::from(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
         -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n\
         -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
         -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
         -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n",
    );
    for s in services {
        let name = format!("ns/svc-{}:p", s.id.to_lowercase());
        let svc = format!("KUBE-SVC-{}", s.id);
        let _ = writeln!(decl, ":{svc} - [0:0]");
        let _ = writeln!(
            rules,
            "-A KUBE-SERVICES -d {} -p {p} -m comment --comment \"{name} cluster IP\" -m {p} --dport {} -j {svc}",
            host(s.vip),
            s.port,
            p = s.proto
        );
        let _ = writeln!(
            rules,
            "-A {svc} ! -s {pod_cidr} -d {} -p {p} -m comment --comment \"{name} cluster IP\" -m {p} --dport {} -j KUBE-MARK-MASQ",
            host(s.vip),
            s.port,
            p = s.proto
        );
        if let Some(np) = s.node_port {
            let ext = format!("KUBE-EXT-{}", s.id);
            let _ = writeln!(decl, ":{ext} - [0:0]");
            let _ = writeln!(
                rules,
                "-A KUBE-NODEPORTS -p {p} -m comment --comment \"{name}\" -m {p} --dport {np} -j {ext}",
                p = s.proto
            );
            let _ = writeln!(
                rules,
                "-A {ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j KUBE-MARK-MASQ"
            );
            let _ = writeln!(rules, "-A {ext} -j {svc}");
        }
        let n = s.endpoints.len();
        for (i, (a, p)) in s.endpoints.iter().enumerate() {
            let sep = format!("KUBE-SEP-{}{}", s.id, i + 1);
            let _ = writeln!(decl, ":{sep} - [0:0]");
            let left = n - i;
            let stat = if left > 1 {
                format!(
                    " -m statistic --mode random --probability {:.11}",
                    1.0 / left as f64
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                rules,
                "-A {svc} -m comment --comment \"{name} -> {}\"{stat} -j {sep}",
                ep(*a, *p)
            );
            let _ = writeln!(
                rules,
                "-A {sep} -s {} -m comment --comment \"{name}\" -j KUBE-MARK-MASQ",
                host(*a)
            );
            let _ = writeln!(
                rules,
                "-A {sep} -p {p} -m comment --comment \"{name}\" -m {p} -j DNAT --to-destination {}",
                ep(*a, *p),
                p = s.proto
            );
        }
    }
    let _ = writeln!(
        rules,
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    );
    format!("{decl}{rules}COMMIT\n")
}

/// kube-proxy's filter table rule for a Service without endpoints (REJECT in KUBE-SERVICES
/// from FORWARD and OUTPUT for NEW connections).
pub fn no_endpoints(vip: IpAddr, port: u16, proto: &str) -> String {
    format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A KUBE-SERVICES -d {} -p {proto} -m comment --comment \"ns/empty:p has no endpoints\" -m {proto} --dport {port} -j REJECT --reject-with icmp-port-unreachable\n\
         COMMIT\n",
        host(vip)
    )
}

/// A filter table with these FORWARD (and other) lines and policies.
pub fn filter(forward_policy: &str, chains: &[&str], lines: &[&str]) -> String {
    let mut s = format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD {forward_policy} [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    );
    for c in chains {
        let _ = writeln!(s, ":{c} - [0:0]");
    }
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    s.push_str("COMMIT\n");
    s
}

/// A table other than filter, with its built-in chains ACCEPT.
pub fn table(name: &str, lines: &[&str]) -> String {
    let builtins: &[&str] = match name {
        "nat" => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle" => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        "raw" => &["PREROUTING", "OUTPUT"],
        _ => &["INPUT", "FORWARD", "OUTPUT"],
    };
    let mut s = format!("*{name}\n");
    for c in builtins {
        let _ = writeln!(s, ":{c} ACCEPT [0:0]");
    }
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    s.push_str("COMMIT\n");
    s
}
