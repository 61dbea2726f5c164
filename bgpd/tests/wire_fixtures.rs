//! Round trip of every BGP message captured from real speakers (BIRD 2, FRR, GoBGP, ExaBGP) by
//! scripts/fixtures/capture-bgp.sh: decode with the context the two OPENs negotiate, re-encode,
//! compare bytes; plus checks that the captures contain what the sessions were set up to show.

use std::collections::BTreeMap;
use std::path::Path;

use bgpd::wire::*;

struct Fixture {
    name: String,
    messages: Vec<Vec<u8>>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn load() -> BTreeMap<String, Vec<Fixture>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wire");
    let mut sessions: BTreeMap<String, Vec<Fixture>> = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("hex") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        assert!(
            first.starts_with("# ") && first.contains("capture-bgp.sh"),
            "{name}: first line must say how it was captured"
        );
        let messages: Vec<Vec<u8>> = lines.filter(|l| !l.is_empty()).map(hex).collect();
        assert!(!messages.is_empty(), "{name}: no messages");
        let (_, session) = name.split_once('-').unwrap();
        sessions
            .entry(session.to_string())
            .or_default()
            .push(Fixture { name, messages });
    }
    sessions
}

fn first_open(f: &Fixture) -> Open {
    f.messages
        .iter()
        .find_map(|m| match Message::decode(m, &DecodeCx::default()) {
            Ok(Message::Open(o)) => Some(o),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{}: no OPEN", f.name))
}

/// Every fixture decoded with the receiver's negotiated context: (file name, messages).
fn decoded() -> Vec<(String, DecodeCx, Vec<Message>)> {
    let mut out = Vec::new();
    for (session, files) in load() {
        assert_eq!(files.len(), 2, "session {session} needs both directions");
        for (i, f) in files.iter().enumerate() {
            let receiver = &files[1 - i];
            let (_, cx) = negotiate(&first_open(receiver), &first_open(f));
            let msgs = f
                .messages
                .iter()
                .enumerate()
                .map(|(n, m)| {
                    Message::decode(m, &cx)
                        .unwrap_or_else(|e| panic!("{} message {}: {e}", f.name, n + 1))
                })
                .collect();
            out.push((f.name.clone(), cx, msgs));
        }
    }
    out
}

#[test]
fn every_fixture_message_round_trips_byte_for_byte() {
    let mut count = 0;
    for (session, files) in load() {
        for (i, f) in files.iter().enumerate() {
            let (_, cx) = negotiate(&first_open(&files[1 - i]), &first_open(f));
            let enc = EncodeCx::from(&cx);
            for (n, raw) in f.messages.iter().enumerate() {
                let msg = Message::decode(raw, &cx)
                    .unwrap_or_else(|e| panic!("{} #{}: {e}", f.name, n + 1));
                if let Message::Update(u) = &msg {
                    assert!(u.errors.is_empty(), "{} #{}: {:?}", f.name, n + 1, u.errors);
                }
                assert_eq!(
                    hexs(&msg.to_bytes(&enc)),
                    hexs(raw),
                    "{} ({session}) message {}: {msg:?}",
                    f.name,
                    n + 1
                );
                count += 1;
            }
        }
    }
    assert!(count > 100, "only {count} messages");
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn updates(msgs: &[Message]) -> impl Iterator<Item = &Update> {
    msgs.iter().filter_map(|m| match m {
        Message::Update(u) => Some(u),
        _ => None,
    })
}

fn find<'a>(all: &'a [(String, DecodeCx, Vec<Message>)], name: &str) -> &'a [Message] {
    &all.iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .2
}

fn shutdown_text(msgs: &[Message]) -> Option<(ErrorCode, Option<String>)> {
    msgs.iter().find_map(|m| match m {
        Message::Notification(n) => Some((n.code, n.shutdown_communication.clone())),
        _ => None,
    })
}

fn eors(msgs: &[Message]) -> Vec<AfiSafi> {
    updates(msgs).filter_map(|u| u.is_end_of_rib()).collect()
}

fn has_subtypes(msgs: &[Message], wanted: &[RouteRefreshSubtype]) -> bool {
    let got: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::RouteRefresh(r) => Some(r.subtype),
            _ => None,
        })
        .collect();
    wanted.iter().all(|w| got.contains(w))
}

