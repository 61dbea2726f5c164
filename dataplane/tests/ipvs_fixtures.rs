//! `ipvsadm -Sn` and `ipvsadm -Ln` on the fixtures captured in the lab VM
//! (scripts/fixtures/capture-ipvs.sh): exact round trip of the save format, the typed content
//! of every service kind, and the listings' counters merged onto the saved table.

use std::net::IpAddr;

use dataplane::Family;
use dataplane::Protocol;
use dataplane::ipvs::{
    ConnCounts, Counters, Forward, IpvsState, Listing, Netmask, Persistence, SchedFlags, Scheduler,
    ServiceKey, TunType, Tunnel, svc_flags, tun_flags,
};

/// A fixture without its provenance line.
fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/ipvs/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(
        first.starts_with("# captured:"),
        "{name}: no provenance line"
    );
    rest.to_string()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(addr),
        port,
    }
}

fn udp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip(addr),
        port,
    }
}

#[test]
fn save_round_trips_byte_for_byte() {
    let text = fixture("save.txt");
    let state = IpvsState::from_save(&text).unwrap();
    similar_asserts(&state.to_save(), &text);
    // what ipvsadm -R restored from it saves the same
    assert_eq!(fixture("save-restored.txt"), text);
}

fn similar_asserts(got: &str, want: &str) {
    if got != want {
        let diff = similar::TextDiff::from_lines(want, got);
        panic!(
            "mismatch (- want + got):\n{}",
            diff.unified_diff().context_radius(2)
        );
    }
}

#[test]
fn save_is_already_in_ipvsadm_order() {
    let state = IpvsState::from_save(&fixture("save.txt")).unwrap();
    let mut sorted = state.clone();
    sorted.sort_like_ipvsadm();
    assert_eq!(sorted, state);
}

#[test]
fn every_kind_of_service_is_typed() {
    let s = IpvsState::from_save(&fixture("save.txt")).unwrap();
    assert_eq!(s.services.len(), 16);

    let rr = s.service(&tcp("198.19.0.10", 80)).unwrap();
    assert_eq!(rr.scheduler, Scheduler::Rr);
    assert_eq!(rr.persistence, None);
    assert_eq!(rr.servers.len(), 2);
    assert_eq!(rr.servers[0].forward, Forward::Masq);
    assert_eq!(
        (rr.servers[0].addr, rr.servers[0].port),
        (ip("198.18.64.2"), 8080)
    );

    let wrr = s.service(&tcp("198.19.0.11", 443)).unwrap();
    assert_eq!(
        wrr.persistence,
        Some(Persistence {
            timeout: 10800,
            netmask: Netmask::host(Family::V4)
        })
    );
    assert_eq!(
        wrr.servers.iter().map(|r| r.weight).collect::<Vec<_>>(),
        [5, 0]
    );

    let sh = s.service(&udp("198.19.0.12", 53)).unwrap();
    assert_eq!(sh.scheduler, Scheduler::Sh);
    assert_eq!(
        sh.sched_flags,
        SchedFlags(svc_flags::SCHED1 | svc_flags::SCHED2)
    );
    assert!(sh.sched_flags.falls_back() && sh.sched_flags.hashes_port());

    let mh = s.service(&tcp("198.19.0.13", 80)).unwrap();
    assert_eq!(mh.sched_flags.names(&mh.scheduler), ["mh-port"]);
    let kinds: Vec<(Forward, Option<Tunnel>)> =
        mh.servers.iter().map(|r| (r.forward, r.tunnel)).collect();
    assert_eq!(kinds[0], (Forward::Route, None));
    assert_eq!(
        kinds[1].1,
        Some(Tunnel {
            kind: TunType::Gue,
            port: 6080,
            flags: tun_flags::CSUM
        })
    );
    assert_eq!(kinds[2].1.unwrap().kind, TunType::Ipip);
    assert_eq!(
        kinds[3].1,
        Some(Tunnel {
            kind: TunType::Gre,
            port: 0,
            flags: tun_flags::NOCSUM
        })
    );
    assert_eq!(kinds[4].1.unwrap().flags, tun_flags::REMCSUM);

    let all = s.service(&udp("198.19.0.21", 5060)).unwrap();
    assert_eq!(all.pe_name.as_deref(), Some("sip"));
    assert!(all.one_packet);
    assert_eq!(
        all.persistence.unwrap().netmask,
        Netmask::V4("255.255.0.0".parse().unwrap())
    );
    assert_eq!(all.flags(), 0x1 | 0x4 | 0x8);

    let flags = s.service(&tcp("198.19.0.22", 80)).unwrap();
    assert_eq!(
        flags.sched_flags.names(&flags.scheduler),
        ["flag-1", "flag-3"]
    );

    let sctp = s
        .services
        .iter()
        .find(|s| {
            matches!(
                s.key,
                ServiceKey::Addr {
                    proto: Protocol::Sctp,
                    ..
                }
            )
        })
        .unwrap();
    assert_eq!(sctp.scheduler, Scheduler::Lc);

    let v6 = s.service(&tcp("2001:db8:ff::10", 80)).unwrap();
    assert_eq!(v6.persistence.unwrap().netmask, Netmask::V6(64));
    assert_eq!(v6.servers[0].addr, ip("2001:db8:64:1::2"));

    let fwm = s
        .service(&ServiceKey::Fwmark {
            family: Family::V4,
            mark: 100,
        })
        .unwrap();
    assert_eq!(fwm.scheduler, Scheduler::Wlc);
    assert_eq!(fwm.servers[0].port, 0);
    let fwm6 = s
        .service(&ServiceKey::Fwmark {
            family: Family::V6,
            mark: 200,
        })
        .unwrap();
    assert_eq!(
        (fwm6.scheduler.clone(), fwm6.servers[0].weight),
        (Scheduler::Fo, 7)
    );
}

