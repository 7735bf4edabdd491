//! Test fixtures: uniquely named network namespaces removed on drop, and
//! helpers to run `ip` inside them and wait on conditions with deadlines.

#![allow(dead_code)]

pub mod foreign;
pub mod pair;
pub mod relay;
pub mod transfer;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether the test may create host objects: root, else skipped (or failed
/// when `OVERLAYD_REQUIRE_ROOT=1`).
pub fn need_root(test: &str) -> bool {
    overlayd_lab::need_root(test)
}

/// Runs a command, returning its output (never panics on non-zero exit).
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} {args:?}: {e}"))
}

/// Runs a command and panics with its stderr when it fails.
pub fn must(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace named uniquely for this run; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("owg{}{}{}", std::process::id(), tag, n);
        must("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// `ip -n <ns> <args>`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        must("ip", &full)
    }

    /// `ip netns exec <ns> <cmd>`.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    pub fn has_link(&self, name: &str) -> bool {
        run("ip", &["-n", &self.name, "link", "show", "dev", name])
            .status
            .success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = run("ip", &["netns", "del", &self.name]);
        if !out.status.success() {
            eprintln!(
                "warning: deleting netns {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
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

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
