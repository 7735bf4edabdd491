//! The address plan in process with a fake host (no root): a missing slice
//! is derived and recorded for good, dedicated subnets come from the
//! service range, collisions are named and reported, and a network moves
//! only when asked.

mod support;

use overlayd_proto::{ErrorCode, Request, Response, Scope, ServiceMode};
use support::inproc::{err_message, Instance};

const PEER: &str = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";

fn global(slice: Option<&str>) -> Request {
    Request::SetupGlobalOverlay {
        deployment: "zlayer".into(),
        instance_id: "i".into(),
        cluster_cidr: "10.200.0.0/16".into(),
        slice_cidr: slice.map(str::to_string),
        wg_port: 51420,
        nat_enabled: true,
    }
}

async fn slice_of(inst: &Instance) -> String {
    match inst.client().await.call(Request::Status).await.unwrap() {
        Response::Status(s) => s.slice_cidr.expect("slice"),
        r => panic!("{r:?}"),
    }
}

#[tokio::test]
async fn missing_slice_is_derived_once_and_kept() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(Request::SetLocalNodeId { node_id: 1 })
        .await
        .unwrap();
    let r = c.call(global(None)).await.unwrap();
    assert!(matches!(r, Response::BridgeName { .. }), "{r:?}");
    let first = slice_of(&inst).await;
    let n: ipnet::IpNet = first.parse().unwrap();
    assert_eq!(n.prefix_len(), 24);
    assert!("10.200.0.0/16"
        .parse::<ipnet::IpNet>()
        .unwrap()
        .contains(&n));

    // A later node id, a teardown and a setup again: the same slice.
    c.call(Request::SetLocalNodeId { node_id: 99 })
        .await
        .unwrap();
    assert!(matches!(
        c.call(Request::TeardownGlobalOverlay).await.unwrap(),
        Response::Ok
    ));
    c.call(global(None)).await.unwrap();
    assert_eq!(slice_of(&inst).await, first);

    // Restart: still the same.
    drop(c);
    let (cfg, host, wg) = (inst.cfg.clone(), inst.host.clone(), inst.wg.clone());
    let dir = inst.shutdown().await;
    let inst = Instance::relaunch(dir, cfg, host, wg).await;
    let mut c = inst.client().await;
    c.call(global(None)).await.unwrap();
    assert_eq!(slice_of(&inst).await, first);

    // A given slice still wins.
    c.call(global(Some("10.200.250.0/24"))).await.unwrap();
    assert_eq!(slice_of(&inst).await, "10.200.250.0/24");
}

#[tokio::test]
async fn two_node_ids_get_different_slices_and_service_subnets() {
    let mut slices = Vec::new();
    let mut subnets = Vec::new();
    for id in [1u64, 2] {
        let inst = Instance::start().await;
        let mut c = inst.client().await;
        c.call(Request::SetLocalNodeId { node_id: id })
            .await
            .unwrap();
        c.call(global(None)).await.unwrap();
        slices.push(slice_of(&inst).await);
        match c
            .call(Request::SetupServiceOverlay {
                service: "db".into(),
                mode: ServiceMode::Dedicated,
                recreate: false,
            })
            .await
            .unwrap()
        {
            Response::ServiceOverlay { subnet, name, .. } => {
                assert!(name.starts_with("ovl-b"), "name is the bridge: {name}");
                subnets.push(subnet.unwrap());
            }
            r => panic!("{r:?}"),
        }
    }
    assert_ne!(slices[0], slices[1]);
    assert_ne!(subnets[0], subnets[1]);
    for s in &subnets {
        let n: ipnet::IpNet = s.parse().unwrap();
        assert!("10.208.0.0/12"
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&n));
    }
}

#[tokio::test]
async fn shared_service_overlay_names_the_shared_bridge() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let name = match c
        .call(Request::SetupServiceOverlay {
            service: "web".into(),
            mode: ServiceMode::Auto,
            recreate: false,
        })
        .await
        .unwrap()
    {
        Response::ServiceOverlay { name, .. } => name,
        r => panic!("{r:?}"),
    };
    let Response::Networks { networks } = c.call(Request::ListNetworks).await.unwrap() else {
        panic!()
    };
    let nat = networks.iter().find(|n| n.owner == "shared-nat").unwrap();
    assert_eq!(name, nat.name);
}

