//! Socket options a BGP speaker needs and the standard library does not offer: the TCP MD5
//! signature key (RFC 2385, `TCP_MD5SIG`), GTSM's minimum TTL (RFC 5082, `IP_MINTTL` /
//! `IPV6_MINHOPCOUNT`) and the TTL of our packets (eBGP multihop).
//!
//! ```text
//!   setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, struct tcp_md5sig { addr, keylen, key[80] })
//!     on a listening socket: SYNs from `addr` must carry the signature (one key per peer)
//!     on a socket before connect(): our segments to `addr` are signed
//!   setsockopt(fd, IPPROTO_IP, IP_MINTTL, 255)   / IPV6_MINHOPCOUNT   (GTSM)
//!   setsockopt(fd, IPPROTO_IP, IP_TTL, n)        / IPV6_UNICAST_HOPS  (multihop, GTSM 255)
//! ```
//!
//! No `unsafe` here: neither nix nor socket2 names these options, but nix's exported
//! `sockopt_impl!` builds a `SetSockOpt` for a plain `#[repr(C)]` value, passing a pointer to
//! it and its size. That is sound for any such value (the kernel copies at most `optlen`
//! bytes and checks them), so the raw `setsockopt` stays inside nix.

use std::net::IpAddr;
use std::os::fd::AsFd;

use nix::sys::socket::setsockopt;
use nix::sys::socket::sockopt::SetStruct;
use nix::{setsockopt_impl, sockopt_impl};

use crate::config::MD5_MAX_KEY_LEN;

/// `struct tcp_md5sig` of linux/tcp.h: a `__kernel_sockaddr_storage` (128 bytes), flags,
/// prefix length, key length, ifindex and the key. 216 bytes, no padding.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TcpMd5Sig {
    addr: [u8; 128],
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MD5_MAX_KEY_LEN],
}

impl TcpMd5Sig {
    /// The key for `peer` (an empty key removes the peer's key).
    pub fn new(peer: IpAddr, key: &[u8]) -> Result<Self, nix::Error> {
        if key.len() > MD5_MAX_KEY_LEN {
            return Err(nix::Error::EINVAL);
        }
        let mut addr = [0u8; 128];
        match peer {
            IpAddr::V4(a) => {
                // struct sockaddr_in: family (host order), port, address
                addr[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                addr[4..8].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                // struct sockaddr_in6: family, port, flowinfo, address, scope id
                addr[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
                addr[8..24].copy_from_slice(&a.octets());
            }
        }
        let mut k = [0u8; MD5_MAX_KEY_LEN];
        k[..key.len()].copy_from_slice(key);
        Ok(Self {
            addr,
            flags: 0,
            prefixlen: 0,
            keylen: key.len() as u16,
            ifindex: 0,
            key: k,
        })
    }
}

sockopt_impl!(
    /// `TCP_MD5SIG` (RFC 2385 keys, linux/tcp.h).
    TcpMd5SigOpt,
    SetOnly,
    libc::IPPROTO_TCP,
    libc::TCP_MD5SIG,
    TcpMd5Sig,
    SetStruct<TcpMd5Sig>
);

sockopt_impl!(
    /// `IP_MINTTL`: drop IPv4 segments with a lower TTL (GTSM, RFC 5082).
    IpMinTtl,
    SetOnly,
    libc::IPPROTO_IP,
    libc::IP_MINTTL,
    libc::c_int,
    SetStruct<libc::c_int>
);

sockopt_impl!(
    /// `IPV6_MINHOPCOUNT`: drop IPv6 segments with a lower hop limit (GTSM, RFC 5082).
    Ipv6MinHopCount,
    SetOnly,
    libc::IPPROTO_IPV6,
    libc::IPV6_MINHOPCOUNT,
    libc::c_int,
    SetStruct<libc::c_int>
);

/// Set (non-empty `key`) or remove (empty) the MD5 key for `peer` on a socket.
pub fn set_md5_key<F: AsFd>(fd: &F, peer: IpAddr, key: &[u8]) -> Result<(), nix::Error> {
    setsockopt(fd, TcpMd5SigOpt, &TcpMd5Sig::new(peer, key)?)
}

/// GTSM (RFC 5082 §3): accept only packets with TTL (hop limit) 255 or more from the peer,
/// that is from a directly connected one.
pub fn set_min_ttl<F: AsFd>(fd: &F, v6: bool, ttl: u8) -> Result<(), nix::Error> {
    if v6 {
        setsockopt(fd, Ipv6MinHopCount, &(ttl as libc::c_int))
    } else {
        setsockopt(fd, IpMinTtl, &(ttl as libc::c_int))
    }
}

/// The TTL (hop limit) of our packets: 1 for directly connected eBGP, N for multihop, 255
/// for GTSM.
pub fn set_ttl(sock: &socket2::SockRef<'_>, v6: bool, ttl: u8) -> std::io::Result<()> {
    if v6 {
        sock.set_unicast_hops_v6(ttl as u32)
    } else {
        sock.set_ttl_v4(ttl as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_md5_struct_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
        let s = TcpMd5Sig::new("198.18.0.1".parse().unwrap(), b"key").unwrap();
        assert_eq!(u16::from_ne_bytes([s.addr[0], s.addr[1]]), 2);
        assert_eq!(&s.addr[4..8], &[198, 18, 0, 1]);
        assert_eq!((s.keylen, &s.key[..4]), (3, &b"key\0"[..]));
        let s = TcpMd5Sig::new("2001:db8::1".parse().unwrap(), b"").unwrap();
        assert_eq!(u16::from_ne_bytes([s.addr[0], s.addr[1]]), 10);
        assert_eq!(s.addr[8..10], [0x20, 0x01]);
        assert_eq!(s.addr[23], 1);
        assert_eq!(s.keylen, 0);
        assert!(TcpMd5Sig::new("198.18.0.1".parse().unwrap(), &[0; 81]).is_err());
    }

    #[test]
    fn keys_are_accepted_by_the_kernel_on_a_tcp_socket() {
        // a socket in whatever namespace the test runs in; nothing is bound or connected
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        match set_md5_key(&s, "198.18.0.1".parse().unwrap(), b"secret") {
            Ok(()) => set_md5_key(&s, "198.18.0.1".parse().unwrap(), b"").unwrap(),
            // a kernel without CONFIG_TCP_MD5SIG: the error is what fail-closed reports
            Err(e) => assert_eq!(e, nix::Error::ENOPROTOOPT),
        }
        set_min_ttl(&s, false, 255).unwrap();
    }
}
