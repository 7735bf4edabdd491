//! The `overlayd` process under test: spawn it in the node namespace, time
//! readiness and SIGTERM exit, and read its log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use overlayd_client::Client;
use overlayd_lab::NetnsProcess;
use tokio::runtime::Runtime;

use crate::interrupt::bail_if_interrupted;
use crate::{DAEMON_TIMEOUT, HELLO_POLL};

/// The daemon, run as `ip netns exec NODE overlayd run` (the lab's
/// [`NetnsProcess`]); SIGKILLed on drop if still running.
pub(crate) struct Daemon {
    process: NetnsProcess,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// A daemon (not started) for namespace `ns`, with its data dir, socket
    /// and log under `dir`.
    pub(crate) fn new(ns: &str, dir: &Path) -> Self {
        let socket = dir.join("run").join("overlayd.sock");
        let log = dir.join("daemon.log");
        let args = vec![
            "run".into(),
            "--data-dir".into(),
            dir.join("data").into(),
            "--socket".into(),
            socket.clone().into(),
        ];
        let process = NetnsProcess::new(ns, env!("CARGO_BIN_EXE_overlayd"), args, &log)
            .env(
                "OVERLAYD_LOG",
                "info,hickory_server=warn,hickory_proto=warn",
            )
            .env("NO_COLOR", "1")
            .poll_every(HELLO_POLL);
        Daemon {
            process,
            socket,
            log,
        }
    }

    /// Spawn the daemon and time spawn → first `hello` answered.
    pub(crate) fn start(&mut self, rt: &Runtime) -> Duration {
        self.process.spawn();
        let socket = self.socket.clone();
        self.process.wait_ready(DAEMON_TIMEOUT, || {
            bail_if_interrupted();
            hello(rt, &socket)
        })
    }

    /// SIGTERM the daemon and time until it has exited cleanly.
    pub(crate) fn stop(&mut self) -> Duration {
        let Some((status, took)) = self.process.stop(DAEMON_TIMEOUT) else {
            return Duration::ZERO;
        };
        assert!(
            status.success(),
            "daemon exited with {status} on SIGTERM; log:\n{}",
            self.log_tail()
        );
        took
    }

    /// A persistent client connection.
    pub(crate) fn client(&self, rt: &Runtime) -> Client {
        rt.block_on(Client::connect(&self.socket))
            .expect("connect to the daemon socket")
    }

    /// The last 40 lines of the daemon's log.
    pub(crate) fn log_tail(&self) -> String {
        self.process.log_tail(40)
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

/// True when the socket answers a `hello`.
fn hello(rt: &Runtime, socket: &Path) -> bool {
    rt.block_on(Client::answers(socket, Duration::from_secs(5)))
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
