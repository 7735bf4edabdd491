//! End-to-end daemon benchmark (root only; run it with `bench/daemon.sh`).
//!
//! Starts the real `overlayd` binary inside a "node" network namespace this
//! benchmark creates, with "containers" that are plain `ip netns add`
//! namespaces attached by path, and prints one markdown report of:
//!
//! 1. attach, detach and attach+detach latency through the daemon socket,
//!    seen from the client (request sent → response received);
//!    and attach with two published ports against a plain attach (ratio of
//!    the medians);
//! 2. start-to-ready time (spawn → socket answers `hello`) with 64 isolation
//!    networks and 500 attachments recorded, over several SIGTERM restarts,
//!    checking that no tagged link was recreated (same ifindexes);
//! 3. packets lost by a 10 ms ping stream between two containers of one
//!    isolation network across a restart.
//!
//! Every namespace has a name unique to this run and is deleted on exit,
//! panics included (RAII guards). Nothing touches the root namespace.

mod calls;
mod daemon_process;
mod interrupt;
mod lab;
mod latency;
mod namespaces;
mod publish;
mod report;
mod restart;
mod shell;
mod stats;

use std::time::{Duration, Instant};

use interrupt::catch_interrupts;
use lab::Lab;
use latency::bench_latency;
use namespaces::leftover_namespaces;
use publish::bench_publish;
use report::print_report;
use restart::bench_restart;

/// Service the latency containers attach to.
const SERVICE: &str = "web";
/// Containers timed in the latency phase.
const LATENCY_CONTAINERS: usize = 200;
/// Untimed attach+detach pairs before the latency phase.
const WARMUP_PAIRS: usize = 5;
/// Isolation networks recorded before the restarts.
const NETWORKS: usize = 64;
/// Attachments recorded before the restarts (also the container count).
const ATTACHMENTS: usize = 500;
/// Timed restarts.
const RESTARTS: usize = 5;
/// Interval of the ping stream.
const PING_INTERVAL: Duration = Duration::from_millis(10);
/// Ping stream running before the restart begins.
const PING_LEAD: Duration = Duration::from_millis(300);
/// Ping stream still running after the daemon is ready again (at least).
const PING_TAIL: Duration = Duration::from_millis(700);
/// Deadline of one request.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for the daemon to answer after a spawn, or to exit on SIGTERM.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between `hello` probes while waiting for readiness.
const HELLO_POLL: Duration = Duration::from_millis(2);

fn main() {
    if !overlayd_lab::need_root("daemon bench (run bench/daemon.sh as root)") {
        return;
    }
    for tool in ["ip", "ping"] {
        if !overlayd_lab::need_tool("daemon bench", tool, "-V") {
            return;
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    catch_interrupts();
    let started = Instant::now();
    let mut lab = Lab::new(&rt);
    let prefix = lab.prefix.clone();
    let latency = bench_latency(&rt, &mut lab);
    let publish = bench_publish(&rt, &mut lab);
    let restart = bench_restart(&rt, &mut lab);
    lab.daemon.stop();
    let cleanup_started = Instant::now();
    drop(lab);
    let cleanup = cleanup_started.elapsed();
    let leftovers = leftover_namespaces(&prefix);
    print_report(
        &latency,
        &publish,
        &restart,
        cleanup,
        &leftovers,
        started.elapsed(),
    );
    assert!(
        leftovers.is_empty(),
        "namespaces left behind: {leftovers:?}"
    );
}
