//! Valid-looking requests never damage the host (in process, fake host with
//! an uplink 192.168.77.1/24 and a default gateway 192.168.77.254): every
//! CIDR given to overlayd is checked against the host's own networks and
//! the special ranges, and strings that end up in files or records are
//! validated, each refused with the rule it breaks and nothing changed.

mod support;

use overlayd_host::{Host, LinkKind, Uplink};
use overlayd_proto::{ErrorCode, Handle, Request, Response, Scope, ServiceMode};
use support::inproc::{err_code, Instance};

const PEER: &str = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";

async fn with_uplink() -> Instance {
    let inst = Instance::start().await;
    let l = inst.host.insert_link("eth0", LinkKind::Unknown, None);
    inst.host
        .add_address("eth0", "192.168.77.1/24".parse().unwrap())
        .await
        .unwrap();
    inst.host.set_uplink(Some(Uplink {
        name: "eth0".into(),
        index: l.index,
        mtu: 1500,
        ipv4: Some("192.168.77.1".parse().unwrap()),
        gateway: Some("192.168.77.254".parse().unwrap()),
    }));
    inst
}

fn global(cluster: &str, slice: &str) -> Request {
    Request::SetupGlobalOverlay {
        deployment: "d".into(),
        instance_id: "i".into(),
        cluster_cidr: cluster.into(),
        slice_cidr: Some(slice.into()),
        wg_port: 51820,
        nat_enabled: false,
    }
}

fn peer(key: &str, endpoint: &str, allowed: &str) -> Request {
    Request::AddPeer {
        public_key: key.into(),
        endpoint: endpoint.into(),
        allowed_ips: allowed.into(),
        persistent_keepalive_secs: 0,
        scope: Some(Scope::Global),
    }
}

async fn refused(c: &mut overlayd_client::Client, r: Request) -> (ErrorCode, String) {
    let (code, msg) = err_code(c.call(r).await.unwrap());
    assert!(
        matches!(code, ErrorCode::Invalid | ErrorCode::Conflict),
        "{code:?}: {msg}"
    );
    (code, msg)
}

#[tokio::test]
async fn cidrs_overlapping_the_host_or_special_ranges_are_refused() {
    let inst = with_uplink().await;
    let mut c = inst.client().await;
    let routes = inst.host.routes();

    let (_, msg) = refused(&mut c, global("0.0.0.0/0", "10.200.1.0/24")).await;
    assert!(msg.contains("default route"), "{msg}");
    let (code, msg) = refused(&mut c, global("192.168.0.0/16", "192.168.77.0/24")).await;
    assert_eq!(code, ErrorCode::Conflict);
    assert!(msg.contains("eth0"), "the conflict is named: {msg}");
    assert_eq!(inst.host.routes(), routes, "no route touched");
    assert!(inst.wg.devices().is_empty(), "nothing created");

    for (subnet, what) in [
        ("192.168.77.0/24", "eth0"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/24", "multicast"),
    ] {
        let (_, msg) = refused(
            &mut c,
            Request::SetupIsolationNetwork {
                network: "x".into(),
                subnet: Some(subnet.into()),
                internal: false,
                ipv6: false,
                subnet_v6: None,
            },
        )
        .await;
        assert!(msg.contains(what), "{subnet}: {msg}");
    }

    c.call(global("10.200.0.0/16", "10.200.1.0/24"))
        .await
        .unwrap();
    let routes = inst.host.routes();
    for allowed in [
        "192.168.77.0/24",
        "192.168.77.254/32",
        "127.0.0.0/8",
        "0.0.0.0/0",
    ] {
        refused(&mut c, peer(PEER, "192.0.2.2:51820", allowed)).await;
    }
    assert_eq!(inst.host.routes(), routes, "the uplink route is untouched");
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn strings_and_keys_are_validated_with_the_rule_they_break() {
    let inst = with_uplink().await;
    let mut c = inst.client().await;
    c.call(global("10.200.0.0/16", "10.200.1.0/24"))
        .await
        .unwrap();
    let (_, msg) = refused(&mut c, peer(PEER, "192.0.2.2:0", "10.200.2.0/24")).await;
    assert!(msg.contains("port 0"), "{msg}");
    let own = match c.call(Request::Status).await.unwrap() {
        Response::Status(s) => s.public_key.unwrap(),
        r => panic!("{r:?}"),
    };
    let (_, msg) = refused(&mut c, peer(&own, "192.0.2.2:51820", "10.200.2.0/24")).await;
    assert!(msg.contains("own key"), "{msg}");

    c.call(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    })
    .await
    .unwrap();
    inst.host
        .add_live_target(overlayd_host::NetnsTarget::Pid(100));
    let (_, msg) = refused(
        &mut c,
        Request::AttachContainer {
            handle: Handle::LinuxPid { pid: 100 },
            service: "web".into(),
            join_global: false,
            dns_server: None,
            dns_domain: Some("overlay.internal\noptions ndots:15".into()),
            isolation: None,
            name: None,
            publish: Vec::new(),
        },
    )
    .await;
    assert!(msg.contains("dns_domain"), "{msg}");
    assert!(
        inst.host
            .container_ifaces(&overlayd_host::NetnsTarget::Pid(100))
            .is_empty(),
        "nothing attached"
    );
    let _ = inst.shutdown().await;
}
