//! `overlayd demo`: a self-contained cluster in network namespaces on this
//! one machine — three nodes and an "outside" on an underlay bridge, one
//! real `overlayd run` per node — driven through the daemons' protocol and
//! checked end to end, with progress lines and a final table. It never
//! touches the root namespace, cleans up on exit, on Ctrl-C and on failure
//! (unless `--keep`), and exits non-zero when a check fails.

mod checks;
mod cluster;
mod lab;
mod node;
mod publish;
mod report;
mod restart;
mod setup;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use tokio::signal::unix::{signal, Signal, SignalKind};

use lab::{Lab, NODES};
use report::Report;

/// `overlayd demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Leave the demo running afterwards and print how to explore and remove it.
    #[arg(long)]
    pub keep: bool,
    /// Remove what an earlier `--keep` run with this pid left behind, then exit.
    #[arg(long, value_name = "PID", conflicts_with = "keep")]
    pub cleanup: Option<u32>,
    /// Cluster mode instead: etcd in a namespace, nodes that find and peer
    /// each other through it, one late joiner, and the join figures.
    #[arg(long)]
    pub cluster: bool,
    /// Nodes started before the late joiner (with --cluster).
    #[arg(long, default_value_t = 3, requires = "cluster", value_parser = clap::value_parser!(u8).range(2..=60))]
    pub nodes: u8,
    /// Seconds of rest over which etcd's load is measured (with --cluster).
    #[arg(long, default_value_t = 10, requires = "cluster", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub steady_secs: u64,
}

/// What stopped the demo.
enum Outcome {
    /// The scenario ran to its end, or stopped on an error.
    Finished(Result<()>),
    /// A signal arrived; the exit code to use.
    Signalled(u8),
}

