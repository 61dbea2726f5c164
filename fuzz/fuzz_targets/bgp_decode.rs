//! `bgpd::wire`: decode any BGP message under any session context, with netgauze-bgp-pkt as
//! an independent oracle.
//!
//! Input: one selector byte, then one message (header included). Selector bits: 0 four-octet
//! AS, 1 eBGP, 2 extended next hop for IPv4, 3 ADD-PATH for both unicast families, 4 extended
//! messages (65535 octets instead of 4096).
//!
//! Asserts:
//! - no panic in `message_len`, `Message::decode` and what the speaker calls on an UPDATE;
//! - `message_len` agrees with the decoder on the length of a message it accepts;
//! - a decoded message without RFC 7606 findings encodes and decodes to the same value;
//! - oracle: when both decoders accept the message, they agree on its type; for an UPDATE
//!   without findings, on the IPv4 withdrawn routes and NLRI (prefixes with host bits cleared,
//!   path ids). Not asserted: that both accept or reject the same bytes (netgauze refuses
//!   multicast prefixes and some attributes we keep raw; we enforce the 4096-octet limit and
//!   RFC 7606 where netgauze is lenient).
#![no_main]

use std::collections::HashMap;

use bgpd::wire::{AfiSafi, DecodeCx, EncodeCx, Message, Nlri, message_len};
use ipnet::Ipv4Net;
use libfuzzer_sys::fuzz_target;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::nlri::Ipv4UnicastAddress;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

fn theirs(msg: &[u8], cx: &DecodeCx) -> Option<BgpMessage> {
    let add_path: HashMap<AddressType, bool> = if cx.add_path.is_empty() {
        HashMap::new()
    } else {
        [
            (AddressType::Ipv4Unicast, true),
            (AddressType::Ipv6Unicast, true),
        ]
        .into()
    };
    // strict: a prefix or attribute netgauze drops would make the lists differ for no reason
    let mut ncx = BgpParsingContext::new(
        cx.four_octet_as,
        HashMap::new(),
        add_path,
        true,
        true,
        true,
        true,
    );
    let mut r = SliceReader::new(msg);
    let m = BgpMessage::parse(&mut r, &mut ncx).ok()?;
    // netgauze parses the header's length worth; the rest is not part of this message
    Some(m)
}

fn ng_v4(n: &[Ipv4UnicastAddress]) -> Vec<Nlri<Ipv4Net>> {
    n.iter()
        .map(|n| Nlri {
            prefix: n.network().address().trunc(),
            path_id: n.path_id(),
        })
        .collect()
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
        Message::RouteRefresh(_) => "ROUTE-REFRESH",
    }
}

fn ng_kind(m: &BgpMessage) -> &'static str {
    match m {
        BgpMessage::Open(_) => "OPEN",
        BgpMessage::Update(_) => "UPDATE",
        BgpMessage::Notification(_) => "NOTIFICATION",
        BgpMessage::KeepAlive => "KEEPALIVE",
        BgpMessage::RouteRefresh(_) => "ROUTE-REFRESH",
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let both = vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast];
    let cx = DecodeCx {
        four_octet_as: sel & 1 != 0,
        ebgp: sel & 2 != 0,
        extended_next_hop: if sel & 4 != 0 {
            vec![AfiSafi::Ipv4Unicast]
        } else {
            vec![]
        },
        add_path: if sel & 8 != 0 { both } else { vec![] },
        max_message_len: if sel & 16 != 0 { 65535 } else { 4096 },
    };
    let framed = message_len(msg, cx.max_message_len);
    let Ok(m) = Message::decode(msg, &cx) else {
        return;
    };
    if let Ok(Some(len)) = framed {
        assert_eq!(
            len,
            msg.len(),
            "message_len and decode disagree on the length"
        );
    }
    let clean = match &m {
        Message::Update(u) => {
            let _ = u.treat_as_withdraw();
            let _ = u.is_end_of_rib();
            let _ = bgpd::wire::as4::from_two_octet_peer(&u.attrs);
            u.errors.is_empty()
        }
        _ => true,
    };
    if clean {
        let bytes = m.to_bytes(&EncodeCx::from(&cx));
        let again = Message::decode(&bytes, &cx).expect("re-encoded message must decode");
        assert_eq!(again, m, "encode then decode changed the message");
    }
    let Some(ng) = theirs(msg, &cx) else { return };
    assert_eq!(
        kind(&m),
        ng_kind(&ng),
        "the two decoders disagree on the message type"
    );
    if let (Message::Update(u), BgpMessage::Update(nu)) = (&m, &ng)
        && clean
    {
        assert_eq!(
            u.withdrawn,
            ng_v4(nu.withdraw_routes()),
            "withdrawn routes differ"
        );
        assert_eq!(u.nlri, ng_v4(nu.nlri()), "NLRI differs");
    }
});
