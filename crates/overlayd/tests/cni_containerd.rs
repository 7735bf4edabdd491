//! containerd end to end through the CNI plugin: Debian's containerd 1.6 and
//! `ctr run --cni --rootfs` (busybox-static rootfs, no image pull) inside a
//! network namespace and a private mount namespace this test creates, with
//! overlay mounts on /etc, /opt, /run and /var so `ctr`'s fixed CNI
//! directories and containerd's shim sockets never touch the machine's own.
//! The daemon's socket lives outside the overlaid directories.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use overlayd_proto::{Handle, Request, Response, ServiceMode};
use support::*;

const NET: &str = "ovl";

fn root_or_skip(test: &str) -> bool {
    let required = std::env::var("OVERLAYD_REQUIRE_ROOT").as_deref() == Ok("1");
    if !can_run_root_tests(test) {
        assert!(
            !required,
            "{test} needs root and OVERLAYD_REQUIRE_ROOT=1 is set"
        );
        return false;
    }
    for tool in ["containerd", "ctr", "runc", "containerd-shim-runc-v2"] {
        if !try_sh(&["sh", "-c", &format!("command -v {tool}")]) {
            assert!(
                !required,
                "{tool} is missing; scripts/setup.sh installs containerd"
            );
            eprintln!("skipping {test}: {tool} is not installed (scripts/setup.sh)");
            return false;
        }
    }
    if !Path::new("/bin/busybox").exists() {
        assert!(
            !required,
            "busybox is missing; scripts/setup.sh installs busybox-static"
        );
        return false;
    }
    true
}

/// containerd in its own mount namespace (inside the node's network
/// namespace). Everything it started is killed on drop.
struct Runtime {
    dir: PathBuf,
    holder: Child,
    containerd: Option<Child>,
    runs: Vec<(String, Child)>,
    cgroup: String,
}

