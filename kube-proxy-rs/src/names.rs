//! Upstream kube-proxy's chain and set names, derived exactly as upstream derives them, so
//! `iptables-save | grep KUBE-SVC-…` from existing runbooks finds our chains.
//!
//! ```text
//!   iptables:  KUBE-{SVC,SVL,EXT,FW}-  + base32(sha256(svcPortName + proto))[..16]
//!              KUBE-SEP-               + base32(sha256(svcPortName + proto + "ip:port"))[..16]
//!   nftables:  {service,local,external,firewall}-  + HASH8-ns/name/proto/port
//!              {endpoint,affinity}-                + HASH8-ns/name/proto/port__ip/port
//!              (HASH8 = base32(sha256(the rest))[..8], IPv6 colons written as dots)
//! ```
//!
//! `svcPortName` is [`ServicePortName`]'s display (`ns/name:port`, or `ns/name` for an
//! unnamed port), `proto` is `tcp`/`udp`/`sctp`, `ip:port` is Go's `net.JoinHostPort`
//! (`[2001:db8::1]:80`). Base32 is RFC 4648 §6 with the upper-case alphabet.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use data_encoding::BASE32;
use sha2::{Digest, Sha256};

use crate::model::ServicePortName;

/// Prefix of a service port's Cluster-policy endpoint chain.
pub const SVC_PREFIX: &str = "KUBE-SVC-";
/// Prefix of a service port's Local-policy endpoint chain.
pub const SVL_PREFIX: &str = "KUBE-SVL-";
/// Prefix of a service port's external-traffic chain.
pub const EXT_PREFIX: &str = "KUBE-EXT-";
/// Prefix of a service port's load-balancer source-range chain.
pub const FW_PREFIX: &str = "KUBE-FW-";
/// Prefix of an endpoint's chain.
pub const SEP_PREFIX: &str = "KUBE-SEP-";

/// The longest name nftables accepts for a chain or set (`NFT_NAME_MAXLEN - 1`).
pub const NFT_NAME_MAX: usize = 256;
const NFT_PREFIX_MAX: usize = 16;
const NFT_BASE_MAX: usize = NFT_NAME_MAX - NFT_PREFIX_MAX;

fn base32_sha256(input: &str) -> String {
    BASE32.encode(&Sha256::digest(input.as_bytes()))
}

/// Feeds formatted text into a SHA-256 without building the string.
struct HashWriter(Sha256);

impl fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// The first 16 characters of base32(sha256(text)): base32 turns each 5 bytes into 8
/// characters, so they are the encoding of the digest's first 10 bytes.
fn hash16(text: fmt::Arguments<'_>) -> [u8; 16] {
    let mut w = HashWriter(Sha256::new());
    // Writing into a hasher cannot fail.
    let _ = w.write_fmt(text);
    let digest = w.0.finalize();
    let mut out = [0u8; 16];
    BASE32.encode_mut(&digest[..10], &mut out);
    out
}

/// [`port_proto_hash`] as bytes, without allocating (the renders' hot path).
pub fn port_proto_hash_bytes(name: &ServicePortName) -> [u8; 16] {
    hash16(format_args!("{name}{}", name.protocol))
}

/// The 16-character hash of a `KUBE-SEP-` chain name, without allocating.
pub fn sep_hash_bytes(name: &ServicePortName, ip: IpAddr, port: u16) -> [u8; 16] {
    SepHasher::new(name).hash(ip, port)
}

/// `KUBE-SEP-` hashes of many endpoints of one service port: the SHA-256 state after
/// `svcPortName + proto` is computed once and cloned per endpoint.
#[derive(Clone)]
pub struct SepHasher(Sha256);

impl SepHasher {
    /// The hasher for one service port.
    pub fn new(name: &ServicePortName) -> SepHasher {
        let mut w = HashWriter(Sha256::new());
        // Writing into a hasher cannot fail.
        let _ = write!(w, "{name}{}", name.protocol);
        SepHasher(w.0)
    }

    /// The 16 hash characters for the endpoint `ip:port` (Go's `net.JoinHostPort` form).
    pub fn hash(&self, ip: IpAddr, port: u16) -> [u8; 16] {
        let mut h = self.0.clone();
        let mut buf = [0u8; 64];
        let n = host_port_bytes(ip, port, &mut buf);
        h.update(&buf[..n]);
        let digest = h.finalize();
        let mut out = [0u8; 16];
        BASE32.encode_mut(&digest[..10], &mut out);
        out
    }
}

/// Writes `ip:port` / `[ip]:port` into `buf`, returning the length.
fn host_port_bytes(ip: IpAddr, port: u16, buf: &mut [u8; 64]) -> usize {
    fn num(buf: &mut [u8], at: &mut usize, mut n: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        buf[*at..*at + d.len()].copy_from_slice(d);
        *at += d.len();
    }
    let mut at = 0;
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[at] = b'.';
                    at += 1;
                }
                num(buf, &mut at, o.into());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let mut w = &mut buf[..];
            let _ = write!(w, "[{v6}]");
            at = 64 - w.len();
        }
    }
    buf[at] = b':';
    at += 1;
    num(buf, &mut at, port.into());
    at
}

