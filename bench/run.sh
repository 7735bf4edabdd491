#!/usr/bin/env bash
# One command, one markdown table: overlayd measured side by side with its
# peers in one run, on this machine, now.
#
#   container attach/detach latency   overlayd vs netavark (bridge, nftables driver)
#                                     vs CNI bridge + host-local     bench/attach_peers.sh
#   CNI ADD/DEL latency               overlayd-cni vs CNI bridge + host-local (same run)
#   daemon restart → ready, 64 networks + 500 attachments recorded, and the
#   data-plane interruption during it                                bench/daemon.sh
#   tunnel TCP throughput, 1 and 4    overlayd-wg vs wireguard-go vs boringtun-cli,
#   streams, and CPU seconds per GB   plain veth as the ceiling     crates/overlayd-wg/bench/throughput.sh
#   DNS queries per second            overlayd-dns vs dnsmasq        crates/overlayd-dns/bench/dns_vs_dnsmasq.sh
#   cluster join convergence on etcd, late joiner, etcd load at rest
#                                     (no peer)                      bench/cluster.sh
#
# First installs what is missing (apt-get; `cargo install --root` into
# $OVERLAYD_BENCH_CACHE) and builds the release binaries, saying what it does.
# Every measurement runs in network namespaces the section scripts (or this
# script, for DNS) create and delete; nothing is sent outside them and the
# machine's own namespace gets no link, route or firewall rule. Progress and the
# sections' raw output go to stderr; the table alone goes to stdout.
#
# usage: sudo bench/run.sh            (from anywhere; about 10-14 min on 2 cores
#                                      once the peer tools are installed)
# env:   OVERLAYD_BENCH_CACHE (/var/cache/overlayd-bench)  where cargo-installed peers go
#        ATTACH_N (200)  ATTACH_BATCH (50)                attach_peers.sh N / BATCH
#        TPUT_RUNS (3)  TPUT_SECS (5)  TPUT_STREAMS (4)   throughput.sh RUNS / SECS / STREAMS
#        DNS_SECONDS (5)  DNS_ROUNDS (3)                  dns_vs_dnsmasq.sh RUN_SECONDS / ROUNDS
#        BORINGTUN_CLI  NETAVARK                          use these binaries
#        CLUSTER_SIZES ("4 8 16")  CLUSTER_STEADY (30)        cluster.sh SIZES / STEADY
#        SKIP_DAEMON=1 SKIP_TPUT=1 SKIP_DNS=1 SKIP_ATTACH=1 SKIP_CLUSTER=1  leave a section out
#        NETAVARK_BUILD_TIMEOUT (900)                     seconds allowed for `cargo install netavark`
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CACHE=${OVERLAYD_BENCH_CACHE:-/var/cache/overlayd-bench}
export OVERLAYD_BENCH_CACHE=$CACHE
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
START_NS=$(date +%s%N)

