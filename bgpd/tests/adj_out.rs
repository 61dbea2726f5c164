//! Adj-RIB-Out: what we advertise to eBGP and iBGP peers (next-hop-self, AS prepend, LOCAL_PREF,
//! communities, split horizon, no iBGP re-advertisement, transit rules), End-of-RIB, route
//! refresh, and UPDATE packing under the 4096-octet limit. Every produced UPDATE is encoded and
//! decoded again with `bgpd::wire`, so the assertions are about the bytes a peer receives.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use bgpd::policy::{ExportPolicy, PrefixList};
use bgpd::rib::{AdjRibOut, OutSession, PeerId, PeerInfo, Rib, RibOptions, RouteAttrs};
use bgpd::wire::{
    AfiSafi, AsPath, Attr, AttrFlags, Community, DecodeCx, EncodeCx, Ipv6NextHop, LargeCommunity,
    Message, MpReach, MpUnreach, NextHop, Origin, PathAttr, Update, attr_type,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const LOCAL_AS: u32 = 65000;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn nh6() -> Ipv6NextHop {
    Ipv6NextHop {
        global: "2001:db8::10".parse().unwrap(),
        link_local: Some("fe80::10".parse().unwrap()),
    }
}

fn session(peer: PeerId, peer_as: u32) -> OutSession {
    OutSession {
        peer,
        local_as: LOCAL_AS,
        peer_as,
        next_hop_v4: Some("198.18.0.10".parse().unwrap()),
        next_hop_v6: Some(nh6()),
        families: vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast],
        extended_next_hop: false,
        encode: EncodeCx {
            four_octet_as: true,
            ..EncodeCx::default()
        },
    }
}

fn policy() -> ExportPolicy {
    ExportPolicy {
        communities: vec![Community::new(65000, 100)],
        large_communities: vec![LargeCommunity {
            global_admin: 65000,
            local_data1: 1,
            local_data2: 2,
        }],
        ..ExportPolicy::default()
    }
}

/// Encode with the session's settings, check the size, decode as the peer would.
fn on_the_wire(updates: &[Update], s: &OutSession) -> Vec<Update> {
    let cx = DecodeCx {
        four_octet_as: s.encode.four_octet_as,
        ebgp: false,
        extended_next_hop: vec![AfiSafi::Ipv4Unicast],
        add_path: s.encode.add_path.clone(),
        max_message_len: 4096,
    };
    updates
        .iter()
        .map(|u| {
            let bytes = Message::Update(u.clone()).to_bytes(&s.encode);
            assert!(bytes.len() <= 4096, "UPDATE of {} octets", bytes.len());
            match Message::decode(&bytes, &cx) {
                Ok(Message::Update(u)) => {
                    assert!(u.errors.is_empty(), "{:?}", u.errors);
                    u
                }
                other => panic!("not an UPDATE: {other:?}"),
            }
        })
        .collect()
}

fn own() -> BTreeSet<IpNet> {
    [net("198.18.64.0/24"), net("2001:db8:64::/64")].into()
}

