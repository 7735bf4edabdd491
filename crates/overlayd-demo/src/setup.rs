//! Bringing the demo cluster up through the daemons' own protocol: the
//! underlay, one `overlayd run` per node, the base overlay with a full mesh
//! of peers, a shared service `web`, a dedicated service `db` on n1 and n2
//! with per-service peers, two isolation networks on n1, and the
//! containers attached to all of them.

use anyhow::{bail, Context, Result};
use overlayd_proto::{Handle, Request, Response, Scope, ServiceMode, StatusInfo};

use super::lab::{sh_ok, Container, Lab, NODES, OUTSIDE_IP};
use super::node::Node;
use super::report::Report;
use super::secs;

/// Cluster CIDR of the base overlay.
pub const CLUSTER: &str = "10.200.0.0/16";
/// Node-global WireGuard port (dedicated ports come from the band above).
pub const WG_PORT: u16 = 51820;
/// Persistent keepalive of every peer.
const KEEPALIVE_SECS: u64 = 15;
/// The nftables table the demo adds to the underlay namespace to count
/// what crosses the underlay bridge.
pub const PROBE_TABLE: &str = "ovd_demo_probe";

/// A dedicated service overlay on one node.
#[derive(Debug, Clone)]
pub struct Dedicated {
    /// Its WireGuard public key.
    pub key: String,
    /// Its UDP listen port.
    pub port: u16,
    /// Its subnet.
    pub subnet: String,
    /// Its WireGuard device.
    pub interface: String,
}

/// What the setup produced that the checks need.
#[derive(Debug)]
pub struct Cluster {
    /// Gateway of the shared service `web` on each node (DNS answers there).
    pub web_gateway: Vec<String>,
    /// Dedicated `db` on n1 and n2.
    pub db: Vec<Dedicated>,
}

/// One container to attach.
struct Spec {
    name: &'static str,
    node: usize,
    service: &'static str,
    join_global: bool,
    iso: Option<&'static str>,
    dns_name: Option<&'static str>,
}

const CONTAINERS: &[Spec] = &[
    Spec {
        name: "web1",
        node: 0,
        service: "web",
        join_global: true,
        iso: None,
        dns_name: Some("web1"),
    },
    Spec {
        name: "web2",
        node: 1,
        service: "web",
        join_global: true,
        iso: None,
        dns_name: None,
    },
    Spec {
        name: "web3",
        node: 2,
        service: "web",
        join_global: true,
        iso: None,
        dns_name: None,
    },
    Spec {
        name: "db1",
        node: 0,
        service: "db",
        join_global: false,
        iso: None,
        dns_name: None,
    },
    Spec {
        name: "db2",
        node: 1,
        service: "db",
        join_global: false,
        iso: None,
        dns_name: None,
    },
    Spec {
        name: "nat1",
        node: 0,
        service: "web",
        join_global: false,
        iso: None,
        dns_name: None,
    },
    Spec {
        name: "a1",
        node: 0,
        service: "web",
        join_global: false,
        iso: Some("a"),
        dns_name: None,
    },
    Spec {
        name: "a2",
        node: 0,
        service: "web",
        join_global: false,
        iso: Some("a"),
        dns_name: None,
    },
    Spec {
        name: "b1",
        node: 0,
        service: "web",
        join_global: false,
        iso: Some("b"),
        dns_name: None,
    },
];

