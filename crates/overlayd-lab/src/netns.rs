//! Named network namespaces that delete themselves (and kill what runs in
//! them) on drop, and veth wiring between them.

use std::path::PathBuf;
use std::process::Output;

use crate::shell::{must, run, sh, try_sh, unique};

/// A network namespace under `/run/netns`, named uniquely for this run,
/// with `lo` up; on drop every process in it is killed and it is deleted.
pub struct Netns {
    /// Its name under `/run/netns`.
    pub name: String,
}

impl Netns {
    /// Create one named [`unique`]`(tag)`.
    pub fn new(tag: &str) -> Self {
        Netns::named(unique(tag))
    }

    /// Create one with exactly this name.
    pub fn named(name: String) -> Self {
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Path of the namespace file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    fn inside<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["ip", "netns", "exec", self.name.as_str()];
        v.extend_from_slice(args);
        v
    }

    /// Run a command inside; its output whatever its status.
    pub fn run(&self, args: &[&str]) -> Output {
        run(&self.inside(args))
    }

    /// Run a command inside that must succeed (panics with its output).
    pub fn exec(&self, args: &[&str]) -> Output {
        sh(&self.inside(args))
    }

    /// Standard output of a command inside that must succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        must(&self.inside(args))
    }

    /// Whether a command inside succeeded.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        try_sh(&self.inside(args))
    }

    /// Standard output of a command inside, whatever its status.
    pub fn output(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.run(args).stdout).into_owned()
    }

    /// `ip -n <ns> <args>`, which must succeed; its standard output.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", self.name.as_str()];
        v.extend_from_slice(args);
        must(&v)
    }

    /// One ping with a one-second wait.
    pub fn ping(&self, ip: &str) -> bool {
        self.try_exec(&["ping", "-c1", "-W1", ip])
    }

    /// Link names inside.
    pub fn links(&self) -> Vec<String> {
        self.output(&["ip", "-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    }

    /// Whether a link of this name exists inside.
    pub fn has_link(&self, name: &str) -> bool {
        try_sh(&["ip", "-n", &self.name, "link", "show", "dev", name])
    }

    /// `ifindex` of a link inside.
    pub fn ifindex(&self, link: &str) -> Option<u32> {
        self.output(&["cat", &format!("/sys/class/net/{link}/ifindex")])
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let pids =
            String::from_utf8_lossy(&run(&["ip", "netns", "pids", &self.name]).stdout).into_owned();
        for pid in pids.split_whitespace() {
            let _ = run(&["kill", "-9", pid]);
        }
        let out = run(&["ip", "netns", "del", &self.name]);
        if !out.status.success() {
            eprintln!(
                "warning: could not delete test netns {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Connect `a` and `b` with a veth pair (`a_if` in `a`, `b_if` in `b`),
/// address both ends (CIDRs) and bring them up.
pub fn link_pair(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    sh(&[
        "ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    a.exec(&["ip", "addr", "add", a_addr, "dev", a_if]);
    b.exec(&["ip", "addr", "add", b_addr, "dev", b_if]);
    a.exec(&["ip", "link", "set", a_if, "up"]);
    b.exec(&["ip", "link", "set", b_if, "up"]);
}

/// The node's uplink address in [`uplinked_node`].
pub const NODE_UPLINK: &str = "198.51.100.1";
/// The outside namespace's address in [`uplinked_node`] (the node's default gateway).
pub const OUTSIDE: &str = "198.51.100.2";

/// A node namespace whose uplink `up0` (198.51.100.1/24) leads to an
/// "outside" namespace (`out0`, 198.51.100.2/24), which is also the node's
/// default route: the host a daemon under test runs on, with an internet
/// it can never reach beyond the test.
pub fn uplinked_node(node_tag: &str, outside_tag: &str) -> (Netns, Netns) {
    let node = Netns::new(node_tag);
    let outside = Netns::new(outside_tag);
    link_pair(
        &node,
        "up0",
        &format!("{NODE_UPLINK}/24"),
        &outside,
        "out0",
        &format!("{OUTSIDE}/24"),
    );
    node.exec(&["ip", "route", "add", "default", "via", OUTSIDE]);
    (node, outside)
}
