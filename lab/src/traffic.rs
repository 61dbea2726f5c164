//! Client-side traffic from inside a namespace (call these on a thread that joined it, e.g.
//! through `Host::run`, or use the `Host` methods that do so): a TCP connect that returns the
//! peer's greeting, a UDP request, an HTTP GET and an ICMP echo, each returning exactly how it
//! failed as data.
//!
//! ```text
//!   connect/send --> greeting              Ok(String)
//!               --> TCP RST                Refused { icmp: None }
//!               --> ICMP port unreachable  Refused { icmp: Some(from, type 3 code 3) }
//!               --> ICMP host/net unreach  HostUnreachable / NetUnreachable { icmp }
//!               --> ICMP admin prohibited  Prohibited { icmp }   (also a local `prohibit` route)
//!               --> local blackhole route  Blackhole
//!               --> silence                Timeout
//! ```
//! The ICMP details (who sent it, type and code) come from the socket's error queue
//! (`IP_RECVERR` / `IPV6_RECVERR`, see ip(7)).

use std::io::{IoSliceMut, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

/// Options of a client request.
#[derive(Debug, Clone)]
pub struct ConnOpts {
    /// How long to wait for the connection, and then for the reply.
    pub timeout: Duration,
    /// A fixed source port (bound with SO_REUSEADDR), for conntrack tests.
    pub src_port: Option<u16>,
    /// A fixed source address.
    pub src_addr: Option<IpAddr>,
}

impl ConnOpts {
    /// Defaults with this timeout: ephemeral source port, source address by route.
    pub fn new(timeout: Duration) -> Self {
        ConnOpts {
            timeout,
            src_port: None,
            src_addr: None,
        }
    }

    /// Sends from this source port.
    pub fn src_port(mut self, port: u16) -> Self {
        self.src_port = Some(port);
        self
    }

    /// Sends from this source address.
    pub fn src_addr(mut self, addr: IpAddr) -> Self {
        self.src_addr = Some(addr);
        self
    }
}

/// An ICMP error that came back for a request (from the socket's error queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp {
    /// Who sent it (the router or host that refused).
    pub from: IpAddr,
    /// ICMP type (3 = destination unreachable; ICMPv6 1).
    pub icmp_type: u8,
    /// ICMP code (0 net, 1 host, 3 port, 9/10/13 administratively prohibited; ICMPv6 1 prohibited, 3 address, 4 port).
    pub code: u8,
}

impl std::fmt::Display for Icmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ICMP type {} code {} from {}",
            self.icmp_type, self.code, self.from
        )
    }
}

fn via(icmp: &Option<Icmp>) -> String {
    match icmp {
        Some(i) => format!(" ({i})"),
        None => String::new(),
    }
}

/// How a request failed, precisely enough to tell a REJECT from a DROP from a missing route.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// TCP RST (`icmp: None`) or ICMP port unreachable: nothing listens, or `REJECT`.
    #[error("connection refused{}", via(icmp))]
    Refused {
        /// The ICMP error, when one came back.
        icmp: Option<Icmp>,
    },
    /// ICMP host unreachable (or no neighbour answered; or an `unreachable` route, locally).
    #[error("host unreachable{}", via(icmp))]
    HostUnreachable {
        /// The ICMP error, when one came back.
        icmp: Option<Icmp>,
    },
    /// ICMP network unreachable, or no route locally.
    #[error("network unreachable{}", via(icmp))]
    NetUnreachable {
        /// The ICMP error, when one came back.
        icmp: Option<Icmp>,
    },
    /// ICMP administratively prohibited (`REJECT --reject-with icmp-admin-prohibited`, a
    /// `prohibit` route), or a local `prohibit` route / netfilter verdict (EACCES, EPERM).
    #[error("administratively prohibited{}", via(icmp))]
    Prohibited {
        /// The ICMP error, when one came back.
        icmp: Option<Icmp>,
    },
    /// The sender's own routing table says `blackhole` (EINVAL from connect/send).
    #[error("local blackhole route")]
    Blackhole,
    /// Silence until the timeout (a DROP somewhere, or a blackhole route further on).
    #[error("timed out")]
    Timeout,
    /// Connected, but no greeting or reply before the timeout.
    #[error("connected but no reply before the timeout")]
    NoReply,
    /// The peer reset an established connection.
    #[error("connection reset by peer")]
    Reset,
    /// Another socket error.
    #[error("{op}: {source}")]
    Io {
        /// The call (`connect`, `bind`, `recv`).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The request could not start (namespace gone, thread failed).
    #[error("cannot run the request: {why}")]
    Setup {
        /// What went wrong.
        why: String,
    },
}

