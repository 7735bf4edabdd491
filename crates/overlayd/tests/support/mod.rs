//! Shared support for end-to-end tests: network namespaces that delete
//! themselves on drop, a daemon process run inside one, and small waiting
//! helpers with deadlines. Nothing here touches the root namespace.

#![allow(dead_code)]

pub mod cluster;
pub mod inproc;
pub mod requests;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use overlayd_client::Client;
use overlayd_proto::{Request, Response};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// True when the tests may create namespaces (root and `ip` present).
/// Otherwise the test is skipped, or fails under `OVERLAYD_REQUIRE_ROOT=1`.
pub fn can_run_root_tests(test: &str) -> bool {
    overlayd_lab::need_root(test) && overlayd_lab::need_tool(test, "ip", "-V")
}

/// A unique short name for this run.
pub fn unique(tag: &str) -> String {
    format!(
        "ot{}{}{}",
        tag,
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Run a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run a command and report only whether it succeeded.
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A network namespace removed (with every process in it) on drop.
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
}

impl Netns {
    /// Create a namespace with `lo` up.
    pub fn new(tag: &str) -> Self {
        let name = unique(tag);
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Path of the namespace file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Run a command inside, panicking on failure.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Run a command inside; true if it succeeded.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        try_sh(&v)
    }

    /// Output of a command inside (stdout as text), whatever its status.
    pub fn output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One ping with a one-second wait.
    pub fn ping(&self, ip: &str) -> bool {
        self.try_exec(&["ping", "-c1", "-W1", ip])
    }

    /// Link names inside.
    pub fn links(&self) -> Vec<String> {
        let out = self.output(&["ip", "-o", "link", "show"]);
        out.lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    }

    /// `ifindex` of a link inside.
    pub fn ifindex(&self, link: &str) -> Option<u32> {
        let out = self.output(&["cat", &format!("/sys/class/net/{link}/ifindex")]);
        out.trim().parse().ok()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connect `a` and `b` with a veth pair, addresses given as CIDRs.
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

/// A daemon process running inside a namespace; SIGKILLed on drop if
/// still running.
pub struct Daemon {
    /// The process.
    pub child: Option<Child>,
    /// Socket path.
    pub socket: PathBuf,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Namespace name.
    pub ns: String,
    /// Extra args given at start.
    pub extra: Vec<String>,
}

/// Path of the overlayd binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_overlayd")
}

impl Daemon {
    /// Start `overlayd run` inside `ns` and wait until it answers.
    pub fn start(ns: &Netns, dir: &Path, extra: &[&str]) -> Self {
        let data_dir = dir.join("data");
        let socket = dir.join("run").join("overlayd.sock");
        let mut d = Daemon {
            child: None,
            socket,
            data_dir,
            ns: ns.name.clone(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("daemon log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, bin(), "run"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--socket")
            .arg(&self.socket)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn overlayd");
        self.child = Some(child);
        let sock = self.socket.clone();
        wait_for("daemon socket answers", Duration::from_secs(30), || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("daemon exited early ({st}); log:\n{}", self.log());
                }
            }
            block_on(async {
                match Client::connect(&sock).await {
                    Ok(mut c) => matches!(
                        c.call(Request::Hello {
                            protocol_version: 1
                        })
                        .await,
                        Ok(Response::Hello { .. })
                    ),
                    Err(_) => false,
                }
            })
        });
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// Send SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    assert!(
                        st.success(),
                        "daemon exited with {st}; log:\n{}",
                        self.log()
                    );
                    break;
                }
                assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL the daemon.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again with the same directories.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Start again after `kill`.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// One request.
    pub fn call(&self, req: Request) -> Response {
        let sock = self.socket.clone();
        block_on(async move {
            let mut c = Client::connect(&sock).await.expect("connect");
            c.call_timeout(req, Duration::from_secs(60))
                .await
                .expect("call")
        })
    }

    /// One request that must not fail.
    pub fn ok(&self, req: Request) -> Response {
        let r = self.call(req.clone());
        if let Response::Err { message, .. } = &r {
            panic!("{} failed: {message}\nlog:\n{}", req.op(), self.log());
        }
        r
    }

    /// Run a CLI verb against this daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, bin()])
            .arg("--socket")
            .arg(&self.socket)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .output()
            .expect("run cli")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Poll `cond` until true or panic at the deadline.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process with its own new network namespace (`unshare -n sleep`),
/// killed on drop. Attach it by PID.
pub struct Container {
    /// The process.
    pub child: Child,
}

impl Container {
    /// Start one.
    pub fn new() -> Self {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .spawn()
            .expect("unshare");
        let pid = child.id();
        wait_for("container netns", Duration::from_secs(5), || {
            let mine = std::fs::read_link("/proc/self/ns/net").ok();
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            theirs.is_some() && theirs != mine
        });
        Container { child }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Run a command in its namespace.
    pub fn exec(&self, args: &[&str]) -> bool {
        let pid = self.pid().to_string();
        let mut v = vec!["nsenter", "-t", &pid, "-n"];
        v.extend_from_slice(args);
        try_sh(&v)
    }

    /// One ping.
    pub fn ping(&self, ip: &str) -> bool {
        self.exec(&["ping", "-c1", "-W1", ip])
    }

    /// Standard output of a command run in its namespace.
    pub fn output(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n"])
            .args(args)
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
