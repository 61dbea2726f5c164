//! Removing what IPVS mode left (upstream ipvs `CleanupLeftovers`): run by `--cleanup` and
//! when kube-proxy-rs starts in iptables or nftables mode on a node IPVS mode ran on.
//!
//! ```text
//!   leftovers()  kube-ipvs0 exists | an ipset of ours | a chain only IPVS mode creates
//!   cleanup()    1. rules:  IPVS (and iptables) mode's jump rules -D, then their chains
//!                           flushed and -X (one restore per table), every family/backend
//!                2. ipsets: `destroy` KUBE-… / KUBE-6-… (a set iptables still uses
//!                           cannot be destroyed, so after the rules)
//!                3. IPVS:   every virtual service IPVS mode owns -D (all but fwmark ones and
//!                           --ipvs-exclude-cidrs, as its sync treats them)
//!                4. link:   ip link del kube-ipvs0 (the VIPs go with it)
//! ```
//! Upstream flushes the whole IPVS table (`ipvs.Flush()`) and destroys only the IPv4 set
//! names; this keeps what IPVS mode's own sync would keep and destroys both families' sets.
//! Each step runs even when an earlier one failed; the failures are returned with what was
//! done.

use std::collections::BTreeSet;

use dataplane::ipvs::ServiceKey;
use ipnet::IpNet;

use super::diff::IpvsOp;
use super::sets::parse_save;
use super::{IpvsError, IpvsKernel, SetWriter, VipLink};
use crate::apply::{
    ApplyError, Cleanup, RuleWriter, cleanup_chains, declared_chains, is_our_chain,
};
use crate::render::iptables::JUMP_RULES;
use crate::render::ipvs::{FILTER_CHAINS, NAT_CHAINS, SetName, jump_rules};

/// Chains no other mode creates: finding one means IPVS mode ran here (upstream's too).
pub const IPVS_ONLY_CHAINS: [&str; 5] = [
    "KUBE-NODE-PORT",
    "KUBE-LOAD-BALANCER",
    "KUBE-SOURCE-RANGES-FIREWALL",
    "KUBE-IPVS-FILTER",
    "KUBE-IPVS-OUT-FILTER",
];

/// Whether IPVS mode creates a chain of this name (nat or filter).
pub fn is_ipvs_chain(name: &str) -> bool {
    NAT_CHAINS.contains(&name) || FILTER_CHAINS.contains(&name)
}

/// The names of IPVS mode's ipsets, both families (`KUBE-CLUSTER-IP`, `KUBE-6-CLUSTER-IP`, …).
pub fn set_names() -> BTreeSet<String> {
    SetName::ALL
        .iter()
        .flat_map(|s| [s.name(dataplane::Family::V4), s.name(dataplane::Family::V6)])
        .collect()
}

/// Removes IPVS mode's jump rules and chains from one family's iptables, with iptables
/// mode's (they share `KUBE-SERVICES`, `KUBE-MARK-MASQ`, …, and a per-service chain of
/// iptables mode may still jump to one of them): `iptables -D` of each jump, then every
/// chain of either mode flushed and deleted. The next sync of the mode that starts writes
/// its own again.
pub fn cleanup_rules(w: &mut dyn RuleWriter) -> Result<Cleanup, ApplyError> {
    let jumps = jump_rules().chain(JUMP_RULES.iter());
    cleanup_chains(w, jumps, |c| is_ipvs_chain(c) || is_our_chain(c))
}

/// One failed step of [`cleanup`].
#[derive(Debug, thiserror::Error)]
pub enum IpvsCleanupError {
    /// Removing the helper rules of one family/backend.
    #[error("{writer} rules: {source}")]
    Rules {
        /// The writer (`IPv4 nft`, …).
        writer: String,
        /// Its error.
        source: ApplyError,
    },
    /// The ipsets, the IPVS table or `kube-ipvs0`.
    #[error("{step}: {source}")]
    Kernel {
        /// `ipset destroy`, `ipvsadm -D`, `ip link del kube-ipvs0`, …
        step: &'static str,
        /// The error.
        source: IpvsError,
    },
}

