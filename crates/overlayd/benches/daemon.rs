//! End-to-end daemon benchmark (root only; run it with `bench/daemon.sh`).
//!
//! Starts the real `overlayd` binary inside a "node" network namespace this
//! benchmark creates, with "containers" that are plain `ip netns add`
//! namespaces attached by path, and prints one markdown report of:
//!
//! 1. attach, detach and attach+detach latency through the daemon socket,
//!    seen from the client (request sent → response received);
//! 2. start-to-ready time (spawn → socket answers `hello`) with 64 isolation
//!    networks and 500 attachments recorded, over several SIGTERM restarts,
//!    checking that no tagged link was recreated (same ifindexes);
//! 3. packets lost by a 10 ms ping stream between two containers of one
//!    isolation network across a restart.
//!
//! Every namespace has a name unique to this run and is deleted on exit,
//! panics included (RAII guards). Nothing touches the root namespace.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use overlayd_client::Client;
use overlayd_proto::{Handle, Request, Response, ServiceMode};
use tokio::runtime::Runtime;

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

/// Set by SIGINT/SIGTERM; checked between steps so that an interrupted run
/// unwinds through the guards and still deletes its namespaces.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Route SIGINT and SIGTERM to [`on_interrupt`].
fn catch_interrupts() {
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let handler = nix::sys::signal::SigHandler::Handler(on_interrupt);
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        if let Err(e) = unsafe { nix::sys::signal::signal(sig, handler) } {
            progress(&format!("cannot catch {sig}: {e}"));
        }
    }
}

/// Unwind (running every cleanup guard) if the run was interrupted.
fn bail_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted; cleaning up");
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!(
            "daemon bench skipped: it needs root to create network namespaces \
             (run bench/daemon.sh as root)"
        );
        return;
    }
    for tool in ["ip", "ping"] {
        if Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            println!("daemon bench skipped: `{tool}` is not installed (run scripts/setup.sh)");
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
    let restart = bench_restart(&rt, &mut lab);
    lab.daemon.stop();
    let cleanup_started = Instant::now();
    drop(lab);
    let cleanup = cleanup_started.elapsed();
    let leftovers = leftover_namespaces(&prefix);
    print_report(&latency, &restart, cleanup, &leftovers, started.elapsed());
    assert!(
        leftovers.is_empty(),
        "namespaces left behind: {leftovers:?}"
    );
}

// ---------------------------------------------------------------------------
// Fixture: namespaces and the daemon process.

/// Network namespaces created by this run; all deleted on drop (every
/// process inside them killed first).
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Create `names` (one `ip -batch` process for all of them).
    fn create(&mut self, names: &[String]) {
        // Recorded first so that a partial failure is still cleaned up.
        self.names.extend_from_slice(names);
        let lines: Vec<String> = names.iter().map(|n| format!("netns add {n}")).collect();
        ip_batch(&lines, false);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let pids: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("netns pids {n}"))
            .collect();
        let listed = ip_batch_output(&pids);
        for pid in listed
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let dels: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("netns del {n}"))
            .collect();
        let _ = ip_batch_result(&dels, true);
    }
}

