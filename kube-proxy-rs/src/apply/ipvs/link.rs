//! The `kube-ipvs0` dummy interface over rtnetlink (`NETLINK_ROUTE`), synchronously: the
//! calls `ip link add kube-ipvs0 type dummy`, `ip addr show`, `ip addr add VIP/32 dev
//! kube-ipvs0` and `ip addr del` make. Messages are `netlink-packet-route`'s; the socket is
//! `netlink-sys` (no async runtime: the sync runs on a blocking thread).
//!
//! ```text
//!   ensure_dummy(name)  RTM_GETLINK by name ── ENODEV ──> RTM_NEWLINK kind dummy ──> ifindex
//!   addresses()         RTM_GETADDR dump ──> [(ifindex, ip)]
//!   add/del_address     RTM_NEWADDR / RTM_DELADDR ip/32 (ip/128 nodad)
//! ```
//! The interface stays down, as upstream leaves it: the kernel adds the `local` route of an
//! address on a down interface all the same, which is all IPVS needs.

use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::IpvsError;

/// An rtnetlink socket for links and addresses.
#[derive(Debug)]
pub struct RtLink {
    sock: Socket,
    seq: u32,
}

const ENODEV: i32 = 19;

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> IpvsError {
    move |source| IpvsError::Io { op, source }
}

fn address_message(ifindex: u32, ip: IpAddr) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = ifindex;
    m.header.scope = AddressScope::Universe;
    match ip {
        IpAddr::V4(_) => {
            m.header.family = AddressFamily::Inet;
            m.header.prefix_len = 32;
            m.attributes.push(AddressAttribute::Local(ip));
            m.attributes.push(AddressAttribute::Address(ip));
        }
        IpAddr::V6(_) => {
            m.header.family = AddressFamily::Inet6;
            m.header.prefix_len = 128;
            m.header.flags = AddressHeaderFlags::Nodad;
            m.attributes.push(AddressAttribute::Address(ip));
        }
    }
    m
}

impl RtLink {
    /// Opens the socket (in the calling thread's network namespace).
    pub fn open() -> Result<RtLink, IpvsError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(io("rtnetlink socket"))?;
        sock.bind_auto().map_err(io("rtnetlink bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(io("rtnetlink connect"))?;
        Ok(RtLink { sock, seq: 1 })
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, IpvsError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(io("rtnetlink send"))?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = self.sock.recv_from_full().map_err(io("rtnetlink recv"))?;
            let mut at = 0;
            while at < buf.len() {
                let len = NetlinkBuffer::new_checked(&buf[at..])
                    .map(|b| b.length() as usize)
                    .map_err(|e| IpvsError::Decode {
                        op: what.to_string(),
                        message: e.to_string(),
                    })?;
                if len == 0 {
                    break;
                }
                let end = (at + len).min(buf.len());
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..end]).map_err(
                    |e| IpvsError::Decode {
                        op: what.to_string(),
                        message: e.to_string(),
                    },
                )?;
                at += len.div_ceil(4) * 4;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(i) => {
                        out.push(i);
                        if flags & NLM_F_DUMP == 0 && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Error(e) => match e.code {
                        Some(c) => {
                            return Err(IpvsError::Kernel {
                                op: what.to_string(),
                                errno: -c.get(),
                            });
                        }
                        None => return Ok(out),
                    },
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
            }
        }
    }

    /// The index of link `name`, if it exists (`ip link show NAME`).
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, IpvsError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            RouteNetlinkMessage::GetLink(m),
            0,
            &format!("ip link show {name}"),
        ) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(IpvsError::Kernel { errno, .. }) if errno == ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `ip link add NAME type dummy` unless it exists; its index.
    pub fn ensure_dummy(&mut self, name: &str) -> Result<u32, IpvsError> {
        if let Some(i) = self.link_index(name)? {
            return Ok(i);
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Dummy,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
            &format!("ip link add {name} type dummy"),
        )?;
        self.link_index(name)?.ok_or_else(|| IpvsError::Kernel {
            op: format!("ip link show {name}"),
            errno: ENODEV,
        })
    }

    /// `ip link del NAME` if it exists; whether it did.
    pub fn delete_link(&mut self, name: &str) -> Result<bool, IpvsError> {
        let Some(index) = self.link_index(name)? else {
            return Ok(false);
        };
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request(
            RouteNetlinkMessage::DelLink(m),
            NLM_F_ACK,
            &format!("ip link del {name}"),
        )?;
        Ok(true)
    }

    /// Every address of every interface (`ip addr show`): (ifindex, address).
    pub fn addresses(&mut self) -> Result<Vec<(u32, IpAddr)>, IpvsError> {
        let mut out = Vec::new();
        let msgs = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
            "ip addr show",
        )?;
        for m in msgs {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                let ip = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let ip = ip.or_else(|| {
                    a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                });
                if let Some(ip) = ip {
                    out.push((a.header.index, ip));
                }
            }
        }
        Ok(out)
    }

    /// `ip addr add IP/32 dev #IFINDEX` (`/128 nodad` for IPv6).
    pub fn add_address(&mut self, ifindex: u32, ip: IpAddr) -> Result<(), IpvsError> {
        self.request(
            RouteNetlinkMessage::NewAddress(address_message(ifindex, ip)),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
            &format!("ip addr add {ip} dev #{ifindex}"),
        )
        .map(|_| ())
    }

    /// `ip addr del IP dev #IFINDEX`.
    pub fn del_address(&mut self, ifindex: u32, ip: IpAddr) -> Result<(), IpvsError> {
        self.request(
            RouteNetlinkMessage::DelAddress(address_message(ifindex, ip)),
            NLM_F_ACK,
            &format!("ip addr del {ip} dev #{ifindex}"),
        )
        .map(|_| ())
    }
}
