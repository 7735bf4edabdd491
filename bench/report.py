#!/usr/bin/env python3
"""Render the one markdown table of bench/run.sh from the raw section outputs.

Inputs (each optional; a missing or unparsable one yields "not measured" rows):
  --attach FILE   BENCH lines of bench/attach_peers.sh
  --daemon FILE   markdown report of bench/daemon.sh (cargo bench --bench daemon)
  --tput FILE     output of crates/overlayd-wg/bench/throughput.sh
  --dns FILE      output of crates/overlayd-dns/bench/dns_vs_dnsmasq.sh
  --cluster FILE  BENCH lines of bench/cluster.sh
  --note TEXT     a line printed under the table (repeatable)

Ratios are always overlayd / peer, with the reading spelled out (for latency
lower is better, for throughput higher is better). Medians: attach/detach
percentiles are over all N samples of a tool; throughput is the median of the
script's runs per direction; DNS the median of its rounds; restart the median
of the daemon bench's restarts.
"""

import argparse
import re
import sys

NM = "not measured"

PEER_LABEL = {
    "netavark": "netavark (bridge, nftables)",
    "cni-bridge": "CNI bridge + host-local",
    "cni-bridge-plugin": "CNI bridge + host-local plugins",
    "wireguard-go": "wireguard-go",
    "boringtun-cli": "boringtun-cli",
    "veth": "plain veth (ceiling)",
    "dnsmasq": "dnsmasq",
}


def read(path):
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def parse_attach(text):
    """{tool: {metric: value}} and {tool: reason} from BENCH lines."""
    values, unavailable = {}, {}
    for line in (text or "").splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or parts[0] != "BENCH" or parts[1] != "attach":
            continue
        _, _, tool, metric, value = parts
        if metric == "unavailable":
            unavailable[tool] = value
            continue
        try:
            values.setdefault(tool, {})[metric] = float(value)
        except ValueError:
            pass
    return values, unavailable


def ms_value(cell):
    match = re.search(r"([\d.]+)\s*ms", cell)
    return float(match.group(1)) if match else None


def parse_daemon(text):
    """Figures from the daemon bench's markdown report."""
    out = {}
    for line in (text or "").splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        label = cells[0]
        if label.startswith("attach (") and len(cells) >= 4:
            out["sock_attach"] = (ms_value(cells[2]), ms_value(cells[3]), cells[1])
        elif label.startswith("detach (") and len(cells) >= 4:
            out["sock_detach"] = (ms_value(cells[2]), ms_value(cells[3]), cells[1])
        elif label.startswith("spawn") and "ready" in label and len(cells) >= 3:
            out["ready"] = (ms_value(cells[2]), cells[1])
        elif label.startswith("ping every") and len(cells) >= 2:
            interval = re.search(r"every (\d+) ms", label)
            counts = re.search(r"(\d+) sent, (\d+) received, \**(\d+) lost", cells[1])
            if interval and counts:
                out["ping"] = (int(interval.group(1)), int(counts.group(1)),
                               int(counts.group(2)), int(counts.group(3)))
        elif label.startswith("restart window") and len(cells) >= 2:
            out["window"] = ms_value(cells[1])
        elif label.startswith("nothing recreated") and len(cells) >= 2:
            out["unchanged"] = cells[1]
    ratio = re.search(r"published / plain: \**([0-9.]+)×", text or "")
    if ratio:
        out["publish_ratio"] = float(ratio.group(1))
    match = re.search(r"with (\d+) isolation networks and (\d+) attachments", text or "")
    if match:
        out["scale"] = (match.group(1), match.group(2))
    return out


def parse_tput(text):
    """{(backend, streams): (fwd, rev, tool_cpu, total_cpu, drops, failed)} and
    {backend: reason}. fwd/rev are Gbit/s or None for FAILED; CPU in s/GB or None."""
    values, missing = {}, {}
    num = lambda v: None if v in ("FAILED", "n/a") else float(v)
    pattern = (r"^(\S+) P(\d+) ([\d.]+|FAILED) Gb/s ([\d.]+|FAILED) Gb/s .*"
               r"failed (\d+/\d+) tool-cpu ([\d.]+|n/a) s/GB total-cpu ([\d.]+|n/a) s/GB"
               r" udp-rcvbuf-drops (-?\d+)")
    for line in (text or "").splitlines():
        match = re.match(pattern, line)
        if match:
            g = match.groups()
            values[(g[0], int(g[1]))] = (num(g[2]), num(g[3]), num(g[5]), num(g[6]),
                                         int(g[7]), g[4])
        match = re.match(r"^(\S+): not measured \((.*)\)", line)
        if match:
            missing[match.group(1)] = match.group(2)
    return values, missing


