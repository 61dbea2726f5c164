//! An index over one table for repeated evaluation (the tracer evaluates many rules of one
//! ruleset): chains and sets by name, and each set's or map's elements parsed once, on first
//! use, into a hash of exact keys plus the elements that need a scan (ranges, prefixes,
//! interface wildcards, concatenations with one).
//!
//! ```text
//!   TableIndex::new(&Table)            chains, sets: name -> position (no parsing yet)
//!   Rule::eval_with(&TableIndex, ..)   @set / { anonymous } lookups
//!       -> ElemIndex (built once per set, kept): exact: key -> element, scan: [(Const, element)]
//! ```
//! Without the index, a lookup parses every element of the set again (what
//! [`Rule::eval`](super::Rule::eval) does); with it, an exact key is one hash probe.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::model::{Chain, Set, SetElem, Table};
use super::types::{Const, DType, Datum, Tri, parse_const};

/// The parsed elements of one set or map.
#[derive(Debug, Default)]
pub(crate) struct ElemIndex {
    /// Elements whose key is one value (or a concatenation of single values), by that value.
    exact: HashMap<Datum, usize>,
    /// The other parsed elements, in dump order.
    scan: Vec<(Const, usize)>,
    /// Every element's key, parsed (`None`: not parseable), for lookups with unknown parts.
    all: Vec<Option<Const>>,
    /// Whether some element did not parse.
    unparsed: bool,
}

/// What an indexed lookup found.
pub(crate) enum Hit {
    /// The element at this position matches.
    Found(usize),
    /// None matches.
    NotFound,
    /// An element could not be parsed or a key part is unknown: the answer is not known.
    Unknown,
}

