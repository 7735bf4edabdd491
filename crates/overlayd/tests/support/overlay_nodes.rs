//! Overlay nodes of the WireGuard end-to-end tests: a daemon per node
//! namespace with a fixed node id, the global overlay on a fixed slice,
//! peers, dedicated services and attached containers.

use overlayd_proto::{Handle, Request, Response, Scope, ServiceMode};

use super::{Container, Daemon, Netns};

pub const CLUSTER: &str = "10.200.0.0/16";

pub struct Node {
    pub ns: Netns,
    pub d: Daemon,
    pub underlay: String,
    pub slice: String,
    pub _dir: tempfile::TempDir,
}

pub fn start_node(ns: Netns, underlay: &str, n: u8) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    std::fs::write(&cfg, "dns_port = 5353\n").unwrap();
    let d = Daemon::start(&ns, dir.path(), &["--config", cfg.to_str().unwrap()]);
    // A node id makes the address plan's dedicated subnets fixed per node.
    d.ok(Request::SetLocalNodeId {
        node_id: u64::from(n),
    });
    Node {
        ns,
        d,
        underlay: underlay.to_string(),
        slice: format!("10.200.{n}.0/24"),
        _dir: dir,
    }
}

pub fn pubkey(n: &Node) -> String {
    match n.d.ok(Request::Status) {
        Response::Status(s) => s.public_key.unwrap(),
        r => panic!("{r:?}"),
    }
}

pub fn global_up(n: &Node) -> String {
    match n.d.ok(Request::SetupGlobalOverlay {
        deployment: "t".into(),
        instance_id: "i".into(),
        cluster_cidr: CLUSTER.into(),
        slice_cidr: Some(n.slice.clone()),
        wg_port: 51820,
        nat_enabled: true,
    }) {
        Response::BridgeName { name } => name,
        r => panic!("{r:?}"),
    }
}

pub fn peer(a: &Node, b: &Node, key: &str, port: u16, allowed: &str, scope: Scope) {
    a.d.ok(Request::AddPeer {
        public_key: key.into(),
        endpoint: format!("{}:{port}", b.underlay),
        allowed_ips: allowed.into(),
        persistent_keepalive_secs: 5,
        scope: Some(scope),
    });
}

pub fn attach(n: &Node, c: &Container, service: &str, join_global: bool) -> String {
    match n.d.ok(Request::AttachContainer {
        handle: Handle::LinuxPid { pid: c.pid() },
        service: service.into(),
        join_global,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: None,
        publish: vec![],
    }) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    }
}

pub struct Dedicated {
    pub key: String,
    pub port: u16,
    pub subnet: String,
}

pub fn dedicated(n: &Node, svc: &str) -> Dedicated {
    match n.d.ok(Request::SetupServiceOverlay {
        service: svc.into(),
        mode: ServiceMode::Dedicated,
        recreate: false,
    }) {
        Response::ServiceOverlay {
            wg_public_key,
            wg_port,
            subnet,
            ..
        } => Dedicated {
            key: wg_public_key.unwrap(),
            port: wg_port.unwrap(),
            subnet: subnet.unwrap(),
        },
        r => panic!("{r:?}"),
    }
}
