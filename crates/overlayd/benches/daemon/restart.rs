//! Phases 2 and 3: start-to-ready time over SIGTERM restarts with isolation
//! networks and attachments recorded, and packets lost by a ping stream
//! across one restart.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_proto::Request;
use tokio::runtime::Runtime;

use crate::calls::{attach, check, timed_call};
use crate::interrupt::progress;
use crate::lab::{Lab, LinkSnapshot};
use crate::report::ms;
use crate::shell::cmd_ok;
use crate::stats::Summary;
use crate::{ATTACHMENTS, NETWORKS, PING_INTERVAL, PING_LEAD, PING_TAIL, RESTARTS};

/// Results of phases 2 and 3.
pub(crate) struct RestartReport {
    /// Time to set up every isolation network, one request each.
    pub(crate) setup_networks: Duration,
    /// Latency of the attaches into isolation networks.
    pub(crate) iso_attach: Summary,
    /// Spawn → ready on empty state.
    pub(crate) cold_start: Duration,
    /// Spawn → ready, one per timed restart.
    pub(crate) ready: Vec<Duration>,
    /// SIGTERM → exited, one per timed restart.
    pub(crate) stop: Vec<Duration>,
    /// Cost of `ip netns exec NODE true` alone.
    pub(crate) wrapper: Vec<Duration>,
    /// Tagged bridges in the node before the restarts.
    pub(crate) bridges: usize,
    /// Tagged veths in the node before the restarts.
    pub(crate) veths: usize,
    /// Whether the tagged links were unchanged after each restart.
    pub(crate) unchanged_after: Vec<bool>,
    /// Counters of the daemon's last "state reconciled" log line.
    pub(crate) reconcile: String,
    /// The ping stream across one more restart.
    pub(crate) ping: PingReport,
}

/// The ping stream across one restart.
pub(crate) struct PingReport {
    /// Echo requests transmitted.
    pub(crate) sent: u64,
    /// Echo replies received.
    pub(crate) received: u64,
    /// How long the ping stream ran.
    pub(crate) stream: Duration,
    /// SIGTERM → ready of the restart inside the stream.
    pub(crate) restart_window: Duration,
    /// Whether the restart finished before the stream did.
    pub(crate) covered: bool,
    /// Whether the tagged links were unchanged after that restart.
    pub(crate) unchanged: bool,
}

/// Record the isolation networks and attachments, then time the restarts
/// and run the ping stream across one more.
pub(crate) fn bench_restart(rt: &Runtime, lab: &mut Lab) -> RestartReport {
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
                internal: false,
                ipv6: false,
                subnet_v6: None,
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
