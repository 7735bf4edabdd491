//! Failures half-way through a request, in process with a fake host and
//! fake WireGuard that fail on demand: each request either fully happens or
//! leaves the node as it was (and never strands a resource a retry needs).

mod support;

use overlayd_host::fake::Op;
use overlayd_host::{Host, NetnsTarget};
use overlayd_proto::{Handle, Request, Response, Scope, ServiceMode};
use support::inproc::{err_message, Instance};

const PEER: &str = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";

fn global(slice: &str, port: u16) -> Request {
    Request::SetupGlobalOverlay {
        deployment: "d".into(),
        instance_id: "i".into(),
        cluster_cidr: "10.200.0.0/16".into(),
        slice_cidr: Some(slice.into()),
        wg_port: port,
        nat_enabled: false,
    }
}

fn attach(handle: Handle, service: &str, iso: Option<&str>, join_global: bool) -> Request {
    Request::AttachContainer {
        handle,
        service: service.into(),
        join_global,
        dns_server: None,
        dns_domain: None,
        isolation: iso.map(str::to_string),
        name: None,
        publish: vec![],
    }
}

fn shared(service: &str) -> Request {
    Request::SetupServiceOverlay {
        service: service.into(),
        mode: ServiceMode::Shared,
        recreate: false,
    }
}

