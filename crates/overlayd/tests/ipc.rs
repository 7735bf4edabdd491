//! The daemon in process, over its real socket, with a fake host: framing,
//! bad input, concurrency, the instance lock and a clean shutdown. No root
//! needed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use overlayd::config::Config;
use overlayd::daemon::{self, RunOptions};
use overlayd_client::Client;
use overlayd_host::FakeHost;
use overlayd_proto::{read_frame, Request, Response, MAX_FRAME_LEN};
use overlayd_wg::FakeWg;
use support::inproc::{err_message, Instance};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn hello_status_and_list() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    match c
        .call(Request::Hello {
            protocol_version: 1,
        })
        .await
        .unwrap()
    {
        Response::Hello {
            protocol_version,
            extensions,
            ..
        } => {
            assert_eq!(protocol_version, 1);
            assert!(extensions.iter().any(|e| e == "list_networks"));
        }
        r => panic!("{r:?}"),
    }
    match c.call(Request::Status).await.unwrap() {
        Response::Status(s) => assert!(s.public_key.is_some()),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        c.call(Request::ListNetworks).await.unwrap(),
        Response::Networks { .. }
    ));
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_get_err_and_the_connection_stays_usable() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let r = c.call(support::requests::iso("a")).await.unwrap();
    assert!(matches!(r, Response::IsolationNetwork { .. }), "{r:?}");
    let before = std::fs::read(inst.marker()).unwrap();

    let (id, r) = c.call_raw(b"\x00\x01garbage\xff").await.unwrap();
    assert_eq!(id, 0);
    assert!(err_message(r).contains("not valid JSON"));

    let (id, r) = c
        .call_raw(b"{\"frame\":\"request\",\"id\":5,")
        .await
        .unwrap();
    assert_eq!(id, 0);
    assert!(err_message(r).contains("not valid JSON"));

    let (id, r) = c
        .call_raw(br#"{"frame":"request","id":6,"request":{"op":"teleport"}}"#)
        .await
        .unwrap();
    assert_eq!(id, 6);
    assert!(err_message(r).contains("unknown op"));

    let (id, r) = c
        .call_raw(br#"{"frame":"request","id":8,"request":{"op":"teardown_isolation_network","network":42}}"#)
        .await
        .unwrap();
    assert_eq!(id, 8);
    assert!(err_message(r).contains("invalid request"));

    let (id, r) = c
        .call_raw(br#"{"frame":"request","id":9,"request":{"op":"setup_isolation_network","network":"b","subnet":"10.999.0.0/24"}}"#)
        .await
        .unwrap();
    assert_eq!(id, 9);
    assert!(err_message(r).contains("10.999.0.0/24"));

    // Still usable, and nothing changed on disk.
    assert!(matches!(
        c.call(Request::Status).await.unwrap(),
        Response::Status(_)
    ));
    assert_eq!(std::fs::read(inst.marker()).unwrap(), before);
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn broken_framing_closes_only_that_connection() {
    let inst = Instance::start().await;
    let mut other = inst.client().await;

    // Oversized length: rejected before allocation, connection closed.
    let mut big = inst.client().await;
    big.stream_mut()
        .write_all(&(MAX_FRAME_LEN + 1).to_le_bytes())
        .await
        .unwrap();
    let s = big.stream_mut();
    let body = read_frame(s).await.unwrap().expect("an err frame first");
    assert!(String::from_utf8_lossy(&body).contains("exceeds"));
    assert!(read_frame(s).await.unwrap().is_none(), "then closed");

    // Truncated frame: the peer goes away mid-frame.
    let mut trunc = inst.client().await;
    trunc
        .stream_mut()
        .write_all(&[100, 0, 0, 0, b'{'])
        .await
        .unwrap();
    drop(trunc);

    // A stalled client (half a length prefix) does not block anyone.
    let mut stalled = inst.client().await;
    stalled.stream_mut().write_all(&[1, 0]).await.unwrap();

    assert!(matches!(
        other
            .call_timeout(Request::Status, Duration::from_secs(5))
            .await
            .unwrap(),
        Response::Status(_)
    ));
    drop(stalled);
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_clients() {
    let inst = Instance::start().await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let sock = inst.cfg.socket.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&sock).await.unwrap();
            for _ in 0..10 {
                let r = c
                    .call(Request::SetLocalNodeId { node_id: i })
                    .await
                    .unwrap();
                assert_eq!(r, Response::Ok);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn second_instance_is_refused_and_first_keeps_serving() {
    let inst = Instance::start().await;
    let cfg2 = Config {
        socket: inst.cfg.socket.with_file_name("second.sock"),
        ..inst.cfg.clone()
    };
    let err = daemon::run(
        cfg2.clone(),
        RunOptions::default(),
        Arc::new(FakeHost::new()),
        Arc::new(FakeWg::new()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&std::process::id().to_string()),
        "names the holder pid: {err}"
    );
    assert!(!cfg2.socket.exists(), "second instance created no socket");
    let mut c = inst.client().await;
    assert!(matches!(
        c.call(Request::Status).await.unwrap(),
        Response::Status(_)
    ));
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn ops_without_machinery_answer_err_and_change_nothing() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let before = std::fs::read(inst.marker()).ok();
    let msg = err_message(
        c.call(Request::AttachContainer {
            handle: overlayd_proto::Handle::LinuxPid { pid: 1 },
            service: "nosuch".into(),
            join_global: false,
            dns_server: None,
            dns_domain: None,
            isolation: None,
            name: None,
            publish: vec![],
        })
        .await
        .unwrap(),
    );
    assert!(msg.contains("unknown service"), "{msg}");
    assert_eq!(std::fs::read(inst.marker()).ok(), before);
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_state_and_removes_the_socket() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let r = c.call(support::requests::iso("keep")).await.unwrap();
    assert!(matches!(r, Response::IsolationNetwork { .. }), "{r:?}");
    let marker = inst.marker();
    let socket = inst.cfg.socket.clone();
    let _dir = inst.shutdown().await;
    assert!(!socket.exists());
    let text = std::fs::read_to_string(marker).unwrap();
    assert!(text.contains("iso:keep"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_0660_and_peer_credentials_are_checked() {
    use std::os::unix::fs::PermissionsExt;
    let inst = Instance::start().await;
    let mode = std::fs::metadata(&inst.cfg.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    if !overlayd_lab::need_root("socket_is_0660_and_peer_credentials_are_checked") {
        let _ = inst.shutdown().await;
        return;
    }
    // Open the path wide on purpose: the credential check must still refuse.
    for dir in [
        inst._dir.path().to_path_buf(),
        inst.cfg.socket.parent().unwrap().to_path_buf(),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&inst.cfg.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_overlayd"))
        .arg("--socket")
        .arg(&inst.cfg.socket)
        .arg("status")
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody must be refused");
    assert!(stderr.contains("permission denied"), "{stderr}");
    let mut c = inst.client().await;
    assert!(matches!(
        c.call(Request::Status).await.unwrap(),
        Response::Status(_)
    ));
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn foreign_kind_entries_are_listed_kept_and_survive_purge() {
    let marker = r#"{"version":1,"networks":[{"owner":"service:win","kind":"hcn-internal","name":"hcn-web","id":"7f1c0b52-hcn","subnet":"172.30.0.0/24","hcn_extra":{"policy":42}}]}"#;
    let inst = Instance::start_with(|cfg| {
        std::fs::create_dir_all(&cfg.data_dir).unwrap();
        std::fs::write(cfg.data_dir.join("agent_network.json"), marker).unwrap();
    })
    .await;
    let mut c = inst.client().await;
    let Response::Networks { networks } = c.call(Request::ListNetworks).await.unwrap() else {
        panic!("not networks");
    };
    assert_eq!(networks.len(), 1);
    assert_eq!(networks[0].kind, "hcn-internal");
    assert!(!networks[0].managed && !networks[0].present);
    // A change elsewhere rewrites the marker; the foreign entry and its
    // unknown field stay.
    c.call(support::requests::iso("a")).await.unwrap();
    let text = std::fs::read_to_string(inst.marker()).unwrap();
    assert!(
        text.contains("hcn-internal") && text.contains("\"policy\": 42"),
        "{text}"
    );
    let cfg = inst.cfg.clone();
    let host = inst.host.clone();
    let dir = inst.shutdown().await;

    let lock = overlayd_state::InstanceLock::acquire(&cfg.data_dir).unwrap();
    let report = overlayd::daemon::purge::purge(&cfg, host, lock).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        report.lines.iter().any(|l| l.contains("hcn-internal")),
        "{:?}",
        report.lines
    );
    let left = std::fs::read_to_string(cfg.data_dir.join("agent_network.json")).unwrap();
    assert!(
        left.contains("hcn-web") && !left.contains("iso:a"),
        "{left}"
    );
    drop(dir);
}

#[tokio::test]
async fn inspect_attachment_reports_what_resolv_conf_should_say() {
    let inst = Instance::start().await;
    inst.host
        .add_live_target(overlayd_host::NetnsTarget::Pid(100));
    inst.host
        .add_live_target(overlayd_host::NetnsTarget::Pid(101));
    let mut c = inst.client().await;
    c.call(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: overlayd_proto::ServiceMode::Shared,
        recreate: false,
    })
    .await
    .unwrap();
    let attach = |pid, dns_server: Option<&str>| Request::AttachContainer {
        handle: overlayd_proto::Handle::LinuxPid { pid },
        service: "web".into(),
        join_global: false,
        dns_server: dns_server.map(str::to_string),
        dns_domain: dns_server.map(|_| "corp.example".to_string()),
        isolation: None,
        name: None,
        publish: vec![],
    };
    let msg = err_message(c.call(attach(100, Some("not-an-ip"))).await.unwrap());
    assert!(msg.contains("dns_server"), "{msg}");
    c.call(attach(100, None)).await.unwrap();
    c.call(attach(101, Some("10.9.9.9"))).await.unwrap();
    let inspect = |pid| Request::InspectAttachment {
        handle: overlayd_proto::Handle::LinuxPid { pid },
    };
    match c.call(inspect(100)).await.unwrap() {
        Response::Attachment {
            gateway,
            dns_server,
            dns_domain,
            ..
        } => {
            assert_eq!(
                gateway.as_deref(),
                Some(dns_server.as_str()),
                "overlayd answers on the gateway"
            );
            assert_eq!(dns_domain, "overlay.internal");
        }
        r => panic!("{r:?}"),
    }
    match c.call(inspect(101)).await.unwrap() {
        Response::Attachment {
            dns_server,
            dns_domain,
            ..
        } => assert_eq!(
            (dns_server.as_str(), dns_domain.as_str()),
            ("10.9.9.9", "corp.example")
        ),
        r => panic!("{r:?}"),
    }
    let msg = err_message(c.call(inspect(102)).await.unwrap());
    assert!(msg.contains("not attached"), "{msg}");
    let _ = inst.shutdown().await;
}
