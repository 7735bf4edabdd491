//! podman end to end through the CNI plugin: Debian's podman 4.3 with its CNI
//! backend (`--network-backend cni`) and `--rootfs` (busybox-static, no image
//! pull). The daemon runs in a network namespace this test creates; podman's
//! storage, run root, CNI config and plugin directory are temporary
//! directories of this test (podman's own netns files and libcni's result
//! cache under /var/lib/cni are podman's, removed by `podman rm`).
//!
//! podman's default rlimits for root (nofile and nproc of 1048576) are above
//! what these machines allow a process to raise to, so runc fails with
//! "error setting rlimit type 7"; the test passes explicit `--ulimit`s.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use overlayd_proto::{Request, Response};
use support::*;

fn root_or_skip(test: &str) -> bool {
    can_run_root_tests(test)
        && overlayd_lab::need(
            test,
            try_sh(&["sh", "-c", "command -v podman"]),
            "podman is missing (scripts/setup.sh installs it)",
        )
        && overlayd_lab::need(
            test,
            Path::new("/bin/busybox").exists(),
            "busybox-static is missing (scripts/setup.sh installs it)",
        )
}

/// podman with every directory of its own under `dir`; removes every
/// container it ran on drop.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(dir: &Path, socket: &Path) -> Podman {
        let bin = dir.join("cni-bin");
        let conf = dir.join("cni-conf");
        for d in [&bin, &conf] {
            std::fs::create_dir_all(d).unwrap();
        }
        let plugin = Path::new(bin_path()).with_file_name("overlayd-cni");
        let plugin = if plugin.exists() {
            plugin
        } else {
            PathBuf::from(bin_path())
        };
        std::fs::copy(&plugin, bin.join("overlayd-cni")).unwrap();
        std::fs::write(
            conf.join("10-podnet.conflist"),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"podnet","plugins":[{{"type":"overlayd-cni","service":"pods","socket":"{}"}}]}}"#,
                socket.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n",
                bin.display(),
                conf.display()
            ),
        )
        .unwrap();
        let rootfs = dir.join("rootfs/bin");
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("busybox")).unwrap();
        for tool in ["sh", "sleep", "ip", "ping", "cat"] {
            std::os::unix::fs::symlink("busybox", rootfs.join(tool)).unwrap();
        }
        Podman {
            dir: dir.to_path_buf(),
        }
    }

    fn podman(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--network-backend", "cni"])
            .args(args)
            .output()
            .expect("podman")
    }

    /// `podman run` on the overlayd network with the busybox rootfs.
    fn run(&self, extra: &[&str], cmd: &[&str]) -> Output {
        let rootfs = self.dir.join("rootfs");
        let mut args = vec![
            "run",
            "--network",
            "podnet",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        args.extend_from_slice(extra);
        args.extend(["--rootfs", rootfs.to_str().unwrap()]);
        args.extend_from_slice(cmd);
        self.podman(&args)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
    }
}

fn bin_path() -> &'static str {
    bin()
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn attachments(d: &Daemon) -> usize {
    match d.ok(Request::ListAttachments) {
        Response::Attachments { attachments } => attachments.len(),
        r => panic!("{r:?}"),
    }
}

#[test]
fn podman_containers_on_an_overlayd_network_get_addresses_and_reach_each_other() {
    if !root_or_skip("cni podman") {
        return;
    }
    let node = Netns::new("pm");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&node, dir.path(), &[]);
    let pm = Podman::new(&dir.path().join("podman"), &d.socket);

    ok(
        pm.run(
            &["-d", "--name", "web1"],
            &["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"],
        ),
        "podman run web1",
    );
    let addr = ok(
        pm.podman(&[
            "exec", "web1", "/bin/ip", "-4", "-o", "addr", "show", "eth0",
        ]),
        "ip addr in web1",
    );
    let ip = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("web1 has no IPv4 address: {addr}"))
        .to_string();
    assert_eq!(attachments(&d), 1, "overlayd records web1's attachment");
    ok(
        pm.run(&["--rm"], &["/bin/ping", "-c", "1", "-W", "2", &ip]),
        "a second container pings web1",
    );
    ok(
        pm.podman(&["rm", "--force", "--time", "0", "web1"]),
        "podman rm",
    );
    wait_for(
        "web1's attachment is released",
        Duration::from_secs(10),
        || attachments(&d) == 0,
    );
}
