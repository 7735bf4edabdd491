#!/usr/bin/env bash
# TCP throughput through WireGuard implementations between two network
# namespaces joined by a veth underlay (192.0.2.1/24 <-> 192.0.2.2/24):
#   overlayd-wg userspace (our device around boringtun's Noise core, examples/wg_node)
#   wireguard-go            (apt-get install wireguard-go)
#   boringtun-cli           (cargo install boringtun-cli --root /tmp/bt)
#   plain veth              (the ceiling)
# iperf3 with 1 and STREAMS parallel streams, both directions, RUNS runs of
# SECS seconds each: medians of the successful runs (failed runs are reported
# as failures, never as 0), CPU seconds per GB moved (the implementation's
# processes, and the whole machine), UDP receive-buffer drops (see
# measure.py). Every namespace, process and socket it makes is removed on exit.
#
# usage: sudo crates/overlayd-wg/bench/throughput.sh   (from the workspace root)
# env:   RUNS=3 SECS=5 STREAMS=4 BORINGTUN_CLI=/tmp/bt/bin/boringtun-cli WG_NODE=<path>
set -euo pipefail

RUNS=${RUNS:-3}
SECS=${SECS:-5}
STREAMS=${STREAMS:-4}
BORINGTUN_CLI=${BORINGTUN_CLI:-/tmp/bt/bin/boringtun-cli}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
WG_NODE=${WG_NODE:-$ROOT/target/release/examples/wg_node}

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
for t in ip wg iperf3 python3; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
[ -x "$WG_NODE" ] || { echo "build it first: cargo build --release -p overlayd-wg --example wg_node" >&2; exit 1; }

TAG=$$
N1=owgb${TAG}a
N2=owgb${TAG}b
# wireguard-go and boringtun-cli put sockets in the shared /run/wireguard:
# names unique to this run keep them from colliding with anything else.
GO_IF=wgo${TAG}
BT_IF=wgb${TAG}
WORK=$(mktemp -d /tmp/owg-bench.XXXXXX)
RUN_WG_EXISTED=0
[ -d /run/wireguard ] && RUN_WG_EXISTED=1
PIDS=()

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$N1" 2>/dev/null
    ip netns del "$N2" 2>/dev/null
    rm -f /run/wireguard/"$GO_IF"*.sock /run/wireguard/"$BT_IF"*.sock
    [ "$RUN_WG_EXISTED" = 1 ] || rmdir /run/wireguard 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$N1"
ip netns add "$N2"
ip -n "$N1" link set lo up
ip -n "$N2" link set lo up
ip link add ul0 netns "$N1" type veth peer name ul0 netns "$N2"
ip -n "$N1" addr add 192.0.2.1/24 dev ul0
ip -n "$N2" addr add 192.0.2.2/24 dev ul0
ip -n "$N1" link set ul0 up
ip -n "$N2" link set ul0 up

K1=$(wg genkey); K2=$(wg genkey)
P1=$(echo "$K1" | wg pubkey); P2=$(echo "$K2" | wg pubkey)
echo "$K1" >"$WORK/k1"; echo "$K2" >"$WORK/k2"; chmod 600 "$WORK"/k?

wait_ping() { # ns ip
    for _ in $(seq 1 100); do
        ip netns exec "$1" ping -c1 -W1 "$2" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "no connectivity to $2 from $1" >&2
    return 1
}

# --- overlayd-wg userspace: subnet 10.99.1.0/24, port 51820, device "ovl0" ---
"$WG_NODE" /run/netns/"$N1" "$WORK/uapi1" ovl0 51820 "$WORK/k1" "$P2" 192.0.2.2:51820 10.99.1.2/32 >"$WORK/n1.log" 2>&1 &
PIDS+=($!); OURS_PIDS=$!
"$WG_NODE" /run/netns/"$N2" "$WORK/uapi2" ovl0 51820 "$WORK/k2" "$P1" 192.0.2.1:51820 10.99.1.1/32 >"$WORK/n2.log" 2>&1 &
PIDS+=($!); OURS_PIDS=$OURS_PIDS,$!
for i in $(seq 1 100); do
    grep -q ready "$WORK/n1.log" 2>/dev/null && grep -q ready "$WORK/n2.log" 2>/dev/null && break
    sleep 0.1
done
grep -q ready "$WORK/n1.log" && grep -q ready "$WORK/n2.log" || { cat "$WORK"/n?.log >&2; exit 1; }
ip -n "$N1" addr add 10.99.1.1/24 dev ovl0
ip -n "$N2" addr add 10.99.1.2/24 dev ovl0
wait_ping "$N1" 10.99.1.2

