//! The RFC 7606 case table shared by `rfc7606.rs` (the decoder's choice per row) and
//! `rfc7606_live.rs` (the daemon's behaviour on a real session): one hand-built UPDATE per
//! class of malformation, the action the decoder must choose, and the NOTIFICATION (code,
//! subcode, data) the error maps to.
#![allow(dead_code)]

pub(crate) use bgpd::wire::*;

pub(crate) const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
pub(crate) const AS_PATH2: &[u8] = &[0x40, 2, 4, 2, 1, 0xfd, 0xe8]; // [65000], 2-octet
pub(crate) const NEXT_HOP: &[u8] = &[0x40, 3, 4, 198, 18, 0, 1];
pub(crate) const NLRI: &[u8] = &[24, 198, 18, 64]; // 198.18.64.0/24
pub(crate) const MP_REACH_V6: &[u8] = &[
    0x80, 14, 28, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 48,
    0x20, 1, 0x0d, 0xb8, 0, 0x64,
]; // 2001:db8:64::/48 via 2001:db8::1

pub(crate) fn message(withdrawn: &[u8], attrs: &[&[u8]], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut m = vec![0xff; 16];
    let len = 19 + 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    m.extend_from_slice(withdrawn);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&attrs);
    m.extend_from_slice(nlri);
    m
}

pub(crate) fn with_wellknown(extra: &[u8]) -> Vec<u8> {
    message(&[], &[ORIGIN, AS_PATH2, NEXT_HOP, extra], NLRI)
}

pub(crate) struct Row {
    pub(crate) class: &'static str,
    pub(crate) msg: Vec<u8>,
    pub(crate) cx: DecodeCx,
    /// None: decodes without findings.
    pub(crate) action: Option<ErrorAction>,
    /// NOTIFICATION body for the (strongest) error: code, subcode, data.
    pub(crate) notification: &'static [u8],
    /// The attribute type named by the error.
    pub(crate) attr_type: Option<u8>,
}

pub(crate) fn row(
    class: &'static str,
    msg: Vec<u8>,
    action: Option<ErrorAction>,
    notification: &'static [u8],
    attr_type: Option<u8>,
) -> Row {
    Row {
        class,
        msg,
        cx: DecodeCx::default(),
        action,
        notification,
        attr_type,
    }
}

