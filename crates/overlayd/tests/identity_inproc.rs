//! No routine request destroys a recorded identity (in process, fake host
//! and fake WireGuard): `auto` keeps a service's mode, an implicit mode
//! change is refused with the explicit ways to do it, and `recreate` is the
//! one named way to mint a new identity.

mod support;

use overlayd_proto::{ErrorCode, Request, Response, ServiceMode};
use support::inproc::{err_code, Instance};

fn up(service: &str, mode: ServiceMode, recreate: bool) -> Request {
    Request::SetupServiceOverlay {
        service: service.into(),
        mode,
        recreate,
    }
}

/// (mode, public key, port) of a service_overlay answer.
fn identity(r: Response) -> (String, Option<String>, Option<u16>) {
    match r {
        Response::ServiceOverlay {
            mode,
            wg_public_key,
            wg_port,
            ..
        } => (mode, wg_public_key, wg_port),
        r => panic!("expected service_overlay, got {r:?}"),
    }
}

#[tokio::test]
async fn auto_keeps_a_dedicated_service_and_an_implicit_change_is_refused() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let (_, key, port) = identity(
        c.call(up("db", ServiceMode::Dedicated, false))
            .await
            .unwrap(),
    );
    let (key, port) = (key.unwrap(), port.unwrap());
    let marker = std::fs::read(inst.marker()).unwrap();

    // `service up db` (auto) on an existing dedicated service: same identity.
    let again = identity(c.call(up("db", ServiceMode::Auto, false)).await.unwrap());
    assert_eq!(
        again,
        ("dedicated".into(), Some(key.clone()), Some(port)),
        "auto keeps the recorded mode, key and port"
    );

    // An explicit change of mode is a conflict naming the explicit ways.
    let (code, msg) = err_code(c.call(up("db", ServiceMode::Shared, false)).await.unwrap());
    assert_eq!(code, ErrorCode::Conflict, "{msg}");
    assert!(msg.contains("service db is dedicated"), "{msg}");
    assert!(msg.contains("overlayd service down db"), "{msg}");
    assert!(msg.contains("--recreate"), "{msg}");
    assert_eq!(
        std::fs::read(inst.marker()).unwrap(),
        marker,
        "the refused request changed nothing"
    );
    assert_eq!(inst.wg.devices().len(), 1, "the device is still there");
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn a_shared_service_is_not_silently_made_dedicated() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    assert_eq!(
        identity(c.call(up("web", ServiceMode::Auto, false)).await.unwrap()).0,
        "shared"
    );
    let (code, msg) = err_code(
        c.call(up("web", ServiceMode::Dedicated, false))
            .await
            .unwrap(),
    );
    assert_eq!(code, ErrorCode::Conflict, "{msg}");
    assert!(inst.wg.devices().is_empty(), "no device was created");
    assert_eq!(
        identity(
            c.call(up("web", ServiceMode::Dedicated, true))
                .await
                .unwrap()
        )
        .0,
        "dedicated",
        "recreate is the explicit way"
    );
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn recreate_mints_a_new_identity_only_when_asked() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let (_, key, _) = identity(
        c.call(up("db", ServiceMode::Dedicated, false))
            .await
            .unwrap(),
    );
    let (_, same, _) = identity(
        c.call(up("db", ServiceMode::Dedicated, false))
            .await
            .unwrap(),
    );
    assert_eq!(same, key, "a repeated setup confirms the identity");
    let (mode, fresh, port) = identity(c.call(up("db", ServiceMode::Auto, true)).await.unwrap());
    assert_eq!(mode, "dedicated");
    assert!(port.is_some());
    assert_ne!(fresh, key, "recreate mints a new key");
    assert_eq!(inst.wg.devices().len(), 1, "one device, the new one");

    // Recreate to shared removes the dedicated network.
    let (mode, k, _) = identity(c.call(up("db", ServiceMode::Shared, true)).await.unwrap());
    assert_eq!((mode.as_str(), k), ("shared", None));
    assert!(inst.wg.devices().is_empty());
    let _ = inst.shutdown().await;
}

