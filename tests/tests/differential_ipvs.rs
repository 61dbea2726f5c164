//! Kernel vs tracer through IPVS, in the VM tier (this host kernel has no IPVS): one boot of
//! Debian's cloud kernel under QEMU (see `lab::vm`) sets up a node with kube-proxy's IPVS mode
//! (the helper iptables rules and ipsets of `dataplane/tests/fixtures/trace/kube-proxy-ipvs.*`
//! and its virtual servers, VIPs on a `kube-ipvs0` dummy), a client and three pods in network
//! namespaces of the guest; captures the node's state as diag would (iptables-save, ipset save,
//! ip -j, sysctl, nft -j, ipvsadm -Sn); sends real HTTP requests whose answers name the pod and
//! the client address it saw. On the host, the captured dumps become a `NodeState`, the tracer
//! predicts every answer each request may get, and every answer seen must be one of them (and,
//! where IPVS round robin spreads the requests, every predicted one is seen). A second
//! capture after adding a filter INPUT drop and a nat INPUT SNAT checks where IPVS sits
//! between them (after filter at priority 0, before nat at 100, which it never reaches).
//!
//! ```text
//!   client ns 198.18.0.101 --c0/eth0-- node 198.18.0.11 (root ns of the guest)
//!                                        kube-ipvs0 (down): 198.19.0.10 .20 .30 .53 .77
//!                                        caliN -- podN ns 198.18.65.N/32 (N = 2, 3, 4), httpd
//!                                                  :8080 with a CGI answering "be-N REMOTE_ADDR"
//! ```
//! Skipped with a message when qemu or the kernel package is unavailable, unless
//! `K8S_DATAPLANE_REQUIRE_VM=1`. Nothing runs in the host's namespaces.

#![allow(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dataplane::node::{Backend, NodeDumps, NodeState, Sysctls};
use dataplane::route::{IpDocuments, strip_capture_header};
use dataplane::trace::{Trace, Verdict, trace};
use dataplane::{Family, Packet};
use lab::vm::{Vm, VmError, VmImage, VmOutput};

