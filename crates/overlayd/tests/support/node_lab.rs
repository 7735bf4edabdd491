//! The lab of the host-network end-to-end tests: a node namespace with an
//! uplink to an outside namespace, a daemon in the node, and helpers to set
//! up networks, attach containers and read what the daemon left on the host.

use std::time::Duration;

use overlayd_proto::{Handle, Request, Response, ServiceMode};

use super::*;

/// A node namespace with an uplink to an outside namespace, and a daemon.
pub struct Lab {
    pub node: Netns,
    pub outside: Netns,
    pub daemon: Daemon,
    pub _dir: tempfile::TempDir,
    _cfg_dir: Option<tempfile::TempDir>,
}

impl Lab {
    /// A lab whose daemon checks for drift every second.
    pub fn fast_checks() -> Self {
        Self::with_config("check_interval_secs = 1\n")
    }

    pub fn with_config(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("overlayd.toml");
        std::fs::write(&cfg, toml).unwrap();
        let cfg = cfg.to_str().unwrap().to_string();
        let mut lab = Self::new(&["--config", &cfg]);
        lab._cfg_dir = Some(dir);
        lab
    }

    pub fn new(extra: &[&str]) -> Self {
        let (node, outside) = uplinked_node("n", "o");
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(&node, dir.path(), extra);
        Lab {
            node,
            outside,
            daemon,
            _dir: dir,
            _cfg_dir: None,
        }
    }

    /// A lab with service `web` (shared), isolation network `a` and one
    /// container attached to `web`: the start of most lifecycle tests.
    /// Returns the container and the tagged links once it is attached.
    pub fn with_web_member(extra: &[&str]) -> (Self, Container, Vec<(String, u32)>) {
        let lab = Self::new(extra);
        lab.service("web");
        lab.iso("a");
        let c = Container::new();
        lab.attach(&c, "web", None);
        let links = lab.tagged_links();
        (lab, c, links)
    }

    pub fn attach(&self, c: &Container, service: &str, iso: Option<&str>) -> String {
        match self.daemon.ok(Request::AttachContainer {
            handle: Handle::LinuxPid { pid: c.pid() },
            service: service.into(),
            join_global: false,
            dns_server: None,
            dns_domain: None,
            isolation: iso.map(str::to_string),
            name: None,
            publish: vec![],
        }) {
            Response::Attached { ip, .. } => ip,
            r => panic!("{r:?}"),
        }
    }

    pub fn service(&self, name: &str) {
        self.daemon.ok(Request::SetupServiceOverlay {
            service: name.into(),
            mode: ServiceMode::Shared,
            recreate: false,
        });
    }

    pub fn iso(&self, net: &str) -> (String, String) {
        match self.daemon.ok(Request::SetupIsolationNetwork {
            network: net.into(),
            subnet: None,
            internal: false,
            ipv6: false,
            subnet_v6: None,
        }) {
            Response::IsolationNetwork { subnet, bridge, .. } => (subnet, bridge),
            r => panic!("{r:?}"),
        }
    }

    /// Our links in the node namespace (bridges and veths carrying a tag).
    pub fn tagged_links(&self) -> Vec<(String, u32)> {
        let out = self.node.output(&["ip", "-o", "link", "show"]);
        let mut v = Vec::new();
        for l in out.lines() {
            if l.contains("alias overlayd:") {
                let name = l
                    .split(':')
                    .nth(1)
                    .unwrap()
                    .trim()
                    .split('@')
                    .next()
                    .unwrap()
                    .to_string();
                let idx = l.split(':').next().unwrap().trim().parse().unwrap();
                v.push((name, idx));
            }
        }
        v.sort();
        v
    }

    pub fn marker(&self) -> Vec<u8> {
        std::fs::read(self.daemon.data_dir.join("agent_network.json")).unwrap()
    }
}

pub fn ping_until(c: &Container, ip: &str) {
    wait_for(&format!("ping {ip}"), Duration::from_secs(10), || {
        c.ping(ip)
    });
}
