//! Topology files: YAML text in, a checked [`Topology`] out (pure), and `Lab::up` to build
//! one. Every error names the line, the key path and what was expected.
//!
//! ```yaml
//! name: rack                        # optional
//! nodes:
//!   - name: node1
//!     pods: 2                       # a count (node1-pod1, node1-pod2) or a list of names
//!     routes: ["default via 198.18.0.1"]
//!   - {name: node2, pods: [web, db], index: 5}
//! routers:
//!   - name: tor
//!     sysctls: {net.ipv4.conf.all.rp_filter: "0"}
//! hosts:
//!   - name: client
//!     addresses: ["198.19.255.10/32", "198.18.200.1/24 dev eth0"]   # default dev lo
//! segments:
//!   - {name: rack, members: [node1, node2, tor]}                    # the first is 198.18.0.0/24
//! links:
//!   - {a: client, b: tor, subnet: 198.18.9.0/24, subnet6: "2001:db8:0:9::/64"}
//! ```
//! Build order: hosts, pods, segments, links, then each host's addresses, sysctls and routes.

use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use marked_yaml::{LoadError, Node, Span};

use crate::error::{LabError, Result};
use crate::host::HostKind;
use crate::lab::{HostOpts, Lab};
use crate::link::{LinkOpts, SegmentOpts};
use crate::{netns, plan};

/// A topology file error: where, which key, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topology line {line}, column {column}: {key}: {message}")]
pub struct TopologyError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key path (`nodes[1].pods`).
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// A checked topology.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// The topology's name (the lab's name).
    pub name: Option<String>,
    /// Nodes, routers and plain hosts, in file order (nodes first, then routers, then hosts).
    pub hosts: Vec<HostSpec>,
    /// Shared segments.
    pub segments: Vec<SegmentSpec>,
    /// Point-to-point links.
    pub links: Vec<LinkSpec>,
}

/// A host of a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Name.
    pub name: String,
    /// Node, router or host.
    pub kind: HostKind,
    /// A fixed role index.
    pub index: Option<u32>,
    /// Names of the pods of a node.
    pub pods: Vec<String>,
    /// Extra addresses, each with its interface (default `lo`).
    pub addresses: Vec<(IpNet, String)>,
    /// Extra routes, as `ip route add` arguments.
    pub routes: Vec<String>,
    /// Extra `net.*` sysctls.
    pub sysctls: Vec<(String, String)>,
    /// The line of its entry.
    pub line: usize,
}

/// A segment of a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSpec {
    /// Name.
    pub name: String,
    /// Member hosts.
    pub members: Vec<String>,
    /// IPv4 subnet.
    pub subnet4: Option<Ipv4Net>,
    /// IPv6 subnet.
    pub subnet6: Option<Ipv6Net>,
    /// The line of its entry.
    pub line: usize,
}

/// A link of a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// One end.
    pub a: String,
    /// The other end.
    pub b: String,
    /// IPv4 subnet.
    pub subnet4: Option<Ipv4Net>,
    /// IPv6 subnet.
    pub subnet6: Option<Ipv6Net>,
    /// The line of its entry.
    pub line: usize,
}

fn err(span: &Span, key: &str, message: impl Into<String>) -> TopologyError {
    let (line, column) = span
        .start()
        .map(|m| (m.line(), m.column()))
        .unwrap_or((0, 0));
    TopologyError {
        line,
        column,
        key: key.to_string(),
        message: message.into(),
    }
}

fn line_of(span: &Span) -> usize {
    span.start().map(|m| m.line()).unwrap_or(0)
}

/// A mapping's entries with their keys checked against `allowed`.
fn mapping<'a>(
    node: &'a Node,
    key: &str,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a Node, &'a Span)>, TopologyError> {
    let map = node
        .as_mapping()
        .ok_or_else(|| err(node.span(), key, "expected a mapping"))?;
    let mut out = Vec::new();
    for (k, v) in map.iter() {
        if !allowed.contains(&k.as_str()) {
            return Err(err(
                k.span(),
                &format!("{key}.{}", k.as_str()),
                format!("unknown key, expected one of: {}", allowed.join(", ")),
            ));
        }
        out.push((k.as_str(), v, k.span()));
    }
    Ok(out)
}

