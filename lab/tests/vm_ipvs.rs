//! System test, VM tier: IPVS in a QEMU guest on Debian's cloud kernel (this host kernel has
//! no IPVS), in one boot:
//! (a) `ipvs-probe restore` programs services of every kind through dataplane's netlink codec,
//!     and `ipvsadm -Sn` shows exactly what was asked;
//! (b) `ipvs-probe save` / `counters` dump through the codec and equal ipvsadm's view
//!     (`-Sn`, `-Ln`, `-Ln --stats --exact`, `-Ln --persistent-conn`);
//! (c) real HTTP through VIPs on a dummy `kube-ipvs0` to busybox httpd backends in a netns:
//!     round robin, a weight set to 0 through the codec (graceful termination), IPv6, and a
//!     service without real servers refusing; the tracer's shares predict each split.
//! Everything runs inside the guest; the host only runs qemu. Skipped with a message when qemu
//! or the kernel package is unavailable, unless `K8S_DATAPLANE_REQUIRE_VM=1`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dataplane::Packet;
use dataplane::ipvs::{IpvsState, Listing};
use lab::vm::probe::{PROBE_GUEST_PATH, counters_text};
use lab::vm::{Vm, VmError, VmImage};

/// What the probe programs, in ipvsadm's order. Thresholds are set but `ipvsadm -S` leaves
/// them out (see `WANT_SAVED`).
const WANT: &str = "\
-A -t 198.19.0.10:80 -s rr
-a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1
-a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1
-A -t 198.19.0.11:80 -s wrr -p 10800
-a -t 198.19.0.11:80 -r 198.18.64.2:8080 -m -w 3
-a -t 198.19.0.11:80 -r 198.18.64.3:8080 -m -w 0
-A -t 198.19.0.13:80 -s mh -b mh-fallback,mh-port
-a -t 198.19.0.13:80 -r 198.18.65.2:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-A -t 198.19.0.16:80 -s rr
-A -u 198.19.0.12:53 -s sh -b sh-fallback,sh-port
-a -u 198.19.0.12:53 -r 198.18.64.2:5353 -m -w 2
-A -u 198.19.0.15:5060 -s rr -p 60 -M 255.255.255.0 --pe sip -o
-A --sctp-service 198.19.0.14:9000 -s lc
-a --sctp-service 198.19.0.14:9000 -r 198.18.64.2:9000 -m -w 1 -x 100 -y 10
-A -t [2001:db8:ff::10]:80 -s sed -p 60 -M 64
-a -t [2001:db8:ff::10]:80 -r [2001:db8:64:1::2]:8080 -m -w 1
-A -f 100 -s wlc -p 300 -M 255.255.255.0
-a -f 100 -r 198.18.64.2:0 -m -w 1
";

const SCRIPT: &str = r#"
# VIPs on kube-ipvs0; backends 198.18.64.2 / .3 / 2001:db8:64:1::2 in netns be, each with
# its own page so the answer names the backend
check setup-dummy ip link add kube-ipvs0 type dummy
ip link set kube-ipvs0 up
for v in 10 11 12 13 14 15 16; do ip addr add 198.19.0.$v/32 dev kube-ipvs0; done
ip -6 addr add 2001:db8:ff::10/128 dev kube-ipvs0 nodad
check setup-netns ip netns add be
check setup-veth ip link add vh type veth peer name vb netns be
ip addr add 198.18.64.1/24 dev vh
ip -6 addr add 2001:db8:64:1::1/64 dev vh nodad
ip link set vh up
ip -n be link set lo up
ip -n be addr add 198.18.64.2/24 dev vb
ip -n be addr add 198.18.64.3/24 dev vb
ip -n be -6 addr add 2001:db8:64:1::2/64 dev vb nodad
ip -n be link set vb up
ip -n be route add default via 198.18.64.1
ip -n be -6 route add default via 2001:db8:64:1::1
ip route add 198.18.65.0/24 via 198.18.64.2
echo 1 > /proc/sys/net/ipv4/vs/conntrack
for b in 2 3 6; do mkdir -p /www$b; echo "be-$b" > /www$b/index.html; done
check setup-httpd-2 ip netns exec be busybox httpd -p 198.18.64.2:8080 -h /www2
check setup-httpd-3 ip netns exec be busybox httpd -p 198.18.64.3:8080 -h /www3
check setup-httpd-6 ip netns exec be busybox httpd -p [2001:db8:64:1::2]:8080 -h /www6

