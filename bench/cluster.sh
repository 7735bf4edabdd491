#!/usr/bin/env bash
# Cluster mode on etcd: join convergence for 4, 8 and 16 nodes (userspace
# WireGuard, one namespace per node, one etcd member in a namespace of its
# own), measured by `overlayd demo --cluster --nodes N`, which creates and
# deletes every namespace itself and never touches the machine's own:
#
#   join convergence     from the last node's start until every container
#                        pings every other (full mesh, N×(N-1) pairs)
#   late joiner          from one more node's start until every member's
#                        container pings its container (target: < 2 s at 16)
#   etcd at rest         gRPC messages etcd received per node per minute over
#                        STEADY seconds with nothing changing (from etcd's
#                        /metrics; the target is lease keep-alives only)
#
# Prints `BENCH<TAB>cluster<TAB>N<TAB>join_ms<TAB>late_ms<TAB>etcd_per_node_min`
# lines (`unavailable<TAB>why` when a size could not run), then a markdown table.
#
# usage: sudo bench/cluster.sh
# env:   SIZES ("4 8 16")  STEADY (30)  OVERLAYD (target/release/overlayd; built
#        with `cargo build --release -p overlayd --bin overlayd` when absent)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/cluster.sh: needs root (network namespaces)" >&2; exit 1; }
for t in etcd etcdctl curl ip ping; do
    command -v "$t" >/dev/null || { echo "bench/cluster.sh: $t missing; run scripts/setup.sh" >&2; exit 1; }
done
SIZES=${SIZES:-4 8 16}
STEADY=${STEADY:-30}
OVERLAYD=${OVERLAYD:-${CARGO_TARGET_DIR:-target}/release/overlayd}
if [ ! -x "$OVERLAYD" ]; then
    echo "building $OVERLAYD (release, overlayd only)" >&2
    cargo build --release -q -p overlayd --bin overlayd >&2
fi
WORK=$(mktemp -d /tmp/overlayd-cluster-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

rows=()
for n in $SIZES; do
    echo "== $n nodes (+1 late joiner): $OVERLAYD demo --cluster --nodes $n --steady-secs $STEADY" >&2
    out=$WORK/n$n.out
    rc=0
    # The demo cleans up after itself on success, failure and signals.
    "$OVERLAYD" demo --cluster --nodes "$n" --steady-secs "$STEADY" >"$out" 2>&1 || rc=$?
    sed 's/^/    | /' "$out" >&2
    fig=$(grep '^figures: ' "$out" | tail -n1 || true)
    if [ "$rc" -ne 0 ] || [ -z "$fig" ]; then
        why=$(grep -m1 -E '✗|error|failed' "$out" | tr '\t' ' ' | cut -c1-120 || true)
        printf 'BENCH\tcluster\t%s\tunavailable\t%s\n' "$n" "${why:-demo exited $rc}"
        rows+=("| $n | not measured | not measured | not measured |")
        continue
    fi
    val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$fig"; }
    join=$(val join_convergence_ms)
    late=$(val new_node_reachable_ms)
    rate=$(val etcd_msgs_per_node_per_min)
    printf 'BENCH\tcluster\t%s\t%s\t%s\t%s\n' "$n" "$join" "$late" "$rate"
    rows+=("| $n | $join ms | $late ms | $rate |")
done

echo
echo "| nodes | join convergence (last start → full mesh) | late joiner reachable from all | etcd messages per node per minute at rest |"
echo "|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "- $(nproc) CPUs, kernel $(uname -r); binary $OVERLAYD; $(etcd --version | head -n1); steady window ${STEADY} s; presence TTL 15 s (keep-alive every 5 s)"
