//! The demo's lab: network namespaces named after the demo's pid, the
//! underlay (a Linux bridge in its own namespace with a veth to every node
//! and to the "outside"), sleeping "container" processes, the per-run
//! working directory, and the cleanup that removes all of it — run
//! explicitly, from `Drop` (so a panic cleans up too), and by
//! `overlayd demo --cleanup PID`. Nothing here touches the root namespace:
//! every link is created from inside a namespace of the lab.

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::node::Node;

/// The outside's address on the underlay (stands in for the internet).
pub const OUTSIDE_IP: &str = "192.0.2.100";
/// Number of nodes.
pub const NODES: u8 = 3;
/// Bridge inside the underlay namespace.
const UNDERLAY_BRIDGE: &str = "br0";
/// Uplink name inside each node and the outside.
pub const UPLINK: &str = "ul0";

/// Prefix of every namespace of the demo run with this pid.
pub fn prefix(pid: u32) -> String {
    format!("ovd-{pid}-")
}

/// Working directory of the demo run with this pid.
pub fn workdir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("overlayd-demo-{pid}"))
}

/// Underlay address of node `index` (1-based).
pub fn node_ip(index: u8) -> String {
    format!("192.0.2.{index}")
}

/// A namespace with a sleeping process standing in for a container.
#[derive(Debug, Clone)]
pub struct Container {
    /// Short name (`web1`).
    pub name: String,
    /// Namespace name.
    pub ns: String,
    /// Index into [`Lab::nodes`] of the node it is attached on.
    pub node: usize,
    /// Address it got from the daemon.
    pub ip: String,
    /// What it is attached to, for the `--keep` listing.
    pub network: String,
}

impl Container {
    /// Path of its namespace file, the attach handle.
    pub fn netns_path(&self) -> String {
        format!("/run/netns/{}", self.ns)
    }
}

/// Everything one demo run created.
pub struct Lab {
    /// The demo's pid (part of every name).
    pub pid: u32,
    /// Working directory (node data dirs, sockets, configs, logs).
    pub workdir: PathBuf,
    /// The nodes, `n1` first.
    pub nodes: Vec<Node>,
    /// Attached containers.
    pub containers: Vec<Container>,
    namespaces: Vec<String>,
    sleepers: Vec<Child>,
    kept: bool,
}

impl Lab {
    /// Start a lab for this process: refuses when names of this pid are
    /// still in use (a kept run whose pid was reused).
    pub fn new(pid: u32) -> Result<Lab> {
        let left = list_namespaces(&prefix(pid))?;
        if !left.is_empty() {
            bail!(
                "namespaces {} already exist (a kept demo run with pid {pid}?); remove them with `overlayd demo --cleanup {pid}`",
                left.join(", ")
            );
        }
        let workdir = workdir(pid);
        if workdir.exists() {
            bail!(
                "{} already exists; remove it with `overlayd demo --cleanup {pid}`",
                workdir.display()
            );
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&workdir)
            .with_context(|| format!("cannot create {}", workdir.display()))?;
        Ok(Lab {
            pid,
            workdir,
            nodes: Vec::new(),
            containers: Vec::new(),
            namespaces: Vec::new(),
            sleepers: Vec::new(),
            kept: false,
        })
    }

    /// Namespace name for a tag (`n1`, `ul`, `web1`).
    pub fn ns_name(&self, tag: &str) -> String {
        format!("{}{tag}", prefix(self.pid))
    }

    /// Every namespace created so far, in creation order.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Create a namespace with `lo` up. The name is recorded before the
    /// namespace exists, so cleanup never misses it.
    pub async fn add_netns(&mut self, tag: &str) -> Result<String> {
        let name = self.ns_name(tag);
        self.namespaces.push(name.clone());
        sh_ok(&["ip", "netns", "add", &name]).await?;
        ns_ok(&name, &["ip", "link", "set", "lo", "up"]).await?;
        Ok(name)
    }

    /// Create a container namespace with a sleeping process in it.
    pub async fn add_container_ns(&mut self, tag: &str) -> Result<String> {
        let name = self.add_netns(tag).await?;
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &name, "sleep", "infinity"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start the sleeping process of {name}"))?;
        self.sleepers.push(child);
        Ok(name)
    }

    /// Build the underlay: a bridge namespace, the node namespaces with
    /// their uplinks (192.0.2.N/24, default route via the outside) and the
    /// outside namespace (192.0.2.100/24).
    pub async fn build_underlay(&mut self) -> Result<()> {
        self.build_underlay_for(NODES).await
    }

