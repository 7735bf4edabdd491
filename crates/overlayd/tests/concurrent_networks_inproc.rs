//! Network requests meeting a container request whose veth work is in
//! flight (node lock released): while an attach is in the kernel (record
//! `attaching`), tearing down, moving or recreating its network is refused
//! (`conflict`: a container is on it) and the attach completes; while the
//! network's last container is being detached, a teardown answers
//! `unavailable` (retry) and succeeds once the detach is done (in process,
//! fake host).

mod support;

use std::time::Duration;

use overlayd_host::{NetnsTarget, Op};
use overlayd_proto::{ErrorCode, Request, Response, ServiceMode};
use support::inproc::{err_code, Instance};

async fn refused_while_in_flight(service: &str, iso: Option<&str>, reqs: Vec<(&str, Request)>) {
    let inst = Instance::start().await;
    inst.ok_all([
        support::requests::iso("a"),
        support::requests::dedicated("db"),
        support::requests::shared("web"),
    ])
    .await;
    let mut c = inst.client().await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    inst.host.stall_next(Op::AttachVeth, Duration::from_secs(3));
    let task = inst
        .spawn_call(support::requests::attach_pid(100, service, iso, None))
        .await;
    inst.until_stalled().await;
    for (label, r) in reqs {
        let resp = c.call(r).await.unwrap();
        match &resp {
            Response::Err { code, .. } => {
                assert_eq!(*code, Some(ErrorCode::Conflict), "{label}: {resp:?}")
            }
            _ => panic!("{label} went ahead under an attach in flight: {resp:?}"),
        }
    }
    let r = task.await.unwrap();
    assert!(matches!(r, Response::Attached { .. }), "{r:?}");
    let _ = inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_requests_are_refused_while_an_attach_is_in_flight() {
    refused_while_in_flight(
        "web",
        Some("a"),
        vec![
            (
                "teardown iso",
                Request::TeardownIsolationNetwork {
                    network: "a".into(),
                },
            ),
            (
                "move iso",
                Request::MoveNetwork {
                    network: "iso:a".into(),
                    subnet: Some("10.201.9.0/24".into()),
                },
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_requests_are_refused_while_an_attach_is_in_flight() {
    refused_while_in_flight(
        "db",
        None,
        vec![
            (
                "teardown db",
                Request::TeardownServiceOverlay {
                    service: "db".into(),
                },
            ),
            (
                "recreate db",
                Request::SetupServiceOverlay {
                    service: "db".into(),
                    mode: ServiceMode::Dedicated,
                    recreate: true,
                },
            ),
            (
                "db to shared",
                Request::SetupServiceOverlay {
                    service: "db".into(),
                    mode: ServiceMode::Shared,
                    recreate: true,
                },
            ),
            (
                "move db",
                Request::MoveNetwork {
                    network: "service:db".into(),
                    subnet: Some("10.201.8.0/24".into()),
                },
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_requests_are_refused_while_an_attach_is_in_flight() {
    refused_while_in_flight(
        "web",
        None,
        vec![
            (
                "teardown web",
                Request::TeardownServiceOverlay {
                    service: "web".into(),
                },
            ),
            (
                "web to dedicated",
                Request::SetupServiceOverlay {
                    service: "web".into(),
                    mode: ServiceMode::Dedicated,
                    recreate: true,
                },
            ),
        ],
    )
    .await;
}

/// While the network's last container is being detached (its record
/// `detaching`, the veth deletion in flight), a teardown is asked to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teardown_during_the_last_detach_answers_retry_and_then_succeeds() {
    let inst = Instance::start().await;
    inst.ok_all([
        support::requests::iso("a"),
        support::requests::shared("web"),
    ])
    .await;
    let mut c = inst.client().await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    let r = c
        .call(support::requests::attach_pid(100, "web", Some("a"), None))
        .await
        .unwrap();
    assert!(matches!(r, Response::Attached { .. }), "{r:?}");
    inst.host.stall_next(Op::DetachVeth, Duration::from_secs(3));
    let task = inst
        .spawn_call(Request::DetachContainer {
            handle: overlayd_proto::Handle::LinuxPid { pid: 100 },
        })
        .await;
    inst.until_stalled().await;
    let r = c
        .call(Request::TeardownIsolationNetwork {
            network: "a".into(),
        })
        .await
        .unwrap();
    let (code, message) = err_code(r);
    assert_eq!(
        code,
        ErrorCode::Unavailable,
        "a detach is under way: retry later, not 'detach them first': {message}"
    );
    assert_eq!(task.await.unwrap(), Response::Ok);
    // The retry the answer asked for goes through.
    let r = c
        .call(Request::TeardownIsolationNetwork {
            network: "a".into(),
        })
        .await
        .unwrap();
    assert_eq!(r, Response::Ok);
    let _ = inst.shutdown().await;
}