#[test]
fn plain_listing_agrees_with_the_save() {
    let saved = IpvsState::from_save(&fixture("save.txt")).unwrap();
    let listing = Listing::parse(&fixture("list.txt")).unwrap();
    assert_eq!(
        listing.version.as_deref(),
        Some("IP Virtual Server version 1.2.1 (size=4096)")
    );
    assert_eq!(listing.services.len(), saved.services.len());
    for ls in &listing.services {
        let svc = saved.service(&ls.key).unwrap();
        assert_eq!(ls.scheduler.as_ref(), Some(&svc.scheduler), "{}", ls.key);
        assert_eq!(ls.persistence, svc.persistence, "{}", ls.key);
        assert_eq!(ls.sched_flags, svc.sched_flags, "{}", ls.key);
        assert_eq!(ls.pe_name, svc.pe_name, "{}", ls.key);
        assert_eq!(ls.one_packet, svc.one_packet, "{}", ls.key);
        assert_eq!(ls.servers.len(), svc.servers.len(), "{}", ls.key);
        for (lr, rs) in ls.servers.iter().zip(&svc.servers) {
            assert_eq!((lr.addr, lr.port), (Some(rs.addr), rs.port));
            assert_eq!(lr.forward, Some(rs.forward));
            assert_eq!(lr.weight, Some(rs.weight));
        }
    }
}

#[test]
fn listings_put_counters_on_the_saved_table() {
    let mut s = IpvsState::from_save(&fixture("save.txt")).unwrap();
    for f in [
        "list.txt",
        "list-stats.txt",
        "list-rate.txt",
        "list-thresholds.txt",
        "list-persistent-conn.txt",
        "list-tun-info.txt",
    ] {
        let l = Listing::parse(&fixture(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!l.approximate, "{f}");
        assert_eq!(s.merge_listing(&l), Vec::<String>::new(), "{f}");
    }
    let rr = s.service(&tcp("198.19.0.10", 80)).unwrap();
    assert_eq!(
        rr.counters,
        Some(Counters {
            conns: 4,
            in_pkts: 28,
            out_pkts: 20,
            in_bytes: 1600,
            out_bytes: 1932
        })
    );
    for rs in &rr.servers {
        assert_eq!(
            rs.conns,
            Some(ConnCounts {
                active: 0,
                inactive: 2,
                persistent: Some(0)
            })
        );
        assert_eq!(rs.counters.unwrap().conns, 2);
        assert!(rs.rates.is_some());
    }
    let v6 = s.service(&tcp("2001:db8:ff::10", 80)).unwrap();
    assert_eq!(v6.servers[0].conns.unwrap().inactive, 1);

    // --stats and --stats --exact agree when nothing is large
    assert_eq!(
        Listing::parse(&fixture("list-stats.txt")).unwrap().services,
        Listing::parse(&fixture("list-stats-exact.txt"))
            .unwrap()
            .services
    );
    // thresholds (which -S leaves out) are in --thresholds
    let th = Listing::parse(&fixture("list-thresholds.txt")).unwrap();
    let sctp = th
        .services
        .iter()
        .find(|s| {
            matches!(
                s.key,
                ServiceKey::Addr {
                    proto: Protocol::Sctp,
                    ..
                }
            )
        })
        .unwrap();
    assert_eq!(
        (sctp.servers[0].u_threshold, sctp.servers[0].l_threshold),
        (Some(100), Some(10))
    );
    let tun = Listing::parse(&fixture("list-tun-info.txt")).unwrap();
    let infos: Vec<_> = tun.services[2]
        .servers
        .iter()
        .map(|r| r.tunnel_info.clone().unwrap())
        .collect();
    assert_eq!(
        infos,
        [
            "n/a",
            "gue:6080:+c",
            "ipip",
            "gre:-c",
            "gue:6081:r+c",
            "gre:-c"
        ]
    );
}

#[test]
fn unknown_listing_entries_are_reported() {
    let mut s = IpvsState::from_save("-A -t 198.19.0.10:80 -s rr\n").unwrap();
    let l = Listing::parse(&fixture("list.txt")).unwrap();
    let missing = s.merge_listing(&l);
    assert!(missing.contains(&"TCP 198.19.0.10:80 -> 198.18.64.2:8080".to_string()));
    assert!(missing.contains(&"FWM 200 IPv6".to_string()));
}

#[test]
fn abbreviated_listing_numbers_mark_the_listing_approximate() {
    let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
        Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
        \x20 -> RemoteAddress:Port\n\
        TCP  198.19.0.10:80                 123456K   15M       12     1000     2000\n";
    let l = Listing::parse(text).unwrap();
    assert!(l.approximate);
    assert_eq!(l.services[0].counters.unwrap().conns, 123_456_000);
    assert_eq!(l.services[0].counters.unwrap().in_pkts, 15_000_000);
}
