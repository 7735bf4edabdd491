//! End to end, as root, inside namespaces this test creates: published TCP
//! and UDP ports reached from an outside namespace, from the node itself and
//! from a neighbour on the bridge and from the container itself (hairpin); a
//! 127.0.0.1 publish reachable from the node
//! only, never by packets from the wire; conflicts refused; mappings back
//! after a restart and after someone deletes our table; an internal network
//! whose members reach each other but nothing outside.

mod support;

use std::path::Path;
use std::time::Duration;

use overlayd_lab::{socket_addr, Echo, Transport};

use overlayd_proto::{Handle, Request, Response, ServiceMode};
use support::*;

const T: Duration = Duration::from_secs(15);

struct Lab {
    node: Netns,
    outside: Netns,
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        let (node, outside) = uplinked_node("pn", "po");
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("overlayd.toml");
        std::fs::write(&cfg, "check_interval_secs = 1\n").unwrap();
        let daemon = Daemon::start(&node, dir.path(), &["--config", cfg.to_str().unwrap()]);
        daemon.ok(Request::SetupServiceOverlay {
            service: "web".into(),
            mode: ServiceMode::Shared,
            recreate: false,
        });
        Lab {
            node,
            outside,
            daemon,
            _dir: dir,
        }
    }

    fn attach(&self, c: &Container, iso: Option<&str>, publish: &[&str]) -> Response {
        self.daemon.call(Request::AttachContainer {
            handle: Handle::LinuxPid { pid: c.pid() },
            service: "web".into(),
            join_global: false,
            dns_server: None,
            dns_domain: None,
            isolation: iso.map(str::to_string),
            name: None,
            publish: publish.iter().map(|p| p.parse().unwrap()).collect(),
        })
    }
}

/// What a TCP connection from inside `ns` to `ip:port` is answered (the
/// source address the echo server saw), or `None`.
fn tcp(ns: &Path, ip: &str, port: u16) -> Option<String> {
    overlayd_lab::tcp_probe(ns, socket_addr(ip, port), Duration::from_millis(700))
}

/// The same over UDP: one datagram, one answer within 700 ms.
fn udp(ns: &Path, ip: &str, port: u16) -> Option<String> {
    overlayd_lab::udp_probe(ns, socket_addr(ip, port), Duration::from_millis(700))
}

fn answered(what: &str, mut probe: impl FnMut() -> Option<String>) -> String {
    let mut got = None;
    wait_for(what, T, || {
        got = probe();
        got.is_some()
    });
    got.unwrap()
}

