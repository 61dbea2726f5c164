//! Prefix lists with `ge`/`le` ranges, as in FRR `ip prefix-list` / BIRD prefix sets.
//!
//! ```text
//!   "198.18.64.0/18 le 24"  ->  198.18.64.0/18 and every more specific prefix up to /24
//!   "198.18.64.0/18 ge 24"  ->  /24 to /32 inside 198.18.64.0/18
//!   "198.18.64.0/18 ge 20 le 24", "198.18.64.0/24" (exact match only)
//! ```
//!
//! A prefix matches a rule when it lies inside the rule's prefix and its length is in the
//! rule's range: `[len, len]` without `ge`/`le`, `[ge, max]` with only `ge`, `[len, le]` with
//! only `le`, `[ge, le]` with both. A list permits what any rule matches; everything else is
//! denied (the import default).

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

/// A malformed prefix rule (the text, what is wrong, and the expected form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixListError {
    /// Not `PREFIX [ge N] [le N]`.
    #[error(
        "prefix rule {text:?}: {reason}; expected PREFIX [ge N] [le N], e.g. 198.18.64.0/18 le 24"
    )]
    Syntax {
        /// The rule as written.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The address has bits set after the prefix length.
    #[error("prefix rule {text:?}: host bits set, did you mean {network}?")]
    HostBits {
        /// The rule as written.
        text: String,
        /// The prefix with the host bits cleared.
        network: IpNet,
    },
    /// The lengths are not ordered `len <= ge <= le <= max`.
    #[error("prefix rule {text:?}: lengths must satisfy {len} <= ge <= le <= {max}")]
    Range {
        /// The rule as written.
        text: String,
        /// The prefix length.
        len: u8,
        /// The family's longest prefix (32 or 128).
        max: u8,
    },
}

/// One rule: a prefix and the range of lengths it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixRule {
    /// The covering prefix (host bits clear).
    pub prefix: IpNet,
    /// Shortest admitted length (`ge`).
    pub ge: Option<u8>,
    /// Longest admitted length (`le`).
    pub le: Option<u8>,
}

impl PrefixRule {
    /// A rule admitting exactly `prefix`.
    pub fn exact(prefix: IpNet) -> Self {
        Self {
            prefix: prefix.trunc(),
            ge: None,
            le: None,
        }
    }

    /// A rule with a range; checks `len <= ge <= le <= max` and clear host bits.
    pub fn new(prefix: IpNet, ge: Option<u8>, le: Option<u8>) -> Result<Self, PrefixListError> {
        let r = Self { prefix, ge, le };
        r.validate(&r.to_string())?;
        Ok(r)
    }

    fn validate(&self, text: &str) -> Result<(), PrefixListError> {
        if self.prefix.trunc() != self.prefix {
            return Err(PrefixListError::HostBits {
                text: text.to_string(),
                network: self.prefix.trunc(),
            });
        }
        let (len, max) = (self.prefix.prefix_len(), self.prefix.max_prefix_len());
        let (lo, hi) = self.lengths();
        let ok = len <= lo
            && lo <= hi
            && hi <= max
            && self.ge.is_none_or(|g| g >= len)
            && self.le.is_none_or(|l| l >= len);
        if !ok {
            return Err(PrefixListError::Range {
                text: text.to_string(),
                len,
                max,
            });
        }
        Ok(())
    }

    /// The admitted prefix lengths, inclusive.
    pub fn lengths(&self) -> (u8, u8) {
        let len = self.prefix.prefix_len();
        match (self.ge, self.le) {
            (None, None) => (len, len),
            (Some(g), None) => (g, self.prefix.max_prefix_len()),
            (None, Some(l)) => (len, l),
            (Some(g), Some(l)) => (g, l),
        }
    }

    /// Whether `p` is inside the rule's prefix with an admitted length (same family only).
    pub fn matches(&self, p: &IpNet) -> bool {
        let (lo, hi) = self.lengths();
        let l = p.prefix_len();
        lo <= l && l <= hi && self.prefix.contains(p)
    }
}

impl fmt::Display for PrefixRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(g) = self.ge {
            write!(f, " ge {g}")?;
        }
        if let Some(l) = self.le {
            write!(f, " le {l}")?;
        }
        Ok(())
    }
}

impl FromStr for PrefixRule {
    type Err = PrefixListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = |reason| PrefixListError::Syntax {
            text: text.to_string(),
            reason,
        };
        let mut words = text.split_whitespace();
        let prefix: IpNet = words
            .next()
            .ok_or_else(|| syntax("empty"))?
            .parse()
            .map_err(|_| syntax("not an address/length prefix"))?;
        let (mut ge, mut le) = (None, None);
        while let Some(w) = words.next() {
            let slot = match w {
                "ge" if ge.is_none() && le.is_none() => &mut ge,
                "le" if le.is_none() => &mut le,
                "ge" | "le" => return Err(syntax("ge/le repeated or out of order")),
                _ => return Err(syntax("unexpected word")),
            };
            let n: u8 = words
                .next()
                .ok_or_else(|| syntax("ge/le without a length"))?
                .parse()
                .map_err(|_| syntax("ge/le length is not a number"))?;
            *slot = Some(n);
        }
        let r = Self { prefix, ge, le };
        r.validate(text)?;
        Ok(r)
    }
}

