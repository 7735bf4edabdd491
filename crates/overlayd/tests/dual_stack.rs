//! Dual-stack isolation networks end to end (issue 15, item 3), as root,
//! with the daemon inside a namespace this test creates: `iso up NET
//! --ipv6` gives the network an IPv4 and an IPv6 subnet; two containers
//! ping each other over both families and resolve each other's name to A
//! and AAAA through the gateway of each family (the IPv6 gateway's DNS
//! listener binds at once: the address is added without DAD); the IPv6
//! subnet is masqueraded and IPv6 forwarding turned on; a restart
//! recreates nothing and keeps every address; purge leaves nothing and
//! puts IPv6 forwarding back.

mod support;

use std::time::Duration;

use overlayd_proto::{Handle, Request, Response};
use support::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `dig +short` of one record type through `server`, from inside `c`.
fn dig(c: &Container, server: &str, name: &str, rtype: &str) -> Vec<String> {
    c.output(&[
        "dig",
        "+short",
        "+time=2",
        "+tries=1",
        &format!("@{server}"),
        name,
        rtype,
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// (ip, ip_v6, gateway, gateway_v6) of an attached container.
fn inspect(d: &Daemon, pid: u32) -> (String, String, String, String) {
    match d.ok(Request::InspectAttachment {
        handle: Handle::LinuxPid { pid },
    }) {
        Response::Attachment {
            ip,
            ip_v6,
            gateway,
            gateway_v6,
            ..
        } => (
            ip,
            ip_v6.expect("an IPv6 address"),
            gateway.expect("a gateway"),
            gateway_v6.expect("an IPv6 gateway"),
        ),
        r => panic!("{r:?}"),
    }
}

#[test]
fn dual_stack_pair_pings_and_resolves_in_both_families_across_a_restart() {
    if !can_run_root_tests("dual_stack") {
        return;
    }
    let node = Netns::new("ds");
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&node, dir.path(), &[]);
    d.cli_ok(&["service", "up", "web"]);
    let up: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["--json", "iso", "up", "dual", "--ipv6"])).unwrap();
    let subnet_v6 = up["subnet_v6"].as_str().expect("subnet_v6").to_string();
    assert_eq!(subnet_v6, "fd42:6f76:6c64::/64", "{up}");
    let bridge = up["bridge"].as_str().unwrap().to_string();

    let (c1, c2) = (Container::new(), Container::new());
    for (c, name) in [(&c1, "one"), (&c2, "two")] {
        let pid = c.pid().to_string();
        let out = d.cli_ok(&[
            "attach",
            "--pid",
            &pid,
            "--service",
            "web",
            "--iso",
            "dual",
            "--name",
            name,
        ]);
        assert!(out.contains("fd42:6f76:6c64::"), "{out}");
    }
    let (ip1, ip1_6, gw, gw6) = inspect(&d, c1.pid());
    let (ip2, ip2_6, _, _) = inspect(&d, c2.pid());
    assert_eq!(gw6, "fd42:6f76:6c64::1");

    // Both families inside the container, with both default routes.
    let addrs = c1.output(&["ip", "-o", "addr", "show", "dev", "eth0"]);
    let line6 = addrs
        .lines()
        .find(|l| l.contains(&format!("{ip1_6}/64")))
        .unwrap_or_else(|| panic!("no {ip1_6}/64: {addrs}"));
    assert!(
        line6.contains("nodad") && !line6.contains("tentative"),
        "usable at once, no DAD wait: {line6}"
    );
    let r6 = c1.output(&["ip", "-6", "route", "show", "default"]);
    assert!(r6.contains(&format!("via {gw6}")), "{r6}");

    wait_for("v4 ping", Duration::from_secs(10), || c1.ping(&ip2));
    wait_for("v6 ping", Duration::from_secs(10), || c1.ping(&ip2_6));
    assert!(c2.ping(&ip1) && c2.ping(&ip1_6));

    // A and AAAA through the gateway of each family.
    let name = "two.overlay.internal";
    wait_for("DNS on the IPv6 gateway", Duration::from_secs(10), || {
        dig(&c1, &gw6, name, "AAAA") == vec![ip2_6.clone()]
    });
    assert_eq!(dig(&c1, &gw6, name, "A"), vec![ip2.clone()]);
    assert_eq!(dig(&c1, &gw, name, "AAAA"), vec![ip2_6.clone()]);
    assert_eq!(dig(&c1, &gw, name, "A"), vec![ip2.clone()]);
    assert_eq!(
        dig(&c2, &gw6, "one.overlay.internal", "AAAA"),
        vec![ip1_6.clone()]
    );

    assert!(
        !d.log().contains("cannot listen for DNS"),
        "every gateway listener bound:\n{}",
        d.log()
    );

    // NAT in both families; IPv6 forwarding on because a v6 network masquerades.
    let table = node.output(&["nft", "list", "table", "inet", "overlayd"]);
    assert!(
        table.contains(&format!("ip6 saddr {subnet_v6}")) && table.contains("masquerade"),
        "{table}"
    );
    assert_eq!(
        node.output(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "1"
    );
    // ps and network inspect show both.
    let ps = d.cli_ok(&["ps"]);
    assert!(ps.contains(&ip1_6) && ps.contains(&ip1), "{ps}");
    let inspect_net = d.cli_ok(&["network", "inspect", "iso:dual"]);
    assert!(inspect_net.contains(&subnet_v6), "{inspect_net}");

    // Restart: nothing recreated, the same addresses, still reachable.
    let br_index = node.ifindex(&bridge).expect("bridge");
    let eth0 = c1.output(&["cat", "/sys/class/net/eth0/ifindex"]);
    d.restart();
    assert_eq!(node.ifindex(&bridge), Some(br_index), "bridge adopted");
    assert_eq!(c1.output(&["cat", "/sys/class/net/eth0/ifindex"]), eth0);
    assert_eq!(
        inspect(&d, c1.pid()),
        (ip1.clone(), ip1_6.clone(), gw, gw6.clone())
    );
    assert_eq!(inspect(&d, c2.pid()).1, ip2_6);
    assert!(c1.ping(&ip2_6));
    wait_for(
        "DNS on the IPv6 gateway after restart",
        Duration::from_secs(10),
        || dig(&c1, &gw6, name, "AAAA") == vec![ip2_6.clone()],
    );

    // Detach releases both addresses: a new member takes them again.
    let pid1 = c1.pid().to_string();
    d.cli_ok(&["detach", "--pid", &pid1]);
    assert!(dig(&c2, &gw6, "one.overlay.internal", "AAAA").is_empty());
    let c3 = Container::new();
    d.ok(support::requests::attach_pid(
        c3.pid(),
        "web",
        Some("dual"),
        None,
    ));
    let (ip3, ip3_6, _, _) = inspect(&d, c3.pid());
    assert_eq!((ip3, ip3_6), (ip1, ip1_6));

    // Purge: nothing of ours left, IPv6 forwarding back to what it was.
    d.cli_ok(&["detach", "--pid", &c2.pid().to_string()]);
    d.cli_ok(&["detach", "--pid", &c3.pid().to_string()]);
    let out = d.cli(&["uninstall", "--purge"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    d.proc.child.take();
    assert!(node.ifindex(&bridge).is_none(), "bridge purged");
    let addrs = node.output(&["ip", "-o", "addr", "show"]);
    assert!(!addrs.contains("fd42:6f76:6c64"), "{addrs}");
    assert_eq!(
        node.output(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "0"
    );
}

/// The report: on a single-stack IPv6 network the DNS listener on
/// the gateway failed (`Cannot assign requested address`: the address was
/// still tentative) and `dig` got connection refused. Gateways are now
/// added without DAD, so the listener binds at once.
#[test]
fn single_stack_ipv6_network_answers_dns_on_its_gateway_at_once() {
    if !can_run_root_tests("ipv6_dns") {
        return;
    }
    let node = Netns::new("d6");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&node, dir.path(), &[]);
    d.cli_ok(&["service", "up", "web"]);
    let up: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["--json", "iso", "up", "six", "--subnet", "fd00:1::/64"]))
            .unwrap();
    assert_eq!(up["subnet"], "fd00:1::/64", "{up}");
    assert!(up.get("subnet_v6").is_none(), "single-stack: {up}");
    let c = Container::new();
    d.ok(support::requests::attach_pid(
        c.pid(),
        "web",
        Some("six"),
        Some("solo"),
    ));
    // No wait: the listener is there as soon as the network is.
    assert_eq!(
        dig(&c, "fd00:1::1", "solo.overlay.internal", "AAAA"),
        vec!["fd00:1::2".to_string()],
        "log:\n{}",
        d.log()
    );
    assert!(!d.log().contains("cannot listen for DNS"), "{}", d.log());
}
