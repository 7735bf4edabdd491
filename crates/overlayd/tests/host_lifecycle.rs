//! End to end, as root, inside network namespaces this test creates (the
//! lab of `host_networks.rs`): bad input changes nothing, uninstall keeps
//! networks and purge leaves nothing, gone containers are reclaimed, drift
//! is reported and repaired, a second daemon is refused, a deleted bridge is
//! recreated with its containers re-plugged.

mod support;

use std::time::Duration;

use overlayd_proto::{Handle, Request, Response};
use support::node_lab::{ping_until, Lab};
use support::*;

#[test]
fn bad_input_changes_nothing_and_never_touches_foreign_links() {
    if !can_run_root_tests("bad_input") {
        return;
    }
    let lab = Lab::new(&[]);
    lab.service("web");
    let before = (lab.tagged_links(), lab.marker());
    let attach = |handle: Handle, service: &str, iso: Option<&str>| {
        lab.daemon.call(Request::AttachContainer {
            handle,
            service: service.into(),
            join_global: false,
            dns_server: None,
            dns_domain: None,
            isolation: iso.map(str::to_string),
            name: None,
            publish: vec![],
        })
    };
    let err = |r: Response| match r {
        Response::Err { message, .. } => message,
        r => panic!("expected err, got {r:?}"),
    };
    let m = err(attach(Handle::LinuxPid { pid: 4_000_000 }, "web", None));
    assert!(m.contains("4000000"), "{m}");
    let file = lab._dir.path().join("not-a-netns");
    std::fs::write(&file, b"x").unwrap();
    let m = err(attach(
        Handle::NetnsPath {
            path: file.display().to_string(),
        },
        "web",
        None,
    ));
    assert!(m.contains("not a network namespace"), "{m}");
    let c = Container::new();
    let m = err(attach(Handle::LinuxPid { pid: c.pid() }, "nosuch", None));
    assert!(m.contains("unknown service"), "{m}");
    let m = err(attach(
        Handle::LinuxPid { pid: c.pid() },
        "web",
        Some("nonet"),
    ));
    assert!(m.contains("does not exist"), "{m}");
    assert_eq!(
        (lab.tagged_links(), lab.marker()),
        before,
        "nothing changed"
    );

    // A foreign link holding the name overlayd would use is refused, untouched.
    let namer = overlayd_engine::Namer::new(overlayd_engine::NamePrefix::default());
    let owner = overlayd_state::Owner::isolation("taken").unwrap();
    let name = namer.bridge(&owner).as_str().to_string();
    lab.node
        .exec(&["ip", "link", "add", &name, "type", "bridge"]);
    let m = err(lab.daemon.call(support::requests::iso("taken")));
    assert!(m.contains("does not own"), "{m}");
    assert!(lab.node.links().contains(&name), "foreign link still there");
    assert_eq!(lab.marker(), before.1);

    // An exhausted subnet: a /30 has one address besides the gateway.
    lab.daemon.ok(Request::SetupIsolationNetwork {
        network: "tiny".into(),
        subnet: Some("10.250.0.0/30".into()),
        internal: false,
        ipv6: false,
        subnet_v6: None,
    });
    let (c1, c2) = (Container::new(), Container::new());
    assert!(matches!(
        attach(Handle::LinuxPid { pid: c1.pid() }, "web", Some("tiny")),
        Response::Attached { .. }
    ));
    let links = lab.tagged_links();
    let m = err(attach(
        Handle::LinuxPid { pid: c2.pid() },
        "web",
        Some("tiny"),
    ));
    assert!(m.contains("exhausted") || m.contains("no free"), "{m}");
    assert_eq!(lab.tagged_links(), links, "no veth leaked");
}

