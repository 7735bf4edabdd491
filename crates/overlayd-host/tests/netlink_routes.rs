//! Root tests of the Linux host's netlink side that need no veth spec, each
//! inside namespaces it makes: the identity of a namespace whatever handle
//! names it, and routes that never replace one overlayd did not add.

mod common;

use common::{ifname, Sleeper, TestNetns};
use overlayd_host::{Host, LinuxHost, NetnsTarget};

#[tokio::test]
async fn namespace_identity_is_the_same_for_every_handle_of_one_namespace() {
    require_root!();
    let node = TestNetns::new("node");
    let other = TestNetns::new("other");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let c = Sleeper::new();
    let by_pid = host
        .netns_identity(&NetnsTarget::Pid(c.pid()))
        .await
        .unwrap()
        .expect("a live pid has an identity");
    let by_path = host
        .netns_identity(&NetnsTarget::Path(c.path()))
        .await
        .unwrap();
    assert_eq!(
        Some(by_pid),
        by_path,
        "/proc/PID/ns/net is the PID's namespace"
    );
    let a = host
        .netns_identity(&NetnsTarget::Path(node.path()))
        .await
        .unwrap()
        .unwrap();
    let b = host
        .netns_identity(&NetnsTarget::Path(other.path()))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a, b, "two namespaces, two identities");
    assert_ne!(a, by_pid);
    let pid = c.pid();
    drop(c);
    assert_eq!(
        host.netns_identity(&NetnsTarget::Pid(pid)).await.unwrap(),
        None,
        "a gone process has no identity"
    );
}

#[tokio::test]
async fn routes_are_created_never_replacing_one_overlayd_did_not_add() {
    require_root!();
    let node = TestNetns::new("node");
    let out = TestNetns::new("out");
    let host = LinuxHost::new_in_netns(node.path()).await.unwrap();
    let up = ifname("up");
    common::wire(
        &node,
        &up,
        "192.168.77.1/24",
        &out,
        "eth0",
        "192.168.77.2/24",
    );
    node.exec(&["ip", "route", "add", "default", "via", "192.168.77.2"]);
    let br = ifname("obr");
    host.create_bridge(&br, "overlayd:test:br", None)
        .await
        .unwrap();
    host.set_up(&br, true).await.unwrap();
    let routes = || node.exec(&["ip", "-4", "route", "show"]);
    let before = routes();

    for dest in ["192.168.77.0/24", "0.0.0.0/0"] {
        let e = host
            .add_route(dest.parse().unwrap(), &br)
            .await
            .expect_err("a route overlayd did not add is not replaced");
        assert!(e.to_string().contains("did not add"), "{e}");
    }
    assert_eq!(routes(), before, "the uplink and default routes are intact");

    let ours: ipnet::IpNet = "10.9.0.0/24".parse().unwrap();
    host.add_route(ours, &br).await.unwrap();
    host.add_route(ours, &br).await.unwrap();
    assert!(
        routes().contains(&format!("10.9.0.0/24 dev {br}")),
        "{}",
        routes()
    );
    assert!(host.delete_route(ours, &br).await.unwrap());
    assert_eq!(routes(), before);
}
