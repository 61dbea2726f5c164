//! The BGP decision process (RFC 4271 §9.1.2) with the step that decided kept as data, and the
//! multipath (ECMP) set.
//!
//! ```text
//!   candidates (one path per peer) ──decide(cands, opts)──> Decision {
//!       best, runner_up, reason: BestPathReason (step + the two values compared),
//!       multipath: [best, equal paths...] }
//!
//!   elimination, each step keeps only the most preferred of the survivors:
//!     1 LocalPref        highest (effective) LOCAL_PREF             §9.1.1, §9.1.2.1
//!     2 AsPathLength     shortest AS_PATH (AS_SET 1, confed 0)      §9.1.2.2 (a)
//!     3 Origin           lowest ORIGIN (IGP < EGP < INCOMPLETE)     §9.1.2.2 (b)
//!     4 Med              lowest MED within each neighbour AS        §9.1.2.2 (c)
//!                        (all together with always-compare-med; missing MED = 0)
//!     5 EbgpOverIbgp     eBGP-learned if any                        §9.1.2.2 (d)
//!       (IGP cost to the next hop: bgpd has no IGP, all equal)      §9.1.2.2 (e)
//!       ── the survivors here are the multipath candidates ──
//!     6 RouterId         lowest ORIGINATOR_ID or BGP identifier     §9.1.2.2 (f), RFC 4456 §9
//!     7 ClusterListLength shortest CLUSTER_LIST                     RFC 4456 §9
//!     8 PeerAddress      lowest peer address (then lowest peer id)  §9.1.2.2 (g)
//! ```
//!
//! Elimination over the whole set (rather than sorting with a pairwise comparison) is what the
//! RFC specifies: MED is only comparable within one neighbour AS, so a pairwise "better than"
//! is not transitive and a sort could depend on the order the paths arrived in. The result here
//! depends only on the set of candidates.
//!
//! The reason is the step at which the survivors became the best path alone, with the best
//! path's and the runner-up's values at that step; the runner-up is the best of the paths that
//! step removed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::attrs::RouteAttrs;
use super::{PeerId, PeerInfo};
use crate::wire::Origin;

/// Options of the decision process and multipath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RibOptions {
    /// Compare MED between paths from different neighbour ASes (FRR `bgp always-compare-med`,
    /// BIRD `med metric`). Off by default, as RFC 4271 §9.1.2.2 (c) specifies.
    pub always_compare_med: bool,
    /// Largest multipath set given to the FIB (FRR `maximum-paths`); 1 turns ECMP off. Default
    /// 8: dual-homed nodes are the norm and a single path was complaint E of the reference
    /// notes (kube-router installs only the best path).
    pub max_paths: u8,
    /// Allow paths from different neighbour ASes in one multipath set when everything through
    /// the IGP-cost step is equal, AS_PATH length included (FRR `bgp bestpath as-path
    /// multipath-relax`); needed when the two ToRs have different ASNs. Off by default: then
    /// members must share the best path's neighbour AS.
    pub multipath_relax: bool,
}

impl Default for RibOptions {
    fn default() -> Self {
        Self {
            always_compare_med: false,
            max_paths: 8,
            multipath_relax: false,
        }
    }
}

/// One path offered to the decision process.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The peer it was learned from.
    pub peer: PeerId,
    /// That peer.
    pub info: &'a PeerInfo,
    /// Its attributes.
    pub attrs: &'a RouteAttrs,
}

impl Candidate<'_> {
    fn as_path_len(&self) -> u32 {
        self.attrs.as_path.len() as u32
    }
    fn med(&self) -> u32 {
        // RFC 4271 §9.1.2.2 (c): a missing MED is the lowest possible value
        self.attrs.med.unwrap_or(0)
    }
    fn neighbour_as(&self) -> u32 {
        self.attrs.neighbour_as(self.info.local_as)
    }
    fn ebgp(&self) -> bool {
        self.info.is_ebgp()
    }
    fn router_id(&self) -> Ipv4Addr {
        self.attrs.originator_id.unwrap_or(self.info.router_id)
    }
    fn cluster_len(&self) -> u32 {
        self.attrs.cluster_list.len() as u32
    }
}

