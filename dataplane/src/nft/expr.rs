//! Expressions and statements of nft rules, typed after `man libnftables-json` (EXPRESSIONS,
//! STATEMENTS) and `man nft`.
//!
//! ```text
//!   Stmt::Match { op, left: Expr, right: Expr }     ip daddr 198.19.0.10
//!   Stmt::Vmap { key, data }                        numgen random mod 2 vmap { 0 : goto a, … }
//!   Stmt::Nat / Mangle / Set / Counter / Log / …    dnat to …, meta mark set …, update @s { … }
//!   Stmt::Verdict(Verdict)                          accept, drop, jump X, goto X, return
//!   Stmt::Raw(json) / Expr::Raw(json)               anything else, written back unchanged
//! ```
//! An expression or statement whose JSON has a key or a value the code does not know is kept
//! whole as `Raw`; evaluating it is an assumption, never a silent match.

use serde_json::Value;

use super::model::SetElem;

/// A packet header field (`ip saddr`, `tcp dport`, `th dport`), or raw bytes (`@nh,0,8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// `PROTOCOL FIELD`: `ip daddr`, `ip6 nexthdr`, `tcp flags`, `th dport`, `icmp type`, ….
    Field {
        /// Header name (`ip`, `ip6`, `tcp`, `udp`, `th`, `icmp`, `icmpv6`, …).
        protocol: String,
        /// Field name (`saddr`, `dport`, `type`, …).
        field: String,
    },
    /// `@BASE,OFFSET,LEN`: raw bits from a header base (`ll`, `nh`, `th`, `ih`).
    Raw {
        /// Header base.
        base: String,
        /// Offset in bits.
        offset: u32,
        /// Length in bits.
        len: u32,
    },
}

/// Conntrack direction of a `ct` expression (`ct original …`, `ct reply …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtDirection {
    /// `original`.
    Original,
    /// `reply`.
    Reply,
}

impl CtDirection {
    /// The direction as nft writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CtDirection::Original => "original",
            CtDirection::Reply => "reply",
        }
    }
}

/// `ct [DIR] KEY`: a field of the packet's conntrack entry (`ct state`, `ct mark`,
/// `ct original ip daddr`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CtExpr {
    /// Key as the JSON writes it (`state`, `status`, `mark`, `ip daddr`, `proto-dst`, …).
    pub key: String,
    /// Family qualifier, when the JSON gives it separately (`ip`, `ip6`).
    pub family: Option<String>,
    /// Direction, for tuple keys.
    pub dir: Option<CtDirection>,
}

/// `fib FLAGS RESULT`: a routing lookup (`fib daddr type`, `fib saddr . iif oif`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fib {
    /// What the lookup returns: `oif`, `oifname` or `type`.
    pub result: String,
    /// Lookup inputs: `saddr`, `daddr`, `mark`, `iif`, `oif`.
    pub flags: Vec<String>,
}

/// Mode of a number generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumgenMode {
    /// `random`: uniform.
    Random,
    /// `inc`: a counter, incremented per packet.
    Inc,
}

/// `numgen random|inc mod N [offset O]`: yields O..O+N-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Numgen {
    /// Mode.
    pub mode: NumgenMode,
    /// Modulus N.
    pub modulus: u32,
    /// Offset O.
    pub offset: u32,
}

/// A binary operator on values (`&`, `|`, `^`, `<<`, `>>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `&`.
    And,
    /// `|`.
    Or,
    /// `^`.
    Xor,
    /// `<<`.
    Lshift,
    /// `>>`.
    Rshift,
}

impl BinOp {
    /// The operator symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::And => "&",
            BinOp::Or => "|",
            BinOp::Xor => "^",
            BinOp::Lshift => "<<",
            BinOp::Rshift => ">>",
        }
    }

    /// Parses an operator symbol.
    pub fn parse(s: &str) -> Option<BinOp> {
        Some(match s {
            "&" => BinOp::And,
            "|" => BinOp::Or,
            "^" => BinOp::Xor,
            "<<" => BinOp::Lshift,
            ">>" => BinOp::Rshift,
            _ => return None,
        })
    }
}

