//! `overlayd demo --cluster`: cluster mode with no hand wiring. One etcd in
//! a namespace of its own, N nodes whose configs only name that etcd, each
//! with a container; nodes claim their slices, find each other and peer
//! themselves. Then one more node joins late. Measured: join convergence
//! (from the last node's start until every container pings every other),
//! the time for the late node to become reachable from every member, and
//! etcd's load per node at steady state (from etcd's own metrics).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::future::join_all;
use overlayd_proto::{Handle, Request, Response, ServiceMode};

use super::lab::{self, ns_exec, Container, Lab};
use super::node::Node;
use super::report::Report;
use super::secs;

/// etcd's address on the underlay.
const ETCD_IP: &str = "192.0.2.200";
/// How long the whole mesh may take to form.
const MESH_TIMEOUT: Duration = Duration::from_secs(180);
/// Pings in flight at once (two cores are shared with everything else).
const PING_BATCH: usize = 32;

/// What the cluster demo measured (printed as one `figures:` line).
#[derive(Debug, Default)]
pub struct Figures {
    nodes: u8,
    join_convergence: Option<Duration>,
    new_node_reachable: Option<Duration>,
    etcd_msgs_per_node_min: Option<f64>,
}

impl Figures {
    /// One line a script can parse: `figures: key=value …`.
    pub fn line(&self) -> String {
        let ms = |d: Option<Duration>| d.map_or("-".into(), |d| d.as_millis().to_string());
        format!(
            "figures: nodes={} join_convergence_ms={} new_node_reachable_ms={} etcd_msgs_per_node_per_min={}",
            self.nodes,
            ms(self.join_convergence),
            ms(self.new_node_reachable),
            self.etcd_msgs_per_node_min
                .map_or("-".into(), |v| format!("{v:.1}"))
        )
    }
}

fn url() -> String {
    format!("http://{ETCD_IP}:2379")
}

/// Run the cluster scenario with `n` nodes plus one late joiner; the
/// steady-state window lasts `steady`.
pub async fn scenario(
    lab: &mut Lab,
    report: &mut Report,
    n: u8,
    steady: Duration,
    figures: &mut Figures,
) -> Result<()> {
    figures.nodes = n;
    lab.build_underlay_for(n + 1).await?;
    let etcd_ns = start_etcd(lab).await?;
    report.pass(
        "etcd",
        format!("one member in {etcd_ns} at {}, healthy", url()),
    );

    let exe = std::path::PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    for i in 1..=n + 1 {
        let node = Node::new(&lab.workdir, lab.ns_name(&format!("n{i}")), i, exe.clone())?;
        let mut cfg = std::fs::read_to_string(&node.config)?;
        cfg.push_str(&format!(
            "[cluster]\netcd_endpoints = [\"{}\"]\nnode_name = \"n{i}\"\n",
            url()
        ));
        std::fs::write(&node.config, cfg)?;
        lab.nodes.push(node);
    }
    report.step(format!(
        "{} node configs name only the etcd endpoint: no keys, endpoints or slices exchanged by hand",
        n + 1
    ));

    // N nodes, one after the other; the clock starts at the last one's start.
    let mut t_last = Instant::now();
    for i in 0..usize::from(n) {
        t_last = Instant::now();
        lab.nodes[i].start().await?;
        join_and_attach(lab, report, i).await?;
    }
    let members = usize::from(n);
    let conv = full_mesh(lab, &(0..members).collect::<Vec<_>>(), t_last).await;
    match conv {
        Some(d) => {
            figures.join_convergence = Some(d);
            report.pass(
                "join convergence",
                format!(
                    "{n} nodes: every container pings every other {} after the last node started",
                    secs(d)
                ),
            );
        }
        None => report.fail(
            "join convergence",
            format!("no full mesh within {}", secs(MESH_TIMEOUT)),
        ),
    }
    let slices = slices(lab, members).await?;
    let mut uniq: Vec<&String> = slices.values().collect();
    uniq.sort();
    uniq.dedup();
    report.check(
        "slice leases",
        uniq.len() == members,
        slices
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );

    // Steady state: what the members ask of etcd with nothing changing.
    match etcd_load(&etcd_ns, steady).await {
        Ok((total, by_method)) => {
            let per = total / f64::from(n) / steady.as_secs_f64() * 60.0;
            figures.etcd_msgs_per_node_min = Some(per);
            report.pass(
                "etcd load at rest",
                format!(
                    "{per:.1} requests per node per minute over {} ({by_method})",
                    secs(steady)
                ),
            );
        }
        Err(e) => report.fail("etcd load at rest", format!("{e:#}")),
    }

    // One more node joins a running cluster.
    let late = members;
    let t = Instant::now();
    lab.nodes[late].start().await?;
    join_and_attach(lab, report, late).await?;
    let all: Vec<usize> = (0..=members).collect();
    match reachable_from_all(lab, late, &all, t).await {
        Some(d) => {
            figures.new_node_reachable = Some(d);
            report.pass(
                "late joiner",
                format!(
                    "n{} reachable from all {n} members {} after its start",
                    late + 1,
                    secs(d)
                ),
            );
        }
        None => report.fail(
            "late joiner",
            format!("n{} not reachable from every member", late + 1),
        ),
    }
    println!("{}", figures.line());
    Ok(())
}