pub(crate) fn rows() -> Vec<Row> {
    use ErrorAction::*;
    let ibgp4 = DecodeCx {
        four_octet_as: true,
        ..DecodeCx::default()
    };
    let ebgp = DecodeCx {
        ebgp: true,
        ..DecodeCx::default()
    };
    let mut v = vec![
        // RFC 7606 §7.1
        row(
            "ORIGIN length 2",
            message(&[], &[&[0x40, 1, 2, 0, 0], AS_PATH2, NEXT_HOP], NLRI),
            Some(TreatAsWithdraw),
            &[3, 5, 0x40, 1, 2, 0, 0],
            Some(1),
        ),
        row(
            "ORIGIN value 3",
            message(&[], &[&[0x40, 1, 1, 3], AS_PATH2, NEXT_HOP], NLRI),
            Some(TreatAsWithdraw),
            &[3, 6, 0x40, 1, 1, 3],
            Some(1),
        ),
        // §7.2
        row(
            "AS_PATH undefined segment type",
            message(
                &[],
                &[ORIGIN, &[0x40, 2, 4, 9, 1, 0xfd, 0xe8], NEXT_HOP],
                NLRI,
            ),
            Some(TreatAsWithdraw),
            &[3, 11, 0x40, 2, 4, 9, 1, 0xfd, 0xe8],
            Some(2),
        ),
        row(
            "AS_PATH zero-length segment",
            message(&[], &[ORIGIN, &[0x40, 2, 2, 2, 0], NEXT_HOP], NLRI),
            Some(TreatAsWithdraw),
            &[3, 11, 0x40, 2, 2, 2, 0],
            Some(2),
        ),
        row(
            "AS_PATH segment overrun",
            message(
                &[],
                &[ORIGIN, &[0x40, 2, 4, 2, 2, 0xfd, 0xe8], NEXT_HOP],
                NLRI,
            ),
            Some(TreatAsWithdraw),
            &[3, 11, 0x40, 2, 4, 2, 2, 0xfd, 0xe8],
            Some(2),
        ),
        row(
            "AS_PATH with AS 0 (RFC 7607)",
            message(&[], &[ORIGIN, &[0x40, 2, 4, 2, 1, 0, 0], NEXT_HOP], NLRI),
            Some(TreatAsWithdraw),
            &[3, 11, 0x40, 2, 4, 2, 1, 0, 0],
            Some(2),
        ),
        // §7.3 - §7.5
        row(
            "NEXT_HOP length 5",
            message(&[], &[ORIGIN, AS_PATH2, &[0x40, 3, 5, 1, 2, 3, 4, 5]], NLRI),
            Some(TreatAsWithdraw),
            &[3, 5, 0x40, 3, 5, 1, 2, 3, 4, 5],
            Some(3),
        ),
        row(
            "MED length 3",
            with_wellknown(&[0x80, 4, 3, 0, 0, 1]),
            Some(TreatAsWithdraw),
            &[3, 5, 0x80, 4, 3, 0, 0, 1],
            Some(4),
        ),
        row(
            "LOCAL_PREF length 2 (iBGP)",
            with_wellknown(&[0x40, 5, 2, 0, 100]),
            Some(TreatAsWithdraw),
            &[3, 5, 0x40, 5, 2, 0, 100],
            Some(5),
        ),
        Row {
            cx: ebgp,
            ..row(
                "LOCAL_PREF from an eBGP peer",
                with_wellknown(&[0x40, 5, 4, 0, 0, 0, 100]),
                Some(AttributeDiscard),
                &[3, 0, 0x40, 5, 4, 0, 0, 0, 100],
                Some(5),
            )
        },
        // §7.6, §7.7, RFC 7607
        row(
            "ATOMIC_AGGREGATE length 1",
            with_wellknown(&[0x40, 6, 1, 0]),
            Some(AttributeDiscard),
            &[3, 5, 0x40, 6, 1, 0],
            Some(6),
        ),
        row(
            "AGGREGATOR length 5",
            with_wellknown(&[0xc0, 7, 5, 1, 2, 3, 4, 5]),
            Some(AttributeDiscard),
            &[3, 5, 0xc0, 7, 5, 1, 2, 3, 4, 5],
            Some(7),
        ),
        row(
            "AGGREGATOR AS 0",
            with_wellknown(&[0xc0, 7, 6, 0, 0, 198, 18, 0, 1]),
            Some(AttributeDiscard),
            &[3, 9, 0xc0, 7, 6, 0, 0, 198, 18, 0, 1],
            Some(7),
        ),
        // §7.8, §7.9, §7.14, RFC 8092 §6
        row(
            "COMMUNITIES length 3",
            with_wellknown(&[0xc0, 8, 3, 1, 2, 3]),
            Some(TreatAsWithdraw),
            &[3, 5, 0xc0, 8, 3, 1, 2, 3],
            Some(8),
        ),
        row(
            "COMMUNITIES length 0",
            with_wellknown(&[0xc0, 8, 0]),
            Some(TreatAsWithdraw),
            &[3, 5, 0xc0, 8, 0],
            Some(8),
        ),
        row(
            "ORIGINATOR_ID length 3",
            with_wellknown(&[0x80, 9, 3, 1, 2, 3]),
            Some(TreatAsWithdraw),
            &[3, 5, 0x80, 9, 3, 1, 2, 3],
            Some(9),
        ),
        row(
            "CLUSTER_LIST length 5",
            with_wellknown(&[0x80, 10, 5, 1, 2, 3, 4, 5]),
            Some(TreatAsWithdraw),
            &[3, 5, 0x80, 10, 5, 1, 2, 3, 4, 5],
            Some(10),
        ),
        row(
            "EXTENDED_COMMUNITIES length 7",
            with_wellknown(&[0xc0, 16, 7, 0, 2, 0, 0, 0, 0, 5]),
            Some(TreatAsWithdraw),
            &[3, 5, 0xc0, 16, 7, 0, 2, 0, 0, 0, 0, 5],
            Some(16),
        ),
        row(
            "LARGE_COMMUNITIES length 13",
            with_wellknown(&[0xc0, 32, 13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 4]),
            Some(TreatAsWithdraw),
            &[3, 5, 0xc0, 32, 13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 4],
            Some(32),
        ),
        // RFC 6793 §6
        row(
            "AS4_PATH malformed",
            with_wellknown(&[0xc0, 17, 2, 2, 0]),
            Some(AttributeDiscard),
            &[3, 11, 0xc0, 17, 2, 2, 0],
            Some(17),
        ),
        row(
            "AS4_AGGREGATOR length 6",
            with_wellknown(&[0xc0, 18, 6, 0, 1, 198, 18, 0, 1]),
            Some(AttributeDiscard),
            &[3, 5, 0xc0, 18, 6, 0, 1, 198, 18, 0, 1],
            Some(18),
        ),
        Row {
            cx: ibgp4.clone(),
            ..row(
                "AS4_PATH from a 4-octet AS peer",
                message(
                    &[],
                    &[
                        ORIGIN,
                        &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8],
                        NEXT_HOP,
                        &[0xc0, 17, 6, 2, 1, 0, 0, 0xfd, 0xe8],
                    ],
                    NLRI,
                ),
                Some(AttributeDiscard),
                &[3, 9, 0xc0, 17, 6, 2, 1, 0, 0, 0xfd, 0xe8],
                Some(17),
            )
        },
        // §3 (c): attribute flags
        row(
            "ORIGIN flagged optional",
            message(&[], &[&[0xc0, 1, 1, 0], AS_PATH2, NEXT_HOP], NLRI),
            Some(TreatAsWithdraw),
            &[3, 4, 0xc0, 1, 1, 0],
            Some(1),
        ),
        row(
            "COMMUNITIES flagged non-transitive",
            with_wellknown(&[0x80, 8, 4, 0xff, 0xff, 0xff, 1]),
            Some(TreatAsWithdraw),
            &[3, 4, 0x80, 8, 4, 0xff, 0xff, 0xff, 1],
            Some(8),
        ),
        // §3 (g): repeated attributes
        row(
            "ORIGIN repeated",
            message(&[], &[ORIGIN, AS_PATH2, NEXT_HOP, &[0x40, 1, 1, 2]], NLRI),
            Some(AttributeDiscard),
            &[3, 1, 0x40, 1, 1, 2],
            Some(1),
        ),
        row(
            "MP_REACH_NLRI repeated",
            message(&[], &[ORIGIN, AS_PATH2, MP_REACH_V6, MP_REACH_V6], &[]),
            Some(SessionReset),
            &[
                3, 1, 0x80, 14, 28, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 1, 0, 48, 0x20, 1, 0x0d, 0xb8, 0, 0x64,
            ],
            Some(14),
        ),
        // §3 (d): missing well-known attributes
        row(
            "ORIGIN missing",
            message(&[], &[AS_PATH2, NEXT_HOP], NLRI),
            Some(TreatAsWithdraw),
            &[3, 3, 1],
            None,
        ),
        row(
            "AS_PATH missing (MP_REACH only)",
            message(&[], &[ORIGIN, MP_REACH_V6], &[]),
            Some(TreatAsWithdraw),
            &[3, 3, 2],
            None,
        ),
        row(
            "NEXT_HOP missing with NLRI",
            message(&[], &[ORIGIN, AS_PATH2], NLRI),
            Some(TreatAsWithdraw),
            &[3, 3, 3],
            None,
        ),
        row(
            "NEXT_HOP not needed for MP_REACH only",
            message(&[], &[MP_REACH_V6, ORIGIN, AS_PATH2], &[]),
            None,
            &[],
            None,
        ),
        // §4: attribute lengths against Total Path Attribute Length
        row(
            "attribute overruns the attribute field",
            message(
                &[],
                &[ORIGIN, AS_PATH2, NEXT_HOP, &[0xc0, 8, 8, 1, 2, 3, 4]],
                NLRI,
            ),
            Some(TreatAsWithdraw),
            &[3, 1, 0xc0, 8, 8, 1, 2, 3, 4],
            Some(8),
        ),
        row(
            "fewer than 3 octets left",
            message(&[], &[ORIGIN, AS_PATH2, NEXT_HOP, &[0xc0, 8]], NLRI),
            Some(TreatAsWithdraw),
            &[3, 1, 0xc0, 8],
            None,
        ),
        // session reset cases
        row(
            "unrecognized well-known attribute",
            with_wellknown(&[0x40, 99, 1, 7]),
            Some(SessionReset),
            &[3, 2, 0x40, 99, 1, 7],
            Some(99),
        ),
        row(
            "unknown optional non-transitive kept",
            with_wellknown(&[0x80, 99, 1, 7]),
            None,
            &[],
            None,
        ),
        row(
            "MP_REACH_NLRI next hop length 5",
            message(
                &[],
                &[
                    ORIGIN,
                    AS_PATH2,
                    &[0x80, 14, 11, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0, 0],
                ],
                &[],
            ),
            Some(SessionReset),
            &[3, 9, 0x80, 14, 11, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0, 0],
            Some(14),
        ),
        row(
            "MP_REACH_NLRI shorter than 5",
            message(&[], &[ORIGIN, AS_PATH2, &[0x80, 14, 3, 0, 2, 1]], &[]),
            Some(SessionReset),
            &[3, 9, 0x80, 14, 3, 0, 2, 1],
            Some(14),
        ),
        row(
            "MP_REACH_NLRI prefix length 129",
            message(
                &[],
                &[
                    ORIGIN,
                    AS_PATH2,
                    &[
                        0x80, 14, 22, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, 1, 0, 129,
                    ],
                ],
                &[],
            ),
            Some(SessionReset),
            &[
                3, 9, 0x80, 14, 22, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 1, 0, 129,
            ],
            Some(14),
        ),
        row(
            "MP_REACH_NLRI IPv6 next hop for IPv4 without extended next hop",
            message(
                &[],
                &[
                    ORIGIN,
                    AS_PATH2,
                    &[
                        0x80, 14, 25, 0, 1, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, 1, 0, 24, 198, 18, 64,
                    ],
                ],
                &[],
            ),
            Some(SessionReset),
            &[
                3, 9, 0x80, 14, 25, 0, 1, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 1, 0, 24, 198, 18, 64,
            ],
            Some(14),
        ),
        row(
            "MP_UNREACH_NLRI shorter than 3",
            message(&[], &[&[0x80, 15, 2, 0, 2]], &[]),
            Some(SessionReset),
            &[3, 9, 0x80, 15, 2, 0, 2],
            Some(15),
        ),
        row(
            "NLRI prefix length 33",
            message(&[], &[ORIGIN, AS_PATH2, NEXT_HOP], &[33, 1, 2, 3, 4, 5]),
            Some(SessionReset),
            &[3, 10],
            None,
        ),
        row(
            "NLRI prefix overruns the message",
            message(&[], &[ORIGIN, AS_PATH2, NEXT_HOP], &[24, 198, 18]),
            Some(SessionReset),
            &[3, 10],
            None,
        ),
        row(
            "withdrawn prefix length 40",
            message(&[40, 1, 2, 3, 4, 5], &[], &[]),
            Some(SessionReset),
            &[3, 10],
            None,
        ),
        // the strongest of several actions wins (§3 (j))
        row(
            "discard + treat-as-withdraw",
            with_wellknown(&[0x40, 6, 1, 0, 0x80, 4, 1, 0]),
            Some(TreatAsWithdraw),
            &[3, 5, 0x80, 4, 1, 0],
            Some(4),
        ),
    ];
    // lengths inconsistent with the message (RFC 4271 §6.3): session reset
    let mut m = with_wellknown(&[]);
    m[19..21].copy_from_slice(&[0, 200]);
    v.push(row(
        "withdrawn routes length overruns the message",
        m,
        Some(ErrorAction::SessionReset),
        &[3, 1],
        None,
    ));
    let mut m = with_wellknown(&[]);
    m[21..23].copy_from_slice(&[0, 200]);
    v.push(row(
        "total path attribute length overruns the message",
        m,
        Some(ErrorAction::SessionReset),
        &[3, 1],
        None,
    ));
    v
}
