//! Overlay logic in process with a fake host and fake WireGuard (no root):
//! guests that run their own WireGuard, peer-health events, and the
//! dedicated port band running out.

mod support;

use std::time::{Duration, SystemTime};

use overlayd_host::Host;
use overlayd_proto::{Event, Handle, Request, Response, Scope, ServiceMode};
use support::inproc::{err_message, Instance};

const PEER: &str = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";

async fn global_up(inst: &Instance) -> String {
    let mut c = inst.client().await;
    match c
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
    }
}

#[tokio::test]
async fn guest_managed_attach_returns_a_stable_config() {
    let inst = Instance::start().await;
    let dev = global_up(&inst).await;
    let mut c = inst.client().await;
    c.call(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    })
    .await
    .unwrap();
    let node_key = match c.call(Request::Status).await.unwrap() {
        Response::Status(s) => s.public_key.unwrap(),
        r => panic!("{r:?}"),
    };
    let attach = Request::AttachContainer {
        handle: Handle::GuestManaged { id: "vm-1".into() },
        service: "web".into(),
        join_global: true,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: None,
        publish: vec![],
    };
    let first = c.call(attach.clone()).await.unwrap();
    let Response::GuestConfig {
        overlay_ip,
        public_key,
        peers,
        ..
    } = first.clone()
    else {
        panic!("{first:?}");
    };
    assert!(overlay_ip.starts_with("10.200.1."), "{overlay_ip}");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].public_key, node_key);
    assert_eq!(peers[0].allowed_ips, "10.200.0.0/16");
    assert_eq!(c.call(attach).await.unwrap(), first, "idempotent");
    let on_device: Vec<String> = inst
        .wg
        .peers(&dev)
        .iter()
        .map(|p| overlayd_wg::format_key(&p.public_key))
        .collect();
    assert_eq!(on_device, vec![public_key.clone()]);

    let detach = Request::DetachContainer {
        handle: Handle::GuestManaged { id: "vm-1".into() },
    };
    assert_eq!(c.call(detach.clone()).await.unwrap(), Response::Ok);
    assert_eq!(c.call(detach).await.unwrap(), Response::Ok);
    assert!(inst.wg.peers(&dev).is_empty(), "guest peer removed");
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn peer_health_changes_are_pushed_to_subscribers() {
    let inst = Instance::start_with(|c| c.check_interval_secs = 1).await;
    let dev = global_up(&inst).await;
    let mut c = inst.client().await;
    c.call(Request::AddPeer {
        public_key: PEER.into(),
        endpoint: "192.0.2.2:51820".into(),
        allowed_ips: "10.200.2.0/24".into(),
        persistent_keepalive_secs: 25,
        scope: Some(Scope::Global),
    })
    .await
    .unwrap();
    let mut sub = inst.client().await;
    assert_eq!(
        sub.call(Request::SubscribeEvents).await.unwrap(),
        Response::Ok
    );
    let pk = overlayd_wg::parse_public_key(PEER).unwrap();

    inst.wg.set_handshake(&dev, &pk, Some(SystemTime::now()));
    let ev = tokio::time::timeout(Duration::from_secs(10), sub.next_event())
        .await
        .expect("healthy event")
        .unwrap();
    assert_eq!(
        ev,
        Event::PeerHealthChanged {
            pubkey: PEER.into(),
            healthy: true
        }
    );

    inst.wg.set_handshake(
        &dev,
        &pk,
        Some(SystemTime::now() - Duration::from_secs(600)),
    );
    let ev = tokio::time::timeout(Duration::from_secs(10), sub.next_event())
        .await
        .expect("stale event")
        .unwrap();
    assert_eq!(
        ev,
        Event::PeerHealthChanged {
            pubkey: PEER.into(),
            healthy: false
        }
    );

    // The peer roams: nat_tick notices, records and reports it.
    inst.wg
        .set_endpoint(&dev, &pk, "192.0.2.77:40000".parse().unwrap());
    assert_eq!(c.call(Request::NatTick).await.unwrap(), Response::Ok);
    let ev = tokio::time::timeout(Duration::from_secs(10), sub.next_event())
        .await
        .expect("endpoint event")
        .unwrap();
    assert_eq!(
        ev,
        Event::NatEndpointChanged {
            pubkey: PEER.into(),
            endpoint: "192.0.2.77:40000".into()
        }
    );
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn exhausted_port_band_is_a_clear_error_and_changes_nothing() {
    let inst = Instance::start_with(|c| c.local_prefix_len = 28).await;
    let mut c = inst.client().await;
    let mut ports = std::collections::BTreeSet::new();
    for i in 0..256 {
        match c
            .call(Request::SetupServiceOverlay {
                service: format!("s{i}"),
                mode: ServiceMode::Dedicated,
                recreate: false,
            })
            .await
            .unwrap()
        {
            Response::ServiceOverlay { wg_port, .. } => {
                ports.insert(wg_port.unwrap());
            }
            r => panic!("service {i}: {r:?}"),
        }
    }
    assert_eq!(ports.len(), 256, "every port distinct");
    assert_eq!(*ports.iter().next().unwrap(), 51821);
    assert_eq!(*ports.iter().last().unwrap(), 52076);
    let marker = std::fs::read(inst.marker()).unwrap();
    let links = inst.host.links().await.unwrap();
    let msg = err_message(
        c.call(Request::SetupServiceOverlay {
            service: "one-too-many".into(),
            mode: ServiceMode::Dedicated,
            recreate: false,
        })
        .await
        .unwrap(),
    );
    assert!(msg.contains("exhausted") && msg.contains("51821"), "{msg}");
    assert_eq!(std::fs::read(inst.marker()).unwrap(), marker);
    assert_eq!(
        inst.host.links().await.unwrap(),
        links,
        "no bridge left behind"
    );

    // Releasing one makes its port the next one handed out.
    c.call(Request::TeardownServiceOverlay {
        service: "s7".into(),
    })
    .await
    .unwrap();
    match c
        .call(Request::SetupServiceOverlay {
            service: "late".into(),
            mode: ServiceMode::Dedicated,
            recreate: false,
        })
        .await
        .unwrap()
    {
        Response::ServiceOverlay { wg_port, .. } => assert_eq!(wg_port, Some(51828)),
        r => panic!("{r:?}"),
    }
    let _ = inst.shutdown().await;
}

/// A new dedicated service's WireGuard device is let through the firewall
/// by the request that makes it, not at the next periodic check (where a
/// host's own forward policy drops, its traffic would be dropped until then).
#[tokio::test]
async fn a_new_dedicated_device_is_accepted_by_the_firewall_at_once() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let r = c.call(support::requests::dedicated("db")).await.unwrap();
    assert!(matches!(r, Response::ServiceOverlay { .. }), "{r:?}");
    let device = inst.wg.devices().remove(0);
    let fw = inst.host.firewall().expect("firewall applied");
    assert!(
        fw.accept_bridges.contains(&device),
        "device {device} missing from {:?}",
        fw.accept_bridges
    );
    let _ = inst.shutdown().await;
}
