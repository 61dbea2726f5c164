//! The IPVS generic netlink codec on messages captured in the lab VM between ipvsadm 1.31
//! (libnl) and Linux 6.1 (tests/fixtures/ipvs/netlink.txt, strace hex dumps): every message
//! decodes and encodes back to the same bytes; our requests equal ipvsadm's for the same
//! command line; the kernel's dump gives the table `ipvsadm -Sn` printed.

use dataplane::ipvs::IpvsState;
use dataplane::ipvs::netlink::{
    self, DestAttr, IpvsAttr, IpvsCmd, IpvsMessage, IpvsNetlinkMessage, Nest, SvcAttr, requests,
    server_from_attrs, service_from_attrs,
};
use netlink_packet_core::NetlinkPayload;

struct Captured {
    case: String,
    send: bool,
    bytes: Vec<u8>,
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/ipvs/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The messages, and the ipvsadm command line of each case (`# CASE: ipvsadm ...`).
fn captured() -> (Vec<Captured>, Vec<(String, String)>) {
    let text = fixture_text("netlink.txt");
    assert!(text.starts_with("# captured:"));
    let mut msgs = Vec::new();
    let mut cmds = Vec::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            if let Some((case, cmd)) = c.split_once(": ")
                && !case.contains(' ')
            {
                cmds.push((case.to_string(), cmd.to_string()));
            }
            continue;
        }
        let mut w = line.split_whitespace();
        let (case, dir, h) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
        msgs.push(Captured {
            case: case.to_string(),
            send: dir == "send",
            bytes: hex(h),
        });
    }
    (msgs, cmds)
}

