//! The demo's checks, each measured and recorded in the report: overlay
//! pings across nodes, what crosses the underlay, the dedicated tunnel as
//! `wg show` sees it, NAT egress, DNS, isolation and a published port (the
//! restart is in `restart`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::lab::{ns_exec, ns_ok, ping_until, replies, Lab, OUTSIDE_IP};
use super::node::Node;
use super::report::Report;
use super::secs;
use super::setup::{underlay_counts, Cluster};

/// Every check the demo runs, in order (the final table lists these).
pub const CHECK_NAMES: &[&str] = &[
    "base overlay n1→n2",
    "base overlay n1→n3",
    "dedicated db1→db2",
    "wg show db on n1",
    "underlay carries only WireGuard",
    "nat egress nat1→outside",
    "dns web1.overlay.internal",
    "isolation a1↔a2",
    "isolation a↮b blocked",
    "restart n1: bridges kept",
    "restart n1: keys and ports kept",
    "restart n1: marker unchanged",
    "restart n1: traffic recovers",
    "published port outside→n1:8080",
];

/// How long a ping may take to get its first reply.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Run every check.
pub async fn run_all(lab: &mut Lab, report: &mut Report, cluster: &Cluster) -> Result<()> {
    ping_check(lab, report, CHECK_NAMES[0], "web1", "web2").await?;
    ping_check(lab, report, CHECK_NAMES[1], "web1", "web3").await?;
    ping_check(lab, report, CHECK_NAMES[2], "db1", "db2").await?;
    wg_show_check(lab, report, cluster).await;
    underlay_check(lab, report).await;
    nat_check(lab, report).await?;
    dns_check(lab, report, cluster).await?;
    isolation_checks(lab, report).await?;
    super::publish::published_port_check(lab, report, CHECK_NAMES[13]).await?;
    super::restart::run(lab, report).await
}

/// Ping from one container to another until a reply or the deadline.
async fn ping_check(
    lab: &Lab,
    report: &mut Report,
    name: &str,
    from: &str,
    to: &str,
) -> Result<()> {
    let (f, t) = (lab.container(from)?, lab.container(to)?);
    let route = format!(
        "{from}@{} → {to}@{} {}",
        lab.nodes[f.node].label, lab.nodes[t.node].label, t.ip
    );
    match ping_until(&f.ns, &t.ip, PING_TIMEOUT).await {
        Some(d) => report.pass(name, format!("{route}, first reply after {}", secs(d))),
        None => report.fail(
            name,
            format!("{route}: no reply within {}", secs(PING_TIMEOUT)),
        ),
    }
    Ok(())
}

/// `wg show` of n1's db device lists n2's db key.
async fn wg_show_check(lab: &Lab, report: &mut Report, cluster: &Cluster) {
    let name = CHECK_NAMES[3];
    let (mine, theirs) = (&cluster.db[0], &cluster.db[1]);
    let short = &theirs.key[..theirs.key.len().min(8)];
    match wg_show(&lab.nodes[0], &mine.interface).await {
        Ok(text) if text.contains(&theirs.key) => {
            let handshake = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("latest handshake: "))
                .unwrap_or("none yet")
                .to_lowercase();
            report.pass(
                name,
                format!(
                    "{} (port {}) lists n2's db peer {short}… at {}:{}, latest handshake {handshake}",
                    mine.interface, mine.port, lab.nodes[1].underlay_ip, theirs.port
                ),
            );
        }
        Ok(text) => report.fail(
            name,
            format!(
                "n2's db key {short}… not among the peers of {}: {}",
                mine.interface,
                text.trim().replace('\n', "; ")
            ),
        ),
        Err(e) => report.fail(name, format!("{e:#}")),
    }
}

