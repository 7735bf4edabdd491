#!/usr/bin/env python3
"""Throughput rows for throughput.sh: iperf3 through each tunnel.

usage: measure.py N1 N2 RUNS SECS STREAMS TARGET...
       TARGET = name:address:pid,pid,...   (pids of the implementation's
       processes at both ends, empty for plain veth)

For every target, for 1 and each STREAMS value (comma list), in each direction
(fwd = N1 -> N2, rev = N2 -> N1): RUNS iperf3 runs of SECS seconds. Prints one
line per target and stream count:

  <name> P<streams> <fwd> Gb/s <rev> Gb/s fwd-runs [...] rev-runs [...] failed <k>/<n>
      tool-cpu <s> s/GB total-cpu <s> s/GB udp-rcvbuf-drops <d>

A value is the median of the successful runs, or FAILED when none succeeded;
failed runs are counted, never turned into zeros. CPU seconds per GB moved:
"tool" is the implementation's own processes (both ends; n/a for veth),
"total" the whole machine (iperf3, kernel and tool). UDP receive-buffer drops
are /proc/net/snmp's Udp RcvbufErrors of both namespaces over the target's runs.
"""

import json
import os
import statistics
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def tool_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (whole process)
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def rcvbuf_errors(namespaces):
    total = 0
    for ns in namespaces:
        out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"],
                             capture_output=True, text=True).stdout
        rows = [l.split() for l in out.splitlines() if l.startswith("Udp:")]
        if len(rows) >= 2 and "RcvbufErrors" in rows[0]:
            total += int(rows[1][rows[0].index("RcvbufErrors")])
    return total


def one_run(n1, addr, secs, streams, reverse):
    cmd = ["ip", "netns", "exec", n1, "iperf3", "-c", addr, "-t", str(secs), "-J",
           "-P", str(streams)]
    if reverse:
        cmd.append("-R")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60)
    try:
        data = json.loads(p.stdout)
    except json.JSONDecodeError:
        return None, f"iperf3 exit {p.returncode}: {p.stderr.strip()[:200]}"
    if "error" in data:
        return None, data["error"]
    s = data["end"]["sum_received"]
    if s["bytes"] <= 0:
        return None, "no bytes received"
    return (s["bits_per_second"] / 1e9, s["bytes"]), None


def main():
    n1, n2, runs, secs, streams_list = sys.argv[1:6]
    runs, secs = int(runs), int(secs)
    stream_counts = [1] + [int(s) for s in streams_list.split(",") if s and s != "1"]
    medians = {}
    for target in sys.argv[6:]:
        name, addr, pids = target.split(":", 2)
        pids = [p for p in pids.split(",") if p]
        for streams in stream_counts:
            res = {}
            failed = 0
            ticks_tool = ticks_all = moved = 0
            drops0 = rcvbuf_errors([n1, n2])
            for direction in ("fwd", "rev"):
                vals = []
                for _ in range(runs):
                    t0, a0 = tool_ticks(pids), machine_ticks()
                    r, err = one_run(n1, addr, secs, streams, direction == "rev")
                    t1, a1 = tool_ticks(pids), machine_ticks()
                    if r is None:
                        failed += 1
                        vals.append("FAIL")
                        print(f"  {name} P{streams} {direction}: run failed: {err}",
                              file=sys.stderr)
                        continue
                    gbps, nbytes = r
                    vals.append(f"{gbps:.3f}")
                    ticks_tool += t1 - t0
                    ticks_all += a1 - a0
                    moved += nbytes
                ok = [float(v) for v in vals if v != "FAIL"]
                res[direction] = (f"{statistics.median(ok):.2f}" if ok else "FAILED", vals)
                print(f"  {name} P{streams} {direction} runs: {' '.join(vals)} Gbit/s",
                      file=sys.stderr)
            medians[(name, streams)] = (res["fwd"][0], res["rev"][0])
            drops = rcvbuf_errors([n1, n2]) - drops0
            gb = moved / 1e9
            tool = f"{ticks_tool / TICK / gb:.2f}" if gb and pids else "n/a"
            total = f"{ticks_all / TICK / gb:.2f}" if gb else "n/a"
            print(f"{name} P{streams} {res['fwd'][0]} Gb/s {res['rev'][0]} Gb/s "
                  f"fwd-runs [{' '.join(res['fwd'][1])}] rev-runs [{' '.join(res['rev'][1])}] "
                  f"failed {failed}/{2 * runs} tool-cpu {tool} s/GB total-cpu {total} s/GB "
                  f"udp-rcvbuf-drops {drops}", flush=True)
    summary(medians, stream_counts)


def summary(medians, stream_counts):
    """Comment lines: ours against the better peer and the veth ceiling."""
    num = lambda v: float(v) if v not in (None, "FAILED") else None
    for streams in stream_counts:
        for i, direction in enumerate(("n1->n2", "n2->n1")):
            ours = num(medians.get(("overlayd-wg", streams), (None, None))[i])
            peers = [num(medians.get((p, streams), (None, None))[i])
                     for p in ("wireguard-go", "boringtun-cli")]
            peers = [p for p in peers if p]
            veth = num(medians.get(("veth", streams), (None, None))[i])
            if ours is None:
                print(f"# P{streams} {direction}: overlayd-wg FAILED")
                continue
            best = f"{ours / max(peers):.2f}x the better peer" if peers else "no peer measured"
            ceil = f"{100 * ours / veth:.1f}% of veth" if veth else "veth not measured"
            print(f"# P{streams} {direction}: overlayd-wg {best}, {ceil}")


if __name__ == "__main__":
    main()
