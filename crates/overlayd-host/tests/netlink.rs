//! Root tests of the Linux host's netlink side, each inside namespaces it makes:
//! bridges, addresses and routes; attaching containers by netns path and by PID
//! and connecting between them over TCP; rollback; refusal of foreign links.

mod common;

use std::time::Duration;

use common::{ifname, Sleeper, TestNetns};
use overlayd_host::{Forwarding, Host, HostError, LinkKind, LinuxHost, NetnsTarget, VethSpec};

fn spec(host_if: &str, bridge: &str, target: NetnsTarget, addr: &str, gw: &str) -> VethSpec {
    VethSpec {
        host_ifname: host_if.to_string(),
        alias: format!("overlayd:test:{host_if}"),
        bridge: bridge.to_string(),
        target,
        container_ifname: "eth0".to_string(),
        address: addr.parse().unwrap(),
        gateway: Some(gw.parse().unwrap()),
        mtu: None,
        address_v6: None,
        gateway_v6: None,
    }
}

fn root_has_link(name: &str) -> bool {
    common::run(&["ip", "link", "show", "dev", name])
        .status
        .success()
}

#[tokio::test]
async fn bridge_address_route_lifecycle() {
    require_root!();
    let node = TestNetns::new("node");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let br = ifname("obr");

    let created = host
        .create_bridge(&br, "overlayd:test:br", Some(1400))
        .await
        .unwrap();
    assert_eq!(created.kind, LinkKind::Bridge);
    assert_eq!(created.alias.as_deref(), Some("overlayd:test:br"));
    assert_eq!(created.mtu, 1400);
    assert!(created.up);
    assert!(
        !root_has_link(&br),
        "bridge must not appear in the root netns"
    );
    assert!(node
        .exec(&["ip", "-d", "link", "show", &br])
        .contains("bridge"));

    let all = host.links().await.unwrap();
    assert!(all.iter().any(|l| l.name == br && l.index == created.index));
    assert!(all.iter().any(|l| l.name == "lo"));

    // Same alias: adopted, same index. Other alias: refused.
    let again = host
        .create_bridge(&br, "overlayd:test:br", Some(1400))
        .await
        .unwrap();
    assert_eq!(again.index, created.index);
    let err = host
        .create_bridge(&br, "someone-else", None)
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::ForeignLink { .. }), "{err}");

    host.set_alias(&br, "overlayd:test:renamed").await.unwrap();
    host.set_mtu(&br, 1380).await.unwrap();
    host.set_up(&br, false).await.unwrap();
    let l = host.link(&br).await.unwrap().unwrap();
    assert_eq!(l.alias.as_deref(), Some("overlayd:test:renamed"));
    assert_eq!(l.mtu, 1380);
    assert!(!l.up);
    host.set_up(&br, true).await.unwrap();

    let a4 = "10.66.0.1/24".parse().unwrap();
    let a6 = "fd66::1/64".parse().unwrap();
    host.add_address(&br, a4).await.unwrap();
    host.add_address(&br, a4).await.unwrap(); // idempotent
    host.add_address(&br, a6).await.unwrap();
    let addrs = host.addresses(&br).await.unwrap();
    assert!(addrs.contains(&a4) && addrs.contains(&a6), "{addrs:?}");
    assert!(node
        .exec(&["ip", "addr", "show", "dev", &br])
        .contains("10.66.0.1/24"));
    assert!(host.delete_address(&br, a4).await.unwrap());
    assert!(!host.delete_address(&br, a4).await.unwrap());
    host.add_address(&br, a4).await.unwrap();

    let dest = "10.250.0.0/16".parse().unwrap();
    host.add_route(dest, &br).await.unwrap();
    host.add_route(dest, &br).await.unwrap(); // idempotent
    let routes = node.exec(&["ip", "route", "show", "10.250.0.0/16"]);
    assert!(routes.contains(&format!("dev {br}")), "{routes}");
    assert!(host.delete_route(dest, &br).await.unwrap());
    assert!(!host.delete_route(dest, &br).await.unwrap());

    assert!(host.delete_link(&br).await.unwrap());
    assert!(!host.delete_link(&br).await.unwrap());
    assert!(host.link(&br).await.unwrap().is_none());
    assert!(matches!(
        host.add_address(&br, a4).await,
        Err(HostError::LinkNotFound { .. })
    ));
}

