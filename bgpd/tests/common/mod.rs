//! proptest strategies for `bgpd::wire` messages. `full = false` keeps to what the netgauze
//! oracle models the same way we do (its own well-known types for the capabilities, attributes
//! and codes); `full = true` adds what only we keep raw or typed (unknown capabilities,
//! attributes, families and codes, confederation segments, ORIGINATOR_ID/CLUSTER_LIST, extended
//! communities, RFC 9072 parameters).
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bgpd::wire::*;
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

pub(crate) fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

pub(crate) fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

pub(crate) fn v4net() -> impl Strategy<Value = Nlri<Ipv4Net>> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Nlri::new(Ipv4Net::new(a.into(), l).unwrap().trunc()))
}

pub(crate) fn v6net() -> impl Strategy<Value = Nlri<Ipv6Net>> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Nlri::new(Ipv6Net::new(a.into(), l).unwrap().trunc()))
}

fn asn(four: bool) -> BoxedStrategy<u32> {
    if four {
        (1u32..=u32::MAX).boxed()
    } else {
        (1u32..=65535).boxed()
    }
}

pub(crate) fn as_path(four: bool, full: bool) -> impl Strategy<Value = AsPath> {
    let kinds: Vec<SegmentType> = if full {
        vec![
            SegmentType::Set,
            SegmentType::Sequence,
            SegmentType::ConfedSequence,
            SegmentType::ConfedSet,
        ]
    } else {
        vec![SegmentType::Set, SegmentType::Sequence]
    };
    vec(
        (proptest::sample::select(kinds), vec(asn(four), 1..6)),
        0..4,
    )
    .prop_map(|segs| AsPath {
        segments: segs
            .into_iter()
            .map(|(kind, asns)| Segment { kind, asns })
            .collect(),
    })
}

fn v6_next_hop() -> impl Strategy<Value = Ipv6NextHop> {
    (ipv6(), option::of(ipv6())).prop_map(|(global, link_local)| Ipv6NextHop { global, link_local })
}

fn mp_reach(full: bool) -> BoxedStrategy<MpReach> {
    let v4 = (
        prop_oneof![
            ipv4().prop_map(NextHop::Ipv4),
            v6_next_hop().prop_map(NextHop::Ipv6)
        ],
        vec(v4net(), 0..4),
    )
        .prop_map(|(next_hop, nlri)| MpReach::Ipv4Unicast { next_hop, nlri });
    let v6 = (v6_next_hop(), vec(v6net(), 0..4))
        .prop_map(|(next_hop, nlri)| MpReach::Ipv6Unicast { next_hop, nlri });
    if full {
        let other = (
            3u16..=100,
            3u8..=100,
            vec(any::<u8>(), 0..20),
            vec(any::<u8>(), 0..20),
        )
            .prop_map(|(afi, safi, next_hop, nlri)| MpReach::Other {
                afi,
                safi,
                next_hop,
                nlri,
            });
        prop_oneof![v4, v6, other].boxed()
    } else {
        prop_oneof![v4, v6].boxed()
    }
}

fn mp_unreach(full: bool) -> BoxedStrategy<MpUnreach> {
    let v4 = vec(v4net(), 0..4).prop_map(MpUnreach::Ipv4Unicast);
    let v6 = vec(v6net(), 0..4).prop_map(MpUnreach::Ipv6Unicast);
    if full {
        let other =
            (3u16..=100, 3u8..=100, vec(any::<u8>(), 0..20)).prop_map(|(afi, safi, withdrawn)| {
                MpUnreach::Other {
                    afi,
                    safi,
                    withdrawn,
                }
            });
        prop_oneof![v4, v6, other].boxed()
    } else {
        prop_oneof![v4, v6].boxed()
    }
}