    /// [`Lab::build_underlay`] with `nodes` node namespaces.
    pub async fn build_underlay_for(&mut self, nodes: u8) -> Result<()> {
        let ul = self.add_netns("ul").await?;
        ns_ok(
            &ul,
            &["ip", "link", "add", UNDERLAY_BRIDGE, "type", "bridge"],
        )
        .await?;
        ns_ok(&ul, &["ip", "link", "set", UNDERLAY_BRIDGE, "up"]).await?;
        let outside = self.add_netns("out").await?;
        self.uplink(&ul, "pout", &outside, OUTSIDE_IP).await?;
        for i in 1..=nodes {
            let ns = self.add_netns(&format!("n{i}")).await?;
            self.uplink(&ul, &format!("p{i}"), &ns, &node_ip(i)).await?;
            ns_ok(&ns, &["ip", "route", "add", "default", "via", OUTSIDE_IP]).await?;
        }
        Ok(())
    }

    /// A veth from the underlay bridge (`port`) to `ns` (`ul0`, addressed).
    pub async fn uplink(&self, ul: &str, port: &str, ns: &str, ip: &str) -> Result<()> {
        ns_ok(
            ul,
            &[
                "ip", "link", "add", port, "type", "veth", "peer", "name", UPLINK, "netns", ns,
            ],
        )
        .await?;
        ns_ok(
            ul,
            &["ip", "link", "set", port, "master", UNDERLAY_BRIDGE, "up"],
        )
        .await?;
        ns_ok(
            ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", UPLINK],
        )
        .await?;
        ns_ok(ns, &["ip", "link", "set", UPLINK, "up"]).await?;
        Ok(())
    }

    /// A helper process (etcd) that cleanup kills with the sleepers.
    pub fn adopt(&mut self, child: Child) {
        self.sleepers.push(child);
    }

    /// A container by short name.
    pub fn container(&self, name: &str) -> Result<&Container> {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .with_context(|| format!("no container {name} in the demo"))
    }

    /// Leave everything running (`--keep`): cleanup becomes a no-op.
    pub fn keep(&mut self) {
        self.kept = true;
        for node in &mut self.nodes {
            node.forget();
        }
        self.sleepers.clear();
    }

    /// Kill the daemons and sleepers, delete every namespace and the
    /// working directory. Best effort: returns every failure.
    pub fn cleanup(&mut self) -> Vec<String> {
        if self.kept {
            return Vec::new();
        }
        for node in &mut self.nodes {
            node.kill();
        }
        for s in &mut self.sleepers {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.sleepers.clear();
        let mut errors = remove_namespaces(&self.namespaces);
        self.namespaces.clear();
        if self.workdir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.workdir) {
                errors.push(format!("cannot remove {}: {e}", self.workdir.display()));
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.cleanup() {
            eprintln!("overlayd demo: cleanup: {e}");
        }
    }
}

/// Namespaces whose name starts with `prefix`.
pub fn list_namespaces(prefix: &str) -> Result<Vec<String>> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("cannot run `ip netns list`; is iproute2 installed?")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect())
}

/// Kill every process inside each namespace, then delete the namespaces
/// (last created first). Returns what could not be done.
pub fn remove_namespaces(names: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    for name in names.iter().rev() {
        let pids = std::process::Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for name in names.iter().rev() {
        if !std::path::Path::new("/run/netns").join(name).exists() {
            continue;
        }
        match std::process::Command::new("ip")
            .args(["netns", "del", name])
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => errors.push(format!(
                "ip netns del {name}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => errors.push(format!("ip netns del {name}: {e}")),
        }
    }
    errors
}

/// Run a command (no shell) and collect its output.
pub async fn sh(args: &[&str]) -> Result<Output> {
    let (prog, rest) = args.split_first().context("empty command")?;
    tokio::process::Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run `{}`", args.join(" ")))
}

/// Run a command that must succeed; returns its standard output.
pub async fn sh_ok(args: &[&str]) -> Result<String> {
    let out = sh(args).await?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip netns exec NS args…`, whatever its status.
pub async fn ns_exec(ns: &str, args: &[&str]) -> Result<Output> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh(&v).await
}

/// `ip netns exec NS args…`, which must succeed; returns standard output.
pub async fn ns_ok(ns: &str, args: &[&str]) -> Result<String> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh_ok(&v).await
}

/// One ping from a namespace, waiting at most a second for the reply.
pub async fn ping(ns: &str, ip: &str) -> bool {
    ns_exec(ns, &["ping", "-n", "-q", "-c1", "-W1", ip])
        .await
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Ping until a reply comes or `timeout` passes; the time it took.
pub async fn ping_until(ns: &str, ip: &str, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if ping(ns, ip).await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replies out of `count` quick pings (used to show that traffic is
/// blocked); `None` when ping gave no statistics (it could not even send).
pub async fn replies(ns: &str, ip: &str, count: u32) -> Option<u32> {
    let count_s = count.to_string();
    let out = ns_exec(
        ns,
        &["ping", "-n", "-q", "-c", &count_s, "-i", "0.2", "-W1", ip],
    )
    .await
    .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (_, rest) = l.split_once("transmitted, ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}
