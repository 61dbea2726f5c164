//! The pieces rules are written from: inline chain names, the option groups kube-proxy
//! writes (in its order: `-m comment`, `-m PROTO -p PROTO`, `-d`, `--dport`, `-j`), the
//! local-traffic matches and the `--probability` strings. Everything appends to one
//! `String`; nothing here allocates per rule.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use dataplane::Protocol;
use ipnet::IpNet;

use crate::model::LocalTraffic;

/// The longest chain name iptables accepts.
pub(super) const MAX_CHAIN_NAME: usize = 28;

/// An iptables chain name held inline (ASCII, at most 28 bytes): `KUBE-SEP-` + 16 hash
/// characters for per-service chains, or one of the fixed names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainName {
    len: u8,
    buf: [u8; MAX_CHAIN_NAME],
}

impl ChainName {
    /// `prefix` + `hash` (`KUBE-SVC-` + 16 characters).
    pub fn hashed(prefix: &str, hash: &[u8; 16]) -> ChainName {
        let mut c = ChainName {
            len: 0,
            buf: [0; MAX_CHAIN_NAME],
        };
        c.push(prefix.as_bytes());
        c.push(hash);
        c
    }

    /// A fixed name such as `KUBE-SERVICES` (cut at 28 bytes).
    pub fn fixed(name: &str) -> ChainName {
        let mut c = ChainName {
            len: 0,
            buf: [0; MAX_CHAIN_NAME],
        };
        c.push(name.as_bytes());
        c
    }

