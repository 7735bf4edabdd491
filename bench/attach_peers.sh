#!/usr/bin/env bash
# Container attach/detach latency, side by side in one node namespace:
#   overlayd                      `overlayd attach/detach --netns` (CLI -> daemon socket),
#                                 a `shared` service: bridge + nftables masquerade
#   netavark                      setup/teardown, bridge driver, nftables firewall driver
#   CNI reference plugins         bridge (isGateway, ipMasq) + host-local IPAM
# All three run inside a node network namespace made here (their bridges, veths
# and firewall rules land there, never in the machine's own namespace), against
# the same BATCH container namespaces made here, ROUNDS times: N = BATCH *
# ROUNDS attaches and as many detaches per tool, each one tool invocation timed
# with a monotonic clock (bench/attach_timing.py). No packet leaves these
# namespaces; everything is deleted on exit, also on failure or Ctrl-C.
#
# Output (stdout), one figure per line, tab separated, for bench/run.sh:
#   BENCH  attach  TOOL  attach_p50_ms|attach_p95_ms|detach_p50_ms|detach_p95_ms|n  VALUE
#   BENCH  attach  TOOL  unavailable  REASON
# TOOL is overlayd, overlayd-cni, netavark or cni-bridge. Progress goes to stderr.
#
# usage: sudo bench/attach_peers.sh          (from anywhere)
# env:   N (200)  BATCH (50)
#        OVERLAYD (target/release/overlayd; "" = skip)
#        OVERLAYD_CNI (overlayd-cni beside OVERLAYD, else a link to OVERLAYD; "" = skip)
#        NETAVARK (netavark on PATH, else $OVERLAYD_BENCH_CACHE/bin/netavark)
#        CNI_DIR (/usr/lib/cni)  OVERLAYD_BENCH_CACHE (/var/cache/overlayd-bench)
set -euo pipefail

N=${N:-200}
BATCH=${BATCH:-50}
CACHE=${OVERLAYD_BENCH_CACHE:-/var/cache/overlayd-bench}
CNI_DIR=${CNI_DIR:-/usr/lib/cni}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OVERLAYD=${OVERLAYD-${CARGO_TARGET_DIR:-$ROOT/target}/release/overlayd}
# The CNI plugin: the separate binary when built, else overlayd itself run
# under the name overlayd-cni (what `overlayd cni install` installs).
OVERLAYD_CNI=${OVERLAYD_CNI-$(dirname "$OVERLAYD")/overlayd-cni}

[ "$(id -u)" = 0 ] || { echo "attach_peers.sh: needs root" >&2; exit 1; }
for t in ip python3; do
    command -v "$t" >/dev/null || { echo "attach_peers.sh: missing $t" >&2; exit 1; }
done
((BATCH >= 1 && BATCH <= 1000)) || { echo "BATCH must be 1..1000" >&2; exit 2; }
ROUNDS=$(((N + BATCH - 1) / BATCH))

unavailable() { printf 'BENCH\tattach\t%s\tunavailable\t%s\n' "$1" "$2"; }

if [ -n "$OVERLAYD" ] && [ ! -x "$OVERLAYD" ]; then
    unavailable overlayd "not built ($OVERLAYD)"
    OVERLAYD=""
fi
if [ -z "${NETAVARK:-}" ]; then
    NETAVARK=$(command -v netavark || true)
    [ -n "$NETAVARK" ] || NETAVARK=$CACHE/bin/netavark
fi
if [ ! -x "$NETAVARK" ]; then
    unavailable netavark "not installed ($NETAVARK)"
    NETAVARK=""
fi
if [ ! -x "$CNI_DIR/bridge" ] || [ ! -x "$CNI_DIR/host-local" ]; then
    unavailable cni-bridge "no bridge/host-local plugin in $CNI_DIR"
    CNI_DIR=""
fi
[ -n "$OVERLAYD$NETAVARK$CNI_DIR" ] || exit 0

TAG=oab$$
NODE=${TAG}n
WORK=$(mktemp -d /tmp/overlayd-attach-bench.XXXXXX)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_traps

ip netns add "$NODE"
ip -n "$NODE" link set lo up
bench_containers "$BATCH"
NETNS_LIST=$(IFS=,; echo "${CONTAINERS[*]}")

SOCK=$WORK/overlayd.sock
if [ -n "$OVERLAYD" ]; then
    # Fresh data dir, socket and run dir under $WORK; DNS only on the
    # gateways inside the node namespace.
    ip netns exec "$NODE" "$OVERLAYD" run --data-dir "$WORK/overlayd-data" --socket "$SOCK" \
        >"$WORK/overlayd.log" 2>&1 &
    DAEMON_PID=$!
    deadline=$((SECONDS + 20))
    until [ -S "$SOCK" ] && ip netns exec "$NODE" "$OVERLAYD" --socket "$SOCK" status >/dev/null 2>&1; do
        if ((SECONDS >= deadline)) || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            unavailable overlayd "daemon did not become ready: $(tail -n1 "$WORK/overlayd.log")"
            OVERLAYD=""
            break
        fi
        sleep 0.05
    done
    if [ -n "$OVERLAYD" ] &&
        ! ip netns exec "$NODE" "$OVERLAYD" --socket "$SOCK" service up bench --mode shared >"$WORK/svc.log" 2>&1; then
        unavailable overlayd "service up failed: $(tail -n1 "$WORK/svc.log")"
        OVERLAYD=""
    fi
fi

CNI_PLUGIN=""
if [ -n "$OVERLAYD" ] && [ -n "$OVERLAYD_CNI" ]; then
    if [ ! -x "$OVERLAYD_CNI" ]; then
        ln -s "$(realpath "$OVERLAYD")" "$WORK/overlayd-cni"
        OVERLAYD_CNI=$WORK/overlayd-cni
    fi
    ip netns exec "$NODE" "$OVERLAYD" --socket "$SOCK" service up cnibench --mode shared >/dev/null
    CNI_PLUGIN=$OVERLAYD_CNI
fi

echo "attach peers: $ROUNDS round(s) x $BATCH containers per tool in netns $NODE" >&2
# Everything the tools create lands in $NODE: the helper and its children run there.
ip netns exec "$NODE" python3 "$HERE/attach_timing.py" --work "$WORK" \
    --netns "$NETNS_LIST" --rounds "$ROUNDS" \
    --overlayd "$OVERLAYD" --overlayd-socket "$SOCK" --overlayd-service bench \
    --overlayd-cni "$CNI_PLUGIN" \
    --netavark "$NETAVARK" --cni-dir "$CNI_DIR"
