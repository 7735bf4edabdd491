//! Test support for root tests: per-run network namespaces removed on drop,
//! helper processes killed on drop, command helpers and deadline waits.
//!
//! Everything the tests build lives in namespaces named `ovl-t-<pid>-<n>-<tag>`;
//! nothing touches the root namespace's links, routes or nftables.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Returns early from a test with a clear message when not root (or fails
/// it when `OVERLAYD_REQUIRE_ROOT=1`, see `overlayd_lab::need_root`).
#[macro_export]
macro_rules! require_root {
    () => {
        if !overlayd_lab::need_root(module_path!()) {
            return;
        }
    };
}

/// A short name unique to this process run: `<tag><pid%10000><n>` (≤ 15 bytes
/// for tags of up to 5 bytes), usable as an interface name.
pub fn ifname(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{}{n}", std::process::id() % 10000)
}

/// Runs a command, returns its output (never panics on non-zero exit).
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout.
pub fn must(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace created for one test, deleted on drop.
pub struct TestNetns {
    /// Name under /run/netns.
    pub name: String,
}

impl TestNetns {
    /// Creates `ovl-t-<pid>-<n>-<tag>` and brings its `lo` up.
    pub fn new(tag: &str) -> TestNetns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("ovl-t-{}-{n}-{tag}", std::process::id());
        must(&["ip", "netns", "add", &name]);
        let ns = TestNetns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The nsfs path of the namespace.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs a command inside the namespace; must succeed; returns stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        must(&full)
    }

    /// Runs a command inside the namespace; returns whether it succeeded.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full).status.success()
    }

    /// Starts a TCP probe server on `ip:port` inside this namespace.
    pub fn serve(&self, ip: &str, port: u16) -> ProbeServer {
        ProbeServer::start(self.path(), ip, port)
    }

    /// Connects to `ip:port` from inside this namespace; see [`probe`].
    pub fn probe(&self, ip: &str, port: u16) -> Option<String> {
        probe(self.path(), ip, port)
    }

    /// Probes until answered or the deadline passes; returns the last answer.
    pub fn probe_within(&self, ip: &str, port: u16, within: Duration) -> Option<String> {
        let mut answer = None;
        wait_until(within, || {
            answer = self.probe(ip, port);
            answer.is_some()
        });
        answer
    }

    /// Starts a UDP server on `ip:port` inside the namespace (see [`UdpServer`]).
    pub fn serve_udp(&self, ip: &str, port: u16) -> UdpServer {
        UdpServer::start(self.path(), ip, port)
    }

    /// Like [`TestNetns::probe_within`], over UDP ([`probe_udp`]).
    pub fn probe_udp_within(&self, ip: &str, port: u16, within: Duration) -> Option<String> {
        let mut answer = None;
        wait_until(within, || {
            answer = probe_udp(self.path(), ip, port);
            answer.is_some()
        });
        answer
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
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

/// A `sleep` process in its own fresh network namespace (`unshare -n`), killed
/// and reaped on drop; stands in for a container addressed by PID.
pub struct Sleeper {
    child: Child,
}

impl Sleeper {
    /// Starts `unshare -n sleep 120` and waits until the sleep runs in a new netns.
    pub fn new() -> Sleeper {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "120"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let s = Sleeper { child };
        let me = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let pid = s.pid();
        let ok = wait_until(Duration::from_secs(5), || {
            let exe_is_sleep = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "sleep")
                .unwrap_or(false);
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            exe_is_sleep && ns.is_some() && ns.as_ref() != Some(&me)
        });
        assert!(ok, "sleeper did not enter its own netns in time");
        s
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The path of its network namespace.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid()))
    }

    /// Starts a TCP probe server on `ip:port` inside its namespace.
    pub fn serve(&self, ip: &str, port: u16) -> ProbeServer {
        ProbeServer::start(self.path(), ip, port)
    }

    /// Probes until answered or the deadline passes.
    pub fn probe_within(&self, ip: &str, port: u16, within: Duration) -> Option<String> {
        let mut answer = None;
        wait_until(within, || {
            answer = probe(self.path(), ip, port);
            answer.is_some()
        });
        answer
    }

    /// Runs a command in its netns (via nsenter); returns whether it succeeded.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        let pid = self.pid().to_string();
        let mut full = vec!["nsenter", "-t", &pid, "-n"];
        full.extend_from_slice(args);
        run(&full).status.success()
    }

    /// Runs a command in its netns; must succeed; returns stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let pid = self.pid().to_string();
        let mut full = vec!["nsenter", "-t", &pid, "-n"];
        full.extend_from_slice(args);
        must(&full)
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it returns true or `within` elapses.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connects two namespaces with a veth pair and addresses both ends.
pub fn wire(a: &TestNetns, a_if: &str, a_addr: &str, b: &TestNetns, b_if: &str, b_addr: &str) {
    must(&[
        "ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    a.exec(&["ip", "addr", "add", a_addr, "dev", a_if]);
    a.exec(&["ip", "link", "set", a_if, "up"]);
    b.exec(&["ip", "addr", "add", b_addr, "dev", b_if]);
    b.exec(&["ip", "link", "set", b_if, "up"]);
}

/// Enters the network namespace at `path` on the calling thread. Only call on
/// a thread that exits afterwards.
fn enter_ns(path: &Path) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// A TCP server inside a namespace that answers every connection with the
/// source address it saw, then closes. Stopped and joined on drop.
pub struct ProbeServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProbeServer {
    fn start(ns: PathBuf, ip: &str, port: u16) -> ProbeServer {
        let addr: SocketAddr = format!("{ip}:{port}").parse().expect("probe address");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            enter_ns(&ns);
            let listener = match TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            listener.set_nonblocking(true).expect("nonblocking");
            let _ = tx.send(Ok(()));
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.write_all(peer.ip().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let started = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("probe server did not start");
        if let Err(e) = started {
            panic!("probe server cannot bind {addr}: {e}");
        }
        ProbeServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ProbeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from inside the namespace at `ns` to `ip:port` (1 s timeout) and
/// returns what the probe server answered: the source address it saw.
pub fn probe(ns: PathBuf, ip: &str, port: u16) -> Option<String> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().expect("probe address");
    std::thread::spawn(move || {
        enter_ns(&ns);
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        (!buf.is_empty()).then_some(buf)
    })
    .join()
    .ok()
    .flatten()
}

/// A UDP server inside a namespace that answers every datagram with the
/// source address it saw. Stopped and joined on drop.
pub struct UdpServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpServer {
    fn start(ns: PathBuf, ip: &str, port: u16) -> UdpServer {
        let addr: SocketAddr = format!("{ip}:{port}").parse().expect("udp address");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            enter_ns(&ns);
            let socket = match UdpSocket::bind(addr) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("read timeout");
            let _ = tx.send(Ok(()));
            let mut buf = [0u8; 64];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(peer.ip().to_string().as_bytes(), peer);
                }
            }
        });
        let started = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("udp server did not start");
        if let Err(e) = started {
            panic!("udp server cannot bind {addr}: {e}");
        }
        UdpServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends one datagram from inside the namespace at `ns` to `ip:port` and
/// returns the answer (the source address the server saw), waiting 1 s.
pub fn probe_udp(ns: PathBuf, ip: &str, port: u16) -> Option<String> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().expect("probe address");
    std::thread::spawn(move || {
        enter_ns(&ns);
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(local).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.send_to(b"?", addr).ok()?;
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .join()
    .ok()
    .flatten()
}
