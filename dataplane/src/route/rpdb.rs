//! The routing policy database walk (`fib_rules_lookup`): rules by priority, their selectors,
//! `goto` / `nop` / reject actions, table lookups and the `suppress_*` filters.
//!
//! ```text
//!   Key (the flow after the pre-checks)
//!     for rule in priority order:
//!       selector mismatch? (iif, oif, fwmark/mask, l3mdev, uidrange, from, to, tos, ipproto,
//!                           sport, dport; `not` inverts) --> RuleStep::NoMatch, next
//!       goto N --> jump to the rule with priority N | nop --> next
//!       blackhole / unreachable / prohibit --> RulesResult::Reject(rule)
//!       lookup T --> select.rs --> route | reject route | throw / none / suppressed --> next
//!   --> RulesResult { Route, Reject, NoRoute, NotModelled }
//! ```

use std::net::{IpAddr, Ipv4Addr};

use super::flow::Flow;
use super::lookup::{Cause, Mismatch, Outcome, RuleStep, RuleVerdict, Suppression, TableResult};
use super::names::{RouteType, TableId};
use super::routes::Route;
use super::rule::{Rule, RuleAction};
use super::state::RouteState;
use crate::packet::Family;

/// The keys of one FIB lookup (the kernel's flowi after the pre-checks).
#[derive(Debug, Clone)]
pub(crate) struct Key<'a> {
    pub(crate) family: Family,
    pub(crate) dst: IpAddr,
    pub(crate) src: Option<IpAddr>,
    /// The input device as rules see it (`lo` for local output).
    pub(crate) iif: &'a str,
    pub(crate) oif: Option<&'a str>,
    pub(crate) mark: u32,
    pub(crate) tos: u8,
    pub(crate) proto: u8,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) uid: u32,
    /// IPv6 `RT6_LOOKUP_F_IFACE`: routes must use the bound device.
    pub(crate) strict_oif: bool,
    /// IPv6 input: routes through this device score higher (rt6_score_route).
    pub(crate) prefer_dev: Option<&'a str>,
    pub(crate) ignore_linkdown: bool,
    /// `FIB_LOOKUP_IGNORE_LINKSTATE` (the second rp_filter lookup).
    pub(crate) ignore_linkstate: bool,
}

