//! Shared support for end-to-end tests: the namespace lab
//! (`overlayd-lab`: namespaces and containers that clean up on drop, deadline
//! waits) re-exported, plus a daemon process under test run inside a
//! namespace. Nothing here touches the root namespace.

#![allow(dead_code)]

pub mod cluster;
pub mod inproc;
pub mod node_lab;
pub mod overlay_nodes;
pub mod requests;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

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
    /// The process (`proc.child` while running).
    pub proc: overlayd_lab::NetnsProcess,
    /// Socket path.
    pub socket: PathBuf,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Namespace name.
    pub ns: String,
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
        let mut args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            "--data-dir".into(),
            data_dir.clone().into(),
            "--socket".into(),
            socket.clone().into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let proc =
            overlayd_lab::NetnsProcess::new(&ns.name, bin(), args, &data_dir.with_extension("log"));
        let mut d = Daemon {
            proc,
            socket,
            data_dir,
            ns: ns.name.clone(),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        self.proc.spawn();
        let sock = self.socket.clone();
        self.proc
            .wait_ready(Duration::from_secs(30), || hello(&sock));
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Send SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some((st, _)) = self.proc.stop(Duration::from_secs(20)) {
            assert!(
                st.success(),
                "daemon exited with {st}; log:\n{}",
                self.log()
            );
        }
    }

    /// SIGKILL the daemon.
    pub fn kill(&mut self) {
        self.proc.kill();
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

    /// Run a CLI verb that must succeed; its standard output (panics with
    /// both outputs and the daemon's log otherwise).
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
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

/// Whether the socket at `sock` answers a `hello`.
pub fn hello(sock: &Path) -> bool {
    block_on(Client::answers(sock, Duration::from_secs(60)))
}

/// Run a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}