/// A permit list of [`PrefixRule`]s. Empty: permits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixList {
    /// The rules.
    pub rules: Vec<PrefixRule>,
}

impl PrefixList {
    /// From rules.
    pub fn new(rules: Vec<PrefixRule>) -> Self {
        Self { rules }
    }

    /// Parse one rule per string (configuration lists).
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Self, PrefixListError> {
        Ok(Self {
            rules: rules
                .iter()
                .map(|s| s.as_ref().parse())
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether any rule matches `p`.
    pub fn matches(&self, p: &IpNet) -> bool {
        self.rules.iter().any(|r| r.matches(p))
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ge_le_table() {
        // rule, prefix, matches
        let rows = [
            ("198.18.64.0/18 le 24", "198.18.64.0/18", true),
            ("198.18.64.0/18 le 24", "198.18.65.0/24", true),
            ("198.18.64.0/18 le 24", "198.18.65.128/25", false),
            ("198.18.64.0/18 le 24", "198.18.0.0/16", false),
            ("198.18.64.0/18 le 24", "198.18.128.0/24", false),
            ("198.18.64.0/18 le 24", "2001:db8::/32", false),
            ("198.18.64.0/18", "198.18.64.0/18", true),
            ("198.18.64.0/18", "198.18.64.0/19", false),
            ("198.18.64.0/18 ge 24", "198.18.64.0/23", false),
            ("198.18.64.0/18 ge 24", "198.18.64.0/24", true),
            ("198.18.64.0/18 ge 24", "198.18.127.255/32", true),
            ("198.18.64.0/18 ge 20 le 24", "198.18.64.0/19", false),
            ("198.18.64.0/18 ge 20 le 24", "198.18.80.0/20", true),
            ("198.18.64.0/18 ge 20 le 24", "198.18.80.0/25", false),
            ("198.18.64.0/18 ge 18 le 18", "198.18.64.0/18", true),
            ("0.0.0.0/0 le 32", "0.0.0.0/0", true),
            ("0.0.0.0/0 le 32", "10.0.0.0/8", true),
            ("0.0.0.0/0", "10.0.0.0/8", false),
            ("2001:db8::/32 le 64", "2001:db8:1::/48", true),
            ("2001:db8::/32 le 64", "2001:db8:1::/96", false),
            ("2001:db8::/32 le 64", "198.18.0.0/16", false),
        ];
        for (rule, p, want) in rows {
            let r: PrefixRule = rule.parse().unwrap();
            assert_eq!(r.matches(&net(p)), want, "{rule} vs {p}");
            assert_eq!(r.to_string(), rule);
        }
    }

    #[test]
    fn bad_rules_name_the_problem() {
        let e = "198.18.64.1/18 le 24".parse::<PrefixRule>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "prefix rule \"198.18.64.1/18 le 24\": host bits set, did you mean 198.18.64.0/18?"
        );
        for (text, needle) in [
            (
                "198.18.64.0/18 le 16",
                "lengths must satisfy 18 <= ge <= le <= 32",
            ),
            ("198.18.64.0/18 ge 16", "lengths must satisfy"),
            ("198.18.64.0/18 ge 26 le 24", "lengths must satisfy"),
            ("198.18.64.0/18 le 33", "lengths must satisfy"),
            (
                "198.18.64.0/18 le 24 ge 20",
                "ge/le repeated or out of order",
            ),
            ("198.18.64.0/18 le", "ge/le without a length"),
            ("198.18.64.0/18 le x", "not a number"),
            ("198.18.64.0/18 max 24", "unexpected word"),
            ("198.18.64.0", "not an address/length prefix"),
            ("", "empty"),
        ] {
            let e = text.parse::<PrefixRule>().unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert!(PrefixRule::new(net("198.18.64.0/18"), Some(17), None).is_err());
    }

    #[test]
    fn list_permits_any_rule_and_empty_permits_nothing() {
        let l = PrefixList::parse(&["198.18.64.0/18 le 24", "2001:db8::/32 le 64"]).unwrap();
        assert!(l.matches(&net("198.18.70.0/24")));
        assert!(l.matches(&net("2001:db8:5::/64")));
        assert!(!l.matches(&net("10.0.0.0/8")));
        assert!(!PrefixList::default().matches(&net("198.18.70.0/24")));
    }
}