fn scalar<'a>(node: &'a Node, key: &str, what: &str) -> Result<&'a str, TopologyError> {
    node.as_scalar()
        .map(|s| s.as_str())
        .ok_or_else(|| err(node.span(), key, format!("expected {what}")))
}

fn seq<'a>(node: &'a Node, key: &str, what: &str) -> Result<Vec<&'a Node>, TopologyError> {
    let s = node
        .as_sequence()
        .ok_or_else(|| err(node.span(), key, format!("expected a list of {what}")))?;
    Ok(s.iter().collect())
}

fn strings(node: &Node, key: &str, what: &str) -> Result<Vec<(String, Span)>, TopologyError> {
    seq(node, key, what)?
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            Ok((
                scalar(n, &format!("{key}[{i}]"), what)?.to_string(),
                *n.span(),
            ))
        })
        .collect()
}

fn name(node: &Node, key: &str) -> Result<String, TopologyError> {
    let s = scalar(node, key, "a name")?;
    crate::lab::check_name("host", s, 32).map_err(|e| err(node.span(), key, e.to_string()))?;
    Ok(s.to_string())
}

impl Topology {
    /// Parses and checks a topology file.
    pub fn from_yaml(text: &str) -> Result<Topology, TopologyError> {
        let root = marked_yaml::parse_yaml_with_options(
            0,
            text,
            marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true),
        )
        .map_err(load_error)?;
        let mut topo = Topology::default();
        let mut later: Vec<(String, Span, String)> = Vec::new(); // (name, span, key) to resolve
        for (k, v, _) in mapping(
            &root,
            "topology",
            &["name", "nodes", "routers", "hosts", "segments", "links"],
        )? {
            match k {
                "name" => topo.name = Some(name(v, "name")?),
                "nodes" | "routers" | "hosts" => {
                    let kind = match k {
                        "nodes" => HostKind::Node,
                        "routers" => HostKind::Router,
                        _ => HostKind::Host,
                    };
                    for (i, h) in seq(v, k, "hosts")?.into_iter().enumerate() {
                        topo.hosts.push(host(h, &format!("{k}[{i}]"), kind)?);
                    }
                }
                "segments" => {
                    for (i, s) in seq(v, k, "segments")?.into_iter().enumerate() {
                        let key = format!("segments[{i}]");
                        let mut spec = SegmentSpec {
                            name: String::new(),
                            members: vec![],
                            subnet4: None,
                            subnet6: None,
                            line: line_of(s.span()),
                        };
                        let mut has_name = false;
                        for (f, fv, _) in
                            mapping(s, &key, &["name", "members", "subnet", "subnet6"])?
                        {
                            let fk = format!("{key}.{f}");
                            match f {
                                "name" => {
                                    spec.name = name(fv, &fk)?;
                                    has_name = true;
                                }
                                "members" => {
                                    for (j, (m, span)) in
                                        strings(fv, &fk, "host names")?.into_iter().enumerate()
                                    {
                                        later.push((m.clone(), span, format!("{fk}[{j}]")));
                                        spec.members.push(m);
                                    }
                                }
                                "subnet" => spec.subnet4 = Some(parse_net4(fv, &fk)?),
                                _ => spec.subnet6 = Some(parse_net6(fv, &fk)?),
                            }
                        }
                        if !has_name {
                            return Err(err(s.span(), &key, "missing key `name`"));
                        }
                        topo.segments.push(spec);
                    }
                }
                _ => {
                    for (i, l) in seq(v, k, "links")?.into_iter().enumerate() {
                        let key = format!("links[{i}]");
                        let mut spec = LinkSpec {
                            a: String::new(),
                            b: String::new(),
                            subnet4: None,
                            subnet6: None,
                            line: line_of(l.span()),
                        };
                        for (f, fv, _) in mapping(l, &key, &["a", "b", "subnet", "subnet6"])? {
                            let fk = format!("{key}.{f}");
                            match f {
                                "a" | "b" => {
                                    let n = scalar(fv, &fk, "a host name")?.to_string();
                                    later.push((n.clone(), *fv.span(), fk));
                                    if f == "a" { spec.a = n } else { spec.b = n }
                                }
                                "subnet" => spec.subnet4 = Some(parse_net4(fv, &fk)?),
                                _ => spec.subnet6 = Some(parse_net6(fv, &fk)?),
                            }
                        }
                        if spec.a.is_empty() || spec.b.is_empty() {
                            return Err(err(l.span(), &key, "expected both ends: `a` and `b`"));
                        }
                        if spec.a == spec.b {
                            return Err(err(
                                l.span(),
                                &key,
                                format!("links `{}` to itself", spec.a),
                            ));
                        }
                        topo.links.push(spec);
                    }
                }
            }
        }
        topo.check(&later)?;
        Ok(topo)
    }

    /// Names unique across hosts, pods and segment switches; references resolve.
    fn check(&self, refs: &[(String, Span, String)]) -> Result<(), TopologyError> {
        let mut seen: Vec<String> = Vec::new();
        for h in &self.hosts {
            for n in std::iter::once(&h.name).chain(&h.pods) {
                if seen.contains(n) {
                    return Err(TopologyError {
                        line: h.line,
                        column: 0,
                        key: n.clone(),
                        message: "duplicate host or pod name".into(),
                    });
                }
                seen.push(n.clone());
            }
        }
        let mut segs: Vec<&str> = Vec::new();
        for s in &self.segments {
            if segs.contains(&s.name.as_str()) {
                return Err(TopologyError {
                    line: s.line,
                    column: 0,
                    key: s.name.clone(),
                    message: "duplicate segment name".into(),
                });
            }
            segs.push(&s.name);
        }
        for (n, span, key) in refs {
            match self.hosts.iter().find(|h| h.name == *n) {
                Some(_) => {}
                None if self.hosts.iter().any(|h| h.pods.contains(n)) => {
                    return Err(err(
                        span,
                        key,
                        format!("`{n}` is a pod: pods connect to their node only"),
                    ));
                }
                None => return Err(err(span, key, format!("unknown host `{n}`"))),
            }
        }
        Ok(())
    }
}

