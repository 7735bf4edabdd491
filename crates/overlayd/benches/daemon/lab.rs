//! The benchmark fixture: node, uplink and container namespaces plus the
//! daemon running in the node, and snapshots of the links it tagged.

use std::time::{Duration, Instant};

use overlayd_proto::Handle;
use tokio::runtime::Runtime;

use crate::daemon_process::Daemon;
use crate::interrupt::progress;
use crate::namespaces::Namespaces;
use crate::report::ms;
use crate::shell::cmd_output;
use crate::ATTACHMENTS;

/// Everything the benchmark owns. Fields drop in order: the daemon is
/// killed before its namespaces go, and the data dir last.
pub(crate) struct Lab {
    /// The daemon under test, in the node namespace.
    pub(crate) daemon: Daemon,
    _namespaces: Namespaces,
    _dir: tempfile::TempDir,
    /// Prefix of every namespace name of this run.
    pub(crate) prefix: String,
    /// The node namespace the daemon runs in.
    pub(crate) node: String,
    /// The container namespaces, attached by path.
    pub(crate) containers: Vec<String>,
    /// Spawn → ready on empty state.
    pub(crate) cold_start: Duration,
}

impl Lab {
    /// Create the node, an outside namespace linked to it as its uplink,
    /// the container namespaces, and start the daemon on empty state.
    pub(crate) fn new(rt: &Runtime) -> Self {
        let prefix = format!("obd{}", std::process::id());
        let node = format!("{prefix}n");
        let outside = format!("{prefix}o");
        let containers: Vec<String> = (0..ATTACHMENTS).map(|i| format!("{prefix}c{i}")).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut namespaces = Namespaces::default();
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
        let mut daemon = Daemon::new(&node, dir.path());
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
    pub(crate) fn handle(&self, i: usize) -> Handle {
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
    pub(crate) fn snapshot(&self) -> LinkSnapshot {
        LinkSnapshot {
            bridges: self.tagged_links("bridge"),
            veths: self.tagged_links("veth"),
        }
    }
}

/// Tagged links of the node namespace.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LinkSnapshot {
    /// Tagged bridges: (name, ifindex), sorted.
    pub(crate) bridges: Vec<(String, u32)>,
    /// Tagged veths: (name, ifindex), sorted.
    pub(crate) veths: Vec<(String, u32)>,
}
