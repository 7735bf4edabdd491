//! `overlayd demo` end to end, as root: the real binary builds its cluster
//! in namespaces named after its own pid, every check passes, and nothing
//! of it is left afterwards — after a normal run and after Ctrl-C. As a
//! non-root user it refuses with a clear message.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_overlayd");

/// Every check the demo must report.
const CHECKS: &[&str] = &[
    "base overlay n1→n2",
    "base overlay n1→n3",
    "dedicated db1→db2",
    "wg show db on n1",
    "underlay carries only WireGuard",
    "nat egress nat1→outside",
    "dns web1.overlay.internal",
    "isolation a1↔a2",
    "isolation a↮b blocked",
    "restart n1: bridges kept",
    "restart n1: keys and ports kept",
    "restart n1: marker unchanged",
    "restart n1: traffic recovers",
    "published port outside→n1:8080",
];

fn is_root(test: &str) -> bool {
    overlayd_lab::need_root(test)
}

/// Namespaces left by the demo process `pid`.
fn leftovers(pid: u32) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let prefix = format!("ovd-{pid}-");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Kills the demo and removes what it left if the test fails midway.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let pid = c.id();
            let _ = c.kill();
            let _ = c.wait();
            let _ = Command::new(BIN)
                .args(["demo", "--cleanup", &pid.to_string()])
                .output();
        }
    }
}

/// Start the demo with stdout read line by line on a thread.
fn spawn_demo() -> (Guard, u32, mpsc::Receiver<String>) {
    spawn_demo_with(&[])
}

/// [`spawn_demo`] with extra arguments.
fn spawn_demo_with(args: &[&str]) -> (Guard, u32, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("demo")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn overlayd demo");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Guard(Some(child)), pid, rx)
}

/// Wait for the demo to exit within `timeout`, collecting its output.
fn finish(guard: &mut Guard, rx: &mpsc::Receiver<String>, timeout: Duration) -> (i32, String) {
    let deadline = Instant::now() + timeout;
    let mut out = String::new();
    loop {
        while let Ok(l) = rx.try_recv() {
            out.push_str(&l);
            out.push('\n');
        }
        let child = guard.0.as_mut().expect("demo running");
        if let Some(st) = child.try_wait().expect("try_wait") {
            guard.0 = None;
            // Drain what the reader thread still holds.
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
                out.push_str(&l);
                out.push('\n');
            }
            return (st.code().unwrap_or(-1), out);
        }
        assert!(
            Instant::now() < deadline,
            "demo did not finish within {timeout:?}; output so far:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn demo_passes_every_check_and_leaves_nothing() {
    if !is_root("demo") {
        return;
    }
    let (mut guard, pid, rx) = spawn_demo();
    let (code, out) = finish(&mut guard, &rx, Duration::from_secs(180));
    assert_eq!(code, 0, "demo failed:\n{out}");
    let table: Vec<&str> = out.lines().filter(|l| l.starts_with("| ")).collect();
    for check in CHECKS {
        assert!(
            table
                .iter()
                .any(|l| l.starts_with(&format!("| {check} ")) && l.contains("| pass ")),
            "the final table has no passing row for {check:?}:\n{out}"
        );
    }
    assert!(
        out.contains(&format!("{n} of {n} checks passed", n = CHECKS.len())),
        "{out}"
    );
    assert!(out.contains("cleaned up"), "{out}");
    assert!(
        leftovers(pid).is_empty(),
        "namespaces left: {:?}",
        leftovers(pid)
    );
    assert!(
        !std::env::temp_dir()
            .join(format!("overlayd-demo-{pid}"))
            .exists(),
        "working directory left"
    );
}

#[test]
fn demo_cleans_up_on_ctrl_c() {
    if !is_root("demo_ctrl_c") {
        return;
    }
    let (mut guard, pid, rx) = spawn_demo();
    // Interrupt once the cluster is up (containers attached).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
                if l.contains("• containers:") {
                    break;
                }
            }
            Err(_) => panic!("demo never attached its containers:\n{seen}"),
        }
    }
    assert!(!leftovers(pid).is_empty(), "the demo's namespaces exist");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let (code, out) = finish(&mut guard, &rx, Duration::from_secs(60));
    assert_eq!(code, 130, "exit code after Ctrl-C:\n{seen}{out}");
    assert!(out.contains("interrupted"), "{out}");
    assert!(
        leftovers(pid).is_empty(),
        "namespaces left after Ctrl-C: {:?}",
        leftovers(pid)
    );
    // The daemons went with their namespaces.
    let ps = Command::new("pgrep")
        .args(["-f", &format!("overlayd-demo-{pid}/")])
        .output()
        .expect("pgrep");
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "processes of the demo still running"
    );
}

#[test]
fn demo_refuses_without_root() {
    if !is_root("demo_non_root") {
        return;
    }
    if !overlayd_lab::need_tool("demo_non_root", "setpriv", "--version") {
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "demo",
        ])
        .output();
    let Ok(out) = out else {
        eprintln!("skipping demo_non_root: setpriv is not installed");
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("overlayd demo needs root") && err.contains("sudo overlayd demo"),
        "{err}"
    );
}

#[test]
fn demo_cluster_nodes_join_and_mesh_through_etcd_with_no_hand_wiring() {
    if !is_root("demo_cluster")
        || !overlayd_lab::need_tool("demo_cluster", "etcd", "--version")
        || !overlayd_lab::need_tool("demo_cluster", "curl", "--version")
    {
        return;
    }
    let (mut guard, pid, rx) =
        spawn_demo_with(&["--cluster", "--nodes", "3", "--steady-secs", "2"]);
    let (code, out) = finish(&mut guard, &rx, Duration::from_secs(240));
    assert_eq!(code, 0, "demo --cluster failed:\n{out}");
    for check in [
        "etcd",
        "join convergence",
        "slice leases",
        "etcd load at rest",
        "late joiner",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("| {check} ")) && l.contains("| pass ")),
            "no passing row for {check:?}:\n{out}"
        );
    }
    for n in 1..=4 {
        assert!(out.contains(&format!("n{n}: joined in ")), "{out}");
    }
    let figures = out
        .lines()
        .find(|l| l.starts_with("figures: "))
        .unwrap_or_else(|| panic!("no figures line:\n{out}"));
    for key in ["nodes=3", "join_convergence_ms=", "new_node_reachable_ms="] {
        assert!(figures.contains(key), "{figures}");
    }
    assert!(!figures.contains("=-"), "every figure measured: {figures}");
    assert!(out.contains("cleaned up"), "{out}");
    assert!(
        leftovers(pid).is_empty(),
        "namespaces left: {:?}",
        leftovers(pid)
    );
}
