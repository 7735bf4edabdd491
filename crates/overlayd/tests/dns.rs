//! DNS end to end, as root, inside namespaces this test creates: names
//! registered through the daemon resolve from a container via the network's
//! gateway, survive a restart, and other names are forwarded to an upstream
//! (dnsmasq) running in the test's "outside" namespace.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_proto::{Handle, Request, Response, ServiceMode};
use support::*;

const OUTSIDE: &str = "198.51.100.2";

fn dig(c: &Container, server: &str, name: &str) -> (String, Vec<String>) {
    let out = c.output(&["dig", "+time=3", "+tries=1", &format!("@{server}"), name]);
    let status = out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_else(|| format!("no answer: {out}"));
    let short = c.output(&[
        "dig",
        "+short",
        "+time=3",
        "+tries=1",
        &format!("@{server}"),
        name,
    ]);
    (status, short.lines().map(str::to_string).collect())
}

#[test]
fn names_resolve_survive_restart_and_others_are_forwarded() {
    if !can_run_root_tests("dns") {
        return;
    }
    if Command::new("dnsmasq").arg("--version").output().is_err() {
        panic!("dnsmasq is not installed; scripts/setup.sh installs it");
    }
    let node = Netns::new("dn");
    let outside = Netns::new("do");
    link_pair(
        &node,
        "up0",
        "198.51.100.1/24",
        &outside,
        "out0",
        &format!("{OUTSIDE}/24"),
    );
    node.exec(&["ip", "route", "add", "default", "via", OUTSIDE]);
    let mut upstream = Command::new("ip")
        .args([
            "netns",
            "exec",
            &outside.name,
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address",
            OUTSIDE,
            "--address=/ext.test/203.0.113.7",
            "--pid-file=",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    std::fs::write(&cfg, format!("dns_upstreams = [\"{OUTSIDE}:53\"]\n")).unwrap();
    let mut d = Daemon::start(&node, dir.path(), &["--config", cfg.to_str().unwrap()]);
    let gw = match d.ok(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    }) {
        Response::ServiceOverlay { overlay_ip, .. } => overlay_ip.unwrap(),
        r => panic!("{r:?}"),
    };
    let (c1, c2) = (Container::new(), Container::new());
    let ip1 = match d.ok(Request::AttachContainer {
        handle: Handle::LinuxPid { pid: c1.pid() },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: Some("app1".into()),
        publish: vec![],
    }) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    };
    d.ok(Request::AttachContainer {
        handle: Handle::LinuxPid { pid: c2.pid() },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: None,
        publish: vec![],
    });

    wait_for(
        "dns answers on the gateway",
        Duration::from_secs(10),
        || dig(&c2, &gw, "app1.overlay.internal").0 == "NOERROR",
    );
    assert_eq!(dig(&c2, &gw, "app1.overlay.internal").1, vec![ip1.clone()]);
    assert!(dig(&c2, &gw, "web.overlay.internal").1.contains(&ip1));

    d.ok(Request::RegisterDns {
        name: "db".into(),
        ip: "10.201.0.99".into(),
    });
    assert_eq!(
        dig(&c2, &gw, "db.overlay.internal").1,
        vec!["10.201.0.99".to_string()]
    );
    let ls = d.cli(&["dns", "ls"]);
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.contains("db.overlay.internal.") && ls.contains("10.201.0.99"),
        "{ls}"
    );
    assert!(ls.contains("app1.overlay.internal."), "{ls}");
    d.ok(Request::UnregisterDns { name: "db".into() });
    assert_eq!(dig(&c2, &gw, "db.overlay.internal").0, "NXDOMAIN");

    // Bad input: clear error, nothing stored.
    for (name, ip) in [
        ("bad_name!", "10.0.0.1"),
        ("ok", "not-an-ip"),
        ("x.example.com", "10.0.0.1"),
    ] {
        match d.call(Request::RegisterDns {
            name: name.into(),
            ip: ip.into(),
        }) {
            Response::Err { message, .. } => assert!(!message.is_empty()),
            r => panic!("{name} {ip}: expected err, got {r:?}"),
        }
    }
    assert_eq!(dig(&c2, &gw, "ok.overlay.internal").0, "NXDOMAIN");

    // Restart: no replay needed.
    d.restart();
    wait_for("dns back after restart", Duration::from_secs(10), || {
        dig(&c2, &gw, "app1.overlay.internal").1 == vec![ip1.clone()]
    });

    // Detach removes the container's name.
    d.ok(Request::DetachContainer {
        handle: Handle::LinuxPid { pid: c1.pid() },
    });
    let (status, _) = dig(&c2, &gw, "app1.overlay.internal");
    assert_eq!(status, "NXDOMAIN", "log:\n{}", d.log());

    // Forwarding, then SERVFAIL once the upstream is gone.
    assert_eq!(dig(&c2, &gw, "ext.test").1, vec!["203.0.113.7".to_string()]);
    let _ = upstream.kill();
    let _ = upstream.wait();
    let t = Instant::now();
    assert_eq!(dig(&c2, &gw, "ext.test").0, "SERVFAIL");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "SERVFAIL within the timeout"
    );
    // A failed upstream does not stop the zone from being served.
    d.ok(Request::RegisterDns {
        name: "late".into(),
        ip: "10.201.0.77".into(),
    });
    assert_eq!(
        dig(&c2, &gw, "late.overlay.internal").1,
        vec!["10.201.0.77".to_string()],
        "log:\n{}",
        d.log()
    );
}
