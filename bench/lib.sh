# Shared by bench scripts that run a daemon in a node namespace against
# container namespaces made for the run (source it; it defines functions only).
# The caller sets NODE, WORK and TAG; DAEMON_PID and CONTAINERS are kept here.
# Everything is removed on exit, also on failure or Ctrl-C.

DAEMON_PID=""
CONTAINERS=()

# Stop the daemon of this run, if one is running.
bench_stop_daemon() {
    if [ -n "$DAEMON_PID" ]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=""
    fi
}

# Remove the daemon, the container namespaces, the node namespace (its
# bridges, veths and firewall tables go with it) and the work dir.
bench_cleanup() {
    set +e
    bench_stop_daemon
    for ns in "${CONTAINERS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    ip netns del "$NODE" 2>/dev/null
    rm -rf "$WORK"
}

# Run bench_cleanup on exit, Ctrl-C and SIGTERM.
bench_traps() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Make COUNT container namespaces named ${TAG}c0.., with lo up.
bench_containers() {
    local count=$1 i ns
    for ((i = 0; i < count; i++)); do
        ns=${TAG}c$i
        ip netns add "$ns"
        CONTAINERS+=("$ns")
        ip -n "$ns" link set lo up
    done
}
