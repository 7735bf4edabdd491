//! Root tests of published ports written over netlink, each inside
//! namespaces it makes: the elements are byte for byte what `nft` writes
//! for the same ports, traffic is DNATed through them (TCP and UDP, IPv4 and
//! IPv6, every address and one address, a port range), a refused batch
//! changes nothing, and no process is spawned for a publish.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{ifname, TestNetns};
use overlayd_host::{
    FirewallSpec, Forwarding, Host, L4Proto, LinuxHost, LinuxHostConfig, PublishedPort,
};
use serde_json::Value;

const T: Duration = Duration::from_secs(10);
const MAPS: [&str; 8] = [
    "publish4_any",
    "publish4_any_port",
    "publish4_addr",
    "publish4_addr_port",
    "publish6_any",
    "publish6_any_port",
    "publish6_addr",
    "publish6_addr_port",
];

fn port(
    proto: L4Proto,
    host_ip: Option<&str>,
    host_port: u16,
    cip: &str,
    cport: u16,
) -> PublishedPort {
    PublishedPort {
        protocol: proto,
        host_ip: host_ip.map(|h| h.parse().unwrap()),
        host_port,
        container_ip: cip.parse().unwrap(),
        container_port: cport,
        bridge: "natbr".into(),
    }
}

/// Ports of every kind: both families, every protocol, any address and one
/// address, a range (one element per port).
fn every_kind() -> Vec<PublishedPort> {
    let mut v = vec![
        port(L4Proto::Tcp, None, 8080, "10.89.0.2", 7000),
        port(L4Proto::Udp, None, 8081, "10.89.0.2", 7001),
        port(L4Proto::Sctp, None, 8082, "10.89.0.2", 7002),
        port(L4Proto::Tcp, Some("172.31.251.1"), 9080, "10.89.0.2", 7000),
        port(L4Proto::Udp, Some("127.0.0.1"), 9081, "10.89.0.2", 7001),
        port(L4Proto::Tcp, None, 8080, "fd00:89::2", 7000),
        port(L4Proto::Udp, None, 8081, "fd00:89::2", 7001),
        port(L4Proto::Tcp, Some("fd00:251::1"), 9080, "fd00:89::2", 7000),
        port(L4Proto::Udp, Some("fd00:251::1"), 9081, "fd00:89::2", 7001),
    ];
    v.extend((0..3).map(|i| port(L4Proto::Tcp, None, 8090 + i, "10.89.0.2", 7000 + i)));
    v
}

fn spec(published: Vec<PublishedPort>) -> FirewallSpec {
    FirewallSpec {
        accept_bridges: vec!["natbr".into()],
        publish_bridges: vec!["natbr".into()],
        published,
        ..Default::default()
    }
}

/// The elements of a map as `nft -j` lists them, sorted.
fn elements(node: &TestNetns, table: &str, map: &str) -> Vec<Value> {
    let out = node.exec(&["nft", "-j", "list", "map", "inet", table, map]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let m = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o.get("map"))
        .unwrap_or_else(|| panic!("no map {map} in {out}"));
    let mut elems: Vec<Value> = m
        .get("elem")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    elems.sort_by_key(|e| e.to_string());
    elems
}

