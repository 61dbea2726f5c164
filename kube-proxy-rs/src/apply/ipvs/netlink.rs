//! IPVS over generic netlink: resolve the "IPVS" family, dump the table, send the diff's
//! operations. The message codec is `dataplane::ipvs::netlink`; this is only the socket.
//!
//! ```text
//!   open()  CTRL_CMD_GETFAMILY "IPVS" ──> family id (ENOENT: ip_vs not loaded)
//!   dump()  IPVS_CMD_GET_SERVICE (dump), IPVS_CMD_GET_DEST per service ──> IpvsState
//!   apply() IPVS_CMD_{NEW,SET,DEL}_{SERVICE,DEST}, NLM_F_ACK, one per op
//! ```

use dataplane::ipvs::IpvsState;
use dataplane::ipvs::netlink::{
    self as codec, FamilyReply, IpvsCmd, IpvsMessage, requests, server_from_attrs,
    service_from_attrs,
};
use netlink_packet_core::NetlinkPayload;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use super::diff::IpvsOp;
use super::{IpvsError, IpvsKernel};

/// A generic netlink socket bound to the IPVS family.
#[derive(Debug)]
pub struct IpvsNetlink {
    sock: Socket,
    family: u16,
    seq: u32,
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> IpvsError {
    move |source| IpvsError::Io { op, source }
}

impl IpvsNetlink {
    /// Opens the socket and resolves the family (`modprobe ip_vs` must have happened).
    pub fn open() -> Result<IpvsNetlink, IpvsError> {
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(io("socket"))?;
        sock.bind_auto().map_err(io("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(io("connect"))?;
        sock.send(&codec::family_request(1), 0)
            .map_err(io("send CTRL_CMD_GETFAMILY"))?;
        let mut family = None;
        'recv: loop {
            let (buf, _) = sock.recv_from_full().map_err(io("recv"))?;
            let replies = codec::family_replies(&buf).map_err(|e| IpvsError::Decode {
                op: "CTRL_CMD_GETFAMILY".into(),
                message: e.to_string(),
            })?;
            for r in replies {
                match r {
                    FamilyReply::Id(id) => family = Some(id),
                    FamilyReply::Error(e) => return Err(IpvsError::NoFamily { errno: -e }),
                    FamilyReply::Other => break 'recv,
                }
            }
        }
        Ok(IpvsNetlink {
            sock,
            family: family.ok_or(IpvsError::NoFamily { errno: 0 })?,
            seq: 1,
        })
    }

    /// Sends one request; collects the IPVS messages of the answer (until the ACK, or
    /// NLMSG_DONE for dumps).
    fn request(
        &mut self,
        msg: IpvsMessage,
        dump: bool,
        what: String,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        self.seq = self.seq.wrapping_add(1);
        let flags = if dump { requests::DUMP } else { requests::ACK };
        let bytes = codec::encode(msg, self.family, flags, self.seq);
        self.sock.send(&bytes, 0).map_err(io("send"))?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = self.sock.recv_from_full().map_err(io("recv"))?;
            let msgs = codec::decode(&buf).map_err(|e| IpvsError::Decode {
                op: what.clone(),
                message: e.to_string(),
            })?;
            for m in msgs {
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(g) => out.push(g.payload),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => {
                            return Err(IpvsError::Kernel {
                                op: what,
                                errno: -code.get(),
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
}

impl IpvsNetlink {
    /// `ipvsadm --set TCP TCPFIN UDP` (seconds; 0 leaves a value unchanged).
    pub fn set_timeouts(&mut self, tcp: u32, tcp_fin: u32, udp: u32) -> Result<(), IpvsError> {
        let what = format!("ipvsadm --set {tcp} {tcp_fin} {udp}");
        self.request(requests::set_config(tcp, tcp_fin, udp), false, what)
            .map(|_| ())
    }
}

impl IpvsKernel for IpvsNetlink {
    fn dump(&mut self) -> Result<IpvsState, IpvsError> {
        let mut state = IpvsState::default();
        for m in self.request(requests::get_services(), true, "dump services".into())? {
            let Some(attrs) = m.service() else { continue };
            if m.cmd != IpvsCmd::NewService {
                continue;
            }
            let svc = service_from_attrs(attrs).map_err(|e| IpvsError::Decode {
                op: "dump services".into(),
                message: e.to_string(),
            })?;
            state.services.push(svc);
        }
        for svc in &mut state.services {
            let family = svc.key.family();
            let what = format!("dump destinations of {}", svc.key);
            for m in self.request(requests::get_dests(&svc.key), true, what.clone())? {
                let Some(attrs) = m.dest() else { continue };
                let rs = server_from_attrs(attrs, family).map_err(|e| IpvsError::Decode {
                    op: what.clone(),
                    message: e.to_string(),
                })?;
                svc.servers.push(rs);
            }
        }
        state.sort_like_ipvsadm();
        Ok(state)
    }

    fn apply(&mut self, op: &IpvsOp) -> Result<(), IpvsError> {
        let msg = match op {
            IpvsOp::AddService(s) => requests::new_service(s),
            IpvsOp::EditService(s) => requests::set_service(s),
            IpvsOp::DelService(k) => requests::del_service(k),
            IpvsOp::AddDest(k, r) => requests::new_dest(k, r),
            IpvsOp::EditDest(k, r) => requests::set_dest(k, r),
            IpvsOp::DelDest(k, r) => requests::del_dest(k, r),
        };
        self.request(msg, false, op.to_string()).map(|_| ())
    }
}
