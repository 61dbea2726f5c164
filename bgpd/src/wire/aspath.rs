//! AS_PATH / AS4_PATH (RFC 4271 §4.3, RFC 5065, RFC 6793) and the RFC 6793 conversions between
//! 4-octet paths and a 2-octet peer's AS_PATH + AS4_PATH.
//!
//! ```text
//!   segment: type(1) count(1) ASN(2|4) * count
//!   to a 2-octet peer:   AS_PATH [65001 4200000001]  ->  AS_PATH [65001 23456] + AS4_PATH [65001 4200000001]
//!   from a 2-octet peer: AS_PATH [65002 23456 23456] + AS4_PATH [4200000001 4200000002]
//!                        -> [65002 4200000001 4200000002]   (RFC 6793 §4.2.3)
//! ```

use std::fmt;

use bytes::{BufMut, BytesMut};

/// AS_TRANS, the 2-octet stand-in for a 4-octet AS number (RFC 6793 §9).
pub const AS_TRANS: u32 = 23456;

/// AS path segment type (RFC 4271 §4.3, RFC 5065 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentType {
    /// 1: unordered set of ASes a route in an aggregate traversed; counts as one AS.
    Set,
    /// 2: ordered sequence, nearest AS first.
    Sequence,
    /// 3: confederation member ASes, ordered; counts as zero.
    ConfedSequence,
    /// 4: confederation member ASes, unordered; counts as zero.
    ConfedSet,
}

impl SegmentType {
    /// From the wire value; `None` for undefined types (malformed, RFC 7606 §7.2).
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Set,
            2 => Self::Sequence,
            3 => Self::ConfedSequence,
            4 => Self::ConfedSet,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Set => 1,
            Self::Sequence => 2,
            Self::ConfedSequence => 3,
            Self::ConfedSet => 4,
        }
    }

    fn is_confed(self) -> bool {
        matches!(self, Self::ConfedSequence | Self::ConfedSet)
    }
}

/// One path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Set, sequence or a confederation kind.
    pub kind: SegmentType,
    /// The AS numbers (always 4-octet values in memory).
    pub asns: Vec<u32>,
}