/// Build everything; any failure here is fatal for the demo.
pub async fn bring_up(lab: &mut Lab, report: &Report) -> Result<Cluster> {
    lab.build_underlay().await?;
    install_underlay_probe(&lab.ns_name("ul"), &lab.workdir).await?;
    report.step(format!(
        "underlay: bridge in {}, nodes n1-n3 at 192.0.2.1-{NODES}, outside ({}) at {OUTSIDE_IP}",
        lab.ns_name("ul"),
        lab.ns_name("out")
    ));

    // This very binary, even if a rebuild replaces the file meanwhile.
    let exe = std::path::PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    for i in 1..=NODES {
        let ns = lab.ns_name(&format!("n{i}"));
        let node = Node::new(&lab.workdir, ns, i, exe.clone())?;
        // Recorded before it starts, so cleanup kills it whatever happens.
        lab.nodes.push(node);
        let node = lab.nodes.last_mut().context("node just added")?;
        let took = node.start().await?;
        report.step(format!(
            "{}: overlayd running in {} (pid {}, answering after {})",
            node.label,
            node.ns,
            node.pid().unwrap_or(0),
            secs(took)
        ));
    }

    let keys = base_overlay(&mut lab.nodes).await?;
    report.step(format!(
        "base overlay {CLUSTER}: slices {}, WireGuard port {WG_PORT}, full mesh of {} peerings",
        lab.nodes
            .iter()
            .map(|n| format!("{} {}", n.label, n.slice))
            .collect::<Vec<_>>()
            .join(", "),
        keys.len() * (keys.len() - 1)
    ));

    let mut web_gateway = Vec::new();
    for n in &lab.nodes {
        match n
            .call(Request::SetupServiceOverlay {
                service: "web".into(),
                mode: ServiceMode::Shared,
                recreate: false,
            })
            .await?
        {
            Response::ServiceOverlay {
                overlay_ip: Some(gw),
                ..
            } => web_gateway.push(gw),
            r => bail!("setup_service_overlay web on {}: unexpected {r:?}", n.label),
        }
    }
    let db = dedicated_db(&lab.nodes[..2]).await?;
    report.step(format!(
        "service web (shared NAT) on n1-n3; service db (dedicated) on n1 ({}, port {}, {}) and n2 ({}, port {}, {}), peered per service",
        db[0].interface, db[0].port, db[0].subnet, db[1].interface, db[1].port, db[1].subnet
    ));

    let mut isos = Vec::new();
    for net in ["a", "b"] {
        match lab.nodes[0]
            .call(Request::SetupIsolationNetwork {
                network: net.into(),
                subnet: None,
                internal: false,
                ipv6: false,
                subnet_v6: None,
            })
            .await?
        {
            Response::IsolationNetwork { subnet, bridge, .. } => {
                isos.push(format!("{net} ({subnet}, bridge {bridge})"))
            }
            r => bail!("setup_isolation_network {net}: unexpected {r:?}"),
        }
    }
    report.step(format!("isolation networks on n1: {}", isos.join(", ")));

    for spec in CONTAINERS {
        attach(lab, spec).await?;
    }
    report.step(format!(
        "containers: {}",
        lab.containers
            .iter()
            .map(|c| format!("{}@{} {}", c.name, lab.nodes[c.node].label, c.ip))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(Cluster { web_gateway, db })
}

/// The node's status.
pub async fn status(n: &Node) -> Result<StatusInfo> {
    match n.call(Request::Status).await? {
        Response::Status(s) => Ok(s),
        r => bail!("status on {}: unexpected {r:?}", n.label),
    }
}

/// Global overlay on every node, as an orchestrator does it (node id, no
/// slice: the address plan picks each node's), then every node peers with
/// every other using the slice it reports.
async fn base_overlay(nodes: &mut [Node]) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        n.call(Request::SetLocalNodeId {
            node_id: i as u64 + 1,
        })
        .await?;
        n.call(Request::SetupGlobalOverlay {
            deployment: "demo".into(),
            instance_id: n.label.clone(),
            cluster_cidr: CLUSTER.into(),
            slice_cidr: None,
            wg_port: WG_PORT,
            nat_enabled: true,
        })
        .await?;
        let st = status(n).await?;
        n.slice = st
            .slice_cidr
            .with_context(|| format!("{} reports no slice", n.label))?;
        let key = st
            .public_key
            .with_context(|| format!("{} reports no public key", n.label))?;
        keys.push(key);
    }
    for (i, a) in nodes.iter().enumerate() {
        for (j, b) in nodes.iter().enumerate() {
            if i != j {
                a.call(Request::AddPeer {
                    public_key: keys[j].clone(),
                    endpoint: format!("{}:{WG_PORT}", b.underlay_ip),
                    allowed_ips: b.slice.clone(),
                    persistent_keepalive_secs: KEEPALIVE_SECS,
                    scope: Some(Scope::Global),
                })
                .await?;
            }
        }
    }
    Ok(keys)
}