/// Start etcd in its own namespace and wait until it is healthy.
async fn start_etcd(lab: &mut Lab) -> Result<String> {
    let ns = lab.add_netns("etcd").await?;
    lab.uplink(&lab.ns_name("ul"), "petcd", &ns, ETCD_IP)
        .await?;
    let data = lab.workdir.join("etcd");
    let log = std::fs::File::create(lab.workdir.join("etcd.log"))?;
    let peer = format!("http://{ETCD_IP}:2380");
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "etcd", "--name", "e0"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen-client-urls", &url()])
        .args(["--advertise-client-urls", &url()])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("e0={peer}")])
        .args(["--initial-cluster-state", "new"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start etcd (install etcd-server)")?;
    lab.adopt(child);
    let t = Instant::now();
    loop {
        let out = ns_exec(
            &ns,
            &["etcdctl", "--endpoints", &url(), "endpoint", "health"],
        )
        .await?;
        if out.status.success() {
            return Ok(ns);
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!(
                "etcd did not become healthy within 30 s; see {}",
                lab.workdir.join("etcd.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until node `i` has joined (base overlay up), then give it a
/// container on the shared service `web` reachable over the base overlay.
async fn join_and_attach(lab: &mut Lab, report: &Report, i: usize) -> Result<()> {
    let t = Instant::now();
    let (slice, seen) = loop {
        if let Response::ClusterStatus {
            registered: true,
            slice: Some(slice),
            members,
            ..
        } = lab.nodes[i].call(Request::ClusterStatus).await?
        {
            break (slice, members.len());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!(
                "n{} did not join within 60 s; its log ends with:\n{}",
                i + 1,
                lab.nodes[i].log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    lab.nodes[i]
        .call(Request::SetupServiceOverlay {
            service: "web".into(),
            mode: ServiceMode::Shared,
            recreate: false,
        })
        .await?;
    let name = format!("c{}", i + 1);
    let ns = lab.add_container_ns(&name).await?;
    let mut c = Container {
        name,
        ns,
        node: i,
        ip: String::new(),
        network: "web + base overlay".into(),
    };
    match lab.nodes[i]
        .call(Request::AttachContainer {
            handle: Handle::NetnsPath {
                path: c.netns_path(),
            },
            service: "web".into(),
            join_global: true,
            dns_server: None,
            dns_domain: None,
            isolation: None,
            name: None,
            publish: Vec::new(),
        })
        .await?
    {
        Response::Attached { ip, .. } => c.ip = ip,
        r => bail!("attach on n{}: unexpected {r:?}", i + 1),
    }
    report.step(format!(
        "n{}: joined in {} with slice {slice} ({seen} members known so far); container {} at {}",
        i + 1,
        secs(t.elapsed()),
        c.name,
        c.ip
    ));
    lab.containers.push(c);
    Ok(())
}

/// Ping every pending `(from, to)` pair of containers until all answered;
/// the time since `since`, or `None` past [`MESH_TIMEOUT`].
async fn mesh_until(
    lab: &Lab,
    mut pending: Vec<(usize, usize)>,
    since: Instant,
) -> Option<Duration> {
    while !pending.is_empty() {
        if since.elapsed() > MESH_TIMEOUT {
            return None;
        }
        let mut still = Vec::new();
        for chunk in pending.chunks(PING_BATCH) {
            let results = join_all(chunk.iter().map(|&(a, b)| {
                let (from, to) = (&lab.containers[a], &lab.containers[b]);
                lab::ping(&from.ns, &to.ip)
            }))
            .await;
            still.extend(
                chunk
                    .iter()
                    .zip(results)
                    .filter(|(_, ok)| !ok)
                    .map(|(p, _)| *p),
            );
        }
        pending = still;
    }
    Some(since.elapsed())
}

/// Every container of `members` pings every other.
async fn full_mesh(lab: &Lab, members: &[usize], since: Instant) -> Option<Duration> {
    let pairs = members
        .iter()
        .flat_map(|&a| members.iter().map(move |&b| (a, b)))
        .filter(|(a, b)| a != b)
        .collect();
    mesh_until(lab, pairs, since).await
}

/// Every other container of `all` pings the container of `new`.
async fn reachable_from_all(
    lab: &Lab,
    new: usize,
    all: &[usize],
    since: Instant,
) -> Option<Duration> {
    let pairs = all
        .iter()
        .filter(|&&a| a != new)
        .map(|&a| (a, new))
        .collect();
    mesh_until(lab, pairs, since).await
}

/// Each member's slice lease, by node label.
async fn slices(lab: &Lab, members: usize) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for node in &lab.nodes[..members] {
        if let Response::ClusterStatus { slice, .. } = node.call(Request::ClusterStatus).await? {
            out.insert(node.label.clone(), slice.unwrap_or_default());
        }
    }
    Ok(out)
}

/// gRPC messages etcd received during `window` (its own metrics, read
/// before and after): the total and the busiest methods.
async fn etcd_load(ns: &str, window: Duration) -> Result<(f64, String)> {
    let before = grpc_received(ns).await?;
    tokio::time::sleep(window).await;
    let after = grpc_received(ns).await?;
    let mut delta: Vec<(String, f64)> = after
        .iter()
        .map(|(m, v)| (m.clone(), v - before.get(m).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    delta.sort_by(|a, b| b.1.total_cmp(&a.1));
    // `+ 0.0`: an empty f64 sum is -0.0, which would print as "-0.0".
    let total = delta.iter().map(|(_, d)| d).sum::<f64>() + 0.0;
    let top = delta
        .iter()
        .take(3)
        .map(|(m, d)| format!("{m} {d:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((total, if top.is_empty() { "none".into() } else { top }))
}

/// `grpc_server_msg_received_total` per method, from etcd's `/metrics`.
async fn grpc_received(ns: &str) -> Result<BTreeMap<String, f64>> {
    let out = ns_exec(ns, &["curl", "-sf", &format!("{}/metrics", url())]).await?;
    if !out.status.success() {
        bail!("cannot read etcd's metrics (is curl installed?)");
    }
    Ok(parse_received(&String::from_utf8_lossy(&out.stdout)))
}

/// Sum `grpc_server_msg_received_total` samples per `grpc_method`.
fn parse_received(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("grpc_server_msg_received_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let method = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix("grpc_method=\""))
            .map(|m| m.trim_end_matches('"').to_string())
            .unwrap_or_default();
        if let Ok(v) = value.trim().parse::<f64>() {
            *out.entry(method).or_insert(0.0) += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_metrics_are_summed_per_method() {
        let text = "# HELP x\n\
            grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"} 12\n\
            grpc_server_msg_received_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 3\n\
            grpc_server_started_total{grpc_method=\"Range\"} 99\n";
        let m = parse_received(text);
        assert_eq!(m.get("LeaseKeepAlive"), Some(&12.0));
        assert_eq!(m.get("Range"), Some(&3.0));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn figures_line_is_parseable() {
        let f = Figures {
            nodes: 4,
            join_convergence: Some(Duration::from_millis(1500)),
            new_node_reachable: None,
            etcd_msgs_per_node_min: Some(4.0),
        };
        assert_eq!(
            f.line(),
            "figures: nodes=4 join_convergence_ms=1500 new_node_reachable_ms=- etcd_msgs_per_node_per_min=4.0"
        );
    }
}
