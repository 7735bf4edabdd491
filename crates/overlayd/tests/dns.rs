//! DNS end to end, as root, inside namespaces this test creates: names
//! registered through the daemon resolve from a container via the network's
//! gateway, survive a restart, and other names are forwarded to an upstream
//! (dnsmasq) running in the test's "outside" namespace.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_proto::{Handle, Request, Response};
use support::*;

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
    let (node, outside) = uplinked_node("dn", "do");
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
    let gw = match d.ok(support::requests::shared("web")) {
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
    d.ok(Request::UnregisterDns {
        name: "db".into(),
        force: false,
    });
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

fn attach_named(
    d: &Daemon,
    c: &Container,
    service: &str,
    isolation: Option<&str>,
    name: &str,
) -> Response {
    d.call(support::requests::attach_pid(
        c.pid(),
        service,
        isolation,
        Some(name),
    ))
}

fn ip_of(r: Response) -> String {
    match r {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    }
}

fn gateway_of(ip: &str) -> String {
    let mut o: Vec<&str> = ip.split('.').collect();
    o[3] = "1";
    o.join(".")
}

/// DNS is scoped (issue 10): a container on one isolation network does not
/// learn names on another or service members inside isolation networks; a
/// container name is unique where it is visible; `dns rm` removes only what
/// `dns add` added unless forced.
#[test]
fn names_are_scoped_to_networks_that_reach_them_and_unique_where_visible() {
    if !can_run_root_tests("dns scope") {
        return;
    }
    let node = Netns::new("ds");
    node.exec(&["ip", "link", "set", "lo", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    std::fs::write(&cfg, "dns_upstreams = [\"127.0.0.1:53\"]\n").unwrap();
    let d = Daemon::start(&node, dir.path(), &["--config", cfg.to_str().unwrap()]);
    for net in ["a", "b"] {
        d.ok(support::requests::iso(net));
    }
    d.ok(support::requests::shared("web"));
    let (ca, cb, cs, cb2, cs2) = (
        Container::new(),
        Container::new(),
        Container::new(),
        Container::new(),
        Container::new(),
    );
    let ip_a = ip_of(attach_named(&d, &ca, "web", Some("a"), "alpha"));
    let ip_b = ip_of(attach_named(&d, &cb, "web", Some("b"), "beta"));
    let ip_s = ip_of(attach_named(&d, &cs, "web", None, "gamma"));
    let (gw_a, gw_s) = (gateway_of(&ip_a), gateway_of(&ip_s));

    // Unique where visible: "alpha" again on iso:b is fine (a and b never
    // see each other); "gamma" again on the shared network is refused.
    let ip_b2 = ip_of(attach_named(&d, &cb2, "web", Some("b"), "alpha"));
    match attach_named(&d, &cs2, "web", None, "gamma") {
        Response::Err { message, .. } => {
            assert!(message.contains("already held"), "{message}")
        }
        r => panic!("a duplicate visible name must be refused: {r:?}"),
    }

    wait_for(
        "DNS answers on iso:a's gateway",
        Duration::from_secs(10),
        || dig(&ca, &gw_a, "alpha.overlay.internal").0 == "NOERROR",
    );
    let on_a = |n: &str| dig(&ca, &gw_a, &format!("{n}.overlay.internal")).1;
    assert_eq!(on_a("alpha"), vec![ip_a.clone()], "not iso:b's alpha");
    assert!(on_a("beta").is_empty(), "iso:a does not learn iso:b names");
    assert_eq!(
        on_a("gamma"),
        vec![ip_s.clone()],
        "iso:a reaches the shared network"
    );
    let web_a = on_a("web");
    assert!(
        web_a.contains(&ip_a) && web_a.contains(&ip_s) && !web_a.contains(&ip_b),
        "web from iso:a: {web_a:?}"
    );
    let on_s = |n: &str| dig(&cs, &gw_s, &format!("{n}.overlay.internal")).1;
    assert!(
        on_s("alpha").is_empty(),
        "isolation members are not named outside"
    );
    let web_s = on_s("web");
    assert_eq!(
        web_s,
        vec![ip_s.clone()],
        "web from the shared network: {web_s:?}"
    );
    let on_b = dig(&cb, &gateway_of(&ip_b), "alpha.overlay.internal").1;
    assert_eq!(on_b, vec![ip_b2.clone()], "iso:b's own alpha");

    // `dns rm` removes what `dns add` added, not what containers registered.
    d.ok(Request::RegisterDns {
        name: "gamma".into(),
        ip: "10.201.0.99".into(),
    });
    d.ok(Request::UnregisterDns {
        name: "gamma".into(),
        force: false,
    });
    assert_eq!(
        on_s("gamma"),
        vec![ip_s.clone()],
        "the container's name stays"
    );
    let out = d.cli(&["dns", "rm", "gamma"]);
    assert!(
        !out.status.success(),
        "a container-held name is not removed"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["dns", "rm", "--force", "gamma"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(on_s("gamma").is_empty(), "forced removal");
    // Names that break DNS rules are refused with the rule.
    let out = d.cli(&["dns", "add", "Bad_Name", "10.0.0.1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("letters"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