#[test]
fn fixtures_hold_what_the_sessions_were_set_up_to_show() {
    let all = decoded();
    let admin = ErrorCode::Cease(CeaseReason::AdministrativeShutdown);

    // BIRD, 4-octet AS 4200000001, eBGP to FRR over IPv4
    let bird4 = find(&all, "bird-ebgp-v4");
    let Message::Open(open) = &bird4[0] else {
        panic!("first message not OPEN")
    };
    assert_eq!((open.my_as, open.asn()), (AS_TRANS as u16, 4200000001));
    assert!(
        open.capabilities()
            .any(|c| matches!(c, Capability::GracefulRestart(_)))
    );
    assert!(
        open.capabilities()
            .any(|c| *c == Capability::EnhancedRouteRefresh)
    );
    let u = updates(bird4)
        .find(|u| {
            u.nlri
                .iter()
                .any(|n| n.prefix.to_string() == "198.18.64.0/24")
        })
        .unwrap();
    assert_eq!(
        u.communities(),
        &[Community::new(65010, 100), Community::NO_EXPORT]
    );
    assert_eq!(u.communities()[1].to_string(), "no-export");
    assert_eq!(u.large_communities()[0].to_string(), "4200000001:1:2");
    assert_eq!(u.as_path().unwrap().to_string(), "4200000001");
    assert!(updates(bird4).any(|u| !u.withdrawn.is_empty()));
    assert!(eors(bird4).contains(&AfiSafi::Ipv4Unicast));

    // FRR: RFC 8203 shutdown communication, enhanced route refresh, MED
    let frr4 = find(&all, "frr-ebgp-v4");
    assert_eq!(
        shutdown_text(frr4),
        Some((admin, Some("maintenance: fixture capture".into())))
    );
    assert!(has_subtypes(
        frr4,
        &[
            RouteRefreshSubtype::BeginningOfRouteRefresh,
            RouteRefreshSubtype::EndOfRouteRefresh
        ]
    ));
    assert!(updates(frr4).any(|u| u.med() == Some(0)));
    let Message::Open(open) = &frr4[0] else {
        panic!()
    };
    let Some(Capability::GracefulRestart(gr)) = open
        .capabilities()
        .find(|c| matches!(c, Capability::GracefulRestart(_)))
    else {
        panic!("FRR sent no GR capability")
    };
    assert!(
        gr.restart_state && gr.notification,
        "FRR 8.4 sets R and N: {gr:?}"
    );

    // IPv6 transport: IPv6 unicast and IPv4 unicast with IPv6 next hops (RFC 8950)
    for name in ["bird-ebgp-v6", "frr-ebgp-v6"] {
        let m = find(&all, name);
        assert!(
            updates(m).any(|u| matches!(
                u.mp_reach(),
                Some(MpReach::Ipv4Unicast {
                    next_hop: NextHop::Ipv6(_),
                    ..
                })
            )),
            "{name}: no IPv4 NLRI with IPv6 next hop"
        );
        assert!(updates(m).any(|u| matches!(u.mp_reach(), Some(MpReach::Ipv6Unicast { .. }))));
        assert!(eors(m).contains(&AfiSafi::Ipv6Unicast), "{name}");
        assert!(
            updates(m).any(
                |u| matches!(u.mp_unreach(), Some(MpUnreach::Ipv6Unicast(w)) if !w.is_empty())
            )
        );
    }
    assert_eq!(
        shutdown_text(find(&all, "bird-ebgp-v6")),
        Some((admin, Some("bird going down for a fixture".into())))
    );

    // iBGP: LOCAL_PREF, MED, well-known communities, large communities; GoBGP's Cease
    let gobgp = find(&all, "gobgp-ibgp");
    let u = updates(gobgp)
        .find(|u| u.local_pref() == Some(200))
        .unwrap();
    assert_eq!(
        (u.med(), u.communities()[1]),
        (Some(10), Community::NO_ADVERTISE)
    );
    assert_eq!(u.large_communities()[0].to_string(), "65020:3:4");
    assert_eq!(
        eors(gobgp)[..2],
        [AfiSafi::Ipv6Unicast, AfiSafi::Ipv4Unicast]
    );
    assert_eq!(
        shutdown_text(gobgp),
        Some((ErrorCode::Cease(CeaseReason::PeerDeconfigured), None))
    );

    // ExaBGP: AS_SET, ATOMIC_AGGREGATE, AGGREGATOR, extended community, an unknown attribute
    let exa = find(&all, "exabgp-ibgp");
    let u = updates(exa)
        .find(|u| u.get(attr_type::ATOMIC_AGGREGATE).is_some())
        .unwrap();
    assert_eq!(
        u.as_path().unwrap().to_string(),
        "65100 65101 {65102,65103}"
    );
    assert_eq!(u.origin(), Some(Origin::Incomplete));
    assert!(matches!(
        u.get(attr_type::AGGREGATOR),
        Some(Attr::Aggregator(Aggregator { asn: 65100, .. }))
    ));
    assert!(
        matches!(u.get(attr_type::EXTENDED_COMMUNITIES), Some(Attr::ExtendedCommunities(c)) if c[0].subtype() == 2)
    );
    let unknown = updates(exa)
        .flat_map(|u| &u.attrs)
        .find(|a| matches!(a.attr, Attr::Unknown { .. }))
        .unwrap();
    assert_eq!(
        unknown.attr,
        Attr::Unknown {
            type_code: 0xf0,
            value: vec![1, 2, 3, 4, 5]
        }
    );
    assert_eq!(
        unknown.for_forwarding().unwrap().flags.0,
        0xe0,
        "passed on with Partial"
    );

    // a 2-octet peer: AS_TRANS + AS4_PATH both ways, rebuilt per RFC 6793 §4.2.3
    let u = updates(find(&all, "bird-as-trans"))
        .find(|u| !u.nlri.is_empty())
        .unwrap();
    assert_eq!(u.as_path().unwrap().to_string(), "23456");
    let rebuilt = as4::from_two_octet_peer(&u.attrs);
    assert_eq!(
        rebuilt[1].attr,
        Attr::AsPath(AsPath::sequence([4200000001]))
    );
    assert!(
        rebuilt
            .iter()
            .all(|a| a.attr.type_code() != attr_type::AS4_PATH)
    );
    let exa2 = find(&all, "exabgp-as-trans");
    let u = updates(exa2)
        .find(|u| u.get(attr_type::AS4_PATH).is_some())
        .unwrap();
    assert_eq!(u.as_path().unwrap().to_string(), "65030 23456 65031");
    let rebuilt = as4::from_two_octet_peer(&u.attrs);
    assert_eq!(
        rebuilt[1].attr,
        Attr::AsPath(AsPath::sequence([65030, 4200000007, 65031]))
    );
    assert!(updates(exa2).any(|u| {
        u.as_path()
            .is_some_and(|p| p.to_string() == "65030 {65040,65041}")
    }));
}