impl Runtime {
    fn start(node: &Netns, dir: &Path, socket: &Path) -> Runtime {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "nsenter"])
            .arg(format!("--net={}", node.path().display()))
            .args(["sleep", "3600"])
            .spawn()
            .expect("unshare");
        let pid = holder.id();
        wait_for("private mount namespace", Duration::from_secs(10), || {
            let mine = std::fs::read_link("/proc/self/ns/mnt").ok();
            let ino = |p: PathBuf| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
            let net = ino(PathBuf::from(format!("/proc/{pid}/ns/net")));
            let want = ino(node.path());
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            theirs.is_some() && theirs != mine && net.is_some() && net == want
        });
        let mut rt = Runtime {
            dir: dir.to_path_buf(),
            holder,
            containerd: None,
            runs: Vec::new(),
            cgroup: unique("cd"),
        };
        let d = dir.display();
        rt.inside(&[
            "sh",
            "-ec",
            &format!(
                "mkdir -p {d}/ovl; mount -t tmpfs tmpfs {d}/ovl
                 for x in etc opt run var; do
                   mkdir -p {d}/ovl/$x-up {d}/ovl/$x-work
                   mount -t overlay overlay -o lowerdir=/$x,upperdir={d}/ovl/$x-up,workdir={d}/ovl/$x-work /$x
                 done
                 printf 'version = 2\\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\\n' > {d}/containerd.toml"
            ),
        ]);
        let install = rt.inside(&[
            bin(),
            "--socket",
            socket.to_str().unwrap(),
            "cni",
            "install",
            "--network",
            NET,
        ]);
        let text = String::from_utf8_lossy(&install.stdout);
        assert!(text.contains("/opt/cni/bin/overlayd-cni"), "{text}");
        assert!(
            !Path::new("/etc/cni/net.d/10-ovl.conflist").exists()
                || std::fs::read_to_string("/etc/cni/net.d/10-ovl.conflist")
                    .is_ok_and(|s| !s.contains(socket.to_str().unwrap())),
            "cni install wrote into the machine's own /etc"
        );
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        rt.containerd = Some(
            rt.command("containerd")
                .arg("--config")
                .arg(dir.join("containerd.toml"))
                .arg("--root")
                .arg(dir.join("ctd-root"))
                .arg("--state")
                .arg(dir.join("ctd-state"))
                .arg("--address")
                .arg(rt.ctd_sock())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("containerd"),
        );
        wait_for("containerd answers", Duration::from_secs(30), || {
            rt.ctr_ok(&["version"])
        });
        rt.build_rootfs();
        rt
    }

    fn ctd_sock(&self) -> PathBuf {
        self.dir.join("ctd.sock")
    }

    /// A command run in the holder's mount and network namespaces.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.id().to_string(), "-m", "-n", program]);
        c
    }

    fn inside(&self, args: &[&str]) -> std::process::Output {
        let out = self.command(args[0]).args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        self.command("ctr")
            .arg("--address")
            .arg(self.ctd_sock())
            .args(["--namespace", "default"])
            .args(args)
            .output()
            .unwrap()
    }

    fn ctr_ok(&self, args: &[&str]) -> bool {
        self.ctr(args).status.success()
    }

    fn build_rootfs(&self) {
        let root = self.dir.join("rootfs");
        for sub in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
            }
        }
    }

    /// `ctr run --cni` in the foreground (as the working invocation:
    /// DEL runs when this process sees its task exit); returns once the
    /// task runs.
    fn run(&mut self, id: &str) {
        let child = self
            .command("ctr")
            .arg("--address")
            .arg(self.ctd_sock())
            .args([
                "--namespace",
                "default",
                "run",
                "--rootfs",
                "--cni",
                "--null-io",
            ])
            .args(["--read-only", "--env", "PATH=/bin"])
            .arg("--cgroup")
            .arg(format!("/{}/{id}", self.cgroup))
            .arg("--runc-root")
            .arg(self.dir.join("runc"))
            .arg(self.dir.join("rootfs"))
            .arg(id)
            .args(["/bin/sh", "-c", "trap \"exit 0\" TERM; sleep 600 & wait"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.runs.push((id.to_string(), child));
        wait_for(
            &format!("task {id} running"),
            Duration::from_secs(60),
            || {
                let out = self.ctr(&["task", "ls"]);
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|l| l.starts_with(&format!("{id} ")) && l.contains("RUNNING"))
            },
        );
    }

    fn exec(&self, id: &str, args: &[&str]) -> (bool, String) {
        let exec_id = unique("x");
        let out = self.ctr(&[&["task", "exec", "--exec-id", &exec_id, id], args].concat());
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `ctr task kill` then `ctr container rm`, after the foreground `ctr
    /// run` saw the exit (and so ran DEL).
    fn stop(&mut self, id: &str) {
        assert!(self.ctr_ok(&["task", "kill", id]), "task kill {id}");
        let pos = self.runs.iter().position(|(i, _)| i == id).unwrap();
        let (_, mut child) = self.runs.remove(pos);
        wait_for(
            &format!("ctr run {id} exits"),
            Duration::from_secs(30),
            || matches!(child.try_wait(), Ok(Some(_))),
        );
        assert!(self.ctr_ok(&["container", "rm", id]), "container rm {id}");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for (id, mut child) in std::mem::take(&mut self.runs) {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", &id]);
            let _ = child.kill();
            let _ = child.wait();
        }
        // Container processes live in our cgroup; shims and containerd in
        // the holder's mount namespace.
        for ctl in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = ctl.path().join(&self.cgroup);
            if !dir.is_dir() {
                continue;
            }
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "for f in $(find {0} -name cgroup.procs); do for p in $(cat $f); do kill -9 $p; done; done; sleep 0.2; find {0} -depth -type d -exec rmdir {{}} \\;",
                    dir.display()
                ))
                .status();
        }
        if let Some(mut c) = self.containerd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let mnt = std::fs::read_link(format!("/proc/{}/ns/mnt", self.holder.id())).ok();
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid as u32 != self.holder.id()
                && std::fs::read_link(p.path().join("ns/mnt")).ok() == mnt
                && mnt.is_some()
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn handle(id: &str) -> Handle {
    Handle::Cni {
        network: NET.into(),
        container_id: format!("default-{id}"),
        ifname: "eth0".into(),
        netns: None,
    }
}