/// A verdict (`accept`, `drop`, `continue`, `return`, `jump CHAIN`, `goto CHAIN`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `accept`: ends this base chain; the packet goes on to the next hook/priority.
    Accept,
    /// `drop`.
    Drop,
    /// `continue`: goes on with the next rule.
    Continue,
    /// `return`: back to the calling chain (policy, for a base chain).
    Return,
    /// `jump CHAIN`: call, come back after it.
    Jump(String),
    /// `goto CHAIN`: go, without coming back.
    Goto(String),
}

impl Verdict {
    /// The verdict keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Continue => "continue",
            Verdict::Return => "return",
            Verdict::Jump(_) => "jump",
            Verdict::Goto(_) => "goto",
        }
    }

    /// The target chain of `jump`/`goto`.
    pub fn target(&self) -> Option<&str> {
        match self {
            Verdict::Jump(t) | Verdict::Goto(t) => Some(t),
            _ => None,
        }
    }
}

/// An expression: an immediate value or something read from the packet, the conntrack entry
/// or the routing tables.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Expr {
    /// A number (ports, marks, protocol numbers, numgen values).
    Number(u64),
    /// A string: an address, a symbolic constant (`tcp`, `new`, `local`, `echo-request`) or an
    /// interface name.
    String(String),
    /// A boolean (`fib … oif exists|missing`).
    Bool(bool),
    /// `@NAME`: a named set or map.
    SetRef(String),
    /// A list of flags (`ct state established,related`, a `tcp flags` mask).
    List(Vec<Expr>),
    /// `ADDR/LEN`.
    Prefix {
        /// The address.
        addr: Box<Expr>,
        /// Prefix length.
        len: u32,
    },
    /// `LOW-HIGH`.
    Range(Box<Expr>, Box<Expr>),
    /// `A . B . C`.
    Concat(Vec<Expr>),
    /// An anonymous set `{ a, b }` or map `{ k : v, … }`.
    Set(Vec<SetElem>),
    /// `KEY map DATA`: a map lookup yielding a value.
    Map {
        /// The lookup key.
        key: Box<Expr>,
        /// The map (`@NAME` or an anonymous map).
        data: Box<Expr>,
    },
    /// A header field.
    Payload(Payload),
    /// `meta KEY` (`iifname`, `mark`, `l4proto`, …; printed without `meta` for interfaces).
    Meta {
        /// The key.
        key: String,
    },
    /// `ct …`.
    Ct(CtExpr),
    /// `fib …`.
    Fib(Fib),
    /// `numgen …`.
    Numgen(Numgen),
    /// `LEFT OP RIGHT`.
    Binop(BinOp, Box<Expr>, Box<Expr>),
    /// A verdict, as map data.
    Verdict(Verdict),
    /// An expression the code does not model, kept as its JSON.
    Raw(Value),
    /// No expression (a placeholder, printed as JSON `null`).
    #[default]
    Null,
}

impl Expr {
    /// `PROTOCOL FIELD` (`ip daddr`, `th dport`).
    pub fn payload(protocol: &str, field: &str) -> Expr {
        Expr::Payload(Payload::Field {
            protocol: protocol.to_string(),
            field: field.to_string(),
        })
    }

    /// `meta KEY`.
    pub fn meta(key: &str) -> Expr {
        Expr::Meta {
            key: key.to_string(),
        }
    }

    /// `ct KEY`.
    pub fn ct(key: &str) -> Expr {
        Expr::Ct(CtExpr {
            key: key.to_string(),
            family: None,
            dir: None,
        })
    }

    /// A string immediate.
    pub fn str(s: impl Into<String>) -> Expr {
        Expr::String(s.into())
    }

    /// `@NAME`.
    pub fn set_ref(name: impl Into<String>) -> Expr {
        Expr::SetRef(name.into())
    }

    /// `ADDR/LEN` from a network.
    pub fn prefix(net: ipnet::IpNet) -> Expr {
        Expr::Prefix {
            addr: Box::new(Expr::String(net.network().to_string())),
            len: u32::from(net.prefix_len()),
        }
    }

    /// `A . B . …`.
    pub fn concat(parts: Vec<Expr>) -> Expr {
        Expr::Concat(parts)
    }

    /// `LEFT OP RIGHT`.
    pub fn binop(op: BinOp, left: Expr, right: Expr) -> Expr {
        Expr::Binop(op, Box::new(left), Box::new(right))
    }
}