fn host(node: &Node, key: &str, kind: HostKind) -> Result<HostSpec, TopologyError> {
    let mut allowed = vec!["name", "index", "addresses", "routes", "sysctls"];
    if kind == HostKind::Node {
        allowed.push("pods");
    }
    let mut spec = HostSpec {
        name: String::new(),
        kind,
        index: None,
        pods: vec![],
        addresses: vec![],
        routes: vec![],
        sysctls: vec![],
        line: line_of(node.span()),
    };
    let mut pods: Option<(&Node, String)> = None;
    for (f, v, _) in mapping(node, key, &allowed)? {
        let fk = format!("{key}.{f}");
        match f {
            "name" => spec.name = name(v, &fk)?,
            "index" => {
                let s = scalar(v, &fk, "a number")?;
                spec.index =
                    Some(s.parse().map_err(|_| {
                        err(v.span(), &fk, format!("expected a number, found `{s}`"))
                    })?);
            }
            "pods" => pods = Some((v, fk)),
            "addresses" => {
                for (i, (text, span)) in strings(v, &fk, "addresses")?.into_iter().enumerate() {
                    let k = format!("{fk}[{i}]");
                    let words: Vec<&str> = text.split_whitespace().collect();
                    let (addr, dev) = match words.as_slice() {
                        [a] => (*a, "lo"),
                        [a, "dev", d] => (*a, *d),
                        _ => {
                            return Err(err(
                                &span,
                                &k,
                                "expected `ADDR/LEN` or `ADDR/LEN dev IFACE`",
                            ));
                        }
                    };
                    let net: IpNet = addr.parse().map_err(|_| {
                        err(
                            &span,
                            &k,
                            format!("expected an address with prefix length, found `{addr}`"),
                        )
                    })?;
                    plan::check_net(&net).map_err(|e| err(&span, &k, e.to_string()))?;
                    spec.addresses.push((net, dev.to_string()));
                }
            }
            "routes" => {
                for (i, (text, span)) in strings(v, &fk, "routes")?.into_iter().enumerate() {
                    crate::host::route_words(&text)
                        .map_err(|e| err(&span, &format!("{fk}[{i}]"), e.to_string()))?;
                    spec.routes.push(text);
                }
            }
            _ => {
                for (k, val, kspan) in mapping_any(v, &fk)? {
                    let kk = format!("{fk}.{k}");
                    netns::check_sysctl_key(k).map_err(|e| err(kspan, &kk, e.to_string()))?;
                    spec.sysctls
                        .push((k.to_string(), scalar(val, &kk, "a value")?.to_string()));
                }
            }
        }
    }
    if spec.name.is_empty() {
        return Err(err(node.span(), key, "missing key `name`"));
    }
    if let Some((v, fk)) = pods {
        spec.pods = match v.as_scalar() {
            Some(s) => {
                let n: u32 = s.as_str().parse().map_err(|_| {
                    err(
                        v.span(),
                        &fk,
                        format!(
                            "expected a count or a list of names, found `{}`",
                            s.as_str()
                        ),
                    )
                })?;
                if n > 253 {
                    return Err(err(v.span(), &fk, "at most 253 pods per node"));
                }
                (1..=n).map(|i| format!("{}-pod{i}", spec.name)).collect()
            }
            None => strings(v, &fk, "pod names")?
                .into_iter()
                .enumerate()
                .map(|(i, (n, span))| {
                    crate::lab::check_name("host", &n, 32)
                        .map_err(|e| err(&span, &format!("{fk}[{i}]"), e.to_string()))?;
                    Ok(n)
                })
                .collect::<Result<_, TopologyError>>()?,
        };
    }
    Ok(spec)
}

