//! The instance lock across processes: a second instance is refused and
//! told the holder's pid; the lock is released when the holder dies, even
//! by SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_state::{InstanceLock, StateError};

const DIR_ENV: &str = "OVERLAYD_STATE_LOCK_DIR";

/// Child side: take the lock, say so, and hold it until killed.
#[test]
#[ignore = "child process of lock_is_exclusive_across_processes"]
fn lock_child_holds_lock() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let _lock = InstanceLock::acquire(PathBuf::from(dir)).expect("child lock");
    println!("LOCKED");
    let stop = Instant::now() + Duration::from_secs(60);
    while Instant::now() < stop {
        std::thread::park_timeout(Duration::from_secs(1));
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lock_is_exclusive_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_child_holds_lock",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(DIR_ENV, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let child_pid = child.0.id();
    let stdout = child.0.stdout.take().unwrap();
    let mut locked = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains("LOCKED") {
            locked = true;
            break;
        }
    }
    assert!(locked, "child never reported taking the lock");

    match InstanceLock::acquire(&dir) {
        Err(e @ StateError::Locked { .. }) => {
            let StateError::Locked { pid, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*pid, Some(child_pid));
            assert!(e.to_string().contains(&format!("pid {child_pid}")), "{e}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // The kernel drops the flock with the process; retry until a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lock = loop {
        match InstanceLock::acquire(&dir) {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("lock not released after holder died: {e}"),
        }
    };
    let pid: u32 = std::fs::read_to_string(lock.path())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, std::process::id());
}
