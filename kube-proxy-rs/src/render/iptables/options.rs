//! What the iptables render needs besides the state: kube-proxy's flags and a few facts
//! about the host (iptables features, sysctls, interface addresses) that the sync layer
//! detects once and passes in.

use std::net::IpAddr;

use crate::config::Config;

/// How the masquerade mark is written in `--mark` / `--or-mark` / `--xor-mark` arguments.
///
/// Both load the same rule into the kernel; `iptables-save` prints `0x4000` for either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MarkStyle {
    /// `0x00004000`: Go's `fmt.Sprintf("%#08x", 1<<bit)`, what kube-proxy (and kubelet's
    /// `getIPTablesMark`) writes.
    #[default]
    Padded,
    /// `0x4000`: the literal upstream's unit tests give their fake proxier.
    Short,
}

/// Options of [`render_iptables`](super::render_iptables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// `--masquerade-all`: SNAT all traffic to cluster IPs, not only off-cluster sources.
    pub masquerade_all: bool,
    /// The fwmark bit kube-proxy sets on packets to masquerade (`--iptables-masquerade-bit`,
    /// default 14 → `0x4000`).
    pub masquerade_mark: u32,
    /// How the mark is written.
    pub mark_style: MarkStyle,
    /// `iptables -j MASQUERADE --random-fully` is supported (iptables ≥ 1.6.2, upstream
    /// `HasRandomFully`).
    pub random_fully: bool,
    /// `--iptables-localhost-nodeports` (default true): NodePorts answer on 127.0.0.0/8
    /// (IPv4 only; needs `route_localnet=1`).
    pub localhost_node_ports: bool,
    /// `net.netfilter.nf_conntrack_tcp_be_liberal` is non-zero: no `KUBE-FORWARD` DROP of
    /// conntrack-INVALID packets (upstream PR #120412).
    pub conntrack_tcp_be_liberal: bool,
    /// The nfacct counters `localhost_nps_accepted_pkts` and
    /// `ct_state_invalid_dropped_pkts` exist (`nfacct add`), so rules count into them with
    /// `-m nfacct --nfacct-name`.
    pub nfacct: bool,
    /// Above this many endpoints in the family, per-endpoint comments are left out
    /// (upstream `largeClusterEndpointsThreshold`, 1000).
    pub large_cluster_threshold: usize,
    /// The addresses on this node's interfaces (`ip -j addr`), used only with
    /// `--nodeport-addresses` CIDRs to pick the `-d` of NodePort rules (upstream
    /// `GetNodeIPs`). Empty: the Node object's addresses and the loopback address.
    pub local_addresses: Vec<IpAddr>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            masquerade_all: false,
            masquerade_mark: 1 << 14,
            mark_style: MarkStyle::Padded,
            random_fully: true,
            localhost_node_ports: true,
            conntrack_tcp_be_liberal: false,
            nfacct: false,
            large_cluster_threshold: 1000,
            local_addresses: Vec::new(),
        }
    }
}

impl RenderOptions {
    /// The options kube-proxy's configuration sets; host facts (random-fully, nfacct,
    /// interface addresses) keep their defaults for the sync layer to fill in.
    pub fn from_config(cfg: &Config) -> RenderOptions {
        RenderOptions {
            masquerade_all: cfg.masquerade_all,
            masquerade_mark: cfg.masquerade_mark(),
            localhost_node_ports: cfg.localhost_node_ports,
            conntrack_tcp_be_liberal: cfg.conntrack.tcp_be_liberal,
            ..RenderOptions::default()
        }
    }

    /// The mark as the rules write it (`0x00004000` or `0x4000`).
    pub fn mark_text(&self) -> String {
        match self.mark_style {
            MarkStyle::Padded => format!("{:#010x}", self.masquerade_mark),
            MarkStyle::Short => format!("{:#x}", self.masquerade_mark),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_is_written_like_go_percent_hash_08x() {
        let mut o = RenderOptions::default();
        assert_eq!(o.mark_text(), "0x00004000");
        o.masquerade_mark = 1 << 15;
        assert_eq!(o.mark_text(), "0x00008000");
        o.masquerade_mark = 1 << 31;
        assert_eq!(o.mark_text(), "0x80000000");
        o.mark_style = MarkStyle::Short;
        o.masquerade_mark = 1 << 14;
        assert_eq!(o.mark_text(), "0x4000");
    }
}
