#!/usr/bin/env bash
# A/B attach latency of two overlayd binaries, in the same run: alternates
# bench/attach_peers.sh between OLD and NEW (overlayd only: no netavark, no CNI
# bridge), RUNS times each, and prints every run's attach/detach p50 and the
# ratio of the medians (NEW / OLD). The order alternates every round. For checks like "attach p50 stays within
# 10% of the previous build" on a shared, noisy machine.
#
# usage: sudo bench/attach_ab.sh OLD_BINARY NEW_BINARY [RUNS (3)]
# env:   N (200) BATCH (50), passed to attach_peers.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OLD=${1:?usage: attach_ab.sh OLD_BINARY NEW_BINARY [RUNS]}
NEW=${2:?usage: attach_ab.sh OLD_BINARY NEW_BINARY [RUNS]}
RUNS=${3:-3}
[ "$(id -u)" = 0 ] || { echo "attach_ab.sh: needs root" >&2; exit 1; }
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "not executable: $b" >&2; exit 2; }; done

declare -A P50 D50
for ((r = 1; r <= RUNS; r++)); do
    # ABBA: the order flips every round, so whatever the first run of a
    # round pays (the kernel still freeing the last run's namespaces) is
    # shared by both sides.
    order="old new"; ((r % 2 == 0)) && order="new old"
    for side in $order; do
        bin=$OLD; [ "$side" = new ] && bin=$NEW
        out=$(OVERLAYD=$bin OVERLAYD_CNI="" NETAVARK=/nonexistent CNI_DIR=/nonexistent \
            "$HERE/attach_peers.sh" 2>/dev/null | awk -F'\t' '$3 == "overlayd"')
        a=$(awk -F'\t' '$4 == "attach_p50_ms" {print $5}' <<<"$out")
        d=$(awk -F'\t' '$4 == "detach_p50_ms" {print $5}' <<<"$out")
        [ -n "$a" ] || { echo "run $r ($side): no figures: $out" >&2; exit 1; }
        P50[$side]+="$a "
        D50[$side]+="$d "
        printf 'run %d %-3s attach p50 %s ms  detach p50 %s ms\n' "$r" "$side" "$a" "$d"
    done
done
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ao=$(median "${P50[old]}"); an=$(median "${P50[new]}")
do_=$(median "${D50[old]}"); dn=$(median "${D50[new]}")
awk -v ao="$ao" -v an="$an" -v do_="$do_" -v dn="$dn" 'BEGIN {
    printf "median attach p50: old %.2f ms, new %.2f ms, new/old %.2f\n", ao, an, an / ao
    printf "median detach p50: old %.2f ms, new %.2f ms, new/old %.2f\n", do_, dn, dn / do_
}'