fn exact_key(c: &Const) -> Option<Datum> {
    match c {
        Const::One(d) => Some(d.clone()),
        Const::Concat(parts) => parts
            .iter()
            .map(|p| match p {
                Const::One(d) => Some(d.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Datum::Concat),
        _ => None,
    }
}

impl ElemIndex {
    fn build(elems: &[SetElem], ty: &DType) -> ElemIndex {
        let mut ix = ElemIndex::default();
        for (i, e) in elems.iter().enumerate() {
            let c = parse_const(ty, &e.key);
            match &c {
                None => ix.unparsed = true,
                Some(c) => match exact_key(c) {
                    Some(k) => {
                        ix.exact.entry(k).or_insert(i);
                    }
                    None => ix.scan.push((c.clone(), i)),
                },
            }
            ix.all.push(c);
        }
        ix
    }

    /// Looks `parts` (one value, or a concatenation's parts) up.
    pub(crate) fn lookup(&self, parts: &[Option<Datum>]) -> Hit {
        if parts.iter().any(Option::is_none) {
            // A part is unknown: only a full scan can still decide.
            let mut unknown = self.unparsed;
            for (i, c) in self.all.iter().enumerate() {
                match c.as_ref().map(|c| c.contains_parts(parts)) {
                    Some(Tri::Yes) => return Hit::Found(i),
                    Some(Tri::Unknown) => unknown = true,
                    _ => {}
                }
            }
            return if unknown { Hit::Unknown } else { Hit::NotFound };
        }
        let key = match parts {
            [Some(d)] => d.clone(),
            many => Datum::Concat(many.iter().flatten().cloned().collect()),
        };
        if let Some(&i) = self.exact.get(&key) {
            return Hit::Found(i);
        }
        for (c, i) in &self.scan {
            if c.contains_parts(parts) == Tri::Yes {
                return Hit::Found(*i);
            }
        }
        if self.unparsed {
            Hit::Unknown
        } else {
            Hit::NotFound
        }
    }
}

/// Chains and sets of one table by name, and lazily built element indexes, for evaluating
/// many rules of the table ([`Rule::eval_with`](super::Rule::eval_with)).
#[derive(Debug)]
pub struct TableIndex<'t> {
    table: &'t Table,
    chains: HashMap<&'t str, usize>,
    sets: HashMap<&'t str, usize>,
    /// Element indexes by set position (named) or by the address of an anonymous set's
    /// elements and the key type it is read as.
    named: RefCell<HashMap<usize, Rc<ElemIndex>>>,
    anonymous: RefCell<HashMap<(usize, DType), Rc<ElemIndex>>>,
}

impl<'t> TableIndex<'t> {
    /// Indexes `table`'s chains and sets by name (set elements are parsed on first lookup).
    pub fn new(table: &'t Table) -> TableIndex<'t> {
        let mut chains = HashMap::with_capacity(table.chains.len());
        for (i, c) in table.chains.iter().enumerate() {
            chains.entry(c.name.as_str()).or_insert(i);
        }
        let mut sets = HashMap::with_capacity(table.sets.len());
        for (i, s) in table.sets.iter().enumerate() {
            sets.entry(s.name.as_str()).or_insert(i);
        }
        TableIndex {
            table,
            chains,
            sets,
            named: RefCell::new(HashMap::new()),
            anonymous: RefCell::new(HashMap::new()),
        }
    }

    /// The table indexed.
    pub fn table(&self) -> &'t Table {
        self.table
    }

    /// The chain named `name` (a hash lookup).
    pub fn chain(&self, name: &str) -> Option<&'t Chain> {
        self.chains.get(name).map(|&i| &self.table.chains[i])
    }

    /// The set or map named `name` (a hash lookup).
    pub fn set(&self, name: &str) -> Option<&'t Set> {
        self.sets.get(name).map(|&i| &self.table.sets[i])
    }

    /// The element index of the named set `name`, built on first use.
    pub(crate) fn named_elems(&self, name: &str) -> Option<(&'t Set, Rc<ElemIndex>)> {
        let &pos = self.sets.get(name)?;
        let set = &self.table.sets[pos];
        let ix = self
            .named
            .borrow_mut()
            .entry(pos)
            .or_insert_with(|| {
                Rc::new(ElemIndex::build(
                    &set.elements,
                    &DType::from_names(&set.key_type.0),
                ))
            })
            .clone();
        Some((set, ix))
    }

    /// The element index of an anonymous set (`{ … }` in a rule), read as `ty`.
    pub(crate) fn anonymous_elems(&self, items: &[SetElem], ty: &DType) -> Rc<ElemIndex> {
        let key = (items.as_ptr() as usize, ty.clone());
        self.anonymous
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| Rc::new(ElemIndex::build(items, ty)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{Expr, SetType};

    fn set(ty: &[&str], flags: &[&str], keys: Vec<Expr>) -> Set {
        Set {
            name: "s".into(),
            key_type: SetType::concat(ty),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            elements: keys.into_iter().map(SetElem::key).collect(),
            ..Set::default()
        }
    }

    #[test]
    fn exact_keys_hash_and_intervals_scan() {
        let mut t = Table::new(crate::nft::NftFamily::Ip, "t");
        t.sets.push(set(
            &["ipv4_addr", "inet_proto", "inet_service"],
            &[],
            vec![Expr::concat(vec![
                Expr::str("198.19.0.10"),
                Expr::str("tcp"),
                Expr::Number(80),
            ])],
        ));
        let mut iv = set(
            &["ipv4_addr"],
            &["interval"],
            vec![
                Expr::prefix("198.18.0.0/24".parse().unwrap()),
                Expr::str("198.18.3.3"),
                Expr::str("not an address"),
            ],
        );
        iv.name = "iv".into();
        t.sets.push(iv);
        let ix = TableIndex::new(&t);
        let (_, e) = ix.named_elems("s").unwrap();
        let a = |s: &str| Some(Datum::Addr(s.parse().unwrap()));
        let hit = |h: Hit| match h {
            Hit::Found(i) => Some(Some(i)),
            Hit::NotFound => Some(None),
            Hit::Unknown => None,
        };
        let key = [a("198.19.0.10"), Some(Datum::Int(6)), Some(Datum::Int(80))];
        assert_eq!(hit(e.lookup(&key)), Some(Some(0)));
        let miss = [a("198.19.0.10"), Some(Datum::Int(17)), Some(Datum::Int(80))];
        assert_eq!(hit(e.lookup(&miss)), Some(None));
        let (_, e) = ix.named_elems("iv").unwrap();
        assert_eq!(hit(e.lookup(&[a("198.18.0.77")])), Some(Some(0)));
        assert_eq!(hit(e.lookup(&[a("198.18.3.3")])), Some(Some(1)));
        // an element that does not parse leaves a miss undecided
        assert_eq!(hit(e.lookup(&[a("198.18.9.9")])), None);
        assert!(ix.named_elems("nope").is_none());
        assert!(ix.chain("x").is_none());
    }
}