/// The daemon, run as `ip netns exec NODE overlayd run`; SIGKILLed on drop
/// if still running.
struct Daemon {
    ns: String,
    data_dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Spawn the daemon and time spawn → first `hello` answered.
    fn start(&mut self, rt: &Runtime) -> Duration {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open daemon log");
        let t0 = Instant::now();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                env!("CARGO_BIN_EXE_overlayd"),
                "run",
            ])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--socket")
            .arg(&self.socket)
            .env(
                "OVERLAYD_LOG",
                "info,hickory_server=warn,hickory_proto=warn",
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn overlayd");
        self.child = Some(child);
        let deadline = t0 + DAEMON_TIMEOUT;
        loop {
            if self.hello(rt) {
                return t0.elapsed();
            }
            bail_if_interrupted();
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!("daemon exited early ({status}); log:\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not answer within {DAEMON_TIMEOUT:?}; log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(HELLO_POLL);
        }
    }

    /// True when the socket answers a `hello`.
    fn hello(&self, rt: &Runtime) -> bool {
        rt.block_on(async {
            let Ok(mut c) = Client::connect(&self.socket).await else {
                return false;
            };
            matches!(
                c.call_timeout(
                    Request::Hello {
                        protocol_version: 1
                    },
                    Duration::from_secs(5)
                )
                .await,
                Ok(Response::Hello { .. })
            )
        })
    }

    /// SIGTERM the daemon and time until it has exited cleanly.
    fn stop(&mut self) -> Duration {
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        let t0 = Instant::now();
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM daemon");
        let deadline = t0 + DAEMON_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let took = t0.elapsed();
                    assert!(
                        status.success(),
                        "daemon exited with {status} on SIGTERM; log:\n{}",
                        self.log_tail()
                    );
                    return took;
                }
                Ok(None) => {}
                Err(e) => panic!("waiting for the daemon: {e}"),
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon did not stop on SIGTERM within {DAEMON_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A persistent client connection.
    fn client(&self, rt: &Runtime) -> Client {
        rt.block_on(Client::connect(&self.socket))
            .expect("connect to the daemon socket")
    }

    /// The last 40 lines of the daemon's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Counters of the last "state reconciled" log line, e.g.
    /// `adopted=565 recreated=0 orphans=0 reclaimed=0`.
    fn last_reconcile(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let Some(line) = text.lines().rev().find(|l| l.contains("state reconciled")) else {
            return "(no \"state reconciled\" line in the log)".into();
        };
        let fields: Vec<String> = ["adopted", "recreated", "orphans", "reclaimed"]
            .iter()
            .filter_map(|key| log_field(line, key).map(|v| format!("{key}={v}")))
            .collect();
        if fields.is_empty() {
            line.trim().to_string()
        } else {
            fields.join(" ")
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Everything the benchmark owns. Fields drop in order: the daemon is
/// killed before its namespaces go, and the data dir last.
struct Lab {
    daemon: Daemon,
    _namespaces: Namespaces,
    _dir: tempfile::TempDir,
    prefix: String,
    node: String,
    containers: Vec<String>,
    /// Spawn → ready on empty state.
    cold_start: Duration,
}

impl Lab {
    /// Create the node, an outside namespace linked to it as its uplink,
    /// the container namespaces, and start the daemon on empty state.
    fn new(rt: &Runtime) -> Self {
        let prefix = format!("obd{}", std::process::id());
        let node = format!("{prefix}n");
        let outside = format!("{prefix}o");
        let containers: Vec<String> = (0..ATTACHMENTS).map(|i| format!("{prefix}c{i}")).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut namespaces = Namespaces { names: Vec::new() };
        let t0 = Instant::now();
        let mut all = vec![node.clone(), outside.clone()];
        all.extend(containers.iter().cloned());
        namespaces.create(&all);
        let uplink = [
            format!("-n {node} link set lo up"),
            format!("-n {outside} link set lo up"),
            format!("-n {node} link add up0 type veth peer name out0 netns {outside}"),
            format!("-n {node} addr add 198.51.100.1/24 dev up0"),
            format!("-n {outside} addr add 198.51.100.2/24 dev out0"),
            format!("-n {node} link set up0 up"),
            format!("-n {outside} link set out0 up"),
            format!("-n {node} route add default via 198.51.100.2"),
        ];
        for line in &uplink {
            let args: Vec<&str> = std::iter::once("ip").chain(line.split(' ')).collect();
            cmd_output(&args);
        }
        progress(&format!(
            "created {} namespaces in {}",
            all.len(),
            ms(t0.elapsed())
        ));
        let mut daemon = Daemon {
            ns: node.clone(),
            data_dir: dir.path().join("data"),
            socket: dir.path().join("run").join("overlayd.sock"),
            log: dir.path().join("daemon.log"),
            child: None,
        };
        let cold_start = daemon.start(rt);
        Lab {
            daemon,
            _namespaces: namespaces,
            _dir: dir,
            prefix,
            node,
            containers,
            cold_start,
        }
    }

    /// Handle of container `i`.
    fn handle(&self, i: usize) -> Handle {
        Handle::NetnsPath {
            path: format!("/run/netns/{}", self.containers[i]),
        }
    }

    /// Our (tagged) links of a kind in the node namespace, with ifindexes.
    fn tagged_links(&self, kind: &str) -> Vec<(String, u32)> {
        let out = cmd_output(&["ip", "-n", &self.node, "-o", "link", "show", "type", kind]);
        let mut links: Vec<(String, u32)> = out
            .lines()
            .filter(|l| l.contains("alias overlayd:"))
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':');
                let index = parts.next()?.trim().parse().ok()?;
                let name = parts.next()?.trim().split('@').next()?.to_string();
                Some((name, index))
            })
            .collect();
        links.sort();
        links
    }

    /// Bridges and veths, in one snapshot.
    fn snapshot(&self) -> LinkSnapshot {
        LinkSnapshot {
            bridges: self.tagged_links("bridge"),
            veths: self.tagged_links("veth"),
        }
    }
}

/// Tagged links of the node namespace.
#[derive(Debug, PartialEq, Eq)]
struct LinkSnapshot {
    bridges: Vec<(String, u32)>,
    veths: Vec<(String, u32)>,
}

// ---------------------------------------------------------------------------
// Phase 1: attach / detach latency.

/// Latency samples of phase 1.
struct LatencyReport {
    attach: Summary,
    detach: Summary,
    pair: Summary,
}

/// One request on a persistent connection, timed from send to response.
fn timed_call(rt: &Runtime, client: &mut Client, req: Request) -> (Response, Duration) {
    bail_if_interrupted();
    rt.block_on(async {
        let t0 = Instant::now();
        let resp = client
            .call_timeout(req, CALL_TIMEOUT)
            .await
            .expect("daemon call");
        (resp, t0.elapsed())
    })
}

/// Panic with the request and the daemon log unless `resp` is a success.
fn check(resp: &Response, what: &str, daemon: &Daemon) {
    if let Response::Err { message } = resp {
        panic!("{what} failed: {message}\nlog:\n{}", daemon.log_tail());
    }
}

fn attach_request(handle: Handle, isolation: Option<String>) -> Request {
    Request::AttachContainer {
        handle,
        service: SERVICE.into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation,
        name: None,
    }
}

/// Attach container `i`, returning its address and the latency.
fn attach(
    rt: &Runtime,
    client: &mut Client,
    lab: &Lab,
    i: usize,
    isolation: Option<String>,
) -> (String, Duration) {
    let (resp, took) = timed_call(rt, client, attach_request(lab.handle(i), isolation));
    match resp {
        Response::Attached { ip, .. } => (ip, took),
        other => {
            check(&other, "attach_container", &lab.daemon);
            panic!("attach_container answered {other:?}");
        }
    }
}

/// Detach container `i`, returning the latency.
fn detach(rt: &Runtime, client: &mut Client, lab: &Lab, i: usize) -> Duration {
    let (resp, took) = timed_call(
        rt,
        client,
        Request::DetachContainer {
            handle: lab.handle(i),
        },
    );
    check(&resp, "detach_container", &lab.daemon);
    took
}

fn bench_latency(rt: &Runtime, lab: &mut Lab) -> LatencyReport {
    let mut client = lab.daemon.client(rt);
    let (resp, _) = timed_call(
        rt,
        &mut client,
        Request::SetupServiceOverlay {
            service: SERVICE.into(),
            mode: ServiceMode::Shared,
        },
    );
    check(&resp, "setup_service_overlay", &lab.daemon);
    for i in 0..WARMUP_PAIRS {
        attach(rt, &mut client, lab, i, None);
        detach(rt, &mut client, lab, i);
    }

    // Attach all, then detach all: each op timed on its own.
    let mut attach_samples = Vec::with_capacity(LATENCY_CONTAINERS);
    for i in 0..LATENCY_CONTAINERS {
        attach_samples.push(attach(rt, &mut client, lab, i, None).1);
    }
    let mut detach_samples = Vec::with_capacity(LATENCY_CONTAINERS);
    for i in 0..LATENCY_CONTAINERS {
        detach_samples.push(detach(rt, &mut client, lab, i));
    }
    progress(&format!(
        "timed {LATENCY_CONTAINERS} attaches and {LATENCY_CONTAINERS} detaches"
    ));

    // Attach immediately followed by detach of the same container.
    let mut pair_samples = Vec::with_capacity(LATENCY_CONTAINERS);
    for i in 0..LATENCY_CONTAINERS {
        let a = attach(rt, &mut client, lab, i, None).1;
        let d = detach(rt, &mut client, lab, i);
        pair_samples.push(a + d);
    }
    progress(&format!("timed {LATENCY_CONTAINERS} attach+detach pairs"));
    LatencyReport {
        attach: Summary::of(attach_samples),
        detach: Summary::of(detach_samples),
        pair: Summary::of(pair_samples),
    }
}

// ---------------------------------------------------------------------------
// Phases 2 and 3: restart with recorded state, and the ping stream.

/// Results of phases 2 and 3.
struct RestartReport {
    setup_networks: Duration,
    iso_attach: Summary,
    cold_start: Duration,
    ready: Vec<Duration>,
    stop: Vec<Duration>,
    wrapper: Vec<Duration>,
    bridges: usize,
    veths: usize,
    unchanged_after: Vec<bool>,
    reconcile: String,
    ping: PingReport,
}

/// The ping stream across one restart.
struct PingReport {
    sent: u64,
    received: u64,
    stream: Duration,
    restart_window: Duration,
    covered: bool,
    unchanged: bool,
}

fn bench_restart(rt: &Runtime, lab: &mut Lab) -> RestartReport {
    let mut client = lab.daemon.client(rt);
    let t0 = Instant::now();
    let mut networks = Vec::with_capacity(NETWORKS);
    for n in 0..NETWORKS {
        let name = format!("bench{n:02}");
        let (resp, _) = timed_call(
            rt,
            &mut client,
            Request::SetupIsolationNetwork {
                network: name.clone(),
                subnet: None,
            },
        );
        check(&resp, "setup_isolation_network", &lab.daemon);
        networks.push(name);
    }
    let setup_networks = t0.elapsed();
    progress(&format!(
        "set up {NETWORKS} isolation networks in {}",
        ms(setup_networks)
    ));

    let mut samples = Vec::with_capacity(ATTACHMENTS);
    let mut ips = Vec::with_capacity(ATTACHMENTS);
    for i in 0..ATTACHMENTS {
        let net = networks[i % NETWORKS].clone();
        let (ip, took) = attach(rt, &mut client, lab, i, Some(net));
        samples.push(took);
        ips.push(ip);
    }
    drop(client);
    progress(&format!(
        "attached {ATTACHMENTS} containers across {NETWORKS} networks"
    ));

    let before = lab.snapshot();
    assert!(
        before.bridges.len() >= NETWORKS,
        "expected a tagged bridge per isolation network: {:?}",
        before.bridges
    );
    assert!(
        before.veths.len() >= ATTACHMENTS,
        "expected a tagged veth per attachment, found {}",
        before.veths.len()
    );

    // Two containers of the same isolation network (index 0 and NETWORKS).
    let (pinger, target_ip) = (lab.containers[0].clone(), ips[NETWORKS].clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cmd_ok(&[
        "ip", "netns", "exec", &pinger, "ping", "-c1", "-W1", &target_ip,
    ]) {
        assert!(
            Instant::now() < deadline,
            "{pinger} cannot reach {target_ip} before the restarts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut ready = Vec::with_capacity(RESTARTS);
    let mut stop = Vec::with_capacity(RESTARTS);
    let mut unchanged_after = Vec::with_capacity(RESTARTS);
    for r in 0..RESTARTS {
        stop.push(lab.daemon.stop());
        ready.push(lab.daemon.start(rt));
        unchanged_after.push(lab.snapshot() == before);
        progress(&format!(
            "restart {}/{RESTARTS}: stop {}, ready {}",
            r + 1,
            ms(stop[r]),
            ms(ready[r])
        ));
    }
    let reconcile = lab.daemon.last_reconcile();

    let ping = ping_across_restart(rt, lab, &pinger, &target_ip, &stop, &ready, &before);
    progress(&format!(
        "ping stream: {} sent, {} received",
        ping.sent, ping.received
    ));

    // Cost of the `ip netns exec` wrapper alone, included in every ready time.
    let wrapper = (0..RESTARTS)
        .map(|_| {
            let t = Instant::now();
            assert!(cmd_ok(&["ip", "netns", "exec", &lab.node, "true"]));
            t.elapsed()
        })
        .collect();

    RestartReport {
        setup_networks,
        iso_attach: Summary::of(samples),
        cold_start: lab.cold_start,
        ready,
        stop,
        wrapper,
        bridges: before.bridges.len(),
        veths: before.veths.len(),
        unchanged_after,
        reconcile,
        ping,
    }
}

/// Ping every 10 ms from `pinger` to `target_ip` while the daemon is
/// SIGTERMed and started again; the count covers the lead-in, twice the
/// slowest stop+start seen so far, and a tail.
fn ping_across_restart(
    rt: &Runtime,
    lab: &mut Lab,
    pinger: &str,
    target_ip: &str,
    stop: &[Duration],
    ready: &[Duration],
    before: &LinkSnapshot,
) -> PingReport {
    let slowest = stop.iter().max().copied().unwrap_or_default()
        + ready.iter().max().copied().unwrap_or_default();
    let span = PING_LEAD + slowest * 2 + PING_TAIL;
    let count = (span.as_millis() / PING_INTERVAL.as_millis()).max(100) as u64;
    let interval = format!("{:.3}", PING_INTERVAL.as_secs_f64());
    let child = Command::new("ip")
        .args(["netns", "exec", pinger, "ping", "-q", "-i", &interval])
        .args(["-c", &count.to_string(), "-W", "1", target_ip])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ping");
    let stream_start = Instant::now();
    std::thread::sleep(PING_LEAD);
    let restart_start = Instant::now();
    lab.daemon.stop();
    lab.daemon.start(rt);
    let restart_end = Instant::now();
    let out = child.wait_with_output().expect("wait for ping");
    let stream_end = Instant::now();
    let text = String::from_utf8_lossy(&out.stdout);
    let (sent, received) = parse_ping(&text).unwrap_or_else(|| {
        panic!(
            "cannot read ping statistics: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    PingReport {
        sent,
        received,
        stream: stream_end - stream_start,
        restart_window: restart_end - restart_start,
        covered: restart_end < stream_end,
        unchanged: lab.snapshot() == *before,
    }
}

/// `(transmitted, received)` from ping's summary line.
fn parse_ping(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse::<u64>().ok());
    Some((nums.next()?, nums.next()?))
}

// ---------------------------------------------------------------------------
// Statistics and the report.

/// Percentiles of a sample (nearest rank).
struct Summary {
    n: usize,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
}

impl Summary {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Summary {
            n: samples.len(),
            p50: percentile(&samples, 0.50),
            p95: percentile(&samples, 0.95),
            p99: percentile(&samples, 0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }

    fn row(&self, label: &str) -> String {
        let cells = [self.p50, self.p95, self.p99, self.max].map(ms);
        let mut v = vec![label.to_string(), self.n.to_string()];
        v.extend(cells);
        row(&v)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(samples: &[Duration]) -> Duration {
    let mut v = samples.to_vec();
    v.sort();
    percentile(&v, 0.5)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**NO**"
    }
}

/// One markdown table row.
fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// `| label | runs | median | max |` for a set of runs.
fn runs_row(label: &str, runs: &[Duration]) -> String {
    let max = runs.iter().max().copied().unwrap_or_default();
    row(&[
        label.into(),
        runs.len().to_string(),
        ms(median(runs)),
        ms(max),
    ])
}

fn print_report(
    lat: &LatencyReport,
    rs: &RestartReport,
    cleanup: Duration,
    leftovers: &[String],
    total: Duration,
) {
    let mut s = format!(
        "\n## overlayd daemon benchmark\n\n\
         Client-side latency over one Unix-socket connection (request sent → response \
         received); containers are `ip netns add` namespaces attached by path, service \
         `{SERVICE}` is shared.\n\n\
         | operation | n | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|\n"
    );
    s += &lat
        .attach
        .row(&format!("attach (0 → {LATENCY_CONTAINERS} attached)"));
    s += &lat
        .detach
        .row(&format!("detach ({LATENCY_CONTAINERS} → 0 attached)"));
    s += &lat.pair.row("attach + detach, back to back");
    s += &rs.iso_attach.row(&format!(
        "attach into isolation network (0 → {ATTACHMENTS}, {NETWORKS} networks)"
    ));
    s += &format!(
        "\nRestart with {NETWORKS} isolation networks and {ATTACHMENTS} attachments recorded \
         (SIGTERM, wait for exit, spawn `ip netns exec NODE overlayd run`, poll `hello` every \
         {} ms).\n\n| figure | runs | median | max |\n|---|---|---|---|\n",
        HELLO_POLL.as_millis()
    );
    s += &runs_row("spawn → `hello` answered (start-to-ready)", &rs.ready);
    s += &runs_row("SIGTERM → daemon exited", &rs.stop);
    s += &runs_row(
        "`ip netns exec NODE true` alone (part of start-to-ready)",
        &rs.wrapper,
    );
    s += &runs_row(
        "cold start on empty state (for reference)",
        &[rs.cold_start],
    );
    s += &runs_row(
        &format!("{NETWORKS} × `setup_isolation_network` (total)"),
        &[rs.setup_networks],
    );
    let unchanged = rs.unchanged_after.iter().all(|b| *b) && rs.ping.unchanged;
    let lost = rs.ping.sent.saturating_sub(rs.ping.received);
    s += "\n| check | result |\n|---|---|\n";
    s += &row(&[
        format!(
            "nothing recreated: {} tagged bridges and {} tagged veths, same names and \
             ifindexes after each of {} restarts",
            rs.bridges,
            rs.veths,
            rs.unchanged_after.len() + 1
        ),
        yes_no(unchanged).into(),
    ]);
    s += &row(&[
        "daemon log, last reconcile".into(),
        format!("`{}`", rs.reconcile),
    ]);
    s += &row(&[
        format!(
            "ping every {} ms between two containers of one isolation network across a restart",
            PING_INTERVAL.as_millis()
        ),
        format!(
            "{} sent, {} received, **{lost} lost**",
            rs.ping.sent, rs.ping.received
        ),
    ]);
    s += &row(&[
        "restart window (SIGTERM → ready) inside the ping stream".into(),
        format!(
            "{} ({} window in a {} stream)",
            yes_no(rs.ping.covered),
            ms(rs.ping.restart_window),
            ms(rs.ping.stream)
        ),
    ]);
    s += &row(&[
        "namespaces deleted on exit".into(),
        format!(
            "{} ({} left, cleanup {})",
            yes_no(leftovers.is_empty()),
            leftovers.len(),
            ms(cleanup)
        ),
    ]);
    s += &format!("\nTotal bench time: {:.1} s\n", total.as_secs_f64());
    print!("{s}");
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------
// Small process helpers.

/// A progress line on stderr.
fn progress(msg: &str) {
    eprintln!("[daemon bench] {msg}");
    bail_if_interrupted();
}

/// Run `ip [-force] -batch -` over `lines`; return success and stdout.
fn ip_batch_result(lines: &[String], force: bool) -> (bool, String, String) {
    let mut cmd = Command::new("ip");
    if force {
        cmd.arg("-force");
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ip -batch");
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = lines.join("\n");
        text.push('\n');
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().expect("wait for ip -batch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run an `ip` batch that must succeed.
fn ip_batch(lines: &[String], force: bool) {
    let (ok, _, err) = ip_batch_result(lines, force);
    assert!(ok, "ip -batch failed: {err}");
}

/// Stdout of an `ip -force` batch, whatever its status.
fn ip_batch_output(lines: &[String]) -> String {
    ip_batch_result(lines, true).1
}

/// Stdout of a command that must succeed.
fn cmd_output(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a command succeeded (output discarded).
fn cmd_ok(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Namespaces of this run still listed by `ip netns list`.
fn leftover_namespaces(prefix: &str) -> Vec<String> {
    cmd_output(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// `line` without ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Value of `key=value` in a tracing log line.
fn log_field(line: &str, key: &str) -> Option<String> {
    let line = strip_ansi(line);
    let pat = format!("{key}=");
    let start = line.find(&pat)? + pat.len();
    let value: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!value.is_empty()).then_some(value)
}