#[tokio::test]
async fn uplink_and_forwarding_sysctl() {
    require_root!();
    let node = TestNetns::new("node");
    let out = TestNetns::new("out");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    assert_eq!(host.uplink().await.unwrap(), None);

    let up = ifname("up");
    common::wire(
        &node,
        &up,
        "172.31.251.1/24",
        &out,
        "eth0",
        "172.31.251.2/24",
    );
    node.exec(&["ip", "link", "set", &up, "mtu", "1450"]);
    node.exec(&["ip", "route", "add", "default", "via", "172.31.251.2"]);
    let u = host.uplink().await.unwrap().expect("uplink");
    assert_eq!(u.name, up);
    assert_eq!(u.mtu, 1450);
    assert_eq!(u.ipv4, Some("172.31.251.1".parse().unwrap()));
    assert_eq!(u.gateway, Some("172.31.251.2".parse().unwrap()));

    let root_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let v6_before = node.exec(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]);
    host.set_forwarding(Forwarding {
        ipv4: Some(true),
        ipv6: None,
    })
    .await
    .unwrap();
    assert_eq!(
        node.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );
    assert_eq!(
        node.exec(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]),
        v6_before,
        "IPv6 forwarding is left alone unless asked"
    );
    assert_eq!(host.forwarding().await.unwrap().ipv4, Some(true));
    host.set_forwarding(Forwarding {
        ipv4: Some(false),
        ipv6: None,
    })
    .await
    .unwrap();
    assert_eq!(
        node.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "0"
    );
    assert_eq!(host.forwarding().await.unwrap().ipv4, Some(false));
    let root_after = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(
        root_before, root_after,
        "root netns sysctl must be untouched"
    );
}

#[tokio::test]
async fn attach_two_containers_by_path_and_pid_and_connect() {
    require_root!();
    let node = TestNetns::new("node");
    let c1 = TestNetns::new("c1");
    let c2 = Sleeper::new();
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let br = ifname("obr");
    host.create_bridge(&br, "overlayd:test:br", None)
        .await
        .unwrap();
    host.add_address(&br, "10.77.0.1/24".parse().unwrap())
        .await
        .unwrap();

    let v1 = ifname("ova");
    let v2 = ifname("ovb");
    let s1 = spec(
        &v1,
        &br,
        NetnsTarget::Path(c1.path()),
        "10.77.0.2/24",
        "10.77.0.1",
    );
    let s2 = spec(
        &v2,
        &br,
        NetnsTarget::Pid(c2.pid()),
        "10.77.0.3/24",
        "10.77.0.1",
    );
    let a1 = host.attach_veth(&s1).await.unwrap();
    let a2 = host.attach_veth(&s2).await.unwrap();
    assert_eq!(a1.host_ifname, v1);
    assert_eq!(a1.container_ifname, "eth0");
    assert!(a1.container_mac.is_some());

    let bridge = host.link(&br).await.unwrap().unwrap();
    for (name, att) in [(&v1, &a1), (&v2, &a2)] {
        let l = host.link(name).await.unwrap().unwrap();
        assert_eq!(l.kind, LinkKind::Veth);
        assert_eq!(l.index, att.host_index);
        assert_eq!(l.master, Some(bridge.index));
        assert!(l.up);
        // Hairpin mode, so a container reaches its own published ports.
        let detail = node.exec(&["ip", "-d", "link", "show", name]);
        assert!(detail.contains("hairpin on"), "{detail}");
        assert_eq!(
            l.alias.as_deref(),
            Some(format!("overlayd:test:{name}").as_str())
        );
        assert!(!root_has_link(name));
    }
    assert!(c1
        .exec(&["ip", "addr", "show", "dev", "eth0"])
        .contains("10.77.0.2/24"));
    assert!(c1
        .exec(&["ip", "route", "show", "default"])
        .contains("via 10.77.0.1 dev eth0"));
    assert!(c1.exec(&["ip", "link", "show", "lo"]).contains("UP"));
    assert!(c2
        .exec(&["ip", "addr", "show", "dev", "eth0"])
        .contains("10.77.0.3/24"));

    let t = Duration::from_secs(10);
    let _srv2 = c2.serve("10.77.0.3", 7001);
    let _srv1 = c1.serve("10.77.0.2", 7001);
    let _srv_node = node.serve("10.77.0.1", 7001);
    assert_eq!(
        c1.probe_within("10.77.0.3", 7001, t).as_deref(),
        Some("10.77.0.2"),
        "c1 -> c2"
    );
    assert_eq!(
        c2.probe_within("10.77.0.2", 7001, t).as_deref(),
        Some("10.77.0.3"),
        "c2 -> c1"
    );
    assert_eq!(
        c1.probe_within("10.77.0.1", 7001, t).as_deref(),
        Some("10.77.0.2"),
        "c1 -> gateway"
    );

    assert!(host.detach_veth(&v1).await.unwrap());
    assert!(!host.detach_veth(&v1).await.unwrap());
    assert!(
        !c1.try_exec(&["ip", "link", "show", "eth0"]),
        "peer gone with the host end"
    );
    assert!(host.detach_veth(&v2).await.unwrap());
    assert!(!c2.try_exec(&["ip", "link", "show", "eth0"]));
    assert!(host.netns_alive(&NetnsTarget::Pid(c2.pid())).await.unwrap());
    assert!(host
        .netns_alive(&NetnsTarget::Path(c1.path()))
        .await
        .unwrap());
}

fn veth_count(node: &TestNetns) -> usize {
    node.exec(&["ip", "-o", "link", "show", "type", "veth"])
        .lines()
        .count()
}

