//! Several networks per container, in process with a fake host: `connect`
//! gives a further network its own interface, lease and DNS names without
//! a default route; repeats are idempotent; `disconnect` removes just that
//! one; `detach` removes them all; a restart keeps them.

mod support;

use overlayd_host::NetnsTarget;
use overlayd_proto::{ErrorCode, Handle, Request, Response, ServiceMode};
use support::inproc::{err_code, Instance};

const PID: u32 = 100;

fn handle() -> Handle {
    Handle::LinuxPid { pid: PID }
}

fn connect(network: &str, ifname: Option<&str>) -> Request {
    Request::ConnectContainer {
        handle: handle(),
        network: network.into(),
        ifname: ifname.map(str::to_string),
        name: None,
    }
}

fn disconnect(network: &str) -> Request {
    Request::DisconnectContainer {
        handle: handle(),
        network: network.into(),
    }
}

fn ip(r: Response) -> String {
    match r {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    }
}

/// (ifname, address, gateway) of every interface in the container, sorted.
fn ifaces(inst: &Instance) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = inst
        .host
        .container_ifaces(&NetnsTarget::Pid(PID))
        .into_iter()
        .map(|i| (i.ifname, i.address.to_string(), i.gateway.is_some()))
        .collect();
    v.sort();
    v
}

async fn setup(inst: &Instance) -> overlayd_client::Client {
    inst.host.add_live_target(NetnsTarget::Pid(PID));
    let mut c = inst.client().await;
    for r in [
        Request::SetupServiceOverlay {
            service: "web".into(),
            mode: ServiceMode::Shared,
            recreate: false,
        },
        Request::SetupIsolationNetwork {
            network: "red".into(),
            subnet: Some("10.210.7.0/24".into()),
            internal: false,
            ipv6: false,
            subnet_v6: None,
        },
        Request::SetupIsolationNetwork {
            network: "blue".into(),
            subnet: Some("10.210.8.0/24".into()),
            internal: false,
            ipv6: false,
            subnet_v6: None,
        },
    ] {
        let a = c.call(r).await.unwrap();
        assert!(!matches!(a, Response::Err { .. }), "{a:?}");
    }
    c
}

