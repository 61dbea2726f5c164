//! [`Sysctls`]: the kernel settings a node's data plane depends on, as `sysctl KEY...` prints
//! them, with typed accessors that combine `all` and per-interface values the way the kernel
//! does.
//!
//! ```text
//!   "net.ipv4.conf.eth0.rp_filter = 1"   --Sysctls::parse-->  { key -> value }
//!   rp_filter(dev)       = max(conf.all, conf.DEV)            (IN_DEV_MAXCONF)
//!   route_localnet(dev)  = conf.all || conf.DEV               (IN_DEV_ORCONF)
//!   forwarding(dev)      = conf.DEV (IPv4, IN_DEV_FORWARD), else ip_forward
//!   route_settings()     -> route::RouteSettings (what RouteState::lookup reads)
//! ```
//! Interface names with a dot are written with `/` in keys (`net.ipv4.conf.eth0/100.rp_filter`),
//! as sysctl(8) does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::packet::Family;
use crate::route::{RouteSettings, RpFilter};

/// A `sysctl` line that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sysctl line {line}: expected `key = value`, found {found:?}")]
pub struct SysctlError {
    /// 1-based line number.
    pub line: usize,
    /// The line.
    pub found: String,
}

/// Kernel settings by key (`net.ipv4.ip_forward`), values as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sysctls {
    /// Values by dotted key.
    pub values: BTreeMap<String, String>,
}

/// The dotted key of a `/proc/sys/...` path (`/proc/sys/net/ipv4/ip_forward` ->
/// `net.ipv4.ip_forward`; a dot inside a component becomes `/`).
fn key_of_path(path: &str) -> String {
    path.trim_start_matches("/proc/sys/")
        .split('/')
        .map(|c| c.replace('.', "/"))
        .collect::<Vec<_>>()
        .join(".")
}

fn dev_key(dev: &str) -> String {
    dev.replace('.', "/")
}

impl Sysctls {
    /// No values known.
    pub fn new() -> Sysctls {
        Sysctls::default()
    }