#[tokio::test]
async fn failed_attach_leaves_no_veth() {
    require_root!();
    let node = TestNetns::new("node");
    let c1 = TestNetns::new("c1");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let br = ifname("obr");
    host.create_bridge(&br, "overlayd:test:br", None)
        .await
        .unwrap();
    let v = ifname("ovr");
    let ok = spec(
        &v,
        &br,
        NetnsTarget::Path(c1.path()),
        "10.78.0.2/24",
        "10.78.0.1",
    );

    // Target path that does not exist.
    let gone = "/run/netns/ovl-t-does-not-exist-xyz";
    let e = host
        .attach_veth(&VethSpec {
            target: NetnsTarget::Path(gone.into()),
            ..ok.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::NetnsGone { .. }), "{e}");
    assert!(!host
        .netns_alive(&NetnsTarget::Path(gone.into()))
        .await
        .unwrap());

    // A regular file is not a netns.
    let file = tempfile::NamedTempFile::new().unwrap();
    let e = host
        .attach_veth(&VethSpec {
            target: NetnsTarget::Path(file.path().into()),
            ..ok.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::NotANetns { .. }), "{e}");

    // A pid that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let e = host
        .attach_veth(&VethSpec {
            target: NetnsTarget::Pid(dead),
            ..ok.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::NetnsGone { .. }), "{e}");
    assert!(!host.netns_alive(&NetnsTarget::Pid(dead)).await.unwrap());

    // The daemon's own namespace.
    let e = host
        .attach_veth(&VethSpec {
            target: NetnsTarget::Path(node.path()),
            ..ok.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::SameNetns { .. }), "{e}");

    // Missing bridge.
    let e = host
        .attach_veth(&VethSpec {
            bridge: "nosuchbr".into(),
            ..ok.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::LinkNotFound { .. }), "{e}");

    // Failure after the pair exists: the gateway is off-link, so the default
    // route cannot be added inside the container -> rollback.
    let e = host
        .attach_veth(&VethSpec {
            gateway: Some("192.0.2.1".parse().unwrap()),
            ..ok.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::Netlink { .. }), "{e}");
    assert!(
        !c1.try_exec(&["ip", "link", "show", "eth0"]),
        "container end rolled back"
    );

    // Container already has an eth0: creation refused, nothing created.
    c1.exec(&["ip", "link", "add", "eth0", "type", "bridge"]);
    let e = host.attach_veth(&ok).await.unwrap_err();
    assert!(matches!(e, HostError::InvalidArgument(_)), "{e}");
    c1.exec(&["ip", "link", "del", "eth0"]);

    assert_eq!(veth_count(&node), 0, "no veth may be left behind");
    assert!(host.link(&v).await.unwrap().is_none());

    // And the same spec then works.
    host.attach_veth(&ok).await.unwrap();
    assert_eq!(veth_count(&node), 1);
}

#[tokio::test]
async fn foreign_link_names_are_refused_and_untouched() {
    require_root!();
    let node = TestNetns::new("node");
    let c1 = TestNetns::new("c1");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let br = ifname("obr");
    host.create_bridge(&br, "overlayd:test:br", None)
        .await
        .unwrap();

    let foreign = ifname("frn");
    node.exec(&["ip", "link", "add", &foreign, "type", "bridge"]);
    node.exec(&["ip", "link", "set", &foreign, "alias", "someone-else"]);
    let before = host.link(&foreign).await.unwrap().unwrap();

    let s = spec(
        &foreign,
        &br,
        NetnsTarget::Path(c1.path()),
        "10.79.0.2/24",
        "10.79.0.1",
    );
    let e = host.attach_veth(&s).await.unwrap_err();
    assert!(matches!(e, HostError::ForeignLink { .. }), "{e}");
    let e = host
        .create_bridge(&foreign, "overlayd:test:x", None)
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::ForeignLink { .. }), "{e}");
    let e = host.detach_veth(&foreign).await.unwrap_err();
    assert!(matches!(e, HostError::WrongLinkKind { .. }), "{e}");
    assert_eq!(host.link(&foreign).await.unwrap().unwrap(), before);
    assert!(!c1.try_exec(&["ip", "link", "show", "eth0"]));

    // A foreign veth of the same name (untagged) is refused too.
    let fv = ifname("fve");
    node.exec(&[
        "ip", "link", "add", &fv, "type", "veth", "peer", "name", "fvpeer",
    ]);
    let e = host
        .attach_veth(&VethSpec {
            host_ifname: fv.clone(),
            ..s.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::ForeignLink { .. }), "{e}");
    assert!(host.link(&fv).await.unwrap().is_some());

    // A stale veth carrying our tag is replaced by a fresh attach.
    let ours = ifname("own");
    let s_ours = VethSpec {
        host_ifname: ours.clone(),
        alias: "overlayd:test:own".into(),
        ..s
    };
    node.exec(&[
        "ip",
        "link",
        "add",
        &ours,
        "type",
        "veth",
        "peer",
        "name",
        "stalepeer",
    ]);
    node.exec(&["ip", "link", "set", &ours, "alias", "overlayd:test:own"]);
    let att = host.attach_veth(&s_ours).await.unwrap();
    assert_eq!(
        host.link(&ours).await.unwrap().unwrap().index,
        att.host_index
    );
    assert!(!node.try_exec(&["ip", "link", "show", "stalepeer"]));
}