/// A well-formed UPDATE: the mandatory attributes when there is reachable NLRI, in type order.
pub(crate) fn update(four: bool, full: bool) -> impl Strategy<Value = Update> {
    let origin = proptest::sample::select(vec![Origin::Igp, Origin::Egp, Origin::Incomplete]);
    let aggregator = (asn(four), ipv4()).prop_map(|(asn, address)| Aggregator { asn, address });
    let communities = vec(any::<u32>().prop_map(Community), 1..5);
    let large = vec(
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(global_admin, local_data1, local_data2)| LargeCommunity {
                global_admin,
                local_data1,
                local_data2,
            },
        ),
        1..4,
    );
    let extra = if full {
        (
            option::of(ipv4()),
            option::of(vec(ipv4(), 1..4)),
            option::of(vec(any::<[u8; 8]>().prop_map(ExtCommunity), 1..4)),
            option::of((200u8..=254, any::<u8>(), vec(any::<u8>(), 0..300))),
        )
            .boxed()
    } else {
        Just((None, None, None, None)).boxed()
    };
    (
        (
            vec(v4net(), 0..4),
            vec(v4net(), 0..4),
            origin,
            as_path(four, full),
            ipv4(),
        ),
        (
            option::of(any::<u32>()),
            option::of(any::<u32>()),
            any::<bool>(),
            option::of(aggregator),
        ),
        (
            option::of(communities),
            option::of(large),
            option::of(mp_reach(full)),
            option::of(mp_unreach(full)),
        ),
        extra,
        vec(any::<bool>(), 16),
    )
        .prop_map(
            move |(
                (withdrawn, nlri, origin, path, nh),
                (med, lp, atomic, agg),
                (comm, large, reach, unreach),
                (orig_id, clusters, ext, unknown),
                ext_bits,
            )| {
                let mut attrs = vec![Attr::Origin(origin), Attr::AsPath(path)];
                if !nlri.is_empty() {
                    attrs.push(Attr::NextHop(nh));
                }
                attrs.extend(med.map(Attr::Med));
                attrs.extend(lp.map(Attr::LocalPref));
                if atomic {
                    attrs.push(Attr::AtomicAggregate);
                }
                attrs.extend(agg.map(Attr::Aggregator));
                attrs.extend(comm.map(Attr::Communities));
                attrs.extend(orig_id.map(Attr::OriginatorId));
                attrs.extend(clusters.map(Attr::ClusterList));
                attrs.extend(reach.map(Attr::MpReach));
                attrs.extend(unreach.map(Attr::MpUnreach));
                attrs.extend(ext.map(Attr::ExtendedCommunities));
                attrs.extend(large.map(Attr::LargeCommunities));
                let mut attrs: Vec<PathAttr> = attrs
                    .into_iter()
                    .zip(ext_bits)
                    .map(|(a, ext)| {
                        let mut p = PathAttr::new(a);
                        if ext {
                            p.flags.0 |= AttrFlags::EXTENDED_LENGTH;
                        }
                        p
                    })
                    .collect();
                if let Some((type_code, flags, value)) = unknown {
                    // unknown attributes are optional; the four low bits are written as 0
                    let mut flags = (flags | AttrFlags::OPTIONAL) & 0xf0;
                    if value.len() > 255 {
                        flags |= AttrFlags::EXTENDED_LENGTH;
                    }
                    attrs.push(PathAttr {
                        flags: AttrFlags(flags),
                        attr: Attr::Unknown { type_code, value },
                    });
                }
                Update {
                    withdrawn,
                    attrs,
                    nlri,
                    errors: vec![],
                }
            },
        )
}

fn family(full: bool) -> BoxedStrategy<AfiSafi> {
    if full {
        prop_oneof![
            Just(AfiSafi::Ipv4Unicast),
            Just(AfiSafi::Ipv6Unicast),
            (0u16..=400, any::<u8>()).prop_map(|(a, s)| AfiSafi::new(a, s))
        ]
        .boxed()
    } else {
        prop_oneof![Just(AfiSafi::Ipv4Unicast), Just(AfiSafi::Ipv6Unicast)].boxed()
    }
}