/// An AS_PATH or AS4_PATH value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    /// Segments in wire order.
    pub segments: Vec<Segment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty path if `asns` is empty).
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![Segment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Path length for the decision process (RFC 4271 §9.1.2.2): an AS_SET counts 1, confederation
    /// segments count 0.
    pub fn len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                _ => 0,
            })
            .sum()
    }

    /// No segments.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The first AS of the first AS_SEQUENCE (the neighbour AS on eBGP, RFC 4271 §6.3).
    pub fn first_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(Segment {
                kind: SegmentType::Sequence,
                asns,
            }) => asns.first().copied(),
            _ => None,
        }
    }

    /// Whether `asn` appears anywhere (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Decode segments of 2- or 4-octet ASNs (RFC 7606 §7.2: undefined type, zero-length segment,
    /// overrun or a lone trailing octet are malformed; RFC 7607: AS 0 is malformed).
    pub(crate) fn decode(buf: &[u8], four_octet: bool) -> Result<Self, &'static str> {
        let width = if four_octet { 4 } else { 2 };
        let mut segments = Vec::new();
        let mut i = 0;
        while i < buf.len() {
            let (Some(&t), Some(&n)) = (buf.get(i), buf.get(i + 1)) else {
                return Err("truncated segment header");
            };
            let kind = SegmentType::from_u8(t).ok_or("undefined segment type")?;
            if n == 0 {
                return Err("zero-length segment");
            }
            i += 2;
            let bytes = buf
                .get(i..i + n as usize * width)
                .ok_or("segment overruns the attribute")?;
            i += bytes.len();
            let asns: Vec<u32> = bytes
                .chunks_exact(width)
                .map(|c| match c {
                    [a, b] => u16::from_be_bytes([*a, *b]) as u32,
                    [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
                    _ => 0,
                })
                .collect();
            if asns.contains(&0) {
                return Err("AS 0 in path");
            }
            segments.push(Segment { kind, asns });
        }
        Ok(Self { segments })
    }

    /// Encode with 2- or 4-octet ASNs. 4-octet values toward a 2-octet peer become AS_TRANS
    /// (pair with [`AsPath::split_for_two_octet`]); segments longer than 255 ASNs are split.
    pub(crate) fn encode(&self, four_octet: bool, out: &mut BytesMut) {
        for s in &self.segments {
            for chunk in s.asns.chunks(255) {
                out.put_u8(s.kind.to_u8());
                out.put_u8(chunk.len() as u8);
                for &a in chunk {
                    if four_octet {
                        out.put_u32(a);
                    } else {
                        out.put_u16(u16::try_from(a).unwrap_or(AS_TRANS as u16));
                    }
                }
            }
        }
    }

    /// RFC 6793 §4.2.2: the AS_PATH to send to a 2-octet peer (4-octet ASNs as AS_TRANS) and, if
    /// any ASN needed AS_TRANS, the AS4_PATH to send beside it (without confederation segments).
    pub fn split_for_two_octet(&self) -> (AsPath, Option<AsPath>) {
        let two = AsPath {
            segments: self
                .segments
                .iter()
                .map(|s| Segment {
                    kind: s.kind,
                    asns: s
                        .asns
                        .iter()
                        .map(|&a| if a > 0xffff { AS_TRANS } else { a })
                        .collect(),
                })
                .collect(),
        };
        let needs_as4 = self
            .segments
            .iter()
            .any(|s| s.asns.iter().any(|&a| a > 0xffff));
        let as4 = needs_as4.then(|| AsPath {
            segments: self
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        });
        (two, as4)
    }

    /// RFC 6793 §4.2.3: rebuild the 4-octet path from a 2-octet peer's AS_PATH and AS4_PATH.
    ///
    /// Confederation segments in AS4_PATH are ignored (RFC 6793 §6). If AS_PATH holds fewer ASes
    /// than AS4_PATH, AS4_PATH is ignored. Otherwise the leading ASes of AS_PATH (with any
    /// confederation segments among them) are kept, AS4_PATH is appended, and a sequence split at
    /// the seam is joined again.
    pub fn merge_as4(as_path: &AsPath, as4_path: &AsPath) -> AsPath {
        let as4 = AsPath {
            segments: as4_path
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        };
        let (n_path, n_as4) = (as_path.len(), as4.len());
        if n_path < n_as4 {
            return as_path.clone();
        }
        let mut take = n_path - n_as4;
        let mut out: Vec<Segment> = Vec::new();
        for s in &as_path.segments {
            match s.kind {
                _ if s.kind.is_confed() => {
                    // leading, or adjacent to a prepended segment
                    if take > 0 || out.is_empty() {
                        out.push(s.clone());
                    } else {
                        break;
                    }
                }
                _ if take == 0 => break,
                SegmentType::Set => {
                    out.push(s.clone());
                    take -= 1;
                }
                _ => {
                    let k = take.min(s.asns.len());
                    out.push(Segment {
                        kind: s.kind,
                        asns: s.asns[..k].to_vec(),
                    });
                    take -= k;
                }
            }
        }
        let mut rest = as4.segments.into_iter();
        if let (Some(last), Some(first)) = (out.last_mut(), rest.as_slice().first())
            && last.kind == SegmentType::Sequence
            && first.kind == SegmentType::Sequence
            && last.asns.len() + first.asns.len() <= 255
        {
            last.asns.extend_from_slice(&first.asns);
            rest.next();
        }
        out.extend(rest);
        AsPath { segments: out }
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close) = match s.kind {
                SegmentType::Sequence => ("", ""),
                SegmentType::Set => ("{", "}"),
                SegmentType::ConfedSequence => ("(", ")"),
                SegmentType::ConfedSet => ("[", "]"),
            };
            f.write_str(open)?;
            for (i, a) in s.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(if matches!(s.kind, SegmentType::Sequence) {
                        " "
                    } else {
                        ","
                    })?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(kind: SegmentType, asns: &[u32]) -> Segment {
        Segment {
            kind,
            asns: asns.to_vec(),
        }
    }

    #[test]
    fn decode_rejects_rfc7606_malformations() {
        assert_eq!(
            AsPath::decode(&[5, 1, 0, 1], false),
            Err("undefined segment type")
        );
        assert_eq!(AsPath::decode(&[2, 0], false), Err("zero-length segment"));
        assert_eq!(
            AsPath::decode(&[2, 2, 0, 1], false),
            Err("segment overruns the attribute")
        );
        assert_eq!(
            AsPath::decode(&[2, 1, 0, 1, 2], false),
            Err("truncated segment header")
        );
        assert_eq!(AsPath::decode(&[2, 1, 0, 0], false), Err("AS 0 in path"));
        assert_eq!(AsPath::decode(&[], true), Ok(AsPath::default()));
    }

    #[test]
    fn split_uses_as_trans_and_drops_confed_from_as4_path() {
        let p = AsPath {
            segments: vec![
                seg(SegmentType::ConfedSequence, &[65000]),
                seg(SegmentType::Sequence, &[65001, 4200000001]),
                seg(SegmentType::Set, &[4200000002, 65003]),
            ],
        };
        let (two, as4) = p.split_for_two_octet();
        assert_eq!(two.to_string(), "(65000) 65001 23456 {23456,65003}");
        assert_eq!(
            as4.unwrap().to_string(),
            "65001 4200000001 {4200000002,65003}"
        );
        assert_eq!(
            AsPath::sequence([65001, 65002]).split_for_two_octet().1,
            None
        );
    }

    #[test]
    fn merge_follows_rfc6793_4_2_3() {
        // a NEW speaker behind an OLD one: the OLD one prepended 65002 in front of AS_TRANS
        let as_path = AsPath::sequence([65002, AS_TRANS, 65010, AS_TRANS]);
        let as4 = AsPath::sequence([4200000001, 65010, 4200000002]);
        assert_eq!(
            AsPath::merge_as4(&as_path, &as4).to_string(),
            "65002 4200000001 65010 4200000002"
        );
        // AS4_PATH longer than AS_PATH: ignored
        let longer = AsPath::sequence([1, 2, 3, 4, 5]);
        assert_eq!(AsPath::merge_as4(&as_path, &longer), as_path);
        // leading confed segment is kept, set counts as one
        let as_path = AsPath {
            segments: vec![
                seg(SegmentType::ConfedSequence, &[64512]),
                seg(SegmentType::Set, &[65005, 65006]),
                seg(SegmentType::Sequence, &[AS_TRANS]),
            ],
        };
        let as4 = AsPath::sequence([4200000009]);
        assert_eq!(
            AsPath::merge_as4(&as_path, &as4).to_string(),
            "(64512) {65005,65006} 4200000009"
        );
        // split then merge is the identity for paths without confed segments
        let p = AsPath {
            segments: vec![
                seg(SegmentType::Sequence, &[65001, 4200000001, 65002]),
                seg(SegmentType::Set, &[4200000002, 7]),
            ],
        };
        let (two, as4) = p.split_for_two_octet();
        assert_eq!(AsPath::merge_as4(&two, &as4.unwrap()), p);
    }

    #[test]
    fn encode_two_octet_and_long_segments() {
        let p = AsPath::sequence((1..=300).map(|a| a + 70000));
        let mut out = BytesMut::new();
        p.encode(false, &mut out);
        assert_eq!(out.len(), 2 + 255 * 2 + 2 + 45 * 2);
        assert_eq!(&out[..4], &[2, 255, 0x5b, 0xa0]);
        let back = AsPath::decode(&out, false).unwrap();
        assert_eq!(back.len(), 300);
    }
}
