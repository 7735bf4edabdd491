//! Root tests of the nftables firewall, each inside namespaces it makes:
//! masquerade to an "outside" namespace, isolation between bridges, foreign
//! tables left alone, and drift detection with `firewall_matches`.

mod common;

use std::time::Duration;

use common::{ifname, TestNetns};
use overlayd_host::{
    FirewallSpec, Forwarding, Host, L4Proto, LinuxHost, MasqueradeNet, PublishedPort,
};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn masquerade_rewrites_container_source_to_uplink_address() {
    require_root!();
    let node = TestNetns::new("node");
    let c1 = TestNetns::new("c1");
    let out = TestNetns::new("out");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let br = ifname("nat");
    host.create_bridge(&br, "overlayd:test:nat", None)
        .await
        .unwrap();
    host.add_address(&br, "10.89.0.1/24".parse().unwrap())
        .await
        .unwrap();
    common::attach(&host, &br, &c1, "10.89.0.2/24", "10.89.0.1").await;

    let up = ifname("up");
    common::wire(
        &node,
        &up,
        "172.31.250.1/24",
        &out,
        "eth0",
        "172.31.250.2/24",
    );
    node.exec(&["ip", "route", "add", "default", "via", "172.31.250.2"]);
    host.set_forwarding(Forwarding {
        ipv4: Some(true),
        ipv6: None,
    })
    .await
    .unwrap();
    let uplink = host.uplink().await.unwrap().unwrap();
    assert_eq!(uplink.name, up);
    let node_ip = uplink.ipv4.unwrap().to_string();

    let _srv = out.serve("172.31.250.2", 7100);
    // Without masquerade the outside has no route back to the container subnet.
    assert_eq!(
        c1.probe("172.31.250.2", 7100),
        None,
        "must fail before masquerade"
    );

    let spec = FirewallSpec {
        masquerade: vec![MasqueradeNet {
            subnet: "10.89.0.0/24".parse().unwrap(),
            bridge: br.clone(),
            exclude: vec!["10.200.0.0/16".parse().unwrap()],
        }],
        accept_bridges: vec![br.clone()],
        ..Default::default()
    };
    host.apply_firewall(&spec).await.unwrap();
    assert_eq!(
        c1.probe_within("172.31.250.2", 7100, T).as_deref(),
        Some(node_ip.as_str()),
        "the outside must see the node's uplink address"
    );
    assert!(host.firewall_matches(&spec).await.unwrap());
    let listing = node.exec(&["nft", "list", "table", "inet", "overlayd"]);
    assert!(listing.contains("masquerade"), "{listing}");
}