fn socket(
    dst: SocketAddr,
    ty: Type,
    proto: Protocol,
    opts: &ConnOpts,
) -> Result<Socket, ConnError> {
    let io = |op| move |source| ConnError::Io { op, source };
    let sock = Socket::new(Domain::for_address(dst), ty, Some(proto)).map_err(io("socket"))?;
    let r = if dst.is_ipv4() {
        setsockopt(&sock, sockopt::Ipv4RecvErr, &true)
    } else {
        setsockopt(&sock, sockopt::Ipv6RecvErr, &true)
    };
    r.map_err(|e| ConnError::Io {
        op: "setsockopt IP_RECVERR",
        source: e.into(),
    })?;
    if opts.src_port.is_some() || opts.src_addr.is_some() {
        let ip = opts.src_addr.unwrap_or(if dst.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        sock.set_reuse_address(true)
            .map_err(io("setsockopt SO_REUSEADDR"))?;
        sock.bind(&SocketAddr::new(ip, opts.src_port.unwrap_or(0)).into())
            .map_err(io("bind"))?;
    }
    Ok(sock)
}

/// Reads the ICMP error the kernel queued on the socket, if any (ip(7) `IP_RECVERR`).
fn icmp_error(sock: &Socket) -> Option<Icmp> {
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
    let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
    let msg =
        recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags).ok()?;
    let mut found = None;
    for c in msg.cmsgs().ok()? {
        match c {
            ControlMessageOwned::Ipv4RecvErr(ee, from)
                if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP =>
            {
                let from = from.map(|a| Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)))?;
                found = Some(Icmp {
                    from: IpAddr::V4(from),
                    icmp_type: ee.ee_type,
                    code: ee.ee_code,
                });
            }
            ControlMessageOwned::Ipv6RecvErr(ee, from)
                if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6 =>
            {
                let from = from.map(|a| Ipv6Addr::from(a.sin6_addr.s6_addr))?;
                let from = from
                    .to_ipv4_mapped()
                    .map(IpAddr::V4)
                    .unwrap_or(IpAddr::V6(from));
                found = Some(Icmp {
                    from,
                    icmp_type: ee.ee_type,
                    code: ee.ee_code,
                });
            }
            _ => {}
        }
    }
    found
}

/// Whether an ICMP error is an "administratively prohibited" one (RFC 1812 5.2.7.1 codes
/// 9, 10, 13; ICMPv6 RFC 4443 codes 1, 5, 6).
fn prohibited(icmp: &Option<Icmp>) -> bool {
    match icmp {
        Some(i) if i.from.is_ipv4() => i.icmp_type == 3 && matches!(i.code, 9 | 10 | 13),
        Some(i) => i.icmp_type == 1 && matches!(i.code, 1 | 5 | 6),
        None => false,
    }
}

/// Maps a socket error to a [`ConnError`], with the ICMP details from the error queue.
fn classify(op: &'static str, e: std::io::Error, sock: &Socket) -> ConnError {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) {
        return ConnError::Timeout;
    }
    let icmp = icmp_error(sock);
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => ConnError::Refused { icmp },
        Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) if prohibited(&icmp) => {
            ConnError::Prohibited { icmp }
        }
        Some(libc::EHOSTUNREACH) => ConnError::HostUnreachable { icmp },
        Some(libc::ENETUNREACH) => ConnError::NetUnreachable { icmp },
        Some(libc::EACCES) | Some(libc::EPERM) => ConnError::Prohibited { icmp },
        Some(libc::EINVAL) if op != "bind" => ConnError::Blackhole,
        Some(libc::ECONNRESET) => ConnError::Reset,
        _ => ConnError::Io { op, source: e },
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Connects to `addr:port` and returns the first line the peer sends (without its newline),
/// or everything it sent before closing.
pub fn tcp_connect(addr: IpAddr, port: u16, opts: &ConnOpts) -> Result<String, ConnError> {
    let dst = SocketAddr::new(addr, port);
    let sock = socket(dst, Type::STREAM, Protocol::TCP, opts)?;
    let deadline = Instant::now() + opts.timeout;
    sock.connect_timeout(&dst.into(), opts.timeout)
        .map_err(|e| classify("connect", e, &sock))?;
    let mut stream: std::net::TcpStream = sock.into();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let Some(left) = remaining(deadline) else {
            return if got.is_empty() {
                Err(ConnError::NoReply)
            } else {
                Ok(text(&got))
            };
        };
        stream
            .set_read_timeout(Some(left))
            .map_err(|source| ConnError::Io {
                op: "setsockopt",
                source,
            })?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(text(&got)),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.contains(&b'\n') {
                    return Ok(text(&got));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return if got.is_empty() {
                    Err(ConnError::NoReply)
                } else {
                    Ok(text(&got))
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(ConnError::Reset);
            }
            Err(source) => return Err(ConnError::Io { op: "read", source }),
        }
    }
}

fn text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.split('\n')
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_string()
}

