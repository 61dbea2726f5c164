//! `ipvs-probe`: programs and reads IPVS through `dataplane::ipvs::netlink` over a plain
//! generic netlink socket, for the VM tests (this host kernel has no IPVS). A minimal socket
//! layer; kube-proxy-rs's IPVS apply layer will be the real one.
//!
//! ```text
//!   ipvs-probe restore FILE|-   add the services and real servers of ipvsadm -Sn text
//!   ipvs-probe save             dump (GET_SERVICE, GET_DEST per service) -> ipvsadm -Sn text
//!   ipvs-probe counters         dump -> `SVC key conns inpkts outpkts inbytes outbytes` and
//!                               `RS key addr:port active inactive persistent conns ...` lines
//!   ipvs-probe set-weight SAVE-LINE   IPVS_CMD_SET_DEST for one `-a ...` line (e.g. -w 0)
//!   ipvs-probe info             IPVS version and connection table size (GET_INFO)
//! ```
//! Exit status: 0 ok, 1 a netlink or input error, 2 usage.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use dataplane::ipvs::netlink::{
    self, FamilyReply, IpvsAttr, IpvsCmd, IpvsMessage, requests, server_from_attrs,
    service_from_attrs,
};
use dataplane::ipvs::{IpvsState, SockAddr};
use netlink_packet_core::NetlinkPayload;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

/// A generic netlink socket talking to the IPVS family.
struct Ipvs {
    sock: Socket,
    family: u16,
    seq: u32,
}

impl Ipvs {
    fn open() -> anyhow::Result<Ipvs> {
        let mut sock = Socket::new(NETLINK_GENERIC).context("netlink socket")?;
        sock.bind_auto().context("bind")?;
        sock.connect(&SocketAddr::new(0, 0)).context("connect")?;
        sock.send(&netlink::family_request(1), 0)
            .context("send CTRL_CMD_GETFAMILY")?;
        let mut family = None;
        'recv: loop {
            let (buf, _) = sock.recv_from_full().context("recv")?;
            for r in netlink::family_replies(&buf).context("controller reply")? {
                match r {
                    FamilyReply::Id(id) => family = Some(id),
                    FamilyReply::Error(e) => {
                        bail!("family IPVS not found (errno {}): is ip_vs loaded?", -e)
                    }
                    FamilyReply::Other => break 'recv,
                }
            }
        }
        Ok(Ipvs {
            sock,
            family: family.context("no family id in the controller's reply")?,
            seq: 1,
        })
    }

    /// Sends one request and collects the IPVS messages of the reply: until the ACK for
    /// plain requests, until NLMSG_DONE for dumps.
    fn request(&mut self, msg: IpvsMessage, dump: bool) -> anyhow::Result<Vec<IpvsMessage>> {
        self.seq += 1;
        let what = format!("{:?}", msg.cmd);
        let flags = if dump { requests::DUMP } else { requests::ACK };
        let bytes = netlink::encode(msg, self.family, flags, self.seq);
        self.sock.send(&bytes, 0).context("send")?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = self.sock.recv_from_full().context("recv")?;
            for m in netlink::decode(&buf).with_context(|| format!("reply to {what}"))? {
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(g) => out.push(g.payload),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => {
                            bail!("{what}: {}", std::io::Error::from_raw_os_error(-code.get()))
                        }
                        None => return Ok(out),
                    },
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
            }
        }
    }

    /// The whole table: services, then each one's real servers.
    fn dump(&mut self) -> anyhow::Result<IpvsState> {
        let mut state = IpvsState::default();
        for m in self.request(requests::get_services(), true)? {
            let attrs = m
                .service()
                .context("service dump entry without a service")?;
            state.services.push(service_from_attrs(attrs)?);
        }
        for svc in &mut state.services {
            let family = svc.key.family();
            for m in self.request(requests::get_dests(&svc.key), true)? {
                let attrs = m.dest().context("dest dump entry without a dest")?;
                svc.servers.push(server_from_attrs(attrs, family)?);
            }
        }
        state.sort_like_ipvsadm();
        Ok(state)
    }
}

fn read_input(path: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    }
    Ok(text)
}

fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("restore") => {
            let text = read_input(args.get(1).map_or("-", String::as_str))?;
            let want = IpvsState::from_save(&text)?;
            let mut ipvs = Ipvs::open()?;
            for svc in &want.services {
                ipvs.request(requests::new_service(svc), false)
                    .with_context(|| format!("add service {}", svc.key))?;
                for rs in &svc.servers {
                    ipvs.request(requests::new_dest(&svc.key, rs), false)
                        .with_context(|| {
                            format!("add {} to {}", SockAddr(rs.addr, rs.port), svc.key)
                        })?;
                }
            }
        }
        Some("set-weight") => {
            let line = args.get(1).context("set-weight '-a ... -w N'")?;
            let text = match line.split_once(" -r ") {
                Some((svc, _)) => format!("-A {}\n{line}\n", svc.trim_start_matches("-a ")),
                None => bail!("expected a real server line `-a SERVICE -r ADDR:PORT ...`"),
            };
            let s = IpvsState::from_save(&text)?;
            let svc = &s.services[0];
            let mut ipvs = Ipvs::open()?;
            ipvs.request(requests::set_dest(&svc.key, &svc.servers[0]), false)?;
        }
        Some("save") => print!("{}", Ipvs::open()?.dump()?.config().to_save()),
        Some("counters") => print!("{}", lab::vm::probe::counters_text(&Ipvs::open()?.dump()?)),
        Some("info") => {
            let mut ipvs = Ipvs::open()?;
            for m in ipvs.request(requests::get_info(), false)? {
                if m.cmd != IpvsCmd::SetInfo {
                    continue;
                }
                for a in m.attrs {
                    match a {
                        IpvsAttr::InfoVersion(v) => {
                            println!("version {}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
                        }
                        IpvsAttr::InfoConnTabSize(n) => println!("conn_tab_size {n}"),
                        _ => {}
                    }
                }
            }
        }
        _ => bail!("usage: ipvs-probe restore FILE|- | save | counters | set-weight LINE | info"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvs-probe: {e:#}");
            if e.to_string().starts_with("usage") {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