fn decode_one(bytes: &[u8]) -> IpvsNetlinkMessage {
    let mut v = netlink::decode(bytes).unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn ipvs(m: &IpvsNetlinkMessage) -> Option<&IpvsMessage> {
    match &m.payload {
        NetlinkPayload::InnerMessage(g) => Some(&g.payload),
        _ => None,
    }
}

#[test]
fn every_captured_message_round_trips() {
    let (msgs, _) = captured();
    assert!(msgs.len() > 250, "{} messages", msgs.len());
    let mut kinds = std::collections::BTreeSet::new();
    for m in &msgs {
        let decoded = decode_one(&m.bytes);
        assert_eq!(
            netlink::reencode(&decoded),
            m.bytes,
            "{} {}: re-encoded bytes differ",
            m.case,
            if m.send { "send" } else { "recv" }
        );
        if let Some(i) = ipvs(&decoded) {
            kinds.insert(format!("{:?}", i.cmd));
            // nothing the kernel or ipvsadm sent is left unknown
            let unknown = format!("{i:?}").contains("Unknown");
            assert!(!unknown, "{}: {i:?}", m.case);
        }
    }
    // the commands the fixture covers, requests and replies
    for k in [
        "NewService",
        "SetService",
        "DelService",
        "GetService",
        "NewDest",
        "SetDest",
        "DelDest",
        "GetDest",
        "GetDaemon",
        "SetConfig",
        "GetConfig",
        "SetInfo",
        "GetInfo",
        "Zero",
        "Flush",
    ] {
        assert!(
            kinds.contains(k),
            "no {k} message in the fixture: {kinds:?}"
        );
    }
}

/// Every `st` case with an -A/-E/-a/-e command: our request for the same command line is
/// what ipvsadm sent (ipvsadm adds the whole service to real server requests; we send its
/// key, which is all the kernel reads there, so those compare the real server part).
#[test]
fn our_requests_equal_ipvsadms() {
    let (msgs, cmds) = captured();
    let mut compared = 0;
    for (case, cmd) in &cmds {
        let Some(args) = cmd.strip_prefix("ipvsadm ") else {
            continue;
        };
        let (op, rest) = args.split_once(' ').unwrap_or((args, ""));
        let save_line = match op {
            "-A" | "-E" => format!("-A {rest}\n"),
            "-a" | "-e" => format!("-a {rest}\n"),
            _ => continue,
        };
        // the service line a real server line needs
        let text = if save_line.starts_with("-a") {
            let svc: Vec<&str> = rest.split_whitespace().take_while(|w| *w != "-r").collect();
            format!("-A {} -s rr\n{save_line}", svc.join(" "))
        } else {
            save_line
        };
        let state = IpvsState::from_save(&text).unwrap_or_else(|e| panic!("{case}: {e}"));
        let svc = &state.services[0];
        let ours = match op {
            "-A" => requests::new_service(svc),
            "-E" => requests::set_service(svc),
            "-a" => requests::new_dest(&svc.key, &svc.servers[0]),
            _ => requests::set_dest(&svc.key, &svc.servers[0]),
        };
        let sent: Vec<IpvsMessage> = msgs
            .iter()
            .filter(|m| &m.case == case && m.send)
            .filter_map(|m| ipvs(&decode_one(&m.bytes)).cloned())
            .filter(|i| i.cmd == ours.cmd)
            .collect();
        assert_eq!(sent.len(), 1, "{case}: one {:?} request", ours.cmd);
        let theirs = &sent[0];
        if op == "-A" || op == "-E" {
            assert_eq!(&ours, theirs, "{case}");
        } else {
            assert_eq!(ours.dest(), theirs.dest(), "{case}");
            let key_attrs = ours.service().unwrap();
            let their_svc = theirs.service().unwrap();
            assert!(
                key_attrs.iter().all(|a| their_svc.contains(a)),
                "{case}: service key {key_attrs:?} not in {their_svc:?}"
            );
        }
        compared += 1;
    }
    assert!(compared >= 12, "compared {compared} requests");
}

/// The `list` case is `ipvsadm -Ln`: GET_INFO, a GET_SERVICE dump, then a GET_DEST dump per
/// service. Built into a table, it is what `ipvsadm -Sn` printed, and its counters are
/// what `ipvsadm -Ln --stats` printed.
#[test]
fn kernel_dump_gives_the_saved_table() {
    let (msgs, _) = captured();
    let mut state = IpvsState::default();
    let mut current = None;
    for m in msgs.iter().filter(|m| m.case == "list") {
        let decoded = decode_one(&m.bytes);
        let Some(i) = ipvs(&decoded) else { continue };
        match (m.send, i.cmd) {
            (true, IpvsCmd::GetDest) => {
                let svc = service_from_attrs_key(i.service().unwrap());
                current = state.services.iter().position(|s| s.key == svc);
                assert!(current.is_some(), "GET_DEST for an undumped service");
            }
            (false, IpvsCmd::NewService) => {
                state
                    .services
                    .push(service_from_attrs(i.service().unwrap()).unwrap());
            }
            (false, IpvsCmd::NewDest) => {
                let svc = &mut state.services[current.unwrap()];
                let family = svc.key.family();
                svc.servers
                    .push(server_from_attrs(i.dest().unwrap(), family).unwrap());
            }
            _ => {}
        }
    }
    state.sort_like_ipvsadm();
    let saved = fixture_text("save.txt");
    let saved = saved.split_once('\n').unwrap().1;
    // thresholds are in the dump but not in ipvsadm's save: compare without them
    let mut config = state.config();
    let th: Vec<(u32, u32)> = config
        .services
        .iter()
        .flat_map(|s| &s.servers)
        .filter(|r| r.u_threshold != 0)
        .map(|r| (r.u_threshold, r.l_threshold))
        .collect();
    assert_eq!(th, [(100, 10)]);
    for s in &mut config.services {
        for r in &mut s.servers {
            r.u_threshold = 0;
            r.l_threshold = 0;
        }
    }
    assert_eq!(config.to_save(), saved);

    // counters and connection counts equal the listings
    let mut listed = IpvsState::from_save(saved).unwrap();
    for f in ["list.txt", "list-stats.txt"] {
        let t = fixture_text(f);
        listed.merge_listing(&dataplane::ipvs::Listing::parse(&t).unwrap());
    }
    for (a, b) in state.services.iter().zip(&listed.services) {
        assert_eq!(a.counters, b.counters, "{}", a.key);
        for (ra, rb) in a.servers.iter().zip(&b.servers) {
            assert_eq!(ra.counters, rb.counters, "{} {}", a.key, ra.addr);
            let (ca, cb) = (ra.conns.unwrap(), rb.conns.unwrap());
            assert_eq!((ca.active, ca.inactive), (cb.active, cb.inactive));
        }
    }
}

fn service_from_attrs_key(attrs: &[SvcAttr]) -> dataplane::ipvs::ServiceKey {
    // a GET_DEST request names the service by key only; add what a dump entry would carry
    let mut full = attrs.to_vec();
    full.push(SvcAttr::SchedName(String::new()));
    service_from_attrs(&full).unwrap().key
}

#[test]
fn replies_are_typed() {
    let (msgs, _) = captured();
    let find = |case: &str, cmd: IpvsCmd| -> IpvsMessage {
        msgs.iter()
            .filter(|m| m.case == case && !m.send)
            .filter_map(|m| ipvs(&decode_one(&m.bytes)).cloned())
            .find(|i| i.cmd == cmd)
            .unwrap()
    };
    assert_eq!(
        find("list", IpvsCmd::SetInfo).attrs,
        [
            IpvsAttr::InfoVersion(0x010201),
            IpvsAttr::InfoConnTabSize(4096)
        ]
    );
    assert_eq!(
        find("get-config", IpvsCmd::SetConfig).attrs,
        [
            IpvsAttr::TimeoutTcp(900),
            IpvsAttr::TimeoutTcpFin(120),
            IpvsAttr::TimeoutUdp(300)
        ]
    );
    // adding an existing service: the kernel answers EEXIST with the request attached
    let err = msgs
        .iter()
        .filter(|m| m.case == "svc-add-exists" && !m.send)
        .map(|m| decode_one(&m.bytes))
        .find_map(|d| match d.payload {
            NetlinkPayload::Error(e) => e.code,
            _ => None,
        })
        .unwrap();
    assert_eq!(err.get(), -17);
    // the kernel's nests carry no NLA_F_NESTED, libnl's do
    let dump = find("list-one", IpvsCmd::NewService);
    assert!(matches!(
        &dump.attrs[0],
        IpvsAttr::Service(Nest { flagged: false, .. })
    ));
    let dest = find("list-one", IpvsCmd::NewDest);
    assert!(
        dest.dest()
            .unwrap()
            .iter()
            .any(|a| matches!(a, DestAttr::Stats64(_)))
    );
}

#[test]
fn requests_frame_with_the_family_id() {
    let bytes = netlink::encode(requests::flush(), 0x20, requests::ACK, 7);
    assert_eq!(
        bytes,
        [
            20, 0, 0, 0, 0x20, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, 17, 1, 0, 0
        ]
    );
    let back = netlink::decode(&bytes).unwrap();
    assert_eq!(ipvs(&back[0]), Some(&requests::flush()));
    let req = netlink::family_request(1);
    assert_eq!(&req[4..6], &[0x10, 0]); // GENL_ID_CTRL
    assert!(req.windows(5).any(|w| w == b"IPVS\0"));
}

#[test]
fn truncated_and_garbled_input_errors() {
    let (msgs, _) = captured();
    let m = msgs
        .iter()
        .find(|m| m.case == "list-one" && !m.send && m.bytes.len() > 200)
        .unwrap();
    for cut in [3, 17, 25, m.bytes.len() - 1] {
        assert!(netlink::decode(&m.bytes[..cut]).is_err(), "cut at {cut}");
    }
    // a message too short for its generic netlink header
    let short = [18, 0, 0, 0, 0x20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    assert!(netlink::decode(&short).is_err());
    // a message whose length field says less than a netlink header
    let mut tiny = netlink::encode(requests::flush(), 0x20, 0, 1);
    tiny[0] = 8;
    assert!(netlink::decode(&tiny).is_err());
    // a port attribute of 3 bytes
    let mut bad = netlink::encode(
        requests::del_service(&dataplane::ipvs::ServiceKey::Addr {
            proto: dataplane::Protocol::Tcp,
            addr: "198.19.0.10".parse().unwrap(),
            port: 80,
        }),
        0x20,
        0,
        1,
    );
    // IPVS_SVC_ATTR_PORT is the last attribute: length 6 -> 7
    let at = bad.len() - 8;
    assert_eq!(&bad[at..at + 4], &[6, 0, 4, 0]);
    bad[at] = 7;
    let err = netlink::decode(&bad).unwrap_err().to_string();
    assert!(err.contains("IPVS_SVC_ATTR_PORT"), "{err}");
}