impl<'a> Key<'a> {
    pub(crate) fn new(state: &RouteState, flow: &'a Flow) -> Key<'a> {
        Key {
            family: flow.family,
            dst: flow.dst,
            src: flow.src,
            iif: flow.iif.as_deref().unwrap_or("lo"),
            oif: flow.oif.as_deref(),
            mark: flow.mark,
            tos: flow.tos,
            proto: flow.proto.map(|p| p.number()).unwrap_or(0),
            sport: flow.sport.unwrap_or(0),
            dport: flow.dport.unwrap_or(0),
            uid: flow.uid.unwrap_or(0),
            strict_oif: false,
            prefer_dev: None,
            ignore_linkdown: state.settings.ignore_routes_with_linkdown.unwrap_or(false),
            ignore_linkstate: false,
        }
    }
}

/// What walking the rules gave.
#[derive(Debug, Clone)]
pub(crate) enum RulesResult {
    Route { route: Route, hops: Vec<usize> },
    Reject(Cause),
    NoRoute,
    NotModelled(String),
}

impl RouteState {
    /// Walks the rules of `key.family` (fib_rules_lookup), recording each step.
    pub(crate) fn walk_rules(&self, key: &Key, steps: &mut Vec<RuleStep>) -> RulesResult {
        let mut rules: Vec<&Rule> = self.rules(key.family).collect();
        rules.sort_by_key(|r| r.priority);
        let mut i = 0;
        while i < rules.len() {
            let rule = rules[i];
            i += 1;
            let unknown = rule.unknown_selectors();
            if !unknown.is_empty() {
                steps.push(RuleStep {
                    rule: rule.clone(),
                    verdict: RuleVerdict::NotModelled {
                        what: format!("selector `{}`", unknown.join("`, `")),
                    },
                });
                return RulesResult::NotModelled(format!(
                    "rule `{}` has selector `{}`",
                    rule.to_string().replace('\t', " "),
                    unknown.join("`, `")
                ));
            }
            let l3_table = if rule.l3mdev {
                self.l3mdev_table(key)
            } else {
                None
            };
            let matched = match self.rule_mismatch(rule, key, l3_table.is_some()) {
                Some(why) if !rule.not => Err(why),
                Some(_) => Ok(()),
                None if rule.not => Err(Mismatch::Inverted),
                None => Ok(()),
            };
            if let Err(why) = matched {
                steps.push(RuleStep {
                    rule: rule.clone(),
                    verdict: RuleVerdict::NoMatch { why },
                });
                continue;
            }
            match &rule.action {
                RuleAction::Goto(target) => {
                    let at = rules
                        .iter()
                        .position(|r| r.priority == *target)
                        .filter(|&j| j >= i);
                    steps.push(RuleStep {
                        rule: rule.clone(),
                        verdict: RuleVerdict::Goto {
                            target: *target,
                            resolved: at.is_some(),
                        },
                    });
                    if let Some(j) = at {
                        i = j;
                    }
                }
                RuleAction::Nop => steps.push(RuleStep {
                    rule: rule.clone(),
                    verdict: RuleVerdict::Nop,
                }),
                RuleAction::Blackhole | RuleAction::Unreachable | RuleAction::Prohibit => {
                    steps.push(RuleStep {
                        rule: rule.clone(),
                        verdict: RuleVerdict::Action,
                    });
                    return RulesResult::Reject(Cause::Rule(rule.clone()));
                }
                RuleAction::Other(a) => {
                    steps.push(RuleStep {
                        rule: rule.clone(),
                        verdict: RuleVerdict::NotModelled {
                            what: format!("action `{a}`"),
                        },
                    });
                    return RulesResult::NotModelled(format!("rule action `{a}`"));
                }
                RuleAction::Table(t) => {
                    let table = match l3_table {
                        Some(vrf) if rule.l3mdev && *t == TableId::UNSPEC => TableId::Id(vrf),
                        _ => t.clone(),
                    };
                    let mut tl = self.table_lookup(&table, key);
                    if let TableResult::Found { route, .. } = &tl.result
                        && let Some(why) = self.suppressed(rule, route)
                    {
                        tl.result = TableResult::Suppressed {
                            route: route.clone(),
                            why,
                        };
                    }
                    let result = match &tl.result {
                        TableResult::Found { route, hops } => Some(RulesResult::Route {
                            route: route.clone(),
                            hops: hops.clone(),
                        }),
                        TableResult::Reject { route } => {
                            Some(RulesResult::Reject(Cause::Route(route.clone())))
                        }
                        TableResult::NotModelled { what, .. } => {
                            Some(RulesResult::NotModelled(what.clone()))
                        }
                        TableResult::NoMatch
                        | TableResult::Throw { .. }
                        | TableResult::Suppressed { .. } => None,
                    };
                    steps.push(RuleStep {
                        rule: rule.clone(),
                        verdict: RuleVerdict::Lookup(Box::new(tl)),
                    });
                    if let Some(r) = result {
                        return r;
                    }
                }
            }
        }
        RulesResult::NoRoute
    }

