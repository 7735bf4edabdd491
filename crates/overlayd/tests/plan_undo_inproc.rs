//! Request plans undone half-way, in process with a fake host and fake
//! WireGuard: a step that fails after others were done runs the undo of
//! those steps in reverse, so nothing is left behind on the host, in the
//! marker, in the store or in the port band.

mod support;

use overlayd_host::fake::Op;
use overlayd_host::{Host, LinkKind};
use overlayd_proto::{ErrorCode, Request, Response};
use support::inproc::{err_code, Instance};

fn internal(network: &str) -> Request {
    Request::SetupIsolationNetwork {
        network: network.into(),
        subnet: None,
        internal: true,
        ipv6: false,
        subnet_v6: None,
    }
}

async fn bridges(inst: &Instance) -> Vec<String> {
    inst.host
        .links()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.kind == LinkKind::Bridge)
        .map(|l| l.name)
        .collect()
}

fn marker_text(inst: &Instance) -> String {
    std::fs::read_to_string(inst.marker()).unwrap_or_default()
}

#[tokio::test]
async fn an_internal_network_failing_after_its_desired_record_leaves_nothing() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    // Steps: desired record, bridge, addresses, up (fails here), record, …
    inst.host.fail_next(Op::SetUp);
    let (code, msg) = err_code(c.call(internal("a")).await.unwrap());
    assert_eq!(code, ErrorCode::Host, "{msg}");
    assert!(
        bridges(&inst).await.is_empty(),
        "the new bridge was deleted"
    );
    assert!(!marker_text(&inst).contains("iso:a"), "nothing recorded");
    // The desired record was undone too: the network never existed.
    let (code, msg) = err_code(
        c.call(Request::TeardownIsolationNetwork {
            network: "a".into(),
        })
        .await
        .unwrap(),
    );
    assert_eq!(code, ErrorCode::NotFound, "{msg}");
    // And the retry builds it whole.
    match c.call(internal("a")).await.unwrap() {
        Response::IsolationNetwork { bridge, .. } => {
            assert_eq!(bridges(&inst).await, vec![bridge.clone()]);
            let fw = inst.host.firewall().expect("firewall applied");
            assert_eq!(fw.internal_bridges, vec![bridge]);
        }
        r => panic!("{r:?}"),
    }
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn a_new_dedicated_service_failing_at_its_device_is_undone_port_and_all() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let dedicated = support::requests::dedicated;
    // Steps: port, bridge, addresses, up, record, firewall, identity,
    // device (tagging it fails), service record.
    inst.host.fail_next(Op::SetAlias);
    let (code, msg) = err_code(c.call(dedicated("db")).await.unwrap());
    assert_eq!(code, ErrorCode::Host, "{msg}");
    assert!(bridges(&inst).await.is_empty(), "bridge deleted");
    assert!(inst.wg.devices().is_empty(), "device deleted");
    assert!(
        !marker_text(&inst).contains("service:db"),
        "entry forgotten"
    );
    let fw = inst.host.firewall().unwrap_or_default();
    assert!(fw.accept_bridges.is_empty(), "firewall re-applied: {fw:?}");
    let (code, _) = err_code(
        c.call(Request::TeardownServiceOverlay {
            service: "db".into(),
        })
        .await
        .unwrap(),
    );
    assert_eq!(code, ErrorCode::NotFound, "no service record was written");
    // The port went back to the band: the next service gets the first one.
    match c.call(dedicated("web")).await.unwrap() {
        Response::ServiceOverlay { wg_port, .. } => assert_eq!(wg_port, Some(51821)),
        r => panic!("{r:?}"),
    }
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn a_first_global_overlay_failing_at_its_device_leaves_no_base_behind() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let global = Request::SetupGlobalOverlay {
        deployment: "d".into(),
        instance_id: "i".into(),
        cluster_cidr: "10.200.0.0/16".into(),
        slice_cidr: Some("10.200.1.0/24".into()),
        wg_port: 51900,
        nat_enabled: false,
    };
    // Steps: desired record, band port, bridge, addresses, up, record,
    // firewall, device fields, device (tagging it fails), firewall.
    inst.host.fail_next(Op::SetAlias);
    let (code, msg) = err_code(c.call(global.clone()).await.unwrap());
    assert_eq!(code, ErrorCode::Host, "{msg}");
    assert!(bridges(&inst).await.is_empty(), "base bridge deleted");
    assert!(inst.wg.devices().is_empty(), "base device deleted");
    assert!(
        !marker_text(&inst).contains("\"base\""),
        "base entry forgotten"
    );
    match c.call(Request::Status).await.unwrap() {
        Response::Status(s) => assert_eq!(s.slice_cidr, None, "desired record undone"),
        r => panic!("{r:?}"),
    }
    // The band moved back below the configured port: a dedicated service
    // takes the port right above it, not one above 51900.
    match c.call(support::requests::dedicated("db")).await.unwrap() {
        Response::ServiceOverlay { wg_port, .. } => assert_eq!(wg_port, Some(51821)),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        c.call(global).await.unwrap(),
        Response::BridgeName { .. }
    ));
    assert_eq!(
        inst.wg.devices().len(),
        2,
        "db's device and the base device"
    );
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn an_allowed_ip_failing_at_its_route_puts_the_peer_back_as_it_was() {
    const PEER: &str = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let dev = match c
        .call(Request::SetupGlobalOverlay {
            deployment: "d".into(),
            instance_id: "i".into(),
            cluster_cidr: "10.200.0.0/16".into(),
            slice_cidr: Some("10.200.1.0/24".into()),
            wg_port: 51820,
            nat_enabled: false,
        })
        .await
        .unwrap()
    {
        Response::BridgeName { name } => name,
        r => panic!("{r:?}"),
    };
    c.call(Request::AddPeer {
        public_key: PEER.into(),
        endpoint: "192.0.2.2:51820".into(),
        allowed_ips: "10.200.2.0/24".into(),
        persistent_keepalive_secs: 0,
        scope: None,
    })
    .await
    .unwrap();
    let add = Request::AddAllowedIp {
        pubkey: PEER.into(),
        cidr: "10.200.3.0/24".into(),
        scope: None,
    };
    let (old, new): (ipnet::IpNet, ipnet::IpNet) = (
        "10.200.2.0/24".parse().unwrap(),
        "10.200.3.0/24".parse().unwrap(),
    );
    // Programming the peer with both ranges fails at its first route.
    inst.host.fail_next(Op::AddRoute);
    err_code(c.call(add.clone()).await.unwrap());
    let peers = inst.wg.peers(&dev);
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].allowed_ips,
        vec![old],
        "the old allowed IPs are back"
    );
    let routes = inst.host.routes();
    assert!(routes.contains(&(old, dev.clone())), "{routes:?}");
    assert!(!routes.iter().any(|(n, _)| *n == new), "{routes:?}");
    // Nothing was recorded: the retry adds it (not "already there").
    c.call(add).await.unwrap();
    assert_eq!(inst.wg.peers(&dev)[0].allowed_ips, vec![old, new]);
    assert!(inst.host.routes().contains(&(new, dev.clone())));
    let _ = inst.shutdown().await;
}