#[tokio::test]
async fn refused_global_teardown_keeps_the_device() {
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    let mut c = inst.client().await;
    c.call(global("10.200.1.0/24", 51820)).await.unwrap();
    c.call(shared("web")).await.unwrap();
    assert!(matches!(
        c.call(attach(Handle::LinuxPid { pid: 100 }, "web", None, true))
            .await
            .unwrap(),
        Response::Attached { .. }
    ));
    let msg = err_message(c.call(Request::TeardownGlobalOverlay).await.unwrap());
    assert!(msg.contains("attached"), "{msg}");
    assert_eq!(
        inst.wg.devices().len(),
        1,
        "the node's device is still there"
    );
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn failed_slice_or_port_change_keeps_the_old_base_and_band() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(global("10.200.1.0/24", 51820)).await.unwrap();
    inst.host.fail_next(Op::CreateBridge);
    err_message(c.call(global("10.200.2.0/24", 51820)).await.unwrap());
    match c.call(Request::Status).await.unwrap() {
        Response::Status(s) => {
            assert_eq!(s.slice_cidr.as_deref(), Some("10.200.1.0/24"));
            assert!(s.interface.is_some() && s.node_ip.is_some(), "{s:?}");
        }
        r => panic!("{r:?}"),
    }
    inst.host.fail_next(Op::SetUp);
    err_message(c.call(global("10.200.1.0/24", 60000)).await.unwrap());
    match c
        .call(Request::SetupServiceOverlay {
            service: "db".into(),
            mode: ServiceMode::Dedicated,
            recreate: false,
        })
        .await
        .unwrap()
    {
        Response::ServiceOverlay { wg_port, .. } => assert_eq!(wg_port, Some(51821)),
        r => panic!("{r:?}"),
    }
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn a_failed_repeat_guest_attach_keeps_its_lease_and_routes_follow_the_guest() {
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    let mut c = inst.client().await;
    c.call(global("10.200.1.0/24", 51820)).await.unwrap();
    c.call(shared("web")).await.unwrap();
    let guest = attach(
        Handle::GuestManaged { id: "vm-1".into() },
        "web",
        None,
        true,
    );
    let Response::GuestConfig { overlay_ip, .. } = c.call(guest.clone()).await.unwrap() else {
        panic!("no guest config");
    };
    let host_route: ipnet::IpNet = format!("{overlay_ip}/32").parse().unwrap();
    assert!(
        inst.host.routes().iter().any(|(d, _)| *d == host_route),
        "guest route added: {:?}",
        inst.host.routes()
    );
    inst.wg.fail_next_set_peer();
    err_message(c.call(guest).await.unwrap());
    match c
        .call(attach(Handle::LinuxPid { pid: 100 }, "web", None, true))
        .await
        .unwrap()
    {
        Response::Attached { ip, .. } => assert_ne!(ip, overlay_ip, "no address given twice"),
        r => panic!("{r:?}"),
    }
    c.call(Request::DetachContainer {
        handle: Handle::GuestManaged { id: "vm-1".into() },
    })
    .await
    .unwrap();
    assert!(
        !inst.host.routes().iter().any(|(d, _)| *d == host_route),
        "guest route removed"
    );
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn add_peer_failing_on_a_route_leaves_no_peer() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let dev = match c.call(global("10.200.1.0/24", 51820)).await.unwrap() {
        Response::BridgeName { name } => name,
        r => panic!("{r:?}"),
    };
    inst.host.fail_next(Op::AddRoute);
    err_message(
        c.call(Request::AddPeer {
            public_key: PEER.into(),
            endpoint: "192.0.2.2:51820".into(),
            allowed_ips: "10.200.2.0/24".into(),
            persistent_keepalive_secs: 0,
            scope: Some(Scope::Global),
        })
        .await
        .unwrap(),
    );
    assert!(inst.wg.peers(&dev).is_empty(), "no peer left on the device");
    match c.call(Request::Status).await.unwrap() {
        Response::Status(s) => assert_eq!(s.peer_count, 0),
        r => panic!("{r:?}"),
    }
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn failed_network_setup_leaves_no_bridge_and_a_retry_works() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let before = inst.host.links().await.unwrap();
    inst.host.fail_next(Op::AddAddress);
    err_message(c.call(support::requests::iso("a")).await.unwrap());
    assert_eq!(
        inst.host.links().await.unwrap(),
        before,
        "no bridge left behind"
    );
    assert!(matches!(
        c.call(support::requests::iso("a")).await.unwrap(),
        Response::IsolationNetwork { .. }
    ));
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn unknown_service_is_refused_on_isolation_networks_too() {
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    let mut c = inst.client().await;
    c.call(support::requests::iso("a")).await.unwrap();
    let msg = err_message(
        c.call(attach(
            Handle::LinuxPid { pid: 100 },
            "nosuch",
            Some("a"),
            false,
        ))
        .await
        .unwrap(),
    );
    assert!(msg.contains("unknown service"), "{msg}");
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn lost_marker_on_a_rebooted_host_brings_overlays_back_with_their_identity() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(global("10.200.1.0/24", 51820)).await.unwrap();
    let (key, port) = match c
        .call(Request::SetupServiceOverlay {
            service: "db".into(),
            mode: ServiceMode::Dedicated,
            recreate: false,
        })
        .await
        .unwrap()
    {
        Response::ServiceOverlay {
            wg_public_key,
            wg_port,
            ..
        } => (wg_public_key.unwrap(), wg_port.unwrap()),
        r => panic!("{r:?}"),
    };
    drop(c);
    // A reboot takes every link away; the marker is lost too.
    let marker = inst.marker();
    let host = inst.host.clone();
    let inst = {
        let dir_marker = marker.clone();
        let inst = inst;
        // Stop first so nothing rewrites the marker.
        let (cfg, wg) = (inst.cfg.clone(), inst.wg.clone());
        let dir = inst.shutdown().await;
        for l in host.links().await.unwrap() {
            if l.alias.is_some() {
                host.delete_link(&l.name).await.unwrap();
            }
        }
        for d in wg.devices() {
            overlayd_wg::WgBackend::delete(wg.as_ref(), &d).unwrap();
        }
        std::fs::remove_file(&dir_marker).unwrap();
        Instance::relaunch(dir, cfg, host.clone(), wg).await
    };
    let mut c = inst.client().await;
    match c.call(Request::Status).await.unwrap() {
        Response::Status(s) => {
            assert_eq!(s.slice_cidr.as_deref(), Some("10.200.1.0/24"));
            assert_eq!(
                s.node_ip.as_deref(),
                Some("10.200.1.1"),
                "base rebuilt on the slice"
            );
            let db = &s.dedicated_services.unwrap()[0];
            assert_eq!((db.public_key.clone(), db.listen_port), (key, port));
        }
        r => panic!("{r:?}"),
    }
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn a_failed_device_delete_does_not_stop_the_bridge_delete_and_a_retry_finishes() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(Request::SetupServiceOverlay {
        service: "db".into(),
        mode: ServiceMode::Dedicated,
        recreate: false,
    })
    .await
    .unwrap();
    let bridges = |h: &overlayd_host::FakeHost| {
        futures::executor::block_on(h.links())
            .unwrap()
            .into_iter()
            .filter(|l| l.kind == overlayd_host::LinkKind::Bridge)
            .count()
    };
    assert_eq!(bridges(&inst.host), 1);
    inst.wg.fail_next_delete();
    let msg = err_message(
        c.call(Request::TeardownServiceOverlay {
            service: "db".into(),
        })
        .await
        .unwrap(),
    );
    assert!(msg.contains("WireGuard device"), "{msg}");
    assert_eq!(
        bridges(&inst.host),
        0,
        "the bridge was deleted although the device delete failed"
    );
    assert_eq!(inst.wg.devices().len(), 1, "the device that failed stays");
    assert_eq!(
        c.call(Request::TeardownServiceOverlay {
            service: "db".into(),
        })
        .await
        .unwrap(),
        Response::Ok,
        "the entry stayed recorded, so the retry finishes"
    );
    assert!(inst.wg.devices().is_empty());
    let _ = inst.shutdown().await;
}