#[test]
fn uninstall_keeps_networks_and_purge_leaves_nothing() {
    if !can_run_root_tests("purge") {
        return;
    }
    let (mut lab, _c1, links) = Lab::with_web_member(&[]);

    // A purge pointed at another data dir than the running daemon's is
    // refused before anything is stopped or removed.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.daemon.ns, bin(), "--socket"])
        .arg(&lab.daemon.socket)
        .arg("--data-dir")
        .arg(elsewhere.path())
        .args(["uninstall", "--purge"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("does not use"), "{err}");
    assert_eq!(lab.tagged_links(), links, "nothing was purged");
    assert!(
        matches!(lab.daemon.call(Request::Status), Response::Status(_)),
        "the daemon was not stopped"
    );

    let out = lab.daemon.cli(&["uninstall"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = lab.daemon.proc.child.take().expect("daemon running");
    wait_for(
        "the daemon exits after uninstall",
        Duration::from_secs(30),
        || matches!(child.try_wait(), Ok(Some(_))),
    );
    assert_eq!(lab.tagged_links(), links, "plain uninstall leaves networks");
    assert!(lab
        .node
        .output(&["nft", "list", "tables"])
        .contains("overlayd"));

    for _ in 0..2 {
        let out = lab.daemon.cli(&["uninstall", "--purge"]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(lab.tagged_links().is_empty(), "no tagged link left");
    let mut left = lab.node.links();
    left.sort();
    assert_eq!(left, vec!["lo".to_string(), "up0".to_string()]);
    assert!(!lab
        .node
        .output(&["nft", "list", "tables"])
        .contains("overlayd"));
    let addrs = lab.node.output(&["ip", "-o", "addr", "show"]);
    assert!(!addrs.contains("10.201."), "no address of ours: {addrs}");
    let routes = lab.node.output(&["ip", "route", "show"]);
    assert!(!routes.contains("10.201."), "no route of ours: {routes}");
    let files: Vec<_> = std::fs::read_dir(&lab.daemon.data_dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "data dir empty: {files:?}");
}

#[test]
fn gone_containers_are_reclaimed_and_a_flushed_firewall_is_restored() {
    if !can_run_root_tests("reclaim") {
        return;
    }
    let lab = Lab::fast_checks();
    lab.service("web");
    let (c1, c2) = (Container::new(), Container::new());
    let ip1 = lab.attach(&c1, "web", None);
    lab.attach(&c2, "web", None);
    let links = lab.tagged_links().len();

    // The container goes away without a detach: its veth and lease are reclaimed.
    drop(c1);
    wait_for("gone container reclaimed", Duration::from_secs(15), || {
        let log = lab.daemon.log();
        log.contains("reclaimed attachment")
            || log.contains("dropped attachment whose veth is gone")
    });
    assert_eq!(lab.tagged_links().len(), links - 1, "its veth is gone");
    let c3 = Container::new();
    assert_eq!(
        lab.attach(&c3, "web", None),
        ip1,
        "the reclaimed address is free again"
    );

    // Someone flushes our table: the periodic check restores it.
    lab.node
        .exec(&["nft", "flush", "table", "inet", "overlayd"]);
    wait_for("firewall restored", Duration::from_secs(15), || {
        lab.node
            .output(&["nft", "list", "table", "inet", "overlayd"])
            .contains("masquerade")
    });
    // A foreign table is never touched.
    lab.node
        .exec(&["nft", "add", "table", "ip", "someone-else"]);
    lab.node
        .exec(&["nft", "flush", "table", "inet", "overlayd"]);
    wait_for("firewall restored again", Duration::from_secs(15), || {
        lab.node
            .output(&["nft", "list", "table", "inet", "overlayd"])
            .contains("masquerade")
    });
    assert!(lab
        .node
        .output(&["nft", "list", "tables"])
        .contains("someone-else"));
}

#[test]
fn doctor_reports_drift_and_what_to_do() {
    if !can_run_root_tests("doctor") {
        return;
    }
    let lab = Lab::new(&[]);
    lab.iso("a");
    let out = lab.daemon.cli(&["doctor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, bridge) = lab.iso("a");
    lab.node.exec(&["ip", "link", "del", &bridge]);
    let out = lab.daemon.cli(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("MISSING") && text.contains("--fix"), "{text}");
    let json = lab.daemon.cli(&["--json", "doctor"]);
    assert_eq!(
        json.status.code(),
        Some(3),
        "--json exits 3 on drift too: {}",
        String::from_utf8_lossy(&json.stdout)
    );
    let fixed = lab.daemon.cli(&["doctor", "--fix"]);
    let fixed_text = String::from_utf8_lossy(&fixed.stdout);
    assert!(fixed.status.success(), "{fixed_text}");
    assert!(fixed_text.contains("1 recreated"), "{fixed_text}");
    assert!(
        lab.node.links().contains(&bridge),
        "recreated without a restart"
    );
    lab.node.exec(&["ip", "link", "del", &bridge]);
    let out = lab.daemon.cli(&["--json", "network", "ls"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "networks");
    assert_eq!(v["networks"][0]["present"], false);
}

#[test]
fn second_daemon_on_the_same_data_dir_exits_naming_the_holder() {
    if !can_run_root_tests("second") {
        return;
    }
    let lab = Lab::new(&[]);
    let holder = lab.daemon.proc.child.as_ref().unwrap().id().to_string();
    let other_socket = lab.daemon.socket.with_file_name("second.sock");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.node.name, bin(), "run", "--data-dir"])
        .arg(&lab.daemon.data_dir)
        .arg("--socket")
        .arg(&other_socket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second daemon must fail: {stderr}");
    assert!(
        stderr.contains(&holder),
        "names the holder pid {holder}: {stderr}"
    );
    assert!(!other_socket.exists(), "no socket of its own");
    assert!(matches!(
        lab.daemon.call(Request::Status),
        Response::Status(_)
    ));
}

#[test]
fn a_deleted_bridge_is_recreated_and_its_containers_replugged() {
    if !can_run_root_tests("replug") {
        return;
    }
    let mut lab = Lab::new(&[]);
    lab.service("web");
    let (c1, c2) = (Container::new(), Container::new());
    lab.attach(&c1, "web", None);
    let ip2 = lab.attach(&c2, "web", None);
    ping_until(&c1, &ip2);
    lab.daemon.stop();
    let bridge = lab
        .tagged_links()
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.starts_with("ovl-b"))
        .unwrap();
    lab.node.exec(&["ip", "link", "del", &bridge]);
    assert!(!c1.ping(&ip2), "cut off without the bridge");
    lab.daemon.start_again();
    ping_until(&c1, &ip2);
    ping_until(&c1, OUTSIDE);
    assert!(lab.daemon.log().contains("re-plugged containers"));
}