fn mapping_any<'a>(
    node: &'a Node,
    key: &str,
) -> Result<Vec<(&'a str, &'a Node, &'a Span)>, TopologyError> {
    let map = node
        .as_mapping()
        .ok_or_else(|| err(node.span(), key, "expected a mapping of key: value"))?;
    Ok(map.iter().map(|(k, v)| (k.as_str(), v, k.span())).collect())
}

fn parse_net4(node: &Node, key: &str) -> Result<Ipv4Net, TopologyError> {
    let s = scalar(node, key, "an IPv4 prefix")?;
    let n: Ipv4Net = s.parse().map_err(|_| {
        err(
            node.span(),
            key,
            format!("expected an IPv4 prefix like 198.18.9.0/24, found `{s}`"),
        )
    })?;
    plan::check_net(&IpNet::V4(n)).map_err(|e| err(node.span(), key, e.to_string()))?;
    Ok(n)
}

fn parse_net6(node: &Node, key: &str) -> Result<Ipv6Net, TopologyError> {
    let s = scalar(node, key, "an IPv6 prefix")?;
    let n: Ipv6Net = s.parse().map_err(|_| {
        err(
            node.span(),
            key,
            format!("expected an IPv6 prefix like 2001:db8:0:9::/64, found `{s}`"),
        )
    })?;
    plan::check_net(&IpNet::V6(n)).map_err(|e| err(node.span(), key, e.to_string()))?;
    Ok(n)
}

