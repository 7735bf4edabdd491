#!/usr/bin/env bash
# Throughput and latency of overlayd-dns vs dnsmasq, both serving the same
# 100 A records on loopback, measured with the same UDP load generator
# (examples/dns_load.rs) in the same run. Loopback only; everything started
# here is stopped on exit.
#
# Usage: crates/overlayd-dns/bench/dns_vs_dnsmasq.sh
# Env:   RUN_SECONDS (5)  ROUNDS (3)  THREADS (1)  WINDOW (64)  RECORDS (100)
#        SKIP_BUILD (unset: build the examples first)
#        OUR_ADDR (127.0.0.11)  DNSMASQ_ADDR (127.0.0.12)  PORT (5391)  WORKERS (2)
set -euo pipefail

RUN_SECONDS=${RUN_SECONDS:-5}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
WINDOW=${WINDOW:-64}
RECORDS=${RECORDS:-100}
OUR_ADDR=${OUR_ADDR:-127.0.0.11}
DNSMASQ_ADDR=${DNSMASQ_ADDR:-127.0.0.12}
PORT=${PORT:-5391}
WORKERS=${WORKERS:-2}
ZONE=overlay.internal

case "$OUR_ADDR$DNSMASQ_ADDR" in
  127.*127.*) ;;
  *) echo "addresses must be in 127.0.0.0/8" >&2; exit 2 ;;
esac
command -v dnsmasq >/dev/null || { echo "dnsmasq missing: apt-get install dnsmasq-base" >&2; exit 2; }
command -v dig >/dev/null || { echo "dig missing: apt-get install bind9-dnsutils" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
if [[ -z ${SKIP_BUILD:-} ]]; then
  cargo build --release -q -p overlayd-dns --example dns_serve --example dns_load
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples

WORK=$(mktemp -d /tmp/dns-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Same names and addresses as dns_serve registers.
: >"$WORK/hosts"
for ((i = 0; i < RECORDS; i++)); do
  echo "10.201.$((i / 250)).$((i % 250 + 1)) name-$i.$ZONE" >>"$WORK/hosts"
done
chmod 644 "$WORK/hosts"

wait_ready() { # addr name expected-ip
  local deadline=$((SECONDS + 15))
  until dig +short +time=1 +tries=1 -p "$PORT" "@$1" "$2" A 2>/dev/null | grep -qx "$3"; do
    if ((SECONDS >= deadline)); then echo "server on $1:$PORT never answered" >&2; exit 1; fi
    sleep 0.1
  done
}

"$TARGET/dns_serve" --listen "$OUR_ADDR:$PORT" --records "$RECORDS" --workers "$WORKERS" \
  --max-seconds 600 2>"$WORK/ours.log" &
OUR_PID=$!
PIDS+=("$OUR_PID")
dnsmasq --keep-in-foreground --no-resolv --no-hosts --addn-hosts="$WORK/hosts" \
  --port "$PORT" --listen-address "$DNSMASQ_ADDR" --bind-interfaces \
  --pid-file= --cache-size=10000 --log-facility="$WORK/dnsmasq.log" &
DNSMASQ_PID=$!
PIDS+=("$DNSMASQ_PID")

wait_ready "$OUR_ADDR" "name-7.$ZONE" 10.201.0.8
wait_ready "$DNSMASQ_ADDR" "name-7.$ZONE" 10.201.0.8

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

load() { # label addr seconds server-pid
  local before after
  before=$(cpu_ticks "$4")
  "$TARGET/dns_load" --server "$2:$PORT" --zone "$ZONE" --names "$RECORDS" \
    --seconds "$3" --threads "$THREADS" --window "$WINDOW" --label "$1" --json | tr -d '\n'
  after=$(cpu_ticks "$4")
  printf '\t%s\n' "$((after - before))"
}

echo "# $(nproc) CPUs, $RECORDS records, $THREADS load thread(s), window $WINDOW, ${RUN_SECONDS}s x $ROUNDS rounds"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
load warmup "$OUR_ADDR" 1 "$OUR_PID" >/dev/null
load warmup "$DNSMASQ_ADDR" 1 "$DNSMASQ_PID" >/dev/null
: >"$WORK/results"
for ((r = 1; r <= ROUNDS; r++)); do
  # Alternate the order so background load hits both alike.
  if ((r % 2)); then
    load overlayd-dns "$OUR_ADDR" "$RUN_SECONDS" "$OUR_PID" | tee -a "$WORK/results"
    load dnsmasq "$DNSMASQ_ADDR" "$RUN_SECONDS" "$DNSMASQ_PID" | tee -a "$WORK/results"
  else
    load dnsmasq "$DNSMASQ_ADDR" "$RUN_SECONDS" "$DNSMASQ_PID" | tee -a "$WORK/results"
    load overlayd-dns "$OUR_ADDR" "$RUN_SECONDS" "$OUR_PID" | tee -a "$WORK/results"
  fi
done

python3 - "$WORK/results" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
tck = int(sys.argv[2])
runs = []
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    doc, ticks = line.rstrip("\n").split("\t")
    run = json.loads(doc)
    run["cpu_us_per_q"] = int(ticks) / tck * 1e6 / max(run["received"], 1)
    runs.append(run)
summary = {}
for label in ("overlayd-dns", "dnsmasq"):
    mine = [r for r in runs if r["label"] == label]
    summary[label] = {
        "qps": statistics.median(r["qps"] for r in mine),
        "p50": statistics.median(r["p50_us"] for r in mine),
        "p99": statistics.median(r["p99_us"] for r in mine),
        "lost": sum(r["lost"] for r in mine),
        "errors": sum(r["not_noerror"] for r in mine),
        "cpu": statistics.median(r["cpu_us_per_q"] for r in mine),
    }
for label, s in summary.items():
    print(f"{label:<13} median {s['qps']:>9.0f} q/s  p50 {s['p50']:>5.0f} us  p99 {s['p99']:>6.0f} us  server CPU {s['cpu']:.1f} us/query  lost {s['lost']}  non-NOERROR {s['errors']}")
ratio = summary["overlayd-dns"]["qps"] / summary["dnsmasq"]["qps"]
print(f"throughput ratio overlayd-dns / dnsmasq = {ratio:.2f}")
PY
