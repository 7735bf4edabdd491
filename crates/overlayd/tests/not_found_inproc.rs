//! Unknown targets are errors, never `ok` (in process, fake host and fake
//! WireGuard): teardown of a service, isolation network, DNS name, peer or
//! container that never existed answers `not_found` (with "did you mean"
//! for a close name); a second teardown of something that existed answers
//! `ok`.

mod support;

use overlayd_proto::{ErrorCode, Handle, Request, Response, Scope, ServiceMode};
use support::inproc::{err_code, Instance};

const PEER: &str = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";

async fn not_found(c: &mut overlayd_client::Client, r: Request) -> String {
    let (code, msg) = err_code(c.call(r).await.unwrap());
    assert_eq!(code, ErrorCode::NotFound, "{msg}");
    msg
}

#[tokio::test]
async fn unknown_services_and_isolation_networks_are_not_found() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let down = |s: &str| Request::TeardownServiceOverlay { service: s.into() };
    let msg = not_found(&mut c, down("nosuch")).await;
    assert!(msg.contains("\"nosuch\" does not exist"), "{msg}");
    c.call(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    })
    .await
    .unwrap();
    let msg = not_found(&mut c, down("wbe")).await;
    assert!(msg.contains("did you mean \"web\""), "{msg}");
    assert_eq!(c.call(down("web")).await.unwrap(), Response::Ok);
    assert_eq!(
        c.call(down("web")).await.unwrap(),
        Response::Ok,
        "a second teardown of a service that existed is idempotent"
    );

    let iso_down = |n: &str| Request::TeardownIsolationNetwork { network: n.into() };
    not_found(&mut c, iso_down("nosuch")).await;
    c.call(support::requests::iso("front")).await.unwrap();
    let msg = not_found(&mut c, iso_down("frnt")).await;
    assert!(msg.contains("did you mean \"front\""), "{msg}");
    assert_eq!(c.call(iso_down("front")).await.unwrap(), Response::Ok);
    assert_eq!(c.call(iso_down("front")).await.unwrap(), Response::Ok);

    // Set up again and removed again: still fine; a typo still is not.
    c.call(support::requests::iso("front")).await.unwrap();
    assert_eq!(c.call(iso_down("front")).await.unwrap(), Response::Ok);
    not_found(&mut c, iso_down("nosuch")).await;
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn unknown_dns_names_handles_and_peers_are_not_found() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let rm = |n: &str| Request::UnregisterDns {
        name: n.into(),
        force: false,
    };
    not_found(&mut c, rm("nosuch")).await;
    c.call(Request::RegisterDns {
        name: "web1".into(),
        ip: "10.201.0.5".into(),
    })
    .await
    .unwrap();
    let msg = not_found(&mut c, rm("web2")).await;
    assert!(msg.contains("did you mean \"web1"), "{msg}");
    assert_eq!(c.call(rm("web1")).await.unwrap(), Response::Ok);
    assert_eq!(c.call(rm("web1")).await.unwrap(), Response::Ok);

    let msg = not_found(
        &mut c,
        Request::DetachContainer {
            handle: Handle::LinuxPid { pid: 999_999 },
        },
    )
    .await;
    assert!(msg.contains("pid:999999"), "{msg}");

    c.call(Request::SetupGlobalOverlay {
        deployment: "d".into(),
        instance_id: "i".into(),
        cluster_cidr: "10.200.0.0/16".into(),
        slice_cidr: Some("10.200.1.0/24".into()),
        wg_port: 51820,
        nat_enabled: false,
    })
    .await
    .unwrap();
    not_found(
        &mut c,
        Request::RemovePeer {
            pubkey: PEER.into(),
            scope: Some(Scope::Global),
        },
    )
    .await;
    let _ = inst.shutdown().await;
}