fn ascii(h: [u8; 16]) -> String {
    // Base32 output is ASCII.
    h.iter().map(|&b| b as char).collect()
}

/// Upstream `portProtoHash`: the 16-character hash shared by a port's
/// `KUBE-SVC`/`SVL`/`EXT`/`FW` chains.
pub fn port_proto_hash(name: &ServicePortName) -> String {
    ascii(port_proto_hash_bytes(name))
}

/// `KUBE-SVC-<hash>`: the Cluster-policy endpoint chain.
pub fn svc_chain(name: &ServicePortName) -> String {
    format!("{SVC_PREFIX}{}", port_proto_hash(name))
}

/// `KUBE-SVL-<hash>`: the Local-policy endpoint chain.
pub fn svl_chain(name: &ServicePortName) -> String {
    format!("{SVL_PREFIX}{}", port_proto_hash(name))
}

/// `KUBE-EXT-<hash>`: the external (NodePort, external IP, LB IP) chain.
pub fn ext_chain(name: &ServicePortName) -> String {
    format!("{EXT_PREFIX}{}", port_proto_hash(name))
}

/// `KUBE-FW-<hash>`: the loadBalancerSourceRanges chain.
pub fn fw_chain(name: &ServicePortName) -> String {
    format!("{FW_PREFIX}{}", port_proto_hash(name))
}

/// `KUBE-SEP-<hash>`: one endpoint's chain (upstream `servicePortEndpointChainName`).
pub fn sep_chain(name: &ServicePortName, ip: IpAddr, port: u16) -> String {
    format!("{SEP_PREFIX}{}", ascii(sep_hash_bytes(name, ip, port)))
}

/// Upstream nftables `hashAndTruncate`: `HASH8-` + the name, cut to 240 bytes with `...`.
fn nft_hash_and_truncate(name: String) -> String {
    let mut hash = base32_sha256(&name);
    hash.truncate(8);
    let mut out = format!("{hash}-{name}");
    if out.len() > NFT_BASE_MAX {
        // Names are ASCII (DNS labels, digits, '/', '.', '_'), so byte cuts are char cuts.
        out.truncate(NFT_BASE_MAX - 3);
        out.push_str("...");
    }
    out
}

/// Upstream nftables `servicePortChainNameBase`: `HASH8-ns/name/proto/port`, e.g.
/// `ULMVA6XW-ns1/svc1/tcp/p80`.
pub fn nft_service_base(name: &ServicePortName) -> String {
    nft_hash_and_truncate(format!(
        "{}/{}/{}/{}",
        name.namespace, name.name, name.protocol, name.port_name
    ))
}

/// Upstream nftables `servicePortEndpointChainNameBase`:
/// `HASH8-ns/name/proto/port__ip/port`, IPv6 colons replaced by dots
/// (chain names may not contain `:`).
pub fn nft_endpoint_base(name: &ServicePortName, ip: IpAddr, port: u16) -> String {
    let ip = ip.to_string().replace(':', ".");
    nft_hash_and_truncate(format!(
        "{}/{}/{}/{}__{ip}/{port}",
        name.namespace, name.name, name.protocol, name.port_name
    ))
}

/// `service-<base>`: the nftables Cluster-policy endpoint chain.
pub fn nft_service_chain(name: &ServicePortName) -> String {
    format!("service-{}", nft_service_base(name))
}

/// `local-<base>`: the nftables Local-policy endpoint chain.
pub fn nft_local_chain(name: &ServicePortName) -> String {
    format!("local-{}", nft_service_base(name))
}

/// `external-<base>`: the nftables external-traffic chain.
pub fn nft_external_chain(name: &ServicePortName) -> String {
    format!("external-{}", nft_service_base(name))
}

/// `firewall-<base>`: the nftables source-range chain.
pub fn nft_firewall_chain(name: &ServicePortName) -> String {
    format!("firewall-{}", nft_service_base(name))
}

/// `endpoint-<base>`: one endpoint's nftables chain.
pub fn nft_endpoint_chain(name: &ServicePortName, ip: IpAddr, port: u16) -> String {
    format!("endpoint-{}", nft_endpoint_base(name, ip, port))
}

/// `affinity-<base>`: one endpoint's ClientIP affinity set.
pub fn nft_affinity_set(name: &ServicePortName, ip: IpAddr, port: u16) -> String {
    format!("affinity-{}", nft_endpoint_base(name, ip, port))
}

#[cfg(test)]
mod tests {
    use dataplane::Protocol;

    use crate::model::join_host_port;

    use super::*;

    fn spn(ns: &str, svc: &str, port: &str, proto: Protocol) -> ServicePortName {
        ServicePortName::new(ns, svc, port, proto)
    }

