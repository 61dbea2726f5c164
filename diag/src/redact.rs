//! `diag collect --redact [--redact-addresses]`: what a bundle may leak, removed before it is
//! written. Pure apart from the random key for address pseudonyms.
//!
//! ```text
//!   secrets (always with --redact), in every JSON part:
//!     values of keys named like password, passwd, secret, token, auth_key, private_key, md5 -> "REDACTED"
//!     Pods: env[].value of every container -> "REDACTED";
//!           metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"] removed;
//!           metadata.managedFields removed
//!   addresses (--redact-addresses), in conntrack.txt, ip-neigh.json and bgpd-*.json:
//!     an address outside the node's own networks (interface subnets, non-default routes,
//!     loopback, link-local) -> a keyed pseudonym: IPv4 240.0.0.0/4, IPv6 100::/64 (RFC 6666),
//!     the same address always the same pseudonym within the bundle
//! ```
//! Rules, ipsets, routes and nft are configuration and stay as they are: rewriting a CIDR in
//! a rule would change what it matches.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::route::InterfaceAddrs;
use dataplane::{Family, route::Route};
use ipnet::IpNet;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bundle::{Bundle, Part, Redaction};

const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "auth_key",
    "authkey",
    "private_key",
    "md5",
];

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| k.contains(s))
}

fn redact_value(v: &mut Value, count: &mut u64) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(ann)) = m
                .get_mut("metadata")
                .and_then(|md| md.get_mut("annotations"))
                && ann
                    .remove("kubectl.kubernetes.io/last-applied-configuration")
                    .is_some()
            {
                *count += 1;
            }
            if let Some(Value::Object(md)) = m.get_mut("metadata") {
                md.remove("managedFields");
            }
            for (k, x) in m.iter_mut() {
                if is_secret_key(k) && !x.is_object() && !x.is_array() && !x.is_null() {
                    *x = Value::String("REDACTED".into());
                    *count += 1;
                } else if k == "env" {
                    for e in x.as_array_mut().into_iter().flatten() {
                        if let Some(val) = e.get_mut("value") {
                            *val = Value::String("REDACTED".into());
                            *count += 1;
                        }
                    }
                } else {
                    redact_value(x, count);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, count)),
        _ => {}
    }
}

/// What addresses stay: the node's own networks.
struct Own {
    nets: Vec<IpNet>,
}

impl Own {
    fn of(b: &Bundle) -> Own {
        let mut nets = Vec::new();
        let text = |p: Part| {
            b.part(p)
                .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
        };
        if let Some(Ok(addrs)) = text(Part::IpAddr).map(|t| InterfaceAddrs::parse_doc(&t)) {
            nets.extend(addrs.iter().flat_map(|i| &i.addrs).map(|a| a.subnet()));
        }
        for (p, f) in [(Part::IpRoute4, Family::V4), (Part::IpRoute6, Family::V6)] {
            if let Some(Ok(routes)) = text(p).map(|t| Route::parse_doc(f, &t)) {
                nets.extend(routes.iter().map(|r| r.dst).filter(|d| d.prefix_len() > 0));
            }
        }
        Own { nets }
    }

    fn keeps(&self, a: IpAddr) -> bool {
        let special = match a {
            IpAddr::V4(v) => v.is_loopback() || v.is_link_local() || v.is_unspecified(),
            IpAddr::V6(v) => {
                v.is_loopback() || v.is_unspecified() || (v.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        special || self.nets.iter().any(|n| n.contains(&a))
    }
}

struct Pseudonyms {
    key: [u8; 16],
    own: Own,
    map: BTreeMap<IpAddr, IpAddr>,
}

impl Pseudonyms {
    fn get(&mut self, a: IpAddr) -> IpAddr {
        if self.own.keeps(a) {
            return a;
        }
        let key = self.key;
        *self.map.entry(a).or_insert_with(|| {
            let mut h = Sha256::new();
            h.update(key);
            h.update(a.to_string().as_bytes());
            let d = h.finalize();
            match a {
                IpAddr::V4(_) => {
                    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
                    IpAddr::V4(Ipv4Addr::from(0xf000_0000 | (n & 0x0fff_ffff)))
                }
                IpAddr::V6(_) => {
                    let mut o = [0u8; 16];
                    o[0] = 0x01;
                    o[8..].copy_from_slice(&d[..8]);
                    IpAddr::V6(Ipv6Addr::from(o))
                }
            }
        })
    }

    fn text(&mut self, t: &str) -> String {
        let mut out = String::with_capacity(t.len());
        for (i, line) in t.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let words: Vec<String> = line
                .split(' ')
                .map(|w| match w.split_once('=') {
                    Some((k, v)) if matches!(k, "src" | "dst") => match v.parse::<IpAddr>() {
                        Ok(a) => format!("{k}={}", self.get(a)),
                        Err(_) => w.to_string(),
                    },
                    _ => w.to_string(),
                })
                .collect();
            out.push_str(&words.join(" "));
        }
        out
    }

    fn json(&mut self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Ok(a) = s.parse::<IpAddr>() {
                    *s = self.get(a).to_string();
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.json(x)),
            _ => {}
        }
    }
}

fn random_key() -> [u8; 16] {
    use std::io::Read;
    let mut k = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut k);
    }
    k
}

