//! A long-running program under test (a daemon) started inside a network
//! namespace with its stderr in a log file: wait until it is ready against
//! a deadline (failing at once if it exits), stop it with SIGTERM and time
//! the exit, SIGKILL it on drop.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A program run as `ip netns exec NS PROGRAM ARGS…`; SIGKILLed on drop if
/// still running.
pub struct NetnsProcess {
    /// The namespace it runs in.
    pub ns: String,
    /// The running process, when started.
    pub child: Option<Child>,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    log: PathBuf,
    poll: Duration,
    own_group: bool,
}

impl NetnsProcess {
    /// A process (not started) of `program` with `args` in namespace `ns`,
    /// whose stderr is appended to `log`.
    pub fn new(ns: &str, program: impl Into<PathBuf>, args: Vec<OsString>, log: &Path) -> Self {
        NetnsProcess {
            ns: ns.to_string(),
            child: None,
            program: program.into(),
            args,
            env: Vec::new(),
            log: log.to_path_buf(),
            poll: Duration::from_millis(20),
            own_group: false,
        }
    }

    /// Set an environment variable for every start.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// How often [`NetnsProcess::wait_ready`] asks (default 20 ms): the
    /// resolution of the readiness time it returns.
    pub fn poll_every(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    /// Run it in a process group of its own, so a Ctrl-C at the terminal
    /// reaches only the caller (which then stops it in order).
    pub fn own_process_group(mut self) -> Self {
        self.own_group = true;
        self
    }

    /// Start it (again). Panics when it is running or cannot be spawned.
    pub fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("spawn {}: {e}", self.program.display());
        }
    }

    /// Start it (again), or say why not.
    pub fn try_spawn(&mut self) -> std::io::Result<()> {
        if self.child.is_some() {
            return Err(std::io::Error::other("already running"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if self.own_group {
            cmd.process_group(0);
        }
        self.child = Some(cmd.spawn()?);
        Ok(())
    }

    /// Its exit status if it has exited (it is then no longer running).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Send SIGTERM without waiting; false when it is not running.
    pub fn terminate(&self) -> bool {
        let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) else {
            return false;
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .is_ok()
    }

    /// Let it run on after this handle is dropped.
    pub fn forget(&mut self) {
        self.child = None;
    }

    /// Poll `ready` until it holds, and return how long that took. Panics,
    /// with the log, when the process exits first or `within` passes.
    pub fn wait_ready(&mut self, within: Duration, mut ready: impl FnMut() -> bool) -> Duration {
        let t0 = Instant::now();
        loop {
            if ready() {
                return t0.elapsed();
            }
            if let Some(status) = self.exited() {
                panic!(
                    "process exited early ({status}); log:\n{}",
                    self.log_tail(60)
                );
            }
            assert!(
                t0.elapsed() < within,
                "not ready within {within:?}; log:\n{}",
                self.log_tail(60)
            );
            std::thread::sleep(self.poll);
        }
    }

    /// SIGTERM it and wait (up to `within`) for it to exit: its status and
    /// how long it took. `None` when it was not running. At the deadline it
    /// is SIGKILLed and this panics.
    pub fn stop(&mut self, within: Duration) -> Option<(ExitStatus, Duration)> {
        self.terminate();
        let mut child = self.child.take()?;
        let t0 = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some((status, t0.elapsed())),
                Ok(None) => {}
                Err(e) => panic!("waiting for {}: {e}", self.program.display()),
            }
            if t0.elapsed() >= within {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not stop on SIGTERM within {within:?}",
                    self.program.display()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGKILL it and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's last `lines` lines.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NetnsProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
