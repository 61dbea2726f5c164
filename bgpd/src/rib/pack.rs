//! Packing routes into UPDATE messages under the session's size limit (RFC 4271 §4.3: 4096
//! octets without RFC 8654).
//!
//! ```text
//!   (attributes + next hop, [prefixes]) ──> UPDATEs, each: the attributes once + as many
//!                                           prefixes as fit; IPv4 with an IPv4 next hop in
//!                                           the NLRI field (+ NEXT_HOP), everything else in
//!                                           MP_REACH_NLRI (Extended Length always set, so
//!                                           its header does not grow as prefixes are added)
//!   [withdrawn prefixes] ──> UPDATEs with Withdrawn Routes (IPv4) / MP_UNREACH_NLRI (IPv6)
//! ```
//!
//! The size of the message without prefixes is measured with the wire encoder; each prefix
//! then costs 1 + ceil(len/8) octets (+ 4 with ADD-PATH). Every produced message is checked
//! against the limit with `Message::encode_checked` in debug builds.

use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::wire::{
    AfiSafi, Attr, AttrFlags, EncodeCx, Message, MpReach, MpUnreach, NextHop, Nlri, PathAttr,
    Update,
};

fn encoded_len(u: &Update, cx: &EncodeCx) -> usize {
    let mut out = BytesMut::new();
    Message::Update(u.clone()).encode(cx, &mut out);
    out.len()
}

fn prefix_cost(p: &IpNet, add_path: bool) -> usize {
    1 + (p.prefix_len() as usize).div_ceil(8) + if add_path { 4 } else { 0 }
}

fn mp_attr(attr: Attr) -> PathAttr {
    PathAttr {
        flags: AttrFlags(AttrFlags::OPTIONAL | AttrFlags::EXTENDED_LENGTH),
        attr,
    }
}

fn insert_by_type(attrs: &mut Vec<PathAttr>, a: PathAttr) {
    let t = a.attr.type_code();
    let pos = attrs
        .iter()
        .position(|x| x.attr.type_code() > t)
        .unwrap_or(attrs.len());
    attrs.insert(pos, a);
}

/// How one family's announcements are carried.
enum Carrier {
    /// NLRI field with NEXT_HOP.
    NlriField,
    /// MP_REACH_NLRI of IPv4 unicast with this next hop.
    MpV4(NextHop),
    /// MP_REACH_NLRI of IPv6 unicast.
    MpV6(crate::wire::Ipv6NextHop),
}

fn build(attrs: &[PathAttr], carrier: &Carrier, prefixes: &[IpNet]) -> Update {
    let mut attrs = attrs.to_vec();
    let v4 = || {
        prefixes
            .iter()
            .filter_map(|p| match p {
                IpNet::V4(n) => Some(Nlri::new(*n)),
                IpNet::V6(_) => None,
            })
            .collect::<Vec<Nlri<Ipv4Net>>>()
    };
    match carrier {
        Carrier::NlriField => Update {
            nlri: v4(),
            attrs,
            ..Update::default()
        },
        Carrier::MpV4(next_hop) => {
            insert_by_type(
                &mut attrs,
                mp_attr(Attr::MpReach(MpReach::Ipv4Unicast {
                    next_hop: *next_hop,
                    nlri: v4(),
                })),
            );
            Update {
                attrs,
                ..Update::default()
            }
        }
        Carrier::MpV6(next_hop) => {
            let nlri: Vec<Nlri<Ipv6Net>> = prefixes
                .iter()
                .filter_map(|p| match p {
                    IpNet::V6(n) => Some(Nlri::new(*n)),
                    IpNet::V4(_) => None,
                })
                .collect();
            insert_by_type(
                &mut attrs,
                mp_attr(Attr::MpReach(MpReach::Ipv6Unicast {
                    next_hop: *next_hop,
                    nlri,
                })),
            );
            Update {
                attrs,
                ..Update::default()
            }
        }
    }
}