/// A step of the decision process (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DecisionStep {
    /// Highest LOCAL_PREF.
    LocalPref,
    /// Shortest AS_PATH.
    AsPathLength,
    /// Lowest ORIGIN.
    Origin,
    /// Lowest MED.
    Med,
    /// eBGP over iBGP.
    EbgpOverIbgp,
    /// Lowest BGP identifier / ORIGINATOR_ID.
    RouterId,
    /// Shortest CLUSTER_LIST.
    ClusterListLength,
    /// Lowest peer address.
    PeerAddress,
}

const STEPS: [DecisionStep; 8] = [
    DecisionStep::LocalPref,
    DecisionStep::AsPathLength,
    DecisionStep::Origin,
    DecisionStep::Med,
    DecisionStep::EbgpOverIbgp,
    DecisionStep::RouterId,
    DecisionStep::ClusterListLength,
    DecisionStep::PeerAddress,
];

/// Why the best path won: the deciding step and the values of the best path and the runner-up
/// at that step. Logs and `bgpd show routes PREFIX` print it ([`fmt::Display`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BestPathReason {
    /// There was no other candidate.
    OnlyPath,
    /// Higher LOCAL_PREF (RFC 4271 §9.1.2.1).
    LocalPref {
        /// The best path's value.
        best: u32,
        /// The runner-up's value.
        runner_up: u32,
    },
    /// Shorter AS_PATH (§9.1.2.2 (a)).
    AsPathLength {
        /// The best path's length.
        best: u32,
        /// The runner-up's length.
        runner_up: u32,
    },
    /// Lower ORIGIN (§9.1.2.2 (b)).
    Origin {
        /// The best path's origin.
        best: Origin,
        /// The runner-up's origin.
        runner_up: Origin,
    },
    /// Lower MED from the same neighbour AS, or from any with always-compare-med (§9.1.2.2 (c)).
    Med {
        /// The best path's MED (0 when absent).
        best: u32,
        /// The runner-up's MED.
        runner_up: u32,
    },
    /// Learned over eBGP, the runner-up over iBGP (§9.1.2.2 (d)).
    EbgpOverIbgp,
    /// Lower BGP identifier, or ORIGINATOR_ID when present (§9.1.2.2 (f), RFC 4456 §9).
    RouterId {
        /// The best path's identifier.
        best: Ipv4Addr,
        /// The runner-up's identifier.
        runner_up: Ipv4Addr,
    },
    /// Shorter CLUSTER_LIST (RFC 4456 §9).
    ClusterListLength {
        /// The best path's length.
        best: u32,
        /// The runner-up's length.
        runner_up: u32,
    },
    /// Lower peer address (§9.1.2.2 (g)).
    PeerAddress {
        /// The best path's peer.
        best: IpAddr,
        /// The runner-up's peer.
        runner_up: IpAddr,
    },
}

impl BestPathReason {
    /// The step, `None` for [`BestPathReason::OnlyPath`].
    pub fn step(&self) -> Option<DecisionStep> {
        Some(match self {
            Self::OnlyPath => return None,
            Self::LocalPref { .. } => DecisionStep::LocalPref,
            Self::AsPathLength { .. } => DecisionStep::AsPathLength,
            Self::Origin { .. } => DecisionStep::Origin,
            Self::Med { .. } => DecisionStep::Med,
            Self::EbgpOverIbgp => DecisionStep::EbgpOverIbgp,
            Self::RouterId { .. } => DecisionStep::RouterId,
            Self::ClusterListLength { .. } => DecisionStep::ClusterListLength,
            Self::PeerAddress { .. } => DecisionStep::PeerAddress,
        })
    }