    fn push(&mut self, b: &[u8]) {
        let start = usize::from(self.len);
        let n = b.len().min(MAX_CHAIN_NAME - start);
        self.buf[start..start + n].copy_from_slice(&b[..n]);
        self.len = u8::try_from(start + n).unwrap_or(MAX_CHAIN_NAME as u8);
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// A key that sorts as [`chain_order`]: the rank, then the name zero-padded (a zero
    /// byte sorts before any name character, so a prefix sorts first, as with strings).
    pub fn order_key(&self) -> (u8, [u8; MAX_CHAIN_NAME]) {
        (rank(self.as_bytes()), self.buf)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Built only from ASCII prefixes and base32 characters.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The order chains are printed in: `KUBE-NODEPORTS`, `KUBE-SERVICES`, other `KUBE-*`
/// chains by name, then everything else by name. This is upstream's test normalisation
/// (`sortIPTablesRules`), so rendered text can be compared with upstream's expected dumps
/// as it is.
pub fn chain_order(a: &str, b: &str) -> Ordering {
    chain_order_bytes(a.as_bytes(), b.as_bytes())
}

/// [`chain_order`] on bytes.
pub(super) fn chain_order_bytes(a: &[u8], b: &[u8]) -> Ordering {
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

fn rank(n: &[u8]) -> u8 {
    match n {
        b"KUBE-NODEPORTS" => 0,
        b"KUBE-SERVICES" => 1,
        _ if n.starts_with(b"KUBE-") => 2,
        _ => 3,
    }
}

/// Appends a decimal number without the formatting machinery.
pub(super) fn push_u32(out: &mut String, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

/// Appends an address as Go's `net.IP.String()` writes it (dotted quad, RFC 5952 for IPv6).
pub(super) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            push_u32(out, a.into());
            out.push('.');
            push_u32(out, b.into());
            out.push('.');
            push_u32(out, c.into());
            out.push('.');
            push_u32(out, d.into());
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `ip:port` as Go's `net.JoinHostPort` writes it (`[2001:db8::1]:80`).
pub(super) fn push_host_port(out: &mut String, ip: IpAddr, port: u16) {
    if ip.is_ipv6() {
        out.push('[');
        push_ip(out, ip);
        out.push(']');
    } else {
        push_ip(out, ip);
    }
    out.push(':');
    push_u32(out, port.into());
}

/// ` -m comment --comment "TEXTSUFFIX"`.
pub(super) fn comment_quoted(out: &mut String, text: &str, suffix: &str) {
    out.push_str(" -m comment --comment \"");
    out.push_str(text);
    out.push_str(suffix);
    out.push('"');
}

/// ` -m comment --comment TEXT` (a service port name has no spaces).
pub(super) fn comment_bare(out: &mut String, text: &str) {
    out.push_str(" -m comment --comment ");
    out.push_str(text);
}

/// ` -m PROTO -p PROTO`.
pub(super) fn proto(out: &mut String, p: Protocol) {
    let name = match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
        other => {
            let _ = write!(out, " -m {other} -p {other}");
            return;
        }
    };
    out.push_str(" -m ");
    out.push_str(name);
    out.push_str(" -p ");
    out.push_str(name);
}

/// ` -d IP` (no prefix length, as upstream writes addresses).
pub(super) fn dst(out: &mut String, ip: IpAddr) {
    out.push_str(" -d ");
    push_ip(out, ip);
}

/// ` --dport PORT`.
pub(super) fn dport(out: &mut String, port: u16) {
    out.push_str(" --dport ");
    push_u32(out, port.into());
}

/// ` -j TARGET` and the end of the line.
pub(super) fn jump_end(out: &mut String, target: &str) {
    out.push_str(" -j ");
    out.push_str(target);
    out.push('\n');
}

/// How locally originated (pod) traffic is matched (upstream `LocalTrafficDetector`).
#[derive(Debug, Clone, Copy)]
pub(super) enum LocalMatch<'a> {
    /// `-s CIDR`.
    Cidr(IpNet),
    /// `-i BRIDGE`.
    Bridge(&'a str),
    /// `-i PREFIX+`.
    Prefix(&'a str),
    /// Not detected (upstream's no-op detector): the rules that need it are left out.
    None,
}

impl<'a> LocalMatch<'a> {
    /// The matcher for a node's detect-local mode.
    pub(super) fn of(t: &'a LocalTraffic) -> LocalMatch<'a> {
        match t {
            LocalTraffic::Cidr(c) => LocalMatch::Cidr(*c),
            LocalTraffic::BridgeInterface(b) => LocalMatch::Bridge(b),
            LocalTraffic::InterfaceNamePrefix(p) => LocalMatch::Prefix(p),
            LocalTraffic::Undetected(_) => LocalMatch::None,
        }
    }

    /// Upstream `IsImplemented`.
    pub(super) fn implemented(&self) -> bool {
        !matches!(self, LocalMatch::None)
    }

    /// Upstream `IfLocal()`: ` -s CIDR`, ` -i BRIDGE` or ` -i PREFIX+`.
    pub(super) fn if_local(&self, out: &mut String) {
        self.write(out, "");
    }

    /// Upstream `IfNotLocal()`: the same, negated with `!`.
    pub(super) fn if_not_local(&self, out: &mut String) {
        self.write(out, " !");
    }

    fn write(&self, out: &mut String, bang: &str) {
        let _ = match self {
            LocalMatch::Cidr(c) => write!(out, "{bang} -s {c}"),
            LocalMatch::Bridge(b) => write!(out, "{bang} -i {b}"),
            LocalMatch::Prefix(p) => write!(out, "{bang} -i {p}+"),
            LocalMatch::None => Ok(()),
        };
    }
}

/// `--probability` strings `1/n` as Go's `fmt.Sprintf("%0.10f", 1.0/float64(n))` writes
/// them, computed once per n.
#[derive(Debug, Default)]
pub(super) struct Probabilities(Vec<String>);

impl Probabilities {
    /// The string for `1/n` (n ≥ 1).
    pub(super) fn get(&mut self, n: usize) -> &str {
        while self.0.len() <= n {
            let k = self.0.len().max(1) as f64;
            self.0.push(format!("{:.10}", 1.0 / k));
        }
        &self.0[n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_and_order() {
        let c = ChainName::hashed("KUBE-SEP-", b"SXIVWICOYRO3J4NJ");
        assert_eq!(c.as_str(), "KUBE-SEP-SXIVWICOYRO3J4NJ");
        assert_eq!(ChainName::fixed(&"X".repeat(40)).as_str().len(), 28);
        let mut names = [
            "KUBE-SVC-A",
            "KUBE-SERVICES",
            "KUBE-EXT-B",
            "INPUT",
            "KUBE-NODEPORTS",
            "KUBE-MARK-MASQ",
        ];
        names.sort_by(|a, b| chain_order(a, b));
        let mut keyed = names.map(ChainName::fixed);
        keyed.sort_by_key(ChainName::order_key);
        assert_eq!(
            keyed.map(|c| c.as_str().to_string()),
            names.map(String::from)
        );
        assert_eq!(
            names,
            [
                "KUBE-NODEPORTS",
                "KUBE-SERVICES",
                "KUBE-EXT-B",
                "KUBE-MARK-MASQ",
                "KUBE-SVC-A",
                "INPUT"
            ]
        );
    }

    #[test]
    fn numbers_and_addresses_match_display() {
        for n in [0u32, 7, 10, 65535, u32::MAX] {
            let mut s = String::new();
            push_u32(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for ip in ["0.0.0.0", "198.18.64.10", "255.255.255.255", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            push_host_port(&mut s, ip, 8080);
            assert_eq!(s, crate::model::join_host_port(ip, 8080));
        }
    }

    #[test]
    fn probabilities_match_go() {
        let mut p = Probabilities::default();
        assert_eq!(p.get(2), "0.5000000000");
        assert_eq!(p.get(3), "0.3333333333");
        assert_eq!(p.get(6), "0.1666666667");
        assert_eq!(p.get(7), "0.1428571429");
        assert_eq!(p.get(1), "1.0000000000");
    }

    #[test]
    fn local_matches() {
        let mut s = String::new();
        LocalMatch::Cidr("198.18.64.0/18".parse().unwrap()).if_not_local(&mut s);
        LocalMatch::Prefix("veth").if_local(&mut s);
        LocalMatch::Bridge("cbr0").if_not_local(&mut s);
        assert_eq!(s, " ! -s 198.18.64.0/18 -i veth+ ! -i cbr0");
    }
}