/// Another node's half of `db`, whose subnet is `subnet`.
fn db_peer(subnet: &str) -> Request {
    Request::AddPeer {
        public_key: PEER.into(),
        endpoint: "192.0.2.9:51821".into(),
        allowed_ips: subnet.to_string(),
        persistent_keepalive_secs: 0,
        scope: Some(Scope::Service {
            service: "db".into(),
        }),
    }
}

#[tokio::test]
async fn a_collision_is_named_reported_and_moved_explicitly() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(Request::SetLocalNodeId { node_id: 5 })
        .await
        .unwrap();
    c.call(global(None)).await.unwrap();
    let subnet = match c
        .call(Request::SetupServiceOverlay {
            service: "db".into(),
            mode: ServiceMode::Dedicated,
            recreate: false,
        })
        .await
        .unwrap()
    {
        Response::ServiceOverlay { subnet, .. } => subnet.unwrap(),
        r => panic!("{r:?}"),
    };
    // Another node's db half that picked the same subnet.
    let r = c.call(db_peer(&subnet)).await.unwrap();
    let Response::Err { code, .. } = &r else {
        panic!("{r:?}")
    };
    assert_eq!(*code, Some(ErrorCode::Conflict));
    let msg = err_message(r);
    assert!(
        msg.contains("service:db") && msg.contains(&subnet) && msg.contains("network move"),
        "{msg}"
    );

    // The explicit move: a new subnet, same key and port; the peer fits now.
    let before = match c.call(Request::ListNetworks).await.unwrap() {
        Response::Networks { networks } => networks
            .into_iter()
            .find(|n| n.owner == "service:db")
            .unwrap(),
        r => panic!("{r:?}"),
    };
    let moved = match c
        .call(Request::MoveNetwork {
            network: "service:db".into(),
            subnet: None,
        })
        .await
        .unwrap()
    {
        Response::Networks { networks } => networks.into_iter().next().unwrap(),
        r => panic!("{r:?}"),
    };
    assert_ne!(moved.subnet, subnet);
    assert_eq!(moved.wg_public_key, before.wg_public_key);
    assert_eq!(moved.wg_port, before.wg_port);
    assert_eq!(moved.name, before.name);
    let r = c.call(db_peer(&subnet)).await.unwrap();
    assert!(matches!(r, Response::Ok), "{r:?}");

    // Moving onto a peer's allowed IPs, or a network that does not exist, is refused.
    let r = c
        .call(Request::MoveNetwork {
            network: "service:db".into(),
            subnet: Some(subnet.clone()),
        })
        .await
        .unwrap();
    assert!(err_message(r).contains("allowed IPs of a peer"));
    let r = c
        .call(Request::MoveNetwork {
            network: "service:nosuch".into(),
            subnet: None,
        })
        .await
        .unwrap();
    assert!(matches!(
        r,
        Response::Err {
            code: Some(ErrorCode::NotFound),
            ..
        }
    ));
    let r = c
        .call(Request::MoveNetwork {
            network: "base".into(),
            subnet: None,
        })
        .await
        .unwrap();
    assert!(err_message(r).contains("--slice"));

    // A collision that is recorded (here: an isolation network given the
    // peer's subnet explicitly) is reported by list_networks, which doctor reads.
    let r = c
        .call(Request::SetupIsolationNetwork {
            network: "clash".into(),
            subnet: Some(subnet.clone()),
            internal: false,
            ipv6: false,
            subnet_v6: None,
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::IsolationNetwork { .. }), "{r:?}");
    let Response::Networks { networks } = c.call(Request::ListNetworks).await.unwrap() else {
        panic!()
    };
    let clash = networks.iter().find(|n| n.owner == "iso:clash").unwrap();
    let drift = clash.extra["drift"].as_str().unwrap_or_default();
    assert!(
        drift.contains(&subnet) && drift.contains("network move"),
        "the collision is reported as drift: {:?}",
        clash.extra
    );
}