fn moved(network: &str, subnet: &str) -> Request {
    Request::MoveNetwork {
        network: network.into(),
        subnet: Some(subnet.into()),
    }
}

async fn addresses(inst: &Instance, link: &str) -> Vec<ipnet::IpNet> {
    let mut a = inst.host.addresses(link).await.unwrap();
    a.sort();
    a
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_move_failing_half_way_leaves_the_network_where_it_was() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let bridge = match c
        .call(Request::SetupIsolationNetwork {
            network: "a".into(),
            subnet: Some("10.201.0.0/24".into()),
            internal: true,
            ipv6: false,
            subnet_v6: None,
        })
        .await
        .unwrap()
    {
        Response::IsolationNetwork { bridge, .. } => bridge,
        r => panic!("{r:?}"),
    };
    // Steps: entry, desired record, old gateway off, new gateway on, up
    // (fails here), firewall, DNS listeners.
    inst.host.fail_next(Op::SetUp);
    let (code, msg) = err_code(c.call(moved("iso:a", "10.201.9.0/24")).await.unwrap());
    assert_eq!(code, ErrorCode::Host, "{msg}");
    assert_eq!(
        addresses(&inst, &bridge).await,
        vec![net("10.201.0.1/24")],
        "the new gateway came off and the old one is back"
    );
    assert!(
        marker_text(&inst).contains("10.201.0.0/24"),
        "entry as it was"
    );
    assert!(!marker_text(&inst).contains("10.201.9.0/24"));
    match c.call(Request::ListNetworks).await.unwrap() {
        Response::Networks { networks } => {
            let n = networks.iter().find(|n| n.owner == "iso:a").unwrap();
            assert_eq!(n.subnet, "10.201.0.0/24");
        }
        r => panic!("{r:?}"),
    }
    // The desired record went back too (and kept its internal flag).
    let dir = inst.shutdown().await;
    let store = overlayd_state::Store::open(dir.path().join("data")).unwrap();
    let rec: overlayd::daemon::records::IsolationRecord = store
        .read(|tx| tx.get(overlayd_state::Table::Isolation, "a"))
        .unwrap()
        .unwrap();
    assert_eq!(rec.subnet, "10.201.0.0/24");
    assert!(rec.internal);
}

#[tokio::test]
async fn a_dedicated_service_move_failing_at_its_device_puts_both_addresses_back() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let subnet = match c.call(support::requests::dedicated("db")).await.unwrap() {
        Response::ServiceOverlay { subnet, .. } => subnet.unwrap(),
        r => panic!("{r:?}"),
    };
    let bridge = bridges(&inst).await.remove(0);
    let device = inst.wg.devices()[0].clone();
    let old: ipnet::IpNet = net(&subnet);
    let old_gw = overlayd::daemon::plan::gateway_cidr(old).unwrap();
    let old_dev = ipnet::IpNet::new(old_gw.addr(), 32).unwrap();
    let before_bridge = addresses(&inst, &bridge).await;
    let before_dev = addresses(&inst, &device).await;
    assert!(before_dev.contains(&old_dev), "{before_dev:?}");
    // Steps: entry, bridge gateway off, on, up, device address off,
    // device (tagging it fails), firewall, DNS listeners.
    inst.host.fail_next(Op::SetAlias);
    let (code, msg) = err_code(c.call(moved("service:db", "10.201.9.0/24")).await.unwrap());
    assert_eq!(code, ErrorCode::Host, "{msg}");
    assert_eq!(addresses(&inst, &bridge).await, before_bridge);
    assert_eq!(addresses(&inst, &device).await, before_dev);
    assert!(marker_text(&inst).contains(&subnet), "entry as it was");
    // The retry moves it whole.
    match c.call(moved("service:db", "10.201.9.0/24")).await.unwrap() {
        Response::Networks { networks } => assert_eq!(networks[0].subnet, "10.201.9.0/24"),
        r => panic!("{r:?}"),
    }
    assert_eq!(addresses(&inst, &bridge).await, vec![net("10.201.9.1/24")]);
    assert!(addresses(&inst, &device)
        .await
        .contains(&net("10.201.9.1/32")));
    assert!(!addresses(&inst, &device).await.contains(&old_dev));
    let _ = inst.shutdown().await;
}
