//! System test, VM tier: `kube-proxy-rs --proxy-mode ipvs` for real, in a QEMU guest on
//! Debian's cloud kernel (this host kernel has no IPVS), in one boot. The guest is node-a
//! (198.18.0.11, a client namespace on its uplink, three pods with busybox httpd answering
//! `be-N REMOTE_ADDR`); kube-proxy-rs runs against a manifests directory
//! (tests/fixtures/vm) and the checks send real traffic:
//! ClusterIP from a pod and from the node, NodePort from outside (masqueraded), ClientIP
//! affinity (one backend for every request), eTP Local (the local endpoint only, client
//! address kept), eTP Local without a local endpoint (dropped, no fallback), a Service
//! without endpoints (refused), and graceful termination: an endpoint removed while a TCP
//! connection holds it goes to weight 0, new connections go to the new endpoint, and the
//! real server is deleted by a periodic sync once the connection is gone; a dual-stack
//! ClusterIP over IPv6 from the node and from a pod. Then, in the same boot, the mode
//! switches: iptables mode starts on what IPVS mode left (no virtual service, no
//! kube-ipvs0, no ipset of ours, iptables mode's traffic works), IPVS mode starts again on
//! what iptables mode left (its chains are gone, traffic works; someone flushing nat's
//! built-in chains and the canaries is repaired by the full sync the canary check asks
//! for), nftables mode starts on what
//! IPVS mode left (no virtual service, kube-ipvs0, ipset or chain; traffic works), and
//! `--cleanup` leaves nothing of any mode.
//! The kernel's IPVS table (both families) must equal the render of the same manifests on
//! the host.
//! Skipped with a message when qemu or the kernel package is unavailable, unless
//! `K8S_DATAPLANE_REQUIRE_VM=1`. Nothing runs in the host's namespaces.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use dataplane::ipvs::IpvsState;
use kube_proxy_rs::config::Config;
use kube_proxy_rs::render::ipvs::{IpvsOptions, IpvsPlan, render_ipvs};
use kube_proxy_rs::source::manifest;
use lab::vm::{Vm, VmError, VmImage, VmOutput};

const SCRIPT: &str = r#"
ip netns add client
ip link add eth0 type veth peer name c0 netns client
ip addr add 198.18.0.11/24 dev eth0
ip addr add 2001:db8::11/64 dev eth0 nodad
ip link set eth0 up
echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
ip -n client link set lo up
ip -n client addr add 198.18.0.101/24 dev c0
ip -n client link set c0 up
ip -n client route add default via 198.18.0.11
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
  ip addr add fe80::1/64 dev cali$n nodad
  ip -6 route add 2001:db8:40:a::$n dev cali$n
  ip -n pod$n addr add 2001:db8:40:a::$n/128 dev eth0 nodad
  ip -n pod$n -6 route add default via fe80::1 dev eth0
  mkdir -p /www$n/cgi-bin
  printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "be-%s $REMOTE_ADDR"\n' $n > /www$n/cgi-bin/who
  chmod 755 /www$n/cgi-bin/who
  check httpd-$n ip netns exec pod$n busybox httpd -p 8080 -h /www$n
done
# the drain service's first endpoint: pod2:9000 accepts one connection and never reads it
/sbin/ip netns exec pod2 busybox nc -l -p 9000 -e /bin/sleep 120 &
HOLDER=$!

mkdir -p /etc/kp
cp /etc/vm/base.yaml /etc/kp/base.yaml
cp /etc/vm/drain-before.yaml /etc/kp/drain.yaml
FLAGS="--hostname-override=node-a --cluster-cidr=198.18.64.0/18,2001:db8:40::/48 --manifests /etc/kp"
# --ipvs-sync-period 2s: the periodic sync removes drained real servers (30s by default)
kube-proxy-rs --proxy-mode=ipvs $FLAGS --ipvs-sync-period=2s --v=4 > /tmp/kp.log 2>&1 &
KP=$!
synced=no
for i in $(seq 1 120); do
  if ipvsadm -Sn | grep -q '198.19.0.40:80 -r 198.18.65.2:9000' &&
     ipvsadm -Sn | grep -q '2001:db8:c::50'; then synced=yes; break; fi
  sleep 0.5
