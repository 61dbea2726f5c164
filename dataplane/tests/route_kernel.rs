//! Kernel-differential tests for `dataplane::route` (NEEDS ROOT: they create network
//! namespaces; run as root, or skip them with `cargo test -- --skip kernel_`).
//!
//! ```text
//!   fresh netns (Drop guard) --ip -batch--> links, addresses, sysctls, routes, rules
//!        | ip -j ... show                          | ip -j route get FLOW   (>= 40 flows)
//!        v                                         v
//!   RouteState::parse --lookup(flow)--> Lookup  ==?  kernel answer (dev, gateway, src,
//!                                                     type, table, or the same error)
//! ```
//!
//! This is the one place in `dataplane` that spawns processes (`ip`), as test code only.
//! Namespaces are named `rtk<pid>-<tag>` and deleted on drop, also when a test panics.

mod common;

use std::process::Command;

use common::{compare, parse_args};
use dataplane::route::{
    IpDocuments, Outcome, RouteProtocol, RouteSettings, RouteState, RpFilter, RpVerdict,
};
use serde_json::Value;

fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "route_kernel tests need root (they create network namespaces): run as root or \
         skip with `cargo test -- --skip kernel_`"
    );
}

/// A network namespace that is deleted when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("rtk{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n NS ARGS`, panicking on failure.
    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `ip -n NS [-4|-6] -batch -` with `text` on stdin.
    fn batch(&self, family_flag: &str, text: &str) {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["-n", &self.name, family_flag, "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ip -batch");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write batch");
        let out = child.wait_with_output().expect("ip -batch");
        assert!(
            out.status.success(),
            "ip {family_flag} -batch failed: {}\n--- batch ---\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sysctl(&self, key: &str, value: &str) {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.name,
                "sysctl",
                "-qw",
                &format!("{key}={value}"),
            ],
        );
    }

    /// The `ip -j route get` answer for `args`, as the fixture files store it.
    fn route_get(&self, args: &str) -> Value {
        let mut full = vec!["-n", self.name.as_str(), "-j", "route", "get"];
        full.extend(args.split_whitespace());
        let out = Command::new("ip")
            .args(&full)
            .output()
            .expect("ip route get");
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).expect("route get JSON");
            serde_json::json!({"args": args, "out": v})
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("RTNETLINK answers: ")
                .to_string();
            serde_json::json!({"args": args, "error": err})
        }
    }

    /// Parses this namespace's `ip -j` documents.
    fn state(&self) -> RouteState {
        let link = self.ip(&["-j", "-d", "link", "show"]);
        let addr = self.ip(&["-j", "addr", "show"]);
        let route4 = self.ip(&["-j", "-4", "route", "show", "table", "all"]);
        let route6 = self.ip(&["-j", "-6", "route", "show", "table", "all"]);
        let rule4 = self.ip(&["-j", "rule", "show"]);
        let rule6 = self.ip(&["-j", "-6", "rule", "show"]);
        let docs = IpDocuments {
            link: link.as_str(),
            addr: addr.as_str(),
            route4: route4.as_str(),
            route6: route6.as_str(),
            rule4: rule4.as_str(),
            rule6: rule6.as_str(),
        };
        RouteState::parse(&docs).unwrap_or_else(|e| panic!("parse live state: {e}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test node `k` with two peers: links, addresses and sysctls (no routes or rules).
struct Topology {
    k: Netns,
    _a: Netns,
    _b: Netns,
}

fn topology(tag: &str) -> Topology {
    let k = Netns::new(&format!("{tag}k"));
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    k.batch(
        "-4",
        &format!(
            "link add k-a type veth peer name p-a netns {a}\n\
             link add k-b type veth peer name p-b netns {b}\n\
             link add k-d type veth peer name p-d netns {a}\n\
             link add k-c type veth peer name k-cp\n\
             link add br0 type bridge\n\
             link set k-a up\nlink set k-b up\nlink set k-c up\nlink set k-d up\nlink set br0 up\n\
             link set k-b group 9\n\
             addr add 198.18.10.1/24 dev k-a\n\
             addr add 198.18.11.1/24 dev k-b\n\
             addr add 198.18.12.1/24 dev k-c\n\
             addr add 198.18.13.1/24 dev k-d\n\
             addr add 198.18.14.1/24 dev br0\n\
             addr add 198.19.255.20/32 dev lo\n",
            a = a.name,
            b = b.name
        ),
    );
    k.batch(
        "-6",
        "addr add 2001:db8:10::1/64 dev k-a nodad\n\
         addr add 2001:db8:11::1/64 dev k-b nodad\n\
         addr add 2001:db8:12::1/64 dev k-c nodad\n",
    );
    a.ip(&["link", "set", "p-a", "up"]);
    a.ip(&["link", "set", "p-d", "up"]);
    b.ip(&["link", "set", "p-b", "up"]);
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
        ("net.ipv4.conf.all.ignore_routes_with_linkdown", "1"),
        ("net.ipv6.conf.all.ignore_routes_with_linkdown", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.k-a.rp_filter", "2"),
        ("net.ipv4.conf.k-b.rp_filter", "1"),
        ("net.ipv4.conf.k-c.rp_filter", "0"),
        ("net.ipv4.conf.k-d.rp_filter", "0"),
    ] {
        k.sysctl(key, value);
    }
    Topology { k, _a: a, _b: b }
}

const ROUTES_V4: &str = "\
route add default via 198.18.10.2
route add 198.18.80.0/24 via 198.18.11.2 metric 10
route add 198.18.80.0/24 via 198.18.10.2 metric 20
route add 198.18.81.0/24 dev k-c metric 1
route add 198.18.81.0/24 via 198.18.10.2 metric 5
route add 198.18.82.0/24 nexthop via 198.18.10.2 weight 1 nexthop via 198.18.11.2 weight 4
route add 198.18.83.0/24 nexthop via 198.18.10.2 dev k-a nexthop via 198.18.13.2 dev k-d
route add blackhole 198.18.84.0/24
route add unreachable 198.18.85.0/24
route add prohibit 198.18.86.0/24
route add throw 198.18.87.0/24
route add 198.18.88.0/24 via 198.18.11.2 src 198.18.10.1
route add 198.18.89.0/24 via 198.18.11.2 dev k-b proto bird
route add 198.18.90.0/24 via 198.18.11.2 dev k-b table 100
route add 198.19.0.0/16 via 198.18.11.2 table 100
route add unreachable default table 101
route add blackhole default table 102
route add default via 198.18.11.2 table 253
route add local 198.19.254.0/24 dev lo table local
rule add pref 50 fwmark 0x1/0x1 lookup 101
rule add pref 60 ipproto udp dport 53 lookup 102
rule add pref 70 from 198.18.11.0/24 lookup 100
rule add pref 80 iif k-b lookup 100
rule add pref 90 to 198.19.3.0/24 prohibit
rule add pref 95 to 198.19.4.0/24 unreachable
rule add pref 96 to 198.19.5.0/24 blackhole
rule add pref 100 tos 0x08 lookup 100
rule add pref 110 not iif lo lookup 100
rule add pref 120 lookup main suppress_ifgroup 9
rule add pref 130 lookup main suppress_prefixlength 0
rule add pref 140 sport 1000-2000 lookup 100
rule add pref 150 oif k-b lookup 100
rule add pref 160 to 198.19.6.0/24 goto 180
rule add pref 170 to 198.19.6.0/24 prohibit
rule add pref 180 to 198.19.6.0/24 lookup 100
";

const ROUTES_V6: &str = "\
route add default via 2001:db8:10::2
route add 2001:db8:80::/64 nexthop via 2001:db8:10::2 dev k-a weight 2 nexthop via 2001:db8:11::2 dev k-b
route add 2001:db8:81::/64 dev k-c
route add blackhole 2001:db8:84::/64
route add unreachable 2001:db8:85::/64
route add prohibit 2001:db8:86::/64
route add throw 2001:db8:87::/64
route add 2001:db8:88::/64 via 2001:db8:11::2 metric 10
route add 2001:db8:88::/64 via 2001:db8:10::2 metric 20
route add 2001:db8:89::/64 via 2001:db8:10::2 dev k-a pref low
route append 2001:db8:89::/64 dev k-b pref high
route add 2001:db8:99::/64 via 2001:db8:11::2 table 100
rule add pref 50 fwmark 0x1/0x1 unreachable
rule add pref 60 to 2001:db8:90::/64 prohibit
rule add pref 70 from 2001:db8:11::/64 lookup 100
rule add pref 80 iif k-b lookup 100
";

/// Flows asked of both the kernel and the model.
const FLOWS: &[&str] = &[
    // IPv4, sent locally
    "198.18.80.9",
    "198.18.81.9",
    "198.18.82.9",
    "198.18.83.9",
    "198.18.84.9",
    "198.18.85.9",
    "198.18.86.9",
    "198.18.87.9",
    "198.18.88.9",
    "198.18.89.9",
    "198.18.90.9",
    "198.18.99.9",
    "198.18.99.9 mark 0x1",
    "198.18.99.9 mark 0x3",
    "198.18.99.9 mark 0x2",
    "198.18.99.9 ipproto udp dport 53",
    "198.18.99.9 ipproto udp dport 54",
    "198.18.99.9 ipproto tcp sport 1500",
    "198.18.90.9 ipproto tcp sport 1500",
    "198.19.0.9",
    "198.19.0.9 from 198.18.11.1",
    "198.19.3.9",
    "198.19.4.9",
    "198.19.5.9",
    "198.19.6.9",
    "198.19.0.9 tos 0x08",
    "198.18.10.1",
    "198.18.10.255",
    "198.18.14.1",
    "198.19.255.20",
    "198.19.254.99",
    "198.18.99.9 oif k-b",
    "198.18.84.9 oif k-a",
    "198.18.99.9 from 198.18.77.7",
    "198.18.99.9 from 127.0.0.1",
    "198.18.99.9 from 198.19.254.7",
    "0.0.0.0",
    "198.18.12.9",
    "198.18.13.9",
    // IPv4, received
    "198.18.80.9 from 198.18.10.2 iif k-a",
    "198.19.0.9 from 198.18.10.2 iif k-a",
    "198.18.99.9 from 198.18.11.2 iif k-b",
    "198.18.99.9 from 198.18.10.2 iif k-b",
    "198.18.10.1 from 198.18.11.2 iif k-b",
    "198.18.10.1 iif k-a",
    "198.18.84.9 from 198.18.10.2 iif k-a",
    "198.18.85.9 from 198.18.10.2 iif k-a",
    "198.18.86.9 from 198.18.10.2 iif k-a",
    "198.18.10.1 from 198.18.10.1 iif k-a",
    "198.18.99.9 from 198.19.77.1 iif k-b",
    "198.18.99.9 from 198.19.77.1 iif k-a",
    "198.18.82.9 from 198.18.10.2 iif k-a",
    "198.18.99.9 from 198.18.10.2 iif k-a mark 0x1",
    "198.18.10.255 from 198.18.10.2 iif k-a",
    // IPv6
    "2001:db8:80::9",
    "2001:db8:81::9",
    "2001:db8:84::9",
    "2001:db8:85::9",
    "2001:db8:86::9",
    "2001:db8:87::9",
    "2001:db8:88::9",
    "2001:db8:89::9",
    "2001:db8:99::9",
    "2001:db8:99::9 mark 0x1",
    "2001:db8:90::9",
    "2001:db8:99::9 from 2001:db8:11::1",
    "2001:db8:10::1",
    "2001:db8:10::77",
    "2001:db8:12::9",
    "2001:db8:99::9 from 2001:db8:10::2 iif k-a",
    "2001:db8:99::9 from 2001:db8:11::2 iif k-b",
    "2001:db8:99::9 oif k-b",
    "2001:db8:99::9 oif k-a",
    "2001:db8:10::",
    "255.255.255.255",
    "224.0.0.5 oif k-a",
    "198.18.99.9 from 198.18.10.1 oif k-b",
];

/// The effective `rp_filter` of each interface as set in [`topology`] (max of all and dev).
fn rp_filter_of(dev: &str) -> RpFilter {
    match dev {
        "k-a" => RpFilter::Loose,
        "k-b" => RpFilter::Strict,
        _ => RpFilter::Off,
    }
}

fn settings() -> RouteSettings {
    RouteSettings {
        ipv4_forwarding: Some(true),
        ipv6_forwarding: Some(true),
        ignore_routes_with_linkdown: Some(true),
        route_localnet: Some(false),
    }
}

fn load_routes(k: &Netns) {
    k.batch("-4", ROUTES_V4);
    k.batch("-6", ROUTES_V6);
    // The dead next hop: k-d goes down after the multipath route through it exists.
    k.ip(&["link", "set", "k-d", "down"]);
}

#[test]
fn kernel_lookup_agrees_with_ip_route_get() {
    require_root();
    let t = topology("l");
    load_routes(&t.k);
    let mut state = t.k.state();
    state.settings = settings();
    let mut failures = Vec::new();
    let mut errors = std::collections::BTreeSet::new();
    let mut rp_failures = 0;
    for args in FLOWS {
        let answer = t.k.route_get(args);
        if let Some(e) = answer.get("error").and_then(Value::as_str) {
            errors.insert(e.to_string());
        }
        let flow = parse_args(args);
        let lookup = state.lookup(&flow);
        // rp_filter is the caller's check (the tracer's): apply it as the kernel does for
        // received packets that are forwarded or delivered.
        let out_dev = match &lookup.outcome {
            Outcome::Unicast { hops, .. } => hops.first().map(|h| h.dev.as_str()),
            _ => None,
        };
        let expected: Option<&[&str]> = match (&flow.iif, &lookup.outcome) {
            (Some(iif), Outcome::Unicast { .. } | Outcome::Local { .. }) => {
                match state
                    .reverse_path(&flow, out_dev, rp_filter_of(iif), false)
                    .verdict
                {
                    // EXDEV; Linux >= 6.13 reports input drop reasons as EINVAL.
                    RpVerdict::Fail { .. } => {
                        Some(&["Invalid cross-device link", "Invalid argument"])
                    }
                    RpVerdict::Martian { .. } => Some(&["Invalid argument"]),
                    RpVerdict::Pass => None,
                }
            }
            _ => None,
        };
        if expected.is_some() {
            rp_failures += 1;
        }
        let result = match expected {
            Some(errs) => match answer.get("error").and_then(Value::as_str) {
                Some(e) if errs.contains(&e) => Ok(()),
                _ => Err(format!("kernel: {answer}; model: rp_filter says {errs:?}")),
            },
            None => compare(&state, &lookup, &answer),
        };
        if let Err(e) = result {
            failures.push(format!("ip route get {args}: {e}"));
        }
    }
    assert!(FLOWS.len() >= 40);
    assert!(
        failures.is_empty(),
        "{} of {} flows differ:\n{}",
        failures.len(),
        FLOWS.len(),
        failures.join("\n")
    );
    assert!(rp_failures >= 1, "no flow failed the reverse-path check");
    for want in [
        "Network is unreachable",
        "No route to host",
        "Permission denied",
        "Invalid argument",
    ] {
        assert!(
            errors.contains(want),
            "no flow produced {want:?}: {errors:?}"
        );
    }
}

#[test]
fn kernel_ip_batch_recreates_routes_and_rules() {
    require_root();
    let src = topology("s");
    load_routes(&src.k);
    let original = src.k.state();
    let batch = original.to_ip_batch();

    let dst = topology("d");
    dst.k.batch("-4", &batch.ipv4);
    dst.k.batch("-6", &batch.ipv6);
    dst.k.ip(&["link", "set", "k-d", "down"]);
    let rebuilt = dst.k.state();

    let texts = |s: &RouteState| {
        let mut routes: Vec<String> = s
            .routes
            .iter()
            .filter(|r| r.protocol != Some(RouteProtocol::KERNEL))
            .map(|r| r.to_string())
            .collect();
        routes.sort();
        let rules: Vec<String> = s.rules.iter().map(|r| r.to_string()).collect();
        (routes, rules)
    };
    let (want_routes, want_rules) = texts(&original);
    let (got_routes, got_rules) = texts(&rebuilt);
    assert!(want_routes.len() >= 25, "{want_routes:?}");
    assert_eq!(got_rules, want_rules);
    assert_eq!(got_routes, want_routes);
}
