#!/usr/bin/env python3
"""Parses the `BENCH` lines of the measurement examples and turns the runs of `benches/run.sh`
into per-measurement TSVs (median, min and max across repetitions, ratio to the anchor measured
in the same run), gnuplot PNGs and `tables.md`.

    report.py check EXAMPLE LOG      validate one run's output (exit 1 naming the example and line)
    report.py report RESULTS PLOTS   RESULTS/runs.tsv -> RESULTS/*.tsv, RESULTS/tables.md, PLOTS/*.png

A `BENCH` line is `BENCH<TAB>kind<TAB>key=value<TAB>...`; values are numbers (`nan` allowed)
except the keys in TEXT_KEYS.
"""

import math
import os
import statistics
import subprocess
import sys

# kind -> keys every line of that kind must carry (numeric unless in TEXT_KEYS)
KINDS = {
    "sync_netns": ["services", "backend", "full_s", "full_alone_s", "partial_s", "partial_alone_s"],
    "event_latency": ["services", "backend", "rounds", "first_sync_s", "p50_ms", "p99_ms", "rss_mib"],
    "mode_full": ["mode", "services", "endpoints", "sync_s"],
    "mode_add": ["mode", "services", "full_s", "add_s"],
    "first_packet": ["services", "iptables_p50_us", "iptables_p99_us", "nftables_p50_us", "nftables_p99_us"],
    "install": ["prefixes", "family", "receiver", "install_s", "rss_mib", "hwm_mib", "withdraw_s"],
    "diag": ["mode", "command", "rules", "ms", "exit"],
}
TEXT_KEYS = {"backend", "mode", "family", "receiver", "command"}
# example -> the kinds its output must hold at least one line of
EXPECTED = {
    "sync_netns": ["sync_netns"],
    "event_latency": ["event_latency"],
    "mode_scale": ["mode_full", "mode_add", "first_packet"],
    "install_bench": ["install"],
    "bench_300k": ["diag"],
}


class ParseError(Exception):
    pass


def parse_line(example, line):
    """One `BENCH` line -> (kind, {key: value}); ParseError names the example and the line."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 3 or fields[0] != "BENCH":
        raise ParseError(f"{example}: not a BENCH line: {line.rstrip()!r}")
    kind = fields[1]
    if kind not in KINDS:
        raise ParseError(f"{example}: unknown measurement {kind!r} in line: {line.rstrip()!r}")
    values = {}
    for f in fields[2:]:
        key, sep, raw = f.partition("=")
        if not sep or not key:
            raise ParseError(f"{example}: field {f!r} is not key=value in line: {line.rstrip()!r}")
        if key in TEXT_KEYS:
            values[key] = raw
            continue
        try:
            values[key] = float(raw)
        except ValueError:
            raise ParseError(
                f"{example}: field {key}={raw!r} is not a number in line: {line.rstrip()!r}"
            ) from None
    missing = [k for k in KINDS[kind] if k not in values]
    if missing:
        raise ParseError(f"{example}: {kind} line lacks {', '.join(missing)}: {line.rstrip()!r}")
    return kind, values


def parse_log(example, path):
    """All `BENCH` lines of one run; ParseError if one is malformed or an expected kind is absent."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("BENCH"):
                out.append(parse_line(example, line))
    kinds = {k for k, _ in out}
    for want in EXPECTED.get(example, []):
        if want not in kinds:
            raise ParseError(f"{example}: no 'BENCH\\t{want}' line in its output ({path})")
    return out


# ---- statistics -------------------------------------------------------------------------------

NAN = float("nan")


def agg(values):
    """(median, min, max) of the finite values; NaNs when there are none."""
    v = [x for x in values if isinstance(x, float) and math.isfinite(x)]
    if not v:
        return (NAN, NAN, NAN)
    return (statistics.median(v), min(v), max(v))


def ratio(a, b):
    return a / b if math.isfinite(a) and math.isfinite(b) and b != 0 else NAN


def num(x, digits=3):
    """A TSV cell: `nan` or the number rounded to `digits` significant decimals."""
    if isinstance(x, str):
        return x
    if not math.isfinite(x):
        return "nan"
    if x == int(x) and abs(x) >= 1:
        return str(int(x))
    return f"{x:.{digits}f}"