fn address(d: &Daemon, id: &str) -> (String, String) {
    match d.ok(Request::InspectAttachment { handle: handle(id) }) {
        Response::Attachment { ip, gateway, .. } => (ip, gateway.unwrap()),
        r => panic!("{r:?}"),
    }
}

fn attachments(d: &Daemon) -> Vec<String> {
    match d.ok(Request::ListAttachments) {
        Response::Attachments { attachments } => {
            attachments.iter().map(|a| a.handle.key()).collect()
        }
        r => panic!("{r:?}"),
    }
}

fn container_names(d: &Daemon) -> Vec<String> {
    match d.ok(Request::ListDnsRecords) {
        Response::DnsRecords { records, .. } => records
            .into_iter()
            .map(|r| r.name)
            .filter(|n| n.starts_with("default-"))
            .collect(),
        r => panic!("{r:?}"),
    }
}

fn veths(node: &Netns) -> Vec<String> {
    node.links()
        .into_iter()
        .filter(|l| l.starts_with("ovl-v"))
        .collect()
}

#[test]
fn containerd_containers_attach_resolve_each_other_and_release_everything() {
    if !root_or_skip("cni_containerd") {
        return;
    }
    let node = Netns::new("cd");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("daemon")).unwrap();
    std::fs::create_dir_all(dir.path().join("ctd")).unwrap();
    let d = Daemon::start(&node, &dir.path().join("daemon"), &[]);
    let mut rt = Runtime::start(&node, &dir.path().join("ctd"), &d.socket);

    rt.run("web1");
    rt.run("web2");
    let (ip1, gw) = address(&d, "web1");
    let (ip2, _) = address(&d, "web2");
    assert_ne!(ip1, ip2);
    let (ok, out) = rt.exec("web1", &["ping", "-c1", "-W2", &ip2]);
    assert!(ok, "web1 pings web2: {out}");
    let (ok, out) = rt.exec("web2", &["ping", "-c1", "-W2", &ip1]);
    assert!(ok, "web2 pings web1: {out}");
    let (ok, out) = rt.exec("web1", &["nslookup", "default-web2.overlay.internal", &gw]);
    assert!(ok && out.contains(&ip2), "web1 resolves web2: {out}");
    let (ok, out) = rt.exec("web2", &["nslookup", "default-web1.overlay.internal", &gw]);
    assert!(ok && out.contains(&ip1), "web2 resolves web1: {out}");

    rt.stop("web1");
    assert_eq!(
        attachments(&d),
        vec!["cni:ovl/default-web2/eth0"],
        "web1 released"
    );
    assert_eq!(veths(&node).len(), 1);
    assert_eq!(container_names(&d), vec!["default-web2.overlay.internal."]);
    rt.stop("web2");
    assert!(attachments(&d).is_empty());

    // 20 containers up at once, then all removed: nothing is left behind.
    let ids: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    for id in &ids {
        rt.run(id);
    }
    assert_eq!(attachments(&d).len(), 20);
    assert_eq!(veths(&node).len(), 20);
    for id in &ids {
        rt.stop(id);
    }
    assert!(attachments(&d).is_empty(), "no attachment left");
    assert!(veths(&node).is_empty(), "no veth left: {:?}", veths(&node));
    assert!(container_names(&d).is_empty(), "no DNS record left");
    // No lease left: the lowest 22 host addresses are all free again.
    d.ok(Request::SetupServiceOverlay {
        service: NET.into(),
        mode: ServiceMode::Auto,
    });
    let prefix = gw.rsplit_once('.').unwrap().0.to_string();
    for n in 2..24 {
        match d.ok(Request::AllocateIp {
            service: NET.into(),
            join_global: false,
        }) {
            Response::Ip { ip } => assert_eq!(ip, format!("{prefix}.{n}")),
            r => panic!("{r:?}"),
        }
    }
}