# (a) program through our codec; ipvsadm's view
check probe-restore ipvs-probe restore /etc/ipvs-want.sn
block ipvsadm-save ipvsadm -Sn
block ipvsadm-thresholds ipvsadm -Ln --thresholds
# (b) dump through our codec
block probe-save ipvs-probe save

# (c) traffic
for i in 1 2 3 4; do result rr-$i "$(http_get 198.19.0.10 80 /index.html | tail -1)"; done
for i in 1 2; do result wrr-$i "$(http_get 198.19.0.11 80 /index.html | tail -1)"; done
result v6 "$(http_get 2001:db8:ff::10 80 /index.html | tail -1)"
result no-server "$(http_get 198.19.0.16 80 / 2>&1 | tail -1)"
# the last connections' closing packets may still move the counters: list them once they
# stand still (two equal readings 0.5 s apart), so ipvsadm's view and the codec's dump agree
prev=""
for i in $(seq 1 20); do
  cur="$(ipvsadm -Ln --stats --exact)"
  [ "$cur" = "$prev" ] && break
  prev="$cur"
  sleep 0.5
done
block ipvsadm-list ipvsadm -Ln
block ipvsadm-stats ipvsadm -Ln --stats --exact
block ipvsadm-persist ipvsadm -Ln --persistent-conn
block probe-counters ipvs-probe counters
# graceful termination through our codec: weight 0, new connections go elsewhere
check probe-weight0 ipvs-probe set-weight "-a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 0"
block ipvsadm-save-after ipvsadm -Sn
for i in 1 2; do result drain-$i "$(http_get 198.19.0.10 80 /index.html | tail -1)"; done
"#;

fn vm_required() -> bool {
    std::env::var("K8S_DATAPLANE_REQUIRE_VM").is_ok_and(|v| v == "1")
}

/// The expected `ipvsadm -Sn`: WANT without thresholds.
fn want_saved() -> String {
    without_thresholds(WANT)
}

fn without_thresholds(save: &str) -> String {
    let mut s = IpvsState::from_save(save).unwrap();
    for svc in &mut s.services {
        for rs in &mut svc.servers {
            rs.u_threshold = 0;
            rs.l_threshold = 0;
        }
    }
    s.to_save()
}

/// How many answers came from each backend, for results `prefix-N`.
fn answers(out: &lab::vm::VmOutput, prefix: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (k, v) in &out.results {
        if k.starts_with(prefix) {
            *m.entry(v.clone()).or_default() += 1;
        }
    }
    m
}

/// The tracer's shares for a SYN to `vip:80`, as `be-N -> share`.
fn predicted(state: &IpvsState, vip: &str) -> BTreeMap<String, f64> {
    let pkt = Packet::tcp("198.18.64.1".parse().unwrap(), vip.parse().unwrap(), 80);
    let sel = state.select(&pkt).expect("a service for the VIP");
    sel.chosen()
        .map(|c| {
            let last = c.server.addr.to_string();
            let n = last.rsplit('.').next().unwrap().to_string();
            (format!("be-{n}"), c.share)
        })
        .collect()
}

