//! The restart check: SIGTERM n1's daemon and start it again, then show
//! that it recreated nothing — every bridge adopted with the same ifindex,
//! every WireGuard overlay with the same key and port as read from the live
//! device (not the daemon's records), the marker byte-identical — and what
//! cross-node traffic lost: a ping every 10 ms runs through the whole
//! restart, from before the SIGTERM until after traffic is back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use overlayd_proto::{Request, Response};

use super::checks::CHECK_NAMES;
use super::lab::{ping_until, Lab};
use super::node::Node;
use super::report::Report;
use super::secs;
use super::setup::status;

/// How long after SIGTERM the overlays must answer again.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Owner → (bridge name, live ifindex) of a node's `linux-bridge` entries.
type Bridges = BTreeMap<String, (String, Option<u64>)>;

/// `linux-bridge` marker entries of a node with their live ifindex.
async fn bridges(node: &Node) -> Result<Bridges> {
    match node.call(Request::ListNetworks).await? {
        Response::Networks { networks } => Ok(networks
            .into_iter()
            .filter(|n| n.kind == "linux-bridge")
            .map(|n| {
                let idx = n.extra.get("ifindex").and_then(|v| v.as_u64());
                (n.owner, (n.name, idx))
            })
            .collect()),
        r => bail!("list_networks on {}: unexpected {r:?}", node.label),
    }
}

/// Owner → "device key port" of a node's WireGuard overlays, with key and
/// port read from the live device: the UAPI socket of a userspace device,
/// `wg show` inside the node's namespace for a kernel one.
async fn wg_identity(node: &Node) -> Result<BTreeMap<String, String>> {
    let s = status(node).await?;
    let mut devices = Vec::new();
    if let Some(dev) = s.interface {
        devices.push(("base".to_string(), dev));
    }
    for d in s.dedicated_services.unwrap_or_default() {
        devices.push((format!("service:{}", d.service), d.interface));
    }
    let mut m = BTreeMap::new();
    for (owner, dev) in devices {
        let (key, port) = live_device(node, &dev).await?;
        m.insert(owner, format!("{dev} {key} {port}"));
    }
    Ok(m)
}

/// Public key and listen port of WireGuard device `dev` as it runs now.
async fn live_device(node: &Node, dev: &str) -> Result<(String, u16)> {
    let sock = overlayd_wg::uapi::socket_path(&node.uapi_dir(), dev);
    if sock.exists() {
        let st = tokio::task::spawn_blocking(move || overlayd_wg::uapi::get(&sock))
            .await
            .context("UAPI reader")?
            .with_context(|| format!("cannot read {dev} on {}", node.label))?;
        let key = st
            .public_key
            .map(|k| overlayd_wg::format_key(&k))
            .unwrap_or_default();
        return Ok((key, st.listen_port));
    }
    let show = |what: &'static str| {
        let (ns, dev) = (node.ns.clone(), dev.to_string());
        async move {
            let out = tokio::process::Command::new("ip")
                .args(["netns", "exec", &ns, "wg", "show", &dev, what])
                .output()
                .await?;
            anyhow::Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
    };
    let key = show("public-key").await?;
    let port = show("listen-port").await?.parse().unwrap_or(0);
    Ok((key, port))
}

/// A ping every 10 ms from a container's namespace, until stopped.
struct PingStream(tokio::process::Child);

impl PingStream {
    fn start(ns: &str, ip: &str) -> Result<PingStream> {
        let child = tokio::process::Command::new("ip")
            .args([
                "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.01", "-W", "1", ip,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the ping stream")?;
        Ok(PingStream(child))
    }

    /// Stop it (SIGINT: ping prints its totals) and return (sent, received).
    async fn stop(self) -> Option<(u64, u64)> {
        let pid = self.0.id()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).ok()?),
            nix::sys::signal::Signal::SIGINT,
        );
        let out = tokio::time::timeout(Duration::from_secs(5), self.0.wait_with_output())
            .await
            .ok()?
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (sent, rest) = l.split_once(" packets transmitted, ")?;
            let received = rest.split_whitespace().next()?;
            Some((sent.trim().parse().ok()?, received.parse().ok()?))
        })
    }
}