/// Dedicated `db` on both nodes, each peered with the other's db overlay.
async fn dedicated_db(nodes: &[Node]) -> Result<Vec<Dedicated>> {
    let mut db = Vec::new();
    for n in nodes {
        let (key, port, subnet) = match n
            .call(Request::SetupServiceOverlay {
                service: "db".into(),
                mode: ServiceMode::Dedicated,
                recreate: false,
            })
            .await?
        {
            Response::ServiceOverlay {
                wg_public_key: Some(k),
                wg_port: Some(p),
                subnet: Some(s),
                ..
            } => (k, p, s),
            r => bail!("setup_service_overlay db on {}: unexpected {r:?}", n.label),
        };
        let interface = status(n)
            .await?
            .dedicated_services
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.service == "db")
            .map(|d| d.interface)
            .with_context(|| {
                format!("{} does not list db among its dedicated services", n.label)
            })?;
        db.push(Dedicated {
            key,
            port,
            subnet,
            interface,
        });
    }
    for (i, a) in nodes.iter().enumerate() {
        let other = 1 - i;
        a.call(Request::AddPeer {
            public_key: db[other].key.clone(),
            endpoint: format!("{}:{}", nodes[other].underlay_ip, db[other].port),
            allowed_ips: db[other].subnet.clone(),
            persistent_keepalive_secs: KEEPALIVE_SECS,
            scope: Some(Scope::Service {
                service: "db".into(),
            }),
        })
        .await?;
    }
    Ok(db)
}

/// Create a container namespace and attach it by its netns path.
async fn attach(lab: &mut Lab, spec: &Spec) -> Result<()> {
    let ns = lab.add_container_ns(spec.name).await?;
    let mut c = Container {
        name: spec.name.to_string(),
        ns,
        node: spec.node,
        ip: String::new(),
        network: match spec.iso {
            Some(net) => format!("iso:{net}"),
            None if spec.join_global => format!("{} + base overlay", spec.service),
            None => spec.service.to_string(),
        },
    };
    let node = &lab.nodes[spec.node];
    match node
        .call(Request::AttachContainer {
            handle: Handle::NetnsPath {
                path: c.netns_path(),
            },
            service: spec.service.into(),
            join_global: spec.join_global,
            dns_server: None,
            dns_domain: None,
            isolation: spec.iso.map(str::to_string),
            name: spec.dns_name.map(str::to_string),
            publish: vec![],
        })
        .await?
    {
        Response::Attached { ip, .. } => c.ip = ip,
        r => bail!("attach {} on {}: unexpected {r:?}", spec.name, node.label),
    }
    lab.containers.push(c);
    Ok(())
}

/// Count, on the underlay bridge, plain overlay packets (10.0.0.0/8 as
/// source or destination) and WireGuard UDP (the port band).
async fn install_underlay_probe(ul: &str, workdir: &std::path::Path) -> Result<()> {
    let chain =
        format!("add chain bridge {PROBE_TABLE} seen {{ type filter hook forward priority 0; }}");
    let script = format!(
        "add table bridge {PROBE_TABLE}\n{chain}\n\
         add rule bridge {PROBE_TABLE} seen ip saddr 10.0.0.0/8 counter\n\
         add rule bridge {PROBE_TABLE} seen ip daddr 10.0.0.0/8 counter\n\
         add rule bridge {PROBE_TABLE} seen udp dport {WG_PORT}-{} counter\n",
        WG_PORT + 256
    );
    let file = workdir.join("underlay-probe.nft");
    std::fs::write(&file, script).context("cannot write the probe ruleset")?;
    let path = file.display().to_string();
    sh_ok(&["ip", "netns", "exec", ul, "nft", "-f", &path]).await?;
    Ok(())
}

/// The probe's counters: (plain overlay packets, WireGuard packets).
pub async fn underlay_counts(ul: &str) -> Result<(u64, u64)> {
    let rules = sh_ok(&[
        "ip",
        "netns",
        "exec",
        ul,
        "nft",
        "list",
        "chain",
        "bridge",
        PROBE_TABLE,
        "seen",
    ])
    .await?;
    let c: Vec<u64> = rules
        .lines()
        .filter_map(|l| l.split("packets ").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    match c.as_slice() {
        [src, dst, wg] => Ok((src + dst, *wg)),
        _ => bail!("unexpected probe counters: {rules}"),
    }
}
