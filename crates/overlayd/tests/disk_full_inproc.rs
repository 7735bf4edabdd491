//! A full disk, in process with the fake host: a request the store cannot
//! record is refused and changes nothing on the host (a refused detach keeps
//! the container's veth, a refused attach creates none), and once space is
//! back the daemon accepts changes again without a restart. The disk is
//! "full" through `RLIMIT_FSIZE` (EFBIG on every file write of this process),
//! so this test lives alone in its own binary.

mod support;

use overlayd_host::{Host, NetnsTarget};
use overlayd_proto::{Handle, Request, Response, ServiceMode};
use support::inproc::{err_message, Instance};

fn set_fsize_limit(bytes: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
}

fn attach(pid: u32) -> Request {
    Request::AttachContainer {
        handle: Handle::LinuxPid { pid },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: Some(format!("c{pid}")),
        publish: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_change_nothing_and_the_store_recovers_without_restart() {
    // SAFETY: over-limit writes then fail with EFBIG instead of killing us.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(400));
    inst.host.add_live_target(NetnsTarget::Pid(401));
    let mut c = inst.client().await;
    c.call(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    })
    .await
    .unwrap();
    assert!(matches!(
        c.call(attach(400)).await.unwrap(),
        Response::Attached { .. }
    ));
    let veth_of = |pid: u32| inst.host.container_ifaces(&NetnsTarget::Pid(pid));
    let host_if = veth_of(400)[0].host_ifname.clone();

    set_fsize_limit(1); // the disk is full
    let msg = err_message(
        c.call(Request::DetachContainer {
            handle: Handle::LinuxPid { pid: 400 },
        })
        .await
        .unwrap(),
    );
    println!("detach on a full disk: {msg}");
    assert!(
        inst.host.link(&host_if).await.unwrap().is_some(),
        "refused detach kept the veth"
    );
    assert_eq!(veth_of(400).len(), 1);
    let msg = err_message(c.call(attach(401)).await.unwrap());
    println!("attach on a full disk: {msg}");
    assert!(veth_of(401).is_empty(), "refused attach created no veth");
    // `status` tells the truth: it answers, or says the store is unusable.
    match c.call(Request::Status).await.unwrap() {
        Response::Status(_) => {}
        Response::Err { message, .. } => {
            assert!(message.contains("state store"), "{message}")
        }
        r => panic!("{r:?}"),
    }

    set_fsize_limit(libc::RLIM_INFINITY); // space freed
    assert_eq!(
        c.call(Request::DetachContainer {
            handle: Handle::LinuxPid { pid: 400 },
        })
        .await
        .unwrap(),
        Response::Ok,
        "the store accepts changes again without a restart"
    );
    assert!(inst.host.link(&host_if).await.unwrap().is_none());
    assert!(matches!(
        c.call(attach(401)).await.unwrap(),
        Response::Attached { .. }
    ));
    let _ = inst.shutdown().await;
}
