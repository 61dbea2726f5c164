//! IP address and CIDR parsing with upstream's leniency (`netutils.ParseIPSloppy`).
//!
//! In: strings from API objects. Out: canonical [`IpAddr`] / masked [`IpNet`], or `None`.
//! IPv4 octets may carry leading zeros (`010.001.002.003` is `10.1.2.3`, decimal, as
//! Kubernetes reads legacy objects); an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is the
//! IPv4 address, as Go's `net.ParseIP` has it; zones (`fe80::1%eth0`) are rejected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Parses an IP address the way upstream's `ParseIPSloppy` does.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        let v6: Ipv6Addr = s.parse().ok()?;
        Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        })
    } else {
        parse_ipv4_sloppy(s).map(IpAddr::V4)
    }
}

fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Parses a CIDR the way upstream's `ParseCIDRSloppy` does, returning the masked network
/// (`10.1.2.3/8` is `10.0.0.0/8`, as Go's `net.ParseCIDR` returns it).
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let (ip, len) = s.split_once('/')?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let net = match (ip.contains(':'), parse_ip(ip)?) {
        (false, IpAddr::V4(v4)) => IpNet::V4(ipnet::Ipv4Net::new(v4, len).ok()?),
        (true, IpAddr::V6(v6)) => IpNet::V6(ipnet::Ipv6Net::new(v6, len).ok()?),
        // An IPv4-mapped IPv6 prefix has no upstream meaning we can reproduce: reject it.
        _ => return None,
    };
    Some(net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloppy_ipv4_and_canonical_ipv6() {
        assert_eq!(parse_ip("198.19.0.1"), Some("198.19.0.1".parse().unwrap()));
        assert_eq!(
            parse_ip("198.019.000.001"),
            Some("198.19.0.1".parse().unwrap())
        );
        assert_eq!(
            parse_ip("2001:DB8:0:0::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            parse_ip("::ffff:198.19.0.1"),
            Some("198.19.0.1".parse().unwrap())
        );
        for bad in [
            "",
            "198.19.0",
            "198.19.0.256",
            "198.19.0.1.2",
            "1980.1.1.1",
            "fe80::1%eth0",
            "x",
        ] {
            assert_eq!(parse_ip(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cidrs_are_masked() {
        assert_eq!(
            parse_cidr("198.18.64.7/18"),
            Some("198.18.64.0/18".parse().unwrap())
        );
        assert_eq!(
            parse_cidr("2001:db8::1/64"),
            Some("2001:db8::/64".parse().unwrap())
        );
        for bad in [
            "198.18.0.0",
            "198.18.0.0/33",
            "198.18.0.0/",
            "2001:db8::/129",
            "::ffff:1.2.3.0/120",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
    }
}