log() { printf '[bench %4ds] %s\n' "$(($(date +%s) - START_NS / 1000000000))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces): sudo bench/run.sh"
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"

WORK=$(mktemp -d /tmp/overlayd-bench.XXXXXX)
DNS_NS=obr$$dns
SECTION_PID=""

cleanup() {
    set +e
    if [ -n "$SECTION_PID" ] && kill -0 "$SECTION_PID" 2>/dev/null; then
        # The section runs in its own session: signal its whole process group
        # so every script's own cleanup trap runs.
        kill -TERM -- "-$SECTION_PID" 2>/dev/null
        wait "$SECTION_PID" 2>/dev/null
    fi
    if [ -e "/run/netns/$DNS_NS" ]; then
        # Only processes this run started can be inside this namespace.
        for pid in $(ip netns pids "$DNS_NS" 2>/dev/null); do kill "$pid" 2>/dev/null; done
        ip netns del "$DNS_NS" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted; cleaning up"; exit 130' INT
trap 'log "terminated; cleaning up"; exit 143' TERM

# ---------------------------------------------------------------------------
# 1. Tools.

MISSING_PKGS=()
need() { # command package
    command -v "$1" >/dev/null 2>&1 || MISSING_PKGS+=("$2")
}
need ip iproute2
need nft nftables
need wg wireguard-tools
need ping iputils-ping
need iperf3 iperf3
need dig bind9-dnsutils
need dnsmasq dnsmasq-base
need python3 python3
need wireguard-go wireguard-go
need iptables iptables # the CNI bridge plugin's ipMasq uses it (nf_tables backend)
need etcd etcd-server # cluster section
need etcdctl etcd-client
need curl curl
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || MISSING_PKGS+=(containernetworking-plugins)

find_tool() { # name -> path or ""
    local p
    for p in "$(command -v "$1" 2>/dev/null)" "$CACHE/bin/$1"; do
        [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return; }
    done
    echo ""
}
NETAVARK=${NETAVARK:-$(find_tool netavark)}
BORINGTUN_CLI=${BORINGTUN_CLI:-$(find_tool boringtun-cli)}
# An earlier manual build (see crates/overlayd-wg/bench/throughput.sh).
[ -n "$BORINGTUN_CLI" ] || { [ -x /tmp/bt/bin/boringtun-cli ] && BORINGTUN_CLI=/tmp/bt/bin/boringtun-cli; }
# netavark's build compiles protobuf definitions with protoc.
[ -n "$NETAVARK" ] || need protoc protobuf-compiler

if ((${#MISSING_PKGS[@]})); then
    log "apt-get install ${MISSING_PKGS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || log "apt-get update failed; trying the install anyway"
    apt-get install -y -q --no-install-recommends "${MISSING_PKGS[@]}" >&2 ||
        log "apt-get install failed; sections needing those tools will say 'not measured'"
fi
for t in ip nft python3 iperf3 dig; do
    command -v "$t" >/dev/null || die "$t is still missing"
done

cargo_install() { # crate timeout-seconds -> installs into $CACHE/bin
    local crate=$1 limit=$2
    mkdir -p "$CACHE"
    log "cargo install --locked --root $CACHE $crate (log: $WORK/install-$crate.log, limit ${limit}s)"
    if timeout "$limit" cargo install --locked --root "$CACHE" "$crate" >"$WORK/install-$crate.log" 2>&1; then
        return 0
    fi
    log "cargo install $crate failed or timed out; last lines:"
    tail -n 5 "$WORK/install-$crate.log" | sed 's/^/    /' >&2
    return 1
}
NETAVARK_MISSING=""
if [ -z "$NETAVARK" ]; then
    if cargo_install netavark "${NETAVARK_BUILD_TIMEOUT:-900}"; then
        NETAVARK=$CACHE/bin/netavark
    else
        NETAVARK_MISSING="netavark: not available (cargo install failed, see above)"
    fi
fi
if [ -z "$BORINGTUN_CLI" ]; then
    cargo_install boringtun-cli 900 && BORINGTUN_CLI=$CACHE/bin/boringtun-cli
fi
log "netavark: ${NETAVARK:-not available}; boringtun-cli: ${BORINGTUN_CLI:-not available}; CNI plugins: /usr/lib/cni"

# ---------------------------------------------------------------------------
# 2. Release builds (incremental; cargo waits if another build holds the lock).

build() { # what... -> 0/1
    log "cargo build --release $*"
    if cargo build --release -q "$@" >"$WORK/build.log" 2>&1; then return 0; fi
    log "build failed: cargo build --release $*"
    tail -n 15 "$WORK/build.log" | sed 's/^/    /' >&2
    return 1
}
ATTACH_MISSING=""; TPUT_MISSING=""; DNS_MISSING=""; DAEMON_MISSING=""; CLUSTER_MISSING=""
OVERLAYD_BIN=$TARGET/release/overlayd
build -p overlayd --bin overlayd || OVERLAYD_BIN=""
build -p overlayd-wg --example wg_node || TPUT_MISSING="wg_node example build failed"
build -p overlayd-dns --example dns_serve --example dns_load || DNS_MISSING="DNS examples build failed"

# ---------------------------------------------------------------------------
# 3. Sections, one after another (each alone on the CPUs).

# Run a section in its own session (so a signal reaches all of it); stdout to
# a file, stderr shown live. Returns the section's exit status.
section() { # name outfile command...
    local name=$1 out=$2 t0 rc=0
    shift 2
    t0=$(date +%s)
    log "== $name: $*"
    setsid "$@" >"$out" 2> >(sed -u 's/^/    | /' >&2) &
    SECTION_PID=$!
    wait "$SECTION_PID" || rc=$?
    SECTION_PID=""
    sed 's/^/    > /' "$out" >&2
    log "== $name done in $(($(date +%s) - t0))s (exit $rc)"
    return "$rc"
}

if [ -n "${SKIP_ATTACH:-}" ]; then
    ATTACH_MISSING="skipped (SKIP_ATTACH)"
else
    # The peers are measured even when overlayd did not build.
    envs=(N="${ATTACH_N:-200}" BATCH="${ATTACH_BATCH:-50}" OVERLAYD="$OVERLAYD_BIN")
    if [ -n "$NETAVARK" ]; then envs+=(NETAVARK="$NETAVARK"); else envs+=(NETAVARK=/nonexistent/netavark); fi
    section "attach latency" "$WORK/attach.out" env "${envs[@]}" bench/attach_peers.sh ||
        ATTACH_MISSING="attach_peers.sh failed"
    [ -n "$OVERLAYD_BIN" ] || printf 'BENCH\tattach\toverlayd\tunavailable\trelease build failed\n' >>"$WORK/attach.out"
    if [ -n "$NETAVARK_MISSING" ]; then
        # Replace the generic "not installed" with why.
        sed -i "s|^BENCH\tattach\tnetavark\tunavailable\t.*|BENCH\tattach\tnetavark\tunavailable\tnot available (cargo install failed)|" "$WORK/attach.out"
    fi
fi

if [ -n "${SKIP_DAEMON:-}" ]; then
    DAEMON_MISSING="skipped (SKIP_DAEMON)"
elif [ ! -x bench/daemon.sh ]; then
    DAEMON_MISSING="bench/daemon.sh not present"
else
    section "daemon restart" "$WORK/daemon.out" bench/daemon.sh || DAEMON_MISSING="bench/daemon.sh failed"
fi

if [ -n "${SKIP_TPUT:-}" ]; then
    TPUT_MISSING="skipped (SKIP_TPUT)"
elif [ -z "$TPUT_MISSING" ]; then
    section "tunnel throughput" "$WORK/tput.out" \
        env RUNS="${TPUT_RUNS:-3}" SECS="${TPUT_SECS:-5}" STREAMS="${TPUT_STREAMS:-4}" BORINGTUN_CLI="${BORINGTUN_CLI:-/nonexistent/boringtun-cli}" \
        WG_NODE="$TARGET/release/examples/wg_node" crates/overlayd-wg/bench/throughput.sh ||
        TPUT_MISSING="throughput.sh failed"
fi

if [ -n "${SKIP_DNS:-}" ]; then
    DNS_MISSING="skipped (SKIP_DNS)"
elif [ -z "$DNS_MISSING" ]; then
    # The DNS script serves and loads on 127.0.0.x: run it in a namespace of
    # its own so even that loopback traffic stays out of the machine's.
    ip netns add "$DNS_NS"
    ip -n "$DNS_NS" link set lo up
    section "DNS" "$WORK/dns.out" ip netns exec "$DNS_NS" \
        env SKIP_BUILD=1 CARGO_TARGET_DIR="$TARGET" RUN_SECONDS="${DNS_SECONDS:-5}" ROUNDS="${DNS_ROUNDS:-3}" \
        crates/overlayd-dns/bench/dns_vs_dnsmasq.sh || DNS_MISSING="dns_vs_dnsmasq.sh failed"
    ip netns del "$DNS_NS"
fi

if [ -n "${SKIP_CLUSTER:-}" ]; then
    CLUSTER_MISSING="skipped (SKIP_CLUSTER)"
elif [ -z "$OVERLAYD_BIN" ]; then
    CLUSTER_MISSING="release build failed"
else
    section "cluster" "$WORK/cluster.out" \
        env OVERLAYD="$OVERLAYD_BIN" SIZES="${CLUSTER_SIZES:-4 8 16}" STEADY="${CLUSTER_STEADY:-30}" \
        bench/cluster.sh || CLUSTER_MISSING="bench/cluster.sh failed"
fi

# Cross-node traffic through a daemon restart: the demo's restart check runs
# a ping every 10 ms from a container on n1 to one on n2 through n1's whole
# SIGTERM restart (the userspace WireGuard device lives in the daemon).
INTERRUPT="cross-node restart: not measured"
if [ -n "${SKIP_INTERRUPT:-}" ]; then
    INTERRUPT="cross-node restart: skipped (SKIP_INTERRUPT)"
elif [ -n "$OVERLAYD_BIN" ]; then
    log "== cross-node restart: $OVERLAYD_BIN demo"
    if "$OVERLAYD_BIN" demo >"$WORK/demo.out" 2>&1; then
        FIGURE=$(grep -m1 -o 'a ping every 10 ms web1→web2 through the restart: [^|]*' "$WORK/demo.out" | sed 's/ *$//' || true)
        INTERRUPT="cross-node restart (n1 SIGTERM, started again; demo): ${FIGURE:-no figure in the demo output}"
    else
        INTERRUPT="cross-node restart: overlayd demo failed (see $WORK/demo.out)"
    fi
fi

# ---------------------------------------------------------------------------
# 4. The table.

version_of() { "$@" 2>&1 | head -n1 | tr -d '\r' || true; }
NV_VERSION="netavark not available"
[ -z "$NETAVARK" ] || NV_VERSION=$(version_of "$NETAVARK" --version)
BT_VERSION="boringtun-cli not available"
[ -z "$BORINGTUN_CLI" ] || BT_VERSION="boringtun-cli $(version_of "$BORINGTUN_CLI" --version | awk '{print $NF}')"
WALL=$((($(date +%s%N) - START_NS) / 1000000000))
NOTES=(
    "$(nproc) CPUs, kernel $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg); total wall time of this run $((WALL / 60)) min $((WALL % 60)) s"
    "attach/detach: every tool runs in the same node namespace against the same container namespaces, rounds interleaved; one process per operation (overlayd: \`overlayd attach/detach\` CLI → daemon; netavark \`setup/teardown\`; CNI \`bridge\` ADD/DEL), wall time of that process; all three make a bridge with masquerade"
    "peers: $NV_VERSION; CNI plugins $(dpkg-query -W -f '${Version}' containernetworking-plugins 2>/dev/null || echo '?'); $(version_of wireguard-go --version); $BT_VERSION; $(version_of dnsmasq --version | cut -d' ' -f1-3)"
)
[ -z "$NETAVARK_MISSING" ] || NOTES+=("$NETAVARK_MISSING")
NOTES+=("$INTERRUPT")
log "total wall time ${WALL}s"
echo
python3 bench/report.py \
    --attach "$WORK/attach.out" --attach-missing "$ATTACH_MISSING" \
    --daemon "$WORK/daemon.out" --daemon-missing "$DAEMON_MISSING" \
    --tput "$WORK/tput.out" --tput-missing "$TPUT_MISSING" \
    --dns "$WORK/dns.out" --dns-missing "$DNS_MISSING" \
    --cluster "$WORK/cluster.out" --cluster-missing "$CLUSTER_MISSING" \
    "${NOTES[@]/#/--note=}"
