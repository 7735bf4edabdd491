//! Cluster-mode helpers shared by the etcd end-to-end tests: a test LAN
//! (a bridge in a namespace of its own), a 3-member etcd cluster (Debian's
//! etcd 3.4, each member in its own namespace, data on tmpfs), and overlayd
//! nodes in cluster mode, each in its own namespace.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_proto::{Handle, Request, Response};

use super::*;

pub const TTL: u64 = 3;
pub const GRACE: u64 = 10;

pub fn etcd_ip(i: usize) -> String {
    format!("192.0.2.{}", 101 + i)
}

pub fn endpoints() -> String {
    (0..3)
        .map(|i| format!("http://{}:2379", etcd_ip(i)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Cluster-mode tests need root, `ip` and Debian's etcd; CI demands them.
pub fn can_run(test: &str) -> bool {
    let required = std::env::var("OVERLAYD_REQUIRE_ROOT").is_ok_and(|v| v == "1");
    let ok = can_run_root_tests(test)
        && Command::new("etcd").arg("--version").output().is_ok()
        && Command::new("etcdctl").arg("version").output().is_ok();
    if !ok {
        assert!(
            !required,
            "{test}: OVERLAYD_REQUIRE_ROOT=1 but root, ip, etcd or etcdctl is missing (scripts/setup.sh installs them)"
        );
        eprintln!("skipping {test}: needs root, etcd and etcdctl");
    }
    ok
}

/// The test LAN: a bridge in its own namespace; every member plugs a veth into it.
pub struct Lan {
    /// The LAN's namespace (holds the bridge; etcdctl runs here).
    pub ns: Netns,
    n: u32,
}

impl Lan {
    pub fn new() -> Self {
        let ns = Netns::new("lan");
        ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        ns.exec(&["ip", "addr", "add", "192.0.2.254/24", "dev", "br0"]);
        ns.exec(&["ip", "link", "set", "br0", "up"]);
        Lan { ns, n: 0 }
    }

    /// Plug `ns` in as `eth0` with `ip`, default route via the LAN's bridge.
    pub fn plug(&mut self, ns: &Netns, ip: &str) {
        self.n += 1;
        let port = format!("p{}", self.n);
        sh(&[
            "ip",
            "link",
            "add",
            &port,
            "netns",
            &self.ns.name,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns.name,
        ]);
        self.ns
            .exec(&["ip", "link", "set", &port, "master", "br0", "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ns.exec(&["ip", "link", "set", "eth0", "up"]);
        ns.exec(&["ip", "route", "add", "default", "via", "192.0.2.254"]);
    }
}

/// One etcd member in its own namespace, data on tmpfs; killed on drop.
pub struct Etcd {
    _ns: Netns,
    child: Option<Child>,
    data: PathBuf,
}

impl Etcd {
    pub fn start(lan: &mut Lan, i: usize, token: &str) -> Self {
        let ns = Netns::new(&format!("e{i}"));
        lan.plug(&ns, &etcd_ip(i));
        let data = PathBuf::from("/dev/shm").join(format!("{}-{token}", ns.name));
        let cluster: Vec<String> = (0..3)
            .map(|j| format!("e{j}=http://{}:2380", etcd_ip(j)))
            .collect();
        let ip = etcd_ip(i);
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "etcd"])
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &format!("http://{ip}:2379")])
            .args(["--advertise-client-urls", &format!("http://{ip}:2379")])
            .args(["--listen-peer-urls", &format!("http://{ip}:2380")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{ip}:2380"),
            ])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-token", token])
            .args(["--initial-cluster-state", "new"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        Etcd {
            _ns: ns,
            child: Some(child),
            data,
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::remove_file(self.data.with_extension("log"));
    }
}

/// etcdctl from the LAN namespace.
pub fn etcdctl(lan: &Lan, args: &[&str]) -> (bool, String) {
    let eps = endpoints();
    let mut v = vec![
        "etcdctl",
        "--endpoints",
        eps.as_str(),
        "--dial-timeout=1s",
        "--command-timeout=2s",
    ];
    v.extend_from_slice(args);
    let out = Command::new("ip")
        .args(["netns", "exec", &lan.ns.name])
        .args(&v)
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// An overlayd node in cluster mode, in its own namespace.
pub struct Node {
    /// Its node name.
    pub name: String,
    /// Its namespace.
    pub ns: Netns,
    /// Its daemon.
    pub d: Daemon,
    _dir: tempfile::TempDir,
}

/// A node plugged into the LAN with its config written, not started yet
/// (so several can start at once, or its data directory be seeded first).
pub struct Prepared {
    name: String,
    ns: Netns,
    dir: tempfile::TempDir,
}

impl Prepared {
    /// Its data directory (what `Daemon::start` will use).
    pub fn data_dir(&self) -> PathBuf {
        let d = self.dir.path().join("data");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Start its daemon and wait until it answers.
    pub fn start(self) -> Node {
        let cfg = self.dir.path().join("overlayd.toml");
        let d = Daemon::start(
            &self.ns,
            self.dir.path(),
            &["--config", cfg.to_str().unwrap()],
        );
        Node {
            name: self.name,
            ns: self.ns,
            d,
            _dir: self.dir,
        }
    }
}

/// Start a node in cluster mode with default settings (TTL and grace short).
pub fn start_node(lan: &mut Lan, name: &str, ip: &str) -> Node {
    prepare_node(lan, name, ip).start()
}

/// Plug a node into the LAN and write its config; see [`Prepared`].
pub fn prepare_node(lan: &mut Lan, name: &str, ip: &str) -> Prepared {
    let ns = Netns::new(name);
    lan.plug(&ns, ip);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    let eps: Vec<String> = endpoints().split(',').map(|e| format!("{e:?}")).collect();
    std::fs::write(
        &cfg,
        format!(
            "dns_port = 5353\n[cluster]\netcd_endpoints = [{}]\nnode_name = \"{name}\"\npresence_ttl_secs = {TTL}\npeer_grace_secs = {GRACE}\n",
            eps.join(", ")
        ),
    )
    .unwrap();
    Prepared {
        name: name.into(),
        ns,
        dir,
    }
}

/// A LAN with a healthy 3-member etcd cluster on it.
pub fn lan_with_etcd() -> (Lan, Vec<Etcd>) {
    let mut lan = Lan::new();
    let token = unique("tok");
    let etcd: Vec<Etcd> = (0..3).map(|i| Etcd::start(&mut lan, i, &token)).collect();
    wait_for("etcd cluster healthy", Duration::from_secs(30), || {
        etcdctl(&lan, &["endpoint", "health"]).0
    });
    (lan, etcd)
}

/// What `cluster_status` says, in short.
pub struct View {
    /// etcd unreachable recently.
    pub degraded: bool,
    /// This node's presence is registered.
    pub registered: bool,
    /// Its slice lease.
    pub slice: Option<String>,
    /// Members as (name, state).
    pub members: Vec<(String, String)>,
}

pub fn cluster_status(n: &Node) -> View {
    match n.d.ok(Request::ClusterStatus) {
        Response::ClusterStatus {
            degraded,
            registered,
            slice,
            members,
            ..
        } => View {
            degraded,
            registered,
            slice,
            members: members.into_iter().map(|m| (m.name, m.state)).collect(),
        },
        r => panic!("{r:?}"),
    }
}

pub fn present(n: &Node) -> Vec<String> {
    cluster_status(n)
        .members
        .into_iter()
        .filter(|(_, s)| s == "present")
        .map(|(n, _)| n)
        .collect()
}

pub fn base_peers(n: &Node) -> Vec<String> {
    match n.d.ok(Request::Status) {
        Response::Status(s) => s
            .peers
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.allowed_ips)
            .collect(),
        r => panic!("{r:?}"),
    }
}

pub fn service_peer_count(n: &Node, svc: &str) -> u32 {
    match n.d.ok(Request::Status) {
        Response::Status(s) => s
            .dedicated_services
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.service == svc)
            .map_or(0, |d| d.peer_count),
        r => panic!("{r:?}"),
    }
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
        publish: Vec::new(),
    }) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    }
}

/// Wait for `cond`; on timeout fail with the node's view and log.
pub fn wait_node(n: &Node, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > deadline {
            let v = cluster_status(n);
            let log = n.d.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{}: timed out waiting until it {what}; members {:?}, degraded {}, registered {}\nlog tail:\n{}",
                n.name,
                v.members,
                v.degraded,
                v.registered,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn names(v: &[&Node]) -> Vec<String> {
    let mut n: Vec<String> = v.iter().map(|n| n.name.clone()).collect();
    n.sort();
    n
}
