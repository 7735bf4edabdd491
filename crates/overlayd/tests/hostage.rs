//! No request holds the others hostage, and a daemon out of file
//! descriptors does not spin (issue 11, items 5 and 6), end to end in
//! namespaces this test creates:
//! - a peer endpoint whose name the resolver never answers delays only that
//!   request: `status` keeps answering at once while it waits;
//! - when `accept` fails (open-file limit reached), the daemon backs off
//!   instead of spinning, logs a bounded number of lines, and serves again
//!   once descriptors are free.

mod support;

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use overlayd_proto::{Request, Response, Scope};
use support::*;

/// `/etc/netns/NAME/resolv.conf`, which `ip netns exec` mounts over
/// `/etc/resolv.conf` for processes it starts; removed on drop.
struct NetnsResolvConf(std::path::PathBuf);

impl NetnsResolvConf {
    fn new(ns: &Netns, text: &str) -> Self {
        let dir = std::path::Path::new("/etc/netns").join(&ns.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
        NetnsResolvConf(dir)
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A DNS "server" on 127.0.0.1:53 inside `ns` that reads queries and never
/// answers; `asked` turns true at the first query.
fn silent_resolver(ns: &Netns, asked: Arc<AtomicBool>) {
    let file = std::fs::File::open(ns.path()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:53").unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 512];
        while sock.recv_from(&mut buf).is_ok() {
            asked.store(true, Ordering::SeqCst);
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("silent resolver bound");
}

fn timed(d: &Daemon, req: Request) -> (Response, Duration) {
    let t = Instant::now();
    let r = d.call(req);
    (r, t.elapsed())
}

#[test]
fn an_unanswered_peer_name_delays_only_its_own_request() {
    if !can_run_root_tests("hostage resolver") {
        return;
    }
    let node = Netns::new("hr");
    let _conf = NetnsResolvConf::new(
        &node,
        "nameserver 127.0.0.1\noptions timeout:10 attempts:1\n",
    );
    let asked = Arc::new(AtomicBool::new(false));
    silent_resolver(&node, asked.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&node, dir.path(), &[]);
    d.ok(Request::SetupGlobalOverlay {
        deployment: "d".into(),
        instance_id: "i".into(),
        cluster_cidr: "10.200.0.0/16".into(),
        slice_cidr: None,
        wg_port: 51820,
        nat_enabled: false,
    });
    let socket = d.socket.clone();
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        let r = block_on(async move {
            let mut c = overlayd_client::Client::connect(&socket).await.unwrap();
            c.call_timeout(
                Request::AddPeer {
                    public_key: "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=".into(),
                    endpoint: "peer9.overlayd-test.lan:51820".into(),
                    allowed_ips: "10.200.99.0/24".into(),
                    persistent_keepalive_secs: 0,
                    scope: Some(Scope::Global),
                },
                Duration::from_secs(60),
            )
            .await
            .unwrap()
        });
        (r, t.elapsed())
    });
    wait_for("the resolver is asked", Duration::from_secs(10), || {
        asked.load(Ordering::SeqCst)
    });
    // The add_peer is now waiting on the resolver: other requests are not.
    for _ in 0..5 {
        let (r, took) = timed(&d, Request::Status);
        assert!(matches!(r, Response::Status(_)), "{r:?}");
        assert!(
            took < Duration::from_secs(1),
            "status took {took:?} while a peer name was being resolved"
        );
        let (r, took) = timed(&d, Request::ListNetworks);
        assert!(matches!(r, Response::Networks { .. }), "{r:?}");
        assert!(took < Duration::from_secs(1), "list_networks took {took:?}");
    }
    assert!(
        !slow.is_finished(),
        "add_peer is still waiting on the resolver"
    );
    let (r, took) = slow.join().unwrap();
    match r {
        Response::Err { message, .. } => assert!(
            message.contains("resolving") && message.contains("give an IP address"),
            "{message}"
        ),
        r => panic!("an unresolvable endpoint must fail: {r:?}"),
    }
    println!("add_peer with an unanswered name failed after {took:.1?}; status answered meanwhile");
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`: state is field 3; utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn accept_failures_back_off_and_the_daemon_serves_again() {
    if !can_run_root_tests("hostage accept") {
        return;
    }
    let node = Netns::new("ha");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&node, dir.path(), &[]);
    let pid = d.proc.child.as_ref().unwrap().id();
    let limit = open_fds(pid) + 3;
    // Only the soft limit is lowered (and later restored): raising a hard
    // limit of another process may not be allowed here.
    let pid_s = pid.to_string();
    let soft = |n: &str| sh(&["prlimit", "--pid", &pid_s, &format!("--nofile={n}:")]);
    let before = sh(&[
        "prlimit",
        "--pid",
        &pid_s,
        "--nofile",
        "--raw",
        "--noheadings",
        "--output=SOFT",
    ]);
    let before = String::from_utf8_lossy(&before.stdout).trim().to_string();
    soft(&limit.to_string());
    // More clients than descriptors left: the kernel queues them on the
    // listening socket; `accept` then fails with EMFILE.
    let clients: Vec<std::os::unix::net::UnixStream> = (0..16)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&d.socket).ok())
        .collect();
    assert!(clients.len() > 3, "clients queued: {}", clients.len());
    wait_for(
        "accept fails and backs off",
        Duration::from_secs(10),
        || d.log().contains("accept failed; backing off"),
    );
    let (ticks0, lines0) = (cpu_ticks(pid), d.log().lines().count());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2)); // the measurement window
    let hz = 100.0; // USER_HZ on Linux
    let cpu = (cpu_ticks(pid) - ticks0) as f64 / hz / t0.elapsed().as_secs_f64();
    let lines = d.log().lines().count() - lines0;
    println!(
        "out of descriptors: daemon CPU {:.1}% and {lines} log lines over 2 s",
        cpu * 100.0
    );
    assert!(cpu < 0.25, "the daemon spins at {:.0}% CPU", cpu * 100.0);
    assert!(lines <= 6, "{lines} log lines in 2 s");
    drop(clients);
    soft(&before);
    wait_for("the daemon serves again", Duration::from_secs(10), || {
        block_on(async {
            match overlayd_client::Client::connect(&d.socket).await {
                Ok(mut c) => matches!(
                    c.call_timeout(Request::Status, Duration::from_secs(2))
                        .await,
                    Ok(Response::Status(_))
                ),
                Err(_) => false,
            }
        })
    });
}