done
result synced $synced
block ipvs ipvsadm -Sn
block vips ip -o addr show dev kube-ipvs0
block ipset ipset save
block iptables iptables-save

get() {
  req="printf 'GET /cgi-bin/who HTTP/1.0\r\n\r\n' | nc -w 3 $2 $3"
  if [ "$1" = node ]; then sh -c "$req" 2>&1 | tail -1
  else ip netns exec "$1" sh -c "$req" 2>&1 | tail -1; fi
}

for i in 1 2 3 4; do result clusterip-pod-$i "$(get pod4 198.19.0.10 80)"; done
for i in 1 2; do result clusterip-node-$i "$(get node 198.19.0.10 80)"; done
for i in 1 2 3 4; do result nodeport-$i "$(get client 198.18.0.11 30080)"; done
for i in 1 2 3 4 5 6; do result sticky-$i "$(get client 198.19.0.30 80)"; done
for i in 1 2 3 4; do result local-$i "$(get client 198.18.0.11 30081)"; done
result remote "$(get client 198.18.0.11 30082)"
result empty-pod "$(get pod4 198.19.0.20 80)"
result empty-node "$(get node 198.19.0.20 80)"
# the dual-stack ClusterIP over IPv6, from the node (masqueraded) and from a pod
for i in 1 2 3 4; do result v6-node-$i "$(get node 2001:db8:c::50 80)"; done
for i in 1 2 3 4; do result v6-pod-$i "$(get pod4 2001:db8:c::50 80)"; done

# graceful termination: hold a connection to pod2:9000, then move the endpoint to pod3
(printf 'hold\n'; sleep 100) | /sbin/ip netns exec client busybox nc 198.19.0.40 80 > /dev/null 2>&1 &
CLIENT=$!
sleep 1
block drain-before ipvsadm -Ln -t 198.19.0.40:80
cp /etc/vm/drain-after.yaml /etc/kp/.next && mv /etc/kp/.next /etc/kp/drain.yaml
for i in $(seq 1 60); do
  ipvsadm -Sn | grep -q '198.19.0.40:80 -r 198.18.65.3:8080' && break
  sleep 0.5
done
block drain-during ipvsadm -Ln -t 198.19.0.40:80
for i in 1 2; do result drain-new-$i "$(get pod4 198.19.0.40 80)"; done
# the holder exits with the client's bytes unread: a RST ends the connection (IPVS CLOSE)
kill $HOLDER
t0=$(date +%s)
gone=no
for i in $(seq 1 90); do
  if ! ipvsadm -Sn | grep -q '198.18.65.2:9000'; then gone=yes; break; fi
  sleep 1
done
result drain-gone $gone
result drain-seconds $(( $(date +%s) - t0 ))
block drain-after ipvsadm -Ln -t 198.19.0.40:80
kill $CLIENT 2>/dev/null
kill $KP
sleep 0.5
block kp-log tail -40 /tmp/kp.log

# mode switch: iptables mode starts on what IPVS mode left
kube-proxy-rs --proxy-mode=iptables $FLAGS --v=2 > /tmp/kp-ipt.log 2>&1 &
KP=$!
synced=no
for i in $(seq 1 120); do
  if iptables-save -t nat | grep -q -- '-j KUBE-SVC-' &&
     ip6tables-save -t nat | grep -q -- '-j KUBE-SVC-'; then synced=yes; break; fi
  sleep 0.5
done
result ipt-synced $synced
block ipt-ipvs ipvsadm -Sn
result ipt-link "$(ip link show kube-ipvs0 >/dev/null 2>&1 && echo present || echo gone)"
block ipt-ipsets ipset list -n
block ipt-rules iptables-save
for i in 1 2 3 4; do result ipt-clusterip-pod-$i "$(get pod4 198.19.0.10 80)"; done
for i in 1 2; do result ipt-clusterip-node-$i "$(get node 198.19.0.10 80)"; done
for i in 1 2 3 4; do result ipt-nodeport-$i "$(get client 198.18.0.11 30080)"; done
for i in 1 2 3 4; do result ipt-v6-pod-$i "$(get pod4 2001:db8:c::50 80)"; done
kill $KP
sleep 0.5
block kp-ipt-log tail -20 /tmp/kp-ipt.log