    /// Parses `sysctl -a` / `sysctl KEY...` output (`key = value`), also `key=value` and
    /// `grep -r . /proc/sys/net` output (`/proc/sys/net/ipv4/ip_forward:1`). Blank lines and
    /// `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Sysctls, SysctlError> {
        let mut s = Sysctls::new();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (k, v) = if t.starts_with("/proc/sys/") {
                t.split_once(':')
                    .map(|(k, v)| (key_of_path(k), v.trim().to_string()))
            } else {
                t.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            }
            .filter(|(k, _)| !k.is_empty() && !k.contains(' '))
            .ok_or_else(|| SysctlError {
                line: n + 1,
                found: t.chars().take(80).collect(),
            })?;
            s.values.insert(k, v);
        }
        Ok(s)
    }

    /// The values as `sysctl` prints them (`key = value`, sorted by key).
    pub fn to_text(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }

    /// Sets a value (`sysctl -w key=value`).
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Sysctls {
        self.values.insert(key.to_string(), value.into());
        self
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A numeric value.
    pub fn num(&self, key: &str) -> Option<u64> {
        self.get(key)?.trim().parse().ok()
    }

    fn flag(&self, key: &str) -> Option<bool> {
        self.num(key).map(|v| v != 0)
    }

    fn conf(&self, family: Family, dev: &str, name: &str) -> Option<u64> {
        let fam = match family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        };
        self.num(&format!("net.{fam}.conf.{}.{name}", dev_key(dev)))
    }

    /// `net.ipv4.ip_forward` (the same switch as `net.ipv4.conf.all.forwarding`).
    pub fn ipv4_forwarding(&self) -> Option<bool> {
        self.flag("net.ipv4.ip_forward")
            .or_else(|| self.flag("net.ipv4.conf.all.forwarding"))
    }

    /// `net.ipv6.conf.all.forwarding` (ip6_forward checks only this one).
    pub fn ipv6_forwarding(&self) -> Option<bool> {
        self.flag("net.ipv6.conf.all.forwarding")
    }

    /// Whether packets arriving on `dev` may be forwarded: IPv4 checks the input device's own
    /// `conf.DEV.forwarding` (`IN_DEV_FORWARD`), falling back to `ip_forward` when it is not
    /// known; IPv6 checks `conf.all.forwarding`.
    pub fn forwarding(&self, family: Family, dev: &str) -> Option<bool> {
        match family {
            Family::V4 => self
                .conf(Family::V4, dev, "forwarding")
                .map(|v| v != 0)
                .or_else(|| self.ipv4_forwarding()),
            Family::V6 => self.ipv6_forwarding(),
        }
    }

    /// The reverse-path filter mode used for packets arriving on `dev`: the larger of
    /// `conf.all.rp_filter` and `conf.DEV.rp_filter` (`None` when neither is known).
    pub fn rp_filter(&self, dev: &str) -> Option<RpFilter> {
        let all = self.conf(Family::V4, "all", "rp_filter");
        let per = self.conf(Family::V4, dev, "rp_filter");
        if all.is_none() && per.is_none() {
            return None;
        }
        let v = all.unwrap_or(0).max(per.unwrap_or(0));
        Some(RpFilter::from_sysctl(v.min(255) as u8))
    }

    fn or_conf(&self, dev: Option<&str>, name: &str) -> Option<bool> {
        let all = self.conf(Family::V4, "all", name);
        let per = dev.and_then(|d| self.conf(Family::V4, d, name));
        if all.is_none() && per.is_none() {
            return None;
        }
        Some(all.unwrap_or(0) != 0 || per.unwrap_or(0) != 0)
    }

    /// `route_localnet` for `dev` (all OR device; `None` for the `all` value alone).
    pub fn route_localnet(&self, dev: Option<&str>) -> Option<bool> {
        self.or_conf(dev, "route_localnet")
    }

    /// `src_valid_mark` for `dev` (all OR device): whether rp_filter's reverse lookup uses
    /// the packet's mark.
    pub fn src_valid_mark(&self, dev: &str) -> Option<bool> {
        self.or_conf(Some(dev), "src_valid_mark")
    }

    /// `accept_local` for `dev` (all OR device): whether a packet with a local source address
    /// is accepted from outside.
    pub fn accept_local(&self, dev: &str) -> Option<bool> {
        self.or_conf(Some(dev), "accept_local")
    }

    /// `net.bridge.bridge-nf-call-iptables`: whether bridged IPv4 frames traverse iptables.
    pub fn bridge_nf_call_iptables(&self) -> Option<bool> {
        self.flag("net.bridge.bridge-nf-call-iptables")
    }

    /// `net.bridge.bridge-nf-call-ip6tables`.
    pub fn bridge_nf_call_ip6tables(&self) -> Option<bool> {
        self.flag("net.bridge.bridge-nf-call-ip6tables")
    }

    /// `net.netfilter.nf_conntrack_max` (or the older `net.nf_conntrack_max`).
    pub fn conntrack_max(&self) -> Option<u64> {
        self.num("net.netfilter.nf_conntrack_max")
            .or_else(|| self.num("net.nf_conntrack_max"))
    }

    /// `net.netfilter.nf_conntrack_count`: entries in the table now.
    pub fn conntrack_count(&self) -> Option<u64> {
        self.num("net.netfilter.nf_conntrack_count")
    }

    /// `net.netfilter.nf_conntrack_tcp_be_liberal`: out-of-window TCP packets are not INVALID.
    pub fn conntrack_tcp_be_liberal(&self) -> Option<bool> {
        self.flag("net.netfilter.nf_conntrack_tcp_be_liberal")
    }

    /// `net.netfilter.nf_conntrack_tcp_loose`: mid-stream TCP packets start a connection.
    pub fn conntrack_tcp_loose(&self) -> Option<bool> {
        self.flag("net.netfilter.nf_conntrack_tcp_loose")
    }

    /// The settings the routing lookup reads (global values; the tracer applies per-interface
    /// forwarding and `route_localnet` itself).
    pub fn route_settings(&self) -> RouteSettings {
        RouteSettings {
            ipv4_forwarding: self.ipv4_forwarding(),
            ipv6_forwarding: self.ipv6_forwarding(),
            ignore_routes_with_linkdown: self.flag("net.ipv4.conf.all.ignore_routes_with_linkdown"),
            route_localnet: self.route_localnet(None),
        }
    }

    /// The keys a node snapshot should hold for these interfaces (what diag collects and the
    /// tests capture with `sysctl -e KEY...`).
    pub fn keys_for(devs: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = [
            "net.ipv4.ip_forward",
            "net.ipv6.conf.all.forwarding",
            "net.ipv4.conf.all.forwarding",
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.default.rp_filter",
            "net.ipv4.conf.all.route_localnet",
            "net.ipv4.conf.all.src_valid_mark",
            "net.ipv4.conf.all.accept_local",
            "net.ipv4.conf.all.ignore_routes_with_linkdown",
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-ip6tables",
            "net.netfilter.nf_conntrack_max",
            "net.netfilter.nf_conntrack_count",
            "net.netfilter.nf_conntrack_tcp_be_liberal",
            "net.netfilter.nf_conntrack_tcp_loose",
            "net.ipv4.vs.conntrack",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for d in devs {
            let d = dev_key(d);
            for name in [
                "forwarding",
                "rp_filter",
                "route_localnet",
                "src_valid_mark",
                "accept_local",
            ] {
                keys.push(format!("net.ipv4.conf.{d}.{name}"));
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysctl_and_proc_output() {
        let s = Sysctls::parse(
            "net.ipv4.ip_forward = 1\nnet.ipv4.conf.eth0/100.rp_filter=2\n\n\
             /proc/sys/net/ipv4/conf/all/rp_filter:1\n",
        )
        .unwrap();
        assert_eq!(s.ipv4_forwarding(), Some(true));
        assert_eq!(s.get("net.ipv4.conf.all.rp_filter"), Some("1"));
        assert_eq!(s.rp_filter("eth0.100"), Some(RpFilter::Loose));
        assert_eq!(s.rp_filter("eth1"), Some(RpFilter::Strict));
        assert_eq!(
            Sysctls::parse(&s.to_text()).unwrap(),
            s,
            "to_text round trip"
        );
        let e = Sysctls::parse("a = 1\nnonsense\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn kernel_combination_rules() {
        let mut s = Sysctls::new();
        assert_eq!(s.rp_filter("eth0"), None);
        s.set("net.ipv4.conf.all.rp_filter", "0")
            .set("net.ipv4.conf.eth0.rp_filter", "1")
            .set("net.ipv4.ip_forward", "1")
            .set("net.ipv4.conf.eth1.forwarding", "0")
            .set("net.ipv4.conf.eth0.route_localnet", "1");
        assert_eq!(s.rp_filter("eth0"), Some(RpFilter::Strict));
        assert_eq!(s.rp_filter("eth2"), Some(RpFilter::Off));
        assert_eq!(s.forwarding(Family::V4, "eth1"), Some(false));
        assert_eq!(s.forwarding(Family::V4, "eth0"), Some(true));
        assert_eq!(s.forwarding(Family::V6, "eth0"), None);
        assert_eq!(s.route_localnet(Some("eth0")), Some(true));
        assert_eq!(s.route_localnet(None), None);
        assert_eq!(s.route_settings().ipv4_forwarding, Some(true));
    }
}