fn load_error(e: LoadError) -> TopologyError {
    let at = |m: &marked_yaml::Marker| (m.line(), m.column());
    let (pos, message) = match &e {
        LoadError::TopLevelMustBeMapping(m) => {
            (Some(at(m)), "the top level must be a mapping".to_string())
        }
        LoadError::ScanError(m, _) => (Some(at(m)), format!("invalid YAML: {e}")),
        LoadError::DuplicateKey(inner) => (
            inner.key.span().start().map(at),
            format!("duplicate key `{}`", inner.key.as_str()),
        ),
        LoadError::TopLevelMustBeSequence(m)
        | LoadError::UnexpectedAnchor(m)
        | LoadError::MappingKeyMustBeScalar(m)
        | LoadError::UnexpectedTag(m) => (Some(at(m)), e.to_string()),
    };
    let (line, column) = pos.unwrap_or((0, 0));
    TopologyError {
        line,
        column,
        key: "topology".into(),
        message,
    }
}

impl Lab {
    /// Builds a topology in a new lab named after it.
    pub fn up(topo: &Topology) -> Result<Lab> {
        let lab = Lab::new(topo.name.as_deref().unwrap_or("topology"))?;
        lab.build(topo, &AtomicBool::new(false))?;
        Ok(lab)
    }

