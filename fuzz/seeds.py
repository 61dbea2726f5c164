#!/usr/bin/env python3
"""Seed every fuzz target's corpus from the repository's fixtures (captured dumps, manifests,
bundles, configs). Usage: fuzz/seeds.py CORPUS_ROOT (one directory per target is created).
Run from the repository root. Seeds are named seed-*; libFuzzer adds its own files beside."""
import glob
import os
import re
import sys

root = sys.argv[1]
counts = {}


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)), "wb") as f:
        f.write(data)
    counts[target] = counts.get(target, 0) + 1


def read(path):
    with open(path, "rb") as f:
        return f.read()


def block(text, key):
    """The literal block scalar `key: |` of a ConfigMap, dedented."""
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if l.strip() == key + ": |":
            ind = len(l) - len(l.lstrip()) + 2
            out = []
            for m in lines[i + 1:]:
                if m.strip() and len(m) - len(m.lstrip()) < ind:
                    break
                out.append(m[ind:])
            return "\n".join(out) + "\n"
    return None


def fenced(path, lang="yaml"):
    return re.findall(r"```" + lang + r"\n(.*?)```", open(path).read(), re.S)


# bgp_decode: selector byte (bit 0: 4-octet AS, bit 2: extended next hop) + one message
for f in sorted(glob.glob("bgpd/tests/fixtures/wire/*.hex")):
    base = os.path.basename(f)[:-4]
    msgs = [l.strip() for l in open(f) if l.strip() and not l.startswith("#")]
    for i, m in enumerate(msgs):
        for sel in ([0x00, 0x02] if "as-trans" in f else [0x05, 0x0D, 0x17]):
            put("bgp_decode", "%s-%d-%02x" % (base, i + 1, sel), bytes([sel]) + bytes.fromhex(m))

# iptables_save: selector (bit 0: IPv6) + dump
ipt = glob.glob("dataplane/tests/fixtures/iptables/*") + glob.glob(
    "dataplane/tests/fixtures/trace/*.rules") + glob.glob(
    "kube-proxy-rs/tests/fixtures/upstream/*.txt") + glob.glob(
    "diag/tests/fixtures/catalogue/*/node1/*tables-*-save.txt")
for f in sorted(ipt):
    six = "ip6" in os.path.basename(f) or "-v6" in f
    if os.path.getsize(f) > 0:
        put("iptables_save", f, bytes([1 if six else 0]) + read(f))

# ipset_save
for f in sorted(glob.glob("dataplane/tests/fixtures/ipset/*") + glob.glob(
        "dataplane/tests/fixtures/trace/*.ipset") + glob.glob(
        "diag/tests/fixtures/catalogue/*/node1/ipset-save.txt")):
    if os.path.getsize(f) > 0:
        put("ipset_save", f, read(f))

# nft_json
for f in sorted(glob.glob("dataplane/tests/fixtures/nft/*.json") + glob.glob(
        "diag/tests/fixtures/catalogue/*/node1/nft-ruleset.json")):
    put("nft_json", f, read(f))

# ip_json: selector (0 link, 1 addr, 2 route4, 3 route6, 4 rule4, 5 rule6, 6 state) + JSON
docs = {"link": 0, "addr": 1, "route4": 2, "route6": 3, "rule4": 4, "rule6": 5,
        "ip-link": 0, "ip-addr": 1, "ip-route-4": 2, "ip-route-6": 3, "ip-rule-4": 4,
        "ip-rule-6": 5}
for f in sorted(glob.glob("dataplane/tests/fixtures/route/*/*.json") + glob.glob(
        "diag/tests/fixtures/catalogue/*/node1/ip-*.json")):
    sel = docs.get(os.path.basename(f)[:-5])
    if sel is not None:
        put("ip_json", f, bytes([sel]) + read(f))
for f in sorted(glob.glob("dataplane/tests/fixtures/trace/*.json")):
    put("ip_json", f, bytes([6]) + read(f))

# ipvs_text: selector (bit 0: listing) + text
for f in sorted(glob.glob("dataplane/tests/fixtures/ipvs/*.txt") + glob.glob(
        "dataplane/tests/fixtures/trace/*.ipvs")):
    b = os.path.basename(f)
    if b.startswith("list"):
        put("ipvs_text", f, b"\x01" + read(f))
    elif b.startswith("save") or b.endswith(".ipvs"):
        put("ipvs_text", f, b"\x00" + read(f))

# kube_manifests and diag_objects: the manifest fixtures
yamls = sorted(glob.glob("kube-proxy-rs/tests/fixtures/*/*.yaml"))
for f in yamls:
    put("kube_manifests", f, read(f))
    put("diag_objects", f, read(f))
for f in sorted(glob.glob("diag/tests/fixtures/catalogue/*/node1/k8s-*.json")):
    put("diag_objects", f, read(f))

# diag_bundle: manifest.json, then `%% NAME` + content per file
for d in sorted(glob.glob("diag/tests/fixtures/catalogue/*/node*")):
    if not os.path.isdir(d):
        continue
    out = read(os.path.join(d, "manifest.json"))
    for f in sorted(os.listdir(d)):
        if f == "manifest.json":
            continue
        body = read(os.path.join(d, f))
        if not out.endswith(b"\n"):
            out += b"\n"
        out += b"%% " + f.encode() + b"\n" + body
    put("diag_bundle", d, out)

# bgpd_config: the deployed ConfigMap's bgpd.yaml (placeholders filled) and docs/bgpd.md
subst = {"${NODE_IPV4}": "198.18.0.11", "${NODE_NAME}": "node-a"}
for f in ["deploy/bgpd/config.yaml"]:
    b = block(open(f).read(), "bgpd.yaml")
    if b:
        for k, v in subst.items():
            b = b.replace(k, v)
        put("bgpd_config", f, b)
for i, b in enumerate(fenced("docs/bgpd.md")):
    if "asn:" in b:
        put("bgpd_config", "docs-bgpd-%d" % i, b)

# kube_proxy_config: the deployed ConfigMap's config.conf and docs/kube-proxy-rs.md
b = block(open("deploy/kube-proxy-rs/configmap.yaml").read(), "config.conf")
if b:
    put("kube_proxy_config", "configmap", b)
for i, b in enumerate(fenced("docs/kube-proxy-rs.md")):
    if "KubeProxyConfiguration" in b:
        put("kube_proxy_config", "docs-%d" % i, b)

for t, n in sorted(counts.items()):
    print("seeds %-18s %d" % (t, n))
