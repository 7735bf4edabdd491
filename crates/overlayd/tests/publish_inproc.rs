//! Published ports and internal networks, in process with a fake host:
//! what is recorded, what the firewall is told (one element update per
//! attach), conflicts refused naming the holder, detach, restart and drift.

mod support;

use std::time::Duration;

use overlayd_host::fake::Call;
use overlayd_host::{L4Proto, NetnsTarget, PublishedPort};
use overlayd_proto::{Handle, PortMapping, Request, Response, ServiceMode};
use support::inproc::{err_message, Instance};

fn attach(pid: u32, iso: Option<&str>, publish: &[&str]) -> Request {
    Request::AttachContainer {
        handle: Handle::LinuxPid { pid },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: iso.map(str::to_string),
        name: Some(format!("c{pid}")),
        publish: publish.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

fn shared() -> Request {
    Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    }
}

fn published(inst: &Instance) -> Vec<PublishedPort> {
    inst.host
        .firewall()
        .map(|f| f.published)
        .unwrap_or_default()
}

fn attached_ip(r: Response) -> String {
    match r {
        Response::Attached { ip, .. } => ip,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn attach_publishes_with_one_element_update_and_detach_removes_them() {
    let inst = Instance::start().await;
    for pid in [100, 101] {
        inst.host.add_live_target(NetnsTarget::Pid(pid));
    }
    let mut c = inst.client().await;
    c.call(shared()).await.unwrap();
    inst.host.clear_calls();
    let ip = attached_ip(
        c.call(attach(100, None, &["8080:80", "127.0.0.1:5353:53/udp"]))
            .await
            .unwrap(),
    );
    let updates: Vec<Call> = inst
        .host
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::UpdatePublished { .. } | Call::ApplyFirewall(_)))
        .collect();
    assert_eq!(
        updates.len(),
        1,
        "one element update, no rebuild: {updates:?}"
    );
    let ports = published(&inst);
    assert_eq!(ports.len(), 2, "{ports:?}");
    let udp = ports.iter().find(|p| p.protocol == L4Proto::Udp).unwrap();
    assert_eq!(udp.host_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(udp.container_ip.to_string(), ip);
    assert_eq!((udp.host_port, udp.container_port), (5353, 53));
    let bridge = udp.bridge.clone();
    assert_eq!(inst.host.route_localnet(), vec![bridge.clone()]);
    // `ps` (list_attachments) shows the container's published ports.
    match c.call(Request::ListAttachments).await.unwrap() {
        Response::Attachments { attachments } => {
            let shown: Vec<String> = attachments[0].ports.iter().map(|p| p.to_string()).collect();
            assert_eq!(
                shown,
                vec!["8080:80/tcp", "127.0.0.1:5353:53/udp"],
                "{attachments:?}"
            );
        }
        r => panic!("{r:?}"),
    }

    // The same port for another container is refused, naming the holder;
    // nothing of the second container is left behind.
    let msg = err_message(c.call(attach(101, None, &["8080:8080"])).await.unwrap());
    assert!(msg.contains("pid:100") && msg.contains("c100"), "{msg}");
    assert!(msg.contains("8080"), "{msg}");
    assert_eq!(published(&inst).len(), 2);
    let msg = err_message(
        c.call(Request::InspectAttachment {
            handle: Handle::LinuxPid { pid: 101 },
        })
        .await
        .unwrap(),
    );
    assert!(msg.contains("not attached"), "{msg}");
    // A loopback-only publish also clashes with an every-address one.
    let msg = err_message(
        c.call(attach(101, None, &["127.0.0.1:8080:80"]))
            .await
            .unwrap(),
    );
    assert!(msg.contains("pid:100"), "{msg}");
    // A host range takes its first free port.
    attached_ip(
        c.call(attach(
            101,
            None,
            &["8080-8082:80", "127.0.0.2:5353:53/udp"],
        ))
        .await
        .unwrap(),
    );
    let ports = published(&inst);
    assert!(
        ports
            .iter()
            .any(|p| p.host_port == 8081 && p.protocol == L4Proto::Tcp),
        "{ports:?}"
    );

    // A repeated attach asking for other ports is refused.
    let msg = err_message(c.call(attach(100, None, &["9090:80"])).await.unwrap());
    assert!(msg.contains("already attached publishing"), "{msg}");
    // The same request again is idempotent.
    attached_ip(
        c.call(attach(100, None, &["8080:80", "127.0.0.1:5353:53/udp"]))
            .await
            .unwrap(),
    );

    c.call(Request::DetachContainer {
        handle: Handle::LinuxPid { pid: 100 },
    })
    .await
    .unwrap();
    let ports = published(&inst);
    assert!(ports.iter().all(|p| p.host_port != 8080), "{ports:?}");
    assert_eq!(
        inst.host.route_localnet(),
        vec![bridge],
        "still needed by 127.0.0.2"
    );
    c.call(Request::DetachContainer {
        handle: Handle::LinuxPid { pid: 101 },
    })
    .await
    .unwrap();
    assert!(published(&inst).is_empty());
    assert!(inst.host.route_localnet().is_empty());
}

#[tokio::test]
async fn bad_publish_requests_change_nothing() {
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    let mut c = inst.client().await;
    c.call(shared()).await.unwrap();
    let bad = |m: PortMapping| Request::AttachContainer {
        handle: Handle::LinuxPid { pid: 100 },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: None,
        publish: vec![m],
    };
    for (m, why) in [
        (PortMapping::tcp(0, 80), "port 0"),
        (
            PortMapping {
                host_ip: Some("fd00::1".into()),
                ..PortMapping::tcp(80, 80)
            },
            "different IP families",
        ),
        (
            PortMapping {
                host_port_end: Some(81),
                container_port_end: Some(90),
                ..PortMapping::tcp(80, 80)
            },
            "same length",
        ),
        (
            PortMapping {
                host_ip: Some("nope".into()),
                ..PortMapping::tcp(80, 80)
            },
            "not an IP",
        ),
    ] {
        let msg = err_message(c.call(bad(m)).await.unwrap());
        assert!(msg.contains(why), "{why}: {msg}");
    }
    let msg = err_message(
        c.call(attach(100, None, &["80:80", "80:81"]))
            .await
            .unwrap(),
    );
    assert!(msg.contains("twice"), "{msg}");
    assert!(published(&inst).is_empty());
    let r = c.call(Request::ListAttachments).await.unwrap();
    assert!(!format!("{r:?}").contains("pid:100"), "{r:?}");
}

#[tokio::test]
async fn published_ports_survive_restart_and_drift() {
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    let mut c = inst.client().await;
    c.call(shared()).await.unwrap();
    attached_ip(c.call(attach(100, None, &["8080:80/sctp"])).await.unwrap());
    let before = published(&inst);
    assert_eq!(before.len(), 1);
    drop(c);

    let (host, wg, cfg) = (inst.host.clone(), inst.wg.clone(), inst.cfg.clone());
    let dir = inst.shutdown().await;
    // Someone deleted our table while the daemon was down.
    overlayd_host::Host::remove_firewall(&*host).await.unwrap();
    let inst = Instance::relaunch(dir, cfg, host, wg).await;
    assert_eq!(published(&inst), before, "restored at start");

    inst.host.tamper_firewall();
    let mut c = inst.client().await;
    c.call(Request::Reconcile).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while published(&inst) != before {
        assert!(tokio::time::Instant::now() < deadline, "drift not restored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn internal_network_has_no_way_out_and_refuses_publishing() {
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    let mut c = inst.client().await;
    c.call(shared()).await.unwrap();
    let bridge = match c
        .call(Request::SetupIsolationNetwork {
            network: "db".into(),
            subnet: None,
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
    let fw = inst.host.firewall().unwrap();
    assert_eq!(fw.internal_bridges, vec![bridge.clone()]);
    assert!(fw.masquerade.iter().all(|m| m.bridge != bridge), "{fw:?}");
    assert!(!fw.publish_bridges.contains(&bridge));

    let msg = err_message(c.call(attach(100, Some("db"), &["80:80"])).await.unwrap());
    assert!(msg.contains("internal"), "{msg}");
    attached_ip(c.call(attach(100, Some("db"), &[])).await.unwrap());
    let ifaces = inst.host.container_ifaces(&NetnsTarget::Pid(100));
    assert_eq!(ifaces.len(), 1);
    assert_eq!(ifaces[0].gateway, None, "no default route out");

    // The flag is part of the network's identity.
    let msg = err_message(c.call(support::requests::iso("db")).await.unwrap());
    assert!(
        msg.contains("internal") && msg.contains("iso down"),
        "{msg}"
    );
    c.call(Request::SetupIsolationNetwork {
        network: "db".into(),
        subnet: None,
        internal: true,
        ipv6: false,
        subnet_v6: None,
    })
    .await
    .unwrap();
}
