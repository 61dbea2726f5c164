//! [`Flow`]: the keys of a routing lookup, as `ip route get` takes them.
//!
//! ```text
//!   ip route get DST [from SRC] [iif DEV | oif DEV] [mark M] [tos T] [ipproto P]
//!                [sport N] [dport N] [uid U]
//!        ==  Flow::to(dst).from(src).iif("eth0").mark(m)...
//!   Packet (crate::packet)  --Flow::of_packet-->  Flow
//! ```

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::packet::{Family, Packet, Protocol};

/// What a routing lookup is asked about (the kernel's `flowi4` / `flowi6`).
///
/// `iif == None` is a packet a local process sends (`ip_route_output`, the lookup sees
/// `iif lo`); `iif == Some(dev)` is a packet that arrived on `dev` (`ip_route_input`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Flow {
    /// Address family (that of `dst`).
    pub family: Family,
    /// Destination address.
    pub dst: IpAddr,
    /// Source address; `None` lets the kernel choose one (output) or means 0.0.0.0 (input).
    pub src: Option<IpAddr>,
    /// Input interface, for a packet being received.
    pub iif: Option<String>,
    /// Output interface a socket is bound to (`SO_BINDTODEVICE`, `ip route get oif`).
    pub oif: Option<String>,
    /// Firewall mark.
    pub mark: u32,
    /// Layer-4 protocol, for `ipproto` / `sport` / `dport` rules.
    pub proto: Option<Protocol>,
    /// Source port.
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
    /// TOS byte (DS field).
    pub tos: u8,
    /// UID of the sending socket; `None` is 0 (root, and what forwarded packets carry).
    pub uid: Option<u32>,
}

impl Flow {
    /// A lookup for `dst` with everything else unset (`ip route get DST`).
    pub fn to(dst: IpAddr) -> Flow {
        Flow {
            family: Family::of(&dst),
            dst,
            src: None,
            iif: None,
            oif: None,
            mark: 0,
            proto: None,
            sport: None,
            dport: None,
            tos: 0,
            uid: None,
        }
    }

    /// The lookup the kernel does for a packet: its addresses, input interface, mark and ports.
    pub fn of_packet(p: &Packet) -> Flow {
        let ports = p.proto.has_ports();
        Flow {
            src: Some(p.src),
            iif: p.iif.clone(),
            mark: p.mark,
            proto: Some(p.proto),
            sport: ports.then_some(p.sport),
            dport: ports.then_some(p.dport),
            ..Flow::to(p.dst)
        }
    }

    /// `from SRC`.
    pub fn from(mut self, src: IpAddr) -> Flow {
        self.src = Some(src);
        self
    }

    /// `iif DEV`: the packet arrived on `dev`.
    pub fn iif(mut self, dev: &str) -> Flow {
        self.iif = Some(dev.to_string());
        self
    }

    /// `oif DEV`: the sender is bound to `dev`.
    pub fn oif(mut self, dev: &str) -> Flow {
        self.oif = Some(dev.to_string());
        self
    }

    /// `mark M`.
    pub fn mark(mut self, mark: u32) -> Flow {
        self.mark = mark;
        self
    }

    /// `ipproto P`.
    pub fn proto(mut self, proto: Protocol) -> Flow {
        self.proto = Some(proto);
        self
    }

    /// `sport N`.
    pub fn sport(mut self, port: u16) -> Flow {
        self.sport = Some(port);
        self
    }

    /// `dport N`.
    pub fn dport(mut self, port: u16) -> Flow {
        self.dport = Some(port);
        self
    }

    /// `tos T`.
    pub fn tos(mut self, tos: u8) -> Flow {
        self.tos = tos;
        self
    }

    /// `uid U`.
    pub fn uid(mut self, uid: u32) -> Flow {
        self.uid = Some(uid);
        self
    }

    /// The arguments of the equivalent `ip route get` command (after `ip route get`).
    pub fn ip_route_get_args(&self) -> Vec<String> {
        let mut a = vec![self.dst.to_string()];
        let mut kv = |k: &str, v: String| {
            a.push(k.to_string());
            a.push(v);
        };
        if let Some(s) = self.src {
            kv("from", s.to_string());
        }
        if let Some(i) = &self.iif {
            kv("iif", i.clone());
        }
        if let Some(o) = &self.oif {
            kv("oif", o.clone());
        }
        if self.mark != 0 {
            kv("mark", format!("{:#x}", self.mark));
        }
        if self.tos != 0 {
            kv("tos", format!("{:#x}", self.tos));
        }
        if let Some(p) = self.proto {
            kv("ipproto", p.number().to_string());
        }
        if let Some(p) = self.sport {
            kv("sport", p.to_string());
        }
        if let Some(p) = self.dport {
            kv("dport", p.to_string());
        }
        if let Some(u) = self.uid {
            kv("uid", u.to_string());
        }
        a
    }
}

/// The `ip route get` arguments.
impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ip_route_get_args().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_keys_become_flow_keys() {
        let p = Packet::tcp(
            "198.18.64.2".parse().unwrap(),
            "198.19.0.10".parse().unwrap(),
            80,
        )
        .arriving_on("eth0")
        .with_mark(0x4000);
        let f = Flow::of_packet(&p);
        assert_eq!(
            f.to_string(),
            "198.19.0.10 from 198.18.64.2 iif eth0 mark 0x4000 ipproto 6 sport 32768 dport 80"
        );
    }
}