#[tokio::test]
async fn netlink_elements_are_what_nft_writes_for_the_same_ports() {
    require_root!();
    let node = TestNetns::new("pubnl");
    let ours = LinuxHost::new_in_netns(node.path()).await.unwrap();
    // The reference: the same ports written by nft itself, from JSON, in a
    // table of another name.
    let reference = LinuxHost::new_in_netns_with_config(
        node.path(),
        LinuxHostConfig {
            nft_table: "reference".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ports = every_kind();
    reference
        .apply_firewall(&spec(ports.clone()))
        .await
        .unwrap();
    ours.apply_firewall(&spec(Vec::new())).await.unwrap();
    ours.update_published(&ports, &[]).await.unwrap();

    for map in MAPS {
        let want = elements(&node, "reference", map);
        assert!(!want.is_empty(), "{map}: the reference has elements");
        assert_eq!(elements(&node, "overlayd", map), want, "{map}");
    }
    // Spot checks of the rendering, so a shared mistake cannot hide.
    let any4 = serde_json::to_string(&elements(&node, "overlayd", "publish4_any")).unwrap();
    assert!(
        any4.contains(r#"[{"concat":["tcp",8080]},"10.89.0.2"]"#),
        "{any4}"
    );
    let addr6 = serde_json::to_string(&elements(&node, "overlayd", "publish6_addr_port")).unwrap();
    assert!(
        addr6.contains(r#"[{"concat":["fd00:251::1","udp",9081]},7001]"#),
        "{addr6}"
    );
    assert!(ours.firewall_matches(&spec(ports.clone())).await.unwrap());

    // Removing over netlink empties the maps again.
    ours.update_published(&[], &ports).await.unwrap();
    for map in MAPS {
        assert!(elements(&node, "overlayd", map).is_empty(), "{map}");
    }
    assert!(ours.firewall_matches(&spec(Vec::new())).await.unwrap());
}

#[tokio::test]
async fn a_refused_batch_changes_nothing_and_says_why() {
    require_root!();
    let node = TestNetns::new("pubat");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let held = port(L4Proto::Tcp, None, 8080, "10.89.0.2", 80);
    host.apply_firewall(&spec(vec![held.clone()]))
        .await
        .unwrap();
    // The same element again is not an error (like `nft add element`).
    host.update_published(std::slice::from_ref(&held), &[])
        .await
        .unwrap();

    let fresh = port(L4Proto::Udp, None, 5353, "10.89.0.3", 53);
    let clash = port(L4Proto::Tcp, None, 8080, "10.89.0.3", 80);
    let err = host
        .update_published(&[fresh.clone(), clash], &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already published"), "{err}");
    assert!(err.contains("8080/tcp -> 10.89.0.3:80"), "{err}");
    assert!(err.contains("nothing changed"), "{err}");
    // Atomic: the fresh port in the same batch was not written either.
    assert!(
        host.firewall_matches(&spec(vec![held.clone()]))
            .await
            .unwrap(),
        "{}",
        node.exec(&["nft", "list", "table", "inet", "overlayd"])
    );
    // A delete of a missing element fails the same way, whole.
    let err = host
        .update_published(std::slice::from_ref(&fresh), std::slice::from_ref(&fresh))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(host.firewall_matches(&spec(vec![held])).await.unwrap());
}

/// An `nft` that logs each run to `log` and then runs the real one.
fn logging_nft(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let log = dir.join("nft.log");
    let real = common::must(&["sh", "-c", "command -v nft"]);
    let script = dir.join("nft");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn runs(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn publishing_spawns_no_process() {
    require_root!();
    let node = TestNetns::new("pubnp");
    let dir = tempfile::tempdir().unwrap();
    let (nft, log) = logging_nft(dir.path());
    let host = LinuxHost::new_in_netns_with_config(
        node.path(),
        LinuxHostConfig {
            nft_program: nft,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    host.apply_firewall(&spec(Vec::new())).await.unwrap();
    let after_apply = runs(&log);
    assert!(after_apply >= 1, "the logging nft is the one in use");

    let ports = every_kind();
    host.update_published(&ports, &[]).await.unwrap();
    host.update_published(&[], &ports[..4]).await.unwrap();
    assert_eq!(
        runs(&log),
        after_apply,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    // The elements are really there (listed with the real nft, not counted).
    let listed = node.exec(&["nft", "list", "map", "inet", "overlayd", "publish6_addr"]);
    assert!(listed.contains("fd00:251::1 . udp . 9081"), "{listed}");
    // Checking for drift does run nft (the count can move).
    assert!(host
        .firewall_matches(&spec(ports[4..].to_vec()))
        .await
        .unwrap());
    assert!(runs(&log) > after_apply);
}

fn no_dad(ns: &TestNetns) {
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
}

#[tokio::test]
async fn traffic_is_dnated_through_elements_written_over_netlink() {
    require_root!();
    let node = TestNetns::new("pubtn");
    let c4 = TestNetns::new("pubc4");
    let c6 = TestNetns::new("pubc6");
    let out = TestNetns::new("pubout");
    for ns in [&node, &c4, &c6, &out] {
        no_dad(ns);
    }
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let br = "natbr";
    host.create_bridge(br, "overlayd:test:natbr", None)
        .await
        .unwrap();
    host.add_address(br, "10.89.0.1/24".parse().unwrap())
        .await
        .unwrap();
    host.add_address(br, "fd00:89::1/64".parse().unwrap())
        .await
        .unwrap();
    common::attach(&host, br, &c4, "10.89.0.2/24", "10.89.0.1").await;
    common::attach(&host, br, &c6, "fd00:89::2/64", "fd00:89::1").await;
    let up = ifname("up");
    common::wire(
        &node,
        &up,
        "172.31.251.1/24",
        &out,
        "eth0",
        "172.31.251.2/24",
    );
    node.exec(&["ip", "addr", "add", "172.31.251.3/24", "dev", &up]);
    node.exec(&["ip", "-6", "addr", "add", "fd00:251::1/64", "dev", &up]);
    out.exec(&["ip", "-6", "addr", "add", "fd00:251::2/64", "dev", "eth0"]);
    host.set_forwarding(Forwarding {
        ipv4: Some(true),
        ipv6: Some(true),
    })
    .await
    .unwrap();

    let _t4: Vec<_> = (7000..7003).map(|p| c4.serve("10.89.0.2", p)).collect();
    let _u4 = c4.serve_udp("10.89.0.2", 7001);
    let _t6 = c6.serve("[fd00:89::2]", 7000);
    let _u6 = c6.serve_udp("[fd00:89::2]", 7001);

    host.apply_firewall(&spec(Vec::new())).await.unwrap();
    assert_eq!(
        out.probe("172.31.251.1", 8080),
        None,
        "nothing published yet"
    );
    let ports = every_kind();
    host.update_published(&ports, &[]).await.unwrap();

    let from_out = "172.31.251.2";
    let from_out6 = "fd00:251::2";
    // Every address: TCP and UDP, IPv4 and IPv6; the container sees the
    // real client (DNAT, no masquerade).
    for dst in ["172.31.251.1", "172.31.251.3"] {
        assert_eq!(out.probe_within(dst, 8080, T).as_deref(), Some(from_out));
        assert_eq!(
            out.probe_udp_within(dst, 8081, T).as_deref(),
            Some(from_out)
        );
    }
    let node6 = "[fd00:251::1]";
    assert_eq!(out.probe_within(node6, 8080, T).as_deref(), Some(from_out6));
    assert_eq!(
        out.probe_udp_within(node6, 8081, T).as_deref(),
        Some(from_out6)
    );
    // One address: answers there only.
    assert_eq!(
        out.probe_within("172.31.251.1", 9080, T).as_deref(),
        Some(from_out)
    );
    assert_eq!(out.probe("172.31.251.3", 9080), None, "bound to .1 only");
    assert_eq!(out.probe_within(node6, 9080, T).as_deref(), Some(from_out6));
    assert_eq!(
        out.probe_udp_within(node6, 9081, T).as_deref(),
        Some(from_out6)
    );
    // A range: each host port to its own container port.
    for p in 8090..8093 {
        assert_eq!(
            out.probe_within("172.31.251.1", p, T).as_deref(),
            Some(from_out)
        );
    }

    // Unpublished over netlink: gone at once.
    host.update_published(&[], &ports).await.unwrap();
    assert_eq!(out.probe("172.31.251.1", 8080), None);
    assert_eq!(common::probe_udp(out.path(), node6, 8081), None);
}

#[tokio::test]
async fn a_4096_port_range_goes_in_one_batch() {
    require_root!();
    let node = TestNetns::new("pubrg");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    host.apply_firewall(&spec(Vec::new())).await.unwrap();
    let ports: Vec<PublishedPort> = (0..4096u16)
        .map(|i| {
            port(
                L4Proto::Udp,
                Some("fd00:251::1"),
                10000 + i,
                "fd00:89::2",
                20000 + i,
            )
        })
        .collect();
    host.update_published(&ports, &[]).await.unwrap();
    for map in ["publish6_addr", "publish6_addr_port"] {
        assert_eq!(elements(&node, "overlayd", map).len(), 4096, "{map}");
    }
    let last = serde_json::to_string(&elements(&node, "overlayd", "publish6_addr_port")).unwrap();
    assert!(
        last.contains(r#"[{"concat":["fd00:251::1","udp",14095]},24095]"#),
        "the last port of the range"
    );
    assert!(host.firewall_matches(&spec(ports.clone())).await.unwrap());
    host.update_published(&[], &ports).await.unwrap();
    assert!(elements(&node, "overlayd", "publish6_addr").is_empty());
}