#[test]
fn vm_ipvs_system_test() {
    let t0 = Instant::now();
    let work = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vm-ipvs-{}", std::process::id()));
    let image = match VmImage::builder(&work)
        .binary(env!("CARGO_BIN_EXE_ipvs-probe"), PROBE_GUEST_PATH)
        .data("/etc/ipvs-want.sn", WANT, 0o644)
        .module("ip_vs_pe_sip")
        .build()
    {
        Ok(i) => i,
        Err(e @ (VmError::NoKernel { .. } | VmError::MissingTool { .. })) if !vm_required() => {
            eprintln!("skipping the IPVS VM test: {e}");
            return;
        }
        Err(e) => panic!("image: {e}"),
    };
    let built = t0.elapsed();
    let out = Vm::run(&image, SCRIPT, Duration::from_secs(600)).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "IPVS VM test: image {built:.1?}, boot to script {:.1?} (guest uptime {:?} s), \
         qemu wall {:.1?}, whole test {:.1?}",
        out.boot_time.unwrap_or_default(),
        out.ready_uptime,
        out.wall_time,
        t0.elapsed()
    );
    let tail = out.tail(60);
    assert_eq!(out.exit_code, Some(0), "{tail}");
    assert_eq!(out.failed_checks(""), [], "{tail}");

    // (a) what ipvsadm sees is exactly what the codec was asked to program
    let saved = out.block("ipvsadm-save").unwrap();
    assert_eq!(saved, want_saved(), "ipvsadm -Sn after ipvs-probe restore");
    let th = Listing::parse(out.block("ipvsadm-thresholds").unwrap()).unwrap();
    let sctp = th
        .services
        .iter()
        .find(|s| s.key.to_string() == "SCTP 198.19.0.14:9000")
        .unwrap();
    assert_eq!(
        (sctp.servers[0].u_threshold, sctp.servers[0].l_threshold),
        (Some(100), Some(10))
    );

    // (b) the codec's dump equals ipvsadm's view, configuration and counters
    // the dump is exactly what was asked for, thresholds included (ipvsadm -S leaves them out)
    let dumped = out.block("probe-save").unwrap();
    assert_eq!(dumped, WANT);
    assert_eq!(without_thresholds(dumped), saved);
    let mut view = IpvsState::from_save(saved).unwrap();
    for b in ["ipvsadm-list", "ipvsadm-stats", "ipvsadm-persist"] {
        let l = Listing::parse(out.block(b).unwrap()).unwrap();
        assert!(view.merge_listing(&l).is_empty(), "{b}");
    }
    assert_eq!(out.block("probe-counters").unwrap(), counters_text(&view));
    let rr = view
        .services
        .iter()
        .find(|s| s.key.to_string() == "TCP 198.19.0.10:80")
        .unwrap();
    assert_eq!(
        rr.counters.unwrap().conns,
        4,
        "four connections through the VIP"
    );

    // (c) traffic went where the tracer says it may go
    let want_state = IpvsState::from_save(WANT).unwrap();
    assert_eq!(
        predicted(&want_state, "198.19.0.10"),
        BTreeMap::from([("be-2".into(), 0.5), ("be-3".into(), 0.5)])
    );
    assert_eq!(
        answers(&out, "rr-"),
        BTreeMap::from([("be-2".into(), 2), ("be-3".into(), 2)]),
        "rr alternates"
    );
    assert_eq!(
        predicted(&want_state, "198.19.0.11"),
        BTreeMap::from([("be-2".into(), 1.0)])
    );
    assert_eq!(
        answers(&out, "wrr-"),
        BTreeMap::from([("be-2".into(), 2)]),
        "weight 0 takes nothing"
    );
    assert_eq!(out.result("v6"), Some("be-6"));
    // no real server: ICMP port unreachable, which the client sees as a refused connection
    let no_server = want_state
        .select(&Packet::tcp(
            "198.18.64.1".parse().unwrap(),
            "198.19.0.16".parse().unwrap(),
            80,
        ))
        .unwrap();
    assert_eq!(no_server.unreachable, 1.0);
    let refused = out.result("no-server").unwrap_or_default();
    assert!(refused.contains("refused"), "no-server: {refused:?}");

    // graceful termination set through the codec
    let after = IpvsState::from_save(out.block("ipvsadm-save-after").unwrap()).unwrap();
    assert_eq!(
        predicted(&after, "198.19.0.10"),
        BTreeMap::from([("be-2".into(), 1.0)])
    );
    assert_eq!(
        answers(&out, "drain-"),
        BTreeMap::from([("be-2".into(), 2)])
    );
}
