//! An echo server inside a host: every TCP connection, UDP datagram and HTTP GET is answered
//! with one line naming the host, the protocol, the client address it saw and the local
//! address it was reached on, so tests can tell which endpoint answered and whether the source
//! was masqueraded or the destination translated.
//!
//! ```text
//!   client ──TCP :p──> "node2 tcp 198.18.65.2:40312 -> 198.18.66.2:8080\n", then close
//!          ──UDP :p──> the same line as one datagram, sent from the address it was sent to
//!          ──GET :p──> HTTP/1.0 200, body: the same line
//! ```
//! Sockets are bound to 0.0.0.0 and [::] (v6-only) on one thread that joined the host's
//! namespace; it polls them and a stop pipe. HTTP requests are read on short-lived threads.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{LabError, Result};
use crate::netns;

/// What an echo server listens on.
#[derive(Debug, Clone, Default)]
pub struct EchoSpec {
    /// TCP ports: greeting line on connect, then close.
    pub tcp: Vec<u16>,
    /// UDP ports: one reply datagram per datagram.
    pub udp: Vec<u16>,
    /// HTTP ports: `200 OK` with the greeting line as body, for any GET.
    pub http: Vec<u16>,
    /// The name to answer with (default: the host's name).
    pub name: Option<String>,
}

impl EchoSpec {
    /// TCP and UDP on the same ports.
    pub fn tcp_udp(ports: &[u16]) -> Self {
        EchoSpec {
            tcp: ports.to_vec(),
            udp: ports.to_vec(),
            ..Self::default()
        }
    }
}

/// One line an echo server answers with: `NAME PROTO CLIENT -> LOCAL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The name of the host that answered.
    pub host: String,
    /// `tcp`, `udp` or `http`.
    pub proto: String,
    /// The client address the server saw (after any SNAT/masquerade).
    pub client: SocketAddr,
    /// The address the server was reached on (after any DNAT).
    pub local: SocketAddr,
}

impl Greeting {
    /// Parses a greeting line (also an HTTP body); None if it is not one.
    pub fn parse(line: &str) -> Option<Greeting> {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            [host, proto, client, "->", local] => Some(Greeting {
                host: host.to_string(),
                proto: proto.to_string(),
                client: client.parse().ok()?,
                local: local.parse().ok()?,
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Greeting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} -> {}",
            self.host, self.proto, self.client, self.local
        )
    }
}

/// A running echo server; stopped (sockets closed, threads joined) when dropped.
pub struct EchoServer {
    name: String,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    hits: Arc<Mutex<Vec<Greeting>>>,
}

impl std::fmt::Debug for EchoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoServer")
            .field("name", &self.name)
            .finish()
    }
}

enum Sock {
    Tcp(TcpListener),
    Http(TcpListener),
    Udp(UdpSocket),
}

