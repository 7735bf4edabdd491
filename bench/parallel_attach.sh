#!/usr/bin/env bash
# Parallel attach and detach, two overlayd binaries A/B in the same run:
# K containers attached at once (K `overlayd attach` processes started
# together, alternating between two isolation networks), then all detached
# at once; the wall time of each burst, per binary, ROUNDS times in ABBA order,
# and the ratio of the medians (NEW / OLD). It shows what releasing the node
# lock around the veth work (issue 12) buys when a runtime starts many
# containers together; the kernel itself still serialises parts of veth
# creation and deletion (RTNL), so the gain is bounded by that.
#
# Everything runs in namespaces made here (a node namespace holding the
# daemon, K container namespaces), removed on exit.
#
# usage: sudo bench/parallel_attach.sh OLD_BINARY NEW_BINARY [ROUNDS (3)]
# env:   K (24) containers per burst
set -euo pipefail
OLD=${1:?usage: parallel_attach.sh OLD_BINARY NEW_BINARY [ROUNDS]}
NEW=${2:?usage: parallel_attach.sh OLD_BINARY NEW_BINARY [ROUNDS]}
ROUNDS=${3:-3}
K=${K:-24}
[ "$(id -u)" = 0 ] || { echo "parallel_attach.sh: needs root" >&2; exit 1; }
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "not executable: $b" >&2; exit 2; }; done
((K >= 1 && K <= 500)) || { echo "K must be 1..500" >&2; exit 2; }

TAG=opa$$
NODE=${TAG}n
WORK=$(mktemp -d /tmp/overlayd-parallel-bench.XXXXXX)
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_traps
bench_containers "$K"

now() { date +%s%N; }

# One round with one binary: a fresh node namespace and daemon, K attaches
# at once, K detaches at once. Prints "ATTACH_MS DETACH_MS".
round() {
    local bin=$1 data=$WORK/data.$RANDOM sock=$WORK/s.$RANDOM.sock
    ip netns add "$NODE"
    ip -n "$NODE" link set lo up
    ip netns exec "$NODE" "$bin" run --data-dir "$data" --socket "$sock" >"$WORK/daemon.log" 2>&1 &
    DAEMON_PID=$!
    local deadline=$((SECONDS + 20))
    until ip netns exec "$NODE" "$bin" --socket "$sock" status >/dev/null 2>&1; do
        if ((SECONDS >= deadline)) || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            echo "daemon did not become ready: $(tail -n1 "$WORK/daemon.log")" >&2
            exit 1
        fi
        sleep 0.05
    done
    local cli=(ip netns exec "$NODE" "$bin" --socket "$sock")
    "${cli[@]}" iso up pa >/dev/null
    "${cli[@]}" iso up pb >/dev/null
    "${cli[@]}" service up bench >/dev/null
    local jobs=() t0 t1 t2 i net
    t0=$(now)
    for ((i = 0; i < K; i++)); do
        net=pa; ((i % 2)) && net=pb
        "${cli[@]}" attach --netns "/run/netns/${CONTAINERS[$i]}" --service bench --iso "$net" \
            >"$WORK/att.$i" 2>&1 &
        jobs+=($!)
    done
    for j in "${jobs[@]}"; do wait "$j" || { echo "attach failed: $(cat "$WORK"/att.*)" >&2; exit 1; }; done
    t1=$(now)
    jobs=()
    for ((i = 0; i < K; i++)); do
        "${cli[@]}" detach --netns "/run/netns/${CONTAINERS[$i]}" >"$WORK/det.$i" 2>&1 &
        jobs+=($!)
    done
    for j in "${jobs[@]}"; do wait "$j" || { echo "detach failed: $(cat "$WORK"/det.*)" >&2; exit 1; }; done
    t2=$(now)
    local left
    left=$(ip -n "$NODE" -o link show type veth | wc -l)
    [ "$left" = 0 ] || { echo "$left veths left after detach" >&2; exit 1; }
    bench_stop_daemon
    ip netns del "$NODE"
    echo "$(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000))"
}

declare -A ATT DET
for ((r = 1; r <= ROUNDS; r++)); do
    order="old new"; ((r % 2 == 0)) && order="new old"
    for side in $order; do
        bin=$OLD; [ "$side" = new ] && bin=$NEW
        # Not in a subshell: a failing round exits here, and the trap stops
        # its daemon.
        round "$bin" >"$WORK/round"
        read -r a d <"$WORK/round"
        ATT[$side]+="$a "
        DET[$side]+="$d "
        printf 'run %d %-3s %d attaches at once %d ms, %d detaches at once %d ms\n' "$r" "$side" "$K" "$a" "$K" "$d"
    done
done
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ao=$(median "${ATT[old]}"); an=$(median "${ATT[new]}")
do_=$(median "${DET[old]}"); dn=$(median "${DET[new]}")
awk -v k="$K" -v ao="$ao" -v an="$an" -v do_="$do_" -v dn="$dn" 'BEGIN {
    printf "median burst of %d attaches: old %.0f ms, new %.0f ms, new/old %.2f\n", k, ao, an, an / ao
    printf "median burst of %d detaches: old %.0f ms, new %.0f ms, new/old %.2f\n", k, do_, dn, dn / do_
}'
