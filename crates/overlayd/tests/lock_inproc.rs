//! Start-up after kill -9 (issue 11): when the instance lock is still held
//! in the name of a daemon that is gone — killed while it was forking a
//! child, which keeps the lock until it execs — the next daemon waits for
//! it instead of refusing to start (in process, fake host). A live holder
//! is still refused at once (`host_networks.rs`, second daemon test).

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use overlayd::config::Config;
use overlayd_host::FakeHost;
use overlayd_state::{DataDir, InstanceLock, StateError};
use overlayd_wg::FakeWg;
use support::inproc::Instance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_waits_for_a_lock_left_by_a_dead_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().join("data"),
        socket: dir.path().join("run/overlayd.sock"),
        dns_port: 0,
        ..Config::default()
    };
    let lock = DataDir::new(&cfg.data_dir).lock_path();
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    // The recorded holder: a process that has exited.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    // The lock itself, held for a moment by another process.
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "0.5"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let f = std::fs::File::open(&lock).unwrap();
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => break,
            Ok(l) => drop(l),
            Err((_, e)) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "flock never took the lock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    match InstanceLock::acquire(&cfg.data_dir) {
        Err(StateError::Locked { pid, .. }) => assert_eq!(pid, Some(dead)),
        r => panic!(
            "the lock must be held in the dead daemon's name: {:?}",
            r.map(|_| ())
        ),
    }
    let t = Instant::now();
    let inst =
        Instance::relaunch(dir, cfg, Arc::new(FakeHost::new()), Arc::new(FakeWg::new())).await;
    println!(
        "started {:?} after the dead daemon's lock was seen",
        t.elapsed()
    );
    assert!(holder.wait().unwrap().success());
    let _ = inst.shutdown().await;
}