/// What the restarted daemon's reconcile reported.
#[derive(Debug, Default)]
struct Reconciled {
    adopted: u64,
    recreated: u64,
    /// Links it had to make again, by name.
    remade: Vec<String>,
}

/// Read the reconcile summary from the daemon's JSON log records.
fn reconciled(records: &[serde_json::Value]) -> Reconciled {
    let mut r = Reconciled::default();
    for rec in records {
        // `--log-json` puts fields at the top level; older builds nested
        // them under `fields`.
        let f = rec.get("fields").unwrap_or(rec);
        match f["message"].as_str() {
            Some("state reconciled") => {
                r.adopted = f["adopted"].as_u64().unwrap_or(0);
                r.recreated = f["recreated"].as_u64().unwrap_or(0);
            }
            Some(m)
                if m.starts_with("recreated recorded network")
                    || m.starts_with(
                        "adopted recorded network; restarted its WireGuard device",
                    ) =>
            {
                // `missing` is logged with Debug: ["name", …].
                let missing = f["missing"].as_str().unwrap_or("");
                r.remade.extend(
                    missing
                        .trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .map(|s| s.trim().trim_matches('"').to_string())
                        .filter(|s| !s.is_empty()),
                );
            }
            _ => {}
        }
    }
    r
}

/// Render a bridge map as `owner=ifindex …`.
fn listing(b: &Bridges) -> String {
    b.iter()
        .map(|(owner, (_, idx))| format!("{owner}={}", idx.map_or("-".into(), |i| i.to_string())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Restart n1 and record the four restart checks.
pub async fn run(lab: &mut Lab, report: &mut Report) -> Result<()> {
    let n1 = &lab.nodes[0];
    let bridges_before = bridges(n1).await?;
    let wg_before = wg_identity(n1).await?;
    let marker_path = n1.marker();
    let marker = tokio::fs::read(&marker_path)
        .await
        .with_context(|| format!("cannot read {}", marker_path.display()))?;
    let log_offset = n1.log_len();
    let (web1_ns, web2_ip) = (
        lab.container("web1")?.ns.clone(),
        lab.container("web2")?.ip.clone(),
    );
    // Cross-node traffic through n1's base overlay, measured through the
    // whole restart (the userspace WireGuard device lives in the daemon's
    // process, so the tunnel is down while the daemon is).
    let stream = PingStream::start(&web1_ns, &web2_ip)?;
    ping_until(&web1_ns, &web2_ip, RECOVERY_TIMEOUT).await;

    let t = Instant::now();
    lab.nodes[0].stop().await?;
    let stopped = t.elapsed();
    lab.nodes[0].start().await?;
    let ready = t.elapsed();
    report.step(format!(
        "n1: overlayd stopped by SIGTERM in {}, answering again {} after it",
        secs(stopped),
        secs(ready)
    ));

    let (db1, db2) = (lab.container("db1")?, lab.container("db2")?);
    let web_at = ping_until(&web1_ns, &web2_ip, RECOVERY_TIMEOUT)
        .await
        .map(|_| t.elapsed());
    let db_at = ping_until(&db1.ns, &db2.ip, RECOVERY_TIMEOUT)
        .await
        .map(|_| t.elapsed());
    // Let the stream run on for a moment of healthy traffic, then read it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lost = stream.stop().await;

    let n1 = &lab.nodes[0];
    let bridges_after = bridges(n1).await?;
    let wg_after = wg_identity(n1).await?;
    let marker_after = tokio::fs::read(&marker_path).await.unwrap_or_default();
    let rec = reconciled(&n1.log_records_since(log_offset));

    // Bridges: the same links, by ifindex.
    let bridge_names: Vec<&String> = bridges_after.values().map(|(name, _)| name).collect();
    let all_live = bridges_after.values().all(|(_, idx)| idx.is_some());
    let remade_bridges: Vec<&String> = rec
        .remade
        .iter()
        .filter(|l| bridge_names.contains(l))
        .collect();
    if !bridges_before.is_empty()
        && bridges_before == bridges_after
        && all_live
        && remade_bridges.is_empty()
    {
        report.pass(
            CHECK_NAMES[9],
            format!(
                "{} bridges, same ifindexes ({})",
                bridges_after.len(),
                listing(&bridges_after)
            ),
        );
    } else {
        report.fail(
            CHECK_NAMES[9],
            format!(
                "before: {}; after: {}; bridges re-made: {remade_bridges:?}",
                listing(&bridges_before),
                listing(&bridges_after)
            ),
        );
    }

    // WireGuard: same keys and ports. A userspace device lives in the
    // daemon's process, so it is brought up again from the record.
    let remade_devices: Vec<&String> = rec
        .remade
        .iter()
        .filter(|l| !bridge_names.contains(l))
        .collect();
    let remade_note = if remade_devices.is_empty() {
        ""
    } else {
        ", userspace WireGuard devices restarted in the new process"
    };
    if !wg_before.is_empty() && wg_before == wg_after {
        report.pass(
            CHECK_NAMES[10],
            format!(
                "{}: same device, key and port; adopted {}, recreated {}{remade_note}",
                wg_after.keys().cloned().collect::<Vec<_>>().join(", "),
                rec.adopted,
                rec.recreated
            ),
        );
    } else {
        report.fail(
            CHECK_NAMES[10],
            format!("before: {wg_before:?}; after: {wg_after:?}"),
        );
    }

    if marker_after == marker {
        report.pass(
            CHECK_NAMES[11],
            format!("agent_network.json byte-identical ({} bytes)", marker.len()),
        );
    } else {
        report.fail(
            CHECK_NAMES[11],
            format!(
                "agent_network.json changed ({} → {} bytes)",
                marker.len(),
                marker_after.len()
            ),
        );
    }

    let when = |at: Option<Duration>| match at {
        Some(d) => format!("answered {} after SIGTERM", secs(d)),
        None => format!("no reply within {}", secs(RECOVERY_TIMEOUT)),
    };
    let stream_note = match lost {
        Some((sent, received)) => format!(
            "; a ping every 10 ms web1→web2 through the restart: {} of {sent} lost (~{} without traffic)",
            sent - received.min(sent),
            secs(Duration::from_millis(10 * (sent - received.min(sent))))
        ),
        None => "; the ping stream gave no totals".to_string(),
    };
    let detail = format!(
        "web1→web2 {}, db1→db2 {} (stop {}, daemon answering at {}){stream_note}",
        when(web_at),
        when(db_at),
        secs(stopped),
        secs(ready)
    );
    report.check(CHECK_NAMES[12], web_at.is_some() && db_at.is_some(), detail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reconcile_summary_from_json_logs() {
        let recs: Vec<serde_json::Value> = [
            r#"{"level":"INFO","fields":{"message":"adopted recorded network","owner":"iso:a"}}"#,
            r#"{"level":"INFO","fields":{"message":"recreated recorded network with its recorded identity","owner":"base","missing":"[\"ovl-w1\"]"}}"#,
            r#"{"level":"INFO","fields":{"message":"state reconciled","adopted":3,"recreated":1}}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let r = reconciled(&recs);
        assert_eq!((r.adopted, r.recreated), (3, 1));
        assert_eq!(r.remade, vec!["ovl-w1".to_string()]);
        // As `--log-json` writes them now: fields at the top level, lists
        // comma-joined.
        let flat: Vec<serde_json::Value> = [
            r#"{"level":"INFO","message":"adopted recorded network; restarted its WireGuard device","owner":"base","missing":"ovl-w1,ovl-w2"}"#,
            r#"{"level":"INFO","message":"state reconciled","adopted":5,"recreated":0}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let r = reconciled(&flat);
        assert_eq!((r.adopted, r.recreated), (5, 0));
        assert_eq!(r.remade, vec!["ovl-w1".to_string(), "ovl-w2".to_string()]);
    }
}
