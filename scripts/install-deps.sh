#!/usr/bin/env bash
# Install the system packages the toolkit, its lab and its tests use, if they are missing.
# Idempotent: runs `apt-get update` once, and only when something has to be installed.
# Needs root (the tests and the lab create network namespaces, so they need root anyway).
set -euo pipefail

# command-or-file:debian-package
wanted=(
  iptables:iptables ip6tables:iptables iptables-legacy:iptables nft:nftables ipset:ipset
  conntrack:conntrack socat:socat ip:iproute2 python3:python3
  bird:bird2 /usr/lib/frr/bgpd:frr gobgpd:gobgpd exabgp:exabgp
  qemu-system-x86_64:qemu-system-x86 busybox:busybox-static ipvsadm:ipvsadm cpio:cpio depmod:kmod
  tshark:tshark tcpdump:tcpdump curl:curl ping:iputils-ping gnuplot:gnuplot-nox
)
missing=()
for w in "${wanted[@]}"; do
  what=${w%%:*} pkg=${w##*:}
  if [[ $what == /* ]]; then [[ -e $what ]] && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
  [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# kubectl comes with the machine image (google-cloud-sdk); Debian's kubernetes-client conflicts with it.
command -v kubectl >/dev/null 2>&1 || echo "install-deps: note: kubectl not found; the kubectl interop test will be skipped" >&2
command -v cargo >/dev/null 2>&1 || { echo "install-deps: cargo not found (install Rust with rustup)" >&2; exit 1; }
cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
# the fuzz smoke of scripts/test.sh (scripts/fuzz-smoke.sh)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