/// Sends `payload` to `addr:port` from a connected UDP socket and returns the first reply.
pub fn udp_request(
    addr: IpAddr,
    port: u16,
    payload: &[u8],
    opts: &ConnOpts,
) -> Result<String, ConnError> {
    let dst = SocketAddr::new(addr, port);
    let sock = socket(dst, Type::DGRAM, Protocol::UDP, opts)?;
    sock.connect(&dst.into())
        .map_err(|e| classify("connect", e, &sock))?;
    sock.send(payload).map_err(|e| classify("send", e, &sock))?;
    sock.set_read_timeout(Some(opts.timeout))
        .map_err(|source| ConnError::Io {
            op: "setsockopt",
            source,
        })?;
    let udp: std::net::UdpSocket = sock.into();
    let mut buf = [0u8; 2048];
    match udp.recv(&mut buf) {
        Ok(n) => Ok(text(&buf[..n])),
        Err(e) => {
            let sock = Socket::from(udp);
            Err(classify("recv", e, &sock))
        }
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// `GET path HTTP/1.0` to `addr:port`; reads the whole response.
pub fn http_get(
    addr: IpAddr,
    port: u16,
    path: &str,
    opts: &ConnOpts,
) -> Result<HttpResponse, ConnError> {
    let dst = SocketAddr::new(addr, port);
    let sock = socket(dst, Type::STREAM, Protocol::TCP, opts)?;
    let deadline = Instant::now() + opts.timeout;
    sock.connect_timeout(&dst.into(), opts.timeout)
        .map_err(|e| classify("connect", e, &sock))?;
    let mut stream: std::net::TcpStream = sock.into();
    let host = match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|source| ConnError::Io {
            op: "write",
            source,
        })?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Some(left) = remaining(deadline) else {
            return Err(ConnError::NoReply);
        };
        stream
            .set_read_timeout(Some(left))
            .map_err(|source| ConnError::Io {
                op: "setsockopt",
                source,
            })?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ConnError::NoReply);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(ConnError::Reset);
            }
            Err(source) => return Err(ConnError::Io { op: "read", source }),
        }
    }
    parse_http(&got).ok_or_else(|| ConnError::Io {
        op: "parse HTTP response",
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            String::from_utf8_lossy(&got).into_owned(),
        ),
    })
}

fn parse_http(raw: &[u8]) -> Option<HttpResponse> {
    let s = String::from_utf8_lossy(raw);
    let (head, body) = s.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut words = status_line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = words.next()?.parse().ok()?;
    Some(HttpResponse {
        status,
        body: body.to_string(),
    })
}

/// One ICMP echo request over a ping socket (`SOCK_DGRAM`/`IPPROTO_ICMP`; the lab opens
/// `net.ipv4.ping_group_range` in every namespace). Ok when the echo reply came back.
pub fn ping(addr: IpAddr, timeout: Duration) -> Result<(), ConnError> {
    let dst = SocketAddr::new(addr, 0);
    let (proto, echo, reply) = match addr {
        IpAddr::V4(_) => (Protocol::ICMPV4, 8u8, 0u8),
        IpAddr::V6(_) => (Protocol::ICMPV6, 128u8, 129u8),
    };
    let sock = socket(dst, Type::DGRAM, proto, &ConnOpts::new(timeout))?;
    sock.connect(&dst.into())
        .map_err(|e| classify("connect", e, &sock))?;
    // type, code, checksum (the kernel fills it), identifier (the kernel sets it), sequence
    let req = [echo, 0, 0, 0, 0, 0, 0, 1, b'l', b'a', b'b', 0];
    sock.send(&req).map_err(|e| classify("send", e, &sock))?;
    let deadline = Instant::now() + timeout;
    let udp: std::net::UdpSocket = sock.into();
    let mut buf = [0u8; 256];
    loop {
        let Some(left) = remaining(deadline) else {
            return Err(ConnError::Timeout);
        };
        udp.set_read_timeout(Some(left))
            .map_err(|source| ConnError::Io {
                op: "setsockopt",
                source,
            })?;
        match udp.recv(&mut buf) {
            Ok(n) if n >= 8 && buf[0] == reply && buf[7] == 1 => return Ok(()),
            Ok(_) => continue,
            Err(e) => {
                let sock = Socket::from(udp);
                return Err(classify("recv", e, &sock));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_parse() {
        let r = parse_http(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi\n").unwrap();
        assert_eq!(
            r,
            HttpResponse {
                status: 200,
                body: "hi\n".into()
            }
        );
        assert!(parse_http(b"garbage").is_none());
        assert!(parse_http(b"SSH-2.0\r\n\r\n").is_none());
    }

    #[test]
    fn prohibited_codes() {
        let v4 = |code| {
            Some(Icmp {
                from: "198.18.0.1".parse().unwrap(),
                icmp_type: 3,
                code,
            })
        };
        assert!(prohibited(&v4(13)) && prohibited(&v4(9)) && prohibited(&v4(10)));
        assert!(!prohibited(&v4(1)) && !prohibited(&v4(3)));
        let v6 = |code| {
            Some(Icmp {
                from: "2001:db8::1".parse().unwrap(),
                icmp_type: 1,
                code,
            })
        };
        assert!(prohibited(&v6(1)) && !prohibited(&v6(3)));
        assert!(!prohibited(&None));
    }

    #[test]
    fn greeting_text_is_the_first_line() {
        assert_eq!(text(b"node1 tcp a -> b\nrest"), "node1 tcp a -> b");
        assert_eq!(text(b"x\r\n"), "x");
    }
}
