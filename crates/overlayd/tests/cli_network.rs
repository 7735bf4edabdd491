//! Docker's verbs for isolation networks, as a Docker user types them:
//! `overlayd network create NET [--internal] [--subnet CIDR]` is `iso up`,
//! `overlayd network rm NET...` is `iso down`. The daemon runs inside a
//! namespace this test makes.

mod support;

use support::node_lab::Lab;
use support::*;

#[test]
fn network_create_and_rm_are_isolation_networks_under_dockers_verbs() {
    if !can_run_root_tests("network_create_and_rm") {
        return;
    }
    let lab = Lab::new(&[]);
    let d = &lab.daemon;
    let created = d.cli_ok(&["--json", "network", "create", "red", "--internal"]);
    let j: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(j["result"], "isolation_network", "{created}");
    assert_eq!(j["network"], "red");
    let bridge = j["bridge"].as_str().unwrap().to_string();
    // The same network as `iso up`: confirmed, not made twice.
    let again: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["--json", "iso", "up", "red", "--internal"])).unwrap();
    assert_eq!(again["bridge"], bridge.as_str());
    d.cli_ok(&["network", "create", "blue", "--subnet", "10.201.77.0/24"]);
    let ls = d.cli_ok(&["network", "ls"]);
    assert!(ls.contains("iso:red") && ls.contains("iso:blue"), "{ls}");
    assert!(ls.contains("10.201.77.0/24"), "{ls}");
    assert!(lab.node.has_link(&bridge), "the bridge {bridge} exists");

    d.cli_ok(&["network", "rm", "red", "iso:blue"]);
    let ls = d.cli_ok(&["network", "ls"]);
    assert!(!ls.contains("iso:red") && !ls.contains("iso:blue"), "{ls}");
    assert!(!lab.node.has_link(&bridge), "the bridge {bridge} is gone");
    // Removing it again is fine; a network that never existed is an error.
    d.cli_ok(&["network", "rm", "red"]);
    let out = d.cli(&["network", "rm", "nosuch"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuch") && err.contains("does not exist"),
        "{err}"
    );
}