#[test]
fn ebgp_own_prefixes_then_end_of_rib() {
    let rib = Rib::new(RibOptions::default());
    let s = session(PeerId(0), 65001);
    let mut out = AdjRibOut::new(s.clone(), policy());
    let msgs = on_the_wire(&out.initial_updates(&rib, &own()), &s);
    assert_eq!(msgs.len(), 4);

    let v4 = &msgs[0];
    assert_eq!(v4.nlri.len(), 1);
    assert_eq!(
        v4.nlri[0].prefix,
        "198.18.64.0/24".parse::<Ipv4Net>().unwrap()
    );
    assert_eq!(v4.origin(), Some(Origin::Igp));
    assert_eq!(
        v4.as_path(),
        Some(&AsPath::sequence([LOCAL_AS])),
        "AS prepended"
    );
    assert_eq!(
        v4.next_hop(),
        Some(Ipv4Addr::new(198, 18, 0, 10)),
        "next-hop-self"
    );
    assert_eq!(v4.local_pref(), None, "no LOCAL_PREF over eBGP");
    assert_eq!(v4.med(), None);
    assert_eq!(v4.communities(), &[Community::new(65000, 100)]);
    assert_eq!(v4.large_communities().len(), 1);

    let v6 = &msgs[1];
    match v6.mp_reach() {
        Some(MpReach::Ipv6Unicast { next_hop, nlri }) => {
            assert_eq!(*next_hop, nh6(), "global + link-local next hop");
            assert_eq!(
                nlri[0].prefix,
                "2001:db8:64::/64".parse::<Ipv6Net>().unwrap()
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v6.next_hop(), None);
    assert_eq!(msgs[2].is_end_of_rib(), Some(AfiSafi::Ipv4Unicast));
    assert_eq!(msgs[3].is_end_of_rib(), Some(AfiSafi::Ipv6Unicast));
    assert!(out.take_updates().is_empty(), "nothing pending");
    assert_eq!(out.len(), 2);

    // a pod CIDR goes away: withdrawn (IPv4 field, IPv6 MP_UNREACH_NLRI)
    out.recompute(&rib, &BTreeSet::new(), own());
    let msgs = on_the_wire(&out.take_updates(), &s);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        msgs[0].withdrawn[0].prefix,
        "198.18.64.0/24".parse::<Ipv4Net>().unwrap()
    );
    assert!(matches!(msgs[1].mp_unreach(), Some(MpUnreach::Ipv6Unicast(v)) if v.len() == 1));
    assert!(out.is_empty());
}

#[test]
fn ibgp_own_prefixes_carry_local_pref_and_no_as() {
    let rib = Rib::new(RibOptions::default());
    let s = session(PeerId(0), LOCAL_AS);
    let mut pol = policy();
    pol.local_pref = 200;
    pol.med = Some(7);
    let mut out = AdjRibOut::new(s.clone(), pol);
    let msgs = on_the_wire(&out.initial_updates(&rib, &own()), &s);
    assert_eq!(msgs[0].as_path(), Some(&AsPath::default()));
    assert_eq!(msgs[0].local_pref(), Some(200));
    assert_eq!(msgs[0].med(), Some(7));
    // a family the session did not negotiate is not advertised
    let mut only_v4 = s.clone();
    only_v4.families = vec![AfiSafi::Ipv4Unicast];
    let mut out = AdjRibOut::new(only_v4.clone(), policy());
    let msgs = on_the_wire(&out.initial_updates(&rib, &own()), &only_v4);
    assert_eq!(
        msgs.len(),
        2,
        "one announcement and one End-of-RIB: {msgs:?}"
    );
}

#[test]
fn ipv4_over_an_ipv6_only_session_uses_extended_next_hop() {
    let rib = Rib::new(RibOptions::default());
    let mut s = session(PeerId(0), 65001);
    s.next_hop_v4 = None;
    let mut out = AdjRibOut::new(s.clone(), policy());
    assert_eq!(
        out.export(&rib, &own(), net("198.18.64.0/24")),
        None,
        "no IPv4 next hop and no RFC 8950"
    );
    s.extended_next_hop = true;
    out = AdjRibOut::new(s.clone(), policy());
    let msgs = on_the_wire(&out.initial_updates(&rib, &own()), &s);
    match msgs[0].mp_reach() {
        Some(MpReach::Ipv4Unicast {
            next_hop: NextHop::Ipv6(nh),
            nlri,
        }) => {
            assert_eq!(*nh, nh6());
            assert_eq!(nlri.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

struct Net {
    rib: Rib,
    a: PeerId,
    b: PeerId,
    i: PeerId,
    j: PeerId,
}

fn peer(addr: &str, asn: u32) -> PeerInfo {
    PeerInfo {
        address: addr.parse().unwrap(),
        asn,
        local_as: LOCAL_AS,
        router_id: addr.parse().unwrap(),
        ifindex: None,
    }
}

fn learned(path: &[u32], nh: &str) -> RouteAttrs {
    RouteAttrs {
        origin: Origin::Igp,
        as_path: AsPath::sequence(path.iter().copied()),
        next_hop: NextHop::Ipv4(nh.parse().unwrap()),
        med: None,
        local_pref: 100,
        communities: vec![],
        large_communities: vec![],
        originator_id: None,
        cluster_list: vec![],
        other: vec![],
    }
}

/// a: eBGP AS 65001, b: eBGP AS 65002, i and j: iBGP.
fn network() -> Net {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(peer("198.18.0.1", 65001)).unwrap();
    let b = rib.add_peer(peer("198.18.0.2", 65002)).unwrap();
    let i = rib.add_peer(peer("198.18.0.3", LOCAL_AS)).unwrap();
    let j = rib.add_peer(peer("198.18.0.4", LOCAL_AS)).unwrap();
    let r1 = RouteAttrs {
        med: Some(50),
        communities: vec![Community::new(65001, 1)],
        ..learned(&[65001], "198.18.0.1")
    };
    rib.announce(a, r1, [net("198.18.66.0/24")]).unwrap();
    let r2 = RouteAttrs {
        local_pref: 300,
        ..learned(&[65005], "198.18.0.3")
    };
    rib.announce(i, r2, [net("198.18.67.0/24")]).unwrap();
    let r3 = RouteAttrs {
        communities: vec![Community::NO_EXPORT],
        ..learned(&[65001], "198.18.0.1")
    };
    rib.announce(a, r3, [net("198.18.68.0/24")]).unwrap();
    rib.announce(
        a,
        learned(&[65001, 65002], "198.18.0.1"),
        [net("198.18.69.0/24")],
    )
    .unwrap();
    let r5 = RouteAttrs {
        other: vec![
            PathAttr {
                flags: AttrFlags(AttrFlags::OPTIONAL | AttrFlags::TRANSITIVE),
                attr: Attr::Unknown {
                    type_code: 99,
                    value: vec![1, 2],
                },
            },
            PathAttr {
                flags: AttrFlags(AttrFlags::OPTIONAL),
                attr: Attr::Unknown {
                    type_code: 98,
                    value: vec![3],
                },
            },
            PathAttr::new(Attr::AtomicAggregate),
        ],
        ..learned(&[65001], "198.18.0.1")
    };
    rib.announce(a, r5, [net("198.18.70.0/24")]).unwrap();
    let r6 = RouteAttrs {
        communities: vec![Community::NO_ADVERTISE],
        ..learned(&[65001], "198.18.0.1")
    };
    rib.announce(a, r6, [net("198.18.71.0/24")]).unwrap();
    Net { rib, a, b, i, j }
}

fn transit() -> ExportPolicy {
    ExportPolicy {
        transit: Some(PrefixList::parse(&["198.18.64.0/18 le 24"]).unwrap()),
        ..policy()
    }
}

/// prefix -> decoded UPDATE that announced it.
fn announced(msgs: &[Update]) -> BTreeMap<IpNet, Update> {
    let mut m = BTreeMap::new();
    for u in msgs {
        for n in &u.nlri {
            assert!(m.insert(IpNet::V4(n.prefix), u.clone()).is_none());
        }
    }
    m
}

#[test]
fn learned_routes_are_not_advertised_by_default() {
    let n = network();
    let s = session(n.b, 65002);
    let mut out = AdjRibOut::new(s.clone(), policy());
    let msgs = on_the_wire(&out.initial_updates(&n.rib, &own()), &s);
    let got: Vec<IpNet> = announced(&msgs).into_keys().collect();
    assert_eq!(got, [net("198.18.64.0/24")]);
}

#[test]
fn transit_to_an_ebgp_peer() {
    let n = network();
    let s = session(n.b, 65002);
    let mut out = AdjRibOut::new(s.clone(), transit());
    let msgs = on_the_wire(&out.initial_updates(&n.rib, &own()), &s);
    let got = announced(&msgs);
    let prefixes: Vec<IpNet> = got.keys().copied().collect();
    // 68 has NO_EXPORT, 69 holds the peer's AS, 71 has NO_ADVERTISE
    assert_eq!(
        prefixes,
        [
            "198.18.64.0/24",
            "198.18.66.0/24",
            "198.18.67.0/24",
            "198.18.70.0/24"
        ]
        .map(net)
    );
    let r1 = &got[&net("198.18.66.0/24")];
    assert_eq!(r1.as_path(), Some(&AsPath::sequence([LOCAL_AS, 65001])));
    assert_eq!(r1.med(), None, "a received MED is not passed to another AS");
    assert_eq!(r1.local_pref(), None);
    assert_eq!(r1.next_hop(), Some(Ipv4Addr::new(198, 18, 0, 10)));
    assert_eq!(
        r1.communities(),
        &[Community::new(65000, 100), Community::new(65001, 1)]
    );
    // iBGP-learned may go to eBGP peers
    let r2 = &got[&net("198.18.67.0/24")];
    assert_eq!(r2.as_path(), Some(&AsPath::sequence([LOCAL_AS, 65005])));
    // unknown optional transitive goes on with Partial, non-transitive does not
    let r5 = &got[&net("198.18.70.0/24")];
    let unknown: Vec<(u8, u8)> = r5
        .attrs
        .iter()
        .filter(|a| matches!(a.attr, Attr::Unknown { .. }))
        .map(|a| (a.attr.type_code(), a.flags.0))
        .collect();
    assert_eq!(unknown, [(99, 0xe0)]);
    assert!(r5.get(attr_type::ATOMIC_AGGREGATE).is_some());
}

#[test]
fn split_horizon_and_no_ibgp_to_ibgp() {
    let n = network();
    // back to a, where 66 came from
    let s = session(n.a, 65001);
    let mut out = AdjRibOut::new(s.clone(), transit());
    let got = announced(&on_the_wire(&out.initial_updates(&n.rib, &own()), &s));
    assert!(!got.contains_key(&net("198.18.66.0/24")), "split horizon");
    assert!(got.contains_key(&net("198.18.67.0/24")));
    // to iBGP peer j: eBGP-learned yes (with LOCAL_PREF and MED), iBGP-learned from i no
    let s = session(n.j, LOCAL_AS);
    let mut out = AdjRibOut::new(s.clone(), transit());
    let got = announced(&on_the_wire(&out.initial_updates(&n.rib, &own()), &s));
    assert!(
        !got.contains_key(&net("198.18.67.0/24")),
        "no iBGP re-advertisement"
    );
    let r1 = &got[&net("198.18.66.0/24")];
    assert_eq!(
        r1.as_path(),
        Some(&AsPath::sequence([65001])),
        "no prepend on iBGP"
    );
    assert_eq!((r1.local_pref(), r1.med()), (Some(100), Some(50)));
    assert!(
        got.contains_key(&net("198.18.68.0/24")),
        "NO_EXPORT stays inside the AS"
    );
    assert!(
        !got.contains_key(&net("198.18.71.0/24")),
        "NO_ADVERTISE goes nowhere"
    );
    // and not back to i either
    let s = session(n.i, LOCAL_AS);
    let mut out = AdjRibOut::new(s.clone(), transit());
    let got = announced(&on_the_wire(&out.initial_updates(&n.rib, &own()), &s));
    assert!(!got.contains_key(&net("198.18.67.0/24")));
}

#[test]
fn loc_rib_changes_and_route_refresh() {
    let mut n = network();
    let s = session(n.b, 65002);
    let mut out = AdjRibOut::new(s.clone(), transit());
    out.initial_updates(&n.rib, &own());
    // a withdraws 66: b gets a withdrawal
    let changes = n.rib.withdraw(n.a, [net("198.18.66.0/24")]);
    out.recompute(&n.rib, &own(), changes.iter().map(|c| c.prefix));
    let msgs = on_the_wire(&out.take_updates(), &s);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].withdrawn.len(), 1);
    // route refresh: everything of the family again, no End-of-RIB
    let msgs = on_the_wire(&out.refresh(AfiSafi::Ipv4Unicast), &s);
    let got: Vec<IpNet> = announced(&msgs).into_keys().collect();
    assert_eq!(
        got,
        ["198.18.64.0/24", "198.18.67.0/24", "198.18.70.0/24"].map(net)
    );
    assert!(msgs.iter().all(|u| u.is_end_of_rib().is_none()));
    let msgs = on_the_wire(&out.refresh(AfiSafi::Ipv6Unicast), &s);
    assert_eq!(msgs.len(), 1);
    // the session goes down: nothing is considered advertised
    out.reset();
    assert!(out.is_empty());
}

#[test]
fn two_octet_peer_gets_as_trans_and_as4_path() {
    let rib = Rib::new(RibOptions::default());
    let mut s = session(PeerId(0), 65001);
    s.local_as = 4_200_000_001;
    s.encode.four_octet_as = false;
    let mut out = AdjRibOut::new(s.clone(), policy());
    let msgs = on_the_wire(&out.initial_updates(&rib, &own()), &s);
    assert_eq!(msgs[0].as_path(), Some(&AsPath::sequence([23456])));
    assert_eq!(
        msgs[0].get(attr_type::AS4_PATH),
        Some(&Attr::As4Path(AsPath::sequence([4_200_000_001])))
    );
}

/// Many prefixes of both families with three attribute sets, with and without ADD-PATH:
/// every message within 4096 octets, every prefix exactly once with its own attributes, and
/// the same for the withdrawals.
#[test]
fn packing_under_the_size_limit() {
    for add_path in [false, true] {
        let mut rib = Rib::new(RibOptions::default());
        let a = rib.add_peer(peer("198.18.0.1", 65001)).unwrap();
        let b = rib.add_peer(peer("198.18.0.2", 65002)).unwrap();
        let mut want: BTreeMap<IpNet, u16> = BTreeMap::new();
        for set in 0u16..3 {
            let v4: Vec<IpNet> = (0..1500u32)
                .map(|i| {
                    let k = set as u32 * 1500 + i;
                    let len = [24, 32, 20, 28][(k % 4) as usize];
                    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (k << 12)), len).unwrap())
                        .trunc()
                })
                .collect();
            let v6: Vec<IpNet> = (0..700u32)
                .map(|i| {
                    let k = set as u128 * 700 + i as u128;
                    let len = [64, 128, 48][(k % 3) as usize];
                    IpNet::V6(
                        Ipv6Net::new(Ipv6Addr::from((0x2001_0db8u128 << 96) | (k << 64)), len)
                            .unwrap(),
                    )
                    .trunc()
                })
                .collect();
            let c = RouteAttrs {
                communities: vec![Community::new(65001, set)],
                ..learned(&[65001], "198.18.0.1")
            };
            let c6 = RouteAttrs {
                next_hop: NextHop::Ipv6(nh6()),
                ..c.clone()
            };
            for p in &v4 {
                want.insert(*p, set);
            }
            for p in &v6 {
                want.insert(*p, set);
            }
            rib.announce(a, c, v4).unwrap();
            rib.announce(a, c6, v6).unwrap();
        }
        let mut s = session(b, 65002);
        if add_path {
            s.encode.add_path = vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast];
        }
        let mut pol = policy();
        pol.transit = Some(PrefixList::parse(&["0.0.0.0/0 le 32", "::/0 le 128"]).unwrap());
        let mut out = AdjRibOut::new(s.clone(), pol);
        let raw = out.initial_updates(&rib, &BTreeSet::new());
        let msgs = on_the_wire(&raw, &s);
        let mut seen: BTreeMap<IpNet, u16> = BTreeMap::new();
        for u in &msgs {
            let set = u
                .communities()
                .iter()
                .find(|c| c.0 >> 16 == 65001)
                .map(|c| (c.0 & 0xffff) as u16);
            let mut prefixes: Vec<IpNet> = u.nlri.iter().map(|n| IpNet::V4(n.prefix)).collect();
            if let Some(MpReach::Ipv6Unicast { nlri, .. }) = u.mp_reach() {
                prefixes.extend(nlri.iter().map(|n| IpNet::V6(n.prefix)));
            }
            for p in prefixes {
                assert!(seen.insert(p, set.unwrap()).is_none(), "{p} sent twice");
            }
        }
        assert_eq!(seen, want, "add_path {add_path}");
        // the messages are full: within a run of messages with the same attributes, all but
        // the last leave less room than the largest prefix (16 + 1 octets, + 4 with ADD-PATH)
        let len = |u: &Update| Message::Update(u.clone()).to_bytes(&s.encode).len();
        let key = |u: &Update| (u.communities().to_vec(), u.mp_reach().is_some());
        for pair in raw.windows(2) {
            if key(&pair[0]) == key(&pair[1]) && pair[1].is_end_of_rib().is_none() {
                assert!(len(&pair[0]) > 4096 - 21, "{} octets", len(&pair[0]));
            }
        }

        // withdraw everything
        let changes = rib.flush(a, None);
        out.recompute(&rib, &BTreeSet::new(), changes.iter().map(|c| c.prefix));
        let msgs = on_the_wire(&out.take_updates(), &s);
        let mut gone = BTreeSet::new();
        for u in &msgs {
            for n in &u.withdrawn {
                assert!(gone.insert(IpNet::V4(n.prefix)));
            }
            if let Some(MpUnreach::Ipv6Unicast(v)) = u.mp_unreach() {
                for n in v {
                    assert!(gone.insert(IpNet::V6(n.prefix)));
                }
            }
        }
        assert_eq!(gone, want.keys().copied().collect());
        assert!(out.is_empty());
    }
}