def parse_dns(text):
    """{label: (qps, p50_us, p99_us, cpu_us_per_query)}."""
    values = {}
    pattern = (r"^(\S+)\s+median\s+(\d+) q/s\s+p50\s+(\d+) us\s+p99\s+(\d+) us"
               r"\s+server CPU ([\d.]+) us/query")
    for line in (text or "").splitlines():
        match = re.match(pattern, line)
        if match:
            values[match.group(1)] = tuple(float(g) for g in match.groups()[1:])
    return values


def ratio(ours, theirs, lower_is_better):
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return "—"
    r = ours / theirs
    if lower_is_better:
        word = f"{1 / r:.2f}× faster" if r < 1 else f"{r:.2f}× slower"
    else:
        word = f"{r:.2f}× higher" if r >= 1 else f"{1 / r:.2f}× lower"
    return f"{r:.2f} ({word})"


def fmt(value, unit, digits=1):
    if value is None:
        return NM
    return f"{value:,.{digits}f} {unit}"


class Table:
    def __init__(self):
        self.rows = []

    def add(self, metric, ours, peer, theirs, rat):
        self.rows.append((metric, ours, peer, theirs, rat))

    def render(self):
        lines = ["| metric | overlayd | peer | peer value | ratio overlayd / peer |",
                 "|---|---:|---|---:|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def pair(values, unit, digits):
    """'a / b unit' for a p50/p95 or fwd/rev pair, or None when incomplete."""
    if any(v is None for v in values):
        return None
    return " / ".join(f"{v:,.{digits}f}" for v in values) + f" {unit}"


def pair_ratio(ours, theirs, lower_is_better):
    """Ratios of both halves of a pair: '0.23 / 0.26 (4.3× / 3.8× faster)'."""
    if any(v is None or v <= 0 for v in list(ours) + list(theirs)):
        return "—"
    rs = [a / b for a, b in zip(ours, theirs)]
    plain = " / ".join(f"{r:.2f}" for r in rs)
    if lower_is_better:
        if all(r < 1 for r in rs):
            return f"{plain} ({' / '.join(f'{1 / r:.1f}×' for r in rs)} faster)"
        if all(r >= 1 for r in rs):
            return f"{plain} ({' / '.join(f'{r:.1f}×' for r in rs)} slower)"
    else:
        if all(r >= 1 for r in rs):
            return f"{plain} ({' / '.join(f'{r:.1f}×' for r in rs)} higher)"
        if all(r < 1 for r in rs):
            return f"{plain} ({' / '.join(f'{1 / r:.1f}×' for r in rs)} lower)"
    return f"{plain} (mixed)"


def attach_rows(table, text):
    values, unavailable = parse_attach(text)
    ours = values.get("overlayd", {})
    n = int(ours.get("n", 0)) or max((int(v.get("n", 0)) for v in values.values()), default=0)
    for op in ("attach", "detach"):
        keys = (f"{op}_p50_ms", f"{op}_p95_ms")
        mine = [ours.get(k) for k in keys]
        mine_cell = pair(mine, "ms", 2) or f"{NM}: {unavailable.get('overlayd', 'no output')}"
        for peer in ("netavark", "cni-bridge"):
            theirs = [values.get(peer, {}).get(k) for k in keys]
            peer_cell = pair(theirs, "ms", 2) or f"{NM}: {unavailable.get(peer, 'no output')}"
            count = f"N={n} each; " if n else ""
            metric = (f"container {op} p50 / p95, one CLI process per operation "
                      f"({count}lower is better)")
            table.add(metric, mine_cell, PEER_LABEL[peer], peer_cell,
                      pair_ratio(mine, theirs, True))


    cni = values.get("overlayd-cni", {})
    for op, verb in (("attach", "ADD"), ("detach", "DEL")):
        keys = (f"{op}_p50_ms", f"{op}_p95_ms")
        mine = [cni.get(k) for k in keys]
        mine_cell = pair(mine, "ms", 2) or f"{NM}: {unavailable.get('overlayd-cni', 'no output')}"
        theirs = [values.get("cni-bridge", {}).get(k) for k in keys]
        peer_cell = pair(theirs, "ms", 2) or f"{NM}: {unavailable.get('cni-bridge', 'no output')}"
        table.add(f"CNI {verb} p50 / p95, one plugin process per operation "
                  f"(overlayd-cni; lower is better)", mine_cell,
                  PEER_LABEL["cni-bridge-plugin"], peer_cell, pair_ratio(mine, theirs, True))


def daemon_rows(table, text, why_missing):
    fig = parse_daemon(text)
    reason = why_missing or "bench/daemon.sh printed no such figure"
    for key, op in (("sock_attach", "attach"), ("sock_detach", "detach")):
        if key in fig and pair(fig[key][:2], "ms", 2):
            p50, p95, n = fig[key]
            table.add(f"container {op} p50 / p95 through the socket API, no process "
                      f"start (N={n}; bench/daemon.sh)", pair((p50, p95), "ms", 2),
                      "— (netavark/CNI have no API)", "—", "—")
        else:
            table.add(f"container {op} through the socket API", f"{NM}: {reason}",
                      "—", "—", "—")
    if "publish_ratio" in fig:
        table.add("attach with 2 published ports / plain attach, ratio of medians "
                  "(target ≤ 1.2×; bench/daemon.sh)", f"{fig['publish_ratio']:.2f}×",
                  "—", "—", "—")
    else:
        table.add("attach with 2 published ports / plain attach", f"{NM}: {reason}",
                  "—", "—", "—")
    nets, atts = fig.get("scale", ("64", "500"))
    if "ready" in fig and fig["ready"][0] is not None:
        ready, runs = fig["ready"]
        extra = f"; links unchanged: {fig['unchanged']}" if "unchanged" in fig else ""
        table.add(f"daemon restart → ready, {nets} networks + {atts} attachments "
                  f"(median of {runs}{extra})", f"{ready:.1f} ms",
                  "— (netavark/CNI have no daemon)", "—", "—")
    else:
        table.add(f"daemon restart → ready, {nets} networks + {atts} attachments",
                  f"{NM}: {reason}", "—", "—", "—")
    if "ping" in fig:
        interval, sent, received, lost = fig["ping"]
        window = fig.get("window")
        window_txt = f" over a {window:.0f} ms restart window" if window is not None else ""
        # k consecutive losses at interval t: a gap of about k*t; none: below t.
        gap = (f"gap < {interval} ms, the probe interval" if lost == 0
               else f"about {lost * interval} ms of probes lost")
        table.add(f"data-plane interruption during the restart (ping every {interval} ms "
                  f"between two containers{window_txt})",
                  f"{lost} of {sent} pings lost ({gap})", "—", "—", "—")
    else:
        table.add("data-plane interruption during the restart", f"{NM}: {reason}",
                  "—", "—", "—")


def cpu_ratio(ours, theirs):
    if not ours or not theirs:
        return "—"
    return f"{theirs / ours:.2f}× less CPU" if ours <= theirs else f"{ours / theirs:.2f}× more CPU"


def tput_rows(table, text, why_missing):
    values, missing = parse_tput(text)
    reason = why_missing or "throughput.sh printed no figures"
    streams = sorted({s for (_, s) in values}) or [1]

    def cell(v, failed):
        if v is None:
            return None
        if None in v[:2]:
            return " / ".join("FAILED" if x is None else f"{x:.2f}" for x in v[:2]) + \
                f" Gbit/s ({failed} runs failed)"
        return pair(v[:2], "Gbit/s", 2)

    for n in streams:
        mine = values.get(("overlayd-wg", n))
        mine_cell = (cell(mine, mine[5]) if mine else None) or f"{NM}: {reason}"
        metric = (f"tunnel TCP throughput, {n} stream{'s' if n > 1 else ''}, n1→n2 / n2→n1, "
                  "median (overlayd's userspace WireGuard backend; higher is better)")
        for peer in ("wireguard-go", "boringtun-cli", "veth"):
            theirs = values.get((peer, n))
            theirs_cell = (cell(theirs, theirs[5]) if theirs else None) or \
                f"{NM}: {missing.get(peer, reason)}"
            m2 = mine[:2] if mine else (None, None)
            t2 = theirs[:2] if theirs else (None, None)
            if peer == "veth" and None not in m2 and None not in t2 and all(t2):
                pcts = " / ".join(f"{100 * a / b:.0f}%" for a, b in zip(m2, t2))
                rat = " / ".join(f"{a / b:.2f}" for a, b in zip(m2, t2))
                rat = f"{rat} ({pcts} of the ceiling)"
            else:
                rat = pair_ratio(m2, t2, False)
            table.add(metric, mine_cell, PEER_LABEL[peer], theirs_cell, rat)
        metric = (f"tunnel CPU seconds per GB moved, {n} stream{'s' if n > 1 else ''} "
                  "(both ends' WireGuard processes; lower is better)")
        mine_cpu = mine[2] if mine else None
        for peer in ("wireguard-go", "boringtun-cli"):
            theirs = values.get((peer, n))
            peer_cpu = theirs[2] if theirs else None
            table.add(metric,
                      fmt(mine_cpu, "s/GB", 2) if mine_cpu is not None else f"{NM}: {reason}",
                      PEER_LABEL[peer],
                      fmt(peer_cpu, "s/GB", 2) if peer_cpu is not None
                      else f"{NM}: {missing.get(peer, reason)}",
                      cpu_ratio(mine_cpu, peer_cpu))


def dns_rows(table, text, why_missing):
    values = parse_dns(text)
    reason = why_missing or "dns_vs_dnsmasq.sh printed no figures"
    ours, theirs = values.get("overlayd-dns"), values.get("dnsmasq")
    rows = (("DNS queries per second, median (higher is better)", 0, "q/s", 0, False),
            ("DNS query latency p99 under that load (lower is better)", 2, "µs", 0, True),
            ("DNS server CPU per query (lower is better)", 3, "µs", 1, True))
    for metric, index, unit, digits, lower in rows:
        mine = ours[index] if ours else None
        peer = theirs[index] if theirs else None
        table.add(metric,
                  fmt(mine, unit, digits) if mine is not None else f"{NM}: {reason}",
                  PEER_LABEL["dnsmasq"],
                  fmt(peer, unit, digits) if peer is not None else f"{NM}: {reason}",
                  ratio(mine, peer, lower))


def parse_cluster(text):
    """{nodes: (join_ms, late_ms, etcd_per_node_min) or reason} from BENCH lines."""
    out = {}
    for line in (text or "").splitlines():
        f = line.split("\t")
        if len(f) < 5 or f[0] != "BENCH" or f[1] != "cluster":
            continue
        if f[3] == "unavailable":
            out[f[2]] = f[4]
            continue
        try:
            out[f[2]] = tuple(None if v == "-" else float(v) for v in f[3:6])
        except (ValueError, IndexError):
            continue
    return out


def cluster_rows(table, text, why_missing):
    values = parse_cluster(text)
    reason = why_missing or "bench/cluster.sh printed no figures"
    if not values:
        table.add("cluster join convergence (bench/cluster.sh)", f"{NM}: {reason}",
                  "— (no peer measured)", "—", "—")
        return
    for nodes, v in values.items():
        if isinstance(v, str):
            table.add(f"cluster of {nodes} nodes on etcd", f"{NM}: {v}", "—", "—", "—")
            continue
        join, late, rate = v
        table.add(f"cluster join convergence, {nodes} nodes: last node's start → "
                  "every container pings every other", fmt(join, "ms", 0), "—", "—", "—")
        target = "" if nodes != "16" or late is None else (
            " (target < 2 s: met)" if late < 2000 else " (target < 2 s: missed)")
        table.add(f"late joiner reachable from all {nodes} members{target}",
                  fmt(late, "ms", 0), "—", "—", "—")
        table.add(f"etcd messages per node per minute at rest, {nodes} nodes "
                  "(keep-alives only is the target)", fmt(rate, "/min", 1), "—", "—", "—")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("attach", "daemon", "tput", "dns", "cluster"):
        parser.add_argument(f"--{name}", default="")
        parser.add_argument(f"--{name}-missing", default="",
                            help="why the section was not run")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()

    table = Table()
    attach_text = read(args.attach)
    if attach_text is None and args.attach_missing:
        attach_text = "\n".join(
            f"BENCH\tattach\t{t}\tunavailable\t{args.attach_missing}"
            for t in ("overlayd", "overlayd-cni", "netavark", "cni-bridge"))
    attach_rows(table, attach_text)
    daemon_rows(table, read(args.daemon), args.daemon_missing)
    tput_rows(table, read(args.tput), args.tput_missing)
    dns_rows(table, read(args.dns), args.dns_missing)
    cluster_rows(table, read(args.cluster), args.cluster_missing)
    print(table.render())
    if args.note:
        print()
        for note in args.note:
            print(f"- {note}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