/// What [`cleanup`] removed, and what failed.
#[derive(Debug, Default)]
pub struct IpvsCleanup {
    /// Per rule writer (as named by the caller): jump rules and chains removed.
    pub rules: Vec<(String, Cleanup)>,
    /// ipsets destroyed.
    pub sets: Vec<String>,
    /// Virtual services deleted.
    pub services: Vec<ServiceKey>,
    /// `kube-ipvs0` was deleted.
    pub link: bool,
    /// The steps that failed (the others ran all the same).
    pub errors: Vec<IpvsCleanupError>,
}

impl IpvsCleanup {
    /// Nothing was removed and nothing failed.
    pub fn is_empty(&self) -> bool {
        self.rules
            .iter()
            .all(|(_, c)| c.jump_rules == 0 && c.chains.is_empty())
            && self.sets.is_empty()
            && self.services.is_empty()
            && !self.link
            && self.errors.is_empty()
    }
}

/// Whether IPVS mode left something here: `kube-ipvs0`, one of its ipsets, or a chain only
/// it creates (in any of `rules`). Errors count as "nothing found" for that piece.
pub fn leftovers(
    link: &mut dyn VipLink,
    sets: &mut dyn SetWriter,
    rules: &mut [(String, &mut dyn RuleWriter)],
) -> bool {
    if link.exists().unwrap_or(false) {
        return true;
    }
    let ours = set_names();
    if sets
        .save()
        .is_ok_and(|s| parse_save(&s).keys().any(|n| ours.contains(n)))
    {
        return true;
    }
    rules.iter_mut().any(|(_, w)| {
        ["nat", "filter"].iter().any(|t| {
            w.save(t).is_ok_and(|s| {
                declared_chains(&s)
                    .iter()
                    .any(|c| IPVS_ONLY_CHAINS.contains(c))
            })
        })
    })
}

/// Removes everything IPVS mode creates (see the module docs); `kernel` is `None` when the
/// IPVS table cannot be opened (no `ip_vs`: no virtual services to remove), `exclude` is
/// `--ipvs-exclude-cidrs`.
pub fn cleanup(
    kernel: Option<&mut dyn IpvsKernel>,
    link: &mut dyn VipLink,
    sets: &mut dyn SetWriter,
    rules: &mut [(String, &mut dyn RuleWriter)],
    exclude: &[IpNet],
) -> IpvsCleanup {
    let mut done = IpvsCleanup::default();
    for (name, w) in rules.iter_mut() {
        match cleanup_rules(&mut **w) {
            Ok(c) => done.rules.push((name.clone(), c)),
            Err(source) => done.errors.push(IpvsCleanupError::Rules {
                writer: name.clone(),
                source,
            }),
        }
    }

    let ours = set_names();
    match sets.save() {
        Ok(saved) => {
            let found: Vec<String> = parse_save(&saved)
                .into_keys()
                .filter(|n| ours.contains(n))
                .collect();
            if !found.is_empty() {
                let input: String = found.iter().map(|n| format!("destroy {n}\n")).collect();
                match sets.restore(&input) {
                    Ok(()) => done.sets = found,
                    Err(source) => done.errors.push(IpvsCleanupError::Kernel {
                        step: "ipset destroy",
                        source,
                    }),
                }
            }
        }
        // No ipset program: no sets either.
        Err(IpvsError::Spawn { .. }) => {}
        Err(source) => done.errors.push(IpvsCleanupError::Kernel {
            step: "ipset save",
            source,
        }),
    }

    if let Some(kernel) = kernel {
        match kernel.dump() {
            Ok(table) => {
                for s in &table.services {
                    let ServiceKey::Addr { addr, .. } = &s.key else {
                        continue;
                    };
                    if exclude.iter().any(|c| c.contains(addr)) {
                        continue;
                    }
                    match kernel.apply(&IpvsOp::DelService(s.key.clone())) {
                        Ok(()) => done.services.push(s.key.clone()),
                        Err(source) => done.errors.push(IpvsCleanupError::Kernel {
                            step: "ipvsadm -D",
                            source,
                        }),
                    }
                }
            }
            Err(source) => done.errors.push(IpvsCleanupError::Kernel {
                step: "ipvs dump",
                source,
            }),
        }
    }

    match link.delete() {
        Ok(deleted) => done.link = deleted,
        Err(source) => done.errors.push(IpvsCleanupError::Kernel {
            step: "ip link del kube-ipvs0",
            source,
        }),
    }
    done
}
