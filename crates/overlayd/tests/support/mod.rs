//! Shared support for end-to-end tests: the namespace lab
//! (`overlayd-lab`: namespaces and containers that clean up on drop, deadline
//! waits) re-exported, plus a daemon process under test run inside a
//! namespace. Nothing here touches the root namespace.

#![allow(dead_code)]

pub mod cluster;
pub mod inproc;
pub mod requests;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use overlayd_lab::{
    link_pair, sh, try_sh, unique, uplinked_node, wait_for, Container, Netns, NODE_UPLINK, OUTSIDE,
};

use overlayd_client::Client;
use overlayd_proto::{Request, Response};

/// True when the tests may create namespaces (root and `ip` present).
/// Otherwise the test is skipped, or fails under `OVERLAYD_REQUIRE_ROOT=1`.
pub fn can_run_root_tests(test: &str) -> bool {
    overlayd_lab::need_root(test) && overlayd_lab::need_tool(test, "ip", "-V")
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