#[tokio::test]
async fn isolation_bridges_cannot_reach_each_other() {
    require_root!();
    let node = TestNetns::new("node");
    let a1 = TestNetns::new("a1");
    let a2 = TestNetns::new("a2");
    let b1 = TestNetns::new("b1");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let ia = ifname("isa");
    let ib = ifname("isb");
    host.create_bridge(&ia, "overlayd:test:ia", None)
        .await
        .unwrap();
    host.create_bridge(&ib, "overlayd:test:ib", None)
        .await
        .unwrap();
    host.add_address(&ia, "10.91.0.1/24".parse().unwrap())
        .await
        .unwrap();
    host.add_address(&ib, "10.92.0.1/24".parse().unwrap())
        .await
        .unwrap();
    common::attach(&host, &ia, &a1, "10.91.0.2/24", "10.91.0.1").await;
    common::attach(&host, &ia, &a2, "10.91.0.3/24", "10.91.0.1").await;
    common::attach(&host, &ib, &b1, "10.92.0.2/24", "10.92.0.1").await;
    host.set_forwarding(Forwarding {
        ipv4: Some(true),
        ipv6: None,
    })
    .await
    .unwrap();

    let _s1 = a1.serve("10.91.0.2", 7200);
    let _s2 = a2.serve("10.91.0.3", 7200);
    let _s3 = b1.serve("10.92.0.2", 7200);
    let _s4 = node.serve("10.91.0.1", 7200);
    // Control: routed between the bridges before isolation.
    assert!(
        a1.probe_within("10.92.0.2", 7200, T).is_some(),
        "a1 -> b1 before isolation"
    );
    assert!(
        b1.probe_within("10.91.0.2", 7200, T).is_some(),
        "b1 -> a1 before isolation"
    );

    let spec = FirewallSpec {
        isolation_bridges: vec![ia.clone(), ib.clone()],
        accept_bridges: vec![ia.clone(), ib.clone()],
        ..Default::default()
    };
    host.apply_firewall(&spec).await.unwrap();
    assert!(
        a1.probe_within("10.91.0.3", 7200, T).is_some(),
        "same iso network"
    );
    assert!(
        a2.probe_within("10.91.0.2", 7200, T).is_some(),
        "same iso network, reverse"
    );
    assert!(
        a1.probe_within("10.91.0.1", 7200, T).is_some(),
        "member reaches the node"
    );
    assert_eq!(
        a1.probe("10.92.0.2", 7200),
        None,
        "a1 -> b1 must be dropped"
    );
    assert_eq!(
        b1.probe("10.91.0.2", 7200),
        None,
        "b1 -> a1 must be dropped"
    );
    assert_eq!(
        b1.probe("10.91.0.3", 7200),
        None,
        "b1 -> a2 must be dropped"
    );

    assert!(host.remove_firewall().await.unwrap());
    assert!(!host.remove_firewall().await.unwrap());
    assert!(
        a1.probe_within("10.92.0.2", 7200, T).is_some(),
        "reachable again after removal"
    );
}

#[tokio::test]
async fn foreign_tables_untouched_and_drift_detected() {
    require_root!();
    let node = TestNetns::new("node");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    node.exec(&["nft", "add", "table", "ip", "foreign"]);
    node.exec(&[
        "nft",
        "add",
        "chain",
        "ip",
        "foreign",
        "input",
        "{ type filter hook input priority 0 ; policy accept ; }",
    ]);
    node.exec(&[
        "nft", "add", "rule", "ip", "foreign", "input", "tcp", "dport", "22", "accept",
    ]);
    let foreign_before = node.exec(&["nft", "list", "table", "ip", "foreign"]);

    let spec = FirewallSpec {
        masquerade: vec![MasqueradeNet {
            subnet: "10.89.0.0/24".parse().unwrap(),
            bridge: "natbr".into(),
            exclude: vec![],
        }],
        isolation_bridges: vec!["isa".into(), "isb".into(), "isc".into()],
        accept_bridges: vec!["natbr".into()],
        ..Default::default()
    };
    assert!(
        !host.firewall_matches(&spec).await.unwrap(),
        "absent table does not match"
    );
    host.apply_firewall(&spec).await.unwrap();
    assert!(
        host.firewall_matches(&spec).await.unwrap(),
        "freshly applied table matches"
    );
    host.apply_firewall(&spec).await.unwrap(); // re-apply replaces, does not duplicate
    assert!(host.firewall_matches(&spec).await.unwrap());

    node.exec(&["nft", "flush", "table", "inet", "overlayd"]);
    assert!(
        !host.firewall_matches(&spec).await.unwrap(),
        "flushed table detected"
    );
    host.apply_firewall(&spec).await.unwrap();
    assert!(host.firewall_matches(&spec).await.unwrap());

    node.exec(&[
        "nft", "add", "rule", "inet", "overlayd", "forward", "accept",
    ]);
    assert!(
        !host.firewall_matches(&spec).await.unwrap(),
        "extra rule detected"
    );
    host.apply_firewall(&spec).await.unwrap();
    assert!(host.firewall_matches(&spec).await.unwrap());

    node.exec(&["nft", "delete", "table", "inet", "overlayd"]);
    assert!(
        !host.firewall_matches(&spec).await.unwrap(),
        "deleted table detected"
    );
    host.apply_firewall(&spec).await.unwrap();

    let other = FirewallSpec::default();
    assert!(
        !host.firewall_matches(&other).await.unwrap(),
        "different spec"
    );
    host.apply_firewall(&other).await.unwrap();
    assert!(host.firewall_matches(&other).await.unwrap());

    assert_eq!(
        node.exec(&["nft", "list", "table", "ip", "foreign"]),
        foreign_before
    );
    assert!(host.remove_firewall().await.unwrap());
    assert!(!host.remove_firewall().await.unwrap());
    assert_eq!(
        node.exec(&["nft", "list", "table", "ip", "foreign"]),
        foreign_before
    );
    let tables = node.exec(&["nft", "list", "tables"]);
    assert!(
        tables.contains("table ip foreign") && !tables.contains("overlayd"),
        "{tables}"
    );
}