#[tokio::test]
async fn connect_disconnect_and_detach_every_network() {
    let inst = Instance::start().await;
    let mut c = setup(&inst).await;

    // Not attached yet: nothing to connect.
    let (code, msg) = err_code(c.call(connect("red", None)).await.unwrap());
    assert_eq!(code, ErrorCode::NotFound, "{msg}");

    let first = ip(c
        .call(Request::AttachContainer {
            handle: handle(),
            service: "web".into(),
            join_global: false,
            dns_server: None,
            dns_domain: None,
            isolation: None,
            name: Some("c1".into()),
            publish: Vec::new(),
        })
        .await
        .unwrap());
    let red = ip(c.call(connect("red", None)).await.unwrap());
    assert!(red.starts_with("10.210.7."), "{red}");
    let blue = ip(c.call(connect("iso:blue", Some("net9"))).await.unwrap());
    assert!(blue.starts_with("10.210.8."), "{blue}");
    assert_eq!(
        ifaces(&inst),
        vec![
            ("eth0".to_string(), format!("{first}/24"), true),
            ("eth1".to_string(), format!("{red}/24"), false),
            ("net9".to_string(), format!("{blue}/24"), false),
        ],
        "own interface per network; the default route stays on the first"
    );

    // Idempotent; a different name for the same network is refused.
    assert_eq!(ip(c.call(connect("red", None)).await.unwrap()), red);
    let (code, msg) = err_code(c.call(connect("red", Some("eth5"))).await.unwrap());
    assert_eq!(code, ErrorCode::Conflict, "{msg}");
    // The first network is not connected again; unknown networks are not found.
    let (code, _) = err_code(c.call(connect("shared-nat", None)).await.unwrap());
    assert_eq!(code, ErrorCode::Conflict);
    let (code, _) = err_code(c.call(connect("green", None)).await.unwrap());
    assert_eq!(code, ErrorCode::NotFound);

    // Each (container, network) has its own DNS name entry.
    match c.call(Request::ListDnsRecords).await.unwrap() {
        Response::DnsRecords { records, .. } => {
            let c1 = records
                .iter()
                .find(|r| r.name.starts_with("c1."))
                .expect("c1 registered");
            let mut ips = c1.ips.clone();
            ips.sort();
            let mut want = vec![first.clone(), red.clone(), blue.clone()];
            want.sort();
            assert_eq!(ips, want);
        }
        r => panic!("{r:?}"),
    }
    // ps lists one row per network.
    match c.call(Request::ListAttachments).await.unwrap() {
        Response::Attachments { attachments } => {
            let keys: Vec<&str> = attachments.iter().map(|a| a.key.as_str()).collect();
            assert_eq!(
                keys,
                vec!["pid:100", "pid:100@iso:blue", "pid:100@iso:red"],
                "{attachments:?}"
            );
        }
        r => panic!("{r:?}"),
    }
    // A network with a connected member is not torn down.
    let (code, _) = err_code(
        c.call(Request::TeardownIsolationNetwork {
            network: "red".into(),
        })
        .await
        .unwrap(),
    );
    assert_eq!(code, ErrorCode::Conflict);

    // Disconnect removes just that network; repeating it is ok.
    assert_eq!(c.call(disconnect("red")).await.unwrap(), Response::Ok);
    assert_eq!(c.call(disconnect("red")).await.unwrap(), Response::Ok);
    let names: Vec<String> = ifaces(&inst).into_iter().map(|i| i.0).collect();
    assert_eq!(names, vec!["eth0", "net9"]);
    let (code, _) = err_code(c.call(disconnect("shared-nat")).await.unwrap());
    assert_eq!(
        code,
        ErrorCode::Conflict,
        "the first network goes with detach"
    );

    // Survives a restart.
    let dir = inst._dir;
    let (cfg, host, wg) = (inst.cfg.clone(), inst.host.clone(), inst.wg.clone());
    drop(c);
    let mut sc = overlayd_client::Client::connect(&cfg.socket).await.unwrap();
    assert_eq!(sc.call(Request::Shutdown).await.unwrap(), Response::Ok);
    inst.task.await.unwrap().unwrap();
    let inst = Instance::relaunch(dir, cfg, host, wg).await;
    let mut c = inst.client().await;
    assert_eq!(ip(c.call(connect("blue", None)).await.unwrap()), blue);
    assert_eq!(ifaces(&inst).len(), 2);

    // Detach removes every network, and their leases: both are prunable.
    assert_eq!(
        c.call(Request::DetachContainer { handle: handle() })
            .await
            .unwrap(),
        Response::Ok
    );
    assert!(ifaces(&inst).is_empty(), "{:?}", ifaces(&inst));
    match c.call(Request::ListAttachments).await.unwrap() {
        Response::Attachments { attachments } => assert!(attachments.is_empty()),
        r => panic!("{r:?}"),
    }
    match c
        .call(Request::PruneNetworks {
            include_dedicated: false,
        })
        .await
        .unwrap()
    {
        Response::Pruned { networks, .. } => assert_eq!(networks, vec!["blue", "red"]),
        r => panic!("{r:?}"),
    }
}

/// The next event on a subscribed stream (responses are skipped).
async fn next_event(s: &mut tokio::net::UnixStream) -> overlayd_proto::Event {
    use overlayd_proto::{decode_frame, read_frame, Frame};
    loop {
        let body = tokio::time::timeout(std::time::Duration::from_secs(5), read_frame(s))
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("stream open");
        if let Ok(Frame::Event(event)) = decode_frame(&body) {
            return event;
        }
    }
}

#[tokio::test]
async fn connect_and_disconnect_are_announced_with_the_network_key() {
    use overlayd_proto::{encode_frame, write_frame, Event, Frame};
    let inst = Instance::start().await;
    let mut c = setup(&inst).await;
    ip(c.call(Request::AttachContainer {
        handle: handle(),
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: None,
        publish: Vec::new(),
    })
    .await
    .unwrap());
    let mut s = tokio::net::UnixStream::connect(&inst.cfg.socket)
        .await
        .unwrap();
    let sub = encode_frame(&Frame::Request {
        id: 1,
        request: Request::SubscribeEvents,
    });
    write_frame(&mut s, &sub).await.unwrap();
    let red = ip(c.call(connect("red", None)).await.unwrap());
    match next_event(&mut s).await {
        Event::ContainerAttached {
            key, network, ip, ..
        } => {
            assert_eq!(
                (key.as_str(), network.as_str(), ip),
                ("pid:100@iso:red", "iso:red", red)
            );
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(c.call(disconnect("red")).await.unwrap(), Response::Ok);
    match next_event(&mut s).await {
        Event::ContainerDetached { key, network } => {
            assert_eq!(
                (key.as_str(), network.as_str()),
                ("pid:100@iso:red", "iso:red")
            );
        }
        e => panic!("{e:?}"),
    }
}