/// A relational operator of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `==` (printed implicitly in most places).
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `>`.
    Gt,
    /// `<=`.
    Le,
    /// `>=`.
    Ge,
    /// The implicit operator on flag types (`ct state new`): any of the right's bits set.
    In,
}

impl MatchOp {
    /// The operator as the JSON writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            MatchOp::Eq => "==",
            MatchOp::Ne => "!=",
            MatchOp::Lt => "<",
            MatchOp::Gt => ">",
            MatchOp::Le => "<=",
            MatchOp::Ge => ">=",
            MatchOp::In => "in",
        }
    }

    /// Parses a JSON operator.
    pub fn parse(s: &str) -> Option<MatchOp> {
        Some(match s {
            "==" => MatchOp::Eq,
            "!=" => MatchOp::Ne,
            "<" => MatchOp::Lt,
            ">" => MatchOp::Gt,
            "<=" => MatchOp::Le,
            ">=" => MatchOp::Ge,
            "in" => MatchOp::In,
            _ => return None,
        })
    }
}

/// `LEFT [OP] RIGHT`: a relational match.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Operator.
    pub op: MatchOp,
    /// What is read (packet field, meta, ct, fib, …).
    pub left: Expr,
    /// What it is compared with (a value, prefix, range, set, `@set`).
    pub right: Expr,
}

/// `counter [packets P bytes B]` or `counter name "NAME"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counter {
    /// An anonymous counter; values absent when the dump gives `counter` alone (set
    /// declarations).
    Anonymous {
        /// Packets.
        packets: Option<u64>,
        /// Bytes.
        bytes: Option<u64>,
    },
    /// A reference to a named counter object.
    Named(String),
}

/// The kind of a NAT statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// `snat`.
    Snat,
    /// `dnat`.
    Dnat,
    /// `masquerade`: SNAT to the output interface's address.
    Masquerade,
    /// `redirect`: DNAT to the host itself.
    Redirect,
}

impl NatKind {
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            NatKind::Snat => "snat",
            NatKind::Dnat => "dnat",
            NatKind::Masquerade => "masquerade",
            NatKind::Redirect => "redirect",
        }
    }
}

/// `snat|dnat [ip|ip6] to ADDR[:PORT] [FLAGS]`, `masquerade [to :PORT] [FLAGS]`,
/// `redirect [to :PORT] [FLAGS]`. NAT ends the base chain with an implicit accept.
#[derive(Debug, Clone, PartialEq)]
pub struct Nat {
    /// Kind.
    pub kind: NatKind,
    /// Address family qualifier (`ip`, `ip6`), needed in `inet` tables.
    pub family: Option<String>,
    /// Address, range, or a map lookup giving the address.
    pub addr: Option<Expr>,
    /// Port or port range.
    pub port: Option<Expr>,
    /// `random`, `fully-random`, `persistent`.
    pub flags: Vec<String>,
    /// `prefix`, `netmap` and other type flags.
    pub type_flags: Vec<String>,
}

impl Nat {
    /// A NAT statement of this kind without address or port (`masquerade`).
    pub fn new(kind: NatKind) -> Nat {
        Nat {
            kind,
            family: None,
            addr: None,
            port: None,
            flags: Vec::new(),
            type_flags: Vec::new(),
        }
    }
}

/// The type of a reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectType {
    /// `with tcp reset`.
    TcpReset,
    /// `with icmp CODE` (IPv4).
    Icmp,
    /// `with icmpv6 CODE`.
    Icmpv6,
    /// `with icmpx CODE` (either family, `inet`/`bridge`/`netdev` tables).
    Icmpx,
}

impl RejectType {
    /// The type as the JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectType::TcpReset => "tcp reset",
            RejectType::Icmp => "icmp",
            RejectType::Icmpv6 => "icmpv6",
            RejectType::Icmpx => "icmpx",
        }
    }
}

/// `reject [with TYPE CODE]`: drops the packet and answers with an ICMP error or a TCP RST.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reject {
    /// Type; `None` for a bare `{"reject": null}`.
    pub kind: Option<RejectType>,
    /// ICMP code name (`port-unreachable`, `admin-prohibited`, …).
    pub code: Option<String>,
}