fn nft_counter(node: &Netns) -> u64 {
    let out = node.output(&["nft", "list", "chain", "ip", "otprobe", "pre"]);
    out.split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn published_ports_from_outside_host_and_hairpin_loopback_stays_local() {
    if !can_run_root_tests("published_ports") {
        return;
    }
    let mut lab = Lab::new();
    let c = Container::new();
    let ip = match lab.attach(
        &c,
        None,
        &["8080:7000", "5353:7000/udp", "127.0.0.1:9090:7000"],
    ) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}\n{}", lab.daemon.log()),
    };
    let _echo = Echo::start(c.path(), socket_addr("0.0.0.0", 7000), Transport::Both);
    let (out_ns, node_ns, c_ns) = (lab.outside.path(), lab.node.path(), c.path());

    // From another host: TCP and UDP, the container sees the real client.
    let seen = answered("tcp from outside", || tcp(&out_ns, NODE_UPLINK, 8080));
    assert_eq!(seen, OUTSIDE);
    let seen = answered("udp from outside", || udp(&out_ns, NODE_UPLINK, 5353));
    assert_eq!(seen, OUTSIDE);
    // From the node itself, through its own address.
    answered("tcp from the node", || tcp(&node_ns, NODE_UPLINK, 8080));
    answered("udp from the node", || udp(&node_ns, NODE_UPLINK, 5353));
    // Hairpin: a neighbour on the same bridge reaches the published port
    // through the node's address, masqueraded so the answer comes back the
    // same way (not straight over the bridge).
    let c2 = Container::new();
    let ip2 = match lab.attach(&c2, None, &[]) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    };
    let c2_ns = c2.path();
    let seen = answered("hairpin tcp", || tcp(&c2_ns, NODE_UPLINK, 8080));
    assert_ne!(seen, ip2, "hairpin traffic is masqueraded");
    answered("hairpin udp", || udp(&c2_ns, NODE_UPLINK, 5353));
    // Self-hairpin: the container reaches its own published port through
    // the node's address; masqueraded, so it sees the gateway, not itself.
    let seen = answered("self-hairpin tcp", || tcp(&c_ns, NODE_UPLINK, 8080));
    assert_ne!(seen, ip, "self-hairpin traffic is masqueraded");
    answered("self-hairpin udp", || udp(&c_ns, NODE_UPLINK, 5353));

    // 127.0.0.1 only answers on the node, and only where it was asked for.
    answered("loopback publish from the node", || {
        tcp(&node_ns, "127.0.0.1", 9090)
    });
    assert_eq!(
        tcp(&node_ns, "127.0.0.1", 8080),
        None,
        "an every-address publish does not answer on loopback"
    );
    assert_eq!(tcp(&out_ns, NODE_UPLINK, 9090), None);
    // moby#45610: a neighbour sending packets for 127.0.0.1 to the node.
    lab.node.exec(&[
        "nft",
        "add table ip otprobe; add chain ip otprobe pre { type filter hook prerouting priority -300; }; add rule ip otprobe pre ip daddr 127.0.0.1 tcp dport 9090 counter",
    ]);
    lab.outside
        .exec(&["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"]);
    lab.outside
        .exec(&["sysctl", "-qw", "net.ipv4.conf.out0.route_localnet=1"]);
    lab.outside.exec(&[
        "ip",
        "route",
        "add",
        "127.0.0.1/32",
        "via",
        NODE_UPLINK,
        "dev",
        "out0",
    ]);
    for _ in 0..3 {
        assert_eq!(
            tcp(&out_ns, "127.0.0.1", 9090),
            None,
            "reached from the wire"
        );
    }
    assert!(
        nft_counter(&lab.node) > 0,
        "the spoofed packets did reach the node (the probe is meaningful)"
    );

    // A conflicting publish is refused, naming the holder.
    let c3 = Container::new();
    match lab.attach(&c3, None, &["8080:80"]) {
        Response::Err { message, .. } => {
            assert!(message.contains(&format!("pid:{}", c.pid())), "{message}")
        }
        r => panic!("conflict accepted: {r:?}"),
    }

    // Back after a restart, and after someone deletes our table.
    lab.daemon.restart();
    answered("tcp after restart", || tcp(&out_ns, NODE_UPLINK, 8080));
    lab.node
        .exec(&["nft", "delete", "table", "inet", "overlayd"]);
    assert!(lab
        .node
        .output(&["nft", "list", "tables"])
        .contains("otprobe"));
    answered("tcp after the table was deleted", || {
        tcp(&out_ns, NODE_UPLINK, 8080)
    });
    answered("loopback after the table was deleted", || {
        tcp(&node_ns, "127.0.0.1", 9090)
    });

    // Detach removes them.
    lab.daemon.ok(Request::DetachContainer {
        handle: Handle::LinuxPid { pid: c.pid() },
    });
    let listed = lab
        .node
        .output(&["nft", "list", "table", "inet", "overlayd"]);
    assert!(!listed.contains("8080"), "{listed}");
    lab.node.exec(&["nft", "delete", "table", "ip", "otprobe"]);
}

#[test]
fn internal_network_members_talk_but_never_leave_the_host() {
    if !can_run_root_tests("internal_network") {
        return;
    }
    let lab = Lab::new();
    let gw = match lab.daemon.ok(Request::SetupIsolationNetwork {
        network: "db".into(),
        subnet: None,
        internal: true,
        ipv6: false,
        subnet_v6: None,
    }) {
        Response::IsolationNetwork { subnet, .. } => {
            let net: ipnet::Ipv4Net = subnet.parse().unwrap();
            net.hosts().next().unwrap().to_string()
        }
        r => panic!("{r:?}"),
    };
    let (c1, c2) = (Container::new(), Container::new());
    let ip2 = match lab.attach(&c2, Some("db"), &[]) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    };
    lab.attach(&c1, Some("db"), &[]);
    wait_for("internal peers ping", T, || c1.ping(&ip2));
    assert!(c1.ping(&gw), "the gateway (DNS) is reachable");
    assert!(
        !c1.output(&["ip", "route"]).contains("default"),
        "no default route"
    );
    // Even a route the container adds itself leads nowhere.
    assert!(c1.exec(&["ip", "route", "add", "default", "via", &gw]));
    for _ in 0..3 {
        assert!(!c1.ping(OUTSIDE), "internal member reached the outside");
    }
    // A non-internal network on the same node does get out (control).
    let c3 = Container::new();
    lab.attach(&c3, None, &[]);
    wait_for("shared member reaches the outside", T, || c3.ping(OUTSIDE));
    let _ = &lab.outside;
}
