//! `overlayd network prune` end to end, as root, with the daemon inside a
//! namespace this test creates: refused without a terminal unless
//! `--force`, then removes exactly the empty isolation networks and
//! services (their bridges too) and prints what it removed; a network a
//! container joined with `overlayd connect` counts as used until
//! `overlayd disconnect`.

mod support;

use support::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Bridge name of a recorded network, from `network ls --json`.
fn bridge_of(daemon: &Daemon, owner: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&daemon.cli_ok(&["--json", "network", "ls"]))
        .expect("network ls --json is JSON");
    let nets = v
        .get("networks")
        .and_then(|n| n.as_array())
        .cloned()
        .or_else(|| v.as_array().cloned())
        .expect("a list of networks");
    nets.iter()
        .find(|n| n["owner"] == owner)
        .map(|n| n["name"].as_str().unwrap().to_string())
}

#[test]
fn network_prune_removes_only_empty_networks_after_confirmation() {
    if !can_run_root_tests("network_prune_removes_only_empty_networks_after_confirmation") {
        return;
    }
    let node = Netns::new("pr");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    std::fs::write(&cfg, "check_interval_secs = 60\n").unwrap();
    let daemon = Daemon::start(&node, dir.path(), &["--config", cfg.to_str().unwrap()]);

    daemon.cli_ok(&["service", "up", "web"]);
    daemon.cli_ok(&["service", "up", "idle"]);
    daemon.cli_ok(&["iso", "up", "red"]);
    daemon.cli_ok(&["iso", "up", "blue"]);
    let c = Container::new();
    let pid = c.pid().to_string();
    daemon.cli_ok(&["attach", "--pid", &pid, "--service", "web", "--iso", "red"]);
    let red = bridge_of(&daemon, "iso:red").expect("iso:red recorded");
    let blue = bridge_of(&daemon, "iso:blue").expect("iso:blue recorded");
    assert!(node.links().contains(&blue), "{blue} exists before prune");

    // No terminal on stdin and no --force: refused, nothing removed.
    let out = daemon.cli(&["network", "prune"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert!(bridge_of(&daemon, "iso:blue").is_some(), "nothing pruned");

    // A network the container is connected to (eth1) has a member too.
    let connected = daemon.cli_ok(&["connect", "blue", "--pid", &pid]);
    assert!(connected.contains("connected to blue"), "{connected}");
    let printed = daemon.cli_ok(&["network", "prune", "--force"]);
    assert_eq!(printed.trim(), "removed service idle", "blue is in use");
    daemon.cli_ok(&["disconnect", "blue", "--pid", &pid]);
    let links = c.output(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth1"), "{links}");

    let printed = daemon.cli_ok(&["network", "prune", "--force"]);
    assert_eq!(
        printed.trim(),
        "removed isolation network blue",
        "members' networks (red, web) stay"
    );
    assert!(bridge_of(&daemon, "iso:blue").is_none());
    assert!(!node.links().contains(&blue), "{blue} deleted");
    assert!(node.links().contains(&red), "{red} stays");
    assert!(
        bridge_of(&daemon, "shared-nat").is_some(),
        "shared-nat stays"
    );
    let services = daemon.cli_ok(&["service", "ls", "-q"]);
    assert_eq!(services.split_whitespace().collect::<Vec<_>>(), ["web"]);

    // The container still has its address on iso:red after the prune.
    let addrs = c.output(&["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addrs.contains("inet "), "{addrs}");

    assert_eq!(
        daemon.cli_ok(&["network", "prune", "--force"]).trim(),
        "nothing to prune"
    );
}