def fmt(x, unit=""):
    """A markdown cell: three significant figures."""
    if not math.isfinite(x):
        return "—"
    a = abs(x)
    s = f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 1 else f"{x:.3f}"
    return s + unit


def times(x):
    """A ratio for a markdown cell: `1.24×`, or `—`."""
    return fmt(x) + "×" if math.isfinite(x) else "—"


def spread(t, unit=""):
    """`median (min–max)` for a markdown cell."""
    med, lo, hi = t
    if not math.isfinite(med):
        return "—"
    if lo == hi:
        return fmt(med, unit)
    return f"{fmt(med, unit)} ({fmt(lo)}–{fmt(hi)})"


def k(n):
    """1000 -> 1k, 250000 -> 250k, 1000000 -> 1M."""
    n = int(n)
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1e6:g}M"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1e3:g}k"
    return str(n)


# ---- loading ----------------------------------------------------------------------------------


def load(results):
    """runs.tsv -> [(group, rep, example, command, kind, values)], {(group, example): [commands]}."""
    recs, commands = [], {}
    with open(os.path.join(results, "runs.tsv"), encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            group, rep, example, command, log = line.rstrip("\n").split("\t")
            cmds = commands.setdefault((group, example), [])
            if command not in cmds:
                cmds.append(command)
            for kind, values in parse_log(example, log):
                recs.append((group, int(rep), example, command, kind, values))
    return recs, commands


def select(recs, kind, groups=None):
    return [v for g, _, _, _, kd, v in recs if kd == kind and (groups is None or g in groups)]


def grouped(rows, *keys):
    """Rows (dicts) grouped by the tuple of `keys`, in first-seen order."""
    out = {}
    for r in rows:
        out.setdefault(tuple(r[x] for x in keys), []).append(r)
    return out


# ---- measurements -----------------------------------------------------------------------------


class Table:
    """One measurement: a TSV, a markdown table and a gnuplot plot."""

    def __init__(self, name, title, groups, header, md_header, target):
        """`groups`: the (run.sh group, example) pairs whose commands produced it."""
        self.name, self.title, self.groups = name, title, groups
        self.header, self.md_header, self.target = header, md_header, target
        self.rows, self.md_rows = [], []
        self.plot = None  # gnuplot commands after the common preamble, `DATA` for the TSV
        self.keep = None  # which of the groups' commands produced it (default: all)

    def add(self, tsv, md):
        self.rows.append([num(x) for x in tsv])
        self.md_rows.append(md)


def iptables_sync(recs, which):
    full = which == "full"
    t = Table(
        f"iptables_{which}_sync",
        "iptables mode: full sync (N Services × 10 endpoints)"
        if full
        else "iptables mode: partial sync of one changed Service",
        [("iptables", "sync_netns")],
        ["services", "backend", "ours_median_s", "ours_min_s", "ours_max_s",
         "alone_median_s", "alone_min_s", "alone_max_s", "ratio", "overhead_pct"],
        ["Services × 10 endpoints", "backend", f"kube-proxy-rs {which} sync",
         "`iptables-restore --noflush` of the same text alone (anchor)", "ratio", "overhead"],
        "overhead ≤ 10 % over iptables-restore alone" if full
        else "(no target of its own; the floor of event → rule)",
    )
    for (n, backend), rows in grouped(select(recs, "sync_netns"), "services", "backend").items():
        ours = agg([r[f"{which}_s"] for r in rows])
        alone = agg([r[f"{which}_alone_s"] for r in rows])
        q = ratio(ours[0], alone[0])
        t.add([n, backend, *ours, *alone, q, (q - 1) * 100],
              [k(n), f"iptables-{backend}", spread(ours, " s"), spread(alone, " s"),
               times(q), fmt((q - 1) * 100, " %")])
    t.plot = lines_plot("Services", "seconds", [(3, "kube-proxy-rs"), (6, "iptables-restore alone")])
    return t


def event_latency(recs):
    t = Table(
        "iptables_event_latency",
        "iptables mode: event → rule-in-kernel latency (one EndpointSlice change)",
        [("iptables", "event_latency"), ("iptables", "sync_netns")],
        ["services", "backend", "p50_median_ms", "p50_min_ms", "p50_max_ms", "p99_median_ms",
         "p99_min_ms", "p99_max_ms", "first_sync_median_s", "anchor_partial_restore_ms", "ratio_p50"],
        ["Services × 10 endpoints", "backend", "p50", "p99", "first sync after start",
         "partial restore alone (anchor)", "p50 / anchor"],
        "p50 ≤ 100 ms (upstream kube-proxy: p50 ~5 s at 5k nodes, quoted from the issue, not measured)",
    )
    anchors = grouped(select(recs, "sync_netns", ["iptables"]), "services", "backend")
    ev = select(recs, "event_latency", ["iptables"])
    for (n, backend), rows in grouped(ev, "services", "backend").items():
        p50 = agg([r["p50_ms"] for r in rows])
        p99 = agg([r["p99_ms"] for r in rows])
        first = agg([r["first_sync_s"] for r in rows])
        a = agg([r["partial_alone_s"] * 1000 for r in anchors.get((n, backend), [])])
        t.add([n, backend, *p50, *p99, first[0], a[0], ratio(p50[0], a[0])],
              [k(n), f"iptables-{backend}", spread(p50, " ms"), spread(p99, " ms"),
               spread(first, " s"), fmt(a[0], " ms"), times(ratio(p50[0], a[0]))])
    t.plot = lines_plot("Services", "milliseconds", [(3, "p50"), (6, "p99")], hline=(100, "target p50"))
    return t


def mode_full(recs):
    t = Table(
        "nftables_full_sync",
        "nftables vs iptables mode: full sync of S Services × E endpoints",
        [("nftables", "mode_scale")],
        ["label", "median_s", "min_s", "max_s", "services", "endpoints", "ratio_to_iptables"],
        ["mode", "Services × endpoints", "full sync", "ratio to iptables mode (anchor)"],
        "nftables < 10 s at 5k × 50 (upstream: 13 min, quoted from the issue, not measured)",
    )
    rows = select(recs, "mode_full")
    by = grouped(rows, "mode", "services", "endpoints")
    for (mode, s, e), rs in by.items():
        d = agg([r["sync_s"] for r in rs])
        a = agg([r["sync_s"] for r in by.get(("iptables", s, e), [])])
        t.add([f"{mode} {k(s)}x{k(e)}", *d, s, e, ratio(d[0], a[0])],
              [mode, f"{k(s)} × {k(e)}", spread(d, " s"), times(ratio(d[0], a[0]))])
    t.plot = bars_plot("seconds", 2, hline=(10, "target (nftables)"))
    return t


def mode_add(recs):
    t = Table(
        "nftables_add_one",
        "nftables vs iptables mode: add one Service into N (partial sync)",
        [("nftables", "mode_scale")],
        ["label", "add_median_s", "add_min_s", "add_max_s", "services", "full_median_s",
         "ratio_to_iptables"],
        ["mode", "Services × 10 endpoints", "add one Service", "full sync before it",
         "add: ratio to iptables mode (anchor)"],
        "nftables ≤ 50 ms into 10k (upstream: 141 ms, quoted from the issue, not measured)",
    )
    by = grouped(select(recs, "mode_add"), "mode", "services")
    for (mode, n), rs in by.items():
        add = agg([r["add_s"] for r in rs])
        full = agg([r["full_s"] for r in rs])
        a = agg([r["add_s"] for r in by.get(("iptables", n), [])])
        t.add([f"{mode} {k(n)}", *add, n, full[0], ratio(add[0], a[0])],
              [mode, k(n), spread(add, " s"), spread(full, " s"), times(ratio(add[0], a[0]))])
    t.plot = bars_plot("seconds", 2, hline=(0.05, "target (nftables)"))
    return t


def first_packet(recs):
    t = Table(
        "first_packet",
        "First-packet latency vs number of Services (KEP-3866's chart)",
        [("nftables", "mode_scale")],
        ["services", "ipt_p50_median_us", "ipt_p50_min_us", "ipt_p50_max_us",
         "nft_p50_median_us", "nft_p50_min_us", "nft_p50_max_us", "ipt_p99_median_us",
         "nft_p99_median_us", "direct_median_us", "ipt_p50_ratio_to_first", "nft_p50_ratio_to_first"],
        ["Services (1 endpoint each)", "iptables p50", "iptables p99", "nftables p50",
         "nftables p99", "direct connect (subtracted)", "iptables p50 / first count",
         "nftables p50 / first count (anchor: first count)"],
        "nftables p50 flat within 10 % from 1k to 30k Services (ratio ≤ 1.10)",
    )
    by = grouped(select(recs, "first_packet"), "services")
    first = None
    for (n,), rs in sorted(by.items()):
        ip50 = agg([r["iptables_p50_us"] for r in rs])
        nf50 = agg([r["nftables_p50_us"] for r in rs])
        ip99 = agg([r["iptables_p99_us"] for r in rs])
        nf99 = agg([r["nftables_p99_us"] for r in rs])
        direct = agg([r.get("direct_us", NAN) for r in rs])
        if first is None:
            first = (ip50[0], nf50[0])
        qi, qn = ratio(ip50[0], first[0]), ratio(nf50[0], first[1])
        t.add([n, *ip50, *nf50, ip99[0], nf99[0], direct[0], qi, qn],
              [k(n), spread(ip50, " µs"), spread(ip99, " µs"), spread(nf50, " µs"),
               spread(nf99, " µs"), fmt(direct[0], " µs"), times(qi), times(qn)])
    t.plot = lines_plot("Services", "µs added to connect()", [(2, "iptables p50"), (5, "nftables p50")])
    return t


RECEIVERS = [("ipbatch", "ip -batch (ceiling)"), ("bgpd", "bgpd"), ("bird", "BIRD 2"),
             ("frr", "FRR bgpd+zebra"), ("gobgp", "GoBGP (RIB only)")]


def install(recs, groups, name, title, target):
    """One table per feed (prefixes, family) of install_bench runs in `groups`."""
    out = []
    for (n, fam), rs in grouped(select(recs, "install", groups), "prefixes", "family").items():
        t = Table(
            f"{name}_{k(n)}_{fam}",
            f"{title}: {k(n)} {'IPv6 /64' if fam == 'v6' else 'IPv4 /32'} prefixes from one peer",
            [(g, "install_bench") for g in groups],
            ["receiver", "install_median_s", "install_min_s", "install_max_s", "rss_median_mib",
             "rss_min_mib", "rss_max_mib", "hwm_median_mib", "withdraw_median_s",
             "rss_after_median_mib", "anon_median_mib", "routes_per_s",
             "time_ratio_to_bird", "pct_of_ipbatch_rate", "rss_ratio_to_bird",
             "anon_ratio_to_bird"],
            ["receiver", "install", "routes/s", "VmRSS loaded", "VmHWM", "withdraw",
             "VmRSS after withdraw", "RssAnon loaded",
             "time / BIRD (anchor)", "% of ip -batch rate", "RSS / BIRD", "RssAnon / BIRD"],
            target,
        )
        by = grouped(rs, "receiver")
        bird = by.get(("bird",), [])
        b_t = agg([r["install_s"] for r in bird])[0]
        b_m = agg([r["rss_mib"] for r in bird])[0]
        b_a = agg([r.get("anon_mib", NAN) for r in bird])[0]
        ipb = agg([r["install_s"] for r in by.get(("ipbatch",), [])])[0]
        for key, label in RECEIVERS:
            rr = by.get((key,))
            if not rr:
                continue
            ins = agg([r["install_s"] for r in rr])
            rss = agg([r["rss_mib"] for r in rr])
            hwm = agg([r["hwm_mib"] for r in rr])
            wd = agg([r["withdraw_s"] for r in rr])
            after = agg([r.get("rss_after_mib", NAN) for r in rr])
            anon = agg([r.get("anon_mib", NAN) for r in rr])
            rate = ratio(n, ins[0])
            pct = ratio(ipb, ins[0]) * 100
            t.add([label, *ins, *rss, hwm[0], wd[0], after[0], anon[0], rate, ratio(ins[0], b_t),
                   pct, ratio(rss[0], b_m), ratio(anon[0], b_a)],
                  [label, spread(ins, " s"), fmt(rate), spread(rss, " MiB"), fmt(hwm[0], " MiB"),
                   fmt(wd[0], " s"), fmt(after[0], " MiB"), fmt(anon[0], " MiB"),
                   times(ratio(ins[0], b_t)), fmt(pct, " %"), times(ratio(rss[0], b_m)),
                   times(ratio(anon[0], b_a))])
        t.plot = bars_plot("install time, seconds", 2)
        t.keep = lambda c, n=n, fam=fam: (c.split()[1:2] == [str(int(n))]
                                          and ("--v6" in c.split()) == (fam == "v6"))
        out.append(t)
    return out


def diag(recs):
    t = Table(
        "diag",
        "diag: trace and check on a generated ~300k-rule node (as the binary runs them)",
        [("diag", "bench_300k")],
        ["label", "median_ms", "min_ms", "max_ms", "rules", "target_ms", "ratio_to_target"],
        ["ruleset", "command", "rules", "time", "target", "time / target"],
        "trace (parse + trace) < 200 ms; check on a 3-node bundle < 1 s (check on the DUT's "
        "bundle alone is shown beside it)",
    )
    names = {"trace_first": "trace (first Service)", "trace_last": "trace (last Service)",
             "check": "check (1 node)", "check3": "check (3 nodes)"}
    for (mode, cmd, rules), rs in grouped(select(recs, "diag"), "mode", "command", "rules").items():
        d = agg([r["ms"] for r in rs])
        target = 1000.0 if cmd.startswith("check") else 200.0
        t.add([f"{mode} {cmd}", *d, rules, target, ratio(d[0], target)],
              [mode, names.get(cmd, cmd), k(rules), spread(d, " ms"), fmt(target, " ms"),
               times(ratio(d[0], target))])
    t.plot = bars_plot("milliseconds", 2)
    return t


def memory(recs):
    t = Table(
        "memory",
        "Memory of each daemon idle (VmRSS)",
        [("memory", "event_latency"), ("iptables", "event_latency"), ("memory", "install_bench")],
        ["label", "rss_median_mib", "rss_min_mib", "rss_max_mib", "ratio_to_anchor"],
        ["daemon", "state", "VmRSS", "ratio to BIRD (anchor)"],
        "(the issue sets no number; bgpd's RSS ≤ 1.5 × BIRD's as in measurement 3)",
    )
    ev = select(recs, "event_latency", ["memory", "iptables"])
    for (n, backend), rs in grouped(ev, "services", "backend").items():
        m = agg([r["rss_mib"] for r in rs])
        t.add([f"kube-proxy-rs {k(n)} svc", *m, NAN],
              ["kube-proxy-rs", f"{k(n)} Services × 10 endpoints, iptables-{backend}, after the first sync",
               spread(m, " MiB"), "—"])
    inst = select(recs, "install", ["memory"])
    for (n, fam), rs in grouped(inst, "prefixes", "family").items():
        by = grouped(rs, "receiver")
        b = agg([r["rss_mib"] for r in by.get(("bird",), [])])[0]
        for key, label in [("bgpd", "bgpd"), ("bird", "BIRD 2")]:
            m = agg([r["rss_mib"] for r in by.get((key,), [])])
            if not math.isfinite(m[0]):
                continue
            t.add([f"{label} {k(n)} routes", *m, ratio(m[0], b)],
                  [label, f"{k(n)} {fam} routes installed", spread(m, " MiB"),
                   times(ratio(m[0], b))])
    t.plot = bars_plot("MiB", 2)
    return t


# ---- gnuplot ----------------------------------------------------------------------------------


def lines_plot(xlabel, ylabel, series, hline=None):
    """x = column 1 (log scale); each series a (median column, title), min and max following."""
    parts = [f"DATA skip 1 using 1:{c}:{c + 1}:{c + 2} with yerrorlines lw 2 title '{title}'"
             for c, title in series]
    if hline:
        parts.append(f"{hline[0]} with lines dt 2 lc rgb 'red' title '{hline[1]}'")
    return "\n".join([
        f"set xlabel '{xlabel}'", f"set ylabel '{ylabel}'", "set logscale x",
        "set key top left", "set yrange [0:*]", "set offsets graph 0.05, graph 0.05, 0, 0",
        "plot " + ", \\\n     ".join(parts),
    ])


def bars_plot(ylabel, col, hline=None):
    """Label = column 1; median in `col`, min and max following."""
    parts = [f"DATA skip 1 using 0:{col}:xtic(1) with boxes notitle",
             f"DATA skip 1 using 0:{col}:{col + 1}:{col + 2} with yerrorbars lc rgb 'black' pt 0 notitle"]
    if hline:
        parts.append(f"{hline[0]} with lines dt 2 lc rgb 'red' title '{hline[1]}'")
    return "\n".join([
        f"set ylabel '{ylabel}'", "set style fill solid 0.5 border -1", "set boxwidth 0.6",
        "set xtics rotate by -25", "set yrange [0:*]", "set xrange [-0.6:*]",
        "set offsets 0, 0.6, 0, 0", "set key top left",
        "plot " + ", \\\n     ".join(parts),
    ])


def render(t, results, plots):
    tsv = os.path.join(results, t.name + ".tsv")
    with open(tsv, "w", encoding="utf-8") as f:
        f.write("\t".join(t.header) + "\n")
        for r in t.rows:
            f.write("\t".join(r) + "\n")
    png = os.path.join(plots, t.name + ".png")
    gp = os.path.join(results, t.name + ".gp")
    title = t.title.replace("'", "")
    with open(gp, "w", encoding="utf-8") as f:
        f.write("\n".join([
            "set terminal pngcairo size 900,540 font 'sans,10'",
            f"set output '{png}'",
            "set datafile separator '\\t'",
            "set grid ytics",
            f"set title '{title}'",
            t.plot.replace("DATA", f"'{tsv}'", 1).replace("DATA", "''"),
            "",
        ]))
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(png):
        raise SystemExit(f"report: gnuplot failed on {gp}:\n{r.stderr}")
    return png


def markdown(t, commands, png_rel):
    lines = [f"### {t.title}", ""]
    cmds = [c for src in t.groups for c in commands.get(src, []) if t.keep is None or t.keep(c)]
    if cmds:
        lines += ["```text"] + cmds + ["```", ""]
    lines.append("| " + " | ".join(t.md_header) + " |")
    lines.append("|" + "---|" * len(t.md_header))
    for r in t.md_rows:
        lines.append("| " + " | ".join(r) + " |")
    lines += ["", f"Target: {t.target}. Median (min–max) of the repetitions.", "",
              f"![{t.title}]({png_rel})", ""]
    return "\n".join(lines)


def report(results, plots):
    recs, commands = load(results)
    tables = [iptables_sync(recs, "full"), iptables_sync(recs, "partial"), event_latency(recs),
              mode_full(recs), mode_add(recs), first_packet(recs)]
    tables += install(recs, ["bgp"], "bgp_install", "BGP feed installed in the kernel",
                      "bgpd at least as fast as BIRD (time / BIRD ≤ 1), RSS ≤ 1.5 × BIRD, "
                      "≥ 90 % of the ip -batch rate")
    tables += [diag(recs), memory(recs)]
    tables = [t for t in tables if t.rows]
    if not tables:
        raise SystemExit("report: no measurements in runs.tsv")
    os.makedirs(plots, exist_ok=True)
    reps = sorted({r for _, r, *_ in recs})
    out = ["# Benchmark tables", "",
           f"Generated by `benches/run.sh` from {len(reps)} repetition(s); machine in "
           "`benches/results/machine.txt`.", ""]
    for t in tables:
        png = render(t, results, plots)
        rel = os.path.relpath(png, os.path.join(os.path.dirname(os.path.abspath(results)), "..", "docs"))
        out.append(markdown(t, commands, rel))
        print(f"report: {t.name}: {len(t.rows)} rows -> {t.name}.tsv, {png}")
    with open(os.path.join(results, "tables.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out))


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "check":
            lines = parse_log(argv[2], argv[3])
            print(f"report: {argv[2]}: {len(lines)} BENCH line(s)")
        elif len(argv) == 4 and argv[1] == "report":
            report(argv[2], argv[3])
        else:
            raise SystemExit(__doc__)
    except ParseError as e:
        raise SystemExit(f"report: cannot parse the output of {e}") from None


if __name__ == "__main__":
    main(sys.argv)