# and back: IPVS mode starts on what iptables mode left
kube-proxy-rs --proxy-mode=ipvs $FLAGS --ipvs-sync-period=2s --v=2 > /tmp/kp-ipvs2.log 2>&1 &
KP=$!
synced=no
for i in $(seq 1 120); do
  if ipvsadm -Sn | grep -q '198.19.0.10:80' && ipvsadm -Sn | grep -q '2001:db8:c::50' &&
     ! iptables-save | grep -q 'KUBE-SVC-' && ! ip6tables-save | grep -q 'KUBE-SVC-'; then
    synced=yes; break
  fi
  sleep 0.5
done
result ipvs2-synced $synced
block ipvs2-rules iptables-save
block ipvs2-rules6 ip6tables-save
for i in 1 2 3 4; do result ipvs2-clusterip-pod-$i "$(get pod4 198.19.0.10 80)"; done
for i in 1 2; do result ipvs2-v6-node-$i "$(get node 2001:db8:c::50 80)"; done
# someone flushes nat's built-in chains and deletes the canaries: the canary check (every
# --ipvs-sync-period) asks for a full sync, which puts the jumps back (a plain sync would not)
iptables -t nat -F PREROUTING && iptables -t nat -F OUTPUT && iptables -t mangle -X KUBE-PROXY-CANARY
restored=no
for i in $(seq 1 60); do
  if iptables -t nat -S PREROUTING | grep -q -- '-j KUBE-SERVICES' &&
     iptables -t mangle -S KUBE-PROXY-CANARY >/dev/null 2>&1; then restored=yes; break; fi
  sleep 0.5
done
result ipvs2-canary-restored $restored
result ipvs2-canary-log "$(grep -c 'canary chains gone' /tmp/kp-ipvs2.log)"
for i in 1 2 3 4; do result ipvs2-nodeport-$i "$(get client 198.18.0.11 30080)"; done
kill $KP
sleep 0.5
block kp-ipvs2-log tail -20 /tmp/kp-ipvs2.log

# IPVS mode to nftables mode
kube-proxy-rs --proxy-mode=nftables $FLAGS --v=2 > /tmp/kp-nft.log 2>&1 &
KP=$!
synced=no
for i in $(seq 1 120); do
  if nft list table ip kube-proxy 2>/dev/null | grep -q 'chain service-' &&
     nft list table ip6 kube-proxy 2>/dev/null | grep -q 'chain service-'; then synced=yes; break; fi
  sleep 0.5
done
result nft-synced $synced
block nft-ipvs ipvsadm -Sn
result nft-link "$(ip link show kube-ipvs0 >/dev/null 2>&1 && echo present || echo gone)"
block nft-ipsets ipset list -n
block nft-rules iptables-save
for i in 1 2 3 4; do result nft-clusterip-pod-$i "$(get pod4 198.19.0.10 80)"; done
for i in 1 2 3 4; do result nft-v6-pod-$i "$(get pod4 2001:db8:c::50 80)"; done
kill $KP
sleep 0.5
block kp-nft-log tail -20 /tmp/kp-nft.log

# --cleanup removes every mode's state
block cleanup kube-proxy-rs --cleanup --v=2
block final-ipvs ipvsadm -Sn
result final-link "$(ip link show kube-ipvs0 >/dev/null 2>&1 && echo present || echo gone)"
block final-ipsets ipset list -n
block final-rules iptables-save
block final-rules6 ip6tables-save
block final-nft nft list ruleset
"#;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vm")
}

fn vm_required() -> bool {
    std::env::var("K8S_DATAPLANE_REQUIRE_VM").is_ok_and(|v| v == "1")
}

