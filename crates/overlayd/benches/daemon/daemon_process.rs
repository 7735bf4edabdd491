//! The `overlayd` process under test: spawn it in the node namespace, time
//! readiness and SIGTERM exit, and read its log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_client::Client;
use overlayd_proto::{Request, Response};
use tokio::runtime::Runtime;

use crate::interrupt::bail_if_interrupted;
use crate::{DAEMON_TIMEOUT, HELLO_POLL};

/// The daemon, run as `ip netns exec NODE overlayd run`; SIGKILLed on drop
/// if still running.
pub(crate) struct Daemon {
    ns: String,
    data_dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// A daemon (not started) for namespace `ns`, with its data dir, socket
    /// and log under `dir`.
    pub(crate) fn new(ns: &str, dir: &Path) -> Self {
        Daemon {
            ns: ns.to_string(),
            data_dir: dir.join("data"),
            socket: dir.join("run").join("overlayd.sock"),
            log: dir.join("daemon.log"),
            child: None,
        }
    }

    /// Spawn the daemon and time spawn → first `hello` answered.
    pub(crate) fn start(&mut self, rt: &Runtime) -> Duration {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open daemon log");
        let t0 = Instant::now();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                env!("CARGO_BIN_EXE_overlayd"),
                "run",
            ])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--socket")
            .arg(&self.socket)
            .env(
                "OVERLAYD_LOG",
                "info,hickory_server=warn,hickory_proto=warn",
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn overlayd");
        self.child = Some(child);
        let deadline = t0 + DAEMON_TIMEOUT;
        loop {
            if self.hello(rt) {
                return t0.elapsed();
            }
            bail_if_interrupted();
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!("daemon exited early ({status}); log:\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not answer within {DAEMON_TIMEOUT:?}; log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(HELLO_POLL);
        }
    }

    /// True when the socket answers a `hello`.
    fn hello(&self, rt: &Runtime) -> bool {
        rt.block_on(async {
            let Ok(mut c) = Client::connect(&self.socket).await else {
                return false;
            };
            matches!(
                c.call_timeout(
                    Request::Hello {
                        protocol_version: 1
                    },
                    Duration::from_secs(5)
                )
                .await,
                Ok(Response::Hello { .. })
            )
        })
    }

    /// SIGTERM the daemon and time until it has exited cleanly.
    pub(crate) fn stop(&mut self) -> Duration {
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        let t0 = Instant::now();
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM daemon");
        let deadline = t0 + DAEMON_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let took = t0.elapsed();
                    assert!(
                        status.success(),
                        "daemon exited with {status} on SIGTERM; log:\n{}",
                        self.log_tail()
                    );
                    return took;
                }
                Ok(None) => {}
                Err(e) => panic!("waiting for the daemon: {e}"),
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon did not stop on SIGTERM within {DAEMON_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A persistent client connection.
    pub(crate) fn client(&self, rt: &Runtime) -> Client {
        rt.block_on(Client::connect(&self.socket))
            .expect("connect to the daemon socket")
    }

    /// The last 40 lines of the daemon's log.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Counters of the last "state reconciled" log line, e.g.
    /// `adopted=565 recreated=0 orphans=0 reclaimed=0`.
    pub(crate) fn last_reconcile(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let Some(line) = text.lines().rev().find(|l| l.contains("state reconciled")) else {
            return "(no \"state reconciled\" line in the log)".into();
        };
        let fields: Vec<String> = ["adopted", "recreated", "orphans", "reclaimed"]
            .iter()
            .filter_map(|key| log_field(line, key).map(|v| format!("{key}={v}")))
            .collect();
        if fields.is_empty() {
            line.trim().to_string()
        } else {
            fields.join(" ")
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `line` without ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Value of `key=value` in a tracing log line.
fn log_field(line: &str, key: &str) -> Option<String> {
    let line = strip_ansi(line);
    let pat = format!("{key}=");
    let start = line.find(&pat)? + pat.len();
    let value: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!value.is_empty()).then_some(value)
}
