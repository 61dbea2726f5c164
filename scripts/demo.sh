#!/usr/bin/env bash
# The main job: a lab cluster in network namespaces, end to end. Run as root from a fresh clone;
# it installs what it needs. Everything it creates lives in network namespaces it removes on exit.
#
# Until the full demo (kube-proxy-rs + bgpd + diag on a lab rack) lands, this brings up the lab's
# example rack (two nodes with pods, a top-of-rack router, a client), shows it, sends traffic
# across it, and tears it down.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked -p lab --bin lab
LAB=target/release/lab
NAME="demo-$$"
cleanup() { "$LAB" down "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
"$LAB" up --topology lab/topologies/rack.yaml --name "$NAME" | tee /tmp/"$NAME".hosts
echo
echo "== client -> every pod, IPv4 and IPv6 (ping through the top-of-rack router)"
awk '$2 == "pod" {print $1, $5, $6}' /tmp/"$NAME".hosts | while read -r pod v4 v6; do
    for addr in "${v4%/*}" "${v6%/*}"; do
        printf '  %-12s %-22s ' "$pod" "$addr"
        if "$LAB" exec "$NAME" client -- ping -c1 -W2 "$addr" >/dev/null; then echo ok; else echo FAILED; exit 1; fi
    done
done
rm -f /tmp/"$NAME".hosts
echo
echo "demo finished; the lab is removed on exit"