    /// Vectors from upstream's proxier tests, as recorded in the reference notes (§2.1).
    #[test]
    fn iptables_hashes_match_upstream() {
        let p80 = spn("ns1", "svc1", "p80", Protocol::Tcp);
        assert_eq!(svc_chain(&p80), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(svl_chain(&p80), "KUBE-SVL-XPGD46QRK7WJZT7O");
        assert_eq!(ext_chain(&p80), "KUBE-EXT-XPGD46QRK7WJZT7O");
        assert_eq!(fw_chain(&p80), "KUBE-FW-XPGD46QRK7WJZT7O");
        assert_eq!(
            sep_chain(&p80, "10.180.0.1".parse().unwrap(), 80),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
        assert_eq!(
            port_proto_hash(&spn("ns2", "svc2", "p80", Protocol::Tcp)),
            "GNZBNJ2PO5MGZ6GT"
        );
        assert_eq!(
            port_proto_hash(&spn("ns5", "svc5", "p80", Protocol::Tcp)),
            "NUKIZ6OKUXPJNT4C"
        );
    }

    #[test]
    fn chain_names_fit_iptables_limit_and_differ_by_protocol() {
        let long = "a".repeat(63);
        let n = spn(&long, &long, &long, Protocol::Sctp);
        assert!(sep_chain(&n, "2001:db8::1".parse().unwrap(), 65535).len() <= 28);
        assert_ne!(
            port_proto_hash(&spn("ns", "dns", "dns", Protocol::Udp)),
            port_proto_hash(&spn("ns", "dns", "dns", Protocol::Tcp))
        );
    }

    /// The hash input is exactly `svcPortName + proto (+ JoinHostPort)`: recompute by hand.
    #[test]
    fn hash_inputs_are_upstream_strings() {
        let unnamed = spn("default", "web", "", Protocol::Tcp);
        let expect = |s: &str| BASE32.encode(&Sha256::digest(s.as_bytes()))[..16].to_string();
        assert_eq!(port_proto_hash(&unnamed), expect("default/webtcp"));
        let v6 = sep_chain(&unnamed, "2001:db8:0::0:1".parse().unwrap(), 8080);
        assert_eq!(
            v6,
            format!("KUBE-SEP-{}", expect("default/webtcp[2001:db8::1]:8080"))
        );
    }

    #[test]
    fn byte_hashes_equal_the_string_hashes() {
        let n = spn("kube-system", "kube-dns", "dns", Protocol::Udp);
        for (ip, port) in [
            ("198.18.64.9", 53u16),
            ("255.255.255.255", 65535),
            ("2001:db8:40:a::9", 53),
            ("2001:db8:1111:2222:3333:4444:5555:6666", 65535),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let full = base32_sha256(&format!("{n}udp{}", join_host_port(ip, port)));
            assert_eq!(&sep_hash_bytes(&n, ip, port)[..], &full.as_bytes()[..16]);
        }
        let full = base32_sha256(&format!("{n}udp"));
        assert_eq!(&port_proto_hash_bytes(&n)[..], &full.as_bytes()[..16]);
    }

    #[test]
    fn nftables_names_match_upstream() {
        let p80 = spn("ns1", "svc1", "p80", Protocol::Tcp);
        assert_eq!(nft_service_chain(&p80), "service-ULMVA6XW-ns1/svc1/tcp/p80");
        assert_eq!(nft_local_chain(&p80), "local-ULMVA6XW-ns1/svc1/tcp/p80");
        assert_eq!(
            nft_external_chain(&p80),
            "external-ULMVA6XW-ns1/svc1/tcp/p80"
        );
        assert_eq!(
            nft_firewall_chain(&p80),
            "firewall-ULMVA6XW-ns1/svc1/tcp/p80"
        );
        // Upstream's doc comment example for servicePortEndpointChainNameBase.
        assert_eq!(
            nft_endpoint_chain(&p80, "10.180.0.1".parse().unwrap(), 80),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
        let v6 = nft_affinity_set(&p80, "2001:db8::1".parse().unwrap(), 80);
        let expect_hash =
            BASE32.encode(&Sha256::digest(b"ns1/svc1/tcp/p80__2001.db8..1/80"))[..8].to_string();
        assert_eq!(
            v6,
            format!("affinity-{expect_hash}-ns1/svc1/tcp/p80__2001.db8..1/80")
        );
    }

    #[test]
    fn nftables_names_are_truncated_like_upstream() {
        let long = "a".repeat(63);
        let n = spn(&long, &long, &long, Protocol::Sctp);
        let base = nft_endpoint_base(
            &n,
            "2001:db8:1111:2222:3333:4444:5555:6666".parse().unwrap(),
            65535,
        );
        assert_eq!(base.len(), 240);
        assert!(base.ends_with("..."));
        assert!(nft_service_base(&n).len() < 240);
    }
}
