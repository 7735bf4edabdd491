//! Test support for root tests: the namespace lab (`overlayd-lab`) with the
//! names these tests use — per-run namespaces removed on drop, a stand-in
//! container, echo servers and probes — and the `require_root!` gate.
//!
//! Nothing here touches the root namespace's links, routes or nftables.
#![allow(dead_code)]

use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use overlayd_lab::{socket_addr, tcp_probe, udp_probe, Container, Echo, Netns, Transport};

#[allow(unused_imports)]
pub use overlayd_lab::{must, run, wait_until};

/// Returns early from a test with a clear message when not root (or fails
/// it when `OVERLAYD_REQUIRE_ROOT=1`, see `overlayd_lab::need_root`).
#[macro_export]
macro_rules! require_root {
    () => {
        if !overlayd_lab::need_root(module_path!()) {
            return;
        }
    };
}

/// How long one probe waits for its answer.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// A short name unique to this process run (≤ 15 bytes for tags of up to
/// 4 bytes), usable as an interface name.
pub fn ifname(tag: &str) -> String {
    overlayd_lab::unique_with("", tag)
}

/// A TCP echo server (answers the source address it saw); stopped on drop.
pub type ProbeServer = Echo;
/// The same over UDP.
pub type UdpServer = Echo;

/// A test namespace: the lab's [`Netns`], whose `exec` returns stdout.
pub struct TestNetns(Netns);

impl TestNetns {
    /// Creates a uniquely named namespace with `lo` up.
    pub fn new(tag: &str) -> TestNetns {
        TestNetns(Netns::new(tag))
    }

    /// Runs a command inside the namespace; must succeed; returns stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        self.0.stdout(args)
    }

    /// Starts a TCP probe server on `ip:port` inside this namespace.
    pub fn serve(&self, ip: &str, port: u16) -> ProbeServer {
        Echo::start(self.path(), socket_addr(ip, port), Transport::Tcp)
    }

    /// Connects to `ip:port` from inside this namespace; see [`probe`].
    pub fn probe(&self, ip: &str, port: u16) -> Option<String> {
        probe(self.path(), ip, port)
    }

    /// Probes until answered or the deadline passes; returns the last answer.
    pub fn probe_within(&self, ip: &str, port: u16, within: Duration) -> Option<String> {
        answered_within(within, || probe(self.path(), ip, port))
    }

    /// Starts a UDP server on `ip:port` inside the namespace.
    pub fn serve_udp(&self, ip: &str, port: u16) -> UdpServer {
        Echo::start(self.path(), socket_addr(ip, port), Transport::Udp)
    }

    /// Like [`TestNetns::probe_within`], over UDP ([`probe_udp`]).
    pub fn probe_udp_within(&self, ip: &str, port: u16, within: Duration) -> Option<String> {
        answered_within(within, || probe_udp(self.path(), ip, port))
    }
}

impl Deref for TestNetns {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.0
    }
}

/// A stand-in container (the lab's [`Container`]), whose `exec` returns
/// stdout.
pub struct Sleeper(Container);

impl Sleeper {
    /// Starts one and waits until it runs in its own namespace.
    pub fn new() -> Sleeper {
        Sleeper(Container::new())
    }

    /// Starts a TCP probe server on `ip:port` inside its namespace.
    pub fn serve(&self, ip: &str, port: u16) -> ProbeServer {
        Echo::start(self.path(), socket_addr(ip, port), Transport::Tcp)
    }

    /// Probes until answered or the deadline passes.
    pub fn probe_within(&self, ip: &str, port: u16, within: Duration) -> Option<String> {
        answered_within(within, || probe(self.path(), ip, port))
    }

    /// Runs a command in its netns; returns whether it succeeded.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        self.0.exec(args)
    }

    /// Runs a command in its netns; must succeed; returns stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        self.0.stdout(args)
    }
}

impl Deref for Sleeper {
    type Target = Container;

    fn deref(&self) -> &Container {
        &self.0
    }
}

/// Connects two namespaces with a veth pair and addresses both ends.
pub fn wire(a: &TestNetns, a_if: &str, a_addr: &str, b: &TestNetns, b_if: &str, b_addr: &str) {
    overlayd_lab::link_pair(a, a_if, a_addr, b, b_if, b_addr);
}

/// Connects from inside the namespace at `ns` to `ip:port` and returns what
/// the probe server answered: the source address it saw.
pub fn probe(ns: PathBuf, ip: &str, port: u16) -> Option<String> {
    tcp_probe(&ns, socket_addr(ip, port), PROBE_WAIT)
}

/// Sends one datagram from inside the namespace at `ns` to `ip:port` and
/// returns the answer (the source address the server saw).
pub fn probe_udp(ns: PathBuf, ip: &str, port: u16) -> Option<String> {
    udp_probe(&ns, socket_addr(ip, port), PROBE_WAIT)
}

/// Attach the namespace `ns` to `bridge` with a veth named after `tag`
/// (address `addr`, default route via `gw`, either family); returns the
/// host end's name.
pub async fn attach(
    host: &overlayd_host::LinuxHost,
    bridge: &str,
    ns: &TestNetns,
    addr: &str,
    gw: &str,
) -> String {
    let name = ifname("ova");
    overlayd_host::Host::attach_veth(
        host,
        &overlayd_host::VethSpec {
            host_ifname: name.clone(),
            alias: format!("overlayd:test:{name}"),
            bridge: bridge.to_string(),
            target: overlayd_host::NetnsTarget::Path(ns.path()),
            container_ifname: "eth0".into(),
            address: addr.parse().unwrap(),
            gateway: Some(gw.parse().unwrap()),
            mtu: None,
            address_v6: None,
            gateway_v6: None,
        },
    )
    .await
    .unwrap();
    name
}

fn answered_within(within: Duration, mut probe: impl FnMut() -> Option<String>) -> Option<String> {
    let mut answer = None;
    wait_until(within, || {
        answer = probe();
        answer.is_some()
    });
    answer
}
