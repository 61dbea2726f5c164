//! RFC 6793 conversions of whole attribute lists between 4-octet and 2-octet AS speakers.
//!
//! ```text
//!   to_two_octet_peer:   AS_PATH(4-octet ASNs) AGGREGATOR(AS 4200000001)
//!                        -> AS_PATH(AS_TRANS) AGGREGATOR(AS_TRANS) AS4_PATH AS4_AGGREGATOR
//!   from_two_octet_peer: the reverse, per RFC 6793 §4.2.3
//! ```
//!
//! In and out: `&[PathAttr]` as held in [`super::Update::attrs`]. Encoding the result with
//! `EncodeCx { four_octet_as: false, .. }` writes 2-octet ASNs.

use super::aspath::{AS_TRANS, AsPath};
use super::attr::{Attr, PathAttr, attr_type};

fn insert_ordered(attrs: &mut Vec<PathAttr>, a: PathAttr) {
    let t = a.attr.type_code();
    let pos = attrs
        .iter()
        .position(|x| x.attr.type_code() > t)
        .unwrap_or(attrs.len());
    attrs.insert(pos, a);
}

/// RFC 6793 §4.2.2: the attributes to send to a peer without the 4-octet AS capability.
/// ASNs above 65535 in AS_PATH and AGGREGATOR become AS_TRANS, and AS4_PATH / AS4_AGGREGATOR
/// carry the real values (inserted in type-code order). Existing AS4_* attributes are replaced.
pub fn to_two_octet_peer(attrs: &[PathAttr]) -> Vec<PathAttr> {
    let mut out = Vec::with_capacity(attrs.len() + 2);
    let mut extra = Vec::new();
    for a in attrs {
        match &a.attr {
            Attr::As4Path(_) | Attr::As4Aggregator(_) => {}
            Attr::AsPath(p) => {
                let (two, as4) = p.split_for_two_octet();
                out.push(PathAttr {
                    flags: a.flags,
                    attr: Attr::AsPath(two),
                });
                if let Some(as4) = as4 {
                    extra.push(PathAttr::new(Attr::As4Path(as4)));
                }
            }
            Attr::Aggregator(g) if g.asn > 0xffff => {
                let mut two = *g;
                two.asn = AS_TRANS;
                out.push(PathAttr {
                    flags: a.flags,
                    attr: Attr::Aggregator(two),
                });
                extra.push(PathAttr::new(Attr::As4Aggregator(*g)));
            }
            _ => out.push(a.clone()),
        }
    }
    for e in extra {
        insert_ordered(&mut out, e);
    }
    out
}

/// RFC 6793 §4.2.3: the 4-octet view of attributes received from a 2-octet peer. If AGGREGATOR
/// holds a real AS (not AS_TRANS), AS4_AGGREGATOR and AS4_PATH are ignored; otherwise
/// AS4_AGGREGATOR replaces AGGREGATOR and AS_PATH is merged with AS4_PATH
/// ([`AsPath::merge_as4`]). AS4_* attributes are not in the result.
pub fn from_two_octet_peer(attrs: &[PathAttr]) -> Vec<PathAttr> {
    let find = |t: u8| {
        attrs
            .iter()
            .find(|a| a.attr.type_code() == t)
            .map(|a| &a.attr)
    };
    let agg = match find(attr_type::AGGREGATOR) {
        Some(Attr::Aggregator(g)) => Some(*g),
        _ => None,
    };
    let as4_agg = match find(attr_type::AS4_AGGREGATOR) {
        Some(Attr::As4Aggregator(g)) => Some(*g),
        _ => None,
    };
    let ignore_as4 = agg.is_some_and(|g| g.asn != AS_TRANS);
    let as4_path = match find(attr_type::AS4_PATH) {
        Some(Attr::As4Path(p)) if !ignore_as4 => Some(p),
        _ => None,
    };
    attrs
        .iter()
        .filter_map(|a| match &a.attr {
            Attr::As4Path(_) | Attr::As4Aggregator(_) => None,
            Attr::AsPath(p) => Some(PathAttr {
                flags: a.flags,
                attr: Attr::AsPath(match as4_path {
                    Some(as4) => AsPath::merge_as4(p, as4),
                    None => p.clone(),
                }),
            }),
            Attr::Aggregator(g) if g.asn == AS_TRANS => Some(PathAttr {
                flags: a.flags,
                attr: Attr::Aggregator(as4_agg.unwrap_or(*g)),
            }),
            _ => Some(a.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::attr::{Aggregator, Origin};

    #[test]
    fn round_trip_through_a_two_octet_peer() {
        let agg = Aggregator {
            asn: 4200000001,
            address: Ipv4Addr::new(198, 18, 0, 1),
        };
        let attrs = vec![
            PathAttr::new(Attr::Origin(Origin::Igp)),
            PathAttr::new(Attr::AsPath(AsPath::sequence([65001, 4200000001]))),
            PathAttr::new(Attr::Aggregator(agg)),
            PathAttr::new(Attr::Med(5)),
        ];
        let two = to_two_octet_peer(&attrs);
        let types: Vec<u8> = two.iter().map(|a| a.attr.type_code()).collect();
        assert_eq!(types, vec![1, 2, 7, 4, 17, 18]);
        assert_eq!(
            two[1].attr,
            Attr::AsPath(AsPath::sequence([65001, AS_TRANS]))
        );
        assert_eq!(from_two_octet_peer(&two), attrs);
    }

    #[test]
    fn real_aggregator_as_means_as4_attributes_are_ignored() {
        let attrs = vec![
            PathAttr::new(Attr::AsPath(AsPath::sequence([65002, AS_TRANS]))),
            PathAttr::new(Attr::Aggregator(Aggregator {
                asn: 65002,
                address: Ipv4Addr::LOCALHOST,
            })),
            PathAttr::new(Attr::As4Path(AsPath::sequence([4200000001]))),
        ];
        let got = from_two_octet_peer(&attrs);
        assert_eq!(got, attrs[..2].to_vec());
    }
}
