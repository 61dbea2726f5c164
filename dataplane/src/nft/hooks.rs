//! Base chains per hook, in the order the kernel runs them, and nft's standard priority names.
//!
//! ```text
//!   Ruleset::chains_for_hook(Family::V4, &Hook::Prerouting)
//!     -> [ raw -300 (inet filter) , dstnat - 10 (ip kube-proxy), dstnat (ip kube-proxy), … ]
//!   priority_text(Ip, prerouting, -110) -> "dstnat - 10"      (as `nft list` prints it)
//! ```
//! A packet of one family passes the base chains of its own family's tables (`ip` for IPv4,
//! `ip6` for IPv6) and of every `inet` table, merged by priority; `arp`, `bridge` and `netdev`
//! tables hook elsewhere and are not included.

use super::model::{BaseChain, Chain, Hook, NftFamily, Ruleset, Table};
use crate::packet::Family;

/// `priority raw` (NF_IP_PRI_RAW).
pub const PRIORITY_RAW: i32 = -300;
/// `priority mangle` (NF_IP_PRI_MANGLE).
pub const PRIORITY_MANGLE: i32 = -150;
/// `priority dstnat` (NF_IP_PRI_NAT_DST), valid at prerouting.
pub const PRIORITY_DSTNAT: i32 = -100;
/// `priority filter` (NF_IP_PRI_FILTER).
pub const PRIORITY_FILTER: i32 = 0;
/// `priority security` (NF_IP_PRI_SECURITY).
pub const PRIORITY_SECURITY: i32 = 50;
/// `priority srcnat` (NF_IP_PRI_NAT_SRC), valid at postrouting.
pub const PRIORITY_SRCNAT: i32 = 100;

/// The standard priority names of a family (`man nft`, "Standard priority names"), with the
/// hooks each may be used at (`None`: any hook).
fn standard(family: NftFamily) -> &'static [(&'static str, i32, Option<&'static str>)] {
    match family {
        NftFamily::Ip | NftFamily::Ip6 | NftFamily::Inet => &[
            ("raw", PRIORITY_RAW, None),
            ("mangle", PRIORITY_MANGLE, None),
            ("dstnat", PRIORITY_DSTNAT, Some("prerouting")),
            ("filter", PRIORITY_FILTER, None),
            ("security", PRIORITY_SECURITY, None),
            ("srcnat", PRIORITY_SRCNAT, Some("postrouting")),
        ],
        NftFamily::Bridge => &[
            ("dstnat", -300, Some("prerouting")),
            ("filter", -200, None),
            ("out", 100, Some("output")),
            ("srcnat", 300, Some("postrouting")),
        ],
        NftFamily::Arp | NftFamily::Netdev => &[("filter", 0, None)],
    }
}

/// The value of a standard priority name in `family` (`dstnat` → -100; in `bridge`, -300).
pub fn standard_priority(family: NftFamily, name: &str) -> Option<i32> {
    standard(family)
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, v, _)| *v)
}

/// A priority as `nft list` prints it: a standard name valid at the hook, plus or minus an
/// offset of at most 10 (`dstnat - 10`, `filter + 5`), else the number (`-110` at input).
/// Measured with nft 1.0.6: see `scripts/fixtures/capture-nft.sh`.
pub fn priority_text(family: NftFamily, hook: &Hook, prio: i32) -> String {
    for (name, base, only) in standard(family) {
        if only.is_some_and(|h| h != hook.as_str()) {
            continue;
        }
        let off = i64::from(prio) - i64::from(*base);
        if (-10..=10).contains(&off) {
            return match off {
                0 => (*name).to_string(),
                o if o > 0 => format!("{name} + {o}"),
                o => format!("{name} - {}", -o),
            };
        }
    }
    prio.to_string()
}

/// A base chain attached to a hook, with its table.
#[derive(Debug, Clone, Copy)]
pub struct HookedChain<'a> {
    /// The table holding the chain (for its sets and its other chains).
    pub table: &'a Table,
    /// The chain.
    pub chain: &'a Chain,
    /// Its hook attachment.
    pub base: &'a BaseChain,
}

impl Ruleset {
    /// The base chains a packet of `family` passes at `hook`, in the order the kernel runs
    /// them: by priority, lowest first; equal priorities in dump order (the order the chains
    /// were registered). `ip`/`ip6` tables and `inet` tables are merged.
    pub fn chains_for_hook(&self, family: Family, hook: &Hook) -> Vec<HookedChain<'_>> {
        let own = match family {
            Family::V4 => NftFamily::Ip,
            Family::V6 => NftFamily::Ip6,
        };
        let mut out: Vec<HookedChain<'_>> = self
            .tables
            .iter()
            .filter(|t| t.family == own || t.family == NftFamily::Inet)
            .flat_map(|t| {
                t.chains.iter().filter_map(move |c| {
                    let base = c.base.as_ref()?;
                    (base.hook == *hook).then_some(HookedChain {
                        table: t,
                        chain: c,
                        base,
                    })
                })
            })
            .collect();
        out.sort_by_key(|h| h.base.prio); // stable: ties keep dump order
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_print_as_nft_1_0_6_does() {
        // Each case was read back from `nft list ruleset` after loading it.
        let cases: &[(NftFamily, Hook, i32, &str)] = &[
            (NftFamily::Ip, Hook::Prerouting, -110, "dstnat - 10"),
            (NftFamily::Ip, Hook::Input, -110, "-110"),
            (NftFamily::Ip, Hook::Output, -100, "-100"),
            (NftFamily::Ip, Hook::Output, -90, "-90"),
            (NftFamily::Ip, Hook::Postrouting, 100, "srcnat"),
            (NftFamily::Ip, Hook::Postrouting, 90, "srcnat - 10"),
            (NftFamily::Ip, Hook::Prerouting, 90, "90"),
            (NftFamily::Inet, Hook::Input, 5, "filter + 5"),
            (NftFamily::Ip, Hook::Input, 11, "11"),
            (NftFamily::Ip, Hook::Input, -310, "raw - 10"),
            (NftFamily::Ip, Hook::Input, -140, "mangle + 10"),
            (NftFamily::Ip, Hook::Input, 40, "security - 10"),
            (NftFamily::Bridge, Hook::Output, 100, "out"),
            (NftFamily::Bridge, Hook::Forward, -190, "filter + 10"),
            (NftFamily::Bridge, Hook::Forward, 0, "0"),
            (NftFamily::Netdev, Hook::Ingress, -300, "-300"),
            (NftFamily::Arp, Hook::Output, -5, "filter - 5"),
        ];
        for (fam, hook, prio, want) in cases {
            assert_eq!(
                priority_text(*fam, hook, *prio),
                *want,
                "{fam} {hook} {prio}"
            );
        }
        assert_eq!(standard_priority(NftFamily::Inet, "srcnat"), Some(100));
        assert_eq!(standard_priority(NftFamily::Bridge, "dstnat"), Some(-300));
    }
}
