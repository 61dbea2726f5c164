//! A larger feed from BIRD (root; lab namespaces): 10,000 IPv4 /32s from one router must all
//! reach node1's kernel, and all leave it when BIRD withdraws them. Prints the time from
//! Established to the last route installed and bgpd's peak RSS (VmHWM), for the notes; the
//! bounds asserted are generous (this is a correctness test under volume, not a benchmark).

mod support;

use std::time::{Duration, Instant};

use support::{Bgpd, Bird, wait};

const N: usize = 10_000;

fn count(node: &lab::Host) -> usize {
    node.ip(&["route", "show", "proto", "bgp"])
        .unwrap()
        .lines()
        .count()
}

#[test]
fn ten_thousand_routes_in_and_out() {
    let lab = support::lab("bgpd-scale");
    let node = lab.node("node1").unwrap();
    let tor = lab.router("tor1").unwrap();
    lab.segment("rack", &[&node, &tor]).unwrap();
    let routes: String = (0..N)
        .map(|i| format!("  route 198.19.{}.{}/32 unreachable;\n", i / 256, i % 256))
        .collect();
    let conf = |enabled: bool| {
        format!(
            "router id 198.18.0.1;
timeformat protocol iso long ms;
protocol device {{ }}
protocol static feed {{
  ipv4;
  {disabled}
{routes}}}
protocol bgp node1 {{
  local 198.18.0.1 as 65000;
  neighbor 198.18.0.11 as 65011;
  hold time 9; connect delay time 1; connect retry time 1; error wait time 1, 3;
  ipv4 {{ import all; export where proto = \"feed\"; next hop self; }};
}}
",
            disabled = if enabled { "" } else { "disabled;" }
        )
    };
    let bird = Bird::start(&lab, &tor, "tor1", &conf(false));
    let yaml = format!(
        "asn: 65011
router_id: 198.18.0.11
listen: [198.18.0.11]
control_socket: {sock}
import: [198.19.0.0/16 le 32]
peers:
  - {{ address: 198.18.0.1, asn: 65000, hold_time: 9, connect_retry: 1 }}
",
        sock = Bgpd::socket_for(&lab, "node1").display()
    );
    let bgpd = Bgpd::start(&lab, &node, "node1", &yaml);
    assert!(wait(30, || bgpd.state("198.18.0.1") == "Established"));
    let t0 = Instant::now();
    bird.birdc(&["enable", "feed"]);
    assert!(
        lab::wait_until(Duration::from_secs(120), || count(&node) >= N),
        "{} of {N} routes installed\n{}",
        count(&node),
        bgpd.logs()
    );
    let install = t0.elapsed();
    assert_eq!(bgpd.neighbor("198.18.0.1")["accepted"], N);
    let pid = bgpd.proc.as_ref().unwrap().pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?")
        .to_string();
    let t1 = Instant::now();
    bird.birdc(&["disable", "feed"]);
    assert!(
        lab::wait_until(Duration::from_secs(120), || count(&node) == 0),
        "{} routes left",
        count(&node)
    );
    eprintln!(
        "bgpd: {N} routes from BIRD installed in {:.2} s, withdrawn in {:.2} s; {hwm}",
        install.as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
}