fn published(host_ip: Option<&str>, port: u16, cip: &str, bridge: &str) -> PublishedPort {
    PublishedPort {
        protocol: L4Proto::Tcp,
        host_ip: host_ip.map(|h| h.parse().unwrap()),
        host_port: port,
        container_ip: cip.parse().unwrap(),
        container_port: 80,
        bridge: bridge.to_string(),
    }
}

#[tokio::test]
async fn published_ports_are_map_elements_updated_in_place_and_drift_checked() {
    require_root!();
    let node = TestNetns::new("pub");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let v4 = published(None, 8080, "10.89.0.2", "natbr");
    let lo = published(Some("127.0.0.1"), 8081, "10.89.0.2", "natbr");
    let mut v6 = published(None, 8443, "fd00:89::2", "natbr");
    v6.protocol = L4Proto::Sctp;
    let mut spec = FirewallSpec {
        accept_bridges: vec!["natbr".into()],
        publish_bridges: vec!["natbr".into()],
        published: vec![v4.clone()],
        ..Default::default()
    };
    host.apply_firewall(&spec).await.unwrap();
    assert!(
        host.firewall_matches(&spec).await.unwrap(),
        "applied spec matches"
    );
    let rules_before = node.exec(&[
        "nft",
        "-a",
        "list",
        "chain",
        "inet",
        "overlayd",
        "prerouting",
    ]);

    host.update_published(&[lo.clone(), v6.clone()], &[])
        .await
        .unwrap();
    spec.published.extend([lo.clone(), v6.clone()]);
    assert!(
        host.firewall_matches(&spec).await.unwrap(),
        "elements added in place"
    );
    let listed = node.exec(&["nft", "list", "table", "inet", "overlayd"]);
    assert!(
        listed.contains("127.0.0.1 . tcp . 8081 : 10.89.0.2"),
        "{listed}"
    );
    assert!(listed.contains("sctp . 8443 : fd00:89::2"), "{listed}");
    // No rule was added or replaced: same handles.
    assert_eq!(
        node.exec(&[
            "nft",
            "-a",
            "list",
            "chain",
            "inet",
            "overlayd",
            "prerouting"
        ]),
        rules_before
    );

    host.update_published(&[], std::slice::from_ref(&v4))
        .await
        .unwrap();
    spec.published.retain(|p| *p != v4);
    assert!(
        host.firewall_matches(&spec).await.unwrap(),
        "element removed"
    );
    node.exec(&[
        "nft",
        "delete",
        "element",
        "inet",
        "overlayd",
        "publish4_addr",
        "{ 127.0.0.1 . tcp . 8081 }",
    ]);
    assert!(
        !host.firewall_matches(&spec).await.unwrap(),
        "a deleted element is drift"
    );
    node.exec(&["nft", "delete", "table", "inet", "overlayd"]);
    assert!(
        host.update_published(&[v4], &[]).await.is_err(),
        "no table: the caller must apply the whole spec"
    );
    host.set_route_localnet("lo", true).await.unwrap();
    assert_eq!(
        node.exec(&["cat", "/proc/sys/net/ipv4/conf/lo/route_localnet"])
            .trim(),
        "1"
    );
}
