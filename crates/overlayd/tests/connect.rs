//! Several networks per container end to end, as root, with the daemon in a
//! namespace this test creates: a container on one isolation network
//! connected to a second one (eth1) reaches a member of it, while a ping on its first network loses
//! no packet across connect and disconnect; detach then removes it all.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use overlayd_proto::{Handle, Request, Response, ServiceMode};
use support::*;

/// A process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn attach(d: &Daemon, c: &Container, iso: Option<&str>) -> String {
    match d.ok(Request::AttachContainer {
        handle: Handle::LinuxPid { pid: c.pid() },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: iso.map(str::to_string),
        name: None,
        publish: Vec::new(),
    }) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    }
}

/// Packets a container's eth0 has received so far (`/proc/net/dev` is
/// per namespace; `/sys` would be the host's).
fn rx_packets(c: &Container) -> u64 {
    c.output(&["cat", "/proc/net/dev"])
        .lines()
        .find_map(|l| l.trim().strip_prefix("eth0:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

#[test]
fn connect_and_disconnect_lose_no_packet_on_the_first_network() {
    if !can_run_root_tests("connect_and_disconnect_lose_no_packet_on_the_first_network") {
        return;
    }
    let node = Netns::new("cn");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    std::fs::write(&cfg, "check_interval_secs = 1\n").unwrap();
    let d = Daemon::start(&node, dir.path(), &["--config", cfg.to_str().unwrap()]);
    d.ok(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    });
    for net in ["blue", "red"] {
        d.ok(support::requests::iso(net));
    }
    // a and b on iso:blue; r on iso:red, which blue cannot reach.
    let (a, b, r) = (Container::new(), Container::new(), Container::new());
    attach(&d, &a, Some("blue"));
    let b_ip = attach(&d, &b, Some("blue"));
    let r_ip = attach(&d, &r, Some("red"));
    wait_for(
        "a reaches b on the first network",
        Duration::from_secs(10),
        || a.ping(&b_ip),
    );
    assert!(!a.ping(&r_ip), "red is isolated from a before connect");

    // 1000 pings, 10 ms apart (10 s), from a to b on the first network.
    const COUNT: u32 = 1000;
    let before = rx_packets(&b);
    let ping = Running(
        Command::new("nsenter")
            .args(["-t", &a.pid().to_string(), "-n", "ping", "-n", "-q"])
            .args(["-c", &COUNT.to_string(), "-i", "0.01", "-W", "2", &b_ip])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ping"),
    );
    wait_for("the ping is running", Duration::from_secs(5), || {
        rx_packets(&b) > before + 5
    });

    let a_red = match d.ok(Request::ConnectContainer {
        handle: Handle::LinuxPid { pid: a.pid() },
        network: "red".into(),
        ifname: None,
        name: None,
    }) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    };
    let addrs = a.output(&["ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addrs.contains(&format!("{a_red}/")), "{addrs}");
    let routes = a.output(&["ip", "-4", "route", "show", "default"]);
    assert!(
        routes.contains("dev eth0") && !routes.contains("eth1"),
        "default route stays on eth0: {routes}"
    );
    wait_for("a reaches red over eth1", Duration::from_secs(10), || {
        a.ping(&r_ip)
    });
    assert!(r.ping(&a_red), "the red member reaches a's eth1 address");

    d.ok(Request::DisconnectContainer {
        handle: Handle::LinuxPid { pid: a.pid() },
        network: "red".into(),
    });
    let links = a.output(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth1"), "{links}");
    assert!(!a.ping(&r_ip), "red is unreachable again");

    let mut ping = ping;
    assert!(
        ping.0.try_wait().unwrap().is_none(),
        "connect and disconnect happened while the ping ran (raise COUNT if this fails)"
    );
    let status = ping.0.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(ping.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    let summary = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {out}"));
    assert!(
        summary.starts_with(&format!("{COUNT} packets transmitted, {COUNT} received")),
        "packets lost on the first network: {summary}"
    );
    assert!(status.success(), "{out}");

    // Detach removes the first network (and any other).
    d.ok(Request::DetachContainer {
        handle: Handle::LinuxPid { pid: a.pid() },
    });
    let links = a.output(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth0"), "{links}");
    match d.ok(Request::ListAttachments) {
        Response::Attachments { attachments } => {
            assert!(
                attachments
                    .iter()
                    .all(|x| !x.key.starts_with(&format!("pid:{}", a.pid()))),
                "{attachments:?}"
            );
        }
        r => panic!("{r:?}"),
    }
    drop(node);
}
