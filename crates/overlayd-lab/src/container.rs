//! A stand-in container: a `sleep` in a fresh network namespace of its own
//! (`unshare -n`), addressed by pid, killed and reaped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::shell::{must, run, try_sh, wait_for};

/// A process in its own new network namespace; attach it by pid.
pub struct Container {
    /// The process.
    pub child: Child,
}

impl Container {
    /// Start one and wait until it runs `sleep` in a namespace that is not
    /// ours.
    pub fn new() -> Self {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let pid = child.id();
        wait_for(
            "the container's own network namespace",
            Duration::from_secs(5),
            || {
                let is_sleep = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim() == "sleep")
                    .unwrap_or(false);
                let mine = std::fs::read_link("/proc/self/ns/net").ok();
                let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
                is_sleep && theirs.is_some() && theirs != mine
            },
        );
        Container { child }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The path of its network namespace.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid()))
    }

    fn inside(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            "nsenter".to_string(),
            "-t".into(),
            self.pid().to_string(),
            "-n".into(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// Run a command in its namespace; its output whatever its status.
    pub fn run(&self, args: &[&str]) -> Output {
        let v = self.inside(args);
        run(&v.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Whether a command in its namespace succeeded.
    pub fn exec(&self, args: &[&str]) -> bool {
        let v = self.inside(args);
        try_sh(&v.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Standard output of a command in its namespace that must succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        let v = self.inside(args);
        must(&v.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Standard output of a command in its namespace, whatever its status.
    pub fn output(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.run(args).stdout).into_owned()
    }

    /// One ping with a one-second wait.
    pub fn ping(&self, ip: &str) -> bool {
        self.exec(&["ping", "-c1", "-W1", ip])
    }
}

impl Default for Container {
    fn default() -> Self {
        Container::new()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