fn fixture(name: &str) -> String {
    let p = format!(
        "{}/../dataplane/tests/fixtures/trace/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    strip_capture_header(&text).1.to_string()
}

/// A request: who sends, to where, how often.
struct Req {
    /// 1: kube-proxy's rules as loaded; 2: plus a filter INPUT drop and a nat INPUT SNAT.
    phase: u8,
    name: &'static str,
    /// `client`, `pod2`..`pod4`, or `node`.
    from: &'static str,
    dst: &'static str,
    port: u16,
    tries: usize,
    /// Every predicted answer must be seen (IPVS rr over `tries` >= servers).
    all_seen: bool,
}

const REQS: &[Req] = &[
    Req {
        phase: 1,
        name: "clusterip",
        from: "client",
        dst: "198.19.0.10",
        port: 80,
        tries: 4,
        all_seen: true,
    },
    Req {
        phase: 1,
        name: "weight0",
        from: "client",
        dst: "198.19.0.20",
        port: 80,
        tries: 2,
        all_seen: true,
    },
    Req {
        phase: 1,
        name: "noserver",
        from: "client",
        dst: "198.19.0.77",
        port: 80,
        tries: 1,
        all_seen: true,
    },
    Req {
        phase: 1,
        name: "filtered",
        from: "client",
        dst: "198.19.0.10",
        port: 81,
        tries: 1,
        all_seen: true,
    },
    Req {
        phase: 1,
        name: "nodeport",
        from: "client",
        dst: "198.18.0.11",
        port: 30080,
        tries: 1,
        all_seen: true,
    },
    Req {
        phase: 1,
        name: "hairpin",
        from: "pod2",
        dst: "198.19.0.10",
        port: 80,
        tries: 2,
        all_seen: true,
    },
    Req {
        phase: 1,
        name: "localout",
        from: "node",
        dst: "198.19.0.10",
        port: 80,
        tries: 2,
        all_seen: true,
    },
    Req {
        phase: 1,
        name: "affinity",
        from: "pod4",
        dst: "198.19.0.30",
        port: 80,
        tries: 2,
        all_seen: true,
    },
    Req {
        phase: 1,
        name: "nodeport-closed",
        from: "client",
        dst: "198.18.0.11",
        port: 22,
        tries: 1,
        all_seen: true,
    },
    // filter INPUT (0) runs before IPVS (99): its DROP wins
    Req {
        phase: 2,
        name: "input-drop",
        from: "client",
        dst: "198.19.0.20",
        port: 80,
        tries: 1,
        all_seen: true,
    },
    // nat INPUT (100) runs after IPVS (99), which steals the packet: no SNAT
    Req {
        phase: 2,
        name: "nat-input-skipped",
        from: "pod4",
        dst: "198.19.0.20",
        port: 80,
        tries: 2,
        all_seen: true,
    },
];

/// Source address and arrival interface of each sender, as the node sees them.
fn sender(from: &str) -> (&'static str, Option<&'static str>) {
    match from {
        "client" => ("198.18.0.101", Some("eth0")),
        "pod2" => ("198.18.65.2", Some("cali2")),
        "pod3" => ("198.18.65.3", Some("cali3")),
        "pod4" => ("198.18.65.4", Some("cali4")),
        _ => ("0.0.0.0", None),
    }
}

const SETUP: &str = r#"

# the node's uplink first: MASQUERADE out of an address-less cali device takes the first
# global address of the host (inet_select_addr), as on a node
ip netns add client
ip link add eth0 type veth peer name c0 netns client
ip addr add 198.18.0.11/24 dev eth0
ip link set eth0 up
ip -n client link set lo up
ip -n client addr add 198.18.0.101/24 dev c0
ip -n client link set c0 up
ip -n client route add default via 198.18.0.11
# a default route, as a node has: proxy ARP on the cali devices answers the pods' gateway
# 169.254.1.1 because it is routed elsewhere (the Calico way)
ip route add default via 198.18.0.101
for n in 2 3 4; do
  ip netns add pod$n
  ip link add cali$n type veth peer name eth0 netns pod$n
  ip link set cali$n up
  echo 1 > /proc/sys/net/ipv4/conf/cali$n/proxy_arp
  ip route add 198.18.65.$n dev cali$n scope link
  ip -n pod$n link set lo up
  ip -n pod$n addr add 198.18.65.$n/32 dev eth0
  ip -n pod$n link set eth0 up
  ip -n pod$n route add 169.254.1.1 dev eth0 scope link
  ip -n pod$n route add default via 169.254.1.1 dev eth0
  mkdir -p /www$n/cgi-bin
  printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "be-%s $REMOTE_ADDR"\n' $n > /www$n/cgi-bin/who
  chmod 755 /www$n/cgi-bin/who
  check httpd-$n ip netns exec pod$n busybox httpd -p 8080 -h /www$n
done
# kube-proxy's dummy, left down as kube-proxy leaves it
check dummy ip link add kube-ipvs0 type dummy
for v in 10 20 30 53 77; do ip addr add 198.19.0.$v/32 dev kube-ipvs0; done
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/ipv4/vs/conntrack
check ipset-restore ipset restore -f /etc/kp.ipset
check iptables-restore iptables-restore /etc/kp.rules
check ipvsadm-restore sh -c 'ipvsadm -R < /etc/kp.ipvs'

capture() {
  block $1iptables-save iptables-save
  block $1ip6tables-save ip6tables-save
  block $1ipset ipset save
  block $1link ip -j -d link show
  block $1addr ip -j addr show
  block $1route4 ip -j -4 route show table all
  block $1route6 ip -j -6 route show table all
  block $1rule4 ip -j rule show
  block $1rule6 ip -j -6 rule show
  block $1sysctl sysctl -e SYSCTL_KEYS
  block $1nft nft -j list ruleset
  block $1ipvs ipvsadm -Sn
}

get() {
  req="printf 'GET /cgi-bin/who HTTP/1.0\r\n\r\n' | nc -w 3 $2 $3"
  if [ "$1" = node ]; then sh -c "$req" 2>&1 | tail -1
  else ip netns exec "$1" sh -c "$req" 2>&1 | tail -1; fi
}
"#;

/// Rules added for phase 2 (IPVS between filter INPUT and nat INPUT).
const PHASE2: &str = "\
check input-drop iptables -I INPUT -s 198.18.0.101 -d 198.19.0.20/32 -p tcp --dport 80 -j DROP
check nat-input iptables -t nat -A INPUT -d 198.19.0.20/32 -j SNAT --to-source 198.18.0.11
";

/// What a request can get back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    /// The pod `be-N` answered and saw this client address.
    Pod(String, IpAddr),
    /// Connection refused (TCP RST or ICMP port unreachable).
    Refused,
    /// Nothing came back.
    Timeout,
    /// Anything else, as text.
    Other(String),
}

fn observed(line: &str) -> Answer {
    let line = line.trim();
    if line.contains("refused") {
        return Answer::Refused;
    }
    if line.is_empty() || line.ends_with("timed out") {
        return Answer::Timeout;
    }
    // busybox httpd listens on IPv6 and gives REMOTE_ADDR as `[::ffff:198.18.0.11]`
    if let Some((pod, addr)) = line.split_once(' ')
        && pod.starts_with("be-")
        && let Ok(a) = addr
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
    {
        let a = match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
            v4 => v4,
        };
        return Answer::Pod(pod.to_string(), a);
    }
    Answer::Other(line.to_string())
}

/// The answer a path's verdict predicts.
fn predicted(v: &Verdict) -> Answer {
    match v {
        Verdict::Forwarded { dst, src, .. } => {
            match dst.addr.to_string().strip_prefix("198.18.65.") {
                Some(n) if dst.port == 8080 => Answer::Pod(format!("be-{n}"), src.addr),
                _ => Answer::Timeout,
            }
        }
        // nothing listens on the node itself
        Verdict::Delivered { .. } | Verdict::Rejected { .. } => Answer::Refused,
        Verdict::Dropped { .. } => Answer::Timeout,
        other => Answer::Other(other.kind().to_string()),
    }
}