mod netns_identity {
    use overlayd_host::fake::Call;
    use overlayd_host::NetnsTarget;
    use overlayd_proto::{ErrorCode, Handle, Request, Response, ServiceMode};

    use super::support::inproc::{err_code, Instance};

    fn attach(handle: Handle) -> Request {
        Request::AttachContainer {
            handle,
            service: "web".into(),
            join_global: false,
            dns_server: None,
            dns_domain: None,
            isolation: None,
            name: None,
            publish: Vec::new(),
        }
    }

    fn attached_ip(r: Response) -> String {
        match r {
            Response::Attached { ip, .. } => ip,
            r => panic!("expected attached, got {r:?}"),
        }
    }

    async fn web(inst: &Instance) -> overlayd_client::Client {
        let mut c = inst.client().await;
        c.call(Request::SetupServiceOverlay {
            service: "web".into(),
            mode: ServiceMode::Shared,
            recreate: false,
        })
        .await
        .unwrap();
        c
    }

    fn veths_made(inst: &Instance) -> usize {
        inst.host
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::AttachVeth(_)))
            .count()
    }

    #[tokio::test]
    async fn a_container_is_its_namespace_whatever_handle_names_it() {
        let inst = Instance::start().await;
        let mut c = web(&inst).await;
        let path = NetnsTarget::Path("/run/netns/c1".into());
        inst.host.add_live_target(path.clone());
        inst.host
            .alias_target(NetnsTarget::Path("/proc/4242/ns/net".into()), &path);
        inst.host.alias_target(NetnsTarget::Pid(4242), &path);
        let ip = attached_ip(
            c.call(attach(Handle::NetnsPath {
                path: "/run/netns/c1".into(),
            }))
            .await
            .unwrap(),
        );
        // Attaching the same namespace by PID is the same container.
        assert_eq!(
            attached_ip(
                c.call(attach(Handle::LinuxPid { pid: 4242 }))
                    .await
                    .unwrap()
            ),
            ip
        );
        assert_eq!(veths_made(&inst), 1, "one veth for one namespace");

        // Detached by /proc/PID/ns/net: the container loses eth0 and lease.
        assert_eq!(
            c.call(Request::DetachContainer {
                handle: Handle::NetnsPath {
                    path: "/proc/4242/ns/net".into(),
                },
            })
            .await
            .unwrap(),
            Response::Ok
        );
        assert!(inst.host.container_ifaces(&path).is_empty(), "eth0 removed");
        let (code, _) = err_code(
            c.call(Request::InspectAttachment {
                handle: Handle::NetnsPath {
                    path: "/run/netns/c1".into(),
                },
            })
            .await
            .unwrap(),
        );
        assert_eq!(code, ErrorCode::NotFound, "the record is gone");
        // And the original handle's detach is now an idempotent repeat.
        assert_eq!(
            c.call(Request::DetachContainer {
                handle: Handle::NetnsPath {
                    path: "/run/netns/c1".into(),
                },
            })
            .await
            .unwrap(),
            Response::Ok
        );
        let _ = inst.shutdown().await;
    }

    #[tokio::test]
    async fn a_reused_pid_is_a_different_container() {
        let inst = Instance::start().await;
        let mut c = web(&inst).await;
        let pid = NetnsTarget::Pid(100);
        inst.host.add_live_target(pid.clone());
        attached_ip(c.call(attach(Handle::LinuxPid { pid: 100 })).await.unwrap());
        assert_eq!(veths_made(&inst), 1);

        // The container exits and its PID is reused by another one.
        inst.host.renew_target(&pid);
        attached_ip(c.call(attach(Handle::LinuxPid { pid: 100 })).await.unwrap());
        assert_eq!(
            veths_made(&inst),
            2,
            "the new container gets its own veth, not the old record's answer"
        );

        // Reconcile sees the record's namespace is gone when the PID moves on.
        inst.host.renew_target(&pid);
        match c.call(Request::Reconcile).await.unwrap() {
            Response::Reconciled { reclaimed, .. } => assert_eq!(reclaimed, 1),
            r => panic!("{r:?}"),
        }
        let _ = inst.shutdown().await;
    }
}