/// Run the demo (or `--cleanup`).
pub async fn run(args: &DemoArgs) -> Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "overlayd demo needs root (it creates network namespaces); run: sudo overlayd demo"
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(pid) = args.cleanup {
        return cleanup_kept(pid).await;
    }
    if let Some(missing) = args.cluster.then(missing_cluster_tools).flatten() {
        eprintln!("overlayd demo --cluster needs {missing} on the PATH; install etcd-server, etcd-client and curl");
        return Ok(ExitCode::from(1));
    }
    if let Some(missing) = missing_tools() {
        eprintln!("overlayd demo needs {missing} on the PATH; install iproute2, iputils-ping, dnsutils (dig) and nftables");
        return Ok(ExitCode::from(1));
    }

    let started = Instant::now();
    let pid = std::process::id();
    // Signals are caught from here on, so none of them skips the cleanup.
    let mut signals = Signals::new()?;
    let mut lab = Lab::new(pid)?;
    let mut report = Report::default();
    let what = if args.cluster {
        format!("cluster mode: etcd, {} nodes and a late joiner", args.nodes)
    } else {
        format!("{NODES} nodes and an outside")
    };
    println!(
        "overlayd demo: {what} in network namespaces {}*, working directory {}",
        lab::prefix(pid),
        lab.workdir.display()
    );

    let mut figures = cluster::Figures::default();
    let run = async {
        if args.cluster {
            let steady = Duration::from_secs(args.steady_secs);
            cluster::scenario(&mut lab, &mut report, args.nodes, steady, &mut figures).await
        } else {
            scenario(&mut lab, &mut report).await
        }
    };
    let outcome = tokio::select! {
        r = run => Outcome::Finished(r),
        code = signals.next() => Outcome::Signalled(code),
    };

    match outcome {
        Outcome::Signalled(code) => {
            println!("\ninterrupted; removing the demo's namespaces");
            report_cleanup(&mut lab);
            return Ok(ExitCode::from(code));
        }
        Outcome::Finished(Ok(())) => {}
        // The table then says where it stopped; every later check is missing.
        Outcome::Finished(Err(e)) => report.fail("aborted", format!("{e:#}")),
    }

    println!();
    print!("{}", report.table());
    let passed = report.all_passed();
    println!(
        "\n{} of {} checks passed in {}",
        report.len() - report.failed(),
        report.len(),
        secs(started.elapsed())
    );
    if args.keep {
        lab.keep();
        print_keep_guide(&lab);
    } else {
        if !passed {
            println!("(run `overlayd demo --keep` to leave the cluster up and inspect it)");
        }
        report_cleanup(&mut lab);
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Bring the cluster up, then check it.
async fn scenario(lab: &mut Lab, report: &mut Report) -> Result<()> {
    let cluster = setup::bring_up(lab, report).await?;
    checks::run_all(lab, report, &cluster).await
}

/// Clean up and say so (or say what failed).
fn report_cleanup(lab: &mut Lab) {
    let n = lab.namespaces().len();
    let errors = lab.cleanup();
    if errors.is_empty() {
        println!("cleaned up: {n} namespaces and the working directory removed");
    } else {
        for e in errors {
            eprintln!("overlayd demo: cleanup: {e}");
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, as one stream of exit codes.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        let mk = |k: SignalKind| signal(k).context("cannot install a signal handler");
        Ok(Signals {
            int: mk(SignalKind::interrupt())?,
            term: mk(SignalKind::terminate())?,
            hup: mk(SignalKind::hangup())?,
        })
    }

    /// The next signal, as the conventional exit code (128 + signal number).
    async fn next(&mut self) -> u8 {
        tokio::select! {
            _ = self.int.recv() => 130,
            _ = self.term.recv() => 143,
            _ = self.hup.recv() => 129,
        }
    }
}

/// The first tool `--cluster` also needs that is not installed.
fn missing_cluster_tools() -> Option<&'static str> {
    first_missing(&[
        ("etcd", "--version"),
        ("etcdctl", "version"),
        ("curl", "--version"),
    ])
}

/// The first of `probes` (tool, harmless argument) that cannot run.
fn first_missing(probes: &[(&'static str, &str)]) -> Option<&'static str> {
    probes.iter().find_map(|(tool, arg)| {
        std::process::Command::new(tool)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_err()
            .then_some(*tool)
    })
}

/// The first required tool that is not installed.
fn missing_tools() -> Option<&'static str> {
    let probes: [(&str, &str); 4] = [
        ("ip", "-V"),
        ("ping", "-V"),
        ("dig", "-v"),
        ("nft", "--version"),
    ];
    probes.into_iter().find_map(|(tool, arg)| {
        std::process::Command::new(tool)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_err()
            .then_some(tool)
    })
}

/// Path of this binary for commands a person runs later. When the file
/// was replaced while the demo ran (a rebuild), the kernel reports it with
/// a " (deleted)" suffix; the path itself is still the right one to print.
fn exe_display() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "overlayd".into());
    match exe.strip_suffix(" (deleted)") {
        Some(p) => p.to_string(),
        None => exe,
    }
}

/// A duration for people: milliseconds below a second, else seconds.
fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// After `--keep`: what is running and how to look at it and remove it.
fn print_keep_guide(lab: &Lab) {
    let exe = exe_display();
    println!("\nThe demo is still running (--keep). Namespaces:");
    println!("  {:<22} underlay bridge (br0)", lab.ns_name("ul"));
    println!("  {:<22} outside, {}", lab.ns_name("out"), lab::OUTSIDE_IP);
    for n in &lab.nodes {
        println!(
            "  {:<22} node {}, {} (overlayd socket {})",
            n.ns,
            n.label,
            n.underlay_ip,
            n.socket.display()
        );
    }
    for c in &lab.containers {
        println!(
            "  {:<22} container {} on {}, {} ({})",
            c.ns, c.name, lab.nodes[c.node].label, c.ip, c.network
        );
    }
    if let (Some(n1), Some(web1), Some(web2)) = (
        lab.nodes.first(),
        lab.container("web1").ok(),
        lab.container("web2").ok(),
    ) {
        println!("\nExplore:");
        let sock = n1.socket.display();
        println!("  ip netns exec {} {exe} --socket {sock} status", n1.ns);
        println!("  ip netns exec {} {exe} --socket {sock} network ls", n1.ns);
        println!("  ip netns exec {} nft list ruleset", n1.ns);
        println!("  ip netns exec {} ping -c3 {}", web1.ns, web2.ip);
        println!(
            "  ip netns exec {} {exe} --socket {sock} wg show db   # a device by its network's name",
            n1.ns
        );
        println!("  (node logs: {}/n*/overlayd.log)", lab.workdir.display());
    }
    println!("\nRemove it:\n  {exe} demo --cleanup {}", lab.pid);
    println!("or by hand:");
    for n in &lab.nodes {
        println!(
            "  ip netns exec {} {exe} --socket {} uninstall --purge --config {}",
            n.ns,
            n.socket.display(),
            n.config.display()
        );
    }
    let all = lab.namespaces().join(" ");
    println!("  for ns in {all}; do ip netns pids $ns | xargs -r kill; ip netns del $ns; done");
    println!("  rm -rf {}", lab.workdir.display());
}

/// `overlayd demo --cleanup PID`: purge each node through overlayd, then
/// remove the namespaces and the working directory of that run.
async fn cleanup_kept(pid: u32) -> Result<ExitCode> {
    let names = lab::list_namespaces(&lab::prefix(pid))?;
    let workdir = lab::workdir(pid);
    if names.is_empty() && !workdir.exists() {
        println!("nothing left of demo run {pid}");
        return Ok(ExitCode::SUCCESS);
    }
    let exe = exe_display();
    let mut failed = false;
    for i in 1..=NODES {
        let ns = format!("{}n{i}", lab::prefix(pid));
        let dir = workdir.join(format!("n{i}"));
        if !names.contains(&ns) || !dir.exists() {
            continue;
        }
        let sock = dir.join("run").join("overlayd.sock").display().to_string();
        let data = dir.join("data").display().to_string();
        let cfg = dir.join("overlayd.toml").display().to_string();
        let purge = [
            "ip",
            "netns",
            "exec",
            &ns,
            &exe,
            "--socket",
            &sock,
            "--data-dir",
            &data,
            "uninstall",
            "--purge",
            "--config",
            &cfg,
        ];
        match tokio::time::timeout(Duration::from_secs(60), lab::sh(&purge)).await {
            Ok(Ok(out)) if out.status.success() => println!("n{i}: overlayd stopped and purged"),
            Ok(Ok(out)) => {
                failed = true;
                eprintln!(
                    "n{i}: uninstall --purge failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(Err(e)) => {
                failed = true;
                eprintln!("n{i}: {e:#}");
            }
            Err(_) => {
                failed = true;
                eprintln!("n{i}: uninstall --purge did not finish within 60 s");
            }
        }
    }
    for e in lab::remove_namespaces(&names) {
        failed = true;
        eprintln!("{e}");
    }
    if workdir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&workdir) {
            failed = true;
            eprintln!("cannot remove {}: {e}", workdir.display());
        }
    }
    println!(
        "removed {} namespaces and {}",
        names.len(),
        workdir.display()
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