    /// A short label for metrics (`only_path`, `local_pref`, ...).
    pub fn label(&self) -> &'static str {
        match self {
            Self::OnlyPath => "only_path",
            Self::LocalPref { .. } => "local_pref",
            Self::AsPathLength { .. } => "as_path_length",
            Self::Origin { .. } => "origin",
            Self::Med { .. } => "med",
            Self::EbgpOverIbgp => "ebgp_over_ibgp",
            Self::RouterId { .. } => "router_id",
            Self::ClusterListLength { .. } => "cluster_list_length",
            Self::PeerAddress { .. } => "peer_address",
        }
    }
}

/// ORIGIN as `show` prints it.
pub fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Igp => "IGP",
        Origin::Egp => "EGP",
        Origin::Incomplete => "incomplete",
    }
}

impl fmt::Display for BestPathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OnlyPath => f.write_str("only path"),
            Self::LocalPref { best, runner_up } => {
                write!(f, "higher LOCAL_PREF ({best} over {runner_up})")
            }
            Self::AsPathLength { best, runner_up } => {
                write!(f, "shorter AS_PATH ({best} over {runner_up})")
            }
            Self::Origin { best, runner_up } => write!(
                f,
                "lower ORIGIN ({} over {})",
                origin_name(*best),
                origin_name(*runner_up)
            ),
            Self::Med { best, runner_up } => write!(f, "lower MED ({best} over {runner_up})"),
            Self::EbgpOverIbgp => f.write_str("eBGP over iBGP"),
            Self::RouterId { best, runner_up } => {
                write!(f, "lower router ID ({best} over {runner_up})")
            }
            Self::ClusterListLength { best, runner_up } => {
                write!(f, "shorter CLUSTER_LIST ({best} over {runner_up})")
            }
            Self::PeerAddress { best, runner_up } => {
                write!(f, "lower peer address ({best} over {runner_up})")
            }
        }
    }
}

/// The outcome of the decision process over a candidate list (indices into it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The best path.
    pub best: usize,
    /// The best of the paths eliminated at the deciding step (`None` with one candidate).
    pub runner_up: Option<usize>,
    /// Why `best` won.
    pub reason: BestPathReason,
    /// The multipath set, best first, then the others in the order of the remaining
    /// tie-breaks; at most `max_paths` long, never empty.
    pub multipath: Vec<usize>,
}