    /// fib_rule_match + fib4/6_rule_match: the first selector that fails, if any.
    fn rule_mismatch(&self, rule: &Rule, key: &Key, l3_ok: bool) -> Option<Mismatch> {
        if let Some(dev) = &rule.iif {
            if rule.iif_detached {
                return Some(Mismatch::Detached { dev: dev.clone() });
            }
            if dev != key.iif {
                return Some(Mismatch::Iif {
                    want: dev.clone(),
                    got: key.iif.to_string(),
                });
            }
        }
        if let Some(dev) = &rule.oif {
            if rule.oif_detached {
                return Some(Mismatch::Detached { dev: dev.clone() });
            }
            if Some(dev.as_str()) != key.oif {
                return Some(Mismatch::Oif {
                    want: dev.clone(),
                    got: key.oif.map(str::to_string),
                });
            }
        }
        if rule.fwmark.is_some() || rule.fwmask.is_some() {
            let (mark, mask) = (rule.fwmark.unwrap_or(0), rule.fwmask());
            if (mark ^ key.mark) & mask != 0 {
                return Some(Mismatch::Fwmark {
                    mark,
                    mask,
                    got: key.mark,
                });
            }
        }
        if rule.l3mdev && !l3_ok {
            return Some(Mismatch::L3mdev);
        }
        if let Some((a, b)) = rule.uidrange
            && !(a..=b).contains(&key.uid)
        {
            return Some(Mismatch::Uid {
                want: (a, b),
                got: key.uid,
            });
        }
        if let Some(want) = &rule.src {
            // IPv6 rules with a source prefix only match lookups that carry a source
            // (RT6_LOOKUP_F_HAS_SADDR); IPv4 compares 0.0.0.0 when there is none.
            let got = key.src.or(match key.family {
                Family::V4 => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                Family::V6 => None,
            });
            if !got.is_some_and(|s| want.contains(&s)) {
                return Some(Mismatch::From {
                    want: *want,
                    got: key.src,
                });
            }
        }
        if let Some(want) = &rule.dst
            && !want.contains(&key.dst)
        {
            return Some(Mismatch::To { want: *want });
        }
        if let Some(t) = rule.tos
            && t & 0xfc != key.tos & 0xfc
        {
            return Some(Mismatch::Tos {
                want: t,
                got: key.tos,
            });
        }
        if let Some(p) = rule.ipproto
            && p != key.proto
        {
            return Some(Mismatch::IpProto {
                want: p,
                got: key.proto,
            });
        }
        if let Some(r) = rule.sport
            && !r.contains(key.sport)
        {
            return Some(Mismatch::Sport {
                want: r,
                got: key.sport,
            });
        }
        if let Some(r) = rule.dport
            && !r.contains(key.dport)
        {
            return Some(Mismatch::Dport {
                want: r,
                got: key.dport,
            });
        }
        None
    }

    /// The VRF table of the flow's output or input device (l3mdev_fib_rule_match).
    fn l3mdev_table(&self, key: &Key) -> Option<u32> {
        let vrf_of = |dev: &str| {
            let link = self.link(dev)?;
            link.vrf_table()
                .or_else(|| self.link(link.master.as_deref()?)?.vrf_table())
        };
        key.oif.and_then(vrf_of).or_else(|| vrf_of(key.iif))
    }

    /// fib4_rule_suppress / fib6_rule_suppress.
    fn suppressed(&self, rule: &Rule, route: &Route) -> Option<Suppression> {
        if let Some(max) = rule.suppress_prefixlen
            && route.dst.prefix_len() <= max
        {
            return Some(Suppression::Prefixlen {
                len: route.dst.prefix_len(),
                max,
            });
        }
        if let Some(group) = &rule.suppress_ifgroup {
            let dev = route.dev()?;
            let link = self.link(dev)?;
            let want = match group.as_str() {
                "default" => Some(0),
                g => g.parse::<u32>().ok(),
            };
            let same = match want {
                Some(n) => link.group_id() == Some(n),
                None => link.group.as_deref() == Some(group.as_str()),
            };
            if same {
                return Some(Suppression::Ifgroup {
                    dev: dev.to_string(),
                    group: group.clone(),
                });
            }
        }
        None
    }

    /// The outcome for a reject cause.
    pub(crate) fn reject_outcome(cause: Cause) -> Outcome {
        let kind = match &cause {
            Cause::Route(r) => match r.kind {
                RouteType::Blackhole => RuleAction::Blackhole,
                RouteType::Prohibit => RuleAction::Prohibit,
                _ => RuleAction::Unreachable,
            },
            Cause::Rule(r) => r.action.clone(),
        };
        match kind {
            RuleAction::Blackhole => Outcome::Blackhole { cause },
            RuleAction::Prohibit => Outcome::Prohibit { cause },
            _ => Outcome::Unreachable { cause },
        }
    }

    pub(crate) fn rules_failure(r: RulesResult) -> Outcome {
        match r {
            RulesResult::Reject(cause) => Self::reject_outcome(cause),
            RulesResult::NotModelled(what) => Outcome::NotModelled { what },
            RulesResult::NoRoute | RulesResult::Route { .. } => Outcome::NoRoute,
        }
    }
}