/// `log [prefix "…"] [level L] [flags F] [group G] …`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Log {
    /// Prefix.
    pub prefix: Option<String>,
    /// NFLOG group.
    pub group: Option<u64>,
    /// Snap length.
    pub snaplen: Option<u64>,
    /// Queue threshold.
    pub queue_threshold: Option<u64>,
    /// Syslog level (`info`, `warn`, …).
    pub level: Option<String>,
    /// Flags (`all`, `tcp sequence`, …).
    pub flags: Vec<String>,
}

/// `limit rate [over] N[/UNIT]/PER [burst B UNIT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Rate.
    pub rate: u64,
    /// Per `second`, `minute`, `hour`, `day`, `week`.
    pub per: String,
    /// Burst, when the dump gives it.
    pub burst: Option<u64>,
    /// `bytes`, `kbytes`, `mbytes` for a byte rate; `None` for packets.
    pub rate_unit: Option<String>,
    /// Unit of the burst for byte rates.
    pub burst_unit: Option<String>,
    /// `over`: matches when the rate is exceeded.
    pub inv: bool,
}

/// `quota [over|until] N UNIT [used M UNIT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// Quota.
    pub val: u64,
    /// Unit (`bytes`, `kbytes`, `mbytes`).
    pub val_unit: String,
    /// Already used.
    pub used: Option<u64>,
    /// Unit of `used`.
    pub used_unit: Option<String>,
    /// `over`: matches once the quota is exceeded.
    pub inv: bool,
}

/// Operation of a set statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetOp {
    /// `add @set { … }`: add if absent.
    Add,
    /// `update @set { … }`: add, or refresh the timeout.
    Update,
    /// `delete @set { … }`.
    Delete,
}

impl SetOp {
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            SetOp::Add => "add",
            SetOp::Update => "update",
            SetOp::Delete => "delete",
        }
    }
}

/// `add|update|delete @SET { ELEM [stmts] }` (kube-proxy's affinity: `update @affinity-… { ip
/// saddr }`).
#[derive(Debug, Clone, PartialEq)]
pub struct SetStmt {
    /// Operation.
    pub op: SetOp,
    /// The element expression, evaluated per packet.
    pub elem: Expr,
    /// Set name, without `@`.
    pub set: String,
    /// Statements attached to the element (`counter`, `limit`).
    pub stmts: Vec<Stmt>,
}

/// A statement of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// A relational match.
    Match(Match),
    /// A verdict.
    Verdict(Verdict),
    /// `KEY vmap DATA`: a verdict from a map lookup (no match: the rule ends, no verdict).
    Vmap {
        /// The lookup key.
        key: Expr,
        /// `@NAME` or an anonymous map.
        data: Expr,
    },
    /// `counter`.
    Counter(Counter),
    /// `KEY set VALUE` (`meta mark set …`, `ct mark set …`).
    Mangle {
        /// What is written.
        key: Expr,
        /// The new value.
        value: Expr,
    },
    /// NAT.
    Nat(Nat),
    /// `reject`.
    Reject(Reject),
    /// `log`.
    Log(Log),
    /// `limit`.
    Limit(Limit),
    /// `quota`.
    Quota(Quota),
    /// `notrack`.
    Notrack,
    /// `add|update|delete @set { … }`.
    Set(SetStmt),
    /// A statement the code does not model, kept as its JSON object.
    Raw(Value),
}

impl Stmt {
    /// `LEFT RIGHT` (implicit `==`).
    pub fn eq(left: Expr, right: Expr) -> Stmt {
        Stmt::Match(Match {
            op: MatchOp::Eq,
            left,
            right,
        })
    }

    /// `LEFT != RIGHT`.
    pub fn ne(left: Expr, right: Expr) -> Stmt {
        Stmt::Match(Match {
            op: MatchOp::Ne,
            left,
            right,
        })
    }

    /// `LEFT RIGHT` with the implicit flag operator (`ct state new`).
    pub fn flags(left: Expr, right: Expr) -> Stmt {
        Stmt::Match(Match {
            op: MatchOp::In,
            left,
            right,
        })
    }

    /// `jump CHAIN`.
    pub fn jump(chain: impl Into<String>) -> Stmt {
        Stmt::Verdict(Verdict::Jump(chain.into()))
    }

    /// `goto CHAIN`.
    pub fn goto(chain: impl Into<String>) -> Stmt {
        Stmt::Verdict(Verdict::Goto(chain.into()))
    }
}
