//! Test fixtures: the namespace lab (`overlayd-lab`) re-exported, and the
//! two-namespace underlay the WireGuard tests run over.

#![allow(dead_code)]

pub mod foreign;
pub mod pair;
pub mod relay;
pub mod transfer;

pub use overlayd_lab::{wait_for, Netns};

/// Whether the test may create host objects: root, else skipped (or failed
/// when `OVERLAYD_REQUIRE_ROOT=1`).
pub fn need_root(test: &str) -> bool {
    overlayd_lab::need_root(test)
}

/// Runs a command, returning its output (never panics on non-zero exit).
pub fn run(program: &str, args: &[&str]) -> std::process::Output {
    overlayd_lab::run(&[&[program], args].concat())
}

/// Runs a command and panics with its output when it fails; its stdout.
pub fn must(program: &str, args: &[&str]) -> String {
    overlayd_lab::must(&[&[program], args].concat())
}

/// Two namespaces joined by a veth underlay: 192.0.2.1/24 and 192.0.2.2/24.
pub fn underlay() -> (Netns, Netns) {
    let a = Netns::new("a");
    let b = Netns::new("b");
    must(
        "ip",
        &[
            "link", "add", "ul0", "netns", &a.name, "type", "veth", "peer", "name", "ul0", "netns",
            &b.name,
        ],
    );
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "ul0"]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "ul0"]);
    a.ip(&["link", "set", "ul0", "up"]);
    b.ip(&["link", "set", "ul0", "up"]);
    (a, b)
}