wait_sock() { for _ in $(seq 1 100); do [ -S /run/wireguard/"$1".sock ] && return 0; sleep 0.1; done; return 1; }

# --- wireguard-go: subnet 10.99.2.0/24, port 51821 ---
HAVE_GO=0
if command -v wireguard-go >/dev/null; then
    # Different names per side: both sockets live in the shared /run/wireguard.
    GO1=${GO_IF}a; GO2=${GO_IF}b
    WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec "$N1" wireguard-go -f "$GO1" >"$WORK/go1.log" 2>&1 & PIDS+=($!); GO_PIDS=$!
    WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec "$N2" wireguard-go -f "$GO2" >"$WORK/go2.log" 2>&1 & PIDS+=($!); GO_PIDS=$GO_PIDS,$!
    if wait_sock "$GO1" && wait_sock "$GO2"; then
        ip netns exec "$N1" wg set "$GO1" private-key "$WORK/k1" listen-port 51821 \
            peer "$P2" endpoint 192.0.2.2:51821 allowed-ips 10.99.2.2/32
        ip netns exec "$N2" wg set "$GO2" private-key "$WORK/k2" listen-port 51821 \
            peer "$P1" endpoint 192.0.2.1:51821 allowed-ips 10.99.2.1/32
        ip -n "$N1" link set "$GO1" mtu 1420 up; ip -n "$N2" link set "$GO2" mtu 1420 up
        ip -n "$N1" addr add 10.99.2.1/24 dev "$GO1"; ip -n "$N2" addr add 10.99.2.2/24 dev "$GO2"
        wait_ping "$N1" 10.99.2.2 && HAVE_GO=1
    fi
fi

# --- boringtun-cli: subnet 10.99.3.0/24, port 51822 ---
HAVE_BT=0
if [ -x "$BORINGTUN_CLI" ]; then
    BT1=${BT_IF}a; BT2=${BT_IF}b
    ip netns exec "$N1" "$BORINGTUN_CLI" -f --disable-drop-privileges -l "$WORK/bt1.log" "$BT1" >/dev/null 2>&1 & PIDS+=($!); BT_PIDS=$!
    ip netns exec "$N2" "$BORINGTUN_CLI" -f --disable-drop-privileges -l "$WORK/bt2.log" "$BT2" >/dev/null 2>&1 & PIDS+=($!); BT_PIDS=$BT_PIDS,$!
    if wait_sock "$BT1" && wait_sock "$BT2"; then
        ip netns exec "$N1" wg set "$BT1" private-key "$WORK/k1" listen-port 51822 \
            peer "$P2" endpoint 192.0.2.2:51822 allowed-ips 10.99.3.2/32
        ip netns exec "$N2" wg set "$BT2" private-key "$WORK/k2" listen-port 51822 \
            peer "$P1" endpoint 192.0.2.1:51822 allowed-ips 10.99.3.1/32
        ip -n "$N1" link set "$BT1" mtu 1420 up; ip -n "$N2" link set "$BT2" mtu 1420 up
        ip -n "$N1" addr add 10.99.3.1/24 dev "$BT1"; ip -n "$N2" addr add 10.99.3.2/24 dev "$BT2"
        wait_ping "$N1" 10.99.3.2 && HAVE_BT=1
    fi
fi

ip netns exec "$N2" iperf3 -s -D --pidfile "$WORK/iperf.pid" >/dev/null 2>&1
for _ in $(seq 1 50); do [ -s "$WORK/iperf.pid" ] && break; sleep 0.1; done
PIDS+=("$(cat "$WORK/iperf.pid")")
sleep 0.2

TARGETS=("veth:192.0.2.2:" "overlayd-wg:10.99.1.2:$OURS_PIDS")
[ "$HAVE_GO" = 1 ] && TARGETS+=("wireguard-go:10.99.2.2:$GO_PIDS")
[ "$HAVE_BT" = 1 ] && TARGETS+=("boringtun-cli:10.99.3.2:$BT_PIDS")
echo "# backend streams n1->n2 n2->n1 (medians of $RUNS runs of ${SECS}s), CPU seconds per GB moved"
python3 "$(dirname "$0")/measure.py" "$N1" "$N2" "$RUNS" "$SECS" "$STREAMS" "${TARGETS[@]}"
[ "$HAVE_GO" = 1 ] || echo "wireguard-go: not measured (not installed or failed to start)"
[ "$HAVE_BT" = 1 ] || echo "boringtun-cli: not measured (not at $BORINGTUN_CLI or failed to start)"