/// `wg show DEV`: through the instance's UAPI directory for a userspace
/// device, in the node's namespace for a kernel one.
pub async fn wg_show(node: &Node, dev: &str) -> Result<String> {
    let uapi = node.uapi_dir();
    let out = if uapi.join(format!("{dev}.sock")).exists() {
        let mut cmd = tokio::process::Command::from(
            overlayd_wg::wgtool::wg_command(&uapi).context("cannot prepare wg(8)")?,
        );
        cmd.args(["show", dev])
            .kill_on_drop(true)
            .output()
            .await
            .context("cannot run wg(8); is wireguard-tools installed?")?
    } else {
        ns_exec(&node.ns, &["wg", "show", dev]).await?
    };
    if !out.status.success() {
        bail!(
            "wg show {dev} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Between nodes, only WireGuard UDP crossed the underlay bridge.
async fn underlay_check(lab: &Lab, report: &mut Report) {
    let name = CHECK_NAMES[4];
    match underlay_counts(&lab.ns_name("ul")).await {
        Ok((0, wg)) if wg > 0 => report.pass(
            name,
            format!("{wg} WireGuard packets, 0 plain 10.x packets on the underlay bridge"),
        ),
        Ok((plain, wg)) => report.fail(
            name,
            format!("{plain} plain 10.x packets and {wg} WireGuard packets on the underlay bridge"),
        ),
        Err(e) => report.fail(name, format!("{e:#}")),
    }
}

/// A shared-NAT container reaches the outside, which sees only the node's
/// underlay address.
async fn nat_check(lab: &Lab, report: &mut Report) -> Result<()> {
    let name = CHECK_NAMES[5];
    let c = lab.container("nat1")?;
    let node_ip = &lab.nodes[c.node].underlay_ip;
    let out = lab.ns_name("out");
    let table = "ovd_demo_seen";
    ns_ok(&out, &["nft", "add", "table", "inet", table]).await?;
    ns_ok(
        &out,
        &[
            "nft",
            "add",
            "chain",
            "inet",
            table,
            "in",
            "{ type filter hook input priority 0; }",
        ],
    )
    .await?;
    for from in [node_ip.as_str(), c.ip.as_str()] {
        ns_ok(
            &out,
            &[
                "nft",
                "add",
                "rule",
                "inet",
                table,
                "in",
                "ip",
                "saddr",
                from,
                "icmp",
                "type",
                "echo-request",
                "counter",
            ],
        )
        .await?;
    }
    let Some(d) = ping_until(&c.ns, OUTSIDE_IP, PING_TIMEOUT).await else {
        report.fail(
            name,
            format!(
                "nat1 {} → outside {OUTSIDE_IP}: no reply within {}",
                c.ip,
                secs(PING_TIMEOUT)
            ),
        );
        return Ok(());
    };
    let rules = ns_ok(&out, &["nft", "list", "chain", "inet", table, "in"]).await?;
    let counts: Vec<u64> = rules
        .lines()
        .filter_map(|l| l.split("packets ").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    let detail = format!(
        "nat1 {} → {OUTSIDE_IP} answered after {}; outside saw {} echo from {node_ip}, {} from {}",
        c.ip,
        secs(d),
        counts.first().copied().unwrap_or(0),
        counts.get(1).copied().unwrap_or(0),
        c.ip
    );
    match counts.as_slice() {
        [node, 0] if *node > 0 => report.pass(name, format!("{detail} (masqueraded)")),
        _ => report.fail(name, detail),
    }
    Ok(())
}

/// A name registered at attach resolves from another container, asking
/// the shared network's gateway.
async fn dns_check(lab: &Lab, report: &mut Report, cluster: &Cluster) -> Result<()> {
    let name = CHECK_NAMES[6];
    let (target, asker) = (lab.container("web1")?, lab.container("nat1")?);
    let gw = &cluster.web_gateway[asker.node];
    let qname = "web1.overlay.internal";
    let server = format!("@{gw}");
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < Duration::from_secs(10) {
        let out = ns_exec(
            &asker.ns,
            &["dig", "+short", "+time=2", "+tries=1", &server, qname],
        )
        .await?;
        last = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if last == target.ip {
            report.pass(
                name,
                format!(
                    "dig @{gw} {qname} from nat1 → {last} (web1's address) in {}",
                    secs(t.elapsed())
                ),
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = if last.is_empty() {
        "no answer".to_string()
    } else {
        last.replace('\n', ", ")
    };
    report.fail(
        name,
        format!("dig @{gw} {qname} from nat1 → {got}, want {}", target.ip),
    );
    Ok(())
}

/// Members of one isolation network reach each other; members of two
/// networks do not, although both reach the outside.
async fn isolation_checks(lab: &Lab, report: &mut Report) -> Result<()> {
    let (a1, a2, b1) = (
        lab.container("a1")?,
        lab.container("a2")?,
        lab.container("b1")?,
    );
    let there = ping_until(&a1.ns, &a2.ip, PING_TIMEOUT).await;
    let back = match there {
        Some(_) => ping_until(&a2.ns, &a1.ip, PING_TIMEOUT).await,
        None => None,
    };
    match (there, back) {
        (Some(d), Some(_)) => report.pass(
            CHECK_NAMES[7],
            format!(
                "a1 {} ↔ a2 {} both ways, first reply after {}",
                a1.ip,
                a2.ip,
                secs(d)
            ),
        ),
        _ => report.fail(
            CHECK_NAMES[7],
            format!("a1 {} and a2 {} do not reach each other", a1.ip, a2.ip),
        ),
    }

    let name = CHECK_NAMES[8];
    let a_out = ping_until(&a1.ns, OUTSIDE_IP, PING_TIMEOUT).await.is_some();
    let b_out = ping_until(&b1.ns, OUTSIDE_IP, PING_TIMEOUT).await.is_some();
    if !(a_out && b_out) {
        report.fail(
            name,
            format!("precondition: a1 and b1 should reach the outside (a1: {a_out}, b1: {b_out})"),
        );
        return Ok(());
    }
    let ab = replies(&a1.ns, &b1.ip, 3).await;
    let ba = replies(&b1.ns, &a1.ip, 3).await;
    let show = |r: Option<u32>| {
        r.map_or("ping failed to send".to_string(), |n| {
            format!("{n}/3 replies")
        })
    };
    let detail = format!(
        "a1→b1 {}: {}, b1→a1 {}: {} (both reach the outside)",
        b1.ip,
        show(ab),
        a1.ip,
        show(ba)
    );
    report.check(name, ab == Some(0) && ba == Some(0), detail);
    Ok(())
}