fn node_state(out: &VmOutput, phase: u8) -> NodeState {
    let block = |name: &str| {
        let name = format!("p{phase}-{name}");
        out.block(&name)
            .unwrap_or_else(|| panic!("no block {name}\n{}", out.tail(60)))
    };
    let d = NodeDumps {
        name: "vm-node",
        iptables: vec![
            (Backend::Nft, Family::V4, block("iptables-save")),
            (Backend::Nft, Family::V6, block("ip6tables-save")),
        ],
        ipset: block("ipset"),
        ip: IpDocuments {
            link: block("link"),
            addr: block("addr"),
            route4: block("route4"),
            route6: block("route6"),
            rule4: block("rule4"),
            rule6: block("rule6"),
        },
        sysctl: block("sysctl"),
        conntrack: "",
        nft: block("nft"),
        ipvs: block("ipvs"),
    };
    NodeState::from_dumps(&d).unwrap_or_else(|e| panic!("captured state: {e}"))
}

fn packet(r: &Req) -> Packet {
    let (src, iif) = sender(r.from);
    let mut p = Packet::tcp(src.parse().unwrap(), r.dst.parse().unwrap(), r.port);
    if let Some(i) = iif {
        p = p.arriving_on(i);
    }
    p
}

#[test]
fn vm_ipvs_tracer_differential() {
    let t0 = Instant::now();
    let work = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vm-ipvs-trace-{}", std::process::id()));
    let image = match VmImage::builder(&work)
        .data("/etc/kp.rules", fixture("kube-proxy-ipvs.rules"), 0o644)
        .data("/etc/kp.ipset", fixture("kube-proxy-ipvs.ipset"), 0o644)
        .data("/etc/kp.ipvs", fixture("kube-proxy-ipvs.ipvs"), 0o644)
        .build()
    {
        Ok(i) => i,
        Err(e @ (VmError::NoKernel { .. } | VmError::MissingTool { .. }))
            if std::env::var("K8S_DATAPLANE_REQUIRE_VM").is_ok_and(|v| v == "1") =>
        {
            panic!("the VM tier is required: {e}")
        }
        Err(e @ (VmError::NoKernel { .. } | VmError::MissingTool { .. })) => {
            eprintln!("skipping the IPVS tracer VM test: {e}");
            return;
        }
        Err(e) => panic!("image: {e}"),
    };
    let mut script = SETUP.replace("SYSCTL_KEYS", &Sysctls::keys_for(&["eth0", "lo"]).join(" "));
    for phase in [1, 2] {
        if phase == 2 {
            script.push_str(PHASE2);
        }
        script.push_str(&format!("capture p{phase}-\n"));
        for r in REQS.iter().filter(|r| r.phase == phase) {
            for i in 1..=r.tries {
                script.push_str(&format!(
                    "result {}-{i} \"$(get {} {} {})\"\n",
                    r.name, r.from, r.dst, r.port
                ));
            }
        }
    }
    let out = Vm::run(&image, &script, Duration::from_secs(600)).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    let tail = out.tail(80);
    assert_eq!(out.exit_code, Some(0), "{tail}");
    assert_eq!(out.failed_checks(""), [], "{tail}");
    let nodes = [node_state(&out, 1), node_state(&out, 2)];
    assert!(nodes[0].ipvs.is_some() && nodes[0].nft.is_some(), "{tail}");

    let mut failures = Vec::new();
    for r in REQS {
        let t: Trace = trace(&nodes[usize::from(r.phase - 1)], &packet(r));
        let want: BTreeMap<Answer, f64> = t.paths.iter().fold(BTreeMap::new(), |mut m, p| {
            *m.entry(predicted(&p.verdict)).or_default() += p.probability;
            m
        });
        let seen: BTreeSet<Answer> = (1..=r.tries)
            .map(|i| observed(out.result(&format!("{}-{i}", r.name)).unwrap_or("")))
            .collect();
        let unexpected: Vec<&Answer> = seen.iter().filter(|a| !want.contains_key(a)).collect();
        let missing: Vec<&Answer> = want.keys().filter(|a| !seen.contains(a)).collect();
        println!(
            "{:<16} predicted {want:?}\n{:<16} seen      {seen:?}",
            r.name, ""
        );
        if !unexpected.is_empty() || (r.all_seen && !missing.is_empty()) {
            failures.push(format!(
                "{}: predicted {want:?}, seen {seen:?}\n{t}",
                r.name
            ));
        }
    }
    eprintln!(
        "IPVS tracer VM test: boot to script {:.1?}, qemu wall {:.1?}, whole test {:.1?}",
        out.boot_time.unwrap_or_default(),
        out.wall_time,
        t0.elapsed()
    );
    assert!(failures.is_empty(), "{}\n{tail}", failures.join("\n\n"));
}