/// Split `prefixes` into runs that fit after a `base`-octet message.
fn chunks<'a>(
    prefixes: &'a [IpNet],
    base: usize,
    max: usize,
    add_path: bool,
) -> impl Iterator<Item = &'a [IpNet]> + 'a {
    let mut rest = prefixes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut len = base;
        let mut n = 0;
        for p in rest {
            let c = prefix_cost(p, add_path);
            if len + c > max {
                break;
            }
            len += c;
            n += 1;
        }
        if n == 0 {
            return None; // not even one prefix fits: the caller counts the rest as unsendable
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

fn check(u: &Update, cx: &EncodeCx) {
    debug_assert!(
        Message::Update(u.clone())
            .encode_checked(cx, &mut BytesMut::new())
            .is_ok(),
        "packed UPDATE over the limit"
    );
}

/// UPDATEs announcing `prefixes` (one family) with `attrs` (without NEXT_HOP / MP_*, in type
/// order, already converted for the peer's AS number size) and `next_hop`. Returns the
/// messages and how many prefixes (from the front) they carry; the rest could not be sent
/// because the attributes leave no room (never with attributes we build; possible only for
/// huge transit paths).
pub(crate) fn announcements(
    attrs: &[PathAttr],
    next_hop: &NextHop,
    family: AfiSafi,
    prefixes: &[IpNet],
    cx: &EncodeCx,
) -> (Vec<Update>, usize) {
    let carrier = match (family, next_hop) {
        (AfiSafi::Ipv4Unicast, NextHop::Ipv4(_)) => Carrier::NlriField,
        (AfiSafi::Ipv4Unicast, nh) => Carrier::MpV4(*nh),
        (_, NextHop::Ipv6(nh)) => Carrier::MpV6(*nh),
        // an IPv6 prefix with an IPv4 next hop is never built by adj_out
        (_, NextHop::Ipv4(_)) => return (Vec::new(), 0),
    };
    let mut base_attrs = attrs.to_vec();
    if let (Carrier::NlriField, NextHop::Ipv4(a)) = (&carrier, next_hop) {
        insert_by_type(&mut base_attrs, PathAttr::new(Attr::NextHop(*a)));
    }
    let base = encoded_len(&build(&base_attrs, &carrier, &[]), cx);
    let add_path = cx.add_path.contains(&family);
    let mut out = Vec::new();
    let mut sent = 0;
    for chunk in chunks(prefixes, base, cx.max_message_len, add_path) {
        let u = build(&base_attrs, &carrier, chunk);
        check(&u, cx);
        sent += chunk.len();
        out.push(u);
    }
    (out, sent)
}

/// UPDATEs withdrawing `prefixes` of one family.
pub(crate) fn withdrawals(family: AfiSafi, prefixes: &[IpNet], cx: &EncodeCx) -> Vec<Update> {
    let add_path = cx.add_path.contains(&family);
    let make = |chunk: &[IpNet]| -> Update {
        match family {
            AfiSafi::Ipv4Unicast => Update {
                withdrawn: chunk
                    .iter()
                    .filter_map(|p| match p {
                        IpNet::V4(n) => Some(Nlri::new(*n)),
                        IpNet::V6(_) => None,
                    })
                    .collect(),
                ..Update::default()
            },
            _ => Update {
                attrs: vec![mp_attr_unreach(MpUnreach::Ipv6Unicast(
                    chunk
                        .iter()
                        .filter_map(|p| match p {
                            IpNet::V6(n) => Some(Nlri::new(*n)),
                            IpNet::V4(_) => None,
                        })
                        .collect(),
                ))],
                ..Update::default()
            },
        }
    };
    let base = encoded_len(&make(&[]), cx);
    chunks(prefixes, base, cx.max_message_len, add_path)
        .map(|c| {
            let u = make(c);
            check(&u, cx);
            u
        })
        .collect()
}

fn mp_attr_unreach(u: MpUnreach) -> PathAttr {
    mp_attr(Attr::MpUnreach(u))
}