/// Redacts a bundle in place (see the module docs) and records it in the manifest.
pub fn redact(b: &mut Bundle, addresses: bool) {
    redact_with_key(b, addresses, random_key());
}

/// [`redact`] with a given pseudonym key (tests).
pub fn redact_with_key(b: &mut Bundle, addresses: bool, key: [u8; 16]) {
    let mut rec = Redaction {
        addresses,
        ..Redaction::default()
    };
    let json_parts: Vec<Part> = Part::ALL.into_iter().filter(|p| p.is_json()).collect();
    for p in &json_parts {
        let Some((_, c)) = b.part(*p) else { continue };
        let Ok(mut v) = serde_json::from_slice::<Value>(c) else {
            continue;
        };
        let before = rec.secrets;
        redact_value(&mut v, &mut rec.secrets);
        if rec.secrets != before || p.is_k8s() {
            b.replace(*p, serde_json::to_vec_pretty(&v).unwrap_or_default());
        }
    }
    if addresses {
        let mut ps = Pseudonyms {
            key,
            own: Own::of(b),
            map: BTreeMap::new(),
        };
        if let Some((_, c)) = b.part(Part::Conntrack) {
            let t = ps.text(&String::from_utf8_lossy(c));
            b.replace(Part::Conntrack, t.into_bytes());
        }
        for p in [Part::IpNeigh, Part::BgpdNeighbors, Part::BgpdRoutes] {
            let Some((_, c)) = b.part(p) else { continue };
            let Ok(mut v) = serde_json::from_slice::<Value>(c) else {
                continue;
            };
            ps.json(&mut v);
            b.replace(p, serde_json::to_vec(&v).unwrap_or_default());
        }
        rec.addresses_replaced = ps.map.len() as u64;
    }
    b.manifest.redaction = Some(rec);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{FileEntry, FileStatus, Manifest};

    fn put(b: &mut Bundle, part: Part, text: &str) {
        b.put(
            FileEntry {
                part,
                file: None,
                command: "x".into(),
                status: FileStatus::Ok,
                exit_code: Some(0),
                note: None,
                bytes: None,
                sha256: None,
                truncated: None,
            },
            Some(text.as_bytes().to_vec()),
        );
    }

    #[test]
    fn secrets_and_foreign_addresses_go() {
        let mut b = Bundle::new(Manifest::new("n", "t"), "t");
        put(
            &mut b,
            Part::K8sPods,
            r#"{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"a",
              "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{..}"}},
              "spec":{"containers":[{"name":"c","env":[{"name":"DB","value":"hunter2"}]}]}}]}"#,
        );
        put(
            &mut b,
            Part::BgpdNeighbors,
            r#"[{"peer":"198.18.0.1","password":"s3cret"}]"#,
        );
        put(
            &mut b,
            Part::IpAddr,
            r#"[{"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"198.18.0.11","prefixlen":24}]}]"#,
        );
        put(
            &mut b,
            Part::Conntrack,
            "ipv4     2 tcp      6 100 ESTABLISHED src=198.19.255.7 dst=198.18.0.11 sport=1 dport=2 src=198.18.0.11 dst=198.19.255.7 sport=2 dport=1 mark=0 use=1\n",
        );
        redact_with_key(&mut b, true, [7; 16]);
        let all: String = b
            .files
            .values()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        assert!(!all.contains("hunter2") && !all.contains("s3cret"), "{all}");
        assert!(!all.contains("last-applied"), "{all}");
        assert!(!all.contains("198.19.255.7"), "{all}");
        assert!(all.contains("198.18.0.11"), "own address kept");
        let r = b.manifest.redaction.clone().unwrap();
        assert_eq!(r.secrets, 3);
        assert_eq!(r.addresses_replaced, 1);
        // the redacted conntrack still parses, with the pseudonym in both tuples
        let (_, c) = b.part(Part::Conntrack).unwrap();
        let ct = dataplane::conntrack::Conntrack::parse(&String::from_utf8_lossy(c)).unwrap();
        assert_eq!(ct.entries().len(), 1);
        assert_eq!(ct.entries()[0].orig.src, ct.entries()[0].reply.dst);
    }
}
