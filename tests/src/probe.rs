//! A raw TCP probe: a SYN-ACK that belongs to no connection (conntrack calls it INVALID),
//! sent from a raw socket; a host that receives it answers with a RST, which the same raw
//! socket sees. Call inside the sender's namespace (`Host::run`). IPv4 only.
//!
//! ```text
//!   raw socket (IPPROTO_TCP, the kernel adds the IP header)
//!     --> TCP SYN|ACK sport -> dst:port, checksum over the pseudo header
//!     <-- any TCP segment dst:port -> sport with RST set  => Refused { icmp: false }
//!     silence until the timeout                           => Timeout
//! ```

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::outcome::Observed;

fn checksum(src: [u8; 4], dst: [u8; 4], tcp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    };
    add(&src);
    add(&dst);
    add(&[0, 6]);
    add(&(tcp.len() as u16).to_be_bytes());
    add(tcp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends a SYN-ACK from `src:sport` to `dst:dport` and waits for a RST.
pub fn syn_ack(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, timeout: Duration) -> Observed {
    let (IpAddr::V4(s4), IpAddr::V4(d4)) = (src, dst) else {
        return Observed::Other("the raw probe is IPv4 only".into());
    };
    let sock = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) => return Observed::Other(format!("raw socket: {e}")),
    };
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes()); // seq
    tcp[8..12].copy_from_slice(&0x0bad_cafeu32.to_be_bytes()); // ack
    tcp[12] = 5 << 4; // data offset
    tcp[13] = 0x12; // SYN | ACK
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let c = checksum(s4.octets(), d4.octets(), &tcp);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    if let Err(e) = sock.bind(&SocketAddr::new(src, 0).into()) {
        return Observed::Other(format!("bind raw socket to {src}: {e}"));
    }
    if let Err(e) = sock.send_to(&tcp, &SocketAddr::new(dst, 0).into()) {
        return Observed::Other(format!("send raw SYN-ACK: {e}"));
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Observed::Timeout;
        };
        if sock
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .is_err()
        {
            return Observed::Other("set_read_timeout".into());
        }
        let n = match (&sock).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Observed::Timeout;
            }
            Err(e) => return Observed::Other(format!("recv: {e}")),
        };
        let pkt = &buf[..n];
        if pkt.len() < 20 {
            continue;
        }
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        if pkt.len() < ihl + 14 || pkt[12..16] != d4.octets() {
            continue;
        }
        let t = &pkt[ihl..];
        let (ts, td) = (
            u16::from_be_bytes([t[0], t[1]]),
            u16::from_be_bytes([t[2], t[3]]),
        );
        if ts == dport && td == sport && t[13] & 0x04 != 0 {
            return Observed::Refused { icmp: false };
        }
    }
}