/// The plans (IPv4, IPv6) kube-proxy-rs should program for the manifests of `files` (the
/// guest's only non-VIP addresses are 198.18.0.11 and 2001:db8::11; loopback and link-local
/// addresses get no NodePort service).
fn plan(files: &[&str]) -> [IpvsPlan; 2] {
    let texts: Vec<(std::path::PathBuf, String)> = files
        .iter()
        .map(|f| {
            let p = fixtures().join(f);
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    let m = manifest::parse_all(texts.iter().map(|(p, t)| (p.as_path(), t.as_str()))).unwrap();
    let cfg = Config::from_args_and_file(
        [
            "kube-proxy-rs",
            "--proxy-mode=ipvs",
            "--hostname-override=node-a",
            "--cluster-cidr=198.18.64.0/18,2001:db8:40::/48",
        ],
        None,
    )
    .unwrap();
    let b = kube_proxy_rs::model::build(
        &m.services,
        &m.endpoint_slices,
        m.node("node-a"),
        &cfg.model_options("node-a"),
    );
    let mut opts = IpvsOptions::from_config(&cfg);
    opts.local_addresses = ["198.18.0.11", "127.0.0.1", "2001:db8::11", "::1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    [render_ipvs(&b.ipv4, &opts), render_ipvs(&b.ipv6, &opts)]
}

/// The answers of results `prefix*`, with busybox httpd's IPv4-mapped `[::ffff:A]` as `A`
/// and `[A]` as `A`.
fn answers(out: &VmOutput, prefix: &str) -> Vec<String> {
    out.results
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v.replace("[::ffff:", "").replace(['[', ']'], ""))
        .collect()
}

/// The backends (`be-N`) that answered results `prefix*`; panics on a request without an
/// answer.
fn backends(out: &VmOutput, prefix: &str, tail: &str) -> BTreeSet<String> {
    let a = answers(out, prefix);
    assert!(!a.is_empty(), "no results {prefix}*");
    a.iter()
        .map(|v| {
            assert!(v.starts_with("be-"), "{prefix}: {v:?}\n{tail}");
            v.split_whitespace().next().unwrap_or("").to_string()
        })
        .collect()
}

/// The names of `ipset list -n` that are IPVS mode's.
fn our_sets(list: &str) -> Vec<&str> {
    list.lines()
        .map(str::trim)
        .filter(|n| n.starts_with("KUBE-"))
        .collect()
}

fn distinct(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

#[test]
fn vm_ipvs_mode_real_traffic() {
    let t0 = Instant::now();
    let work =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vm-kp-ipvs-{}", std::process::id()));
    let mut b = VmImage::builder(&work).binary(
        env!("CARGO_BIN_EXE_kube-proxy-rs"),
        "/usr/bin/kube-proxy-rs",
    );
    for f in ["base.yaml", "drain-before.yaml", "drain-after.yaml"] {
        b = b.file(fixtures().join(f), &format!("/etc/vm/{f}"), 0o644);
    }
    let image = match b.build() {
        Ok(i) => i,
        Err(e @ (VmError::NoKernel { .. } | VmError::MissingTool { .. })) if !vm_required() => {
            eprintln!("skipping the IPVS-mode VM test: {e}");
            return;
        }
        Err(e) => panic!("image: {e}"),
    };
    let out = Vm::run(&image, SCRIPT, Duration::from_secs(900)).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "IPVS-mode VM test: boot {:.1?}, qemu wall {:.1?}, whole test {:.1?}",
        out.boot_time.unwrap_or_default(),
        out.wall_time,
        t0.elapsed()
    );
    let tail = out.tail(80);
    assert_eq!(out.exit_code, Some(0), "{tail}");
    assert_eq!(out.failed_checks(""), [], "{tail}");
    assert_eq!(out.result("synced"), Some("yes"), "{tail}");

    // The kernel holds exactly the render of the same manifests, both families.
    let [want4, want6] = plan(&["base.yaml", "drain-before.yaml"]);
    assert!(!want6.ipvs.services.is_empty());
    let mut want = want4.ipvs.clone();
    want.services.extend(want6.ipvs.services.iter().cloned());
    want.sort_like_ipvsadm();
    let mut got = IpvsState::from_save(out.block("ipvs").unwrap()).unwrap();
    got.sort_like_ipvsadm();
    assert_eq!(got.to_save(), want.to_save(), "ipvsadm -Sn\n{tail}");
    let vips: BTreeSet<String> = out
        .block("vips")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect();
    let want_vips: BTreeSet<String> = want4
        .vips
        .iter()
        .chain(&want6.vips)
        .map(ToString::to_string)
        .collect();
    assert_eq!(vips, want_vips, "kube-ipvs0 addresses");

    let node = "198.18.0.11";
    let client = "198.18.0.101";
    // ClusterIP: both backends, pod source kept; from the node too.
    let c = answers(&out, "clusterip-pod-");
    assert_eq!(
        distinct(&c),
        BTreeSet::from([
            "be-2 198.18.65.4".to_string(),
            "be-3 198.18.65.4".to_string()
        ]),
        "{tail}"
    );
    for a in answers(&out, "clusterip-node-") {
        assert!(
            a == format!("be-2 {node}") || a == format!("be-3 {node}"),
            "{a}\n{tail}"
        );
    }
    // NodePort from outside: both backends, masqueraded to the node.
    assert_eq!(
        distinct(&answers(&out, "nodeport-")),
        BTreeSet::from([format!("be-2 {node}"), format!("be-3 {node}")]),
        "{tail}"
    );
    // ClientIP affinity: one backend for every request.
    let s = answers(&out, "sticky-");
    assert_eq!(s.len(), 6);
    assert_eq!(distinct(&s).len(), 1, "affinity: {s:?}");
    // eTP Local: only the local endpoint, the client's address kept.
    assert_eq!(
        distinct(&answers(&out, "local-")),
        BTreeSet::from([format!("be-2 {client}")]),
        "{tail}"
    );
    // eTP Local without a local endpoint: dropped (nc times out silently), no fallback.
    let remote = out.result("remote").unwrap_or("");
    assert!(!remote.contains("be-"), "remote: {remote:?}");
    assert!(
        !remote.contains("refused"),
        "dropped, not refused: {remote:?}"
    );
    // No endpoints: refused.
    for k in ["empty-pod", "empty-node"] {
        let r = out.result(k).unwrap_or("");
        assert!(r.contains("refused"), "{k}: {r:?}\n{tail}");
    }
    // Graceful termination.
    let during = out.block("drain-during").unwrap();
    let line = |addr: &str| {
        during
            .lines()
            .find(|l| l.contains(addr))
            .unwrap_or("")
            .to_string()
    };
    let old = line("198.18.65.2:9000");
    let new = line("198.18.65.3:8080");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    // `-> ADDR:PORT Masq WEIGHT ACTIVE INACTIVE`
    assert_eq!(
        cols(&old).get(3).map(String::as_str),
        Some("0"),
        "weight 0: {during}"
    );
    assert_eq!(
        cols(&old).get(4).map(String::as_str),
        Some("1"),
        "still connected: {during}"
    );
    assert_eq!(cols(&new).get(3).map(String::as_str), Some("1"), "{during}");
    assert_eq!(
        distinct(&answers(&out, "drain-new-")),
        BTreeSet::from(["be-3 198.18.65.4".to_string()]),
        "{tail}"
    );
    assert_eq!(out.result("drain-gone"), Some("yes"), "{tail}");
    assert!(
        !out.block("drain-after")
            .unwrap()
            .contains("198.18.65.2:9000")
    );
    eprintln!(
        "drained real server deleted {} s after its connection ended",
        out.result("drain-seconds").unwrap_or("?")
    );

    // IPv6: the dual-stack ClusterIP over IPv6 reaches both backends; from a pod with its
    // address kept (inside --cluster-cidr), from the node masqueraded.
    let both = BTreeSet::from(["be-2".to_string(), "be-3".to_string()]);
    assert_eq!(backends(&out, "v6-node-", &tail), both, "{tail}");
    assert_eq!(
        distinct(&answers(&out, "v6-pod-")),
        BTreeSet::from([
            "be-2 2001:db8:40:a::4".to_string(),
            "be-3 2001:db8:40:a::4".to_string()
        ]),
        "{tail}"
    );

    // Mode switch to iptables mode: IPVS mode's virtual services, kube-ipvs0 and ipsets are
    // gone, and iptables mode's traffic works.
    assert_eq!(out.result("ipt-synced"), Some("yes"), "{tail}");
    assert_eq!(out.block("ipt-ipvs").map(str::trim), Some(""), "{tail}");
    assert_eq!(out.result("ipt-link"), Some("gone"), "{tail}");
    assert_eq!(
        our_sets(out.block("ipt-ipsets").unwrap()),
        Vec::<&str>::new(),
        "{tail}"
    );
    let rules = out.block("ipt-rules").unwrap();
    for gone in ["KUBE-IPVS-FILTER", "KUBE-NODE-PORT", "--match-set"] {
        assert!(
            !rules.contains(gone),
            "{gone} left in iptables mode:\n{rules}"
        );
    }
    // (iptables mode picks endpoints at random: every answer from one of them.)
    let pod_answers = BTreeSet::from([
        "be-2 198.18.65.4".to_string(),
        "be-3 198.18.65.4".to_string(),
    ]);
    let ipt = distinct(&answers(&out, "ipt-clusterip-pod-"));
    assert!(
        !ipt.is_empty() && ipt.is_subset(&pod_answers),
        "{ipt:?}\n{tail}"
    );
    assert!(backends(&out, "ipt-clusterip-node-", &tail).is_subset(&both));
    let ipt = distinct(&answers(&out, "ipt-nodeport-"));
    assert!(
        !ipt.is_empty()
            && ipt.is_subset(&BTreeSet::from([
                format!("be-2 {node}"),
                format!("be-3 {node}")
            ])),
        "{ipt:?}\n{tail}"
    );
    assert!(backends(&out, "ipt-v6-pod-", &tail).is_subset(&both));

    // And back to IPVS mode: iptables mode's chains are gone, IPVS mode's traffic works.
    assert_eq!(out.result("ipvs2-synced"), Some("yes"), "{tail}");
    for b in ["ipvs2-rules", "ipvs2-rules6"] {
        let r = out.block(b).unwrap();
        for gone in ["KUBE-SVC-", "KUBE-SEP-", "KUBE-NODEPORTS"] {
            assert!(!r.contains(gone), "{gone} left in IPVS mode:\n{r}");
        }
        assert!(r.contains("-j KUBE-IPVS-FILTER"), "{b}:\n{r}");
    }
    assert_eq!(backends(&out, "ipvs2-clusterip-pod-", &tail), both);
    assert_eq!(backends(&out, "ipvs2-v6-node-", &tail), both);
    // Flushed by someone else: the canaries are seen gone, the full sync restores the jumps,
    // and NodePort traffic is masqueraded to the node again.
    assert_eq!(out.result("ipvs2-canary-restored"), Some("yes"), "{tail}");
    assert_ne!(out.result("ipvs2-canary-log"), Some("0"), "{tail}");
    assert_eq!(
        distinct(&answers(&out, "ipvs2-nodeport-")),
        BTreeSet::from([format!("be-2 {node}"), format!("be-3 {node}")]),
        "{tail}"
    );

    // IPVS mode to nftables mode: IPVS mode's state is gone, nftables mode's traffic works.
    assert_eq!(out.result("nft-synced"), Some("yes"), "{tail}");
    assert_eq!(out.block("nft-ipvs").map(str::trim), Some(""), "{tail}");
    assert_eq!(out.result("nft-link"), Some("gone"), "{tail}");
    assert_eq!(
        our_sets(out.block("nft-ipsets").unwrap()),
        Vec::<&str>::new()
    );
    let r = out.block("nft-rules").unwrap();
    assert!(!r.contains("KUBE-"), "nftables mode:\n{r}");
    let nft = distinct(&answers(&out, "nft-clusterip-pod-"));
    assert!(
        !nft.is_empty() && nft.is_subset(&pod_answers),
        "{nft:?}\n{tail}"
    );
    assert!(backends(&out, "nft-v6-pod-", &tail).is_subset(&both));

    // --cleanup: nothing of any mode is left.
    assert!(out.block("cleanup").is_some(), "{tail}");
    assert_eq!(out.block("final-ipvs").map(str::trim), Some(""), "{tail}");
    assert_eq!(out.result("final-link"), Some("gone"), "{tail}");
    assert_eq!(
        our_sets(out.block("final-ipsets").unwrap()),
        Vec::<&str>::new()
    );
    for b in ["final-rules", "final-rules6"] {
        let r = out.block(b).unwrap();
        assert!(!r.contains("KUBE-"), "{b}:\n{r}");
    }
    assert!(
        !out.block("final-nft").unwrap().contains("kube-proxy"),
        "{tail}"
    );
}
