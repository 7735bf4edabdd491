//! End to end, as root, inside namespaces this test creates: attaching and
//! detaching a container with published ports writes the firewall without
//! any `nft` process — the map elements go over netlink. The daemon finds
//! a logging `nft` first in its `PATH`, which records every run.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use overlayd_proto::{Handle, PortMapping, Request, Response};
use support::requests::{attach_pid, shared};
use support::*;

/// Runs of the logging `nft` that wrote (`-f`), as opposed to listing.
fn writes(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().any(|a| a == "-f"))
        .map(str::to_string)
        .collect()
}

#[test]
fn attach_and_detach_with_published_ports_run_no_nft() {
    if !can_run_root_tests("publish_no_process") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("nft.log");
    let real = String::from_utf8(sh(&["sh", "-c", "command -v nft"]).stdout).unwrap();
    let wrapper = bin.join("nft");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The only test in this binary: the daemon (`ip netns exec … overlayd`)
    // inherits this PATH.
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::set_var("PATH", format!("{}:{path}", bin.display()));

    let (node, _outside) = uplinked_node("pq", "pr");
    let daemon = Daemon::start(&node, dir.path(), &[]);
    daemon.ok(shared("web"));
    wait_for(
        "the logging nft wrote the table",
        Duration::from_secs(15),
        || !writes(&log).is_empty(),
    );
    let c = Container::new();
    // A plain attach and detach first, so whatever a first member costs
    // is paid before counting.
    daemon.ok(attach_pid(c.pid(), "web", None, None));
    daemon.ok(Request::DetachContainer {
        handle: Handle::LinuxPid { pid: c.pid() },
    });
    let before = writes(&log);

    let mut req = attach_pid(c.pid(), "web", None, None);
    if let Request::AttachContainer { publish, .. } = &mut req {
        *publish = ["18080:80", "18081:81/udp"]
            .iter()
            .map(|m| m.parse::<PortMapping>().unwrap())
            .collect();
    }
    match daemon.call(req) {
        Response::Attached { .. } => {}
        r => panic!("{r:?}\n{}", daemon.log()),
    }
    let listed = node.output(&["nft", "list", "table", "inet", "overlayd"]);
    assert!(listed.contains("tcp . 18080"), "{listed}");
    assert!(listed.contains("udp . 18081"), "{listed}");
    daemon.ok(Request::DetachContainer {
        handle: Handle::LinuxPid { pid: c.pid() },
    });
    let listed = node.output(&["nft", "list", "table", "inet", "overlayd"]);
    assert!(!listed.contains("18080"), "{listed}");

    assert_eq!(
        writes(&log),
        before,
        "publish or unpublish ran nft; daemon log:\n{}",
        daemon.log()
    );
}