impl EchoServer {
    /// Binds every socket inside the namespace `ns` (returns once they listen) and serves
    /// until dropped (`lab echo` runs one as a process).
    pub fn start(ns: &str, name: String, spec: &EchoSpec) -> Result<EchoServer> {
        let (stop_r, stop_w) =
            nix::unistd::pipe().map_err(|source| LabError::Sys { op: "pipe", source })?;
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
        let ns_s = ns.to_string();
        let spec = spec.clone();
        let name2 = name.clone();
        let hits2 = Arc::clone(&hits);
        let thread = std::thread::Builder::new()
            .name(format!("echo {ns}"))
            .spawn(move || {
                let socks = netns::enter(&ns_s).and_then(|()| bind_all(&spec));
                match socks {
                    Ok(socks) => {
                        let _ = tx.send(Ok(()));
                        serve(&name2, socks, stop_r, &hits2);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(|source| LabError::Thread {
                netns: ns.to_string(),
                source,
            })?;
        let ready = rx.recv().unwrap_or_else(|_| {
            Err(LabError::Thread {
                netns: ns.to_string(),
                source: std::io::Error::other("echo thread died"),
            })
        });
        let server = EchoServer {
            name,
            stop: Some(stop_w),
            thread: Some(thread),
            hits,
        };
        ready.map(|()| server)
    }

    /// The name it answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every request served so far, as the greetings sent back.
    pub fn hits(&self) -> Vec<Greeting> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(w) = self.stop.take() {
            let _ = nix::unistd::write(&w, b"x");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind_all(spec: &EchoSpec) -> Result<Vec<Sock>> {
    let mut socks = Vec::new();
    let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    for (ports, kind) in [(&spec.tcp, 0), (&spec.http, 1), (&spec.udp, 2)] {
        for &port in ports {
            for ip in [any4, any6] {
                let addr = SocketAddr::new(ip, port);
                let s = bind(addr, kind == 2).map_err(|source| LabError::Socket {
                    op: "bind",
                    addr: addr.to_string(),
                    source,
                })?;
                socks.push(match kind {
                    0 => Sock::Tcp(s.into()),
                    1 => Sock::Http(s.into()),
                    _ => Sock::Udp(s.into()),
                });
            }
        }
    }
    Ok(socks)
}

fn bind(addr: SocketAddr, udp: bool) -> std::io::Result<Socket> {
    let (ty, proto) = if udp {
        (Type::DGRAM, Protocol::UDP)
    } else {
        (Type::STREAM, Protocol::TCP)
    };
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if udp {
        // learn each datagram's destination, to answer from it (ip(7) IP_PKTINFO)
        let r = if addr.is_ipv4() {
            setsockopt(&s, sockopt::Ipv4PacketInfo, &true)
        } else {
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)
        };
        r.map_err(std::io::Error::from)?;
    }
    s.bind(&addr.into())?;
    if !udp {
        s.listen(128)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

fn serve(name: &str, socks: Vec<Sock>, stop: OwnedFd, hits: &Arc<Mutex<Vec<Greeting>>>) {
    loop {
        let mut fds = vec![PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        for s in &socks {
            let fd = match s {
                Sock::Tcp(l) | Sock::Http(l) => l.as_fd(),
                Sock::Udp(u) => u.as_fd(),
            };
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            return;
        }
        for (s, _) in socks.iter().zip(&ready[1..]).filter(|(_, r)| **r) {
            match s {
                Sock::Tcp(l) => {
                    while let Ok((stream, client)) = l.accept() {
                        let g = greeting(name, "tcp", client, stream.local_addr().ok());
                        record(hits, &g);
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                        let mut stream = stream;
                        let _ = stream.write_all(format!("{g}\n").as_bytes());
                    }
                }
                Sock::Http(l) => {
                    while let Ok((stream, client)) = l.accept() {
                        let g = greeting(name, "http", client, stream.local_addr().ok());
                        let hits = Arc::clone(hits);
                        std::thread::spawn(move || http_reply(stream, g, &hits));
                    }
                }
                Sock::Udp(u) => while udp_reply(name, u, hits) {},
            }
        }
    }
}

fn greeting(name: &str, proto: &str, client: SocketAddr, local: Option<SocketAddr>) -> Greeting {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    Greeting {
        host: name.to_string(),
        proto: proto.to_string(),
        client: canon(client),
        local: canon(
            local.unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
        ),
    }
}

fn record(hits: &Arc<Mutex<Vec<Greeting>>>, g: &Greeting) {
    if let Ok(mut h) = hits.lock() {
        h.push(g.clone());
    }
}

fn http_reply(mut stream: TcpStream, g: Greeting, hits: &Arc<Mutex<Vec<Greeting>>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let is_get = req.starts_with(b"GET ");
    let (status, body) = if is_get {
        ("200 OK", format!("{g}\n"))
    } else {
        ("405 Method Not Allowed", String::new())
    };
    if is_get {
        record(hits, &g);
    }
    let resp = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes());
}

/// Serves one datagram if there is one; false when the socket is drained.
fn udp_reply(name: &str, u: &UdpSocket, hits: &Arc<Mutex<Vec<Greeting>>>) -> bool {
    let mut buf = [0u8; 2048];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
    let Ok(msg) = recvmsg::<SockaddrStorage>(
        u.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    ) else {
        return false;
    };
    let Some(from) = msg.address else { return true };
    let Some(client) = to_std(&from) else {
        return true;
    };
    let port = u.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut info4 = None;
    let mut info6 = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(i) => info4 = Some(i),
                ControlMessageOwned::Ipv6PacketInfo(i) => info6 = Some(i),
                _ => {}
            }
        }
    }
    let local = match (info4, info6) {
        (Some(i), _) => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(u32::from_be(i.ipi_addr.s_addr))),
            port,
        )),
        (_, Some(i)) => Some(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(i.ipi6_addr.s6_addr)),
            port,
        )),
        _ => None,
    };
    let g = greeting(name, "udp", client, local);
    record(hits, &g);
    let line = format!("{g}\n");
    let iov = [IoSlice::new(line.as_bytes())];
    // answer from the address the datagram was sent to
    let reply4 = info4.map(|i| libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: i.ipi_addr,
        ipi_addr: i.ipi_addr,
    });
    let reply6 = info6.map(|i| libc::in6_pktinfo {
        ipi6_addr: i.ipi6_addr,
        ipi6_ifindex: i.ipi6_ifindex,
    });
    let mut cm = Vec::new();
    if let Some(r) = reply4.as_ref() {
        cm.push(ControlMessage::Ipv4PacketInfo(r));
    }
    if let Some(r) = reply6.as_ref() {
        cm.push(ControlMessage::Ipv6PacketInfo(r));
    }
    let _ = sendmsg(u.as_raw_fd(), &iov, &cm, MsgFlags::empty(), Some(&from));
    true
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::new(IpAddr::V4(v4.ip()), v4.port()));
    }
    let v6 = a.as_sockaddr_in6()?;
    Some(SocketAddr::new(IpAddr::V6(v6.ip()), v6.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_round_trip() {
        let g = Greeting {
            host: "node2".into(),
            proto: "tcp".into(),
            client: "198.18.65.2:40312".parse().unwrap(),
            local: "[2001:db8:64:2::2]:8080".parse().unwrap(),
        };
        assert_eq!(Greeting::parse(&g.to_string()), Some(g));
        assert_eq!(Greeting::parse("SSH-2.0-OpenSSH"), None);
        assert_eq!(Greeting::parse("a tcp nope -> 1.2.3.4:5"), None);
    }
}
