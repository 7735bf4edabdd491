//! Another WireGuard implementation (wireguard-go, boringtun-cli) as the
//! other end of an interop test: started inside a test namespace with its
//! UAPI socket in a private directory (a private mount namespace shows that
//! directory as `/run/wireguard`, as `overlayd_wg::wgtool` does for wg(8)),
//! configured with wg(8), killed on drop.

#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_wg::wgtool;

use super::Netns;

/// Which implementation, and how to run it in the foreground.
#[derive(Clone)]
pub struct Impl {
    pub program: String,
    pub args: Vec<String>,
}

impl Impl {
    pub fn wireguard_go() -> Impl {
        Impl {
            program: "wireguard-go".into(),
            args: vec!["-f".into()],
        }
    }

    pub fn boringtun_cli(path: &str) -> Impl {
        Impl {
            program: path.into(),
            args: vec!["-f".into(), "--disable-drop-privileges".into()],
        }
    }
}

/// `BORINGTUN_CLI`, else `boringtun-cli` on the PATH, else where
/// bench/run.sh installs it; `None` when none of them runs.
pub fn find_boringtun_cli() -> Option<String> {
    let mut candidates: Vec<String> = std::env::var("BORINGTUN_CLI").into_iter().collect();
    candidates.push("boringtun-cli".into());
    let cache = std::env::var("OVERLAYD_BENCH_CACHE")
        .unwrap_or_else(|_| "/var/cache/overlayd-bench".into());
    candidates.push(format!("{cache}/bin/boringtun-cli"));
    candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A running foreign device.
pub struct Foreign {
    pub imp: Impl,
    pub dev: String,
    pub dir: tempfile::TempDir,
    ns: PathBuf,
    ns_name: String,
    child: Option<Child>,
    /// The `wg set` arguments applied so far, replayed after a restart.
    config: Vec<Vec<String>>,
}

impl Foreign {
    /// Starts `imp` as device `dev` in `ns` and waits for its socket.
    pub fn start(imp: Impl, ns: &Netns, dev: &str) -> Foreign {
        let mut f = Foreign {
            imp,
            dev: dev.into(),
            dir: tempfile::tempdir().unwrap(),
            ns: ns.path(),
            ns_name: ns.name.clone(),
            child: None,
            config: Vec::new(),
        };
        f.spawn();
        f
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log")).unwrap();
        let netns = std::fs::File::open(&self.ns).unwrap();
        let netns_fd = netns.as_raw_fd();
        let mut cmd = wgtool::command_with_dir(&self.imp.program, self.dir.path()).unwrap();
        cmd.args(&self.imp.args)
            .arg(&self.dev)
            .env("WG_PROCESS_FOREGROUND", "1")
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: only async-signal-safe setns between fork and exec; the
        // descriptor stays open in the parent until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.imp.program));
        drop(netns);
        self.child = Some(child);
        let sock = self.socket();
        // The socket file appears at bind(), before listen(): wait until it
        // accepts a connection, or a `wg set` right after a restart finds
        // nothing listening (seen under load as "Protocol not supported").
        super::wait_for(
            &format!("{} socket {} accepting", self.imp.program, sock.display()),
            Duration::from_secs(10),
            || std::os::unix::net::UnixStream::connect(&sock).is_ok(),
        );
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join(format!("{}.sock", self.dev))
    }

    /// The process's output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// `wg <args>` against this device's socket; panics on failure.
    pub fn wg(&self, args: &[&str]) -> String {
        let out = wgtool::wg_command(self.dir.path())
            .unwrap()
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "wg {args:?} failed: {}\n{} log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.imp.program,
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `wg set <dev> <args>`, remembered for [`Foreign::restart`]; a
    /// `private-key` argument is a file path.
    pub fn set(&mut self, args: &[&str]) {
        let mut full = vec!["set", self.dev.as_str()];
        full.extend_from_slice(args);
        self.wg(&full);
        self.config
            .push(args.iter().map(|s| s.to_string()).collect());
    }

    /// Brings the link up with `addr` (CIDR) and MTU 1420.
    pub fn link_up(&self, addr: &str) {
        super::must(
            "ip",
            &["-n", &self.ns_name, "addr", "add", addr, "dev", &self.dev],
        );
        super::must(
            "ip",
            &[
                "-n",
                &self.ns_name,
                "link",
                "set",
                &self.dev,
                "mtu",
                "1420",
                "up",
            ],
        );
    }

    /// Kills the process (its link goes with it), starts it again and
    /// replays the configuration, link address `addr` included.
    pub fn restart(&mut self, addr: &str) {
        self.kill();
        let ns = self.ns_name.clone();
        let dev = self.dev.clone();
        super::wait_for("old link gone", Duration::from_secs(10), || {
            !super::run("ip", &["-n", &ns, "link", "show", "dev", &dev])
                .status
                .success()
        });
        let _ = std::fs::remove_file(self.socket());
        self.spawn();
        for args in std::mem::take(&mut self.config) {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            self.set(&a);
        }
        self.link_up(addr);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn ns_path(&self) -> &Path {
        &self.ns
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `f` holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