pub(crate) fn capability(full: bool) -> BoxedStrategy<Capability> {
    let gr = (
        any::<bool>(),
        any::<bool>(),
        0u16..4096,
        vec((family(false), any::<bool>()), 0..3),
    )
        .prop_map(|(r, n, t, f)| {
            Capability::GracefulRestart(GracefulRestart {
                restart_state: r,
                notification: n,
                restart_time: t,
                families: f
                    .into_iter()
                    .map(|(afi_safi, forwarding_preserved)| GrFamily {
                        afi_safi,
                        forwarding_preserved,
                    })
                    .collect(),
            })
        });
    let common = prop_oneof![
        family(full).prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        gr,
        Just(Capability::ExtendedNextHop(vec![ExtNextHop {
            afi_safi: AfiSafi::Ipv4Unicast,
            next_hop_afi: 2
        }])),
    ];
    if full {
        // codes no typed variant claims
        let unknown = (
            prop_oneof![Just(3u8), 7u8..=63, 72u8..=127, 129u8..=255],
            vec(any::<u8>(), 0..10),
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value });
        prop_oneof![common, unknown].boxed()
    } else {
        common.boxed()
    }
}

pub(crate) fn open(full: bool) -> impl Strategy<Value = Open> {
    let params = vec(
        vec(capability(full), 1..4).prop_map(OptParam::Capabilities),
        0..4,
    );
    let unknown = if full {
        option::of(
            (prop_oneof![Just(1u8), 3u8..=254], vec(any::<u8>(), 0..8))
                .prop_map(|(param_type, value)| OptParam::Unknown { param_type, value }),
        )
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        1u16..=65535,
        prop_oneof![Just(0u16), 3u16..=65535],
        ipv4(),
        params,
        unknown,
        any::<bool>(),
    )
        .prop_map(
            move |(my_as, hold_time, bgp_id, mut params, unknown, ext)| {
                params.extend(unknown);
                Open {
                    version: 4,
                    my_as,
                    hold_time,
                    bgp_id,
                    params,
                    extended_params: full && ext,
                }
            },
        )
}

pub(crate) fn notification(full: bool) -> impl Strategy<Value = Notification> {
    let named: Vec<(u8, u8)> = vec![
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 0),
        (2, 1),
        (2, 2),
        (2, 3),
        (2, 4),
        (2, 6),
        (2, 7),
        (2, 11),
        (3, 0),
        (3, 1),
        (3, 2),
        (3, 3),
        (3, 4),
        (3, 5),
        (3, 6),
        (3, 8),
        (3, 9),
        (3, 10),
        (3, 11),
        (4, 0),
        (5, 0),
        (5, 1),
        (5, 2),
        (5, 3),
        (6, 1),
        (6, 2),
        (6, 3),
        (6, 4),
        (6, 5),
        (6, 6),
        (6, 7),
        (6, 8),
        (6, 9),
        (6, 10),
        (7, 1),
    ];
    let code = if full {
        (any::<u8>(), any::<u8>()).boxed()
    } else {
        proptest::sample::select(named).boxed()
    };
    (code, vec(any::<u8>(), 0..12), option::of("[a-z :äö]{0,40}")).prop_map(
        |((c, s), data, text)| {
            let code = ErrorCode::new(c, s);
            if code.has_shutdown_communication() {
                // either a communication (and maybe trailing data) or nothing at all: raw data here
                // would be read back as a communication when it happens to look like one
                match text {
                    Some(t) => Notification {
                        code,
                        shutdown_communication: Some(t),
                        data,
                    },
                    None => Notification::new(code),
                }
            } else {
                Notification {
                    code,
                    shutdown_communication: None,
                    data,
                }
            }
        },
    )
}

pub(crate) fn route_refresh(full: bool) -> impl Strategy<Value = RouteRefresh> {
    let sub = if full {
        any::<u8>().boxed()
    } else {
        (0u8..=2).boxed()
    };
    (family(full), sub).prop_map(|(afi_safi, s)| RouteRefresh {
        afi_safi,
        subtype: RouteRefreshSubtype::from_u8(s),
        trailing: vec![],
    })
}

pub(crate) fn message(four: bool, full: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        open(full).prop_map(Message::Open),
        update(four, full).prop_map(Message::Update),
        notification(full).prop_map(Message::Notification),
        Just(Message::Keepalive),
        route_refresh(full).prop_map(Message::RouteRefresh),
    ]
}