/// Keep, among `set`, the candidates most preferred by `step`.
fn eliminate<'a>(step: DecisionStep, c: &[Candidate<'a>], set: &mut Vec<usize>, opts: &RibOptions) {
    fn keep_min<'a, K: Ord + Copy>(
        c: &[Candidate<'a>],
        set: &mut Vec<usize>,
        key: impl Fn(&Candidate<'a>) -> K,
    ) {
        if let Some(m) = set.iter().map(|&i| key(&c[i])).min() {
            set.retain(|&i| key(&c[i]) == m);
        }
    }
    match step {
        DecisionStep::LocalPref => keep_min(c, set, |x| std::cmp::Reverse(x.attrs.local_pref)),
        DecisionStep::AsPathLength => keep_min(c, set, Candidate::as_path_len),
        DecisionStep::Origin => keep_min(c, set, |x| x.attrs.origin),
        DecisionStep::Med if opts.always_compare_med => keep_min(c, set, Candidate::med),
        DecisionStep::Med => {
            // remove a route if another route from the same neighbour AS has a lower MED
            let snapshot = set.clone();
            set.retain(|&i| {
                let (asn, med) = (c[i].neighbour_as(), c[i].med());
                !snapshot
                    .iter()
                    .any(|&j| c[j].neighbour_as() == asn && c[j].med() < med)
            });
        }
        DecisionStep::EbgpOverIbgp => keep_min(c, set, |x| !x.ebgp()),
        DecisionStep::RouterId => keep_min(c, set, Candidate::router_id),
        DecisionStep::ClusterListLength => keep_min(c, set, Candidate::cluster_len),
        // the peer id makes the result unique even for two sessions to one address
        DecisionStep::PeerAddress => keep_min(c, set, |x| (x.info.address, x.peer)),
    }
}

struct Run {
    best: usize,
    /// The deciding step and the paths it removed.
    decided: Option<(DecisionStep, Vec<usize>)>,
    /// Survivors of the steps through the IGP cost (multipath candidates).
    pool: Vec<usize>,
}

fn run(c: &[Candidate], mut set: Vec<usize>, opts: &RibOptions) -> Run {
    let mut decided = None;
    let mut pool = None;
    for step in STEPS {
        if set.len() <= 1 {
            break;
        }
        let before = set.clone();
        eliminate(step, c, &mut set, opts);
        if set.len() == 1 {
            let removed = before.into_iter().filter(|i| *i != set[0]).collect();
            decided = Some((step, removed));
        }
        if step == DecisionStep::EbgpOverIbgp {
            pool = Some(set.clone());
        }
    }
    let best = set[0];
    Run {
        best,
        decided,
        pool: pool.unwrap_or_else(|| vec![best]),
    }
}

fn reason(step: DecisionStep, b: &Candidate, r: &Candidate) -> BestPathReason {
    match step {
        DecisionStep::LocalPref => BestPathReason::LocalPref {
            best: b.attrs.local_pref,
            runner_up: r.attrs.local_pref,
        },
        DecisionStep::AsPathLength => BestPathReason::AsPathLength {
            best: b.as_path_len(),
            runner_up: r.as_path_len(),
        },
        DecisionStep::Origin => BestPathReason::Origin {
            best: b.attrs.origin,
            runner_up: r.attrs.origin,
        },
        DecisionStep::Med => BestPathReason::Med {
            best: b.med(),
            runner_up: r.med(),
        },
        DecisionStep::EbgpOverIbgp => BestPathReason::EbgpOverIbgp,
        DecisionStep::RouterId => BestPathReason::RouterId {
            best: b.router_id(),
            runner_up: r.router_id(),
        },
        DecisionStep::ClusterListLength => BestPathReason::ClusterListLength {
            best: b.cluster_len(),
            runner_up: r.cluster_len(),
        },
        DecisionStep::PeerAddress => BestPathReason::PeerAddress {
            best: b.info.address,
            runner_up: r.info.address,
        },
    }
}

/// Run the decision process; `None` when there is no candidate.
pub fn decide(c: &[Candidate], opts: &RibOptions) -> Option<Decision> {
    match c.len() {
        0 => return None,
        1 => {
            return Some(Decision {
                best: 0,
                runner_up: None,
                reason: BestPathReason::OnlyPath,
                multipath: vec![0],
            });
        }
        _ => {}
    }
    let r = run(c, (0..c.len()).collect(), opts);
    let best = r.best;
    let (reason, runner_up) = match r.decided {
        Some((step, removed)) => {
            let ru = run(c, removed, opts).best;
            (reason(step, &c[best], &c[ru]), Some(ru))
        }
        // unreachable: the peer address step leaves one path; keep a total answer anyway
        None => (BestPathReason::OnlyPath, None),
    };
    let neighbour = c[best].neighbour_as();
    let mut multipath: Vec<usize> = r
        .pool
        .into_iter()
        .filter(|&i| i == best || opts.multipath_relax || c[i].neighbour_as() == neighbour)
        .collect();
    // the remaining tie-breaks order the members; the best path is their minimum
    multipath.sort_by_key(|&i| {
        (
            c[i].router_id(),
            c[i].cluster_len(),
            c[i].info.address,
            c[i].peer,
        )
    });
    multipath.truncate(opts.max_paths.max(1) as usize);
    debug_assert_eq!(multipath.first(), Some(&best));
    Some(Decision {
        best,
        runner_up,
        reason,
        multipath,
    })
}
