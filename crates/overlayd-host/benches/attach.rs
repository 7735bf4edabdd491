//! Attach/detach latency of `LinuxHost` over 200 containers (netns-path
//! targets), all inside namespaces this bench creates and removes.
//! Root only; prints p50/p95/max. Run: `cargo bench -p overlayd-host --bench attach`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_host::{Host, LinuxHost, NetnsTarget, VethSpec};

const CONTAINERS: usize = 200;

/// Deletes the bench's namespaces on drop, also when the bench panics.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn create(names: Vec<String>) -> Namespaces {
        let ns = Namespaces { names };
        ns.batch("add");
        ns
    }

    fn batch(&self, verb: &str) {
        let mut child = Command::new("ip")
            .args(["-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn ip -batch");
        {
            let stdin = child.stdin.as_mut().expect("stdin");
            for n in &self.names {
                writeln!(stdin, "netns {verb} {n}").expect("write batch");
            }
        }
        let status = child.wait().expect("wait ip -batch");
        if !status.success() {
            eprintln!("warning: ip netns {verb} batch exited with {status}");
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.batch("del");
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{what:<16} n={:<4} p50={:>8.3} ms  p95={:>8.3} ms  max={:>8.3} ms",
        v.len(),
        pct(&v, 0.50).as_secs_f64() * 1e3,
        pct(&v, 0.95).as_secs_f64() * 1e3,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn main() {
    if !overlayd_lab::need_root("attach bench") {
        return;
    }
    // `cargo test --benches` passes no --bench flag; run only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("attach bench: run with `cargo bench` to measure");
        return;
    }
    let pid = std::process::id();
    let node = format!("ovl-b-{pid}-node");
    let containers: Vec<String> = (0..CONTAINERS)
        .map(|i| format!("ovl-b-{pid}-c{i}"))
        .collect();
    let mut all = vec![node.clone()];
    all.extend(containers.iter().cloned());
    let _guard = Namespaces::create(all);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let host = LinuxHost::new_in_netns(format!("/run/netns/{node}"))
            .await
            .expect("host in bench netns");
        host.create_bridge("benchbr", "overlayd:bench", None)
            .await
            .expect("bridge");
        host.add_address("benchbr", "10.120.0.1/16".parse().expect("cidr"))
            .await
            .expect("gateway address");

        let mut attach = Vec::with_capacity(CONTAINERS);
        let mut detach = Vec::with_capacity(CONTAINERS);
        let mut cycle = Vec::with_capacity(CONTAINERS);
        let specs: Vec<VethSpec> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| VethSpec {
                host_ifname: format!("bv{i}"),
                alias: format!("overlayd:bench:{i}"),
                bridge: "benchbr".into(),
                target: NetnsTarget::Path(format!("/run/netns/{c}").into()),
                container_ifname: "eth0".into(),
                address: format!("10.120.{}.{}/16", 1 + i / 250, 1 + i % 250)
                    .parse()
                    .expect("addr"),
                gateway: Some("10.120.0.1".parse().expect("gw")),
                mtu: None,
                address_v6: None,
                gateway_v6: None,
            })
            .collect();
        let wall = Instant::now();
        for s in &specs {
            let t = Instant::now();
            host.attach_veth(s).await.expect("attach");
            attach.push(t.elapsed());
        }
        for s in &specs {
            let t = Instant::now();
            assert!(host.detach_veth(&s.host_ifname).await.expect("detach"));
            detach.push(t.elapsed());
        }
        let total = wall.elapsed();
        // A full cycle measured as one interval per container (attach, then
        // detach at once), not as the sum of two samples from the passes
        // above.
        for s in &specs {
            let t = Instant::now();
            host.attach_veth(s).await.expect("attach");
            assert!(host.detach_veth(&s.host_ifname).await.expect("detach"));
            cycle.push(t.elapsed());
        }
        println!("attach/detach of {CONTAINERS} containers (netns path targets), one bridge:");
        report("attach", attach);
        report("detach", detach);
        println!(
            "total wall time of the two passes {:.1} ms",
            total.as_secs_f64() * 1e3
        );
        report("attach then detach, one interval", cycle);
    });
}