    /// Builds `topo` into this lab, checking `cancel` between steps (Ctrl-C): when it is set
    /// the build stops with [`LabError::Interrupted`] (dropping the lab removes what exists).
    pub fn build(&self, topo: &Topology, cancel: &AtomicBool) -> Result<()> {
        let step = || {
            if cancel.load(Ordering::SeqCst) {
                Err(LabError::Interrupted)
            } else {
                Ok(())
            }
        };
        for h in &topo.hosts {
            step()?;
            let opts = HostOpts {
                index: h.index,
                ..HostOpts::default()
            };
            match h.kind {
                HostKind::Node => self.node_with(&h.name, &opts)?,
                HostKind::Router => self.router_with(&h.name, &opts)?,
                _ => self.host_with(&h.name, &opts)?,
            };
        }
        for h in &topo.hosts {
            let node = self.get(&h.name)?;
            for p in &h.pods {
                step()?;
                self.pod(&node, p)?;
            }
        }
        for s in &topo.segments {
            step()?;
            let members: Vec<_> = s
                .members
                .iter()
                .map(|m| self.get(m))
                .collect::<Result<_>>()?;
            let refs: Vec<&_> = members.iter().collect();
            self.segment_with(
                &s.name,
                &refs,
                &SegmentOpts {
                    subnet4: s.subnet4,
                    subnet6: s.subnet6,
                },
            )?;
        }
        for l in &topo.links {
            step()?;
            let (a, b) = (self.get(&l.a)?, self.get(&l.b)?);
            self.link_with(
                &a,
                &b,
                &LinkOpts {
                    subnet4: l.subnet4,
                    subnet6: l.subnet6,
                    ..LinkOpts::default()
                },
            )?;
        }
        for h in &topo.hosts {
            step()?;
            let host = self.get(&h.name)?;
            for (net, dev) in &h.addresses {
                host.add_addr(dev, *net)?;
            }
            if !h.sysctls.is_empty() {
                netns::sysctls(host.netns(), &h.sysctls)?;
            }
            for r in &h.routes {
                host.add_route(r)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
name: rack
nodes:
  - name: node1
    pods: 2
    routes: [\"198.18.66.0/24 via 198.18.0.12\"]
  - {name: node2, pods: [web, db], index: 2}
routers:
  - name: tor
    sysctls: {net.ipv4.conf.all.rp_filter: \"0\"}
hosts:
  - name: client
    addresses: [\"198.19.255.10/32\", \"198.18.9.7/24 dev eth0\"]
segments:
  - {name: rack, members: [node1, node2, tor]}
links:
  - {a: client, b: tor, subnet: 198.18.9.0/24}
";

    #[test]
    fn a_good_topology_parses() {
        let t = Topology::from_yaml(GOOD).unwrap();
        assert_eq!(t.name.as_deref(), Some("rack"));
        let names: Vec<&str> = t.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["node1", "node2", "tor", "client"]);
        assert_eq!(t.hosts[0].pods, ["node1-pod1", "node1-pod2"]);
        assert_eq!(t.hosts[1].pods, ["web", "db"]);
        assert_eq!(t.hosts[1].index, Some(2));
        assert_eq!(
            t.hosts[2].sysctls,
            [("net.ipv4.conf.all.rp_filter".to_string(), "0".to_string())]
        );
        assert_eq!(
            t.hosts[3].addresses[1],
            ("198.18.9.7/24".parse().unwrap(), "eth0".to_string())
        );
        assert_eq!(t.segments[0].members, ["node1", "node2", "tor"]);
        assert_eq!(t.links[0].subnet4, Some("198.18.9.0/24".parse().unwrap()));
        assert_eq!(t.hosts[3].line, 11);
    }

    fn error_of(text: &str) -> TopologyError {
        Topology::from_yaml(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e = error_of("nodes:\n  - name: n1\n    podz: 2\n");
        assert_eq!((e.line, e.key.as_str()), (3, "nodes[0].podz"), "{e}");
        assert!(e.message.contains("expected one of"), "{e}");

        let e = error_of("nodes:\n  - name: n1\n    pods: many\n");
        assert_eq!((e.line, e.key.as_str()), (3, "nodes[0].pods"), "{e}");

        let e = error_of("routers:\n  - name: r\n    pods: 1\n");
        assert_eq!(
            (e.line, e.key.as_str()),
            (3, "routers[0].pods"),
            "pods only on nodes: {e}"
        );

        let e =
            error_of("nodes:\n  - name: n1\nsegments:\n  - name: rack\n    members: [n1, n9]\n");
        assert_eq!(
            (e.line, e.key.as_str()),
            (5, "segments[0].members[1]"),
            "{e}"
        );
        assert!(e.message.contains("unknown host `n9`"), "{e}");

        let e = error_of("hosts:\n  - name: c\n    addresses: [\"10.0.0.1/24\"]\n");
        assert_eq!(
            (e.line, e.key.as_str()),
            (3, "hosts[0].addresses[0]"),
            "{e}"
        );
        assert!(e.message.contains("outside the lab's plan"), "{e}");

        let e =
            error_of("hosts:\n  - name: c\n    routes:\n      - 198.18.0.0/24 via 192.168.1.1\n");
        assert_eq!((e.line, e.key.as_str()), (4, "hosts[0].routes[0]"), "{e}");

        let e = error_of("hosts:\n  - name: c\n    sysctls: {kernel.panic: \"1\"}\n");
        assert_eq!(
            (e.line, e.key.as_str()),
            (3, "hosts[0].sysctls.kernel.panic"),
            "{e}"
        );

        let e = error_of("links:\n  - {a: x}\n");
        assert_eq!((e.line, e.key.as_str()), (2, "links[0]"), "{e}");

        let e = error_of("nodes:\n  - name: Node_1\n");
        assert_eq!((e.line, e.key.as_str()), (2, "nodes[0].name"), "{e}");

        let e = error_of("nodes: [\n");
        assert!(e.line >= 1 && e.message.contains("invalid YAML"), "{e}");

        let e = error_of("name: a\nname: b\n");
        assert_eq!(e.line, 2, "duplicate key: {e}");

        let e = error_of("nodes:\n  - {name: n1, pods: [n1]}\n");
        assert!(e.message.contains("duplicate"), "{e}");

        let e =
            error_of("nodes:\n  - {name: n1, pods: [p]}\nsegments:\n  - {name: s, members: [p]}\n");
        assert!(e.message.contains("is a pod"), "{e}");
        assert_eq!(e.line, 4);

        let e = error_of("links:\n  - {a: x, b: y, subnet: 198.18.0.0/33}\n");
        assert_eq!(e.key, "links[0].subnet", "{e}");
    }

    #[test]
    fn error_display_is_one_line() {
        let e = error_of("segments:\n  - {members: []}\n");
        assert_eq!(
            e.to_string(),
            "topology line 2, column 5: segments[0]: missing key `name`"
        );
    }
}
