//! Bad state files at start-up, in process with the fake host: a store that
//! is empty, truncated or missing while the marker records networks is
//! refused with a clear message (never silently replaced, never a panic)
//! unless the operator passes `--rebuild-store`; a node key that is missing
//! or is not the key whose public half the marker records is refused.

mod support;

use std::sync::Arc;
use std::time::Duration;

use overlayd::daemon::{self, RunOptions};
use overlayd_host::{FakeHost, NetnsTarget};
use overlayd_proto::{Handle, Request, Response, ServiceMode};
use overlayd_wg::FakeWg;
use support::inproc::{Instance, LinkedWg};

/// A node with the global overlay, service `web` and one attached container,
/// stopped; returns what a restart needs.
async fn prepared() -> (
    tempfile::TempDir,
    overlayd::config::Config,
    Arc<FakeHost>,
    Arc<FakeWg>,
) {
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(300));
    let mut c = inst.client().await;
    let r = c
        .call(Request::SetupGlobalOverlay {
            deployment: "d".into(),
            instance_id: "i".into(),
            cluster_cidr: "10.200.0.0/16".into(),
            slice_cidr: Some("10.200.1.0/24".into()),
            wg_port: 51820,
            nat_enabled: false,
        })
        .await
        .unwrap();
    assert!(!matches!(r, Response::Err { .. }), "{r:?}");
    c.call(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    })
    .await
    .unwrap();
    let r = c
        .call(Request::AttachContainer {
            handle: Handle::LinuxPid { pid: 300 },
            service: "web".into(),
            join_global: false,
            dns_server: None,
            dns_domain: None,
            isolation: None,
            name: None,
            publish: Vec::new(),
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::Attached { .. }), "{r:?}");
    let (cfg, host, wg) = (inst.cfg.clone(), inst.host.clone(), inst.wg.clone());
    let dir = inst.shutdown().await;
    (dir, cfg, host, wg)
}

/// Run the daemon and expect it to refuse to start; the error text.
async fn refused(
    cfg: &overlayd::config::Config,
    host: &Arc<FakeHost>,
    wg: &Arc<FakeWg>,
    opts: RunOptions,
) -> String {
    let linked = Arc::new(LinkedWg {
        wg: wg.clone(),
        host: host.clone(),
    });
    let run = daemon::run(cfg.clone(), opts, host.clone(), linked);
    let r = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("a refused start returns at once");
    format!("{:#}", r.expect_err("the daemon must refuse to start"))
}

fn veths(host: &FakeHost) -> usize {
    host.container_ifaces(&NetnsTarget::Pid(300)).len()
}

#[tokio::test]
async fn empty_truncated_or_missing_store_is_refused_not_replaced() {
    let (dir, cfg, host, wg) = prepared().await;
    let store = cfg.data_dir.join("state.redb");
    let original = std::fs::read(&store).unwrap();

    for (what, content) in [
        ("empty", Some(Vec::new())),
        ("truncated", Some(original[..original.len() / 2].to_vec())),
        ("missing", None),
    ] {
        match &content {
            Some(c) => std::fs::write(&store, c).unwrap(),
            None => std::fs::remove_file(&store).unwrap(),
        }
        let msg = refused(&cfg, &host, &wg, RunOptions::default()).await;
        println!("{what}: {msg}");
        assert!(
            msg.contains("state store") && msg.contains("--rebuild-store"),
            "{what}: {msg}"
        );
        assert_eq!(veths(&host), 1, "{what}: the container keeps its veth");
        match &content {
            Some(c) => assert_eq!(&std::fs::read(&store).unwrap(), c, "{what}: left untouched"),
            None => assert!(!store.exists(), "{what}: no new store created"),
        }
    }

    // The operator's explicit flag: set aside, start afresh, delete nothing.
    std::fs::write(&store, b"").unwrap();
    let linked = Arc::new(LinkedWg {
        wg: wg.clone(),
        host: host.clone(),
    });
    let task = tokio::spawn(daemon::run(
        cfg.clone(),
        RunOptions {
            rebuild_store: true,
            ..RunOptions::default()
        },
        host.clone(),
        linked,
    ));
    let inst = Instance {
        _dir: dir,
        cfg: cfg.clone(),
        task,
        host: host.clone(),
        wg,
    };
    inst.wait_ready().await;
    assert_eq!(veths(&host), 1, "rebuild deletes no live container's veth");
    assert!(std::fs::read_dir(cfg.data_dir.join("quarantine"))
        .unwrap()
        .any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("state.redb.")));
    let _ = inst.shutdown().await;
}

#[tokio::test]
async fn node_key_missing_or_not_matching_the_marker_is_refused() {
    let (_dir, cfg, host, wg) = prepared().await;
    let key_path = cfg.data_dir.join("node.key");
    let original = std::fs::read_to_string(&key_path).unwrap();

    std::fs::remove_file(&key_path).unwrap();
    let msg = refused(&cfg, &host, &wg, RunOptions::default()).await;
    assert!(msg.contains("node key") && msg.contains("missing"), "{msg}");
    assert!(!key_path.exists(), "no new identity was created");

    // Replaced by the public key (a valid base64 key, but the wrong half).
    let kp = overlayd_state::KeyPair::from_private_base64(original.trim()).unwrap();
    std::fs::write(&key_path, format!("{}\n", kp.public_base64())).unwrap();
    let msg = refused(&cfg, &host, &wg, RunOptions::default()).await;
    assert!(
        msg.contains("refusing to start with a different identity"),
        "{msg}"
    );

    std::fs::write(&key_path, &original).unwrap();
    let inst = Instance::relaunch(_dir, cfg, host, wg).await;
    let _ = inst.shutdown().await;
}
