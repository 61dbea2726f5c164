//! Membership tests, as `ipset test` and `-m set --match-set` answer them.
//!
//! In: a set name and one key part per dimension (from the packet, per `src`/`dst` flag).
//! Out: `Some(true|false)`, or `None` when the set (or a member of a list:set) is unknown or of
//! a type not modelled. hash:net types take the most specific matching network; a `nomatch`
//! entry there answers "not a member" (as the kernel does).

use crate::iptables::SetKeyPart;
use crate::packet::Family;

use super::model::{ElemPart, Entry, IpSet, SetType, Sets};

fn port_hit(part: &ElemPart, key: &SetKeyPart) -> bool {
    match part {
        ElemPart::Port { proto, ports } => *proto == key.proto && ports.contains(key.port),
        ElemPart::BarePort(ports) => key.proto.has_ports() && ports.contains(key.port),
        ElemPart::Icmp { .. } => false, // the key carries no ICMP type
        _ => false,
    }
}

/// Whether a part matches a key part; for networks, the prefix length of the match.
fn part_hit(part: &ElemPart, key: &SetKeyPart) -> Option<u8> {
    match part {
        ElemPart::Ip(a) => (*a == key.addr).then_some(128),
        ElemPart::Net(n) => n.contains(&key.addr).then(|| n.prefix_len().unwrap_or(0)),
        ElemPart::Port { .. } | ElemPart::BarePort(_) | ElemPart::Icmp { .. } => {
            port_hit(part, key).then_some(0)
        }
        ElemPart::Set(_) => None,
    }
}

impl Sets {
    /// Whether set `name` contains the key (one part per dimension).
    pub fn contains(&self, name: &str, key: &[SetKeyPart]) -> Option<bool> {
        self.contains_depth(name, key, 0)
    }

    fn contains_depth(&self, name: &str, key: &[SetKeyPart], depth: u8) -> Option<bool> {
        let set = self.get(name)?;
        if set.set_type == SetType::ListSet {
            if depth > 8 {
                return None;
            }
            let mut unknown = false;
            for e in &set.entries {
                let Some(Some(ElemPart::Set(member))) = e.elem.parts.as_ref().map(|p| p.first())
                else {
                    continue;
                };
                match self.contains_depth(member, key, depth + 1) {
                    Some(true) => return Some(true),
                    Some(false) => {}
                    None => unknown = true,
                }
            }
            return if unknown { None } else { Some(false) };
        }
        let dims = set.set_type.dimensions()?;
        if key.len() < dims {
            return Some(false);
        }
        if set.set_type != SetType::BitmapPort
            && key
                .iter()
                .take(dims)
                .any(|k| Family::of(&k.addr) != set.family())
        {
            return Some(false);
        }
        Some(best_entry(set, key).is_some_and(|e| !e.nomatch()))
    }
}

/// The entry the kernel finds: for types with a network dimension, the one with the longest
/// prefix; otherwise the (unique) exact one.
fn best_entry<'s>(set: &'s IpSet, key: &[SetKeyPart]) -> Option<&'s Entry> {
    let mut best: Option<(u8, &Entry)> = None;
    'entries: for e in &set.entries {
        let Some(parts) = &e.elem.parts else { continue };
        let mut specificity = 0u8;
        for (p, k) in parts.iter().zip(key) {
            match part_hit(p, k) {
                Some(len) => {
                    if matches!(p, ElemPart::Net(_)) {
                        specificity = len;
                    }
                }
                None => continue 'entries,
            }
        }
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, e));
        }
    }
    best.map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Protocol;

    fn key(addr: &str, port: u16) -> SetKeyPart {
        SetKeyPart {
            addr: addr.parse().unwrap(),
            port,
            proto: Protocol::Tcp,
        }
    }

    #[test]
    fn hash_net_longest_match_and_nomatch() {
        let sets = Sets::parse(
            "create NETS hash:net family inet hashsize 1024 maxelem 65536\n\
             add NETS 198.18.64.0/24 nomatch\n\
             add NETS 198.18.64.7\n\
             add NETS 198.18.0.0/15\n",
        )
        .unwrap();
        // What `ipset test` answered in a netns with the same set.
        assert_eq!(sets.contains("NETS", &[key("198.18.64.5", 0)]), Some(false));
        assert_eq!(sets.contains("NETS", &[key("198.18.64.7", 0)]), Some(true));
        assert_eq!(sets.contains("NETS", &[key("198.18.65.7", 0)]), Some(true));
        assert_eq!(sets.contains("NETS", &[key("198.20.0.1", 0)]), Some(false));
        assert_eq!(sets.contains("NETS", &[key("2001:db8::1", 0)]), Some(false));
        assert_eq!(sets.contains("NOPE", &[key("198.18.0.1", 0)]), None);
    }

    #[test]
    fn ip_port_and_bitmap_and_list() {
        let sets = Sets::parse(
            "create C hash:ip,port family inet\n\
             add C 198.19.0.10,tcp:80\n\
             add C 198.19.0.11,udp:53\n\
             create P bitmap:port range 0-65535\n\
             add P 30000-30002\n\
             create L list:set size 8\n\
             add L P\n",
        )
        .unwrap();
        assert_eq!(
            sets.contains("C", &[key("198.19.0.10", 0), key("198.19.0.10", 80)]),
            Some(true)
        );
        assert_eq!(
            sets.contains("C", &[key("198.19.0.10", 0), key("198.19.0.10", 81)]),
            Some(false)
        );
        let udp = SetKeyPart {
            proto: Protocol::Udp,
            ..key("198.19.0.11", 53)
        };
        assert_eq!(sets.contains("C", &[udp, udp]), Some(true));
        assert_eq!(
            sets.contains("C", &[key("198.19.0.11", 53), key("198.19.0.11", 53)]),
            Some(false)
        );
        assert_eq!(sets.contains("P", &[key("198.18.0.1", 30001)]), Some(true));
        assert_eq!(sets.contains("L", &[key("198.18.0.1", 30001)]), Some(true));
        assert_eq!(sets.contains("L", &[key("198.18.0.1", 29999)]), Some(false));
    }
}
